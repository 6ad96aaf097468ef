//! kiln-train: the training loop, metrics, callbacks, progress display and TensorBoard logging.
//!
//! ```no_run
//! use kiln_train::{Trainer, callbacks::{EarlyStopping, Mode, ModelCheckpoint}};
//! # fn demo(model: &dyn kiln_nn::Module, opt: &mut dyn kiln_nn::optim::Optimizer,
//! #         train: &dyn kiln_train::BatchSource, val: &dyn kiln_train::BatchSource) {
//! let mut trainer = Trainer::new()
//!     .callback(EarlyStopping::new("val_loss", Mode::Min, 3))
//!     .callback(ModelCheckpoint::new("runs/demo/checkpoints").monitor("val_accuracy", Mode::Max));
//! let history = trainer.fit(model, opt, train, Some(val), 10).unwrap();
//! println!("{:?}", history.get("val_accuracy"));
//! # }
//! ```
//!
//! Layering: the top of the library — built on `kiln-core`, `kiln-nn` (models, optimizers,
//! checkpoints), `kiln-data` (loaders) and `kiln-graph` (`Trainer::compile`). Only the facade and
//! the `kiln` command sit above it.
//!
//! Guide: *Training and callbacks* (`docs/src/training.md`); *TensorBoard and the profiler*
//! (`docs/src/tensorboard-profiler.md`) for logging; *Checkpoints and PyTorch interop*
//! (`docs/src/checkpoints.md`) for resumable trainer checkpoints.

#![deny(missing_docs)]

pub mod callbacks;
pub mod checkpoint;
mod error;
mod history;
mod metrics;
pub mod progress;
pub mod tensorboard;
mod trainer;

pub use error::TrainError;
pub use history::{History, Logs};
pub use metrics::{Meter, Metric};
pub use progress::ProgressMode;
pub use trainer::{Batch, BatchSource, IntoBatch, LossFn, Trainer};
