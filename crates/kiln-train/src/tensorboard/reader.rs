//! A small event-file reader: framed records with both CRCs verified, decoded as `Event`s.
//!
//! Kiln uses it to test its writer; TensorBoard itself reads the files with its own reader.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use prost::Message;

use super::error::{Result, TensorBoardError};
use super::proto::Event;
use super::record::RecordReader;

/// Iterates over the events of one event file. Corrupt or truncated files yield an error
/// (never a panic), after which the iterator ends.
#[derive(Debug)]
pub struct EventFileReader {
    records: RecordReader<BufReader<File>>,
    path: PathBuf,
    done: bool,
}

impl EventFileReader {
    /// Opens an event file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| TensorBoardError::Read {
            path: path.clone(),
            source,
        })?;
        Ok(EventFileReader {
            records: RecordReader::new(BufReader::new(file), &path),
            path,
            done: false,
        })
    }

    /// The path of the file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Byte offset of the next event's record: where a file would be cut to end before it.
    pub fn offset(&self) -> u64 {
        self.records.offset()
    }
}

impl Iterator for EventFileReader {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        if self.done {
            return None;
        }
        let offset = self.records.offset();
        let result = match self.records.next_record() {
            Ok(None) => None,
            Ok(Some(data)) => {
                Some(
                    Event::decode(&data[..]).map_err(|source| TensorBoardError::Decode {
                        path: self.path.clone(),
                        offset,
                        source,
                    }),
                )
            }
            Err(e) => Some(Err(e)),
        };
        if !matches!(result, Some(Ok(_))) {
            self.done = true;
        }
        result
    }
}

/// Reads all events of one event file.
pub fn read_events(path: impl AsRef<Path>) -> Result<Vec<Event>> {
    EventFileReader::open(path)?.collect()
}

/// The event files directly in `dir` (names containing `tfevents`, as TensorBoard looks
/// for), sorted by name.
pub fn event_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let read_err = |source| TensorBoardError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let is_file = entry.file_type().map_err(read_err)?.is_file();
        if is_file && entry.file_name().to_string_lossy().contains("tfevents") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}
