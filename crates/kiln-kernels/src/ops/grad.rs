//! The vocabulary vector-Jacobian products are written in, beside the ops they belong to.
//!
//! A VJP is a function of values of the layer above — tensors, which record what they do for
//! autograd and graph capture — but it is declared here, with its op's shape rule and kernel,
//! so an op lives in one file. It is written against [`Differentiable`]: one method that
//! applies a primitive op (the tensor layer's dispatch) and one that makes a constant. The
//! tensor layer implements it; a gradient computed so is itself differentiable and traceable.

use super::value::ValueType;
use super::{CmpOp, Op, UnaryOp};
use crate::dtype::DType;

/// A value VJPs can compute with: every primitive op applies to it.
pub trait Differentiable: ValueType + Clone + Sized {
    /// Applies `op` to `args` (for tensors: `dispatch`, so the result carries autograd and
    /// trace records like any op's).
    fn apply(op: Op, args: &[&Self]) -> Self;
    /// A dense constant of `shape` filled with `value`.
    fn full(value: f64, shape: &[usize], dtype: DType) -> Self;
}

/// `op(x)` for a unary op.
pub fn unary<T: Differentiable>(op: UnaryOp, x: &T) -> T {
    T::apply(Op::Unary(op), &[x])
}

/// `x · mul + add`.
pub fn affine<T: Differentiable>(x: &T, mul: f64, add: f64) -> T {
    unary(UnaryOp::Affine { mul, add }, x)
}

/// `a · b`, broadcasting.
pub fn mul<T: Differentiable>(a: &T, b: &T) -> T {
    T::apply(Op::Mul, &[a, b])
}

/// `a / b`, broadcasting.
pub fn div<T: Differentiable>(a: &T, b: &T) -> T {
    T::apply(Op::Div, &[a, b])
}

/// `a + b`, broadcasting.
pub fn add<T: Differentiable>(a: &T, b: &T) -> T {
    T::apply(Op::Add, &[a, b])
}

/// `-x`.
pub fn neg<T: Differentiable>(x: &T) -> T {
    affine(x, -1.0, 0.0)
}

/// `x <cmp> v` against a scalar of `x`'s dtype (a bool value).
pub fn compare_scalar<T: Differentiable>(x: &T, cmp: CmpOp, v: f64) -> T {
    T::apply(Op::Compare(cmp), &[x, &T::full(v, &[], x.dtype())])
}

/// `a` where `cond`, else `b`, broadcasting.
pub fn select<T: Differentiable>(cond: &T, a: &T, b: &T) -> T {
    T::apply(Op::Where, &[cond, a, b])
}

/// `x` in `dtype` (itself when it is already).
pub fn cast<T: Differentiable>(x: &T, dtype: DType) -> T {
    if x.dtype() == dtype {
        return x.clone();
    }
    T::apply(Op::Cast(dtype), &[x])
}

/// Zeros of `x`'s shape and dtype.
pub fn zeros_like<T: Differentiable>(x: &T) -> T {
    T::full(0.0, x.shape(), x.dtype())
}
