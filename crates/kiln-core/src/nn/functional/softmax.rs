//! Softmax and log-softmax along a dim, shifted by the (detached) max for numerical stability.

use crate::shape::{resolve_dim, DimInt};
use crate::tensor::Tensor;

/// The max along `dim` (kept), detached: a constant shift does not change the result or its
/// gradient. Infinite maxima (all `−∞` rows) shift by 0 so they do not turn into NaN early.
fn shift(x: &Tensor, dim: usize) -> Tensor {
    let m = x.amax([dim], true).detach();
    m.masked_fill(&m.abs().eq_scalar(f64::INFINITY), 0.0)
}

/// `exp(x) / Σ exp(x)` along `dim`, like `F.softmax(x, dim)`.
pub fn softmax(x: &Tensor, dim: impl DimInt) -> Tensor {
    let d = resolve_dim(dim, x.rank(), "softmax");
    let e = (x - &shift(x, d)).exp();
    &e / &e.sum([d], true)
}

/// `x − log Σ exp(x)` along `dim`, like `F.log_softmax(x, dim)`.
pub fn log_softmax(x: &Tensor, dim: impl DimInt) -> Tensor {
    let d = resolve_dim(dim, x.rank(), "log_softmax");
    let z = x - &shift(x, d);
    let lse = z.exp().sum([d], true).log();
    &z - &lse
}
