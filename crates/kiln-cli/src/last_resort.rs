//! The last resort for bugs: a panic anywhere becomes one line on stderr and exit code 101,
//! instead of Rust's multi-line report. Bad input must never get here; it is reported as an
//! ordinary error by the command that reads it.

use std::panic::{self, PanicHookInfo};
use std::process::ExitCode;

/// The exit code of a run that panicked (Rust's own code for a panicking `main`).
pub const PANIC_EXIT_CODE: u8 = 101;

fn message(info: &PanicHookInfo) -> String {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    // One line, whatever the panic message held.
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match info.location() {
        Some(at) => format!(
            "error: internal error: {text} (at {}:{})",
            at.file(),
            at.line()
        ),
        None => format!("error: internal error: {text}"),
    }
}

/// Runs `command`, turning a panic (on this thread or one it joined) into one line on stderr
/// and [`PANIC_EXIT_CODE`].
pub fn run(command: impl FnOnce() -> ExitCode) -> ExitCode {
    panic::set_hook(Box::new(|info| eprintln!("{}", message(info))));
    match panic::catch_unwind(panic::AssertUnwindSafe(command)) {
        Ok(code) => code,
        Err(_) => ExitCode::from(PANIC_EXIT_CODE),
    }
}
