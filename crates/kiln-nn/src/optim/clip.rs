//! Gradient clipping (`torch.nn.utils.clip_grad_norm_`, `clip_grad_value_`).
//!
//! Clipped gradients are stored as new tensors (`set_grad`) rather than scaled in place: two
//! parameters may hold the very same gradient tensor (backward hands one tensor to both inputs
//! of an addition), and scaling it in place would clip it twice.

use kiln_core::{no_grad, DType, Tensor};

/// The `norm_type`-norm of one tensor, computed in f64.
fn tensor_norm(t: &Tensor, norm_type: f64) -> f64 {
    let a = t.to_dtype(DType::F64).abs();
    if norm_type == f64::INFINITY {
        a.max_all().item::<f64>()
    } else if norm_type == f64::NEG_INFINITY {
        a.min_all().item::<f64>()
    } else if norm_type == 0.0 {
        a.ne_scalar(0.0)
            .to_dtype(DType::F64)
            .sum_all()
            .item::<f64>()
    } else if norm_type == 1.0 {
        a.sum_all().item::<f64>()
    } else if norm_type == 2.0 {
        a.square().sum_all().item::<f64>().sqrt()
    } else {
        a.pow_scalar(norm_type)
            .sum_all()
            .item::<f64>()
            .powf(1.0 / norm_type)
    }
}

/// The `norm_type`-norm of a list of numbers.
fn vector_norm(xs: &[f64], norm_type: f64) -> f64 {
    if norm_type == f64::INFINITY {
        xs.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x.abs()))
    } else if norm_type == f64::NEG_INFINITY {
        xs.iter().fold(f64::INFINITY, |m, &x| m.min(x.abs()))
    } else if norm_type == 0.0 {
        xs.iter().filter(|x| **x != 0.0).count() as f64
    } else {
        xs.iter()
            .map(|x| x.abs().powf(norm_type))
            .sum::<f64>()
            .powf(1.0 / norm_type)
    }
}

/// The total gradient norm of `params` (those with a gradient), as if all gradients were
/// concatenated into one vector: the norm of the per-tensor norms, like PyTorch. `norm_type`
/// is any p ≥ 0 or `f64::INFINITY`. Zero when no parameter has a gradient.
pub fn grad_norm(params: &[Tensor], norm_type: f64) -> f64 {
    no_grad(|| {
        let norms: Vec<f64> = params
            .iter()
            .filter_map(|p| p.grad())
            .map(|g| tensor_norm(&g, norm_type))
            .collect();
        if norms.is_empty() {
            0.0
        } else {
            vector_norm(&norms, norm_type)
        }
    })
}

/// Scales the gradients of `params` so their total `norm_type`-norm is at most `max_norm`,
/// and returns the total norm before clipping (`torch.nn.utils.clip_grad_norm_`): gradients
/// are multiplied by `max_norm / (total + 1e-6)` when that is below 1. A non-finite total
/// (NaN or infinite gradients) is returned as is; check it if you want to skip such steps.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64, norm_type: f64) -> f64 {
    let total = grad_norm(params, norm_type);
    let clip_coef = max_norm / (total + 1e-6);
    // PyTorch multiplies by min(clip_coef, 1) unconditionally; multiplying by 1 changes
    // nothing, and a NaN coefficient propagates the same way either way.
    if clip_coef < 1.0 || clip_coef.is_nan() {
        no_grad(|| {
            for p in params {
                if let Some(g) = p.grad() {
                    p.set_grad(Some(g.mul_scalar(clip_coef)));
                }
            }
        });
    }
    total
}

/// Clamps every gradient element of `params` to `[-clip_value, clip_value]`
/// (`torch.nn.utils.clip_grad_value_`).
pub fn clip_grad_value(params: &[Tensor], clip_value: f64) {
    let c = clip_value.abs();
    no_grad(|| {
        for p in params {
            if let Some(g) = p.grad() {
                p.set_grad(Some(g.clamp(-c, c)));
            }
        }
    });
}
