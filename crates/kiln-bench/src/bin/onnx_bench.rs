//! Kiln's side of the ONNX speed comparison (`bench/onnx.sh` drives it):
//!
//! ```text
//! onnx_bench export --out DIR                      # DIR/mlp.onnx, DIR/encoder.onnx
//! onnx_bench time --model mlp|encoder --batch B    # median µs of Kiln's compiled forward
//! onnx_bench time --file F.onnx --batch B --shape 3,224,224
//!                                                  # median µs of Kiln running an imported file
//! ```
//!
//! The models are made from seed 0, so both commands build the same weights: `mlp` is the
//! MLP 784-512-512-10, `encoder` a BERT-like encoder (4 post-norm layers, d_model 256, 4 heads,
//! feed-forward 2048) over a `[B, 128, 256]` input. `time` runs the compiled inference graph
//! at 2 compute threads (as onnxruntime is given) and prints one JSON line.

use kiln::graph::compile;
use kiln::onnx::{export_dynamic, save, ExportOptions};
use kiln::prelude::*;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

const SEQUENCE: usize = 128;
const D_MODEL: usize = 256;

fn model(name: &str) -> Result<(Box<dyn Module>, Vec<usize>), String> {
    manual_seed(0);
    Ok(match name {
        "mlp" => (Box::new(kiln_bench::mlp::dense()), vec![784]),
        "encoder" => (
            Box::new(TransformerEncoder::new(4, || {
                TransformerEncoderLayer::new(D_MODEL, 4)
            })),
            vec![SEQUENCE, D_MODEL],
        ),
        other => return Err(format!("unknown model `{other}` (mlp, encoder)")),
    })
}

fn input(features: &[usize], batch: usize) -> Tensor {
    let mut shape = vec![batch];
    shape.extend(features);
    Tensor::randn(shape, DType::F32)
}

fn export(out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for name in ["mlp", "encoder"] {
        let (m, features) = model(name)?;
        m.eval();
        let graph = no_grad(|| {
            compile(|x: &[Tensor]| vec![m.forward(&x[0])])
                .dynamic_batch()
                .dynamic_graph(&[input(&features, 1)])
        })
        .ok_or(format!("{name}: no graph with a symbolic batch"))?;
        let onnx = export_dynamic(&graph, &ExportOptions::default()).map_err(|e| e.to_string())?;
        save(&onnx, out.join(format!("{name}.onnx"))).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Median µs of `call`: 3 warm-up calls, then calls until 2 s have passed (at least 10, at
/// most 200).
fn median_us(mut call: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    for _ in 0..3 {
        call()?;
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    // With KILN_PROFILE set, the per-op table covers the timed calls only.
    kiln::profile::reset();
    while samples.len() < 10 || (samples.len() < 200 && started.elapsed().as_secs_f64() < 2.0) {
        let t = Instant::now();
        call()?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    if std::env::var_os("KILN_PROFILE").is_some() {
        eprintln!("{}", kiln::profile::report());
    }
    Ok(samples[samples.len() / 2])
}

/// Median µs of the compiled forward at `batch`.
fn time(name: &str, batch: usize) -> Result<f64, String> {
    set_num_threads(2);
    let (m, features) = model(name)?;
    m.eval();
    let x = input(&features, batch);
    let mut forward = compile(|x: &[Tensor]| vec![m.forward(&x[0])]);
    let args = [x];
    no_grad(|| {
        median_us(|| {
            drop(std::hint::black_box(forward.call(&args)));
            Ok(())
        })
    })
}

/// Median µs of an imported ONNX file (`kiln::onnx::load`, Kiln's passes) at `batch`, its one
/// input of `features` per row.
fn time_file(file: &Path, features: &[usize], batch: usize) -> Result<f64, String> {
    set_num_threads(2);
    let model = kiln::onnx::load(file).map_err(|e| e.to_string())?;
    let x = input(features, batch);
    let args = [x.operand()];
    median_us(|| {
        let out = model.run(&args).map_err(|e| e.to_string())?;
        drop(std::hint::black_box(out));
        Ok(())
    })
}

fn flag<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .ok_or_else(|| format!("{name} is missing"))
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("export") => export(Path::new(flag(args, "--out")?)),
        Some("time") => {
            let batch: usize = flag(args, "--batch")?
                .parse()
                .map_err(|e| format!("--batch: {e}"))?;
            if !(1..=256).contains(&batch) {
                return Err("--batch must be 1 to 256".into());
            }
            if let Ok(file) = flag(args, "--file") {
                let features = flag(args, "--shape")?
                    .split(',')
                    .map(|d| d.parse::<usize>().map_err(|e| format!("--shape: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                let us = time_file(Path::new(file), &features, batch)?;
                println!(
                    "{}",
                    serde_json::json!({"file": file, "batch": batch, "median_us": us})
                );
                return Ok(());
            }
            let name = flag(args, "--model")?;
            let us = time(name, batch)?;
            println!(
                "{}",
                serde_json::json!({"model": name, "batch": batch, "median_us": us})
            );
            Ok(())
        }
        _ => Err(
            "usage: onnx_bench export --out DIR | time --model mlp|encoder --batch B | \
                  time --file F.onnx --batch B --shape D,…"
                .into(),
        ),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("onnx_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
