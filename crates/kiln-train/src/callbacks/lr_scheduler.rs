//! Steps a learning-rate schedule each epoch or each optimizer step.

use super::{Callback, TrainContext};
use crate::error::TrainError;
use crate::history::Logs;
use kiln_nn::optim::lr_scheduler::{LrScheduler, ReduceLROnPlateau};
use serde_json::Value;

/// When a schedule advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepInterval {
    /// After every epoch (PyTorch's usual `scheduler.step()` placement).
    Epoch,
    /// After every batch (OneCycleLR, warmup by steps).
    Batch,
}

enum Schedule {
    Plain(Box<dyn LrScheduler + Send>, StepInterval),
    Plateau(ReduceLROnPlateau, String),
}

/// Owns a schedule and steps it at the right time; its state goes into checkpoints.
pub struct LrSchedulerCallback {
    schedule: Schedule,
}

impl LrSchedulerCallback {
    /// Steps `scheduler` every epoch or every batch.
    pub fn new(
        scheduler: impl LrScheduler + 'static,
        interval: StepInterval,
    ) -> LrSchedulerCallback {
        LrSchedulerCallback {
            schedule: Schedule::Plain(Box::new(scheduler), interval),
        }
    }

    /// Steps a `ReduceLROnPlateau` with the epoch's value of `monitor` (e.g. `"val_loss"`).
    pub fn on_plateau(
        scheduler: ReduceLROnPlateau,
        monitor: impl Into<String>,
    ) -> LrSchedulerCallback {
        LrSchedulerCallback {
            schedule: Schedule::Plateau(scheduler, monitor.into()),
        }
    }
}

impl Callback for LrSchedulerCallback {
    fn name(&self) -> String {
        "lr_scheduler".into()
    }

    fn on_batch_end(
        &mut self,
        ctx: &mut TrainContext,
        _batch: usize,
        _logs: &Logs,
    ) -> Result<(), TrainError> {
        if let Schedule::Plain(s, StepInterval::Batch) = &mut self.schedule {
            s.step(ctx.optimizer);
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, ctx: &mut TrainContext, logs: &Logs) -> Result<(), TrainError> {
        match &mut self.schedule {
            Schedule::Plain(s, StepInterval::Epoch) => s.step(ctx.optimizer),
            Schedule::Plateau(s, monitor) => {
                if let Some(&v) = logs.get(monitor.as_str()) {
                    s.step_metric(v, ctx.optimizer);
                }
            }
            Schedule::Plain(_, StepInterval::Batch) => {}
        }
        Ok(())
    }

    fn state(&self) -> Option<Value> {
        Some(match &self.schedule {
            Schedule::Plain(s, _) => s.state_dict(),
            Schedule::Plateau(s, _) => s.state_dict(),
        })
    }

    fn load_state(&mut self, _ctx: &mut TrainContext, state: &Value) -> Result<(), TrainError> {
        match &mut self.schedule {
            Schedule::Plain(s, _) => s.load_state_dict(state)?,
            Schedule::Plateau(s, _) => s.load_state_dict(state)?,
        }
        Ok(())
    }
}
