//! Forward passes against PyTorch: each fixture's `state_dict()` (saved by
//! `fixtures/make_layer_fixtures.py`) is loaded with `load_state_dict(strict = true)` and the
//! Kiln layer must reproduce torch's outputs (f32, tolerance ~1e−5).

mod layers_util;

use kiln_core::nn::functional::Reduction;
use kiln_core::{no_grad, DType, Tensor};
use kiln_nn::*;
use layers_util::{assert_close, get, load_into, load_io};

const TOL: f64 = 1e-5;

/// Loads `name` into `model`, runs `forward` on `input` in eval mode, compares `output`.
fn check_simple(name: &str, model: &dyn Module, tol: f64) {
    let io = load_into(model.as_dyn(), name);
    model.eval();
    let y = no_grad(|| model.forward(&get(&io, "input")));
    assert_close(name, &y, &get(&io, "output"), tol);
}

#[test]
fn linear_matches_torch() {
    check_simple("linear", &Linear::new(5, 3), TOL);
    check_simple("linear_nobias", &Linear::with_bias(5, 3, false), TOL);
}

#[test]
fn convolutions_match_torch() {
    check_simple(
        "conv1d",
        &Conv1d::with_config(3, 5, 3, Conv1dConfig::default().stride(2).padding(1)),
        TOL,
    );
    check_simple(
        "conv2d",
        &Conv2d::with_config(3, 4, 3, Conv2dConfig::default().stride(2).padding(1)),
        TOL,
    );
    check_simple(
        "conv2d_groups",
        &Conv2d::with_config(
            4,
            6,
            (3, 2),
            Conv2dConfig::default()
                .stride((1, 2))
                .padding((1, 0))
                .dilation((2, 1))
                .groups(2),
        ),
        TOL,
    );
    check_simple(
        "conv_transpose2d",
        &ConvTranspose2d::with_config(
            4,
            3,
            3,
            ConvTranspose2dConfig::default()
                .stride(2)
                .padding(1)
                .output_padding(1),
        ),
        TOL,
    );
}

#[test]
fn batchnorm2d_train_matches_torch_including_running_stats() {
    let bn = BatchNorm2d::new(3);
    let io = load_into(&bn, "batchnorm2d_train");
    assert!(bn.is_training());
    let y = no_grad(|| bn.forward(&get(&io, "input")));
    assert_close("output", &y, &get(&io, "output"), TOL);
    let rm = bn.running_mean.as_ref().unwrap();
    let rv = bn.running_var.as_ref().unwrap();
    assert_close("running_mean", rm, &get(&io, "running_mean"), TOL);
    assert_close("running_var", rv, &get(&io, "running_var"), TOL);
    let n = bn.num_batches_tracked.as_ref().unwrap();
    assert_eq!(n.dtype(), DType::I64);
    assert_eq!(
        n.item::<i64>(),
        get(&io, "num_batches_tracked").item::<i64>()
    );
}

#[test]
fn batchnorm2d_eval_matches_torch() {
    check_simple("batchnorm2d_eval", &BatchNorm2d::new(3), TOL);
}

#[test]
fn batchnorm1d_train_matches_torch() {
    let bn = BatchNorm1d::new(4);
    let io = load_into(&bn, "batchnorm1d_train");
    let y = no_grad(|| bn.forward(&get(&io, "input")));
    assert_close("output", &y, &get(&io, "output"), TOL);
    assert_close(
        "running_var",
        bn.running_var.as_ref().unwrap(),
        &get(&io, "running_var"),
        TOL,
    );
}

#[test]
fn norms_match_torch() {
    check_simple("layernorm", &LayerNorm::new([4, 6]), TOL);
    check_simple("groupnorm", &GroupNorm::new(2, 6), TOL);
    check_simple("rmsnorm", &RMSNorm::new(8), TOL);
}

#[test]
fn embedding_matches_torch() {
    let emb = Embedding::with_padding_idx(10, 4, Some(0));
    let io = load_into(&emb, "embedding");
    let y = emb.forward(&get(&io, "input"));
    assert_close("embedding", &y, &get(&io, "output"), 0.0);
}

#[test]
fn lstm_two_layers_batch_first_matches_torch() {
    let lstm = LSTM::with_config(
        5,
        7,
        RecurrentConfig::default().num_layers(2).batch_first(true),
    );
    let io = load_into(&lstm, "lstm");
    let x = get(&io, "input");
    assert_close("zero state", &lstm.forward(&x), &get(&io, "output"), TOL);
    let (out, (h, c)) = lstm.forward_with_state(&x, Some((get(&io, "h0"), get(&io, "c0"))));
    assert_close("output", &out, &get(&io, "output_state"), TOL);
    assert_close("h_n", &h, &get(&io, "h_n"), TOL);
    assert_close("c_n", &c, &get(&io, "c_n"), TOL);
}

#[test]
fn lstm_bidirectional_matches_torch() {
    let lstm = LSTM::with_config(
        4,
        3,
        RecurrentConfig::default().num_layers(2).bidirectional(true),
    );
    let io = load_into(&lstm, "lstm_bidir");
    let x = get(&io, "input");
    assert_close("zero state", &lstm.forward(&x), &get(&io, "output"), TOL);
    let (out, (h, c)) = lstm.forward_with_state(&x, Some((get(&io, "h0"), get(&io, "c0"))));
    assert_close("output", &out, &get(&io, "output_state"), TOL);
    assert_close("h_n", &h, &get(&io, "h_n"), TOL);
    assert_close("c_n", &c, &get(&io, "c_n"), TOL);
}

#[test]
fn gru_matches_torch() {
    let gru = GRU::with_config(5, 6, RecurrentConfig::default().num_layers(2));
    let io = load_into(&gru, "gru");
    let x = get(&io, "input");
    assert_close("zero state", &gru.forward(&x), &get(&io, "output"), TOL);
    let (out, h) = gru.forward_with_state(&x, Some(get(&io, "h0")));
    assert_close("output", &out, &get(&io, "output_state"), TOL);
    assert_close("h_n", &h, &get(&io, "h_n"), TOL);

    let gru = GRU::with_config(3, 4, RecurrentConfig::default().batch_first(true));
    let io = load_into(&gru, "gru_batch_first");
    let (out, h) = gru.forward_with_state(&get(&io, "input"), Some(get(&io, "h0")));
    assert_close("batch_first output", &out, &get(&io, "output_state"), TOL);
    assert_close("batch_first h_n", &h, &get(&io, "h_n"), TOL);
}

#[test]
fn multihead_attention_matches_torch() {
    let mha = MultiheadAttention::with_config(
        8,
        2,
        MultiheadAttentionConfig::default().batch_first(true),
    );
    let io = load_into(&mha, "mha");
    mha.eval();
    let x = get(&io, "input");
    // Causal self-attention, by flag and by an explicit bool mask (true = blocked).
    let want = get(&io, "output");
    assert_close(
        "is_causal",
        &mha.forward_qkv(&x, &x, &x, None, None, true),
        &want,
        TOL,
    );
    let blocked = Tensor::ones([5, 5], DType::Bool).triu(1);
    assert_close(
        "bool attn_mask",
        &mha.forward_qkv(&x, &x, &x, Some(&blocked), None, false),
        &want,
        TOL,
    );
    // Cross-attention with a float mask and a key padding mask, with the averaged weights.
    let kv = get(&io, "kv");
    let (out, w) = mha.forward_qkv_with_weights(
        &x,
        &kv,
        &kv,
        Some(&get(&io, "float_mask")),
        Some(&get(&io, "key_padding_mask")),
        false,
        true,
    );
    assert_close("cross", &out, &get(&io, "output_cross"), TOL);
    assert_close("weights", &w, &get(&io, "weights_cross"), TOL);
}

#[test]
fn transformer_encoder_layers_match_torch() {
    let post = TransformerEncoderLayer::with_config(
        8,
        2,
        TransformerEncoderLayerConfig::default()
            .dim_feedforward(16)
            .batch_first(true),
    );
    check_simple("transformer_post", &post, TOL);
    let pre = TransformerEncoderLayer::with_config(
        8,
        2,
        TransformerEncoderLayerConfig::default()
            .dim_feedforward(16)
            .norm_first(true)
            .activation(Activation::Gelu),
    );
    check_simple("transformer_pre", &pre, TOL);
}

#[test]
fn causal_decoder_block_matches_torch() {
    check_simple("decoder_block", &CausalDecoderBlock::new(8, 2), TOL);
}

#[test]
fn sequential_matches_torch() {
    let mlp = Sequential::new()
        .append(Linear::new(4, 8))
        .append(ReLU::new())
        .append(Linear::new(8, 3));
    check_simple("mlp", &mlp, TOL);
}

#[test]
fn pooling_layers_match_torch() {
    let io = load_io("stateless");
    let x = get(&io, "x");
    let max = MaxPool2d::new(3).stride(2).padding(1);
    assert_close("max_pool", &max.forward(&x), &get(&io, "max_pool"), TOL);
    let avg = AvgPool2d::new(3)
        .stride(2)
        .padding(1)
        .count_include_pad(false);
    assert_close("avg_pool", &avg.forward(&x), &get(&io, "avg_pool"), TOL);
    let ada = AdaptiveAvgPool2d::new((2, 3));
    assert_close(
        "adaptive_avg_pool",
        &ada.forward(&x),
        &get(&io, "adaptive_avg_pool"),
        TOL,
    );
}

#[test]
fn loss_modules_match_torch() {
    let io = load_io("stateless");
    let (logits, target, cw) = (
        get(&io, "logits"),
        get(&io, "target"),
        get(&io, "class_weight"),
    );
    let ce = CrossEntropyLoss::new()
        .weight(cw.clone())
        .label_smoothing(0.1);
    assert_close(
        "cross_entropy",
        &ce.forward(&logits, &target),
        &get(&io, "cross_entropy"),
        TOL,
    );
    assert_eq!(ce.state_dict().keys().collect::<Vec<_>>(), ["weight"]);
    let nll = NLLLoss::new().weight(cw);
    let logp = kiln_core::nn::functional::log_softmax(&logits, -1);
    assert_close("nll", &nll.forward(&logp, &target), &get(&io, "nll"), TOL);

    let (pred, goal) = (get(&io, "pred"), get(&io, "goal"));
    assert_close(
        "mse",
        &MSELoss::new().forward(&pred, &goal),
        &get(&io, "mse"),
        TOL,
    );
    assert_close(
        "l1_sum",
        &L1Loss::new()
            .reduction(Reduction::Sum)
            .forward(&pred, &goal),
        &get(&io, "l1_sum"),
        TOL,
    );
    assert_close(
        "smooth_l1",
        &SmoothL1Loss::new().beta(0.5).forward(&pred, &goal),
        &get(&io, "smooth_l1"),
        TOL,
    );
    assert_close(
        "huber",
        &HuberLoss::new().delta(0.7).forward(&pred, &goal),
        &get(&io, "huber"),
        TOL,
    );
    let (probs, bits) = (get(&io, "probs"), get(&io, "bits"));
    assert_close(
        "bce",
        &BCELoss::new().forward(&probs, &bits),
        &get(&io, "bce"),
        TOL,
    );
    let bcel = BCEWithLogitsLoss::new().pos_weight(get(&io, "pos_weight"));
    assert_close(
        "bce_logits",
        &bcel.forward(&pred, &bits),
        &get(&io, "bce_logits"),
        TOL,
    );
    assert_eq!(bcel.state_dict().keys().collect::<Vec<_>>(), ["pos_weight"]);
    let kl = KLDivLoss::new().reduction(KlDivReduction::BatchMean);
    assert_close(
        "kl_batchmean",
        &kl.forward(&get(&io, "logp"), &get(&io, "q")),
        &get(&io, "kl_batchmean"),
        TOL,
    );
}
