//! Training checkpoints: everything needed to continue a run bit for bit.
//!
//! A checkpoint is a directory with two safetensors files:
//! - `model.safetensors`: the model's state dict with PyTorch's key names, loadable by
//!   `safetensors.torch.load_file` + `load_state_dict` as is;
//! - `trainer.safetensors`: the optimizer's state tensors (`state.<i>.exp_avg`, …) and the
//!   tensors callbacks keep (`callbacks.<callback>.<name>`, e.g. early stopping's best
//!   weights), with the rest of the training state as JSON in the header metadata under
//!   `"kiln.trainer"`: the completed epoch, global step, random-generator state, optimizer
//!   hyper-parameters, each callback's state and the history so far.
//!
//! # Writing a directory as a whole
//!
//! The two files only make sense together, so [`save`] replaces the directory `<name>` in
//! one step instead of file by file:
//! 1. write both files into `<parent>/.<name>.tmp-<pid>/` and fsync each, then fsync that
//!    directory (nothing reads the temporary directory, so its files need no atomic writes
//!    of their own);
//! 2. rename the current `<name>` (if any) aside to `<parent>/.<name>.old-<pid>`;
//! 3. rename `.<name>.tmp-<pid>` to `<name>` (the commit point) and fsync `<parent>`;
//! 4. remove `.<name>.old-<pid>`.
//!
//! A crash (`kill -9`, power loss) at any point leaves a complete checkpoint to continue
//! from: before step 2, `<name>` is the previous checkpoint; between steps 2 and 3,
//! `<name>` is missing and `.<name>.old-<pid>` is the previous checkpoint, which
//! [`recover`] (run by `Trainer::resume_from`) and [`clean_stale`] (run by `ModelCheckpoint`
//! when training starts) move back; after step 3, `<name>` is the new one. Temporaries a
//! crash leaves behind (`.<name>.tmp-*` and `.<name>.old-*` directories, `.<file>.tmp-*`
//! files inside checkpoint directories) are removed by [`clean_stale`], so only one run may
//! write under a checkpoint root at a time.
//!
//! A checkpoint written to several directories at the end of one epoch (`last/`, `best/`,
//! `epoch-<n>/`) is serialized once ([`encode`]) and the same bytes are written to each
//! ([`Encoded::write`]).

mod atomic_dir;

pub use atomic_dir::{clean_stale, recover, Cleanup};

use crate::error::TrainError;
use crate::history::History;
use kiln_nn::checkpoint::{self, CheckpointError};
use kiln_nn::optim::{Optimizer, OptimizerState};
use kiln_nn::{ModuleBase, StateDict};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Prefix of callback tensors in `trainer.safetensors` (the optimizer's are `state.…`).
const CALLBACK_TENSORS: &str = "callbacks.";

/// The training state at the end of an epoch (everything but the model and optimizer).
#[derive(Clone)]
pub struct Snapshot {
    /// Number of completed epochs.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub global_step: u64,
    /// Global random generator (seed, offset), so dropout continues the same stream.
    pub rng: (u64, u64),
    /// Each callback's state by name.
    pub callbacks: Map<String, Value>,
    /// Tensors callbacks keep across a resume, named `<callback name>.<tensor name>`.
    pub callback_tensors: StateDict,
    /// Logs of the completed epochs.
    pub history: History,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("epochs_done", &self.epochs_done)
            .field("global_step", &self.global_step)
            .field("rng", &self.rng)
            .field("callbacks", &self.callbacks)
            .field(
                "callback_tensors",
                &self.callback_tensors.keys().collect::<Vec<_>>(),
            )
            .field("history", &self.history)
            .finish()
    }
}

impl Snapshot {
    fn to_json(&self, optimizer_meta: &Value) -> Value {
        json!({
            "epochs_done": self.epochs_done,
            "global_step": self.global_step,
            "rng": [self.rng.0.to_string(), self.rng.1.to_string()],
            "callbacks": self.callbacks,
            "history": self.history.to_json(),
            "optimizer": optimizer_meta,
        })
    }
}

/// Writes a checkpoint directory as a whole, replacing any previous one (see the module doc
/// for the protocol); `model_meta` goes into the header of `model.safetensors` (e.g. what
/// architecture the weights belong to). To write the same checkpoint to several
/// directories, [`encode`] it once and [`Encoded::write`] it to each.
pub fn save(
    dir: &Path,
    model: &dyn ModuleBase,
    optimizer: &dyn Optimizer,
    snap: &Snapshot,
    model_meta: &HashMap<String, String>,
) -> Result<(), TrainError> {
    encode(model, optimizer, snap, model_meta).write(dir)
}

/// A checkpoint's two files, serialized: what [`save`] writes.
pub struct Encoded {
    model: Vec<u8>,
    trainer: Vec<u8>,
}

/// Serializes the model, the optimizer and the rest of the training state into the bytes of
/// `model.safetensors` and `trainer.safetensors` (see [`save`] for `model_meta`).
pub fn encode(
    model: &dyn ModuleBase,
    optimizer: &dyn Optimizer,
    snap: &Snapshot,
    model_meta: &HashMap<String, String>,
) -> Encoded {
    let opt = optimizer.state_dict();
    let mut trainer_tensors = opt.tensors;
    trainer_tensors.extend(snap.callback_tensors.prefixed(CALLBACK_TENSORS));
    let mut meta = HashMap::new();
    meta.insert(
        "kiln.trainer".to_string(),
        snap.to_json(&opt.meta).to_string(),
    );
    let mut model_meta = model_meta.clone();
    model_meta.insert("kiln.epochs_done".to_string(), snap.epochs_done.to_string());
    Encoded {
        model: checkpoint::to_bytes(&model.state_dict(), &model_meta),
        trainer: checkpoint::to_bytes(&trainer_tensors, &meta),
    }
}

impl Encoded {
    /// Writes the checkpoint to `dir` as a whole, replacing any previous one (see the module
    /// doc for the protocol).
    pub fn write(&self, dir: &Path) -> Result<(), TrainError> {
        atomic_dir::replace_dir(dir, |tmp| {
            write_synced(&tmp.join("trainer.safetensors"), &self.trainer)?;
            write_synced(&tmp.join("model.safetensors"), &self.model)
        })
    }
}

/// Writes a file of the temporary directory and fsyncs it: the directory is renamed into
/// place as a whole afterwards, so the file needs no atomic write of its own.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    std::fs::File::create(path)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(|source| {
            CheckpointError::Io {
                path: path.into(),
                source,
            }
            .into()
        })
}

/// What [`load`] read, before it is applied.
pub struct Loaded {
    /// Model weights.
    pub model: StateDict,
    /// Optimizer state.
    pub optimizer: OptimizerState,
    /// The rest of the training state.
    pub snapshot: Snapshot,
}

fn resume_err(dir: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Resume {
        path: dir.into(),
        reason: reason.into(),
    }
}

/// Reads a checkpoint directory written by [`save`]; never panics on bad files.
pub fn load(dir: &Path) -> Result<Loaded, TrainError> {
    let (model, model_meta) = checkpoint::load_with_metadata(dir.join("model.safetensors"))?;
    load_with_model(dir, model, &model_meta)
}

/// [`load`] for a caller that has already read the directory's `model.safetensors`: `model`
/// and `model_meta` are its state dict and header metadata; only `trainer.safetensors` is
/// read, and checked against them.
pub fn load_with_model(
    dir: &Path,
    model: StateDict,
    model_meta: &HashMap<String, String>,
) -> Result<Loaded, TrainError> {
    let (opt_tensors, meta) = checkpoint::load_with_metadata(dir.join("trainer.safetensors"))?;
    let raw = meta
        .get("kiln.trainer")
        .ok_or_else(|| resume_err(dir, "trainer.safetensors has no kiln.trainer metadata"))?;
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| resume_err(dir, format!("bad trainer metadata: {e}")))?;
    let num = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .ok_or_else(|| resume_err(dir, format!("missing `{k}`")))
    };
    let epochs_done = num("epochs_done")? as usize;
    if model_meta.get("kiln.epochs_done").map(String::as_str)
        != Some(epochs_done.to_string().as_str())
    {
        return Err(resume_err(
            dir,
            "model.safetensors and trainer.safetensors are from different epochs",
        ));
    }
    let rng = v
        .get("rng")
        .and_then(Value::as_array)
        .filter(|a| a.len() == 2)
        .and_then(|a| Some((a[0].as_str()?.parse().ok()?, a[1].as_str()?.parse().ok()?)))
        .ok_or_else(|| resume_err(dir, "missing or bad `rng`"))?;
    let history = v
        .get("history")
        .and_then(History::from_json)
        .ok_or_else(|| resume_err(dir, "bad `history`"))?;
    if history.epochs.len() != epochs_done {
        return Err(resume_err(
            dir,
            format!(
                "the history has {} epochs but `epochs_done` is {epochs_done}",
                history.epochs.len()
            ),
        ));
    }
    let (callback_tensors, opt_tensors) = split_callback_tensors(opt_tensors);
    let snapshot = Snapshot {
        epochs_done,
        global_step: num("global_step")?,
        rng,
        callbacks: match v.get("callbacks") {
            None => Map::new(),
            Some(c) => c
                .as_object()
                .cloned()
                .ok_or_else(|| resume_err(dir, "`callbacks` is not an object"))?,
        },
        callback_tensors,
        history,
    };
    let optimizer = OptimizerState {
        tensors: opt_tensors,
        meta: v
            .get("optimizer")
            .cloned()
            .ok_or_else(|| resume_err(dir, "missing `optimizer`"))?,
    };
    Ok(Loaded {
        model,
        optimizer,
        snapshot,
    })
}

/// Splits `trainer.safetensors`' tensors into (callback tensors without their prefix, the
/// optimizer's).
fn split_callback_tensors(all: StateDict) -> (StateDict, StateDict) {
    let callbacks = all.strip_prefix(CALLBACK_TENSORS);
    let optimizer = all
        .into_iter()
        .filter(|(name, _)| !name.starts_with(CALLBACK_TENSORS))
        .collect();
    (callbacks, optimizer)
}

/// True when `dir` looks like a checkpoint directory.
pub fn exists(dir: &Path) -> bool {
    dir.join("model.safetensors").is_file() && dir.join("trainer.safetensors").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::{DType, Tensor};
    use kiln_nn::{Adam, Linear, ModuleBase};

    #[test]
    fn one_encoding_writes_the_same_bytes_to_every_directory() {
        let model = Linear::new(2, 3);
        let opt = Adam::new(model.parameters(), 1e-2);
        let mut callback_tensors = StateDict::new();
        callback_tensors.insert("early_stopping[x].w", Tensor::zeros([2], DType::F32));
        let snap = Snapshot {
            epochs_done: 2,
            global_step: 10,
            rng: (1, 2),
            callbacks: Map::new(),
            callback_tensors,
            history: History {
                epochs: vec![Default::default(), Default::default()],
            },
        };
        let root = tempfile::tempdir().unwrap();
        let encoded = encode(&model, &opt, &snap, &HashMap::new());
        for name in ["last", "best"] {
            encoded.write(&root.path().join(name)).unwrap();
        }
        for file in ["model.safetensors", "trainer.safetensors"] {
            let read = |d: &str| std::fs::read(root.path().join(d).join(file)).unwrap();
            assert_eq!(read("last"), read("best"), "{file}");
        }
        let mut names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["best", "last"], "no temporaries left");
        let loaded = load(&root.path().join("best")).unwrap();
        assert_eq!(loaded.snapshot.epochs_done, 2);
        assert_eq!(
            loaded.snapshot.callback_tensors.keys().collect::<Vec<_>>(),
            ["early_stopping[x].w"]
        );
        assert_eq!(loaded.model.len(), 2);
    }
}
