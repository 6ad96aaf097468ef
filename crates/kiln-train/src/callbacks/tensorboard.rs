//! Log loss, metrics and learning rate to TensorBoard per step and per epoch.

use super::{Callback, TrainContext};
use crate::error::TrainError;
use crate::history::Logs;
use crate::tensorboard::proto::What;
use crate::tensorboard::record::write_record;
use crate::tensorboard::{event_files, Event, EventFileReader, SummaryWriter};
use prost::Message;
use std::path::{Path, PathBuf};

/// Writes `train/<key>` per optimizer step and `epoch/<key>` per epoch (train and `val_`
/// values, and `lr`) to an event file under `log_dir`. A resumed run first removes from the
/// existing event files what was logged after its checkpoint (by the interrupted run, or by a
/// longer run resumed from an earlier checkpoint), so TensorBoard shows each step once.
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

/// Whether `event` was logged at or before the checkpoint of `epochs_done` epochs and
/// `global_step` steps (`epoch/` tags count epochs, the others optimizer steps).
fn logged_before(event: &Event, epochs_done: i64, global_step: i64) -> bool {
    match &event.what {
        Some(What::Summary(summary)) => summary.value.iter().all(|v| {
            let limit = if v.tag.starts_with("epoch/") {
                epochs_done
            } else {
                global_step
            };
            event.step <= limit
        }),
        _ => true,
    }
}

/// Rewrites every event file in `log_dir` without the events logged after the checkpoint
/// (and without a torn last record a kill may have left); returns how many were dropped.
fn trim_after(log_dir: &Path, epochs_done: i64, global_step: i64) -> Result<usize, TrainError> {
    if !log_dir.is_dir() {
        return Ok(0);
    }
    let mut dropped = 0;
    for file in event_files(log_dir)? {
        let mut kept = Vec::new();
        let mut changed = false;
        for event in EventFileReader::open(&file)? {
            match event {
                Ok(e) if logged_before(&e, epochs_done, global_step) => {
                    write_record(&mut kept, &e.encode_to_vec()).map_err(|source| {
                        TrainError::Io {
                            path: file.clone(),
                            source,
                        }
                    })?;
                }
                Ok(_) => {
                    dropped += 1;
                    changed = true;
                }
                Err(_) => changed = true,
            }
        }
        if changed {
            kiln_nn::checkpoint::write_atomic(&file, &kept)?;
        }
    }
    Ok(dropped)
}

impl Callback for TensorBoardCallback {
    fn name(&self) -> String {
        "tensorboard".into()
    }

    fn on_train_begin(&mut self, ctx: &mut TrainContext) -> Result<(), TrainError> {
        let epochs_done = ctx.history.epochs.len() as i64;
        if epochs_done > 0 && self.writer.is_none() {
            let dropped = trim_after(&self.log_dir, epochs_done, ctx.global_step as i64)?;
            if dropped > 0 {
                ctx.note(format!(
                    "tensorboard: removed {dropped} events logged after the checkpoint (epoch \
                     {epochs_done}, step {}) from {}",
                    ctx.global_step,
                    self.log_dir.display()
                ));
            }
        }
        Ok(())
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
