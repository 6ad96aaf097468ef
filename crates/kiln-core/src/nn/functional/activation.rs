//! Elementwise activations: thin wrappers over the primitive ops plus PyTorch's `softplus`
//! with `beta` and `threshold`.

use crate::tensor::Tensor;

/// max(x, 0), like `F.relu`.
#[track_caller]
pub fn relu(x: &Tensor) -> Tensor {
    x.relu()
}

/// The logistic sigmoid 1 / (1 + e^−x), like `torch.sigmoid`.
#[track_caller]
pub fn sigmoid(x: &Tensor) -> Tensor {
    x.sigmoid()
}

/// Hyperbolic tangent, like `torch.tanh`.
#[track_caller]
pub fn tanh(x: &Tensor) -> Tensor {
    x.tanh()
}

/// GELU, `x·Φ(x)`; `approximate_tanh` selects the tanh approximation
/// (PyTorch's `approximate="tanh"`) instead of the exact erf form.
#[track_caller]
pub fn gelu(x: &Tensor, approximate_tanh: bool) -> Tensor {
    if approximate_tanh {
        x.gelu_tanh()
    } else {
        x.gelu()
    }
}

/// SiLU (swish), `x·sigmoid(x)`, like `F.silu`.
#[track_caller]
pub fn silu(x: &Tensor) -> Tensor {
    x.silu()
}

/// `log(1 + e^(β·x)) / β`, reverting to the identity where `β·x > threshold`, like
/// `F.softplus(x, beta, threshold)` (PyTorch's defaults are `beta = 1`, `threshold = 20`).
#[track_caller]
pub fn softplus(x: &Tensor, beta: f64, threshold: f64) -> Tensor {
    let bx = if beta == 1.0 {
        x.clone()
    } else {
        x.mul_scalar(beta)
    };
    let soft = stable_softplus(&bx);
    let soft = if beta == 1.0 {
        soft
    } else {
        soft.mul_scalar(1.0 / beta)
    };
    Tensor::where_(&bx.gt_scalar(threshold), x, &soft)
}

/// `log(1 + eᶻ)` without overflow: `max(z, 0) + log1p(e^−|z|)`. The `maximum` splits the
/// gradient at `z = 0`, giving the exact derivative 1/2 there.
#[track_caller]
pub(crate) fn stable_softplus(z: &Tensor) -> Tensor {
    let zero = Tensor::scalar(0.0, z.dtype());
    &z.maximum(&zero) + &log1p(&z.abs().neg().exp())
}

/// `log(1 + u)` accurate for tiny `u` (Kahan's trick: `log(w)·u / (w − 1)` with `w = 1 + u`,
/// and `u` itself where `w` rounds to 1). Meant for `u ≥ 0`.
#[track_caller]
pub(crate) fn log1p(u: &Tensor) -> Tensor {
    let w = u.add_scalar(1.0);
    let wm1 = w.sub_scalar(1.0);
    let tiny = wm1.eq_scalar(0.0);
    let one = Tensor::scalar(1.0, u.dtype());
    let denom = Tensor::where_(&tiny, &one, &wm1);
    let r = &(&w.log() * u) / &denom;
    Tensor::where_(&tiny, u, &r)
}
