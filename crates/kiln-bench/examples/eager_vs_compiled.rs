//! Eager vs compiled train step of the benchmark's MLP, CNN or GPT, or of `kiln train`'s
//! digits CNN, in one process, in alternating rounds (an eager round, then a compiled one),
//! so that both see the same machine: on a noisy machine two separate runs can differ by 30%,
//! more than the effect being measured. Prints the median over rounds of each round's median
//! step time, and their ratio.
//!
//! `cargo run --release -p kiln-bench --example eager_vs_compiled [-- [--contended]
//! mlp|mlp-sgd|cnn|digits|gpt [ROUNDS]]` (defaults: mlp, 15 rounds of 40 steps; cnn 10, gpt 5 steps
//! per round). `--contended` runs a CPU-bound process beside the measurement (one busy
//! core, as a CI runner's neighbour or a server's batcher would be), stopped at the end.
//!
//! `eager_vs_compiled -- suite [ROUNDS]` measures the digits CNN, the MLP and the GPT step,
//! each quiet and then contended, and prints one JSON object: per workload and condition the
//! eager and compiled medians (ms) and the median of the per-round compiled/eager ratios
//! (`bench/eager_vs_compiled.sh` writes it to `bench/results/`).

use kiln::prelude::*;
use kiln_bench::{cnn, gpt, mlp, timing, train};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--burn") {
        // The competing process of `--contended`: spins until its parent kills it, or
        // exits once the parent is gone (killed before it could), so it never lingers.
        let parent = std::os::unix::process::parent_id();
        let mut x = 0u64;
        loop {
            for _ in 0..1 << 24 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        }
    }
    if args.first().map(String::as_str) == Some("--profile") {
        PROFILE.store(true, std::sync::atomic::Ordering::Relaxed);
        args.remove(0);
    }
    let rounds = |arg: Option<&String>, default: usize| match arg.map(|r| r.parse()) {
        None => default,
        Some(Ok(r)) if r > 0 => r,
        Some(_) => {
            eprintln!("eager_vs_compiled: ROUNDS must be a positive integer");
            std::process::exit(2);
        }
    };
    if args.first().map(String::as_str) == Some("suite") {
        suite(rounds(args.get(1), 9));
        return;
    }
    let contended = args.first().map(String::as_str) == Some("--contended");
    if contended {
        args.remove(0);
    }
    let _burner = contended.then(Burner::start);
    let workload = args.first().map_or("mlp", String::as_str);
    let rounds = rounds(args.get(1), 15);
    kiln::set_num_threads(2);
    let Some(r) = run_workload(workload, rounds) else {
        eprintln!(
            "eager_vs_compiled: unknown workload {workload:?} (mlp, mlp-sgd, cnn, digits or gpt)"
        );
        std::process::exit(2);
    };
    let (eager, compiled) = (r.eager_ms(), r.compiled_ms());
    println!(
        "{workload}{}: eager {eager:.3} ms, compiled {compiled:.3} ms, compiled/eager {:.3} \
         ({rounds} rounds)",
        if contended { " (contended)" } else { "" },
        compiled / eager
    );
}

/// Per round, the median step time (ms) of the eager and of the compiled step.
struct Rounds {
    eager: Vec<f64>,
    compiled: Vec<f64>,
}

impl Rounds {
    fn eager_ms(&self) -> f64 {
        timing::median(&mut self.eager.clone())
    }

    fn compiled_ms(&self) -> f64 {
        timing::median(&mut self.compiled.clone())
    }

    /// The median of the rounds' compiled/eager ratios (each round pairs the two on the
    /// same machine state).
    fn paired_ratio(&self) -> f64 {
        let mut r: Vec<f64> = self
            .compiled
            .iter()
            .zip(&self.eager)
            .map(|(c, e)| c / e)
            .collect();
        timing::median(&mut r)
    }
}

fn run_workload(workload: &str, rounds: usize) -> Option<Rounds> {
    Some(match workload {
        "mlp" => mlp_rounds(rounds, false),
        "mlp-sgd" => mlp_rounds(rounds, true),
        "gpt" => gpt_rounds(rounds),
        "cnn" => cnn_rounds(rounds, cnn::model, [64, 3, 32, 32]),
        "digits" => cnn_rounds(rounds, digits_cnn, [32, 1, 8, 8]),
        _ => return None,
    })
}

/// The digits CNN, MLP and GPT steps, quiet then contended, as one JSON object.
fn suite(rounds: usize) {
    kiln::set_num_threads(2);
    let mut out = serde_json::Map::new();
    for workload in ["digits", "mlp", "gpt"] {
        let mut per = serde_json::Map::new();
        for contended in [false, true] {
            let burner = contended.then(Burner::start);
            let r = run_workload(workload, rounds).expect("known workload");
            drop(burner);
            let round3 = |v: f64| (v * 1e3).round() / 1e3;
            let ratios: Vec<f64> = r
                .compiled
                .iter()
                .zip(&r.eager)
                .map(|(c, e)| round3(c / e))
                .collect();
            eprintln!(
                "{workload} {}: eager {:.3} ms, compiled {:.3} ms, paired compiled/eager {:.3}",
                if contended { "contended" } else { "quiet" },
                r.eager_ms(),
                r.compiled_ms(),
                r.paired_ratio()
            );
            per.insert(
                if contended { "contended" } else { "quiet" }.into(),
                serde_json::json!({
                    "eager_ms": round3(r.eager_ms()),
                    "compiled_ms": round3(r.compiled_ms()),
                    "compiled_over_eager": round3(r.paired_ratio()),
                    "round_ratios": ratios,
                }),
            );
        }
        out.insert(workload.into(), per.into());
    }
    out.insert("rounds".into(), rounds.into());
    println!(
        "{}",
        serde_json::to_string_pretty(&out).expect("results serialize")
    );
}

/// A CPU-bound child process (this example with `--burn`), killed when dropped.
struct Burner(std::process::Child);

impl Burner {
    fn start() -> Burner {
        let exe = std::env::current_exe().expect("eager_vs_compiled: own path");
        let child = std::process::Command::new(exe)
            .arg("--burn")
            .spawn()
            .expect("eager_vs_compiled: start the competing process");
        Burner(child)
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kiln train`'s digits CNN (`--model cnn` on `[1, 8, 8]` digits; dropout left out).
fn digits_cnn() -> Sequential {
    let pad1 = || Conv2dConfig::default().padding(1);
    Sequential::new()
        .append(Conv2d::with_config(1, 32, 3, pad1()))
        .append(ReLU::new())
        .append(Conv2d::with_config(32, 64, 3, pad1()))
        .append(ReLU::new())
        .append(MaxPool2d::new(2))
        .append(Flatten::new())
        .append(Linear::new(64 * 4 * 4, 128))
        .append(ReLU::new())
        .append(Linear::new(128, 10))
}

/// A CNN's Adam step on a random batch of `shape`, eager and compiled on two copies.
fn cnn_rounds(rounds: usize, make: fn() -> Sequential, shape: [usize; 4]) -> Rounds {
    let (m1, m2) = (make(), make());
    let mut o1 = Adam::new(m1.parameters(), 1e-3);
    let mut o2 = Adam::new(m2.parameters(), 1e-3);
    let batch = [
        Tensor::randn(shape, DType::F32),
        Tensor::randint(0, 10, [shape[0]]),
    ];
    let mut step =
        compile(|b: &[Tensor]| vec![train::step(|x| m2.forward(x), &b[0], &b[1], &mut o2)]);
    alternate(
        rounds,
        10,
        || train::step(|x| m1.forward(x), &batch[0], &batch[1], &mut o1),
        || step.call(&batch),
    )
}

/// `--profile`: print the per-op profile of the steps of the first round, eager then compiled.
static PROFILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Each round's median step time (ms) of `eager` and then of `compiled`.
fn alternate(
    rounds: usize,
    steps: usize,
    mut eager: impl FnMut() -> Tensor,
    mut compiled: impl FnMut() -> Vec<Tensor>,
) -> Rounds {
    if PROFILE.load(std::sync::atomic::Ordering::Relaxed) {
        eager();
        compiled();
        let profiled = |what: &str, run: &mut dyn FnMut()| {
            kiln::profile::reset();
            kiln::profile::enable();
            for _ in 0..steps {
                run();
            }
            kiln::profile::disable();
            eprintln!("== {what}, {steps} steps\n{}", kiln::profile::report());
        };
        profiled("eager", &mut || drop(eager()));
        profiled("compiled", &mut || drop(compiled()));
    }
    let (mut e, mut c) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        e.push(timing::bench(1, steps, &mut eager) * 1e3);
        c.push(timing::bench(1, steps, &mut compiled) * 1e3);
    }
    Rounds {
        eager: e,
        compiled: c,
    }
}

/// The MLP step with Adam, or with plain SGD (lr 1e-3) as JAX's `jit` reference step has
/// (`bench/jax_mlp_step.py`).
fn mlp_rounds(rounds: usize, sgd: bool) -> Rounds {
    let (m1, m2) = (mlp::model(), mlp::model());
    let opt = |m: &Sequential| -> Box<dyn Optimizer> {
        if sgd {
            Box::new(Sgd::new(m.parameters(), 1e-3))
        } else {
            Box::new(Adam::new(m.parameters(), 1e-3))
        }
    };
    let (mut o1, mut o2) = (opt(&m1), opt(&m2));
    let batch = [
        Tensor::randn([128, 1, 28, 28], DType::F32),
        Tensor::randint(0, 10, [128]),
    ];
    let mut step =
        compile(|b: &[Tensor]| vec![train::step(|x| m2.forward(x), &b[0], &b[1], &mut *o2)]);
    alternate(
        rounds,
        40,
        || train::step(|x| m1.forward(x), &batch[0], &batch[1], &mut *o1),
        || step.call(&batch),
    )
}

fn gpt_rounds(rounds: usize) -> Rounds {
    let (m1, m2) = (gpt::Gpt::new(), gpt::Gpt::new());
    let mut o1 = AdamW::new(m1.parameters(), 3e-4);
    let mut o2 = AdamW::new(m2.parameters(), 3e-4);
    let batch = [
        Tensor::randint(0, 256, [16, 128]),
        Tensor::randint(0, 256, [16, 128]).reshape([-1]),
    ];
    let logits = |m: &gpt::Gpt, x: &Tensor| m.forward(x).reshape([-1, 256]);
    let mut step =
        compile(|b: &[Tensor]| vec![train::step(|x| logits(&m2, x), &b[0], &b[1], &mut o2)]);
    alternate(
        rounds,
        5,
        || train::step(|x| logits(&m1, x), &batch[0], &batch[1], &mut o1),
        || step.call(&batch),
    )
}
