//! State dicts and modes of layers: corrupt checkpoints, mismatched state dicts, train/eval
//! reaching nested submodules, and save → load round trips.

mod layers_util;

use kiln_core::{manual_seed, no_grad, DType, Tensor};
use kiln_nn::checkpoint::{self, CheckpointError};
use kiln_nn::*;
use layers_util::{assert_close, fixture_dir, load_case};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-layers-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn corrupt_and_truncated_checkpoints_are_errors() {
    let dir = temp_dir("corrupt");
    let good = fixture_dir().join("transformer_post.safetensors");
    let bytes = std::fs::read(&good).unwrap();
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.join(format!("cut{cut}.safetensors"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        assert!(
            matches!(checkpoint::load(&p), Err(CheckpointError::Format { .. })),
            "truncated at {cut} bytes"
        );
    }
    // A header length pointing far past the end, and a header that is not JSON.
    let mut lying = bytes.clone();
    lying[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let p = dir.join("lying.safetensors");
    std::fs::write(&p, &lying).unwrap();
    assert!(checkpoint::load(&p).is_err());
    let mut garbled = bytes.clone();
    for b in &mut garbled[8..40] {
        *b = b'#';
    }
    std::fs::write(&p, &garbled).unwrap();
    assert!(matches!(
        checkpoint::load(&p),
        Err(CheckpointError::Format { .. })
    ));
    assert!(matches!(
        checkpoint::load(dir.join("absent.safetensors")),
        Err(CheckpointError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_shapes_are_reported_by_name_and_nothing_is_written() {
    let (sd, _) = load_case("transformer_post");
    // d_model 8 but dim_feedforward 32 instead of 16.
    let layer = TransformerEncoderLayer::with_config(
        8,
        2,
        TransformerEncoderLayerConfig::default().dim_feedforward(32),
    );
    let before = layer.linear1.weight.to_f64_vec();
    let norm_before = layer.norm1.weight.as_ref().unwrap().to_f64_vec();
    let err = layer.load_state_dict(&sd, true).unwrap_err();
    let names: Vec<&str> = err.mismatched.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["linear1.weight", "linear1.bias", "linear2.weight"]);
    assert_eq!(err.mismatched[0].1, vec![32, 8]);
    assert_eq!(err.mismatched[0].2, vec![16, 8]);
    assert!(err.missing.is_empty() && err.unexpected.is_empty());
    let msg = err.to_string();
    assert!(msg.contains("size mismatch for linear2.weight"), "{msg}");
    // Nothing was copied, not even the entries that did fit.
    assert_eq!(layer.linear1.weight.to_f64_vec(), before);
    assert_eq!(
        layer.norm1.weight.as_ref().unwrap().to_f64_vec(),
        norm_before
    );
}

#[test]
fn missing_and_unexpected_keys_are_listed() {
    let (sd, _) = load_case("lstm"); // two layers, batch_first
    let one_layer = LSTM::new(5, 7);
    let err = one_layer.load_state_dict(&sd, true).unwrap_err();
    assert_eq!(
        err.unexpected,
        ["bias_hh_l1", "bias_ih_l1", "weight_hh_l1", "weight_ih_l1"]
    );
    assert!(err.missing.is_empty());
    // Non-strict loading takes the matching keys.
    one_layer.load_state_dict(&sd, false).unwrap();
    assert_eq!(
        one_layer
            .state_dict()
            .get("weight_hh_l0")
            .unwrap()
            .to_f64_vec(),
        sd.get("weight_hh_l0").unwrap().to_f64_vec()
    );
    let three = LSTM::with_config(5, 7, RecurrentConfig::default().num_layers(3));
    let err = three.load_state_dict(&sd, true).unwrap_err();
    assert_eq!(err.missing.len(), 4);
    assert!(err.missing.contains(&"weight_ih_l2".to_string()));
    // A model without biases does not expect them.
    let nobias = LSTM::with_config(5, 7, RecurrentConfig::default().num_layers(2).bias(false));
    let err = nobias.load_state_dict(&sd, true).unwrap_err();
    assert_eq!(err.unexpected.len(), 4);
}

#[derive(Module)]
struct Net {
    features: Sequential,
    blocks: ModuleList<TransformerEncoderLayer>,
    rnn: Option<GRU>,
    head: Linear,
}

fn net() -> Net {
    Net {
        features: Sequential::new()
            .append(Linear::new(4, 8))
            .append(BatchNorm1d::new(8))
            .append(Dropout::new(0.5)),
        blocks: (0..2)
            .map(|_| {
                TransformerEncoderLayer::with_config(
                    8,
                    2,
                    TransformerEncoderLayerConfig::default().dim_feedforward(8),
                )
            })
            .collect(),
        rnn: Some(GRU::with_config(
            8,
            8,
            RecurrentConfig::default().num_layers(2).dropout(0.5),
        )),
        head: Linear::new(8, 2),
    }
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Tensor {
        // x: [T, B, 4]
        let (t, b) = (x.shape()[0], x.shape()[1]);
        let h = self
            .features
            .forward(&x.reshape([t * b, 4]))
            .reshape([t, b, 8]);
        let h = self.blocks.iter().fold(h, |h, blk| blk.forward(&h));
        let h = self.rnn.as_ref().unwrap().forward(&h);
        self.head.forward(&h)
    }
}

fn modes(m: &dyn ModuleBase) -> Vec<bool> {
    let mut out = Vec::new();
    fn walk(m: &dyn ModuleBase, out: &mut Vec<bool>) {
        if let Some(t) = m.own_training() {
            out.push(t);
        }
        for (_, c) in m.children() {
            walk(c, out);
        }
    }
    walk(m, &mut out);
    out
}

#[test]
fn train_and_eval_reach_nested_submodules() {
    let model = net();
    let flags = modes(&model);
    // BatchNorm, Dropout, 2 × (MHA + 3 Dropouts), GRU.
    assert_eq!(flags.len(), 11);
    assert!(flags.iter().all(|&t| t) && model.is_training());
    model.eval();
    assert!(modes(&model).iter().all(|&t| !t));
    assert!(!model.is_training());
    assert!(!model.blocks[1].dropout2.is_training());

    // Evaluation is deterministic and leaves the running statistics alone.
    let x = Tensor::randn([3, 5, 4], DType::F32);
    let y1 = no_grad(|| model.forward(&x));
    let y2 = no_grad(|| model.forward(&x));
    assert_eq!(y1.to_f64_vec(), y2.to_f64_vec());
    let bn_count = model
        .state_dict()
        .get("features.1.num_batches_tracked")
        .unwrap()
        .item::<i64>();
    assert_eq!(bn_count, 0);

    // Training mode: dropout is random again and the batch count moves.
    model.train();
    assert!(modes(&model).iter().all(|&t| t));
    let y3 = no_grad(|| model.forward(&x));
    let y4 = no_grad(|| model.forward(&x));
    assert_ne!(y3.to_f64_vec(), y4.to_f64_vec());
    let bn_count = model
        .state_dict()
        .get("features.1.num_batches_tracked")
        .unwrap()
        .item::<i64>();
    assert_eq!(bn_count, 2);

    // Setting one subtree leaves the rest alone.
    model.blocks.eval();
    assert!(!model.blocks[0].self_attn.is_training());
    assert!(model.features.is_training());
}

#[test]
fn nested_state_dict_names_follow_pytorch() {
    let names: Vec<String> = net().state_dict().keys().map(String::from).collect();
    for want in [
        "features.0.weight",
        "features.1.running_mean",
        "features.1.num_batches_tracked",
        "blocks.0.self_attn.in_proj_weight",
        "blocks.1.self_attn.out_proj.bias",
        "blocks.1.norm2.bias",
        "rnn.weight_hh_l1",
        "head.bias",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert_eq!(names.len(), 7 + 2 * 12 + 8 + 2);
}

#[test]
fn kiln_save_then_load_reproduces_the_model() {
    manual_seed(7);
    let a = net();
    // Move the running statistics away from their initial values.
    for _ in 0..3 {
        no_grad(|| a.forward(&Tensor::randn([2, 4, 4], DType::F32)));
    }
    a.eval();
    let dir = temp_dir("roundtrip");
    let path = dir.join("net.safetensors");
    checkpoint::save(&a.state_dict(), &path).unwrap();
    let b = net();
    b.eval();
    b.load_state_dict(&checkpoint::load(&path).unwrap(), true)
        .unwrap();
    let x = Tensor::randn([3, 2, 4], DType::F32);
    assert_close("outputs", &b.forward(&x), &a.forward(&x), 0.0);
    let sd = checkpoint::load(&path).unwrap();
    assert_eq!(
        sd.get("features.1.num_batches_tracked")
            .unwrap()
            .item::<i64>(),
        3
    );
    assert_eq!(
        sd.get("features.1.num_batches_tracked").unwrap().dtype(),
        DType::I64
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loading_f32_weights_into_an_f64_model_keeps_f64() {
    let (sd, io) = load_case("linear");
    let fc = with_default_dtype(DType::F64, || Linear::new(5, 3));
    fc.load_state_dict(&sd, true).unwrap();
    assert_eq!(fc.weight.dtype(), DType::F64);
    let x = io.get("input").unwrap().to_dtype(DType::F64);
    assert_close(
        "f64 linear",
        &fc.forward(&x),
        io.get("output").unwrap(),
        1e-6,
    );
}

#[test]
fn batchnorm_cumulative_average_without_momentum() {
    let bn = BatchNorm1d::with_config(2, BatchNormConfig::default().momentum(None));
    let a = Tensor::from_vec(vec![1.0f32, 10.0, 3.0, 20.0], [2, 2]);
    let b = Tensor::from_vec(vec![5.0f32, 0.0, 7.0, 2.0], [2, 2]);
    no_grad(|| {
        bn.forward(&a);
        bn.forward(&b);
    });
    // The plain average of the two batch means: (2 + 6) / 2 and (15 + 1) / 2.
    let rm = bn.running_mean.as_ref().unwrap().to_f64_vec();
    assert_eq!(rm, vec![4.0, 8.0]);
    assert_eq!(bn.num_batches_tracked.as_ref().unwrap().item::<i64>(), 2);
}
