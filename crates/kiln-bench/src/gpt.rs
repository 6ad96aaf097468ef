//! GPT training step: token `Embedding(256, 256)` + position `Embedding(128, 256)`, 4 pre-norm
//! [`CausalDecoderBlock`]s (`x + MHA(ln1(x))` with a causal mask, `x + MLP(ln2(x))` with
//! `Linear(256, 1024) → GELU → Linear(1024, 256)`; PyTorch's `MultiheadAttention` layout with
//! `in_proj` and `out_proj` biases, no dropout), final `LayerNorm` and `Linear(256, 256)` head;
//! AdamW (lr 3e-4, PyTorch's default weight decay 0.01); random token batch `[16, 128]` over a
//! 256-token vocabulary with random targets; loss `cross_entropy` over logits reshaped to
//! `[-1, 256]`; 10 timed steps.

use crate::{train, Report, Selection};
use kiln::prelude::*;

/// Vocabulary size.
const VOCAB: usize = 256;
/// Context length.
const T: usize = 128;
/// Model width.
const D: usize = 256;
/// Attention heads.
const HEADS: usize = 4;
/// Decoder blocks.
const LAYERS: usize = 4;
/// Batch size.
const BATCH: usize = 16;
/// Timed steps.
const ITERS: usize = 10;

/// Keys this workload reports.
pub const KEYS: &[&str] = &["gpt_train_step_ms"];

/// The benchmark GPT.
#[derive(Module)]
pub struct Gpt {
    tok: Embedding,
    pos: Embedding,
    blocks: Vec<CausalDecoderBlock>,
    ln: LayerNorm,
    head: Linear,
}

impl Gpt {
    /// PyTorch's default initialization of every layer.
    pub fn new() -> Gpt {
        Gpt {
            tok: Embedding::new(VOCAB, D),
            pos: Embedding::new(T, D),
            blocks: (0..LAYERS)
                .map(|_| CausalDecoderBlock::new(D, HEADS))
                .collect(),
            ln: LayerNorm::new(D),
            head: Linear::new(D, VOCAB),
        }
    }
}

impl Default for Gpt {
    fn default() -> Self {
        Gpt::new()
    }
}

impl Module for Gpt {
    /// i64 token ids `[batch, t]` → logits `[batch, t, vocab]`.
    fn forward(&self, idx: &Tensor) -> Tensor {
        let positions = Tensor::arange(0.0, idx.size(1) as f64, 1.0, DType::I64);
        let mut x = &self.tok.forward(idx) + &self.pos.forward(&positions);
        for block in &self.blocks {
            x = block.forward(&x);
        }
        self.head.forward(&self.ln.forward(&x))
    }
}

/// Runs the training step if selected.
pub fn run(sel: &Selection, out: &mut Report) {
    if !sel.wants(KEYS[0]) {
        return;
    }
    let gpt = Gpt::new();
    let mut opt = AdamW::new(gpt.parameters(), 3e-4);
    let idx = Tensor::randint(0, VOCAB as i64, [BATCH, T]);
    let tgt = Tensor::randint(0, VOCAB as i64, [BATCH, T]).reshape([-1]);
    let ms = train::step_ms(
        |x| gpt.forward(x).reshape([-1, VOCAB as i64]),
        &idx,
        &tgt,
        &mut opt,
        ITERS,
    );
    out.push(KEYS[0], ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_parameters_as_the_pytorch_gpt() {
        let gpt = Gpt::new();
        // sum(p.numel() for p in GPT().parameters()) and len(...) of the PyTorch model.
        assert_eq!(gpt.num_parameters(), 3_323_648);
        assert_eq!(gpt.parameters().len(), 54);
        let keys: Vec<String> = gpt.state_dict().keys().map(String::from).collect();
        assert!(keys.iter().any(|k| k == "blocks.0.attn.in_proj_bias"));
        assert!(keys.iter().any(|k| k == "blocks.3.mlp.2.weight"));
    }
}
