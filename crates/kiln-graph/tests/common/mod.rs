//! Helpers the compile tests share: the training step they compile (the same code runs
//! eagerly), copying weights between two model instances, and a relative comparison.

#![allow(dead_code)] // each test file uses its own subset

use kiln_core::nn::functional as F;
use kiln_core::{no_grad, Tensor};
use kiln_nn::optim::Optimizer;
use kiln_nn::{Module, ModuleBase};

/// One training step — zero_grad, forward, cross-entropy, backward, update — returning the
/// loss: what every test runs eagerly and inside `compile`.
pub fn train_step(model: &dyn Module, opt: &mut dyn Optimizer, x: &Tensor, y: &Tensor) -> Tensor {
    opt.zero_grad();
    let loss = F::cross_entropy(&model.forward(x), y);
    loss.backward();
    opt.step();
    loss
}

/// Copies `from`'s parameters into `to` (same architecture), so two instances start equal.
pub fn copy_params(from: &dyn ModuleBase, to: &dyn ModuleBase) {
    no_grad(|| {
        for (a, b) in from.parameters().iter().zip(to.parameters()) {
            b.copy_(a);
        }
    });
}

/// Largest elementwise |a − b| / max(|a|, |b|, 1e-6).
pub fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / (1e-6 + x.abs().max(y.abs())))
        .fold(0.0, f64::max)
}
