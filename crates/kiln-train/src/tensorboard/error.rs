//! The error type of the TensorBoard writer and reader.

use std::io;
use std::path::PathBuf;

/// An error writing or reading a TensorBoard event file. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum TensorBoardError {
    /// The log directory could not be created.
    #[error("tensorboard: cannot create log directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying IO error.
        source: io::Error,
    },
    /// An event file could not be created.
    #[error("tensorboard: cannot create event file {}: {source}", path.display())]
    CreateFile {
        /// The file.
        path: PathBuf,
        /// The underlying IO error.
        source: io::Error,
    },
    /// Writing or flushing an event file failed.
    #[error("tensorboard: cannot write event file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying IO error.
        source: io::Error,
    },
    /// Opening or reading an event file (or listing a log directory) failed.
    #[error("tensorboard: cannot read {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The underlying IO error.
        source: io::Error,
    },
    /// The file ends in the middle of a record.
    #[error(
        "tensorboard: truncated event file {}: record at byte {offset} ends early ({what})",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Byte offset of the start of the incomplete record.
        offset: u64,
        /// Which part of the record is missing.
        what: &'static str,
    },
    /// A record's length or data does not match its masked CRC-32C.
    #[error(
        "tensorboard: corrupt event file {}: {what} CRC mismatch in record at byte {offset} \
         (stored {stored:#010x}, computed {computed:#010x})",
        path.display()
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Byte offset of the start of the record.
        offset: u64,
        /// `"length"` or `"data"`.
        what: &'static str,
        /// The masked CRC stored in the file.
        stored: u32,
        /// The masked CRC computed from the bytes read.
        computed: u32,
    },
    /// A record's data is not a valid `Event` protobuf.
    #[error(
        "tensorboard: corrupt event file {}: record at byte {offset} is not an Event: {source}",
        path.display()
    )]
    Decode {
        /// The file.
        path: PathBuf,
        /// Byte offset of the start of the record.
        offset: u64,
        /// The protobuf decode error.
        source: prost::DecodeError,
    },
}

/// `Result` with a [`TensorBoardError`].
pub type Result<T, E = TensorBoardError> = std::result::Result<T, E>;
