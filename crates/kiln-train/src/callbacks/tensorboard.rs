//! Log loss, metrics and learning rate to TensorBoard per step and per epoch.

use super::{Callback, TrainContext};
use crate::error::TrainError;
use crate::history::Logs;
use crate::tensorboard::proto::What;
use crate::tensorboard::{event_files, Event, EventFileReader, SummaryWriter, TensorBoardError};
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

/// Cuts every event file in `log_dir` before the first event logged after the checkpoint, or
/// before a torn record a kill left; returns how many events (and torn records) were dropped.
/// Events are written in time order, so everything after the cut was logged after the
/// checkpoint too. The bytes kept are not rewritten: events of kinds this reader does not
/// decode (graphs, images, another writer's) stay as they were.
fn trim_after(log_dir: &Path, epochs_done: i64, global_step: i64) -> Result<usize, TrainError> {
    if !log_dir.is_dir() {
        return Ok(0);
    }
    let mut dropped = 0;
    for file in event_files(log_dir)? {
        let mut events = EventFileReader::open(&file)?;
        let mut cut = None;
        loop {
            let at = events.offset();
            match events.next() {
                None => break,
                Some(Ok(e)) if cut.is_none() && logged_before(&e, epochs_done, global_step) => {}
                Some(_) => {
                    cut.get_or_insert(at);
                    dropped += 1;
                }
            }
        }
        if let Some(len) = cut {
            let io = |source| TensorBoardError::Write {
                path: file.clone(),
                source,
            };
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .map_err(io)?;
            f.set_len(len).map_err(io)?;
            f.sync_all().map_err(io)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_cuts_the_file_and_keeps_the_earlier_bytes_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SummaryWriter::new(dir.path()).unwrap();
        for step in 1..=8 {
            w.add_scalar("train/loss", 1.0 / step as f64, step).unwrap();
        }
        w.close().unwrap();
        let file = event_files(dir.path()).unwrap().remove(0);
        // Where the event of step 5 starts: the file must end there, byte for byte as before.
        let mut events = EventFileReader::open(&file).unwrap();
        let mut cut = 0;
        while let Some(Ok(e)) = events.next() {
            if e.step == 4 {
                cut = events.offset() as usize;
            }
        }
        let mut original = std::fs::read(&file).unwrap();
        original.extend_from_slice(b"\x07\x00\x00torn"); // a record a kill cut short
        std::fs::write(&file, &original).unwrap();
        let dropped = trim_after(dir.path(), 0, 4).unwrap();
        assert_eq!(dropped, 5, "steps 5..=8 and the torn record");
        assert_eq!(std::fs::read(&file).unwrap(), &original[..cut]);
    }
}
