//! Element types a tensor can hold, and the `Element` trait that maps Rust types to them.

use half::{bf16, f16};
use std::fmt;

/// The element type of a tensor.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// bfloat16 (8-bit exponent, 7-bit mantissa).
    BF16,
    /// IEEE half precision.
    F16,
    /// 64-bit signed integer (indices, class labels).
    I64,
    /// 32-bit signed integer.
    I32,
    /// 8-bit unsigned integer (images).
    U8,
    /// Boolean (masks, comparison results).
    Bool,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 8] = [
        DType::F32,
        DType::F64,
        DType::BF16,
        DType::F16,
        DType::I64,
        DType::I32,
        DType::U8,
        DType::Bool,
    ];

    /// True for f32, f64, bf16 and f16: the dtypes that can require grad.
    #[inline]
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
    }

    /// True for the integer dtypes (not bool).
    #[inline]
    pub fn is_int(self) -> bool {
        matches!(self, DType::I64 | DType::I32 | DType::U8)
    }

    /// Bytes per element.
    #[inline]
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::BF16 | DType::F16 => 2,
            DType::U8 | DType::Bool => 1,
        }
    }

    /// The dtype two operands are promoted to (PyTorch's rule restricted to our dtypes:
    /// bool < integers < floats; among floats the wider wins, bf16+f16 → f32).
    pub fn promote(a: DType, b: DType) -> DType {
        use DType::*;
        if a == b {
            return a;
        }
        let rank = |d: DType| match d {
            Bool => 0,
            U8 => 1,
            I32 => 2,
            I64 => 3,
            BF16 | F16 => 4,
            F32 => 5,
            F64 => 6,
        };
        match (a, b) {
            (BF16, F16) | (F16, BF16) => F32,
            _ if rank(a) >= rank(b) => a,
            _ => b,
        }
    }

    /// Short name as printed in tensor displays (`f32`, `i64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can be stored in a tensor.
pub trait Element: Copy + Send + Sync + PartialOrd + fmt::Debug + 'static {
    /// The matching dtype.
    const DTYPE: DType;
    /// Lossy conversion to f64 (bool → 0/1).
    fn to_f64(self) -> f64;
    /// Lossy conversion from f64 (float → int truncates toward zero, ≠0 → true).
    fn from_f64(v: f64) -> Self;
    /// The additive identity.
    fn zero() -> Self;
    /// The multiplicative identity.
    fn one() -> Self;
}

macro_rules! impl_element_num {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn zero() -> Self {
                0 as $t
            }
            #[inline(always)]
            fn one() -> Self {
                1 as $t
            }
        }
    };
}
impl_element_num!(f32, F32);
impl_element_num!(f64, F64);
impl_element_num!(i64, I64);
impl_element_num!(i32, I32);
impl_element_num!(u8, U8);

macro_rules! impl_element_half {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self.to_f64()
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                <$t>::from_f64(v)
            }
            #[inline(always)]
            fn zero() -> Self {
                <$t>::ZERO
            }
            #[inline(always)]
            fn one() -> Self {
                <$t>::ONE
            }
        }
    };
}
impl_element_half!(bf16, BF16);
impl_element_half!(f16, F16);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn zero() -> Self {
        false
    }
    fn one() -> Self {
        true
    }
}
