//! Callbacks: code that runs at the begin/end of training, each epoch and each batch
//! (Keras' callbacks, Lightning's hooks). Each can persist its own state in checkpoints so a
//! resumed run continues exactly.

mod best;
mod csv_logger;
mod early_stopping;
mod lr_scheduler;
mod model_checkpoint;
mod tensorboard;
mod terminate_on_nan;

pub use best::Mode;
pub use csv_logger::CsvLogger;
pub use early_stopping::EarlyStopping;
pub use lr_scheduler::{LrSchedulerCallback, StepInterval};
pub use model_checkpoint::ModelCheckpoint;
pub use tensorboard::TensorBoardCallback;
pub use terminate_on_nan::TerminateOnNaN;

use best::Best;

use crate::checkpoint::Snapshot;
use crate::error::TrainError;
use crate::history::{History, Logs};
use crate::progress::{self, ProgressMode};
use kiln_nn::optim::Optimizer;
use kiln_nn::{MultiInput, StateDict};
use serde_json::Value;

/// What callbacks see and may change while training.
pub struct TrainContext<'a> {
    /// The model being trained.
    pub model: &'a dyn MultiInput,
    /// Its optimizer (schedulers change learning rates through it).
    pub optimizer: &'a mut dyn Optimizer,
    /// The current epoch, counting from 0.
    pub epoch: usize,
    /// The number of epochs `fit` was asked for.
    pub epochs: usize,
    /// Optimizer steps taken so far.
    pub global_step: u64,
    /// Set to stop after the current epoch.
    pub stop_training: bool,
    /// Logs of completed epochs.
    pub history: History,
    /// Where [`TrainContext::note`] prints.
    pub(crate) progress: ProgressMode,
    /// Every note of this `fit`, in order.
    pub(crate) notes: Vec<String>,
}

impl TrainContext<'_> {
    /// Tells the user about something a callback did to the run (stopped it, restored weights,
    /// cleaned up files): printed like the progress lines (nothing when silent) and kept in
    /// [`Trainer::notes`](crate::Trainer::notes).
    pub fn note(&mut self, message: impl Into<String>) {
        let message = message.into();
        progress::note(self.progress, &message);
        self.notes.push(message);
    }
}

/// Hooks into the training loop; every method has a no-op default.
pub trait Callback: Send {
    /// A stable name, used as the key of this callback's state in checkpoints.
    fn name(&self) -> String;

    /// Before the first epoch.
    fn on_train_begin(&mut self, _ctx: &mut TrainContext) -> Result<(), TrainError> {
        Ok(())
    }

    /// At the start of each epoch.
    fn on_epoch_begin(&mut self, _ctx: &mut TrainContext) -> Result<(), TrainError> {
        Ok(())
    }

    /// Before each training batch.
    fn on_batch_begin(&mut self, _ctx: &mut TrainContext, _batch: usize) -> Result<(), TrainError> {
        Ok(())
    }

    /// After each training batch, with that batch's `loss` and metrics and the current `lr`.
    fn on_batch_end(
        &mut self,
        _ctx: &mut TrainContext,
        _batch: usize,
        _logs: &Logs,
    ) -> Result<(), TrainError> {
        Ok(())
    }

    /// After each epoch's training and validation, with the epoch's logs.
    fn on_epoch_end(&mut self, _ctx: &mut TrainContext, _logs: &Logs) -> Result<(), TrainError> {
        Ok(())
    }

    /// After every callback's `on_epoch_end`, with a snapshot of the whole training state
    /// (checkpointing callbacks write it).
    fn on_snapshot(
        &mut self,
        _ctx: &mut TrainContext,
        _snapshot: &Snapshot,
        _logs: &Logs,
    ) -> Result<(), TrainError> {
        Ok(())
    }

    /// After the last epoch (or an early stop).
    fn on_train_end(&mut self, _ctx: &mut TrainContext) -> Result<(), TrainError> {
        Ok(())
    }

    /// State to carry across a resume (counters, best values, scheduler state).
    fn state(&self) -> Option<Value> {
        None
    }

    /// Restores [`Callback::state`].
    fn load_state(&mut self, _ctx: &mut TrainContext, _state: &Value) -> Result<(), TrainError> {
        Ok(())
    }

    /// Tensors to carry across a resume (e.g. the best weights seen so far), by name;
    /// checkpoints store them in `trainer.safetensors`.
    fn state_tensors(&self) -> StateDict {
        StateDict::new()
    }

    /// Restores [`Callback::state_tensors`]; called after [`Callback::load_state`], also
    /// when the checkpoint holds none for this callback (`tensors` is then empty).
    fn load_state_tensors(
        &mut self,
        _ctx: &mut TrainContext,
        _tensors: &StateDict,
    ) -> Result<(), TrainError> {
        Ok(())
    }
}
