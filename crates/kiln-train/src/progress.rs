//! Progress display: an `indicatif` bar per epoch on a terminal; plain one-line-per-epoch logs
//! when output is not a terminal or `CI` is set.

use crate::history::Logs;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// How training progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise (or when `CI` is set).
    #[default]
    Auto,
    /// Always a bar.
    Bar,
    /// One line per epoch.
    Plain,
    /// Nothing.
    Silent,
}

impl ProgressMode {
    fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto
                if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() =>
            {
                ProgressMode::Bar
            }
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        }
    }
}

/// Formats logs as `loss 0.1234  accuracy 0.9650  …` (loss first, `lr` last).
pub fn format_logs(logs: &Logs) -> String {
    let mut keys: Vec<&String> = logs.keys().collect();
    let rank = |k: &str| match k {
        "loss" => 0,
        "lr" => 3,
        k if k.starts_with("val_") => 2,
        _ => 1,
    };
    keys.sort_by_key(|k| {
        (
            rank(k),
            if k.starts_with("val_loss") { 0 } else { 1 },
            k.to_string(),
        )
    });
    keys.iter()
        .map(|k| {
            let v = logs[*k];
            if k.as_str() == "lr" {
                format!("{k} {v:.3e}")
            } else {
                format!("{k} {v:.4}")
            }
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// Prints a one-line note about the run (a callback stopped it, restored weights, …) the way
/// `mode` prints epoch lines: on stderr unless silent.
pub fn note(mode: ProgressMode, message: &str) {
    if mode.resolve() != ProgressMode::Silent {
        eprintln!("{message}");
    }
}

/// Per-epoch progress state.
pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    start: Instant,
    samples: usize,
}

impl Progress {
    /// Starts showing epoch `epoch` (from 0) of `epochs` with `batches` batches.
    pub fn start(mode: ProgressMode, epoch: usize, epochs: usize, batches: usize) -> Progress {
        let mode = mode.resolve();
        let bar = (mode == ProgressMode::Bar).then(|| {
            let b = ProgressBar::new(batches as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:25}] {pos}/{len} {msg} eta {eta}",
                )
                .expect("progress template")
                .progress_chars("=> "),
            );
            b.set_prefix(format!("{}/{}", epoch + 1, epochs));
            b
        });
        Progress {
            mode,
            bar,
            start: Instant::now(),
            samples: 0,
        }
    }

    /// Records a batch of `n` samples with its running loss and accuracy (if tracked).
    pub fn batch(&mut self, n: usize, loss: f64, accuracy: Option<f64>) {
        self.samples += n;
        if let Some(b) = &self.bar {
            let rate = self.samples as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            let acc = accuracy.map(|a| format!(" acc {a:.4}")).unwrap_or_default();
            b.set_message(format!("loss {loss:.4}{acc} {rate:.0} samples/s"));
            b.inc(1);
        }
    }

    /// Ends the epoch, printing its logs.
    pub fn finish(self, epoch: usize, epochs: usize, logs: &Logs) {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = self.samples as f64 / secs.max(1e-9);
        let line = format!(
            "epoch {}/{}  {}  {secs:.2}s  {rate:.0} samples/s",
            epoch + 1,
            epochs,
            format_logs(logs)
        );
        match (self.mode, self.bar) {
            (_, Some(b)) => b.finish_with_message(format_logs(logs)),
            (ProgressMode::Plain, None) => eprintln!("{line}"),
            _ => {}
        }
    }
}
