//! Recording optimizer updates as graph primitives: a traced `optimizer.step()` records one
//! [`Op::AdamStep`] per parameter (the op, its operands and its kernel are declared in
//! `kiln_kernels::ops::optim`, re-exported here).

use super::{dispatch, Op};
use crate::dtype::DType;
use crate::tensor::Tensor;
pub use kiln_kernels::ops::optim::*;

/// Records one Adam/AdamW update of `p` while tracing: the step count is incremented (a
/// traced in-place add), then `p ← AdamStep(p, grad, m, v, step, lr[, max_v])` with the
/// moments written in place. Returns `false`, recording nothing, when the op does not apply
/// (not tracing, a dtype other than f32/f64, mismatched or non-dense operands, or moments
/// that are not plain captured tensors): the caller then records its composite update.
#[allow(clippy::too_many_arguments)]
pub fn trace_adam(
    p: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    max_exp_avg_sq: Option<&Tensor>,
    step: &Tensor,
    lr: &Tensor,
    h: &AdamHyper,
) -> bool {
    if !crate::trace::is_tracing() || h.amsgrad != max_exp_avg_sq.is_some() {
        return false;
    }
    let dt = p.dtype();
    let mut moments = vec![exp_avg, exp_avg_sq];
    moments.extend(max_exp_avg_sq);
    let dense = moments
        .iter()
        .chain([&p, &grad])
        .all(|t| t.dtype() == dt && t.shape() == p.shape() && t.is_contiguous());
    let scalars = [step, lr]
        .iter()
        .all(|t| t.dtype() == DType::F64 && t.numel() == 1);
    if !matches!(dt, DType::F32 | DType::F64)
        || !dense
        || !scalars
        || !moments.iter().all(|m| crate::trace::can_store_into(m))
    {
        return false;
    }
    crate::autograd::no_grad(|| {
        step.add_scalar_(1.0);
        let mut args = vec![p, grad, exp_avg, exp_avg_sq, step, lr];
        args.extend(max_exp_avg_sq);
        let updated = dispatch(Op::AdamStep(*h), &args);
        p.copy_(&updated);
    });
    for m in moments {
        crate::trace::mark_stored(m);
    }
    true
}
