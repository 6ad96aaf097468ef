//! The one error type every reader in this crate returns.

use std::path::{Path, PathBuf};

/// Why a data file could not be read.
///
/// Every variant names the file (or directory) it is about, so a message such as
/// `data/train.csv:17: bad row: column "age": "abc" is not a number` points straight at the
/// problem. Readers return these for missing, truncated or malformed input; they never panic
/// on bad bytes.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file or directory does not exist.
    #[error("{}: no such file or directory", path.display())]
    Missing {
        /// The path that was looked for.
        path: PathBuf,
    },

    /// Reading failed for another operating-system reason (permissions, I/O error).
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A binary file starts with the wrong magic number.
    #[error("{}: bad magic number {found} (expected {expected})", path.display())]
    BadMagic {
        /// The file being read.
        path: PathBuf,
        /// The magic number the format requires.
        expected: u32,
        /// The magic number found in the file.
        found: u32,
    },

    /// The file ends before the data its header (or format) promises.
    #[error("{}: truncated: {reason}", path.display())]
    Truncated {
        /// The file being read.
        path: PathBuf,
        /// What was expected and what was found.
        reason: String,
    },

    /// The file's length does not fit the format (trailing bytes, a partial record).
    #[error("{}: wrong length: {reason}", path.display())]
    WrongLength {
        /// The file being read.
        path: PathBuf,
        /// What was expected and what was found.
        reason: String,
    },

    /// A row of a text file cannot be parsed.
    #[error("{}:{line}: bad row: {reason}", path.display())]
    BadRow {
        /// The file being read.
        path: PathBuf,
        /// The 1-based line number of the row.
        line: u64,
        /// What is wrong with the row.
        reason: String,
    },

    /// A class label is out of range or not a valid class.
    #[error("{}: bad label at record {index}: {reason}", path.display())]
    BadLabel {
        /// The file being read.
        path: PathBuf,
        /// The 0-based index of the record whose label is bad.
        index: usize,
        /// What is wrong with the label.
        reason: String,
    },

    /// Two files (or a file and a requirement) disagree: image and label counts, dimensions.
    #[error("{}: mismatch: {reason}", path.display())]
    Mismatch {
        /// The file that disagrees.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },

    /// A CSV header lacks a column that was asked for.
    #[error("{}: no column named {column:?} in the header", path.display())]
    MissingColumn {
        /// The CSV file.
        path: PathBuf,
        /// The requested column name.
        column: String,
    },

    /// An image has a different size than required.
    #[error(
        "{}: image is {}x{} but {}x{} is required (enable resizing to accept it)",
        path.display(), found.0, found.1, expected.0, expected.1
    )]
    WrongSize {
        /// The image file.
        path: PathBuf,
        /// The required (width, height).
        expected: (u32, u32),
        /// The image's (width, height).
        found: (u32, u32),
    },

    /// Compressed or encoded content (gzip, PNG, JPEG) cannot be decoded.
    #[error("{}: cannot decode: {reason}", path.display())]
    Decode {
        /// The file being read.
        path: PathBuf,
        /// The decoder's complaint.
        reason: String,
    },

    /// Anything else that makes the input unusable (an empty file, no header, no images).
    #[error("{}: malformed: {reason}", path.display())]
    Malformed {
        /// The file or directory being read.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl DataError {
    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DataError::Missing { path }
            | DataError::Io { path, .. }
            | DataError::BadMagic { path, .. }
            | DataError::Truncated { path, .. }
            | DataError::WrongLength { path, .. }
            | DataError::BadRow { path, .. }
            | DataError::BadLabel { path, .. }
            | DataError::Mismatch { path, .. }
            | DataError::MissingColumn { path, .. }
            | DataError::WrongSize { path, .. }
            | DataError::Decode { path, .. }
            | DataError::Malformed { path, .. } => path,
        }
    }

    /// Maps an I/O error on `path` to [`DataError::Missing`] when the file is absent,
    /// [`DataError::Truncated`] on an unexpected end of file, else [`DataError::Io`].
    pub fn from_io(path: impl Into<PathBuf>, source: std::io::Error) -> DataError {
        let path = path.into();
        match source.kind() {
            std::io::ErrorKind::NotFound => DataError::Missing { path },
            std::io::ErrorKind::UnexpectedEof => DataError::Truncated {
                path,
                reason: source.to_string(),
            },
            _ => DataError::Io { path, source },
        }
    }
}

/// The result type of this crate's readers.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
