//! Errors of the training loop (I/O in callbacks, checkpoints, resuming).

use kiln_nn::checkpoint::CheckpointError;
use kiln_nn::optim::OptimError;
use kiln_nn::StateDictError;

/// Why training, evaluation or resuming stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A checkpoint's weights (or the best weights early stopping kept) do not fit the model.
    #[error(transparent)]
    StateDict(#[from] StateDictError),
    /// A checkpoint's optimizer or scheduler state does not fit.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// Writing TensorBoard events failed.
    #[error(transparent)]
    TensorBoard(#[from] crate::tensorboard::TensorBoardError),
    /// Other file-system errors (CSV logs, directories).
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint directory is incomplete or inconsistent.
    #[error("cannot resume from {path}: {reason}")]
    Resume {
        /// The checkpoint directory.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A loss or metric became NaN or infinite (see `TerminateOnNaN`).
    #[error("{what} is {value} at epoch {epoch}, step {step}; stopping (lower the learning rate or check the data)")]
    NonFinite {
        /// What went non-finite (`loss`, `val_loss`, …).
        what: String,
        /// The value (NaN or ±inf).
        value: f64,
        /// The epoch, counting from 1.
        epoch: usize,
        /// The global optimizer step.
        step: u64,
    },
    /// A data source has no batches: an epoch over it would report 0 loss and accuracy.
    #[error("{}", empty_data(data, dropped))]
    EmptyData {
        /// `"training"` or `"validation"`.
        data: &'static str,
        /// `(samples, batch size)` when there were samples, fewer than one batch, and the
        /// loader drops its last incomplete batch (`drop_last`); `None` when there were none.
        dropped: Option<(usize, usize)>,
    },
    /// The trainer's options cannot be combined.
    #[error("invalid trainer configuration: {0}")]
    Config(String),
}

/// [`TrainError::EmptyData`]'s message: no data, or too little for one batch with `drop_last`.
fn empty_data(data: &str, dropped: &Option<(usize, usize)>) -> String {
    match *dropped {
        Some((samples, batch_size)) => format!(
            "the {data} data has {samples} sample{}, fewer than one batch of {batch_size}, and \
             drop_last drops that incomplete batch, so there are no {data} batches (lower the \
             batch size or turn drop_last off)",
            if samples == 1 { "" } else { "s" }
        ),
        None => format!("the {data} data is empty"),
    }
}
