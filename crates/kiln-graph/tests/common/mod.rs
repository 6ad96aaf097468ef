//! Helpers the compile tests share: the training step they compile (the same code runs
//! eagerly), copying weights between two model instances, and a relative comparison.

#![allow(dead_code)] // each test file uses its own subset

use kiln_core::nn::functional as F;
use kiln_core::{no_grad, DType, Tensor};
use kiln_nn::layers::{CausalDecoderBlock, Embedding, LayerNorm, Linear};
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

/// The benchmark GPT's architecture at a small size: 32-token vocabulary, context 8, width
/// 16, two 2-head decoder blocks.
#[derive(kiln_nn::Module)]
pub struct TinyGpt {
    tok: Embedding,
    pos: Embedding,
    blocks: Vec<CausalDecoderBlock>,
    ln: LayerNorm,
    head: Linear,
}

impl TinyGpt {
    /// A freshly initialized model.
    pub fn new() -> TinyGpt {
        TinyGpt {
            tok: Embedding::new(32, 16),
            pos: Embedding::new(8, 16),
            blocks: (0..2).map(|_| CausalDecoderBlock::new(16, 2)).collect(),
            ln: LayerNorm::new(16),
            head: Linear::new(16, 32),
        }
    }
}

impl Module for TinyGpt {
    fn forward(&self, idx: &Tensor) -> Tensor {
        let positions = Tensor::arange(0.0, idx.size(1) as f64, 1.0, DType::I64);
        let mut x = &self.tok.forward(idx) + &self.pos.forward(&positions);
        for b in &self.blocks {
            x = b.forward(&x);
        }
        self.head.forward(&self.ln.forward(&x))
    }
}
