//! Log loss, metrics and learning rate to TensorBoard per step and per epoch.

use super::{Callback, TrainContext};
use crate::error::TrainError;
use crate::history::Logs;
use crate::tensorboard::SummaryWriter;
use std::path::PathBuf;

/// Writes `train/<key>` per optimizer step and `epoch/<key>` per epoch (train and `val_`
/// values, and `lr`) to an event file under `log_dir`.
pub struct TensorBoardCallback {
    log_dir: PathBuf,
    writer: Option<SummaryWriter>,
    every_n_steps: u64,
}

impl TensorBoardCallback {
    /// Logs under `log_dir`.
    pub fn new(log_dir: impl Into<PathBuf>) -> TensorBoardCallback {
        TensorBoardCallback {
            log_dir: log_dir.into(),
            writer: None,
            every_n_steps: 1,
        }
    }

    /// Logs step values every `n` optimizer steps (default 1).
    pub fn every_n_steps(mut self, n: u64) -> Self {
        self.every_n_steps = n.max(1);
        self
    }

    fn writer(&mut self) -> Result<&mut SummaryWriter, TrainError> {
        if self.writer.is_none() {
            self.writer = Some(SummaryWriter::new(&self.log_dir)?);
        }
        Ok(self.writer.as_mut().unwrap())
    }
}

impl Callback for TensorBoardCallback {
    fn name(&self) -> String {
        "tensorboard".into()
    }

    fn on_batch_end(
        &mut self,
        ctx: &mut TrainContext,
        _batch: usize,
        logs: &Logs,
    ) -> Result<(), TrainError> {
        let step = ctx.global_step;
        if !step.is_multiple_of(self.every_n_steps) {
            return Ok(());
        }
        let w = self.writer()?;
        for (k, v) in logs {
            w.add_scalar(&format!("train/{k}"), *v, step as i64)?;
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, ctx: &mut TrainContext, logs: &Logs) -> Result<(), TrainError> {
        let epoch = ctx.epoch as i64 + 1;
        let w = self.writer()?;
        for (k, v) in logs {
            w.add_scalar(&format!("epoch/{k}"), *v, epoch)?;
        }
        w.flush()?;
        Ok(())
    }

    fn on_train_end(&mut self, _ctx: &mut TrainContext) -> Result<(), TrainError> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
        }
        Ok(())
    }
}
