//! The training step every `*_train_step_ms` workload times, written as PyTorch's
//! `train_step_fn`: `zero_grad` (gradients set to none), forward, `cross_entropy`, `backward`,
//! `step`, with the median over `iters` timed steps after 3 warm-up steps.

use crate::timing::bench;
use kiln::nn::optim::Optimizer;
use kiln::prelude::F;
use kiln::Tensor;

/// Warm-up steps before timing (the reference's default).
pub const WARM: usize = 3;

/// Median milliseconds of one full training step of `forward` (`xs` → logits) against the
/// class targets `ys`.
pub fn step_ms(
    forward: impl Fn(&Tensor) -> Tensor,
    xs: &Tensor,
    ys: &Tensor,
    opt: &mut impl Optimizer,
    iters: usize,
) -> f64 {
    let secs = bench(WARM, iters, || step(&forward, xs, ys, opt));
    secs * 1e3
}

/// One training step (zero_grad, forward, cross-entropy, backward, update) returning the loss:
/// what the eager workloads time and the compiled ones trace.
pub fn step(
    forward: impl Fn(&Tensor) -> Tensor,
    xs: &Tensor,
    ys: &Tensor,
    opt: &mut (impl Optimizer + ?Sized),
) -> Tensor {
    opt.zero_grad();
    let loss = F::cross_entropy(&forward(xs), ys);
    loss.backward();
    opt.step();
    loss
}
