//! TensorBoard logging: a [`SummaryWriter`] with PyTorch's method names (`add_scalar`,
//! `add_scalars`, `add_text`, `flush`) writing real TensorBoard event files, and a small
//! reader for them.
//!
//! The files are what TensorFlow and PyTorch write: `events.out.tfevents.<time>.<host>`,
//! a sequence of TFRecord-framed records (length, masked CRC-32C of the length, data, masked
//! CRC-32C of the data — see [`record`]), each an `Event` protobuf ([`proto`]); the first
//! event carries `file_version = "brain.Event:2"`. Point `tensorboard --logdir` at the parent
//! of the log directories to view them.
//!
//! - [`SummaryWriter`]: scalars (`simple_value`), groups of scalars (one run subdirectory per
//!   series, as PyTorch does) and text (a string tensor for the text plugin). Buffered;
//!   every IO failure is a [`TensorBoardError`], never a panic.
//! - [`EventFileReader`] / [`read_events`] / [`event_files`]: read files back, verifying both
//!   CRCs of every record; corrupt or truncated files give errors.

mod error;
pub mod proto;
mod reader;
pub mod record;
mod writer;

pub use error::{Result, TensorBoardError};
pub use proto::Event;
pub use reader::{event_files, read_events, EventFileReader};
pub use writer::{
    system_wall_time, EventFileWriter, SummaryWriter, SummaryWriterBuilder, DEFAULT_FLUSH_INTERVAL,
};
