//! Eager fused optimizer updates over tensors: one in-place pass over each parameter and its
//! state (the kernels of `kiln_kernels::cpu::fused_optim`). Each function returns `false`,
//! changing nothing, where the fused path does not apply — while tracing, with gradient
//! recording on for a tensor that requires grad, or where the kernel declines (non-dense or
//! aliased tensors, dtypes other than f32/f64) — and the caller runs its composite update.

use crate::autograd::is_grad_enabled;
use crate::tensor::Tensor;
use kiln_kernels::cpu::fused_optim as kernel;
pub use kiln_kernels::cpu::fused_optim::{AdagradStep, AdamHyper, AdamStep, RmsPropStep, SgdStep};

/// True when an eager fused update may run on these tensors: not tracing (a traced step
/// records ops instead), and no gradient recording through any of them.
fn may_fuse<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> bool {
    if crate::trace::is_tracing() {
        return false;
    }
    !(is_grad_enabled() && tensors.into_iter().any(|t| t.requires_grad()))
}

/// One Adam/AdamW update of `param` in place, with `exp_avg`, `exp_avg_sq` (and
/// `max_exp_avg_sq` for AMSGrad) updated in place too.
pub fn adam_step(
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    max_exp_avg_sq: Option<&Tensor>,
    h: &AdamStep,
) -> bool {
    may_fuse(
        [param, grad, exp_avg, exp_avg_sq]
            .into_iter()
            .chain(max_exp_avg_sq),
    ) && kernel::adam_step(
        param.operand(),
        grad.operand(),
        exp_avg.operand(),
        exp_avg_sq.operand(),
        max_exp_avg_sq.map(Tensor::operand),
        h,
    )
}

/// One SGD update of `param` in place. With momentum, `momentum_buffer` is required: when
/// `first` it is overwritten with the (decayed) gradient, PyTorch's first-step
/// initialization, else it is decayed and accumulated.
pub fn sgd_step(
    param: &Tensor,
    grad: &Tensor,
    momentum_buffer: Option<&Tensor>,
    first: bool,
    h: &SgdStep,
) -> bool {
    let buffer = momentum_buffer.filter(|_| h.momentum != 0.0);
    may_fuse([param, grad].into_iter().chain(buffer))
        && kernel::sgd_step(
            param.operand(),
            grad.operand(),
            momentum_buffer.map(Tensor::operand),
            first,
            h,
        )
}

/// One RMSprop update of `param` in place, with `square_avg`, the momentum buffer (required
/// when `h.momentum > 0`) and `grad_avg` (pass it for the centered variant) updated in place.
pub fn rmsprop_step(
    param: &Tensor,
    grad: &Tensor,
    square_avg: &Tensor,
    momentum_buffer: Option<&Tensor>,
    grad_avg: Option<&Tensor>,
    h: &RmsPropStep,
) -> bool {
    let buffer = momentum_buffer.filter(|_| h.momentum > 0.0);
    let state = buffer.into_iter().chain(grad_avg);
    may_fuse([param, grad, square_avg].into_iter().chain(state))
        && kernel::rmsprop_step(
            param.operand(),
            grad.operand(),
            square_avg.operand(),
            momentum_buffer.map(Tensor::operand),
            grad_avg.map(Tensor::operand),
            h,
        )
}

/// One Adagrad update of `param` in place, with the squared-gradient `sum` updated in place.
pub fn adagrad_step(param: &Tensor, grad: &Tensor, sum: &Tensor, h: &AdagradStep) -> bool {
    may_fuse([param, grad, sum])
        && kernel::adagrad_step(param.operand(), grad.operand(), sum.operand(), h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::no_grad;
    use kiln_kernels::cpu::fused_optim::adam_chunk;
    use kiln_kernels::cpu::threads;

    const SGD: SgdStep = SgdStep {
        lr: 0.5,
        momentum: 0.0,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        maximize: false,
    };

    #[test]
    fn plain_sgd_updates_in_place_and_bumps_the_version() {
        let p = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3]);
        let g = Tensor::from_vec(vec![2.0f32, -2.0, 0.0], [3]);
        let v0 = p.version();
        assert!(sgd_step(&p, &g, None, false, &SGD));
        assert_eq!(p.to_vec::<f32>(), [0.0, 3.0, 3.0]);
        assert!(p.version() > v0);
    }

    #[test]
    fn large_tensors_split_across_the_pool_match_the_inline_loop() {
        let n = 5 * threads::GRAIN + 17;
        let p = Tensor::randn([n], DType::F64);
        let g = Tensor::randn([n], DType::F64);
        let step = AdamStep {
            hyper: AdamHyper::default(),
            lr: 0.1,
            step: 1.0,
        };
        let (m, v) = (p.zeros_like(), p.zeros_like());
        let want: Vec<f64> = {
            let (pv, gv) = (p.to_vec::<f64>(), g.to_vec::<f64>());
            let (mut mv, mut vv) = (vec![0.0; n], vec![0.0; n]);
            let mut pv2 = pv.clone();
            adam_chunk::<f64>(&step)(&mut [&mut pv2[..], &mut mv[..], &mut vv[..]], &gv);
            pv2
        };
        assert!(adam_step(&p, &g, &m, &v, None, &step));
        assert_eq!(p.to_vec::<f64>(), want);
    }

    #[test]
    fn declines_what_it_cannot_fuse_and_changes_nothing() {
        let p = Tensor::randn([4, 5], DType::F32);
        let before = p.to_vec::<f32>();
        // A transposed (non-dense) gradient.
        let gt = Tensor::randn([5, 4], DType::F32).t();
        assert!(!sgd_step(&p, &gt, None, false, &SGD));
        // Mismatched dtype and unsupported dtype.
        assert!(!sgd_step(&p, &p.to_dtype(DType::F64), None, false, &SGD));
        let h = p.to_dtype(DType::BF16);
        assert!(!sgd_step(&h, &h.ones_like(), None, false, &SGD));
        // The gradient aliasing the parameter (the loop would lock it twice).
        assert!(!sgd_step(&p, &p.detach(), None, false, &SGD));
        // Momentum without a buffer, and a buffer aliasing the parameter.
        let mom = SgdStep {
            momentum: 0.9,
            ..SGD
        };
        let g = p.ones_like();
        assert!(!sgd_step(&p, &g, None, false, &mom));
        assert!(!sgd_step(&p, &g, Some(&p.detach()), false, &mom));
        assert_eq!(p.to_vec::<f32>(), before);
        // Gradient recording on for a parameter that requires grad.
        let w = p.detach().requires_grad_(true);
        assert!(!sgd_step(&w, &g, None, false, &SGD));
        assert!(no_grad(|| sgd_step(&w, &g, None, false, &SGD)));
    }
}
