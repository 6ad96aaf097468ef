//! Optimizer updates as graph primitives. A traced `optimizer.step()` records one
//! [`Op::AdamStep`] per parameter, which runs the eager fused kernel
//! ([`crate::cpu::fused_optim`]) when the graph runs, instead of ~15 tensor ops that the
//! graph's elementwise interpreter ran 3–6× slower than that kernel (each of its steps is a
//! pass over a tile, so the divisions and the square root never overlap the rest).
//!
//! The op's value is the updated parameter (the executor writes it into the parameter in
//! place); the moments are written in place as it runs, the way a store-fused program writes
//! state (see [`Op::writes_args`]), and the trace records them as updated by the op.

use super::{dispatch, Op};
pub use crate::cpu::fused_optim::AdamHyper;
use crate::cpu::fused_optim::{self, AdamStep};
use crate::dtype::DType;
use crate::tensor::Tensor;

/// Operand positions of [`Op::AdamStep`]: parameter, gradient, first and second moments,
/// the step count after this update's increment and the learning rate (0-d f64), then the
/// AMSGrad maximum.
pub mod adam_args {
    /// The parameter.
    pub const PARAM: usize = 0;
    /// Its gradient.
    pub const GRAD: usize = 1;
    /// First moment (written in place).
    pub const EXP_AVG: usize = 2;
    /// Second moment (written in place).
    pub const EXP_AVG_SQ: usize = 3;
    /// Step count, 0-d f64, already incremented for this update.
    pub const STEP: usize = 4;
    /// Learning rate, 0-d f64.
    pub const LR: usize = 5;
    /// Maximum of past second moments (AMSGrad only; written in place).
    pub const MAX_EXP_AVG_SQ: usize = 6;
}

impl AdamHyper {
    /// Operand positions [`Op::AdamStep`] writes in place.
    pub fn written_args(&self) -> &'static [usize] {
        use adam_args::*;
        if self.amsgrad {
            &[EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ]
        } else {
            &[EXP_AVG, EXP_AVG_SQ]
        }
    }

    /// Number of operands of [`Op::AdamStep`].
    pub fn arity(&self) -> usize {
        if self.amsgrad {
            7
        } else {
            6
        }
    }
}

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

/// The kernel of [`Op::AdamStep`] when the graph runs: the parameter's update is written
/// into `out` (the parameter itself when the executor runs it in place, else a copy of it).
pub(crate) fn adam_into(h: &AdamHyper, inputs: &[&Tensor], out: &Tensor) {
    use adam_args::*;
    let p = inputs[PARAM];
    if !(out.shares_storage(p) && out.layout() == p.layout()) {
        crate::cpu::copy_into(out, p);
    }
    let settings = AdamStep {
        hyper: *h,
        lr: scalar_f64(inputs[LR]),
        step: scalar_f64(inputs[STEP]),
    };
    let grad = if inputs[GRAD].is_contiguous() {
        inputs[GRAD].clone()
    } else {
        inputs[GRAD].contiguous()
    };
    let done = fused_optim::adam_step(
        out,
        &grad,
        inputs[EXP_AVG],
        inputs[EXP_AVG_SQ],
        h.amsgrad.then(|| inputs[MAX_EXP_AVG_SQ]),
        &settings,
    );
    assert!(
        done,
        "adam_step: parameter {:?} {}, its gradient and moments must be dense, of one dtype \
         and not share storage",
        out.shape(),
        out.dtype()
    );
}

/// The value of a one-element f64 tensor, read in place (`item` copies it out through a
/// vector, and the executor allocates nothing per call).
fn scalar_f64(t: &Tensor) -> f64 {
    let guard = t.storage().read();
    let data = <f64 as crate::storage::StorageElement>::slice(&guard)
        .unwrap_or_else(|| panic!("adam_step: step and lr must be f64, got {}", t.dtype()));
    data[t.layout().offset]
}
