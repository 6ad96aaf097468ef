//! Graph mode: the MLP and GPT train steps of [`crate::mlp`] and [`crate::gpt`] (same models,
//! optimizers, batches and timing) run as one compiled graph each (`kiln::compile` over
//! zero_grad + forward + cross_entropy + backward + step), plus compile times and batch-1
//! compiled inference.

use crate::timing::bench;
use crate::train::{self, WARM};
use crate::{gpt, mlp, Report, Selection};
use kiln::prelude::*;
use std::time::Instant;

/// Keys this workload reports.
pub const KEYS: &[&str] = &[
    "compile_mlp_first_call_s",
    "compile_mlp_trace_passes_ms",
    "compiled_mlp_train_step_ms",
    "compile_gpt_trace_passes_ms",
    "compiled_gpt_train_step_ms",
    "compiled_mlp_infer_b1_us",
    "gpt_step_peak_mib_eager",
    "gpt_step_peak_mib_compiled",
    "gpt_step_planned_mib_compiled",
];

/// Runs the selected measurements.
pub fn run(sel: &Selection, out: &mut Report) {
    if KEYS[..3].iter().any(|k| sel.wants(k)) {
        mlp_step(sel, out);
    }
    if KEYS[3..5].iter().chain(&KEYS[6..9]).any(|k| sel.wants(k)) {
        gpt_step(sel, out);
    }
    if sel.wants(KEYS[5]) {
        let model = mlp::model();
        let x = Tensor::randn([1, 1, 28, 28], DType::F32);
        let secs = no_grad(|| {
            let mut f = compile(|xs: &[Tensor]| vec![model.forward(&xs[0])]);
            bench(20, 200, || f.call(std::slice::from_ref(&x)))
        });
        out.push(KEYS[5], secs * 1e6);
    }
}

fn mlp_step(sel: &Selection, out: &mut Report) {
    let model = mlp::model();
    let xs = Tensor::randn([128, 1, 28, 28], DType::F32);
    let ys = Tensor::randint(0, 10, [128]);
    let mut opt = Adam::new(model.parameters(), 1e-3);
    let mut step =
        compile(|b: &[Tensor]| vec![train::step(|x| model.forward(x), &b[0], &b[1], &mut opt)]);
    let batch = [xs, ys];
    let t = Instant::now();
    step.call(&batch);
    let first = t.elapsed().as_secs_f64();
    let compile_ms = step.reports()[0].total_time().as_secs_f64() * 1e3;
    let ms = bench(WARM, 30, || step.call(&batch)) * 1e3;
    for (key, v) in [(KEYS[0], first), (KEYS[1], compile_ms), (KEYS[2], ms)] {
        if sel.wants(key) {
            out.push(key, v);
        }
    }
}

fn gpt_step(sel: &Selection, out: &mut Report) {
    let model = gpt::Gpt::new();
    let mut opt = AdamW::new(model.parameters(), 3e-4);
    let idx = Tensor::randint(0, 256, [16, 128]);
    let tgt = Tensor::randint(0, 256, [16, 128]).reshape([-1]);
    let mut train_step = |b: &[Tensor]| {
        let forward = |x: &Tensor| model.forward(x).reshape([-1, 256]);
        vec![train::step(forward, &b[0], &b[1], &mut opt)]
    };
    let batch = [idx, tgt];
    // Bytes of tensor buffers (64 KiB and up) a step holds at once at its peak beyond those
    // live before it (parameters and optimizer state are not counted), eager first, then
    // compiled: over its first call, which allocates the planned buffers the executor keeps
    // (and reuses at every later call) besides the graph's constants and what its kernels
    // allocate. The plan's own total (the planned buffers) is reported too.
    train_step(&batch);
    kiln::memory::start();
    train_step(&batch);
    let eager_peak = kiln::memory::stop() as f64 / (1 << 20) as f64;
    let mut step = compile(train_step);
    kiln::memory::start();
    step.call(&batch);
    let compiled_peak = kiln::memory::stop() as f64 / (1 << 20) as f64;
    let compile_ms = step.reports()[0].total_time().as_secs_f64() * 1e3;
    let planned = step.reports()[0].arena_bytes as f64 / (1 << 20) as f64;
    let ms = bench(WARM, 10, || step.call(&batch)) * 1e3;
    for (key, v) in [
        (KEYS[3], compile_ms),
        (KEYS[4], ms),
        (KEYS[6], eager_peak),
        (KEYS[7], compiled_peak),
        (KEYS[8], planned),
    ] {
        if sel.wants(key) {
            out.push(key, v);
        }
    }
}
