//! Exports a set of models to ONNX with Kiln's outputs beside them, for
//! `crates/kiln-onnx/tests/onnxruntime_check.py` (run by `.ci/run`) to check each file with
//! `onnx.checker` and run it in onnxruntime:
//!
//! ```text
//! cargo run --release -p kiln-onnx --example onnx_fixtures -- DIR
//! ```
//!
//! Each model is compiled with a symbolic batch and exported once; Kiln's eager outputs at two
//! batch sizes (2 and 5) are written as raw little-endian files, listed in `DIR/manifest.json`,
//! so the check also shows that one file serves every batch size.

use kiln::graph::compile;
use kiln::prelude::*;
use kiln_onnx::{export_dynamic, save, ExportOptions};
use std::path::Path;

/// The char transformer of `crates/kiln/examples/char_transformer.rs`, smaller: token and
/// position embeddings, causal decoder blocks, a final norm and the next-token head.
#[derive(Module)]
struct CharTransformer {
    tok_emb: Embedding,
    pos_emb: Embedding,
    blocks: Vec<CausalDecoderBlock>,
    ln_f: LayerNorm,
    head: Linear,
}

impl CharTransformer {
    fn new(vocab: usize) -> CharTransformer {
        CharTransformer {
            tok_emb: Embedding::new(vocab, 32),
            pos_emb: Embedding::new(16, 32),
            blocks: (0..2).map(|_| CausalDecoderBlock::new(32, 4)).collect(),
            ln_f: LayerNorm::new(32),
            head: Linear::new(32, vocab),
        }
    }
}

impl Module for CharTransformer {
    fn forward(&self, idx: &Tensor) -> Tensor {
        let t = idx.size(1);
        let positions = Tensor::arange(0.0, t as f64, 1.0, DType::I64);
        let mut x = &self.tok_emb.forward(idx) + &self.pos_emb.forward(&positions);
        for block in &self.blocks {
            x = block.forward(&x);
        }
        self.head.forward(&self.ln_f.forward(&x))
    }
}

/// A model to export: its name, what it computes, and an example input at batch `b`.
struct Case {
    name: &'static str,
    forward: Box<dyn Fn(&Tensor) -> Tensor>,
    input: Box<dyn Fn(usize) -> Tensor>,
}

fn case<M: Module + 'static>(
    name: &'static str,
    model: M,
    input: impl Fn(usize) -> Tensor + 'static,
) -> Case {
    model_eval(&model);
    Case {
        name,
        forward: Box::new(move |x| model.forward(x)),
        input: Box::new(input),
    }
}

/// Inference mode: dropout off, batch norm on its running statistics.
fn model_eval<M: Module>(model: &M) {
    model.eval();
}

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(shape.to_vec(), DType::F32)
}

fn tokens(b: usize, t: usize, vocab: usize) -> Tensor {
    let v: Vec<i64> = (0..b * t).map(|i| ((i * 7 + 3) % vocab) as i64).collect();
    Tensor::from_vec(v, [b, t])
}

fn cases() -> Vec<Case> {
    manual_seed(0);
    let padded = || Conv2dConfig::default().padding(1);
    vec![
        case(
            "mlp",
            Sequential::new()
                .append(Linear::new(784, 512))
                .append(ReLU::new())
                .append(Linear::new(512, 512))
                .append(ReLU::new())
                .append(Linear::new(512, 10)),
            |b| randn(&[b, 784]),
        ),
        case(
            "digits_cnn",
            Sequential::new()
                .append(Conv2d::with_config(1, 16, 3, padded()))
                .append(BatchNorm2d::new(16))
                .append(ReLU::new())
                .append(MaxPool2d::new(2))
                .append(Conv2d::with_config(16, 32, 3, padded()))
                .append(ReLU::new())
                .append(Flatten::new())
                .append(Dropout::new(0.25))
                .append(Linear::new(32 * 4 * 4, 10))
                .append(Softmax::new(1)),
            |b| randn(&[b, 1, 8, 8]),
        ),
        case("identity", Identity::new(), |b| randn(&[b, 7])),
        case("relu", ReLU::new(), |b| randn(&[b, 7])),
        case("silu", SiLU::new(), |b| randn(&[b, 7])),
        case("tanh", Tanh::new(), |b| randn(&[b, 7])),
        case("sigmoid", Sigmoid::new(), |b| randn(&[b, 7])),
        case("gelu", GELU::new(), |b| randn(&[b, 7])),
        case("softmax", Softmax::new(1), |b| randn(&[b, 6])),
        case("flatten", Flatten::new(), |b| randn(&[b, 2, 3, 4])),
        case("batch_norm1d", BatchNorm1d::new(5), |b| randn(&[b, 5, 3])),
        case("multihead_attention", MultiheadAttention::new(16, 4), |b| {
            randn(&[b, 6, 16])
        }),
        case(
            "transformer_encoder",
            TransformerEncoder::new(2, || TransformerEncoderLayer::new(16, 4)),
            |b| randn(&[b, 6, 16]),
        ),
        case("char_transformer", CharTransformer::new(40), |b| {
            tokens(b, 12, 40)
        }),
        case("log_softmax", LogSoftmax::new(1), |b| randn(&[b, 6])),
        case("layer_norm", LayerNorm::new(12), |b| randn(&[b, 5, 12])),
        case("rms_norm", RMSNorm::new(12), |b| randn(&[b, 5, 12])),
        case("group_norm", GroupNorm::new(2, 4), |b| randn(&[b, 4, 3, 3])),
        case("avg_pool", AvgPool2d::new(2), |b| randn(&[b, 3, 6, 6])),
        case("adaptive_avg_pool", AdaptiveAvgPool2d::new(1), |b| {
            randn(&[b, 3, 5, 5])
        }),
        case("conv1d", Conv1d::new(3, 4, 3), |b| randn(&[b, 3, 10])),
        case("conv_transpose2d", ConvTranspose2d::new(3, 2, 3), |b| {
            randn(&[b, 3, 4, 4])
        }),
        case("embedding", Embedding::new(50, 8), |b| tokens(b, 6, 50)),
        case(
            "lstm",
            LSTM::with_config(
                6,
                8,
                RecurrentConfig {
                    batch_first: true,
                    ..Default::default()
                },
            ),
            |b| randn(&[b, 5, 6]),
        ),
        case(
            "gru",
            GRU::with_config(
                6,
                8,
                RecurrentConfig {
                    batch_first: true,
                    ..Default::default()
                },
            ),
            |b| randn(&[b, 5, 6]),
        ),
        case(
            "transformer_encoder_layer",
            TransformerEncoderLayer::new(16, 4),
            |b| randn(&[b, 6, 16]),
        ),
        case(
            "causal_decoder_block",
            CausalDecoderBlock::new(16, 4),
            |b| randn(&[b, 6, 16]),
        ),
    ]
}

/// Raw little-endian bytes of a tensor (f32 or i64).
fn raw(t: &Tensor) -> Vec<u8> {
    match t.dtype() {
        DType::I64 => t
            .to_vec::<i64>()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        _ => t
            .to_dtype(DType::F32)
            .to_vec::<f32>()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    }
}

fn dtype_name(t: &Tensor) -> &'static str {
    if t.dtype() == DType::I64 {
        "int64"
    } else {
        "float32"
    }
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: onnx_fixtures DIR");
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("the fixture directory");
    let mut manifest = Vec::new();
    let mut failed = Vec::new();
    for c in cases() {
        let example = (c.input)(1);
        let forward = &c.forward;
        let graph = no_grad(|| {
            compile(|x: &[Tensor]| vec![forward(&x[0])])
                .dynamic_batch()
                .dynamic_graph(std::slice::from_ref(&example))
        });
        let Some(graph) = graph else {
            failed.push(format!("{}: no graph with a symbolic batch", c.name));
            continue;
        };
        let model = match export_dynamic(&graph, &ExportOptions::default()) {
            Ok(m) => m,
            Err(e) => {
                failed.push(format!("{}: {e}", c.name));
                continue;
            }
        };
        let file = format!("{}.onnx", c.name);
        save(&model, dir.join(&file)).expect("the ONNX file writes");
        let mut runs = Vec::new();
        for b in [2usize, 5] {
            let x = (c.input)(b);
            let y = no_grad(|| forward(&x));
            let (xin, yout) = (
                format!("{}.b{b}.in", c.name),
                format!("{}.b{b}.out", c.name),
            );
            std::fs::write(dir.join(&xin), raw(&x)).unwrap();
            std::fs::write(dir.join(&yout), raw(&y)).unwrap();
            runs.push(serde_json::json!({
                "input": {"file": xin, "shape": x.shape(), "dtype": dtype_name(&x)},
                "output": {"file": yout, "shape": y.shape()},
            }));
        }
        manifest.push(serde_json::json!({"name": c.name, "onnx": file, "runs": runs}));
        eprintln!("exported {}", c.name);
    }
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "models": manifest,
        "not_exported": failed,
    }))
    .unwrap();
    std::fs::write(dir.join("manifest.json"), text).unwrap();
    for f in &failed {
        eprintln!("not exported: {f}");
    }
    eprintln!("{} models exported, {} not", manifest.len(), failed.len());
}
