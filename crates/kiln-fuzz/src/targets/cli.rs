//! The `kiln` command: real invocations (train, resume, eval with and without the recorded data
//! source, predict a row or a CSV file of rows, info) on a small CSV data set — its labels
//! class indices or class names — and the checkpoint it trains, with arguments replaced by odd
//! values, dropped, repeated or swapped, the CSV mutated, and the checkpoint's metadata
//! (model spec, data record) mutated. Every run
//! must end with exit code 0, 1 (an error, reported) or 2 (a usage error from the argument
//! parser): never a panic (code 101, "panicked"), a signal or a hang.

use super::checkpoint::mutate_file;
use super::Target;
use crate::mutate;
use crate::rng::Rng;
use serde_json::{json, Value};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Values that are wrong for some flag in some way; none parses to a large valid count, so a
/// run never legitimately takes long.
#[rustfmt::skip]
const ODD: &[&str] = &[
    "0", "-1", "", "nan", "NaN", "inf", "-inf", "1e309", "18446744073709551616", "0x10",
    "1.5", "-0", "🔥", "3", "csv:", "mnist:/nonexistent", "cifar10:/dev/null", "digits",
    "/dev/null", "-", "--", "1,2", "a,b,c", "1e-300",
];

/// Flags to insert with an odd value.
#[rustfmt::skip]
const FLAGS: &[&str] = &[
    "--epochs", "--batch-size", "--lr", "--threads", "--workers", "--seed",
    "--label-column", "--data", "--model", "--optimizer", "--resume", "--progress",
    "--compile",
];

/// Names worth swapping into the checkpoint's header metadata.
#[rustfmt::skip]
const NAMES: &[&str] = &[
    "kiln.model", "kiln.classes", "format", "pt", "mlp", "cnn", "kiln.data", "data",
    "label_column", "seed", "class_names", "feature_names",
];

/// Invocation templates: `{csv}`, `{ckpt}` and `{out}` are filled in per input.
#[rustfmt::skip]
const TEMPLATES: &[&[&str]] = &[
    &["train", "--model", "mlp", "--data", "csv:{csv}", "--epochs", "1", "--batch-size", "8",
      "--lr", "0.01", "--out", "{out}", "--name", "f", "--progress", "silent", "--threads", "1"],
    &["train", "--resume", "{ckpt}", "--model", "mlp", "--data", "csv:{csv}", "--epochs", "3",
      "--out", "{out}", "--name", "f", "--progress", "silent", "--threads", "1"],
    &["eval", "{ckpt}", "--data", "csv:{csv}"],
    &["eval", "{ckpt}"],
    &["predict", "{ckpt}", "0.5,1.5,-2,3"],
    &["predict", "{ckpt}", "{csv}"],
    &["predict", "{ckpt}", "{csv}", "--out", "{out}.csv", "--label-column", "label"],
    &["info", "{ckpt}"],
    &["export", "{ckpt}", "--out", "{out}/m/1"],
];

/// Class names the CSV's labels are sometimes written as (`kiln train` reads text labels).
const CLASS_NAMES: [&str; 3] = ["setosa", "versicolor", "virginica"];

/// The CLI target.
pub struct Cli {
    kiln: PathBuf,
    work: PathBuf,
    csv: String,
    checkpoint: Vec<(String, Vec<u8>)>,
    timeout: Duration,
}

/// A CSV table: 4 numeric features and a label of 3 classes.
fn table(rows: usize) -> String {
    let mut s = String::from("a,b,c,d,label\n");
    for i in 0..rows {
        let f = |k: usize| ((i * 7 + k * 13) % 17) as f64 / 4.0 - 2.0;
        s += &format!("{},{},{},{},{}\n", f(0), f(1), f(2), f(3), i % 3);
    }
    s
}

impl Cli {
    /// Trains the seed checkpoint with `kiln` (the binary under test) in `work`.
    pub fn new(kiln: &Path, work: &Path, timeout: Duration) -> Cli {
        // Absolute: each case runs in its own directory.
        let kiln = std::fs::canonicalize(kiln)
            .unwrap_or_else(|e| panic!("the kiln binary {}: {e}", kiln.display()));
        let kiln = kiln.as_path();
        let csv = table(60);
        let data = work.join("seed.csv");
        std::fs::write(&data, &csv).expect("seed CSV writes");
        let out = work.join("seed-runs");
        let status = Command::new(kiln)
            .args([
                "train",
                "--model",
                "mlp",
                "--epochs",
                "2",
                "--progress",
                "silent",
            ])
            .args(["--threads", "1", "--name", "seed", "--data"])
            .arg(format!("csv:{}", data.display()))
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("the kiln binary runs");
        assert!(status.success(), "the seed training run failed");
        let last = out.join("seed/checkpoints/last");
        let checkpoint = ["model.safetensors", "trainer.safetensors"]
            .iter()
            .map(|f| {
                let bytes = std::fs::read(last.join(f)).expect("seed checkpoint reads");
                (f.to_string(), bytes)
            })
            .collect();
        Cli {
            kiln: kiln.into(),
            work: work.into(),
            csv,
            checkpoint,
            timeout,
        }
    }

    fn mutate_args(rng: &mut Rng, args: &mut Vec<String>) {
        for _ in 0..1 + rng.below(2) {
            let i = rng.below(args.len());
            match rng.below(6) {
                0 | 1 if !args[i].starts_with("--") && i > 0 => {
                    args[i] = rng.pick(ODD).to_string();
                }
                2 if args.len() > 1 => {
                    args.remove(i);
                }
                3 => {
                    let dup = args[i].clone();
                    args.insert(rng.below(args.len() + 1), dup);
                }
                4 => {
                    let j = 1 + rng.below(args.len());
                    args.insert(j.min(args.len()), rng.pick(ODD).to_string());
                    args.insert(j.min(args.len()), rng.pick(FLAGS).to_string());
                }
                _ => {
                    let j = rng.below(args.len());
                    args.swap(i, j);
                }
            }
        }
    }

    /// The table with its class indices written as class names (the last column).
    fn named_labels(csv: &str) -> String {
        let mut out = String::new();
        for (i, line) in csv.lines().enumerate() {
            match line.rsplit_once(',') {
                Some((features, label)) if i > 0 => {
                    let name = label.parse::<usize>().ok().and_then(|c| CLASS_NAMES.get(c));
                    out += &format!("{features},{}\n", name.copied().unwrap_or(label));
                }
                _ => out += &format!("{line}\n"),
            }
        }
        out
    }

    fn mutate_csv(rng: &mut Rng, csv: &str) -> String {
        let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(lines.len());
            match rng.below(5) {
                0 => {
                    let mut cells: Vec<String> = lines[i].split(',').map(str::to_string).collect();
                    let c = rng.below(cells.len());
                    cells[c] = rng.pick(ODD).to_string();
                    lines[i] = cells.join(",");
                }
                1 => {
                    lines.truncate(i.max(1));
                }
                2 => {
                    let dup = lines[i].clone();
                    lines.insert(i, dup);
                }
                3 => lines[i].push_str(",9"),
                _ => {
                    let mut bytes = lines[i].clone().into_bytes();
                    mutate::bytes(rng, &mut bytes);
                    lines[i] = String::from_utf8_lossy(&bytes).into_owned();
                }
            }
        }
        lines.join("\n") + "\n"
    }
}

impl Target for Cli {
    fn name(&self) -> &'static str {
        "cli"
    }

    fn input(&self, rng: &mut Rng) -> Vec<u8> {
        let mut args: Vec<String> = rng.pick(TEMPLATES).iter().map(|s| s.to_string()).collect();
        let mut csv = self.csv.clone();
        let mut model = self.checkpoint[0].1.clone();
        if rng.below(4) == 0 {
            csv = Cli::named_labels(&csv);
        }
        match rng.below(4) {
            0 | 1 => Cli::mutate_args(rng, &mut args),
            2 => csv = Cli::mutate_csv(rng, &csv),
            _ => model = mutate_file(rng, &model, NAMES),
        }
        json!({ "args": args, "csv": csv, "model": model })
            .to_string()
            .into_bytes()
    }

    fn run(&self, input: &[u8]) -> bool {
        let v: Value = serde_json::from_slice(input).expect("inputs are JSON we wrote");
        let dir = self.work.join("case");
        let _ = std::fs::remove_dir_all(&dir);
        let ckpt = dir.join("ckpt");
        std::fs::create_dir_all(&ckpt).expect("case directory");
        let csv = dir.join("data.csv");
        std::fs::write(&csv, v["csv"].as_str().unwrap_or_default()).expect("CSV writes");
        let model: Vec<u8> = serde_json::from_value(v["model"].clone()).unwrap_or_default();
        std::fs::write(ckpt.join("model.safetensors"), model).expect("model writes");
        let trainer = &self.checkpoint[1];
        std::fs::write(ckpt.join(&trainer.0), &trainer.1).expect("trainer writes");
        let fill = |a: &str| {
            a.replace("{csv}", &csv.display().to_string())
                .replace("{ckpt}", &ckpt.display().to_string())
                .replace("{out}", &dir.join("runs").display().to_string())
        };
        let args: Vec<String> = v["args"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str()).map(fill).collect())
            .unwrap_or_default();
        // Relative paths an argument names (`--out 0`) land in the case directory.
        let mut child = Command::new(&self.kiln)
            .args(&args)
            .current_dir(&dir)
            .env("CI", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the kiln binary runs");
        // Read stderr beside the wait: a child blocked on a full pipe would look hung.
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait on kiln") {
                break status;
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                panic!("kiln {args:?} did not finish in {:?}", self.timeout);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stderr = reader.join().unwrap_or_default();
        // `--out /dev/null` is among the odd values; run as root, an atomic writer that renamed
        // a file over it turned the machine's /dev/null into a regular file (and broke every
        // later command reading it).
        let null = std::fs::metadata("/dev/null").map(|m| m.file_type());
        assert!(
            null.as_ref().is_ok_and(|t| t.is_char_device()),
            "kiln {args:?} replaced /dev/null: {null:?}"
        );
        match status.code() {
            Some(0) => true,
            Some(1 | 2) if !stderr.contains("panicked") && !stderr.contains("internal error") => {
                false
            }
            code => panic!("kiln {args:?} ended with {code:?}: {stderr}"),
        }
    }
}
