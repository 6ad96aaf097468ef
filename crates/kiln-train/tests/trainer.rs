//! The training loop end to end on the bundled digits: learning, callbacks, resuming exactly.

use kiln_core::{manual_seed, DType, Tensor};
use kiln_data::{digits, DataLoader, Dataset, Subset, TensorDataset};
use kiln_nn::optim::lr_scheduler::StepLR;
use kiln_nn::optim::{Adam, Optimizer};
use kiln_nn::{Dropout, Flatten, Linear, ModuleBase, ReLU, Sequential};
use kiln_train::callbacks::{
    CsvLogger, EarlyStopping, LrSchedulerCallback, Mode, ModelCheckpoint, StepInterval,
};
use kiln_train::{Metric, ProgressMode, Trainer};

/// The global generator is process-wide (like PyTorch's default generator): tests that seed it
/// and expect exact draws must not interleave.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn mlp() -> Sequential {
    Sequential::new()
        .append(Flatten::new())
        .append(Linear::new(64, 64))
        .append(ReLU::new())
        .append(Dropout::new(0.2))
        .append(Linear::new(64, 10))
}

fn loaders() -> (
    DataLoader<Subset<TensorDataset>>,
    DataLoader<Subset<TensorDataset>>,
) {
    let (train, test) = digits::default_split();
    let (m, n) = (train.len(), test.len());
    let tl = DataLoader::new(Subset::new(train.image_dataset(), (0..m).collect()), 32)
        .shuffle(true)
        .seed(7);
    let vl = DataLoader::new(Subset::new(test.image_dataset(), (0..n).collect()), 128);
    (tl, vl)
}

fn trainer(dir: &std::path::Path, opt: &mut dyn Optimizer) -> Trainer {
    Trainer::new()
        .progress(ProgressMode::Silent)
        .metrics(&[Metric::Accuracy, Metric::TopK(3)])
        .callback(LrSchedulerCallback::new(
            StepLR::new(opt, 1, 0.7),
            StepInterval::Epoch,
        ))
        .callback(
            ModelCheckpoint::new(dir.join("ckpt"))
                .every_epoch(true)
                .monitor("val_accuracy", Mode::Max),
        )
        .callback(CsvLogger::new(dir.join("log.csv")))
}

#[test]
fn fit_learns_digits_and_logs_every_epoch() {
    let _serial = serial();
    manual_seed(1);
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = loaders();
    let model = mlp();
    let mut opt = Adam::new(model.parameters(), 1e-2);
    let mut t = trainer(dir.path(), &mut opt);
    let h = t.fit(&model, &mut opt, &train, Some(&val), 4).unwrap();
    let acc = h.get("val_accuracy");
    assert_eq!(acc.len(), 4);
    assert!(acc[3] > 0.9, "val accuracy {acc:?}");
    assert!(h.get("loss")[3] < h.get("loss")[0]);
    assert!(h.get("val_top3_accuracy")[3] >= acc[3]);
    // StepLR(1, 0.7): lr used in epoch k is 1e-2 · 0.7^k.
    let lrs = h.get("lr");
    for (k, lr) in lrs.iter().enumerate() {
        assert!((lr - 1e-2 * 0.7f64.powi(k as i32)).abs() < 1e-12, "{lrs:?}");
    }
    let csv = std::fs::read_to_string(dir.path().join("log.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    for sub in ["ckpt/last", "ckpt/best", "ckpt/epoch-1", "ckpt/epoch-4"] {
        assert!(
            kiln_train::checkpoint::exists(&dir.path().join(sub)),
            "{sub}"
        );
    }
    // predict gives one row of class scores per validation sample.
    let preds = t.predict(&model, &val);
    assert_eq!(preds.shape(), &[val.dataset().len(), 10]);
}

#[test]
fn resume_from_epoch_two_reproduces_epoch_three_exactly() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = loaders();
    manual_seed(3);
    let model = mlp();
    let mut opt = Adam::new(model.parameters(), 3e-3);
    let full = trainer(dir.path(), &mut opt)
        .fit(&model, &mut opt, &train, Some(&val), 3)
        .unwrap();

    // A different process would start from a different global RNG state: scramble it.
    manual_seed(999);
    let _ = Tensor::rand([17], DType::F32);
    let model2 = mlp();
    let mut opt2 = Adam::new(model2.parameters(), 3e-3);
    let dir2 = tempfile::tempdir().unwrap();
    let mut t2 = trainer(dir2.path(), &mut opt2);
    let done = t2
        .resume_from(&dir.path().join("ckpt/epoch-2"), &model2, &mut opt2)
        .unwrap();
    assert_eq!(done, 2);
    let resumed = t2.fit(&model2, &mut opt2, &train, Some(&val), 3).unwrap();
    assert_eq!(resumed.epochs.len(), 3);
    assert_eq!(
        resumed.epochs[2], full.epochs[2],
        "epoch-3 logs differ after resume"
    );
    let (a, b) = (model.parameters(), model2.parameters());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.to_vec::<f32>(), y.to_vec::<f32>());
    }
}

#[test]
fn early_stopping_stops_and_restores_best_weights() {
    let _serial = serial();
    manual_seed(5);
    let (train, val) = loaders();
    let model = mlp();
    // lr 0 never improves the monitored loss after the first epoch.
    let mut opt = Adam::new(model.parameters(), 0.0);
    let mut t = Trainer::new()
        .progress(ProgressMode::Silent)
        .callback(EarlyStopping::new("val_loss", Mode::Min, 2).restore_best_weights(true));
    let h = t.fit(&model, &mut opt, &train, Some(&val), 10).unwrap();
    assert_eq!(h.epochs.len(), 3, "stops after patience 2");
}

#[test]
fn gradient_accumulation_matches_one_big_batch() {
    let _serial = serial();
    // Two batches of 16 with accumulation 2 take the same SGD step as one batch of 32.
    let (train, _) = digits::default_split();
    let ds = || Subset::new(train.image_dataset(), (0..32).collect());
    let run = |batch: usize, accum: usize| {
        manual_seed(11);
        let model = Sequential::new()
            .append(Flatten::new())
            .append(Linear::new(64, 10));
        let mut opt = kiln_nn::optim::Sgd::new(model.parameters(), 0.5);
        let loader = DataLoader::new(ds(), batch);
        Trainer::new()
            .progress(ProgressMode::Silent)
            .grad_accumulation(accum)
            .fit(&model, &mut opt, &loader, None, 1)
            .unwrap();
        model
            .parameters()
            .iter()
            .flat_map(|p| p.to_vec::<f32>())
            .collect::<Vec<f32>>()
    };
    let (big, acc) = (run(32, 1), run(16, 2));
    let no_step = {
        manual_seed(11);
        let m = Sequential::new()
            .append(Flatten::new())
            .append(Linear::new(64, 10));
        m.parameters()
            .iter()
            .flat_map(|p| p.to_vec::<f32>())
            .collect::<Vec<f32>>()
    };
    assert_ne!(big, no_step, "the step changed nothing");
    for (a, b) in big.iter().zip(&acc) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn empty_training_or_validation_data_is_an_error() {
    let _serial = serial();
    let (train, val) = loaders();
    let (digits_train, _) = digits::default_split();
    let empty = DataLoader::new(Subset::new(digits_train.image_dataset(), vec![]), 8);
    let model = mlp();
    let mut opt = Adam::new(model.parameters(), 1e-3);
    let mut t = Trainer::new().progress(ProgressMode::Silent);
    let e = t.fit(&model, &mut opt, &empty, Some(&val), 1).unwrap_err();
    assert_eq!(e.to_string(), "the training data is empty");
    let e = t
        .fit(&model, &mut opt, &train, Some(&empty), 1)
        .unwrap_err();
    assert_eq!(e.to_string(), "the validation data is empty");
}

#[test]
fn fewer_samples_than_one_batch_with_drop_last_is_named_as_such() {
    let _serial = serial();
    let (train, val) = loaders();
    let (digits_train, _) = digits::default_split();
    let five = || {
        DataLoader::new(
            Subset::new(digits_train.image_dataset(), (0..5).collect()),
            8,
        )
        .drop_last(true)
    };
    let model = mlp();
    let mut opt = Adam::new(model.parameters(), 1e-3);
    let mut t = Trainer::new().progress(ProgressMode::Silent);
    let e = t.fit(&model, &mut opt, &five(), Some(&val), 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the training data has 5 samples, fewer than one batch of 8, and drop_last drops that \
         incomplete batch, so there are no training batches (lower the batch size or turn \
         drop_last off)"
    );
    let e = t
        .fit(&model, &mut opt, &train, Some(&five()), 1)
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("the validation data has 5 samples, fewer than one batch of 8"),
        "{e}"
    );
}

/// Notes when training begins; fails at the end of an epoch while `fail` is set.
struct Noisy {
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl kiln_train::callbacks::Callback for Noisy {
    fn name(&self) -> String {
        "noisy".into()
    }

    fn on_train_begin(
        &mut self,
        ctx: &mut kiln_train::callbacks::TrainContext,
    ) -> Result<(), kiln_train::TrainError> {
        ctx.note(format!("noisy: begins at epoch {}", ctx.epoch + 1));
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        _ctx: &mut kiln_train::callbacks::TrainContext,
        _logs: &kiln_train::Logs,
    ) -> Result<(), kiln_train::TrainError> {
        if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(kiln_train::TrainError::Config("noisy: told to fail".into()));
        }
        Ok(())
    }
}

#[test]
fn notes_are_those_of_the_last_fit_also_when_it_failed() {
    let _serial = serial();
    let (digits_train, _) = digits::default_split();
    let small = DataLoader::new(
        Subset::new(digits_train.image_dataset(), (0..64).collect()),
        32,
    );
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let model = mlp();
    let mut opt = Adam::new(model.parameters(), 1e-3);
    let mut t = Trainer::new()
        .progress(ProgressMode::Silent)
        .callback(Noisy { fail: fail.clone() });
    t.fit(&model, &mut opt, &small, None, 1).unwrap();
    assert_eq!(t.notes(), ["noisy: begins at epoch 1"]);
    t.fit(&model, &mut opt, &small, None, 2).unwrap();
    assert_eq!(t.notes(), ["noisy: begins at epoch 2"], "not carried over");
    fail.store(true, std::sync::atomic::Ordering::Relaxed);
    t.fit(&model, &mut opt, &small, None, 3).unwrap_err();
    assert_eq!(
        t.notes(),
        ["noisy: begins at epoch 3"],
        "kept when fit fails"
    );
}
