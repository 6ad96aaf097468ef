//! Small CNN training step on CIFAR-shaped inputs: `Conv2d(3, 32, 3, pad 1) → ReLU →
//! MaxPool2d(2) → Conv2d(32, 64, 3, pad 1) → ReLU → MaxPool2d(2) → Flatten →
//! Linear(64·8·8, 128) → ReLU → Linear(128, 10)`, SGD (lr 0.01, momentum 0.9), a batch of 64
//! `randn` `[64, 3, 32, 32]` images with random labels in `0..10`; 20 timed steps.

use crate::{train, Report, Selection};
use kiln::nn::optim::SgdConfig;
use kiln::prelude::*;

/// Batch size.
const BATCH: usize = 64;
/// Timed steps.
const ITERS: usize = 20;

/// Keys this workload reports.
pub const KEYS: &[&str] = &["cnn_train_step_ms"];

fn conv3x3(cin: usize, cout: usize) -> Conv2d {
    Conv2d::with_config(cin, cout, 3, Conv2dConfig::default().padding(1))
}

/// The benchmark CNN.
pub fn model() -> Sequential {
    Sequential::new()
        .append(conv3x3(3, 32))
        .append(ReLU::new())
        .append(MaxPool2d::new(2))
        .append(conv3x3(32, 64))
        .append(ReLU::new())
        .append(MaxPool2d::new(2))
        .append(Flatten::new())
        .append(Linear::new(64 * 8 * 8, 128))
        .append(ReLU::new())
        .append(Linear::new(128, 10))
}

/// Runs the training step if selected.
pub fn run(sel: &Selection, out: &mut Report) {
    if !sel.wants(KEYS[0]) {
        return;
    }
    let cnn = model();
    let xs = Tensor::randn([BATCH, 3, 32, 32], DType::F32);
    let ys = Tensor::randint(0, 10, [BATCH]);
    let mut opt = Sgd::with_config(
        cnn.parameters(),
        SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            ..SgdConfig::default()
        },
    );
    let ms = train::step_ms(|x| cnn.forward(x), &xs, &ys, &mut opt, ITERS);
    out.push(KEYS[0], ms);
}
