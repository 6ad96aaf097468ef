//! Append each epoch's logs to a CSV file (Keras' `CSVLogger`).

use super::{Callback, TrainContext};
use crate::error::TrainError;
use crate::history::Logs;
use std::io::Write;
use std::path::PathBuf;

/// Writes one row per epoch: `epoch` then the log keys in sorted order. A resumed run appends.
pub struct CsvLogger {
    path: PathBuf,
    columns: Option<Vec<String>>,
}

impl CsvLogger {
    /// Logs to `path` (parent directories are created).
    pub fn new(path: impl Into<PathBuf>) -> CsvLogger {
        CsvLogger {
            path: path.into(),
            columns: None,
        }
    }

    fn write(&self, line: &str, append: bool) -> Result<(), TrainError> {
        let io = |source| TrainError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&self.path)
            .map_err(io)?;
        writeln!(f, "{line}").map_err(io)
    }
}

impl Callback for CsvLogger {
    fn name(&self) -> String {
        "csv_logger".into()
    }

    fn on_epoch_end(&mut self, ctx: &mut TrainContext, logs: &Logs) -> Result<(), TrainError> {
        if self.columns.is_none() {
            let cols: Vec<String> = logs.keys().cloned().collect();
            // A fresh run starts the file; a resumed one keeps the rows already there.
            let fresh = ctx.history.epochs.is_empty() || !self.path.exists();
            if fresh {
                self.write(&format!("epoch,{}", cols.join(",")), false)?;
            }
            self.columns = Some(cols);
        }
        let cols = self.columns.as_ref().unwrap();
        let vals: Vec<String> = cols
            .iter()
            .map(|c| logs.get(c).map(|v| format!("{v}")).unwrap_or_default())
            .collect();
        self.write(&format!("{},{}", ctx.epoch + 1, vals.join(",")), true)
    }
}
