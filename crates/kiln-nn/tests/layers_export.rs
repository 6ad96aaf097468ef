//! The Kiln → PyTorch direction of the checkpoint round trip.
//!
//! Builds Kiln models with the architectures of `fixtures/make_layer_fixtures.py`'s
//! `BUILDERS`, perturbs their parameters (and trains BatchNorm's running statistics), and
//! writes `<name>.safetensors` (the state dict, via `kiln_nn::checkpoint::save`) and
//! `<name>_io.safetensors` (`input`, Kiln's `output`, and final RNN states) for each.
//!
//! With `KILN_LAYER_EXPORT_DIR` set the files stay there for
//! `fixtures/check_kiln_checkpoint.py`, which loads each into the torch module with
//! `load_state_dict(strict=True)` and compares torch's outputs with Kiln's:
//!
//! ```text
//! KILN_LAYER_EXPORT_DIR=/tmp/kiln-export cargo test -p kiln-nn --test layers_export
//! /tmp/ref/bin/python crates/kiln-nn/tests/fixtures/check_kiln_checkpoint.py /tmp/kiln-export
//! ```
//!
//! Without it the files go to a temporary directory, are read back into fresh Kiln models
//! (which must reproduce the outputs exactly) and are removed.

mod layers_util;

use kiln_core::{manual_seed, no_grad, DType, Tensor};
use kiln_nn::*;
use layers_util::assert_close;
use std::path::Path;

/// Causal self-attention, the forward pass the `mha` case compares (PyTorch side:
/// `mha(x, x, x, attn_mask=causal)`); parameters are the attention's own.
struct CausalSelfAttention(MultiheadAttention);

impl ModuleBase for CausalSelfAttention {
    fn children(&self) -> Vec<(String, &dyn ModuleBase)> {
        self.0.children()
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        self.0.own_parameters()
    }
    fn set_own_training(&self, training: bool) {
        self.0.set_own_training(training)
    }
    fn own_training(&self) -> Option<bool> {
        self.0.own_training()
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for CausalSelfAttention {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.0.self_attention(x, true)
    }
}

fn build(name: &str) -> Box<dyn Module> {
    let rc = RecurrentConfig::default;
    match name {
        "linear" => Box::new(Linear::new(5, 3)),
        "conv1d" => Box::new(Conv1d::with_config(
            3,
            5,
            3,
            Conv1dConfig::default().stride(2).padding(1),
        )),
        "conv2d" => Box::new(Conv2d::with_config(
            3,
            4,
            3,
            Conv2dConfig::default().stride(2).padding(1),
        )),
        "conv2d_groups" => Box::new(Conv2d::with_config(
            4,
            6,
            (3, 2),
            Conv2dConfig::default()
                .stride((1, 2))
                .padding((1, 0))
                .dilation((2, 1))
                .groups(2),
        )),
        "conv_transpose2d" => Box::new(ConvTranspose2d::with_config(
            4,
            3,
            3,
            ConvTranspose2dConfig::default()
                .stride(2)
                .padding(1)
                .output_padding(1),
        )),
        "batchnorm2d_eval" => Box::new(BatchNorm2d::new(3)),
        "layernorm" => Box::new(LayerNorm::new([4, 6])),
        "groupnorm" => Box::new(GroupNorm::new(2, 6)),
        "rmsnorm" => Box::new(RMSNorm::new(8)),
        "embedding" => Box::new(Embedding::with_padding_idx(10, 4, Some(0))),
        "lstm" => Box::new(LSTM::with_config(
            5,
            7,
            rc().num_layers(2).batch_first(true),
        )),
        "lstm_bidir" => Box::new(LSTM::with_config(
            4,
            3,
            rc().num_layers(2).bidirectional(true),
        )),
        "gru" => Box::new(GRU::with_config(5, 6, rc().num_layers(2))),
        "gru_batch_first" => Box::new(GRU::with_config(3, 4, rc().batch_first(true))),
        "mha" => Box::new(CausalSelfAttention(MultiheadAttention::with_config(
            8,
            2,
            MultiheadAttentionConfig::default().batch_first(true),
        ))),
        "transformer_post" => Box::new(TransformerEncoderLayer::with_config(
            8,
            2,
            TransformerEncoderLayerConfig::default()
                .dim_feedforward(16)
                .batch_first(true),
        )),
        "transformer_pre" => Box::new(TransformerEncoderLayer::with_config(
            8,
            2,
            TransformerEncoderLayerConfig::default()
                .dim_feedforward(16)
                .norm_first(true)
                .activation(Activation::Gelu),
        )),
        "decoder_block" => Box::new(CausalDecoderBlock::new(8, 2)),
        "mlp" => Box::new(
            Sequential::new()
                .append(Linear::new(4, 8))
                .append(ReLU::new())
                .append(Linear::new(8, 3)),
        ),
        _ => unreachable!("{name}"),
    }
}

/// (name, input shape); the input is N(0, 1) except for the embedding's indices.
const CASES: &[(&str, &[usize])] = &[
    ("linear", &[2, 4, 5]),
    ("conv1d", &[2, 3, 9]),
    ("conv2d", &[2, 3, 7, 7]),
    ("conv2d_groups", &[2, 4, 6, 6]),
    ("conv_transpose2d", &[2, 4, 4, 4]),
    ("batchnorm2d_eval", &[4, 3, 5, 5]),
    ("layernorm", &[3, 4, 6]),
    ("groupnorm", &[2, 6, 3, 3]),
    ("rmsnorm", &[3, 8]),
    ("embedding", &[2, 3]),
    ("lstm", &[3, 6, 5]),
    ("lstm_bidir", &[5, 2, 4]),
    ("gru", &[6, 3, 5]),
    ("gru_batch_first", &[2, 4, 3]),
    ("mha", &[2, 5, 8]),
    ("transformer_post", &[2, 5, 8]),
    ("transformer_pre", &[5, 2, 8]),
    ("decoder_block", &[2, 5, 8]),
    ("mlp", &[6, 4]),
];

/// Moves every parameter off its (often constant) initial value and, for BatchNorm, trains
/// the running statistics on a few batches.
fn perturb(name: &str, m: &dyn Module, input_shape: &[usize]) {
    no_grad(|| {
        for p in m.parameters() {
            p.add_(&Tensor::randn(p.shape(), DType::F32).mul_scalar(0.2));
        }
    });
    if name.starts_with("batchnorm") {
        m.train();
        for _ in 0..3 {
            let x = Tensor::randn(input_shape, DType::F32).affine(1.5, 0.3);
            no_grad(|| m.forward(&x));
        }
    }
}

fn export(dir: &Path) {
    manual_seed(2024);
    for &(name, shape) in CASES {
        let m = build(name);
        perturb(name, m.as_ref(), shape);
        m.eval();
        let x = if name == "embedding" {
            Tensor::from_vec(vec![0i64, 3, 9, 2, 0, 5], [2, 3])
        } else {
            Tensor::randn(shape, DType::F32)
        };
        let mut io = StateDict::new();
        io.insert("input", x.clone());
        let out = m.forward(&x);
        io.insert("output", no_grad(|| out.detach()));
        checkpoint::save(&m.state_dict(), dir.join(format!("{name}.safetensors"))).unwrap();
        checkpoint::save(&io, dir.join(format!("{name}_io.safetensors"))).unwrap();
    }
}

/// Reads the exported files back into fresh Kiln models: same outputs, bit for bit.
fn verify_in_kiln(dir: &Path) {
    for &(name, _) in CASES {
        let m = build(name);
        m.eval();
        let sd = checkpoint::load(dir.join(format!("{name}.safetensors"))).unwrap();
        m.load_state_dict(&sd, true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let io = checkpoint::load(dir.join(format!("{name}_io.safetensors"))).unwrap();
        let x = io.get("input").unwrap();
        let y = m.forward(x);
        assert_close(name, &y, io.get("output").unwrap(), 0.0);
    }
}

#[test]
fn export_kiln_checkpoints_for_pytorch() {
    match std::env::var_os("KILN_LAYER_EXPORT_DIR") {
        Some(d) => {
            let dir = Path::new(&d);
            std::fs::create_dir_all(dir).unwrap();
            export(dir);
            verify_in_kiln(dir);
            eprintln!(
                "wrote {} Kiln checkpoints to {}",
                CASES.len(),
                dir.display()
            );
        }
        None => {
            let dir =
                std::env::temp_dir().join(format!("kiln-layer-export-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            export(&dir);
            verify_in_kiln(&dir);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
