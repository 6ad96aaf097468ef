//! Training checkpoints: everything needed to continue a run bit for bit.
//!
//! A checkpoint is a directory with two safetensors files, each written atomically:
//! - `model.safetensors`: the model's state dict with PyTorch's key names, loadable by
//!   `safetensors.torch.load_file` + `load_state_dict` as is;
//! - `trainer.safetensors`: the optimizer's state tensors (`state.<i>.exp_avg`, …), with the
//!   rest of the training state as JSON in the header metadata under `"kiln.trainer"`: the
//!   completed epoch, global step, random-generator state, optimizer hyper-parameters, each
//!   callback's state and the history so far.

use crate::error::TrainError;
use crate::history::History;
use kiln_nn::checkpoint;
use kiln_nn::optim::{Optimizer, OptimizerState};
use kiln_nn::{Module, StateDict};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// The training state at the end of an epoch (everything but the tensors).
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Number of completed epochs.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub global_step: u64,
    /// Global random generator (seed, offset), so dropout continues the same stream.
    pub rng: (u64, u64),
    /// Each callback's state by name.
    pub callbacks: Map<String, Value>,
    /// Logs of the completed epochs.
    pub history: History,
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

/// Writes a checkpoint directory (created if needed); `model_meta` goes into the header of
/// `model.safetensors` (e.g. what architecture the weights belong to).
pub fn save(
    dir: &Path,
    model: &dyn Module,
    optimizer: &dyn Optimizer,
    snap: &Snapshot,
    model_meta: &HashMap<String, String>,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
        path: dir.into(),
        source,
    })?;
    let opt = optimizer.state_dict();
    let mut meta = HashMap::new();
    meta.insert(
        "kiln.trainer".to_string(),
        snap.to_json(&opt.meta).to_string(),
    );
    checkpoint::save_with_metadata(&opt.tensors, dir.join("trainer.safetensors"), &meta)?;
    let mut model_meta = model_meta.clone();
    model_meta.insert("kiln.epochs_done".to_string(), snap.epochs_done.to_string());
    checkpoint::save_with_metadata(
        &model.state_dict(),
        dir.join("model.safetensors"),
        &model_meta,
    )?;
    Ok(())
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
    let snapshot = Snapshot {
        epochs_done,
        global_step: num("global_step")?,
        rng,
        callbacks: v
            .get("callbacks")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        history: v
            .get("history")
            .and_then(History::from_json)
            .ok_or_else(|| resume_err(dir, "bad `history`"))?,
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

/// True when `dir` looks like a checkpoint directory.
pub fn exists(dir: &Path) -> bool {
    dir.join("model.safetensors").is_file() && dir.join("trainer.safetensors").is_file()
}
