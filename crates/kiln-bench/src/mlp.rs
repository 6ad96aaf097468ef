//! MLP training step on MNIST-shaped inputs: `Flatten → Linear(784, 512) → ReLU →
//! Linear(512, 512) → ReLU → Linear(512, 10)`, Adam (lr 1e-3), a batch of 128 `randn`
//! `[128, 1, 28, 28]` images with random labels in `0..10`; 30 timed steps.

use crate::{train, Report, Selection};
use kiln::prelude::*;

/// Batch size.
const BATCH: usize = 128;
/// Timed steps.
const ITERS: usize = 30;

/// Keys this workload reports.
pub const KEYS: &[&str] = &["mlp_train_step_ms"];

/// The benchmark MLP (also used by the inference workload).
pub fn model() -> Sequential {
    layers(Sequential::new().append(Flatten::new()))
}

/// The same MLP on `[N, 784]` rows, with no flatten: the model the serving and ONNX
/// benchmarks give Kiln and their peers.
pub fn dense() -> Sequential {
    layers(Sequential::new())
}

/// `Linear(784, 512) → ReLU → Linear(512, 512) → ReLU → Linear(512, 10)` after `first`.
fn layers(first: Sequential) -> Sequential {
    first
        .append(Linear::new(784, 512))
        .append(ReLU::new())
        .append(Linear::new(512, 512))
        .append(ReLU::new())
        .append(Linear::new(512, 10))
}

/// Runs the training step if selected.
pub fn run(sel: &Selection, out: &mut Report) {
    if !sel.wants(KEYS[0]) {
        return;
    }
    let mlp = model();
    let xs = Tensor::randn([BATCH, 1, 28, 28], DType::F32);
    let ys = Tensor::randint(0, 10, [BATCH]);
    let mut opt = Adam::new(mlp.parameters(), 1e-3);
    let ms = train::step_ms(|x| mlp.forward(x), &xs, &ys, &mut opt, ITERS);
    out.push(KEYS[0], ms);
}
