//! Append each epoch's logs to a CSV file (Keras' `CSVLogger`).

use super::{Callback, TrainContext};
use crate::error::TrainError;
use crate::history::Logs;
use std::io::Write;
use std::path::PathBuf;

/// Writes one row per epoch: `epoch` then the log keys in sorted order. A resumed run first
/// drops the rows of epochs after its checkpoint (written by the interrupted run after that
/// checkpoint, or by a longer run resumed from an earlier one), then appends, so the file
/// ends up as the uninterrupted run would have written it.
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

    /// Keeps the header and the rows of epochs `1..=epochs_done`; returns the header's
    /// columns (without `epoch`), or `None` when there is no file.
    fn truncate_to(&self, epochs_done: usize) -> Result<Option<Vec<String>>, TrainError> {
        let io = |source| TrainError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io(source)),
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not UTF-8 text (invalid byte at offset {}), so the rows logged after the \
                     checkpoint cannot be removed; move the file aside to resume",
                    e.utf8_error().valid_up_to()
                ),
            ))
        })?;
        let mut lines = text.lines();
        let Some(header) = lines.next() else {
            return Ok(None);
        };
        let kept_row = |line: &&str| {
            line.split(',')
                .next()
                .and_then(|e| e.parse::<usize>().ok())
                .is_some_and(|e| (1..=epochs_done).contains(&e))
        };
        let mut kept = String::new();
        for line in std::iter::once(header).chain(lines.filter(kept_row)) {
            kept.push_str(line);
            kept.push('\n');
        }
        if kept != text {
            // A log file, not a checkpoint: its errors are the log's I/O errors.
            kiln_nn::checkpoint::write_atomic(&self.path, kept.as_bytes()).map_err(io)?;
        }
        Ok(Some(
            header.split(',').skip(1).map(str::to_string).collect(),
        ))
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

    fn on_train_begin(&mut self, ctx: &mut TrainContext) -> Result<(), TrainError> {
        let epochs_done = ctx.history.epochs.len();
        if epochs_done > 0 {
            self.columns = self.truncate_to(epochs_done)?;
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, ctx: &mut TrainContext, logs: &Logs) -> Result<(), TrainError> {
        if self.columns.is_none() {
            let cols: Vec<String> = logs.keys().cloned().collect();
            // A fresh run starts the file; a resumed one keeps the rows already there.
            let empty_file = std::fs::metadata(&self.path).map_or(true, |m| m.len() == 0);
            let fresh = ctx.history.epochs.is_empty() || empty_file;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;
    use crate::progress::ProgressMode;
    use kiln_nn::{Adam, Linear, ModuleBase};

    #[test]
    fn a_failed_rewrite_of_the_log_is_a_log_error_not_a_checkpoint_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        std::fs::write(&path, "epoch,loss\n1,0.5\n2,0.4\n").unwrap();
        // The temporary file of the atomic rewrite cannot be created: a directory is there.
        let tmp = dir
            .path()
            .join(format!(".metrics.csv.tmp-{}", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        let model = Linear::new(2, 2);
        let mut opt = Adam::new(model.parameters(), 1e-2);
        let mut ctx = TrainContext {
            model: &model,
            optimizer: &mut opt,
            epoch: 1,
            epochs: 3,
            global_step: 1,
            stop_training: false,
            history: History {
                epochs: vec![Default::default()],
            },
            progress: ProgressMode::Silent,
            notes: Vec::new(),
        };
        let err = CsvLogger::new(&path).on_train_begin(&mut ctx).unwrap_err();
        assert!(matches!(err, TrainError::Io { .. }), "{err:?}");
        let message = err.to_string();
        assert!(!message.contains("checkpoint"), "{message}");
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
    }
}
