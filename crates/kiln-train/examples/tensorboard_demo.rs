//! Writes a TensorBoard log directory with known contents, for `tests/tensorboard_check.py`
//! (run by `.ci/run`) to verify with the real `tensorboard` package:
//!
//! ```text
//! cargo run -q -p kiln-train --example tensorboard_demo -- /tmp/tb-demo
//! python tests/tensorboard_check.py /tmp/tb-demo
//! tensorboard --logdir /tmp/tb-demo   # to look at it
//! ```
//!
//! Contents (keep in sync with `tensorboard_check.py`), for step `s` in `0..STEPS` at wall
//! time `1_700_000_000 + s + 0.5`:
//! - main run: `loss/train` = `1 / (s + 1)`, `accuracy` = `s / STEPS`;
//!   text `notes` = `"step {s}: **loss** {loss:.4}"`;
//! - `add_scalars("loss", [("train", 1 / (s + 1)), ("val", 1.25 / (s + 1))])`, i.e. runs
//!   `loss_train` and `loss_val` with tag `loss`;
//! - at step 0 only: text `config` (a Markdown table with non-ASCII text);
//! - then `edge` = 1e-3 at step -7 and `edge` = -2.5 at step 2^40, at wall time 1_800_000_000
//!   (in that order: TensorBoard drops a tag's points when its step goes backwards).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kiln_train::tensorboard::{SummaryWriter, TensorBoardError};

const STEPS: i64 = 25;
const CONFIG_TEXT: &str = "| key | value |\n|-----|-------|\n| lr | 0.001 |\n| model | Mlp → 10 |";

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: tensorboard_demo <log dir>");
        return ExitCode::from(2);
    };
    match write_demo(&dir) {
        Ok(()) => {
            println!("wrote TensorBoard demo logs to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tensorboard_demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_demo(dir: &std::path::Path) -> Result<(), TensorBoardError> {
    // The wall clock reads a value this program sets, so wall times are known exactly.
    let now = Arc::new(AtomicU64::new(1_700_000_000f64.to_bits()));
    let set_time = |t: f64| now.store(t.to_bits(), Ordering::SeqCst);
    let clock = {
        let now = Arc::clone(&now);
        move || f64::from_bits(now.load(Ordering::SeqCst))
    };

    let mut w = SummaryWriter::builder(dir).wall_clock(clock).build()?;
    for s in 0..STEPS {
        set_time(1_700_000_000.0 + s as f64 + 0.5);
        let loss = 1.0 / (s as f64 + 1.0);
        w.add_scalar("loss/train", loss, s)?;
        w.add_scalar("accuracy", s as f64 / STEPS as f64, s)?;
        w.add_scalars(
            "loss",
            &[("train", loss), ("val", 1.25 / (s as f64 + 1.0))],
            s,
        )?;
        w.add_text("notes", &format!("step {s}: **loss** {loss:.4}"), s)?;
        if s == 0 {
            w.add_text("config", CONFIG_TEXT, 0)?;
        }
    }
    set_time(1_800_000_000.0);
    w.add_scalar("edge", 1e-3, -7)?;
    w.add_scalar("edge", -2.5, 1 << 40)?;
    w.close()
}
