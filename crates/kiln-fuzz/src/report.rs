//! What a run found: a panic hook that saves the input being run when anything panics (also in
//! a `panic = "abort"` build, where the hook runs before the abort), a watchdog for hangs, and
//! the run's summary.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The input being run: (index, bytes).
static CURRENT: Mutex<Option<(u64, Vec<u8>)>> = Mutex::new(None);
/// Milliseconds since the run started when the current input began; 0 when idle.
static BEGAN_MS: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Where findings go, and the hook that writes them.
pub struct Findings;

impl Findings {
    /// Installs the panic hook: it prints the message and location with the input's index
    /// and writes the input to `dir/<target>-<seed>-<index>.bin`.
    pub fn install(dir: &Path, target: &'static str, seed: u64) -> Findings {
        let dir: PathBuf = dir.into();
        std::panic::set_hook(Box::new(move |info| {
            let current = CURRENT.lock().map(|c| c.clone()).unwrap_or(None);
            let Some((index, bytes)) = current else {
                eprintln!("kiln-fuzz: panic outside an input: {info}");
                return;
            };
            let file = dir.join(format!("{target}-{seed}-{index}.bin"));
            let saved = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, &bytes));
            eprintln!(
                "kiln-fuzz: FINDING: input {index} (reproduce: kiln-fuzz {target} --seed {seed} \
                 --start {index} --iterations 1): {info}; input {}",
                match saved {
                    Ok(()) => format!("saved to {}", file.display()),
                    Err(e) => format!("not saved: {e}"),
                }
            );
            // With RUST_BACKTRACE=1, where it happened.
            let trace = std::backtrace::Backtrace::capture();
            if trace.status() == std::backtrace::BacktraceStatus::Captured {
                eprintln!("{trace}");
            }
        }));
        EPOCH.get_or_init(Instant::now);
        Findings
    }

    /// Marks the start of input `index`.
    pub fn begin(&self, index: u64, bytes: &[u8]) {
        if let Ok(mut c) = CURRENT.lock() {
            *c = Some((index, bytes.to_vec()));
        }
        BEGAN_MS.store(now_ms(), Ordering::SeqCst);
    }

    /// Marks the end of the current input.
    pub fn end(&self) {
        BEGAN_MS.store(0, Ordering::SeqCst);
    }
}

/// Aborts the process, naming the input, when one input runs longer than `limit`.
pub fn start_watchdog(limit: Duration) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250));
        let began = BEGAN_MS.load(Ordering::SeqCst);
        if began != 0 && now_ms().saturating_sub(began) > limit.as_millis() as u64 {
            let index = CURRENT
                .lock()
                .ok()
                .and_then(|c| c.as_ref().map(|(i, _)| *i));
            eprintln!("kiln-fuzz: FINDING: input {index:?} hangs (over {limit:?})");
            std::process::abort();
        }
    });
}

/// Counts of one run.
pub struct Summary {
    target: &'static str,
    seed: u64,
    /// Inputs run.
    pub inputs: u64,
    /// Inputs the reader accepted.
    pub accepted: u64,
    /// Inputs that panicked.
    pub crashes: u64,
    /// Wall time.
    pub seconds: f64,
}

impl Summary {
    /// An empty summary.
    pub fn new(target: &'static str, seed: u64) -> Summary {
        Summary {
            target,
            seed,
            inputs: 0,
            accepted: 0,
            crashes: 0,
            seconds: 0.0,
        }
    }

    /// Counts one input that returned.
    pub fn count(&mut self, accepted: bool) {
        self.inputs += 1;
        self.accepted += accepted as u64;
    }

    /// Prints the summary (and appends it to `record`); failure when anything crashed.
    pub fn finish(mut self, record: Option<&Path>) -> ExitCode {
        self.inputs += self.crashes;
        let line = json!({
            "target": self.target,
            "seed": self.seed,
            "inputs": self.inputs,
            "accepted": self.accepted,
            "rejected": self.inputs - self.accepted - self.crashes,
            "crashes": self.crashes,
            "seconds": (self.seconds * 10.0).round() / 10.0,
            "panic": if cfg!(panic = "abort") { "abort" } else { "unwind" },
        })
        .to_string();
        println!("{line}");
        if let Some(path) = record {
            use std::io::Write;
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = appended {
                eprintln!("kiln-fuzz: cannot record to {}: {e}", path.display());
            }
        }
        if self.crashes == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// The inputs saved in `path` (a file, or every file of a directory, by name), to replay.
pub fn saved_inputs(path: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect()
    } else {
        vec![path.into()]
    };
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect()
}
