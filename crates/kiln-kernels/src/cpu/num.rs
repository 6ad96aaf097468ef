//! Arithmetic on every storable element type, so kernels can be written once generically.

use crate::storage::StorageElement;
use half::{bf16, f16};

/// Elementwise arithmetic available for all dtypes (bool uses or/and).
pub trait Num: StorageElement {
    /// a + b
    fn add(self, o: Self) -> Self;
    /// a − b
    fn sub(self, o: Self) -> Self;
    /// a · b
    fn mul(self, o: Self) -> Self;
    /// a / b (integers: truncating; callers promote to float first)
    fn div(self, o: Self) -> Self;
    /// max, propagating NaN
    fn max_(self, o: Self) -> Self;
    /// min, propagating NaN
    fn min_(self, o: Self) -> Self;
    /// Smallest value (−∞ for floats).
    fn lowest() -> Self;
    /// Largest value (+∞ for floats).
    fn highest() -> Self;
    /// True for NaN.
    fn is_nan_(self) -> bool {
        false
    }
}

macro_rules! num_int {
    ($($t:ty),*) => {$(
        impl Num for $t {
            #[inline(always)] fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline(always)] fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            #[inline(always)] fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            #[inline(always)] fn div(self, o: Self) -> Self { if o == 0 { 0 } else { self.wrapping_div(o) } }
            #[inline(always)] fn max_(self, o: Self) -> Self { if self >= o { self } else { o } }
            #[inline(always)] fn min_(self, o: Self) -> Self { if self <= o { self } else { o } }
            fn lowest() -> Self { <$t>::MIN }
            fn highest() -> Self { <$t>::MAX }
        }
    )*};
}
num_int!(i64, i32, u8, i8, i16, u16, u32, u64);

/// The integer-only operations of [`crate::ops::IntOp`], wrapping, a zero divisor giving 0.
pub trait IntNum: Num {
    /// The op applied to `a` and `b`.
    fn int_op(op: crate::ops::IntOp, a: Self, b: Self) -> Self;
}

macro_rules! int_num {
    ($($t:ty),*) => {$(
        impl IntNum for $t {
            #[inline(always)]
            fn int_op(op: crate::ops::IntOp, a: Self, b: Self) -> Self {
                use crate::ops::IntOp;
                match op {
                    IntOp::Div => if b == 0 { 0 } else { a.wrapping_div(b) },
                    IntOp::Rem => if b == 0 { 0 } else { a.wrapping_rem(b) },
                    IntOp::Mod => {
                        if b == 0 {
                            return 0;
                        }
                        let r = a.wrapping_rem(b);
                        // The divisor's sign, as Python's %.
                        #[allow(unused_comparisons)]
                        let differ = (r < 0) != (b < 0);
                        if r != 0 && differ { r.wrapping_add(b) } else { r }
                    }
                    IntOp::And => a & b,
                    IntOp::Or => a | b,
                    IntOp::Xor => a ^ b,
                    IntOp::Shl => u32::try_from(b).ok().and_then(|s| a.checked_shl(s)).unwrap_or(0),
                    IntOp::Shr => {
                        #[allow(unused_comparisons)]
                        let fill = if a < 0 { !0 } else { 0 };
                        u32::try_from(b).ok().and_then(|s| a.checked_shr(s)).unwrap_or(fill)
                    }
                }
            }
        }
    )*};
}
int_num!(i64, i32, u8, i8, i16, u16, u32, u64);

macro_rules! num_float {
    ($($t:ty),*) => {$(
        impl Num for $t {
            #[inline(always)] fn add(self, o: Self) -> Self { self + o }
            #[inline(always)] fn sub(self, o: Self) -> Self { self - o }
            #[inline(always)] fn mul(self, o: Self) -> Self { self * o }
            #[inline(always)] fn div(self, o: Self) -> Self { self / o }
            #[inline(always)] fn max_(self, o: Self) -> Self { if self.is_nan() || self >= o { self } else { o } }
            #[inline(always)] fn min_(self, o: Self) -> Self { if self.is_nan() || self <= o { self } else { o } }
            fn lowest() -> Self { <$t>::NEG_INFINITY }
            fn highest() -> Self { <$t>::INFINITY }
            #[inline(always)] fn is_nan_(self) -> bool { self.is_nan() }
        }
    )*};
}
num_float!(f32, f64, bf16, f16);

impl Num for bool {
    fn add(self, o: Self) -> Self {
        self | o
    }
    fn sub(self, o: Self) -> Self {
        self ^ o
    }
    fn mul(self, o: Self) -> Self {
        self & o
    }
    fn div(self, o: Self) -> Self {
        self & o
    }
    fn max_(self, o: Self) -> Self {
        self | o
    }
    fn min_(self, o: Self) -> Self {
        self & o
    }
    fn lowest() -> Self {
        false
    }
    fn highest() -> Self {
        true
    }
}
