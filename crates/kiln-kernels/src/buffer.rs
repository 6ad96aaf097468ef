//! Typed host buffers: [`CpuStorage`], one `Vec` of one dtype, and [`StorageElement`], the
//! conversion between a `Vec<T>` and its variant.

use crate::dtype::{DType, Element};
use crate::with_dtype;
use half::{bf16, f16};

/// A host buffer of one dtype.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
    /// bf16 elements.
    BF16(Vec<bf16>),
    /// f16 elements.
    F16(Vec<f16>),
    /// i64 elements.
    I64(Vec<i64>),
    /// i32 elements.
    I32(Vec<i32>),
    /// u8 elements.
    U8(Vec<u8>),
    /// bool elements.
    Bool(Vec<bool>),
    /// i8 elements.
    I8(Vec<i8>),
    /// i16 elements.
    I16(Vec<i16>),
    /// u16 elements.
    U16(Vec<u16>),
    /// u32 elements.
    U32(Vec<u32>),
    /// u64 elements.
    U64(Vec<u64>),
}

/// Runs `$body` with `$v` bound to the typed vector inside a `CpuStorage` (by reference).
#[macro_export]
#[doc(hidden)]
macro_rules! with_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::buffer::CpuStorage::F32($v) => $body,
            $crate::buffer::CpuStorage::F64($v) => $body,
            $crate::buffer::CpuStorage::BF16($v) => $body,
            $crate::buffer::CpuStorage::F16($v) => $body,
            $crate::buffer::CpuStorage::I64($v) => $body,
            $crate::buffer::CpuStorage::I32($v) => $body,
            $crate::buffer::CpuStorage::U8($v) => $body,
            $crate::buffer::CpuStorage::Bool($v) => $body,
            $crate::buffer::CpuStorage::I8($v) => $body,
            $crate::buffer::CpuStorage::I16($v) => $body,
            $crate::buffer::CpuStorage::U16($v) => $body,
            $crate::buffer::CpuStorage::U32($v) => $body,
            $crate::buffer::CpuStorage::U64($v) => $body,
        }
    };
}

/// Conversion between `Vec<T>` and the matching `CpuStorage` variant.
pub trait StorageElement: Element {
    /// Wraps a vector.
    fn wrap(v: Vec<Self>) -> CpuStorage;
    /// Borrows the vector if the dtype matches.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    /// Mutably borrows the vector if the dtype matches.
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
    /// Takes the vector out if the dtype matches.
    fn unwrap(s: CpuStorage) -> Option<Vec<Self>>;
}

macro_rules! storage_element {
    ($t:ty, $v:ident) => {
        impl StorageElement for $t {
            fn wrap(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$v(v)
            }
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
                match s {
                    CpuStorage::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn unwrap(s: CpuStorage) -> Option<Vec<Self>> {
                match s {
                    CpuStorage::$v(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
storage_element!(f32, F32);
storage_element!(f64, F64);
storage_element!(bf16, BF16);
storage_element!(f16, F16);
storage_element!(i64, I64);
storage_element!(i32, I32);
storage_element!(u8, U8);
storage_element!(bool, Bool);
storage_element!(i8, I8);
storage_element!(i16, I16);
storage_element!(u16, U16);
storage_element!(u32, U32);
storage_element!(u64, U64);

impl CpuStorage {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::I32(_) => DType::I32,
            CpuStorage::U8(_) => DType::U8,
            CpuStorage::Bool(_) => DType::Bool,
            CpuStorage::I8(_) => DType::I8,
            CpuStorage::I16(_) => DType::I16,
            CpuStorage::U16(_) => DType::U16,
            CpuStorage::U32(_) => DType::U32,
            CpuStorage::U64(_) => DType::U64,
        }
    }

    /// Number of elements in the buffer.
    pub fn len(&self) -> usize {
        with_storage!(self, v => v.len())
    }

    /// Allocated capacity in elements.
    pub fn capacity(&self) -> usize {
        with_storage!(self, v => v.capacity())
    }

    /// True if the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A buffer of `n` copies of `value` converted to `dtype`.
    pub fn filled(dtype: DType, n: usize, value: f64) -> CpuStorage {
        fn fill<T: StorageElement>(n: usize, v: f64) -> CpuStorage {
            T::wrap(vec![T::from_f64(v); n])
        }
        with_dtype!(dtype, T => fill::<T>(n, value))
    }

    /// A buffer from f64 values converted to `dtype`.
    pub fn from_f64s(dtype: DType, values: impl Iterator<Item = f64>) -> CpuStorage {
        fn conv<T: StorageElement>(it: impl Iterator<Item = f64>) -> CpuStorage {
            T::wrap(it.map(T::from_f64).collect())
        }
        with_dtype!(dtype, T => conv::<T>(values))
    }

    /// Value at `i` as f64.
    pub fn get_f64(&self, i: usize) -> f64 {
        with_storage!(self, v => v[i].to_f64())
    }
}
