//! Output shapes of every layer, PyTorch's parameter names and shapes, and the default
//! initialization distributions.

use kiln_core::{DType, Tensor};
use kiln_nn::*;

fn x(shape: &[usize]) -> Tensor {
    Tensor::randn(shape, DType::F32)
}

fn shapes(m: &dyn ModuleBase) -> Vec<(String, Vec<usize>)> {
    m.state_dict()
        .iter()
        .map(|(n, t)| (n.to_string(), t.shape().to_vec()))
        .collect()
}

fn entry(n: &str, s: &[usize]) -> (String, Vec<usize>) {
    (n.to_string(), s.to_vec())
}

/// All values lie in [−bound, bound], the largest comes close to it and the mean is near 0,
/// with thresholds that a true U(−bound, bound) sample of this size fails with probability
/// below ~1e-6 (the global generator is shared by parallel tests, so draws vary run to run).
fn assert_uniform(t: &Tensor, bound: f64, what: &str) {
    let v = t.to_f64_vec();
    let n = v.len() as f64;
    let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(max <= bound + 1e-7, "{what}: {max} exceeds bound {bound}");
    // P(max |x| < q·bound) = qⁿ.
    let q = 1e-6f64.powf(1.0 / n);
    assert!(
        max >= q * bound,
        "{what}: {max} never approaches bound {bound}"
    );
    // The mean has standard error bound / √(3n); allow 5 of them.
    let mean = v.iter().sum::<f64>() / n;
    assert!(
        mean.abs() < 5.0 * bound / (3.0 * n).sqrt(),
        "{what}: mean {mean} is off for U(−{bound}, {bound})"
    );
}

fn assert_const(t: &Tensor, c: f64, what: &str) {
    assert!(
        t.to_f64_vec().iter().all(|&v| v == c),
        "{what} is not all {c}"
    );
}

#[test]
fn linear_shapes_names_and_init() {
    let fc = Linear::new(100, 30);
    assert_eq!(fc.forward(&x(&[4, 100])).shape(), [4, 30]);
    assert_eq!(fc.forward(&x(&[2, 3, 100])).shape(), [2, 3, 30]);
    assert_eq!(
        shapes(&fc),
        [entry("weight", &[30, 100]), entry("bias", &[30])]
    );
    assert_uniform(&fc.weight, 0.1, "weight");
    assert_uniform(fc.bias.as_ref().unwrap(), 0.1, "bias");
    assert!(fc.weight.requires_grad());
    let nb = Linear::with_bias(3, 2, false);
    assert_eq!(shapes(&nb), [entry("weight", &[2, 3])]);
}

#[test]
fn conv_shapes_names_and_init() {
    let c1 = Conv1d::with_config(4, 6, 3, Conv1dConfig::default().padding(1).stride(2));
    assert_eq!(c1.forward(&x(&[2, 4, 9])).shape(), [2, 6, 5]);
    assert_eq!(c1.forward(&x(&[4, 9])).shape(), [6, 5]);
    assert_eq!(
        shapes(&c1),
        [entry("weight", &[6, 4, 3]), entry("bias", &[6])]
    );

    let c2 = Conv2d::with_config(8, 16, 3, Conv2dConfig::default().groups(2).padding(1));
    assert_eq!(c2.forward(&x(&[2, 8, 5, 6])).shape(), [2, 16, 5, 6]);
    assert_eq!(
        shapes(&c2),
        [entry("weight", &[16, 4, 3, 3]), entry("bias", &[16])]
    );
    let bound = 1.0 / 36f64.sqrt(); // fan_in = 4 · 3 · 3
    assert_uniform(&c2.weight, bound, "conv2d weight");
    assert_uniform(c2.bias.as_ref().unwrap(), bound, "conv2d bias");

    let ct = ConvTranspose2d::with_config(
        6,
        4,
        3,
        ConvTranspose2dConfig::default()
            .stride(2)
            .padding(1)
            .output_padding(1),
    );
    assert_eq!(ct.forward(&x(&[2, 6, 5, 5])).shape(), [2, 4, 10, 10]);
    assert_eq!(
        shapes(&ct),
        [entry("weight", &[6, 4, 3, 3]), entry("bias", &[4])]
    );
    // PyTorch's fan-in of a transposed conv weight is dim 1 · kernel = 4 · 9.
    assert_uniform(&ct.weight, 1.0 / 6.0, "conv_transpose2d weight");
}

#[test]
fn pooling_shapes() {
    let input = x(&[2, 3, 9, 8]);
    assert_eq!(MaxPool2d::new(2).forward(&input).shape(), [2, 3, 4, 4]);
    assert_eq!(
        MaxPool2d::new(3)
            .stride(2)
            .padding(1)
            .forward(&input)
            .shape(),
        [2, 3, 5, 4]
    );
    assert_eq!(AvgPool2d::new((3, 2)).forward(&input).shape(), [2, 3, 3, 4]);
    assert_eq!(
        AdaptiveAvgPool2d::new(1).forward(&input).shape(),
        [2, 3, 1, 1]
    );
    assert_eq!(
        AdaptiveAvgPool2d::new((4, 3)).forward(&input).shape(),
        [2, 3, 4, 3]
    );
}

#[test]
fn norm_shapes_names_and_init() {
    let bn = BatchNorm2d::new(5);
    assert_eq!(bn.forward(&x(&[4, 5, 3, 3])).shape(), [4, 5, 3, 3]);
    assert_eq!(
        shapes(&bn),
        [
            entry("weight", &[5]),
            entry("bias", &[5]),
            entry("running_mean", &[5]),
            entry("running_var", &[5]),
            entry("num_batches_tracked", &[]),
        ]
    );
    let fresh = BatchNorm1d::new(3);
    assert_const(fresh.weight.as_ref().unwrap(), 1.0, "bn weight");
    assert_const(fresh.bias.as_ref().unwrap(), 0.0, "bn bias");
    assert_const(fresh.running_mean.as_ref().unwrap(), 0.0, "running_mean");
    assert_const(fresh.running_var.as_ref().unwrap(), 1.0, "running_var");
    assert_eq!(
        fresh.num_batches_tracked.as_ref().unwrap().dtype(),
        DType::I64
    );
    assert_eq!(fresh.forward(&x(&[4, 3])).shape(), [4, 3]);
    assert_eq!(fresh.forward(&x(&[4, 3, 7])).shape(), [4, 3, 7]);
    assert_eq!(bn.num_parameters(), 10);
    let bare = BatchNorm1d::with_config(
        3,
        BatchNormConfig::default()
            .affine(false)
            .track_running_stats(false),
    );
    assert!(bare.state_dict().is_empty());
    bare.eval();
    assert_eq!(bare.forward(&x(&[4, 3])).shape(), [4, 3]);

    let ln = LayerNorm::new([4, 6]);
    assert_eq!(ln.forward(&x(&[2, 4, 6])).shape(), [2, 4, 6]);
    assert_eq!(
        shapes(&ln),
        [entry("weight", &[4, 6]), entry("bias", &[4, 6])]
    );
    assert_const(ln.weight.as_ref().unwrap(), 1.0, "ln weight");
    let ln = LayerNorm::with_config(6, LayerNormConfig::default().bias(false));
    assert_eq!(shapes(&ln), [entry("weight", &[6])]);

    let rms = RMSNorm::new(8);
    assert_eq!(rms.forward(&x(&[3, 8])).shape(), [3, 8]);
    assert_eq!(shapes(&rms), [entry("weight", &[8])]);

    let gn = GroupNorm::new(3, 6);
    assert_eq!(gn.forward(&x(&[2, 6, 4])).shape(), [2, 6, 4]);
    assert_eq!(shapes(&gn), [entry("weight", &[6]), entry("bias", &[6])]);
}

#[test]
fn embedding_shapes_and_init() {
    let emb = Embedding::with_padding_idx(1000, 16, Some(-1));
    let idx = Tensor::from_vec(vec![0i64, 5, 999, 3, 3, 1], [2, 3]);
    assert_eq!(emb.forward(&idx).shape(), [2, 3, 16]);
    assert_eq!(shapes(&emb), [entry("weight", &[1000, 16])]);
    assert_eq!(emb.padding_idx, Some(999));
    assert_const(&emb.weight.narrow(0, 999, 1), 0.0, "padding row");
    let v = emb.weight.narrow(0, 0, 999).to_f64_vec();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
    assert!(
        mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
        "N(0, 1)? mean {mean} var {var}"
    );
}

#[test]
fn dropout_and_activation_shapes() {
    let input = x(&[2, 3, 4]);
    let layers: Vec<Box<dyn Module>> = vec![
        Box::new(Dropout::new(0.3)),
        Box::new(Identity::new()),
        Box::new(ReLU::new()),
        Box::new(GELU::new()),
        Box::new(GELU::tanh_approximation()),
        Box::new(SiLU::new()),
        Box::new(Tanh::new()),
        Box::new(Sigmoid::new()),
        Box::new(Softmax::new(-1)),
        Box::new(LogSoftmax::new(1)),
    ];
    for l in &layers {
        assert_eq!(l.forward(&input).shape(), [2, 3, 4]);
        assert!(l.state_dict().is_empty());
    }
    assert_eq!(Flatten::new().forward(&input).shape(), [2, 12]);
    assert_eq!(Flatten::with_dims(0, 1).forward(&input).shape(), [6, 4]);
    let s = Softmax::new(-1).forward(&input).sum([2], false);
    assert!(s.to_f64_vec().iter().all(|v| (v - 1.0).abs() < 1e-6));
}

#[test]
fn recurrent_shapes_names_and_init() {
    let lstm = LSTM::with_config(
        5,
        8,
        RecurrentConfig::default().num_layers(2).batch_first(true),
    );
    let (out, (h, c)) = lstm.forward_with_state(&x(&[3, 7, 5]), None);
    assert_eq!(out.shape(), [3, 7, 8]);
    assert_eq!(h.shape(), [2, 3, 8]);
    assert_eq!(c.shape(), [2, 3, 8]);
    assert_eq!(
        shapes(&lstm),
        [
            entry("weight_ih_l0", &[32, 5]),
            entry("weight_hh_l0", &[32, 8]),
            entry("bias_ih_l0", &[32]),
            entry("bias_hh_l0", &[32]),
            entry("weight_ih_l1", &[32, 8]),
            entry("weight_hh_l1", &[32, 8]),
            entry("bias_ih_l1", &[32]),
            entry("bias_hh_l1", &[32]),
        ]
    );
    for (n, p) in lstm.named_parameters() {
        assert_uniform(&p, 1.0 / 8f64.sqrt(), &n);
    }
    // Sequence-first and unbatched layouts.
    let lstm1 = LSTM::new(5, 4);
    assert_eq!(lstm1.forward(&x(&[7, 3, 5])).shape(), [7, 3, 4]);
    assert_eq!(lstm1.forward(&x(&[7, 5])).shape(), [7, 4]);

    let gru = GRU::with_config(
        4,
        6,
        RecurrentConfig::default().num_layers(3).bidirectional(true),
    );
    let (out, h) = gru.forward_with_state(&x(&[5, 2, 4]), None);
    assert_eq!(out.shape(), [5, 2, 12]);
    assert_eq!(h.shape(), [6, 2, 6]);
    let names: Vec<String> = gru.state_dict().keys().map(String::from).collect();
    assert_eq!(names.len(), 24);
    assert_eq!(names[4], "weight_ih_l0_reverse");
    assert_eq!(
        gru.state_dict().get("weight_ih_l1").unwrap().shape(),
        [18, 12]
    );
    let nb = GRU::with_config(4, 6, RecurrentConfig::default().bias(false));
    assert_eq!(nb.state_dict().len(), 2);
}

#[test]
fn attention_shapes_names_and_init() {
    let mha = MultiheadAttention::new(16, 4);
    assert_eq!(mha.forward(&x(&[7, 2, 16])).shape(), [7, 2, 16]);
    assert_eq!(mha.forward(&x(&[7, 16])).shape(), [7, 16]);
    let cross = mha.forward_qkv(
        &x(&[5, 2, 16]),
        &x(&[9, 2, 16]),
        &x(&[9, 2, 16]),
        None,
        None,
        false,
    );
    assert_eq!(cross.shape(), [5, 2, 16]);
    assert_eq!(
        shapes(&mha),
        [
            entry("in_proj_weight", &[48, 16]),
            entry("in_proj_bias", &[48]),
            entry("out_proj.weight", &[16, 16]),
            entry("out_proj.bias", &[16]),
        ]
    );
    // Xavier uniform: bound √(6 / (16 + 48)).
    assert_uniform(
        &mha.in_proj_weight,
        (6.0f64 / 64.0).sqrt(),
        "in_proj_weight",
    );
    assert_const(mha.in_proj_bias.as_ref().unwrap(), 0.0, "in_proj_bias");
    assert_const(mha.out_proj.bias.as_ref().unwrap(), 0.0, "out_proj.bias");
    assert_uniform(&mha.out_proj.weight, 0.25, "out_proj.weight");

    let bf = MultiheadAttention::with_config(
        8,
        2,
        MultiheadAttentionConfig::default().batch_first(true),
    );
    let (out, w) = bf.forward_qkv_with_weights(
        &x(&[3, 5, 8]),
        &x(&[3, 6, 8]),
        &x(&[3, 6, 8]),
        None,
        None,
        false,
        false,
    );
    assert_eq!(out.shape(), [3, 5, 8]);
    assert_eq!(w.shape(), [3, 2, 5, 6]);
}

#[test]
fn transformer_shapes_and_names() {
    let layer = TransformerEncoderLayer::with_config(
        16,
        4,
        TransformerEncoderLayerConfig::default().dim_feedforward(32),
    );
    assert_eq!(layer.forward(&x(&[6, 2, 16])).shape(), [6, 2, 16]);
    let names: Vec<String> = layer.state_dict().keys().map(String::from).collect();
    assert_eq!(
        names,
        [
            "self_attn.in_proj_weight",
            "self_attn.in_proj_bias",
            "self_attn.out_proj.weight",
            "self_attn.out_proj.bias",
            "linear1.weight",
            "linear1.bias",
            "linear2.weight",
            "linear2.bias",
            "norm1.weight",
            "norm1.bias",
            "norm2.weight",
            "norm2.bias",
        ]
    );
    assert_eq!(
        layer.state_dict().get("linear1.weight").unwrap().shape(),
        [32, 16]
    );

    let enc = TransformerEncoder::new(2, || {
        TransformerEncoderLayer::with_config(
            8,
            2,
            TransformerEncoderLayerConfig::default()
                .dim_feedforward(16)
                .batch_first(true),
        )
    })
    .with_norm(LayerNorm::new(8));
    assert_eq!(enc.forward(&x(&[2, 5, 8])).shape(), [2, 5, 8]);
    let sd = enc.state_dict();
    assert!(sd.get("layers.1.self_attn.out_proj.weight").is_some());
    assert!(sd.get("norm.weight").is_some());

    let block = CausalDecoderBlock::new(8, 2);
    assert_eq!(block.forward(&x(&[2, 5, 8])).shape(), [2, 5, 8]);
    let names: Vec<String> = block.state_dict().keys().map(String::from).collect();
    assert_eq!(
        names,
        [
            "ln1.weight",
            "ln1.bias",
            "attn.in_proj_weight",
            "attn.in_proj_bias",
            "attn.out_proj.weight",
            "attn.out_proj.bias",
            "ln2.weight",
            "ln2.bias",
            "mlp.0.weight",
            "mlp.0.bias",
            "mlp.2.weight",
            "mlp.2.bias",
        ]
    );
    assert_eq!(
        block.state_dict().get("mlp.0.weight").unwrap().shape(),
        [32, 8]
    );
}

#[test]
fn causal_block_does_not_look_ahead() {
    let block = CausalDecoderBlock::new(8, 2);
    let a = x(&[1, 6, 8]);
    // Change only the last position: earlier outputs must not move.
    let b = Tensor::cat(&[a.narrow(1, 0, 5), x(&[1, 1, 8])], 1);
    let (ya, yb) = (block.forward(&a), block.forward(&b));
    let d = (&ya.narrow(1, 0, 5) - &yb.narrow(1, 0, 5))
        .abs()
        .max_all()
        .item::<f64>();
    assert!(d < 1e-6, "{d}");
    let last = (&ya.narrow(1, 5, 1) - &yb.narrow(1, 5, 1))
        .abs()
        .max_all()
        .item::<f64>();
    assert!(last > 1e-3);
}

#[test]
fn containers_name_children_by_index() {
    let seq = Sequential::new()
        .append(Conv2d::new(1, 4, 3))
        .append(ReLU::new())
        .append(Flatten::new())
        .append(Linear::new(4 * 6 * 6, 10));
    assert_eq!(seq.len(), 4);
    assert_eq!(seq.forward(&x(&[2, 1, 8, 8])).shape(), [2, 10]);
    let names: Vec<String> = seq.state_dict().keys().map(String::from).collect();
    assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);

    let list: ModuleList<Linear> = (0..3).map(|i| Linear::new(4, i + 1)).collect();
    assert_eq!(list.len(), 3);
    assert_eq!(list[2].forward(&x(&[1, 4])).shape(), [1, 3]);
    let names: Vec<String> = list.state_dict().keys().map(String::from).collect();
    assert_eq!(
        names,
        ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    );
    let mut boxed: ModuleList = ModuleList::new();
    boxed.push(Box::new(Linear::new(2, 2)));
    boxed.push(Box::new(Dropout::new(0.1)));
    assert_eq!(boxed.state_dict().len(), 2);
    assert_eq!(boxed[0].forward(&x(&[1, 2])).shape(), [1, 2]);
}

#[test]
fn loss_modules_reduce_to_scalars() {
    let logits = x(&[4, 3]);
    let target = Tensor::from_vec(vec![0i64, 2, 1, 2], [4]);
    assert_eq!(
        CrossEntropyLoss::new().forward(&logits, &target).shape(),
        [] as [usize; 0]
    );
    let none = CrossEntropyLoss::new().reduction(Reduction::None);
    assert_eq!(none.forward(&logits, &target).shape(), [4]);
    assert_eq!(MSELoss::new().forward(&logits, &logits).item::<f32>(), 0.0);
}
