//! The serving benchmark's Kiln-side tools (`bench/serve.sh` drives them):
//!
//! ```text
//! serve_bench models --out REPO
//! serve_bench grpc-load --addr HOST:PORT --model M --shape 1,784 --concurrency C --seconds S
//! ```
//!
//! `models` writes the benchmark's model repository: `mlp` (784-512-512-10, ReLU) and `cnn`
//! (the peer's digits CNN: conv 1→16 and 16→32, 3×3 with padding 1, ReLU, flatten, linear
//! 2048→10), seeded random weights, each a graph with a symbolic batch, batching up to 32.
//!
//! `grpc-load` is a closed-loop load generator for `inference.GRPCInferenceService/ModelInfer`
//! (Kiln or any Open Inference Protocol server, MLServer included): C requests in flight, each
//! sent again as soon as it is answered, for S seconds, with raw FP32 input of the given shape
//! (input `input__0`). It prints one JSON line with the fields of `bench/serve/wrk_infer.lua`
//! (requests, errors, rps, p50/p90/p99/mean in µs), so HTTP and gRPC rows read alike.

use kiln::graph::artifact;
use kiln::prelude::*;
use kiln_serve::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use kiln_serve::grpc::proto::model_infer_request::InferInputTensor;
use kiln_serve::grpc::proto::ModelInferRequest;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: serve_bench models --out REPO
       serve_bench grpc-load --addr HOST:PORT --model M --shape D,D,... --concurrency C --seconds S";

/// Compiles `model` for inputs shaped `[batch, ..example_dims]` and saves it as version 1.
fn save(model: &Sequential, example: &[usize], repo: &Path, name: &str) -> Result<(), String> {
    let dir = repo.join(name).join("1");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let graph = no_grad(|| {
        compile(|x: &[Tensor]| vec![model.forward(&x[0])])
            .dynamic_batch()
            .dynamic_graph(&[Tensor::zeros(example.to_vec(), DType::F32)])
    })
    .ok_or_else(|| format!("{name} does not compile with a symbolic batch"))?;
    artifact::save_dynamic(&graph, dir.join("model.kgraph")).map_err(|e| e.to_string())?;
    let config = repo.join(name).join("config.toml");
    std::fs::write(&config, "max_batch_size = 32\n").map_err(|e| e.to_string())
}

fn models(out: &Path) -> Result<(), String> {
    manual_seed(0);
    let mlp = kiln_bench::mlp::dense();
    save(&mlp, &[1, 784], out, "mlp")?;
    let padded = || Conv2dConfig::default().padding(1);
    let cnn = Sequential::new()
        .append(Conv2d::with_config(1, 16, 3, padded()))
        .append(ReLU::new())
        .append(Conv2d::with_config(16, 32, 3, padded()))
        .append(ReLU::new())
        .append(Flatten::new())
        .append(Linear::new(32 * 8 * 8, 10));
    save(&cnn, &[1, 1, 8, 8], out, "cnn")?;
    eprintln!("wrote {}/mlp and {}/cnn", out.display(), out.display());
    Ok(())
}

struct Load {
    addr: String,
    model: String,
    shape: Vec<i64>,
    concurrency: usize,
    seconds: f64,
}

/// Microseconds at quantile `q` of sorted latencies.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn grpc_load(load: Load) -> Result<serde_json::Value, String> {
    let elements: i64 = load.shape.iter().product();
    let raw: Vec<u8> = (0..elements)
        .flat_map(|i| ((i % 97) as f32 / 97.0).to_le_bytes())
        .collect();
    let request = ModelInferRequest {
        model_name: load.model.clone(),
        inputs: vec![InferInputTensor {
            name: "input__0".into(),
            datatype: "FP32".into(),
            shape: load.shape.clone(),
            ..Default::default()
        }],
        raw_input_contents: vec![raw],
        ..Default::default()
    };
    // One HTTP/2 connection per 8 streams in flight, as a client pool would keep.
    let mut channels = Vec::new();
    for _ in 0..load.concurrency.div_ceil(8) {
        let c = GrpcInferenceServiceClient::connect(format!("http://{}", load.addr))
            .await
            .map_err(|e| format!("connecting to {}: {e}", load.addr))?
            .max_decoding_message_size(64 << 20);
        channels.push(c);
    }
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(load.seconds);
    let workers: Vec<_> = (0..load.concurrency)
        .map(|i| {
            let mut client = channels[i % channels.len()].clone();
            let request = request.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < until {
                    let t0 = Instant::now();
                    match client.model_infer(request.clone()).await {
                        Ok(_) => latencies.push(t0.elapsed().as_micros() as u64),
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.await.map_err(|e| e.to_string())?;
        latencies.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let mean = latencies.iter().sum::<u64>() as f64 / latencies.len().max(1) as f64;
    Ok(json!({
        "requests": latencies.len() as u64 + errors,
        "errors": errors,
        "duration_s": secs,
        "rps": latencies.len() as f64 / secs,
        "p50_us": quantile(&latencies, 0.5),
        "p90_us": quantile(&latencies, 0.9),
        "p99_us": quantile(&latencies, 0.99),
        "mean_us": mean,
    }))
}

fn flag(args: &[String], name: &str) -> Result<String, String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .ok_or_else(|| format!("{name} is missing\n{USAGE}"))
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("models") => models(Path::new(&flag(args, "--out")?)),
        Some("grpc-load") => {
            let number = |name: &str| -> Result<f64, String> {
                flag(args, name)?
                    .parse()
                    .map_err(|e| format!("{name}: {e}"))
            };
            let load = Load {
                addr: flag(args, "--addr")?,
                model: flag(args, "--model")?,
                shape: flag(args, "--shape")?
                    .split(',')
                    .map(|d| d.parse().map_err(|e| format!("--shape: {e}")))
                    .collect::<Result<_, _>>()?,
                concurrency: number("--concurrency")? as usize,
                seconds: number("--seconds")?,
            };
            // A closed loop of 1 to 1024 clients for up to an hour: beyond that the numbers
            // mean nothing, and `Duration` refuses what is negative or not finite.
            if !(1..=1024).contains(&load.concurrency) {
                return Err("--concurrency must be 1 to 1024".into());
            }
            if !(load.seconds > 0.0 && load.seconds <= 3600.0) {
                return Err("--seconds must be above 0 and at most 3600".into());
            }
            if load.shape.iter().any(|&d| d <= 0) || load.shape.iter().product::<i64>() > 1 << 24 {
                return Err("--shape needs positive dims, at most 2^24 elements".into());
            }
            // Two client threads at most, as wrk runs with -t2: the load generator shares the
            // machine with the server it measures.
            let threads = if load.concurrency > 1 { 2 } else { 1 };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let result = runtime.block_on(grpc_load(load))?;
            println!("{result}");
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
