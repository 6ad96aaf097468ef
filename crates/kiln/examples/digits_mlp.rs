//! The eager training loop written by hand: a `#[derive(Module)]` MLP classifies the bundled
//! 8×8 handwritten digits (UCI; 1,438 train / 359 test samples).
//!
//! Each epoch is the PyTorch loop, line for line — `zero_grad`, forward, `cross_entropy`,
//! `backward`, `step` — over a shuffled, seeded `DataLoader`; then test accuracy is computed
//! in eval mode under `no_grad` by arg-max over the logits.
//!
//! ```text
//! cargo run --release --example digits_mlp
//! ```

use kiln::data::digits;
use kiln::prelude::*;
use std::time::Instant;

/// 64 pixels → 128 → 64 → 10 class logits, with dropout while training.
#[derive(Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    dropout: Dropout,
}

impl Mlp {
    fn new() -> Mlp {
        Mlp {
            fc1: Linear::new(digits::NUM_FEATURES, 128),
            fc2: Linear::new(128, 64),
            fc3: Linear::new(64, digits::NUM_CLASSES),
            dropout: Dropout::new(0.1),
        }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.dropout.forward(&self.fc1.forward(x).relu());
        let x = self.dropout.forward(&self.fc2.forward(&x).relu());
        self.fc3.forward(&x)
    }
}

/// Fraction of rows whose arg-max logit is the label.
fn accuracy(logits: &Tensor, labels: &Tensor) -> f64 {
    logits
        .argmax(-1, false)
        .eq(labels)
        .to_dtype(DType::F64)
        .mean_all()
        .item::<f64>()
}

fn main() {
    let start = Instant::now();
    manual_seed(0);
    let (train, test) = digits::default_split();
    // x: f32 [batch, 64] in [0, 1]; y: i64 [batch].
    let loader = DataLoader::new(train.dataset(), 32).shuffle(true).seed(0);

    let model = Mlp::new();
    let mut opt = Adam::new(model.parameters(), 2e-3);
    println!(
        "MLP with {} parameters; {} train / {} test digits, {} batches per epoch",
        model.num_parameters(),
        train.len(),
        test.len(),
        loader.len()
    );

    let epochs = 20;
    for epoch in 1..=epochs {
        model.train();
        let (mut total, mut seen) = (0.0, 0);
        // `&loader` runs the loader's next epoch: a fresh permutation fixed by (seed, epoch).
        for (x, y) in &loader {
            opt.zero_grad();
            let loss = F::cross_entropy(&model.forward(&x), &y);
            loss.backward();
            opt.step();
            total += loss.item::<f64>() * y.size(0) as f64;
            seen += y.size(0);
        }
        println!("epoch {epoch:2}/{epochs}  loss {:.4}", total / seen as f64);
    }

    model.eval();
    let test_acc = no_grad(|| accuracy(&model.forward(test.features()), test.labels()));
    println!(
        "test accuracy {:.2}% ({} samples)  [{:.1}s]",
        100.0 * test_acc,
        test.len(),
        start.elapsed().as_secs_f64()
    );
}
