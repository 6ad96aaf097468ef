//! `cargo run --release -p kiln-bench [-- --threads N] [--only KEY[,KEY…]]… [--profile]`
//!
//! Prints the measured workloads as JSON on stdout. Threads: `--threads`, else
//! `KILN_NUM_THREADS`, else 2 (the setting the PyTorch reference numbers use). `--profile`
//! (or `KILN_PROFILE=1`) turns on Kiln's per-op profiler for the selected workloads and prints
//! its table on stderr afterwards; profiled timings include the profiler's overhead.
//!
//! Guide: *Performance* (`docs/src/performance.md`).

#![deny(missing_docs)]

use kiln_bench::{Selection, WORKLOADS};
use std::process::ExitCode;

const DEFAULT_THREADS: usize = 2;

const USAGE: &str = "\
usage: kiln-bench [--threads N] [--only KEY[,KEY...]]... [--profile] [--list]

  --threads N   compute threads (default: $KILN_NUM_THREADS, else 2)
  --only KEY    measure only these keys or workload families (repeatable, comma-separated)
  --profile     profile the selected workloads per op (also KILN_PROFILE=1); table on stderr
  --list        print the workload families and their keys, then exit";

struct Args {
    threads: usize,
    only: Vec<String>,
    profile: bool,
    list: bool,
}

fn parse_threads(v: &str, from: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{from}: expected a positive integer, got {v:?}")),
    }
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut threads = None;
    let mut only = Vec::new();
    let mut list = false;
    let mut profile = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--threads" => threads = Some(parse_threads(&value("--threads")?, "--threads")?),
            "--only" => only.extend(
                value("--only")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            "--profile" => profile = true,
            "--list" => list = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let threads = match threads {
        Some(n) => n,
        None => match std::env::var("KILN_NUM_THREADS") {
            Ok(v) if !v.trim().is_empty() => parse_threads(&v, "KILN_NUM_THREADS")?,
            _ => DEFAULT_THREADS,
        },
    };
    Ok(Some(Args {
        threads,
        only,
        profile,
        list,
    }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kiln-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for w in WORKLOADS {
            println!("{}: {}", w.name, w.keys.join(", "));
        }
        return ExitCode::SUCCESS;
    }
    let sel = if args.only.is_empty() {
        Selection::all()
    } else {
        match Selection::only(&args.only) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("kiln-bench: {e}");
                return ExitCode::from(2);
            }
        }
    };
    kiln::set_num_threads(args.threads);
    eprintln!(
        "kiln-bench: {} thread(s){}",
        kiln::num_threads(),
        if cfg!(debug_assertions) {
            " — WARNING: debug build, numbers are meaningless; use --release"
        } else {
            ""
        }
    );
    let profile = args.profile || kiln::profile::is_enabled();
    if profile {
        kiln::profile::reset();
        kiln::profile::enable();
        eprintln!("kiln-bench: per-op profiling on (timings include its overhead)");
    }
    let report = kiln_bench::run(&sel);
    if profile {
        kiln::profile::disable();
        kiln::profile::print();
    }
    println!("{}", report.to_json());
    ExitCode::SUCCESS
}
