//! Operator overloading: `&a + &b`, `a * 2.0`, `2.0 - &a`, `-a`, for owned and borrowed tensors.

use super::Tensor;
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! tensor_ops {
    ($trait:ident, $method:ident, $tensor_fn:ident, $scalar_fn:expr, $rscalar_fn:expr) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$tensor_fn(self, rhs)
            }
        }
        impl $trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$tensor_fn(self, &rhs)
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$tensor_fn(&self, rhs)
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$tensor_fn(&self, &rhs)
            }
        }
        impl $trait<f64> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                let f: fn(&Tensor, f64) -> Tensor = $scalar_fn;
                f(self, rhs)
            }
        }
        impl $trait<f64> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                let f: fn(&Tensor, f64) -> Tensor = $scalar_fn;
                f(&self, rhs)
            }
        }
        impl $trait<&Tensor> for f64 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                let f: fn(f64, &Tensor) -> Tensor = $rscalar_fn;
                f(self, rhs)
            }
        }
        impl $trait<Tensor> for f64 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                let f: fn(f64, &Tensor) -> Tensor = $rscalar_fn;
                f(self, &rhs)
            }
        }
    };
}

tensor_ops!(Add, add, add, |t, v| t.add_scalar(v), |v, t| t
    .add_scalar(v));
tensor_ops!(Sub, sub, sub, |t, v| t.sub_scalar(v), |v, t| t
    .affine(-1.0, v));
tensor_ops!(Mul, mul, mul, |t, v| t.mul_scalar(v), |v, t| t
    .mul_scalar(v));
tensor_ops!(Div, div, div, |t, v| t.div_scalar(v), |v, t| t
    .scalar_like(v)
    .div(t));

impl Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}
