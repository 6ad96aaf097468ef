//! A transformer classifier with a padding mask, trained by the `Trainer`: a model of two
//! inputs (token ids and a key-padding mask) through `MultiInput`.
//!
//! The task: is a line of text English prose, Rust code or Python code? The lines are real:
//! the prose is the guide corpus of `char_transformer` (`examples/data/corpus.txt`), the code
//! is this workspace's own layer sources and Python tools (comment lines removed), all compiled
//! in with `include_str!`. Lines have different lengths, so each batch is padded to 48 bytes and
//! the mask tells attention and the mean-pooling which positions are padding.
//!
//! Shows: `impl MultiInput` for a model of several inputs; `MultiInputDataset` and the default
//! collate; `Trainer::fit` / `evaluate` with such a model; `summary` of a multi-input model.
//!
//! ```text
//! cargo run --release --example text_classifier
//! ```

use kiln::data::{random_split, Dataset, MultiInputDataset};
use kiln::nn::layers::TransformerEncoderLayerConfig;
use kiln::prelude::*;
use std::time::Instant;

const PROSE: &str = include_str!("data/corpus.txt");
const RUST: &[&str] = &[
    include_str!("../../kiln-nn/src/layers/attention.rs"),
    include_str!("../../kiln-nn/src/layers/conv.rs"),
    include_str!("../../kiln-nn/src/layers/norm.rs"),
    include_str!("../../kiln-nn/src/layers/recurrent.rs"),
];
const PYTHON: &[&str] = &[
    include_str!("../../../bench/torch_reference.py"),
    include_str!("../../../bench/jax_mlp_step.py"),
    include_str!("../../../tools/check_layers.py"),
];
const CLASSES: [&str; 3] = ["prose", "rust", "python"];

/// Bytes per line: longer lines are cut, shorter ones padded.
const LEN: usize = 48;
const D_MODEL: usize = 64;
/// Token 0 is padding; bytes ≥ 128 (non-ASCII) share token 127.
const VOCAB: usize = 128;

/// Token embeddings plus learned positions, one encoder layer that ignores padded keys, a
/// mean over the real tokens, and a linear head.
#[derive(Module)]
struct LineClassifier {
    tokens: Embedding,
    positions: Embedding,
    encoder: TransformerEncoderLayer,
    head: Linear,
}

impl LineClassifier {
    fn new() -> LineClassifier {
        let config = TransformerEncoderLayerConfig::default()
            .batch_first(true)
            .dim_feedforward(128)
            .dropout(0.2);
        LineClassifier {
            tokens: Embedding::new(VOCAB, D_MODEL),
            positions: Embedding::new(LEN, D_MODEL),
            encoder: TransformerEncoderLayer::with_config(D_MODEL, 4, config),
            head: Linear::new(D_MODEL, CLASSES.len()),
        }
    }
}

impl MultiInput for LineClassifier {
    /// `tokens` i64 `[N, LEN]` and `padding` bool `[N, LEN]` (true at padding) → logits `[N, 3]`.
    fn forward_inputs(&self, inputs: &[Tensor]) -> Tensor {
        let [tokens, padding] = inputs else {
            panic!(
                "LineClassifier takes (tokens, padding mask), got {} inputs",
                inputs.len()
            );
        };
        let positions = Tensor::arange(0.0, LEN as f64, 1.0, DType::I64);
        let h = &self.tokens.forward(tokens) + &self.positions.forward(&positions);
        let h = self
            .encoder
            .forward_with_mask(&h, None, Some(padding), false);
        // Mean over the real tokens only: padding contributes nothing.
        let real = padding.logical_not().to_dtype(DType::F32).unsqueeze(2); // [N, LEN, 1]
        let pooled = (&h * &real).sum(1, false) / real.sum(1, false);
        self.head.forward(&pooled)
    }

    fn num_inputs(&self) -> Option<usize> {
        Some(2)
    }
}

/// The lines of `text` worth classifying: not blank, not comments, at least 12 bytes.
fn lines<'a>(text: &'a str, comment: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.lines()
        .map(str::trim)
        .filter(move |l| l.len() >= 12 && !l.starts_with(comment) && !l.starts_with("```"))
}

/// Token ids and padding mask of one line.
fn encode(line: &str) -> (Vec<i64>, Vec<bool>) {
    let mut ids: Vec<i64> = line.bytes().take(LEN).map(|b| b.min(127) as i64).collect();
    let real = ids.len();
    ids.resize(LEN, 0);
    let padding = (0..LEN).map(|i| i >= real).collect();
    (ids, padding)
}

/// The same number of lines from each class (the smallest class's count), as one dataset.
fn dataset() -> MultiInputDataset {
    let prose: Vec<&str> = lines(PROSE, "<").collect();
    let rust: Vec<&str> = RUST.iter().flat_map(|t| lines(t, "//")).collect();
    let python: Vec<&str> = PYTHON.iter().flat_map(|t| lines(t, "#")).collect();
    let per_class = prose.len().min(rust.len()).min(python.len());
    let (mut ids, mut mask, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (label, class) in [prose, rust, python].iter().enumerate() {
        // Every k-th line, so each class's sample spans all its files.
        let step = class.len() as f64 / per_class as f64;
        for i in 0..per_class {
            let (t, m) = encode(class[(i as f64 * step) as usize]);
            ids.extend(t);
            mask.extend(m);
            labels.push(label as i64);
        }
    }
    let n = labels.len();
    MultiInputDataset::new(
        vec![
            Tensor::from_vec(ids, [n, LEN]),
            Tensor::from_vec(mask, [n, LEN]),
        ],
        Tensor::from_vec(labels, [n]),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    manual_seed(0);
    let start = Instant::now();
    let data = dataset();
    let n = data.labels().size(0);
    let mut parts = random_split(data, [0.8, 0.2], 0).into_iter();
    let (train, test) = (parts.next().unwrap(), parts.next().unwrap());
    println!(
        "{n} lines ({} per class): {} train, {} test",
        n / 3,
        train.len(),
        test.len()
    );
    let train_loader = DataLoader::new(train, 32).shuffle(true).seed(0);
    let test_loader = DataLoader::new(test.clone(), 256);

    let model = LineClassifier::new();
    let example = [
        Tensor::zeros([1, LEN], DType::I64),
        Tensor::zeros([1, LEN], DType::Bool),
    ];
    println!("{}", kiln::nn::summary(&model, &example));

    let mut opt = AdamW::new(model.parameters(), 2e-3);
    let mut trainer = Trainer::new();
    trainer.fit(&model, &mut opt, &train_loader, None, 6)?;
    let logs = trainer.evaluate(&model, &test_loader);
    println!(
        "test: loss {:.4}, accuracy {:.1}% (chance: 33.3%), {:.1} s",
        logs["loss"],
        100.0 * logs["accuracy"],
        start.elapsed().as_secs_f64()
    );

    // Per-class accuracy on the test lines, from `predict`'s logits.
    let predicted = trainer
        .predict(&model, &test_loader)
        .argmax(1, false)
        .to_vec::<i64>();
    let truth: Vec<i64> = (0..test.len())
        .map(|i| test.get(i).1.item::<i64>())
        .collect();
    for (c, name) in CLASSES.iter().enumerate() {
        let of_class: Vec<usize> = (0..truth.len()).filter(|&i| truth[i] == c as i64).collect();
        let right = of_class
            .iter()
            .filter(|&&i| predicted[i] == c as i64)
            .count();
        println!("{name:>6}: {right}/{} test lines right", of_class.len());
    }
    Ok(())
}
