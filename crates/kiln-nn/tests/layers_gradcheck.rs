//! Gradient checks through every layer in f64: the input gradient with
//! `kiln_core::autograd::gradcheck`, and every parameter's gradient against central finite
//! differences (`check_param_grads`). Layers are built in f64 with
//! `kiln_nn::with_default_dtype(DType::F64, ..)`.

mod layers_util;

use kiln_core::{DType, Tensor};
use kiln_nn::*;
use layers_util::{check_input_grad, check_param_grads, randn64};

fn f64_layer<M>(make: impl FnOnce() -> M) -> M {
    with_default_dtype(DType::F64, make)
}

/// Input and parameter gradients of `m.forward` at `x`.
fn check_module(what: &str, m: &dyn Module, x: &Tensor) {
    check_input_grad(what, x, |x| m.forward(x));
    check_param_grads(what, m.as_dyn(), || m.forward(x));
}

#[test]
fn f64_construction_puts_every_float_tensor_in_f64() {
    let block = f64_layer(|| CausalDecoderBlock::new(8, 2));
    assert!(block.parameters().iter().all(|p| p.dtype() == DType::F64));
    let bn = f64_layer(|| BatchNorm2d::new(3));
    assert_eq!(bn.running_var.as_ref().unwrap().dtype(), DType::F64);
    assert_eq!(bn.num_batches_tracked.as_ref().unwrap().dtype(), DType::I64);
    // The default is restored afterwards.
    assert_eq!(default_dtype(), DType::F32);
    assert_eq!(Linear::new(2, 2).weight.dtype(), DType::F32);
}

#[test]
fn gradcheck_linear_and_sequential() {
    check_module(
        "linear",
        &f64_layer(|| Linear::new(4, 3)),
        &randn64(&[2, 3, 4], 1),
    );
    let mlp = f64_layer(|| {
        Sequential::new()
            .append(Linear::new(3, 5))
            .append(Tanh::new())
            .append(Linear::new(5, 2))
            .append(SiLU::new())
    });
    check_module("sequential", &mlp, &randn64(&[4, 3], 2));
}

#[test]
fn gradcheck_convolutions() {
    let c1 =
        f64_layer(|| Conv1d::with_config(2, 3, 3, Conv1dConfig::default().padding(1).stride(2)));
    check_module("conv1d", &c1, &randn64(&[2, 2, 7], 3));
    let c2 = f64_layer(|| {
        Conv2d::with_config(
            4,
            4,
            (3, 2),
            Conv2dConfig::default()
                .groups(2)
                .padding(1)
                .dilation((1, 2)),
        )
    });
    check_module("conv2d", &c2, &randn64(&[2, 4, 5, 5], 4));
    let ct = f64_layer(|| {
        ConvTranspose2d::with_config(
            3,
            2,
            3,
            ConvTranspose2dConfig::default()
                .stride(2)
                .padding(1)
                .output_padding(1),
        )
    });
    check_module("conv_transpose2d", &ct, &randn64(&[1, 3, 3, 3], 5));
}

#[test]
fn gradcheck_pooling() {
    let x = randn64(&[2, 2, 6, 5], 6);
    check_input_grad("max_pool", &x, |x| {
        MaxPool2d::new(3).stride(2).padding(1).forward(x)
    });
    check_input_grad("avg_pool", &x, |x| {
        AvgPool2d::new(3)
            .stride(2)
            .padding(1)
            .count_include_pad(false)
            .forward(x)
    });
    check_input_grad("adaptive_avg_pool", &x, |x| {
        AdaptiveAvgPool2d::new((4, 3)).forward(x)
    });
}

#[test]
fn gradcheck_norms() {
    let bn = f64_layer(|| BatchNorm2d::new(3));
    let x = randn64(&[4, 3, 2, 2], 7);
    check_module("batchnorm2d train", &bn, &x);
    bn.eval();
    check_module("batchnorm2d eval", &bn, &x);
    let bn1 = f64_layer(|| BatchNorm1d::new(3));
    check_module("batchnorm1d", &bn1, &randn64(&[5, 3], 8));
    check_module(
        "layernorm",
        &f64_layer(|| LayerNorm::new([3, 4])),
        &randn64(&[2, 3, 4], 9),
    );
    check_module(
        "rmsnorm",
        &f64_layer(|| RMSNorm::new(5)),
        &randn64(&[3, 5], 10),
    );
    check_module(
        "groupnorm",
        &f64_layer(|| GroupNorm::new(2, 4)),
        &randn64(&[2, 4, 3], 11),
    );
}

#[test]
fn gradcheck_embedding_weight() {
    let idx = Tensor::from_vec(vec![0i64, 1, 5, 5, 2], [5]);
    let emb = f64_layer(|| Embedding::new(6, 3));
    check_param_grads("embedding", &emb, || emb.forward(&idx));
    // The padding row gets no gradient (by design, unlike finite differences).
    let emb = f64_layer(|| Embedding::with_padding_idx(6, 3, Some(1)));
    emb.forward(&idx).sum_all().backward();
    let g = emb.weight.grad().unwrap();
    assert!(g.narrow(0, 1, 1).to_f64_vec().iter().all(|&v| v == 0.0));
    assert_eq!(g.narrow(0, 5, 1).to_f64_vec(), vec![2.0; 3]);
}

#[test]
fn gradcheck_activations() {
    // Away from ReLU's kink at zero.
    let x = randn64(&[3, 4], 12);
    let x = &x + &x.sign().mul_scalar(0.1);
    let layers: Vec<(&str, Box<dyn Module>)> = vec![
        ("relu", Box::new(ReLU::new())),
        ("gelu", Box::new(GELU::new())),
        ("gelu_tanh", Box::new(GELU::tanh_approximation())),
        ("silu", Box::new(SiLU::new())),
        ("tanh", Box::new(Tanh::new())),
        ("sigmoid", Box::new(Sigmoid::new())),
        ("softmax", Box::new(Softmax::new(-1))),
        ("log_softmax", Box::new(LogSoftmax::new(0))),
        ("flatten", Box::new(Flatten::with_dims(0, 1))),
        ("identity", Box::new(Identity::new())),
    ];
    for (name, l) in &layers {
        check_input_grad(name, &x, |x| l.forward(x));
    }
}

#[test]
fn dropout_gradient_is_the_scaled_mask() {
    let d = Dropout::new(0.25);
    let x = randn64(&[200], 13).requires_grad_(true);
    let y = d.forward(&x);
    y.sum_all().backward();
    let (xv, yv, gv) = (
        x.to_f64_vec(),
        y.to_f64_vec(),
        x.grad().unwrap().to_f64_vec(),
    );
    let mut dropped = 0;
    for i in 0..200 {
        if yv[i] == 0.0 {
            dropped += 1;
            assert_eq!(gv[i], 0.0);
        } else {
            assert!((yv[i] - xv[i] / 0.75).abs() < 1e-12);
            assert!((gv[i] - 1.0 / 0.75).abs() < 1e-12);
        }
    }
    assert!(
        (20..80).contains(&dropped),
        "{dropped} of 200 dropped at p = 0.25"
    );
    d.eval();
    check_input_grad("dropout eval", &randn64(&[5], 14), |x| d.forward(x));
}

#[test]
fn gradcheck_lstm() {
    let lstm = f64_layer(|| {
        LSTM::with_config(
            3,
            4,
            RecurrentConfig::default().num_layers(2).batch_first(true),
        )
    });
    let x = randn64(&[2, 3, 3], 15);
    check_module("lstm", &lstm, &x);
    // Through the final states and from a given initial state.
    let (h0, c0) = (randn64(&[2, 2, 4], 16), randn64(&[2, 2, 4], 17));
    let run = |x: &Tensor| {
        let (out, (h, c)) = lstm.forward_with_state(x, Some((h0.clone(), c0.clone())));
        Tensor::cat(
            &[out.sum([1], false), h.sum([0], false), c.sum([0], false)],
            1,
        )
    };
    check_input_grad("lstm state", &x, run);
    check_input_grad("lstm h0", &h0, |h| {
        lstm.forward_with_state(&x, Some((h.clone(), c0.clone())))
            .1
             .1
    });
}

#[test]
fn gradcheck_bidirectional_gru() {
    let gru = f64_layer(|| GRU::with_config(3, 2, RecurrentConfig::default().bidirectional(true)));
    let x = randn64(&[4, 2, 3], 18);
    check_module("gru", &gru, &x);
    let h0 = randn64(&[2, 2, 2], 19);
    check_input_grad("gru h0", &h0, |h| {
        gru.forward_with_state(&x, Some(h.clone())).1
    });
}

#[test]
fn gradcheck_multihead_attention() {
    let mha = f64_layer(|| {
        MultiheadAttention::with_config(4, 2, MultiheadAttentionConfig::default().batch_first(true))
    });
    // Non-zero biases so their gradients are exercised at a generic point.
    for p in [
        mha.in_proj_bias.as_ref().unwrap(),
        mha.out_proj.bias.as_ref().unwrap(),
    ] {
        kiln_core::no_grad(|| p.copy_(&randn64(p.shape(), 20).mul_scalar(0.3)));
    }
    let x = randn64(&[2, 3, 4], 21);
    check_input_grad("mha causal", &x, |x| mha.self_attention(x, true));
    check_param_grads("mha causal", &mha, || mha.self_attention(&x, true));
    let kv = randn64(&[2, 5, 4], 22);
    let pad = Tensor::from_vec(
        vec![
            false, false, false, false, false, false, false, false, true, true,
        ],
        [2, 5],
    );
    check_input_grad("mha cross (query)", &x, |q| {
        mha.forward_qkv(q, &kv, &kv, None, Some(&pad), false)
    });
    check_input_grad("mha cross (key/value)", &kv, |kv| {
        mha.forward_qkv(&x, kv, kv, None, Some(&pad), false)
    });
}

#[test]
fn gradcheck_transformer_layers() {
    for norm_first in [false, true] {
        let layer = f64_layer(|| {
            TransformerEncoderLayer::with_config(
                4,
                2,
                TransformerEncoderLayerConfig::default()
                    .dim_feedforward(6)
                    .norm_first(norm_first)
                    .activation(Activation::Gelu),
            )
        });
        layer.eval();
        check_module(
            &format!("encoder norm_first={norm_first}"),
            &layer,
            &randn64(&[3, 2, 4], 23),
        );
    }
    let block = f64_layer(|| CausalDecoderBlock::new(4, 2));
    check_module("causal decoder block", &block, &randn64(&[2, 3, 4], 24));
}

#[test]
fn gradcheck_losses() {
    let logits = randn64(&[5, 3], 25);
    let target = Tensor::from_vec(vec![0i64, 2, -100, 1, 2], [5]);
    let w = Tensor::from_vec(vec![0.5f64, 1.0, 2.0], [3]);
    let ce = CrossEntropyLoss::new().weight(w).label_smoothing(0.2);
    check_input_grad("cross_entropy", &logits, |x| ce.forward(x, &target));
    let y = randn64(&[5, 3], 26);
    check_input_grad("huber", &logits, |x| {
        HuberLoss::new().delta(0.5).forward(x, &y)
    });
    let bits = y.gt_scalar(0.0).to_dtype(DType::F64);
    let bce = BCEWithLogitsLoss::new().pos_weight(Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]));
    check_input_grad("bce_with_logits", &logits, |x| bce.forward(x, &bits));
}
