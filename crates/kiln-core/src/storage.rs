//! Typed element buffers shared by a tensor and its views, with a version counter that
//! detects in-place modification of tensors saved for backward.

use crate::device::Device;
use crate::dtype::{DType, Element};
use half::{bf16, f16};
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

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
}

/// Runs `$body` with `$v` bound to the typed vector inside a `CpuStorage` (by reference).
#[macro_export]
#[doc(hidden)]
macro_rules! with_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::storage::CpuStorage::F32($v) => $body,
            $crate::storage::CpuStorage::F64($v) => $body,
            $crate::storage::CpuStorage::BF16($v) => $body,
            $crate::storage::CpuStorage::F16($v) => $body,
            $crate::storage::CpuStorage::I64($v) => $body,
            $crate::storage::CpuStorage::I32($v) => $body,
            $crate::storage::CpuStorage::U8($v) => $body,
            $crate::storage::CpuStorage::Bool($v) => $body,
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
        match dtype {
            DType::F32 => fill::<f32>(n, value),
            DType::F64 => fill::<f64>(n, value),
            DType::BF16 => fill::<bf16>(n, value),
            DType::F16 => fill::<f16>(n, value),
            DType::I64 => fill::<i64>(n, value),
            DType::I32 => fill::<i32>(n, value),
            DType::U8 => fill::<u8>(n, value),
            DType::Bool => fill::<bool>(n, value),
        }
    }

    /// A buffer from f64 values converted to `dtype`.
    pub fn from_f64s(dtype: DType, values: impl Iterator<Item = f64>) -> CpuStorage {
        fn conv<T: StorageElement>(it: impl Iterator<Item = f64>) -> CpuStorage {
            T::wrap(it.map(T::from_f64).collect())
        }
        match dtype {
            DType::F32 => conv::<f32>(values),
            DType::F64 => conv::<f64>(values),
            DType::BF16 => conv::<bf16>(values),
            DType::F16 => conv::<f16>(values),
            DType::I64 => conv::<i64>(values),
            DType::I32 => conv::<i32>(values),
            DType::U8 => conv::<u8>(values),
            DType::Bool => conv::<bool>(values),
        }
    }

    /// Value at `i` as f64.
    pub fn get_f64(&self, i: usize) -> f64 {
        with_storage!(self, v => v[i].to_f64())
    }
}

/// A device buffer behind a lock, plus its version counter.
#[derive(Debug)]
pub struct Storage {
    data: RwLock<CpuStorage>,
    version: AtomicU64,
    device: Device,
    /// The traced value this storage stands for while compiling ([`NOT_TRACED`] for real
    /// data); atomic because an in-place write during tracing rebinds it for every handle.
    tracer: AtomicU32,
    /// Which trace a tracer belongs to (tracers that outlive their trace are caught).
    trace_generation: u32,
    /// Created while a trace was active: a constant of that trace, not captured state.
    born_in_trace: bool,
    /// Bytes the caching allocator counts as live for this buffer (0 for small buffers).
    tracked: usize,
}

/// `Storage::tracer` value of storages that hold real data.
const NOT_TRACED: u32 = u32::MAX;

impl Drop for Storage {
    fn drop(&mut self) {
        // Hand large buffers to the caching allocator for the next op of the same size.
        let data = std::mem::replace(self.data.get_mut(), CpuStorage::F32(Vec::new()));
        crate::cpu::pool::recycle(data, self.tracked);
    }
}

impl Storage {
    /// Wraps a host buffer.
    #[inline]
    pub fn cpu(data: CpuStorage) -> Storage {
        let tracked = crate::cpu::pool::tracked_bytes(&data);
        crate::cpu::pool::on_alloc(tracked);
        Storage {
            data: RwLock::new(data),
            version: AtomicU64::new(0),
            device: Device::Cpu,
            tracer: AtomicU32::new(NOT_TRACED),
            trace_generation: 0,
            born_in_trace: crate::trace::is_tracing(),
            tracked,
        }
    }

    /// A data-less stand-in for traced value `id` (see [`crate::trace`]).
    pub(crate) fn tracer(dtype: DType, id: u32, generation: u32) -> Storage {
        Storage {
            data: RwLock::new(CpuStorage::filled(dtype, 0, 0.0)),
            version: AtomicU64::new(0),
            device: Device::Cpu,
            tracer: AtomicU32::new(id),
            trace_generation: generation,
            born_in_trace: true,
            tracked: 0,
        }
    }

    /// The traced value this storage stands for, if it is a tracer.
    #[inline]
    pub fn tracer_id(&self) -> Option<u32> {
        match self.tracer.load(Ordering::Relaxed) {
            NOT_TRACED => None,
            id => Some(id),
        }
    }

    /// The trace a tracer storage was made by.
    pub(crate) fn trace_generation(&self) -> u32 {
        self.trace_generation
    }

    /// Rebinds a tracer to a new value (an in-place write recorded during tracing).
    pub(crate) fn set_tracer_id(&self, id: u32) {
        self.tracer.store(id, Ordering::Relaxed);
    }

    /// True for real-data storages created while a trace was running (that trace's constants).
    pub fn born_in_trace(&self) -> bool {
        self.born_in_trace
    }

    /// Shared read access to the buffer.
    pub fn read(&self) -> RwLockReadGuard<'_, CpuStorage> {
        // Recursive: `x + x` reads the same storage twice on one thread.
        self.data.read_recursive()
    }

    /// Exclusive write access; bumps the version so saved tensors notice the change.
    pub fn write(&self) -> RwLockWriteGuard<'_, CpuStorage> {
        self.version.fetch_add(1, Ordering::Relaxed);
        self.data.write()
    }

    /// Current version (number of in-place writes so far).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// The device the buffer lives on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.read_recursive().dtype()
    }
}
