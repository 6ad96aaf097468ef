//! `kiln-fuzz`: seeded mutation fuzzing of Kiln's readers. Each target starts from valid
//! files Kiln writes, mutates them (bytes and structure), and feeds them to the reader; any
//! panic, abort, crash or hang is a finding. Input `i` of seed `s` is deterministic, so
//! `--seed s --start i --iterations 1` reproduces a finding. Build with
//! `--profile fuzz-abort` (panic = "abort") to check that rejection never relies on unwinding.
//!
//! Usage: `kiln-fuzz <checkpoint|graph|trainer|cli> [--seconds N] [--iterations N]
//! [--seed S] [--findings DIR] [--record FILE] [--kiln PATH]`
//!
//! Guide: *Errors and bad input* (`docs/src/errors.md`).

#![deny(missing_docs)]

use clap::Parser;
use kiln_fuzz::report::{self, Findings, Summary};
use kiln_fuzz::rng::Rng;
use kiln_fuzz::targets::{self, Target};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "kiln-fuzz", about = "Mutation fuzzing of Kiln's file readers")]
struct Args {
    /// What to fuzz: checkpoint (safetensors files), graph (graph files, loaded and run),
    /// trainer (training checkpoint directories, resumed) or cli (the kiln command).
    #[arg(value_parser = ["checkpoint", "graph", "onnx", "trainer", "cli"])]
    target: String,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Stop after this many inputs (whichever comes first).
    #[arg(long)]
    iterations: Option<u64>,
    /// Seed of the run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Index of the first input (to reproduce one).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Directory where inputs that crash are written.
    #[arg(long, default_value = "target/fuzz-findings")]
    findings: PathBuf,
    /// Append the run's summary (one JSON line) to this file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// An input running longer than this many seconds is a hang (the process aborts).
    #[arg(long, default_value_t = 60)]
    hang_seconds: u64,
    /// The kiln binary the cli target runs (default: the one beside this program).
    #[arg(long)]
    kiln: Option<PathBuf>,
    /// Run the saved inputs in this directory (or this one file) instead of mutating:
    /// findings, and the corpus of inputs that once crashed (crates/kiln-fuzz/corpus).
    #[arg(long)]
    replay: Option<PathBuf>,
}

/// The `kiln` binary beside this program's (both built into one target directory).
fn kiln_beside_me() -> PathBuf {
    let me = std::env::current_exe().expect("the program's own path");
    me.with_file_name(format!("kiln{}", std::env::consts::EXE_SUFFIX))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let work = tempfile::tempdir().expect("a temporary directory");
    let target: Box<dyn Target> = match args.target.as_str() {
        "checkpoint" => Box::new(targets::checkpoint::Checkpoint::new()),
        "graph" => Box::new(targets::graph::GraphFile::new(work.path())),
        "onnx" => Box::new(targets::onnx::OnnxModel::new(work.path())),
        "trainer" => Box::new(targets::trainer::TrainerDir::new(work.path())),
        _ => {
            let kiln = args.kiln.clone().unwrap_or_else(kiln_beside_me);
            // A process gets half the hang limit, so its own timeout names the arguments.
            let timeout = Duration::from_secs(args.hang_seconds / 2);
            Box::new(targets::cli::Cli::new(&kiln, work.path(), timeout))
        }
    };
    let findings = Findings::install(&args.findings, target.name(), args.seed);
    report::start_watchdog(Duration::from_secs(args.hang_seconds));
    let started = Instant::now();
    let mut summary = Summary::new(target.name(), args.seed);
    if let Some(path) = &args.replay {
        for (index, input) in report::saved_inputs(path).into_iter().enumerate() {
            findings.begin(index as u64, &input);
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.run(&input)));
            match run {
                Ok(accepted) => summary.count(accepted),
                Err(_) => summary.crashes += 1,
            }
            findings.end();
        }
        summary.seconds = started.elapsed().as_secs_f64();
        return summary.finish(args.record.as_deref());
    }
    let budget = Duration::from_secs_f64(args.seconds);
    let mut index = args.start;
    while started.elapsed() < budget && args.iterations.is_none_or(|n| summary.inputs < n) {
        let input = target.input(&mut Rng::for_input(args.seed, index));
        findings.begin(index, &input);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.run(&input))) {
            Ok(accepted) => summary.count(accepted),
            Err(_) => summary.crashes += 1,
        }
        findings.end();
        index += 1;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.finish(args.record.as_deref())
}
