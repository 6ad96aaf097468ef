//! Save checkpoints every epoch (`last/`) and when a monitored value improves (`best/`).

use super::{Best, Callback, Mode, TrainContext};
use crate::checkpoint::{self, Snapshot};
use crate::error::TrainError;
use crate::history::Logs;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Keras' `ModelCheckpoint`: writes `<dir>/last` after every epoch (unless `save_best_only`),
/// `<dir>/best` whenever `monitor` improves, and optionally `<dir>/epoch-<n>` for every epoch.
/// Each is a full training checkpoint (weights, optimizer state, epoch, random state) that
/// `--resume` continues from, written as a whole (see [`crate::checkpoint`]). When training
/// starts, what an interrupted run left under `<dir>` is recovered and cleaned up.
pub struct ModelCheckpoint {
    dir: PathBuf,
    /// The monitored key and its best value so far (as of the end of the last completed
    /// epoch).
    monitor: Option<(String, Best)>,
    save_best_only: bool,
    every_epoch: bool,
    /// Whether the epoch just ended improved `best`: decided in `on_epoch_end`, so the
    /// snapshot saved with it already holds the new best, and acted on in `on_snapshot`.
    improved: bool,
    model_meta: HashMap<String, String>,
}

impl ModelCheckpoint {
    /// Checkpoints under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> ModelCheckpoint {
        ModelCheckpoint {
            dir: dir.into(),
            monitor: None,
            save_best_only: false,
            every_epoch: false,
            improved: false,
            model_meta: HashMap::new(),
        }
    }

    /// Also keep `best/` for the best value of `key`.
    pub fn monitor(mut self, key: impl Into<String>, mode: Mode) -> Self {
        self.monitor = Some((key.into(), Best::new(mode)));
        self
    }

    /// Write only `best/` (needs a monitor).
    pub fn save_best_only(mut self, on: bool) -> Self {
        self.save_best_only = on;
        self
    }

    /// Also keep a checkpoint of every epoch in `<dir>/epoch-<n>` (n from 1).
    pub fn every_epoch(mut self, on: bool) -> Self {
        self.every_epoch = on;
        self
    }

    /// Adds a key to the header metadata of every `model.safetensors` written.
    pub fn model_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.model_meta.insert(key.into(), value.into());
        self
    }

    /// The directory checkpoints go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The best monitored value so far and the epoch (from 1) it was reached in.
    pub fn best(&self) -> Option<(f64, usize)> {
        self.monitor.as_ref().and_then(|(_, best)| best.get())
    }
}

impl Callback for ModelCheckpoint {
    fn name(&self) -> String {
        "model_checkpoint".into()
    }

    fn on_train_begin(&mut self, ctx: &mut TrainContext) -> Result<(), TrainError> {
        let cleanup = checkpoint::clean_stale(&self.dir)?;
        for from in &cleanup.restored {
            ctx.note(format!(
                "model checkpoint: recovered {} (a previous run stopped while replacing it)",
                from.display()
            ));
        }
        if !cleanup.removed.is_empty() {
            ctx.note(format!(
                "model checkpoint: removed {} temporary file(s) an interrupted run left in {}",
                cleanup.removed.len(),
                self.dir.display()
            ));
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, ctx: &mut TrainContext, logs: &Logs) -> Result<(), TrainError> {
        self.improved = match &mut self.monitor {
            Some((key, best)) => logs
                .get(key.as_str())
                .is_some_and(|&v| best.update(v, ctx.epoch + 1)),
            None => false,
        };
        Ok(())
    }

    fn on_snapshot(
        &mut self,
        ctx: &mut TrainContext,
        snap: &Snapshot,
        _logs: &Logs,
    ) -> Result<(), TrainError> {
        let mut dirs = Vec::new();
        if !self.save_best_only || self.monitor.is_none() {
            dirs.push(self.dir.join("last"));
        }
        if self.every_epoch {
            dirs.push(self.dir.join(format!("epoch-{}", snap.epochs_done)));
        }
        if self.improved {
            dirs.push(self.dir.join("best"));
        }
        if dirs.is_empty() {
            return Ok(());
        }
        // Serialized once, written to each directory.
        let encoded = checkpoint::encode(ctx.model, ctx.optimizer, snap, &self.model_meta);
        for dir in &dirs {
            encoded.write(dir)?;
        }
        Ok(())
    }

    fn state(&self) -> Option<Value> {
        let mut state = Map::new();
        if let Some((_, best)) = &self.monitor {
            best.save(&mut state);
        }
        Some(Value::Object(state))
    }

    fn load_state(&mut self, _ctx: &mut TrainContext, state: &Value) -> Result<(), TrainError> {
        if let Some((_, best)) = &mut self.monitor {
            best.load(state);
        }
        Ok(())
    }
}
