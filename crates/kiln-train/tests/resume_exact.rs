//! Resuming is exact: a run interrupted after epoch k and resumed from `epoch-k/` writes the
//! same checkpoints, bit for bit, as the uninterrupted run, `best/` included, and callbacks
//! end in the same state.
//!
//! The validation loss is scripted per epoch so that epoch k improves the best value and a
//! later epoch lies between the best before k and the value at k: a resumed `ModelCheckpoint`
//! that restored its best from before epoch k (the bug of issue 20) would write `best/` again.

use kiln_core::{manual_seed, DType, Tensor};
use kiln_data::{digits, DataLoader, Dataset, Subset, TensorDataset};
use kiln_nn::optim::lr_scheduler::StepLR;
use kiln_nn::optim::{Adam, Optimizer};
use kiln_nn::{Dropout, Flatten, Linear, ModuleBase, ReLU, Sequential, StateDict};
use kiln_train::callbacks::{
    CsvLogger, EarlyStopping, LrSchedulerCallback, Mode, ModelCheckpoint, StepInterval,
    TensorBoardCallback,
};
use kiln_train::tensorboard::proto::{self, What};
use kiln_train::{Batch, BatchSource, ProgressMode, Trainer};
use serde_json::Value;
use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;

/// The global generator is process-wide: tests that seed it must not interleave.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Validation "loss" of epochs 1..=5 (lower is better). Best: 0.20 at epoch 3. Epoch 4
/// (0.25) beats epoch 2's 0.30, epoch 5 (0.22) beats 0.25: a stale best after resuming from
/// epoch 3 would rewrite `best/` twice.
const VAL_LOSS: [f64; 5] = [0.50, 0.30, 0.20, 0.25, 0.22];
const EPOCHS: usize = VAL_LOSS.len();
const RESUME_AFTER: usize = 3;

/// Yields one batch per evaluation whose float targets carry the next scripted value; the
/// loss function below returns it as the validation loss.
struct ScriptedValidation {
    inputs: Tensor,
    calls: Cell<usize>,
}

impl BatchSource for ScriptedValidation {
    fn num_batches(&self) -> usize {
        1
    }
    fn batches(&self, _epoch: u64) -> Box<dyn Iterator<Item = Batch> + '_> {
        let value = VAL_LOSS[self.calls.get()];
        self.calls.set(self.calls.get() + 1);
        let n = self.inputs.shape()[0];
        let targets = Tensor::full([n], value, DType::F32);
        Box::new(std::iter::once((vec![self.inputs.clone()], targets)))
    }
}

/// Cross-entropy on class targets; the scripted value on float (validation) targets.
fn loss(out: &Tensor, target: &Tensor) -> Tensor {
    if target.dtype().is_float() {
        target.mean_all()
    } else {
        kiln_core::nn::functional::cross_entropy(out, target)
    }
}

fn mlp() -> Sequential {
    Sequential::new()
        .append(Flatten::new())
        .append(Linear::new(64, 32))
        .append(ReLU::new())
        .append(Dropout::new(0.2))
        .append(Linear::new(32, 10))
}

fn train_loader() -> DataLoader<Subset<TensorDataset>> {
    let (train, _) = digits::default_split();
    DataLoader::new(Subset::new(train.image_dataset(), (0..320).collect()), 32)
        .shuffle(true)
        .seed(7)
}

fn validation(done: usize) -> ScriptedValidation {
    let (_, test) = digits::default_split();
    let ds = test.image_dataset();
    let inputs = Tensor::stack(&(0..16).map(|i| ds.get(i).0).collect::<Vec<_>>(), 0);
    ScriptedValidation {
        inputs,
        calls: Cell::new(done),
    }
}

fn trainer(dir: &Path, opt: &mut dyn Optimizer) -> Trainer {
    Trainer::new()
        .progress(ProgressMode::Silent)
        .loss(loss)
        .metrics(&[])
        .callback(LrSchedulerCallback::new(
            StepLR::new(opt, 2, 0.5),
            StepInterval::Epoch,
        ))
        .callback(
            ModelCheckpoint::new(dir.join("ckpt"))
                .every_epoch(true)
                .monitor("val_loss", Mode::Min),
        )
        .callback(EarlyStopping::new("val_loss", Mode::Min, 10).restore_best_weights(true))
        .callback(CsvLogger::new(dir.join("log.csv")))
        .callback(TensorBoardCallback::new(dir.join("tb")))
}

/// Trains into `dir` from a fresh process-like state up to `epochs`; when `resume` is given,
/// first trains to `resume + 1` epochs (the interrupted run got past its checkpoint: its
/// logs hold an epoch the resumed run repeats), then continues with a new model, optimizer and trainer
/// resumed from `epoch-<resume>/` (after scrambling the global generator, as a new process
/// would start from another state).
fn run(dir: &Path, epochs: usize, resume: Option<usize>) -> Vec<f32> {
    let train = train_loader();
    manual_seed(3);
    let model = mlp();
    let mut opt = Adam::new(model.parameters(), 1e-2);
    let first_leg = resume.map_or(epochs, |k| k + 1);
    trainer(dir, &mut opt)
        .fit(&model, &mut opt, &train, Some(&validation(0)), first_leg)
        .unwrap();
    let model = match resume {
        None => model,
        Some(k) => {
            manual_seed(999);
            let _ = Tensor::rand([17], DType::F32);
            let model = mlp();
            let mut opt = Adam::new(model.parameters(), 1e-2);
            let mut t = trainer(dir, &mut opt);
            let from = dir.join(format!("ckpt/epoch-{k}"));
            assert_eq!(t.resume_from(&from, &model, &mut opt).unwrap(), k);
            t.fit(&model, &mut opt, &train, Some(&validation(k)), epochs)
                .unwrap();
            model
        }
    };
    model
        .parameters()
        .iter()
        .flat_map(|p| p.to_vec::<f32>())
        .collect()
}

/// Each tensor's name with its dtype, shape and raw bytes.
type TensorBits = Vec<(String, Vec<u8>)>;

/// Every tensor's bytes by name, and the header metadata.
fn read(file: &Path) -> (TensorBits, HashMap<String, String>) {
    let (sd, meta): (StateDict, _) = kiln_nn::checkpoint::load_with_metadata(file).unwrap();
    let tensors = sd
        .iter()
        .map(|(n, t)| {
            (
                n.to_string(),
                [
                    format!("{:?}{:?}", t.dtype(), t.shape()).into_bytes(),
                    kiln_nn::checkpoint::tensor_bytes(t),
                ]
                .concat(),
            )
        })
        .collect();
    (tensors, meta)
}

fn trainer_json(dir: &Path) -> Value {
    let (_, meta) = read(&dir.join("trainer.safetensors"));
    serde_json::from_str(&meta["kiln.trainer"]).unwrap()
}

/// Every scalar in the event files under `dir/tb`, file by file: (tag, step, value bits).
fn scalars(dir: &Path) -> Vec<(String, i64, u32)> {
    let mut out = Vec::new();
    for file in kiln_train::tensorboard::event_files(dir.join("tb")).unwrap() {
        for event in kiln_train::tensorboard::read_events(&file).unwrap() {
            if let Some(What::Summary(s)) = &event.what {
                for v in &s.value {
                    if let Some(proto::Value::SimpleValue(x)) = v.value {
                        out.push((v.tag.clone(), event.step, x.to_bits()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn resuming_from_epoch_k_reproduces_the_uninterrupted_run_bit_for_bit() {
    let _serial = serial();
    let whole = tempfile::tempdir().unwrap();
    let resumed = tempfile::tempdir().unwrap();
    let final_whole = run(whole.path(), EPOCHS, None);
    let final_resumed = run(resumed.path(), EPOCHS, Some(RESUME_AFTER));

    let mut subdirs = vec!["last".to_string(), "best".to_string()];
    subdirs.extend((1..=EPOCHS).map(|e| format!("epoch-{e}")));
    for sub in &subdirs {
        for file in ["model.safetensors", "trainer.safetensors"] {
            let a = read(&whole.path().join("ckpt").join(sub).join(file));
            let b = read(&resumed.path().join("ckpt").join(sub).join(file));
            assert!(!a.0.is_empty(), "{sub}/{file} has no tensors");
            assert_eq!(a.0, b.0, "{sub}/{file}: tensors differ");
            assert_eq!(a.1, b.1, "{sub}/{file}: metadata differs");
        }
    }
    let best = trainer_json(&whole.path().join("ckpt/best"));
    assert_eq!(best["epochs_done"], 3, "best/ is epoch 3 (val_loss 0.20)");
    assert_eq!(best, trainer_json(&resumed.path().join("ckpt/best")));
    let mc = &best["callbacks"]["model_checkpoint"];
    assert_eq!(
        (mc["best"].as_f64(), mc["best_epoch"].as_u64()),
        (Some(0.2f32 as f64), Some(3))
    );
    // The snapshot in best/ holds the best as of the end of its own epoch.
    let last = trainer_json(&whole.path().join("ckpt/last"));
    assert_eq!(last["callbacks"]["model_checkpoint"], *mc);

    // EarlyStopping restored epoch 3's weights at the end of both runs.
    assert_eq!(final_whole, final_resumed);
    let best_model = mlp();
    let best_sd = kiln_nn::checkpoint::load(whole.path().join("ckpt/best/model.safetensors"));
    best_model.load_state_dict(&best_sd.unwrap(), true).unwrap();
    let best_params: Vec<f32> = best_model
        .parameters()
        .iter()
        .flat_map(|p| p.to_vec::<f32>())
        .collect();
    assert_eq!(best_params, final_whole);

    // The resumed run's logs hold each epoch and step once, with the same values.
    let tb = scalars(whole.path());
    assert!(tb
        .iter()
        .any(|(tag, step, _)| tag == "epoch/val_loss" && *step == 5));
    assert_eq!(tb, scalars(resumed.path()));

    let csv = |d: &Path| std::fs::read_to_string(d.join("log.csv")).unwrap();
    assert_eq!(csv(whole.path()), csv(resumed.path()));
    assert_eq!(csv(whole.path()).lines().count(), EPOCHS + 1);
}

#[test]
fn a_resumed_run_that_had_stopped_early_does_not_train_further() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let train = train_loader();
    let stopper = || EarlyStopping::new("val_loss", Mode::Min, 1);
    let make = || {
        Trainer::new()
            .progress(ProgressMode::Silent)
            .loss(loss)
            .metrics(&[])
            .callback(stopper())
            .callback(ModelCheckpoint::new(dir.path().join("ckpt")).every_epoch(true))
    };
    manual_seed(4);
    let model = mlp();
    let mut opt = Adam::new(model.parameters(), 1e-2);
    let mut t = make();
    // 0.50, 0.30, 0.20, 0.25: stops after epoch 4 (patience 1).
    let h = t
        .fit(&model, &mut opt, &train, Some(&validation(0)), EPOCHS)
        .unwrap();
    assert_eq!(h.epochs.len(), 4);
    assert!(
        t.notes()
            .iter()
            .any(|n| n.contains("epoch 4: early stopping: val_loss did not improve")),
        "{:?}",
        t.notes()
    );

    let model = mlp();
    let mut opt = Adam::new(model.parameters(), 1e-2);
    let mut t = make();
    t.resume_from(&dir.path().join("ckpt/epoch-4"), &model, &mut opt)
        .unwrap();
    let h = t
        .fit(&model, &mut opt, &train, Some(&validation(4)), EPOCHS)
        .unwrap();
    assert_eq!(h.epochs.len(), 4, "no epoch after the early stop");
    assert!(
        t.notes().iter().any(|n| n.contains("already stopped")),
        "{:?}",
        t.notes()
    );
}
