//! Softmax and log-softmax along a dim: one fused primitive ([`Op::Softmax`]) that shifts each
//! row by its max for numerical stability (an all-`−∞` row gives NaN, as in PyTorch).

use crate::ops::{dispatch, Op};
use crate::shape::{resolve_dim, DimInt};
use crate::tensor::Tensor;

fn fused(x: &Tensor, dim: usize, log: bool) -> Tensor {
    if x.rank() == 0 {
        // The VJP reduces over `dim`; a 0-d tensor goes through as one element.
        return fused(&x.reshape([1]), 0, log).reshape(x.shape());
    }
    dispatch(Op::Softmax { dim, log }, &[x])
}

/// `exp(x) / Σ exp(x)` along `dim`, like `F.softmax(x, dim)`.
#[track_caller]
pub fn softmax(x: &Tensor, dim: impl DimInt) -> Tensor {
    let d = resolve_dim(dim, x.rank(), "softmax");
    fused(x, d, false)
}

/// `x − log Σ exp(x)` along `dim`, like `F.log_softmax(x, dim)`.
#[track_caller]
pub fn log_softmax(x: &Tensor, dim: impl DimInt) -> Tensor {
    let d = resolve_dim(dim, x.rank(), "log_softmax");
    fused(x, d, true)
}
