//! A character-level GPT: a small causal transformer language model (token + position
//! `Embedding`, a stack of `CausalDecoderBlock`s, a final `LayerNorm` and a `Linear` head to
//! the vocabulary) trained on Kiln's own documentation, then sampled from a prompt.
//!
//! Shows: a `#[derive(Module)]` model holding a `Vec` of blocks; seeded random contiguous
//! windows as batches; `AdamW` with two parameter groups (weight decay on matrices only);
//! linear warmup then cosine decay (`lr_scheduler::warmup_then`) stepped per batch; gradient
//! clipping (`clip_grad_norm`); held-out validation loss under `no_grad`; and temperature
//! sampling in eval mode with an explicit random `Generator`.
//!
//! The corpus, `examples/data/corpus.txt` (compiled in with `include_str!`), is
//! `DESIGN.md` plus the doc comments of the workspace's sources; see
//! `examples/data/README.md`. The last 10% of it is held out for validation.
//!
//! ```text
//! cargo run --release --example char_transformer
//! ```

use kiln::nn::optim::lr_scheduler::{warmup_then, CosineAnnealingLR};
use kiln::nn::optim::{clip_grad_norm, AdamWConfig};
use kiln::prelude::*;
use std::collections::BTreeSet;
use std::time::Instant;

const CORPUS: &str = include_str!("data/corpus.txt");

const CONTEXT: usize = 64;
const D_MODEL: usize = 128;
const HEADS: usize = 4;
const LAYERS: usize = 2;
const BATCH: usize = 16;
const STEPS: usize = 400;
const WARMUP: usize = 40;
const LR: f64 = 3e-3;
const PRINT_EVERY: usize = 50;

/// Characters ↔ token ids.
struct Vocab {
    chars: Vec<char>,
}

impl Vocab {
    fn new(text: &str) -> Vocab {
        let set: BTreeSet<char> = text.chars().collect();
        Vocab {
            chars: set.into_iter().collect(),
        }
    }
    fn len(&self) -> usize {
        self.chars.len()
    }
    fn encode(&self, text: &str) -> Vec<i64> {
        text.chars()
            .map(|c| {
                self.chars
                    .binary_search(&c)
                    .expect("character in vocabulary") as i64
            })
            .collect()
    }
    fn decode(&self, ids: &[i64]) -> String {
        ids.iter().map(|&i| self.chars[i as usize]).collect()
    }
}

#[derive(Module)]
struct CharTransformer {
    tok_emb: Embedding,
    pos_emb: Embedding,
    blocks: Vec<CausalDecoderBlock>,
    ln_f: LayerNorm,
    head: Linear,
}

impl CharTransformer {
    fn new(vocab: usize) -> CharTransformer {
        let m = CharTransformer {
            tok_emb: Embedding::new(vocab, D_MODEL),
            pos_emb: Embedding::new(CONTEXT, D_MODEL),
            blocks: (0..LAYERS)
                .map(|_| CausalDecoderBlock::new(D_MODEL, HEADS))
                .collect(),
            ln_f: LayerNorm::new(D_MODEL),
            head: Linear::new(D_MODEL, vocab),
        };
        // N(0, 0.2²) instead of Embedding's N(0, 1) default: trains faster here.
        kiln::nn::init::normal_(&m.tok_emb.weight, 0.0, 0.2);
        kiln::nn::init::normal_(&m.pos_emb.weight, 0.0, 0.2);
        m
    }
}

impl Module for CharTransformer {
    /// i64 token ids `[batch, t]` (t ≤ CONTEXT) → next-token logits `[batch, t, vocab]`.
    fn forward(&self, idx: &Tensor) -> Tensor {
        let t = idx.size(1);
        let positions = Tensor::arange(0.0, t as f64, 1.0, DType::I64);
        // [batch, t, d] + [t, d] broadcasts over the batch.
        let mut x = &self.tok_emb.forward(idx) + &self.pos_emb.forward(&positions);
        for block in &self.blocks {
            x = block.forward(&x);
        }
        self.head.forward(&self.ln_f.forward(&x))
    }
}

/// `BATCH` random windows of `data`: inputs `[BATCH, CONTEXT]` and the same windows shifted by
/// one character as targets.
fn batch(data: &[i64], gen: &mut Generator) -> (Tensor, Tensor) {
    let starts = Tensor::randint_with(0, (data.len() - CONTEXT - 1) as i64, [BATCH], gen);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for s in starts.to_vec::<i64>() {
        let s = s as usize;
        x.extend_from_slice(&data[s..s + CONTEXT]);
        y.extend_from_slice(&data[s + 1..s + CONTEXT + 1]);
    }
    (
        Tensor::from_vec(x, [BATCH, CONTEXT]),
        Tensor::from_vec(y, [BATCH, CONTEXT]),
    )
}

/// Mean next-character cross-entropy (nats) of `logits` `[b, t, v]` against `targets` `[b, t]`.
fn lm_loss(logits: &Tensor, targets: &Tensor) -> Tensor {
    let v = logits.size(-1);
    F::cross_entropy(&logits.reshape([-1, v as i64]), &targets.reshape([-1]))
}

/// Entropy (nats) of the character frequencies: the loss of the best context-free model.
fn unigram_entropy(ids: &[i64], vocab: usize) -> f64 {
    let mut counts = vec![0usize; vocab];
    for &i in ids {
        counts[i as usize] += 1;
    }
    let n = ids.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

/// Continues `prompt` by `n` characters, sampling each from softmax(logits / temperature).
fn generate(
    model: &CharTransformer,
    vocab: &Vocab,
    prompt: &str,
    n: usize,
    temperature: f64,
    gen: &mut Generator,
) -> String {
    model.eval();
    let mut ids = vocab.encode(prompt);
    no_grad(|| {
        for _ in 0..n {
            let window = &ids[ids.len().saturating_sub(CONTEXT)..];
            let t = window.len();
            let input = Tensor::from_slice(window, [1, t]);
            let last = model.forward(&input).narrow(1, t - 1, 1).reshape([-1]);
            let probs = F::softmax(&last.div_scalar(temperature), -1).to_vec::<f32>();
            // Inverse-CDF sampling with one uniform draw.
            let u = Tensor::rand_with([1], DType::F32, gen).item::<f32>();
            let mut acc = 0.0;
            let next = probs
                .iter()
                .position(|&p| {
                    acc += p;
                    u < acc
                })
                .unwrap_or(probs.len() - 1);
            ids.push(next as i64);
        }
    });
    vocab.decode(&ids)
}

fn main() {
    let start = Instant::now();
    manual_seed(0);
    let vocab = Vocab::new(CORPUS);
    let ids = vocab.encode(CORPUS);
    let split = ids.len() * 9 / 10;
    let (train, val) = ids.split_at(split);
    let h1 = unigram_entropy(train, vocab.len());
    println!(
        "corpus: {} bytes, {} characters ({} train / {} validation), vocabulary {}",
        CORPUS.len(),
        ids.len(),
        train.len(),
        val.len(),
        vocab.len()
    );
    println!(
        "baselines: uniform ln({}) = {:.3} nats/char, unigram entropy = {h1:.3} nats/char",
        vocab.len(),
        (vocab.len() as f64).ln()
    );

    let model = CharTransformer::new(vocab.len());
    // Decay matrices (linear and embedding weights); leave biases and norms alone.
    let (decay, no_decay): (Vec<_>, Vec<_>) =
        model.parameters().into_iter().partition(|p| p.rank() >= 2);
    let cfg = AdamWConfig {
        lr: LR,
        betas: (0.9, 0.99),
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::with_groups(vec![
        (decay, cfg),
        (
            no_decay,
            AdamWConfig {
                weight_decay: 0.0,
                ..cfg
            },
        ),
    ]);
    let mut sched = warmup_then(&mut opt, 0.01, WARMUP, |o| {
        CosineAnnealingLR::new(o, STEPS - WARMUP, LR / 10.0)
    });
    println!(
        "model: {LAYERS} blocks, d_model {D_MODEL}, {HEADS} heads, context {CONTEXT}, {} parameters; \
         {STEPS} steps of {BATCH}×{CONTEXT} characters",
        model.num_parameters()
    );

    let mut gen = Generator::new(0);
    // A fixed set of validation windows, so the printed values are comparable.
    let val_batches: Vec<(Tensor, Tensor)> = (0..8).map(|_| batch(val, &mut gen)).collect();
    let val_loss = |m: &CharTransformer| {
        m.eval();
        let total: f64 = no_grad(|| {
            val_batches
                .iter()
                .map(|(x, y)| lm_loss(&m.forward(x), y).item::<f64>())
                .sum()
        });
        m.train();
        total / val_batches.len() as f64
    };

    model.train();
    let mut running = 0.0;
    for step in 1..=STEPS {
        let (x, y) = batch(train, &mut gen);
        opt.zero_grad();
        let loss = lm_loss(&model.forward(&x), &y);
        loss.backward();
        let norm = clip_grad_norm(&model.parameters(), 1.0, 2.0);
        opt.step();
        sched.step(&mut opt);
        running += loss.item::<f64>();
        if step % PRINT_EVERY == 0 {
            println!(
                "step {step:4}  train loss {:.3}  val loss {:.3}  (unigram {h1:.3})  grad norm {norm:.2}  lr {:.2e}  [{:.1}s]",
                running / PRINT_EVERY as f64,
                val_loss(&model),
                opt.lr(),
                start.elapsed().as_secs_f64()
            );
            running = 0.0;
        }
    }

    let mut sample_gen = Generator::new(1);
    for (prompt, temperature) in [("The Trainer ", 0.8), ("A tensor ", 0.5)] {
        let text = generate(&model, &vocab, prompt, 240, temperature, &mut sample_gen);
        println!("\n--- sample (temperature {temperature}) ---\n{text}");
    }
    println!("\n[{:.1}s]", start.elapsed().as_secs_f64());
}
