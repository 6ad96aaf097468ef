//! A small CNN on the bundled 8×8 digits, trained with the `Trainer` instead of a hand-written
//! loop: `fit` with a validation split, a cosine learning-rate schedule
//! (`LrSchedulerCallback`), `EarlyStopping` that restores the best weights, `ModelCheckpoint`
//! (`last/` and `best/` checkpoint directories) and `TensorBoardCallback`, then
//! `trainer.evaluate` on the held-out test split — and a reload of the best checkpoint into a
//! fresh model to show that the saved weights give the same test accuracy.
//!
//! ```text
//! cargo run --release --example digits_cnn
//! tensorboard --logdir runs/digits_cnn      # optional: the loss / accuracy / lr curves
//! ```
//!
//! Output goes to `runs/digits_cnn/<unix time>/` under the current directory.

use kiln::data::digits;
use kiln::nn::optim::lr_scheduler::CosineAnnealingLR;
use kiln::prelude::*;
use kiln::train::callbacks::{
    EarlyStopping, LrSchedulerCallback, Mode, ModelCheckpoint, StepInterval, TensorBoardCallback,
};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// `[N, 1, 8, 8]` → two 3×3 convolutions → 2×2 max-pool → `[N, 64·4·4]` → 128 → 10 logits.
fn cnn() -> Sequential {
    let conv = |cin, cout| Conv2d::with_config(cin, cout, 3, Conv2dConfig::default().padding(1));
    Sequential::new()
        .append(conv(1, 32))
        .append(ReLU::new())
        .append(conv(32, 64))
        .append(ReLU::new())
        .append(MaxPool2d::new(2))
        .append(Flatten::new())
        .append(Dropout::new(0.25))
        .append(Linear::new(64 * 4 * 4, 128))
        .append(ReLU::new())
        .append(Dropout::new(0.25))
        .append(Linear::new(128, digits::NUM_CLASSES))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    manual_seed(0);
    let (train_all, test) = digits::default_split();
    // Hold out 15% of the training split for validation; the test split is only used once.
    let (train, val) = train_all.train_test_split(0.15, 1);
    println!(
        "{} train / {} validation / {} test digits",
        train.len(),
        val.len(),
        test.len()
    );
    // image_dataset(): samples are (f32 [1, 8, 8], i64 label).
    let train_loader = DataLoader::new(train.image_dataset(), 32)
        .shuffle(true)
        .seed(0);
    let val_loader = DataLoader::new(val.image_dataset(), 256);
    let test_loader = DataLoader::new(test.image_dataset(), 256);

    let model = cnn();
    let epochs = 15;
    let mut opt = Adam::new(model.parameters(), 2e-3);
    let run_dir = std::path::Path::new("runs/digits_cnn").join(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)?
            .as_secs()
            .to_string(),
    );
    println!(
        "CNN with {} parameters; logs and checkpoints in {}",
        model.num_parameters(),
        run_dir.display()
    );

    // Defaults: cross-entropy loss and the accuracy metric; epoch lines on stderr (a progress
    // bar on a terminal).
    let mut trainer = Trainer::new()
        .callback(LrSchedulerCallback::new(
            CosineAnnealingLR::new(&mut opt, epochs, 1e-5),
            StepInterval::Epoch,
        ))
        .callback(EarlyStopping::new("val_loss", Mode::Min, 4).restore_best_weights(true))
        .callback(
            ModelCheckpoint::new(run_dir.join("checkpoints")).monitor("val_accuracy", Mode::Max),
        )
        .callback(TensorBoardCallback::new(&run_dir).every_n_steps(10));
    let history = trainer.fit(&model, &mut opt, &train_loader, Some(&val_loader), epochs)?;
    let val_acc = history.get("val_accuracy");
    println!(
        "trained {} epochs; best validation accuracy {:.2}%",
        history.epochs.len(),
        100.0 * val_acc.iter().cloned().fold(0.0, f64::max)
    );

    // `evaluate` runs in eval mode (dropout off) without gradients.
    let logs = trainer.evaluate(&model, &test_loader);
    println!(
        "test: loss {:.4}  accuracy {:.2}% (weights of the lowest val_loss epoch)",
        logs["loss"],
        100.0 * logs["accuracy"]
    );

    // The best-val_accuracy checkpoint, loaded into a freshly initialized model.
    let best = kiln::train::checkpoint::load(&run_dir.join("checkpoints/best"))?;
    let reloaded = cnn();
    reloaded.load_state_dict(&best.model, true)?;
    let logs = trainer.evaluate(&reloaded, &test_loader);
    println!(
        "test: loss {:.4}  accuracy {:.2}% (checkpoints/best, from epoch {})  [{:.1}s]",
        logs["loss"],
        100.0 * logs["accuracy"],
        best.snapshot.epochs_done,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
