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
    /// 8-bit signed integer (quantized values).
    I8,
    /// 16-bit signed integer.
    I16,
    /// 16-bit unsigned integer.
    U16,
    /// 32-bit unsigned integer.
    U32,
    /// 64-bit unsigned integer.
    U64,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 13] = [
        DType::F32,
        DType::F64,
        DType::BF16,
        DType::F16,
        DType::I64,
        DType::I32,
        DType::U8,
        DType::Bool,
        DType::I8,
        DType::I16,
        DType::U16,
        DType::U32,
        DType::U64,
    ];

    /// True for f32, f64, bf16 and f16: the dtypes that can require grad.
    #[inline]
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
    }

    /// True for the integer dtypes (not bool).
    #[inline]
    pub fn is_int(self) -> bool {
        matches!(
            self,
            DType::I64
                | DType::I32
                | DType::U8
                | DType::I8
                | DType::I16
                | DType::U16
                | DType::U32
                | DType::U64
        )
    }

    /// True for the unsigned integer dtypes.
    #[inline]
    pub fn is_unsigned(self) -> bool {
        matches!(self, DType::U8 | DType::U16 | DType::U32 | DType::U64)
    }

    /// Bytes per element.
    #[inline]
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::BF16 | DType::F16 | DType::I16 | DType::U16 => 2,
            DType::U8 | DType::I8 | DType::Bool => 1,
        }
    }

    /// The dtype two operands are promoted to (PyTorch's rule restricted to our dtypes:
    /// bool < integers < floats; among floats the wider wins, bf16+f16 → f32; among integers
    /// NumPy's rule: the wider of one signedness, and a signed and an unsigned one meet in the
    /// narrowest signed type holding both, u64 with a signed one in i64).
    pub fn promote(a: DType, b: DType) -> DType {
        use DType::*;
        if a == b {
            return a;
        }
        let float_rank = |d: DType| match d {
            BF16 | F16 => 1,
            F32 => 2,
            F64 => 3,
            _ => 0,
        };
        match (a, b) {
            (BF16, F16) | (F16, BF16) => F32,
            (Bool, x) | (x, Bool) => x,
            _ if a.is_float() || b.is_float() => {
                if float_rank(a) >= float_rank(b) {
                    a
                } else {
                    b
                }
            }
            _ => {
                let (ua, ub) = (a.is_unsigned(), b.is_unsigned());
                let (sa, sb) = (a.size_in_bytes(), b.size_in_bytes());
                if ua == ub {
                    return if sa >= sb { a } else { b };
                }
                let (u, s) = if ua { (sa, sb) } else { (sb, sa) };
                let signed = if ua { b } else { a };
                if s > u {
                    signed
                } else {
                    match u {
                        1 => I16,
                        2 => I32,
                        _ => I64,
                    }
                }
            }
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
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
        }
    }
}

/// Runs `$body` with `$T` the Rust element type of the dtype `$d`: one arm per dtype, so a
/// generic function is dispatched on a runtime dtype in one line.
#[macro_export]
#[doc(hidden)]
macro_rules! with_dtype {
    ($d:expr, $T:ident => $body:expr) => {
        match $d {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::BF16 => {
                type $T = $crate::bf16;
                $body
            }
            $crate::DType::F16 => {
                type $T = $crate::f16;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::DType::Bool => {
                type $T = bool;
                $body
            }
            $crate::DType::I8 => {
                type $T = i8;
                $body
            }
            $crate::DType::I16 => {
                type $T = i16;
                $body
            }
            $crate::DType::U16 => {
                type $T = u16;
                $body
            }
            $crate::DType::U32 => {
                type $T = u32;
                $body
            }
            $crate::DType::U64 => {
                type $T = u64;
                $body
            }
        }
    };
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
    /// The value as an integer (floats truncate toward zero, saturating; bool → 0/1): the
    /// exact path of integer-to-integer casts.
    fn to_i128(self) -> i128;
    /// The low bits of `v` (integers wrap, as C and NumPy casts do; bool is `v ≠ 0`).
    fn from_i128(v: i128) -> Self;
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
            #[inline(always)]
            fn to_i128(self) -> i128 {
                self as i128
            }
            #[inline(always)]
            fn from_i128(v: i128) -> Self {
                v as $t
            }
        }
    };
}
impl_element_num!(f32, F32);
impl_element_num!(f64, F64);
impl_element_num!(i64, I64);
impl_element_num!(i32, I32);
impl_element_num!(u8, U8);
impl_element_num!(i8, I8);
impl_element_num!(i16, I16);
impl_element_num!(u16, U16);
impl_element_num!(u32, U32);
impl_element_num!(u64, U64);

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
            #[inline(always)]
            fn to_i128(self) -> i128 {
                self.to_f64() as i128
            }
            #[inline(always)]
            fn from_i128(v: i128) -> Self {
                <$t>::from_f64(v as f64)
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
    fn to_i128(self) -> i128 {
        self as i128
    }
    fn from_i128(v: i128) -> Self {
        v != 0
    }
}
