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
