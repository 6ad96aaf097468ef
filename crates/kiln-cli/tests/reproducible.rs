//! Same seed, same bytes: two `kiln train` runs write byte-identical checkpoint files and
//! metrics, even with different thread counts (TensorBoard event files carry wall times, as
//! TensorFlow's do, and are not compared).

use std::path::Path;
use std::process::Command;

fn train(out: &Path, threads: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "train",
            "--epochs",
            "2",
            "--save-every-epoch",
            "--progress",
            "silent",
        ])
        .args(["--name", "r", "--threads", threads, "--out"])
        .arg(out)
        .env("CI", "1")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["epoch-1", "epoch-2", "last", "best"] {
        for f in ["model.safetensors", "trainer.safetensors"] {
            out.push(format!("checkpoints/{sub}/{f}"));
        }
    }
    out.push("metrics.csv".into());
    assert!(out.iter().all(|f| dir.join(f).is_file()), "{dir:?}");
    out
}

#[test]
fn two_runs_with_one_seed_write_the_same_bytes_at_any_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    train(&a, "1");
    train(&b, "2");
    for f in files(&a.join("r")) {
        let (x, y) = (
            std::fs::read(a.join("r").join(&f)).unwrap(),
            std::fs::read(b.join("r").join(&f)).unwrap(),
        );
        assert!(x == y, "{f} differs between the runs");
    }
}
