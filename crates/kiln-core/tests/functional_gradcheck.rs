//! Finite-difference gradient checks (f64, ε = 1e−6) of every differentiable functional in
//! `kiln_core::nn::functional`, on small random inputs — including broadcast operands and
//! non-contiguous (transposed, narrowed) views, made inside the checked function because
//! gradcheck hands the function dense copies of its inputs.
//!
//! Each test runs a family of checks and reports every failing one.

use kiln_core::autograd::gradcheck;
use kiln_core::nn::functional as F;
use kiln_core::nn::functional::{CrossEntropyOptions, KlDivReduction, NllLossOptions, Reduction};
use kiln_core::{DType, Generator, Tensor};
use std::panic::{catch_unwind, AssertUnwindSafe};

const EPS: f64 = 1e-6;
const ATOL: f64 = 1e-7;
const RTOL: f64 = 1e-6;

/// Standard normal f64 leaf that requires grad.
fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn_with(shape, DType::F64, &mut Generator::new(seed)).requires_grad_(true)
}

/// Uniform values in [lo, hi) that require grad.
fn uniform(shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
    Tensor::rand_with(shape, DType::F64, &mut Generator::new(seed))
        .affine(hi - lo, lo)
        .requires_grad_(true)
}

/// A constant (no grad) tensor of normal values.
fn fixed(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn_with(shape, DType::F64, &mut Generator::new(seed))
}

fn idx(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape)
}

/// Collects gradcheck results of one family and fails with all the failing names.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
    count: usize,
}

impl Checks {
    fn check(&mut self, name: &str, f: impl Fn(&[Tensor]) -> Tensor, inputs: Vec<Tensor>) {
        self.count += 1;
        match catch_unwind(AssertUnwindSafe(|| gradcheck(&f, &inputs, EPS, ATOL, RTOL))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failures.push(format!("{name}: {e}")),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.failures.push(format!("{name}: panicked: {msg}"));
            }
        }
    }

    fn finish(self, family: &str) {
        eprintln!("{family}: {} gradchecks", self.count);
        assert!(
            self.failures.is_empty(),
            "{family}: {} of {} gradchecks failed:\n  {}",
            self.failures.len(),
            self.count,
            self.failures.join("\n  ")
        );
    }
}

#[test]
fn gradcheck_activations() {
    let mut c = Checks::default();
    let x = randn(&[3, 4], 1);
    c.check("relu", |t| F::relu(&t[0]), vec![x.clone()]);
    c.check("sigmoid", |t| F::sigmoid(&t[0]), vec![x.clone()]);
    c.check("tanh", |t| F::tanh(&t[0]), vec![x.clone()]);
    c.check("gelu_erf", |t| F::gelu(&t[0], false), vec![x.clone()]);
    c.check("gelu_tanh", |t| F::gelu(&t[0], true), vec![x.clone()]);
    c.check("silu", |t| F::silu(&t[0]), vec![x.clone()]);
    c.check(
        "softplus",
        |t| F::softplus(&t[0], 1.0, 20.0),
        vec![x.clone()],
    );
    let wide = uniform(&[4, 5], 2, -6.0, 6.0);
    c.check(
        "softplus_beta2_threshold3",
        |t| F::softplus(&t[0], 2.0, 3.0),
        vec![wide.clone()],
    );
    c.check(
        "softplus_beta0_5_transposed",
        |t| F::softplus(&t[0].t(), 0.5, 20.0),
        vec![wide],
    );
    c.check(
        "gelu_narrowed",
        |t| F::gelu(&t[0].narrow(1, 1, 2), false),
        vec![x.clone()],
    );
    c.check(
        "dropout_seeded",
        |t| F::dropout_with(&t[0], 0.3, true, &mut Generator::new(7)),
        vec![x.clone()],
    );
    c.check("dropout_eval", |t| F::dropout(&t[0], 0.3, false), vec![x]);
    c.finish("activations");
}

#[test]
fn gradcheck_softmax() {
    let mut c = Checks::default();
    let x = randn(&[2, 3, 4], 3);
    for dim in [0i64, 1, -1] {
        c.check(
            &format!("softmax_dim{dim}"),
            |t| F::softmax(&t[0], dim),
            vec![x.clone()],
        );
        c.check(
            &format!("log_softmax_dim{dim}"),
            |t| F::log_softmax(&t[0], dim),
            vec![x.clone()],
        );
    }
    c.check(
        "softmax_transposed",
        |t| F::softmax(&t[0].transpose(0, 2), -1),
        vec![x.clone()],
    );
    c.check(
        "log_softmax_transposed",
        |t| F::log_softmax(&t[0].transpose(1, 2), 1),
        vec![x],
    );
    let big = uniform(&[3, 5], 4, 500.0, 502.0);
    c.check("softmax_large", |t| F::softmax(&t[0], 1), vec![big.clone()]);
    c.check("log_softmax_large", |t| F::log_softmax(&t[0], 1), vec![big]);
    c.finish("softmax");
}

#[test]
fn gradcheck_classification_losses() {
    let mut c = Checks::default();
    let logits = randn(&[5, 4], 5);
    let target = idx(&[0, 3, 1, 2, 1], &[5]);
    let with_ignored = idx(&[0, -100, 1, 2, -100], &[5]);
    let weight = uniform(&[4], 6, 0.5, 1.5);
    for (name, reduction) in [
        ("mean", Reduction::Mean),
        ("sum", Reduction::Sum),
        ("none", Reduction::None),
    ] {
        let opts = CrossEntropyOptions {
            reduction,
            ..Default::default()
        };
        c.check(
            &format!("cross_entropy_{name}"),
            |t| F::cross_entropy_with(&t[0], &target, &opts),
            vec![logits.clone()],
        );
        let opts = CrossEntropyOptions {
            weight: Some(weight.detach()),
            label_smoothing: 0.1,
            reduction,
            ..Default::default()
        };
        c.check(
            &format!("cross_entropy_weight_ls_ignore_{name}"),
            |t| F::cross_entropy_with(&t[0], &with_ignored, &opts),
            vec![logits.clone()],
        );
    }
    // Class weights themselves are differentiable too (PyTorch leaves them constant).
    c.check(
        "cross_entropy_grad_wrt_weight",
        |t| {
            let opts = CrossEntropyOptions {
                weight: Some(t[1].clone()),
                label_smoothing: 0.2,
                ..Default::default()
            };
            F::cross_entropy_with(&t[0], &target, &opts)
        },
        vec![logits.clone(), weight.clone()],
    );
    c.check(
        "cross_entropy_transposed_logits",
        |t| F::cross_entropy_with(&t[0].t(), &target, &CrossEntropyOptions::default()),
        vec![randn(&[4, 5], 7)],
    );
    let target4d = idx(&[0, 2, 1, 1, 2, 0, 2, 2, 1, -100, 0, 1], &[2, 3, 2]);
    c.check(
        "cross_entropy_4d_ls",
        |t| {
            let opts = CrossEntropyOptions {
                label_smoothing: 0.3,
                ..Default::default()
            };
            F::cross_entropy_with(&t[0], &target4d, &opts)
        },
        vec![randn(&[2, 3, 3, 2], 8)],
    );
    c.check(
        "cross_entropy_unbatched",
        |t| F::cross_entropy_with(&t[0], &idx(&[2], &[]), &CrossEntropyOptions::default()),
        vec![randn(&[4], 9)],
    );
    c.check(
        "cross_entropy_prob_targets",
        |t| {
            let probs = F::softmax(&t[1], 1);
            let opts = CrossEntropyOptions {
                weight: Some(weight.detach()),
                label_smoothing: 0.1,
                ..Default::default()
            };
            F::cross_entropy_with(&t[0], &probs, &opts)
        },
        vec![logits.clone(), randn(&[5, 4], 10)],
    );
    let logp = randn(&[5, 4], 11);
    c.check(
        "nll_loss_weight_ignore",
        |t| {
            let opts = NllLossOptions {
                weight: Some(weight.detach()),
                ..Default::default()
            };
            F::nll_loss(&t[0], &with_ignored, &opts)
        },
        vec![logp.clone()],
    );
    c.check(
        "nll_loss_sum_no_ignore",
        |t| {
            let opts = NllLossOptions {
                ignore_index: None,
                reduction: Reduction::Sum,
                ..Default::default()
            };
            F::nll_loss(&t[0], &target, &opts)
        },
        vec![logp],
    );

    let probs_in = uniform(&[3, 4], 12, 0.05, 0.95);
    let soft_target = uniform(&[3, 4], 13, 0.0, 1.0);
    c.check(
        "binary_cross_entropy",
        |t| F::binary_cross_entropy(&t[0], &t[1], None, Reduction::Mean),
        vec![probs_in.clone(), soft_target.clone()],
    );
    c.check(
        "binary_cross_entropy_weight_none",
        |t| F::binary_cross_entropy(&t[0], &t[1], Some(&t[2]), Reduction::None),
        vec![probs_in, soft_target.clone(), uniform(&[4], 14, 0.5, 1.5)],
    );
    let z = randn(&[3, 4], 15)
        .affine(3.0, 0.0)
        .detach()
        .requires_grad_(true);
    c.check(
        "bce_with_logits",
        |t| F::binary_cross_entropy_with_logits(&t[0], &t[1], None, Reduction::Mean, None),
        vec![z.clone(), soft_target.clone()],
    );
    c.check(
        "bce_with_logits_weight_pos_weight_bcast",
        |t| {
            F::binary_cross_entropy_with_logits(
                &t[0],
                &t[1],
                Some(&t[2]),
                Reduction::Sum,
                Some(&t[3]),
            )
        },
        vec![
            z.clone(),
            soft_target.clone(),
            uniform(&[3, 1], 16, 0.5, 1.5),
            uniform(&[4], 17, 0.5, 2.5),
        ],
    );
    c.check(
        "bce_with_logits_transposed_none",
        |t| F::binary_cross_entropy_with_logits(&t[0].t(), &t[1], None, Reduction::None, None),
        vec![randn(&[4, 3], 18), soft_target],
    );

    let logq = randn(&[3, 5], 19);
    for log_target in [false, true] {
        for (name, red) in [
            ("batchmean", KlDivReduction::BatchMean),
            ("mean", KlDivReduction::Mean),
            ("none", KlDivReduction::None),
        ] {
            c.check(
                &format!("kl_div_{name}_log_target_{log_target}"),
                |t| {
                    let input = F::log_softmax(&t[0], 1);
                    let lt = F::log_softmax(&t[1], 1);
                    let target = if log_target { lt } else { lt.exp() };
                    F::kl_div(&input, &target, red, log_target)
                },
                vec![logq.clone(), randn(&[3, 5], 20)],
            );
        }
    }
    c.finish("classification losses");
}

#[test]
fn gradcheck_regression_losses() {
    let mut c = Checks::default();
    let x = randn(&[3, 4], 21)
        .affine(1.5, 0.0)
        .detach()
        .requires_grad_(true);
    let y = randn(&[3, 4], 22);
    let row = randn(&[4], 23);
    for (name, r) in [
        ("mean", Reduction::Mean),
        ("sum", Reduction::Sum),
        ("none", Reduction::None),
    ] {
        c.check(
            &format!("mse_{name}"),
            |t| F::mse_loss(&t[0], &t[1], r),
            vec![x.clone(), y.clone()],
        );
        c.check(
            &format!("l1_{name}"),
            |t| F::l1_loss(&t[0], &t[1], r),
            vec![x.clone(), y.clone()],
        );
        c.check(
            &format!("smooth_l1_{name}"),
            |t| F::smooth_l1_loss(&t[0], &t[1], r, 0.7),
            vec![x.clone(), y.clone()],
        );
        c.check(
            &format!("huber_{name}"),
            |t| F::huber_loss(&t[0], &t[1], r, 1.3),
            vec![x.clone(), y.clone()],
        );
    }
    c.check(
        "mse_broadcast_target",
        |t| F::mse_loss(&t[0], &t[1], Reduction::Mean),
        vec![x.clone(), row.clone()],
    );
    c.check(
        "smooth_l1_transposed_beta0",
        |t| F::smooth_l1_loss(&t[0].t(), &t[1], Reduction::Mean, 0.0),
        vec![randn(&[4, 3], 24), y.clone()],
    );
    c.check(
        "huber_narrowed_broadcast",
        |t| F::huber_loss(&t[0].narrow(1, 1, 4), &t[1], Reduction::Sum, 0.5),
        vec![randn(&[3, 6], 25), row],
    );
    c.finish("regression losses");
}

#[test]
fn gradcheck_linear_embedding() {
    let mut c = Checks::default();
    let w = randn(&[5, 3], 30);
    let b = randn(&[5], 31);
    c.check(
        "linear_2d",
        |t| F::linear(&t[0], &t[1], Some(&t[2])),
        vec![randn(&[4, 3], 32), w.clone(), b.clone()],
    );
    c.check(
        "linear_3d_transposed_no_bias",
        |t| F::linear(&t[0].transpose(1, 2), &t[1], None),
        vec![randn(&[2, 3, 4], 33), w.clone()],
    );
    c.check(
        "linear_transposed_weight",
        |t| F::linear(&t[0], &t[1].t(), Some(&t[2])),
        vec![randn(&[2, 2, 3], 34), randn(&[3, 5], 35), b],
    );
    c.check(
        "linear_1d_input",
        |t| F::linear(&t[0], &t[1], None),
        vec![randn(&[3], 36), w],
    );
    let ids = idx(&[1, 4, 4, 0, 2, 0], &[2, 3]);
    c.check(
        "embedding",
        |t| F::embedding(&ids, &t[0], None),
        vec![randn(&[5, 3], 37)],
    );
    c.check(
        "embedding_transposed_weight",
        |t| F::embedding(&ids, &t[0].t(), None),
        vec![randn(&[3, 5], 39)],
    );
    // With a padding index that is never looked up, the gradient is the plain one.
    c.check(
        "embedding_unused_padding_idx",
        |t| F::embedding(&ids, &t[0], Some(3)),
        vec![randn(&[5, 3], 38)],
    );
    c.finish("linear/embedding");
}

/// `padding_idx` deliberately breaks gradcheck (the padding row gets no gradient), so it is
/// checked against the plain gradient instead: equal everywhere except the zeroed row.
#[test]
fn embedding_padding_idx_blocks_only_its_row() {
    let ids = idx(&[1, 4, 4, 0, 2, 0], &[2, 3]);
    let upstream = fixed(&[2, 3, 3], 110);
    let grad = |pad: Option<i64>| {
        let w = randn(&[5, 3], 111);
        let out = F::embedding(&ids, &w, pad);
        (&out * &upstream).sum_all().backward();
        (out, w.grad().unwrap().to_vec2::<f64>())
    };
    let (plain_out, plain) = grad(None);
    for (pad, row) in [(Some(0), 0usize), (Some(-1), 4)] {
        let (out, padded) = grad(pad);
        assert_eq!(out.to_vec::<f64>(), plain_out.to_vec::<f64>());
        for r in 0..5 {
            if r == row {
                assert_eq!(padded[r], vec![0.0; 3], "padding row {r} got a gradient");
            } else {
                assert_eq!(padded[r], plain[r], "row {r}");
            }
        }
        assert!(plain[row].iter().any(|&g| g != 0.0));
    }
}

#[test]
fn gradcheck_norms() {
    let mut c = Checks::default();
    let x = randn(&[2, 3, 4], 40);
    c.check(
        "layer_norm_affine",
        |t| F::layer_norm(&t[0], &[4], Some(&t[1]), Some(&t[2]), 1e-5),
        vec![x.clone(), randn(&[4], 41), randn(&[4], 42)],
    );
    c.check(
        "layer_norm_2d_shape_transposed",
        |t| F::layer_norm(&t[0].transpose(1, 2), &[4, 3], None, None, 1e-5),
        vec![x.clone()],
    );
    c.check(
        "rms_norm",
        |t| F::rms_norm(&t[0], &[4], Some(&t[1]), 1e-6),
        vec![x.clone(), randn(&[4], 43)],
    );
    c.check(
        "rms_norm_narrowed_no_weight",
        |t| F::rms_norm(&t[0].narrow(2, 1, 2), &[3, 2], None, 1e-6),
        vec![x.clone()],
    );
    c.check(
        "group_norm_4d",
        |t| F::group_norm(&t[0], 2, Some(&t[1]), Some(&t[2]), 1e-5),
        vec![randn(&[2, 4, 2, 3], 44), randn(&[4], 45), randn(&[4], 46)],
    );
    c.check(
        "group_norm_3d_transposed",
        |t| F::group_norm(&t[0].transpose(1, 2), 3, None, Some(&t[1]), 1e-5),
        vec![randn(&[2, 4, 6], 47), randn(&[6], 48)],
    );
    for (name, shape) in [
        ("2d", vec![5, 3]),
        ("3d", vec![3, 3, 4]),
        ("4d", vec![2, 3, 2, 3]),
    ] {
        let rm = Tensor::zeros([3], DType::F64);
        let rv = Tensor::ones([3], DType::F64);
        c.check(
            &format!("batch_norm_train_{name}"),
            |t| {
                F::batch_norm(
                    &t[0],
                    Some(&rm),
                    Some(&rv),
                    Some(&t[1]),
                    Some(&t[2]),
                    true,
                    0.1,
                    1e-5,
                )
            },
            vec![randn(&shape, 49), randn(&[3], 50), randn(&[3], 51)],
        );
        let rm = fixed(&[3], 52);
        let rv = uniform(&[3], 53, 0.5, 1.5).detach();
        c.check(
            &format!("batch_norm_eval_{name}"),
            |t| {
                F::batch_norm(
                    &t[0],
                    Some(&rm),
                    Some(&rv),
                    Some(&t[1]),
                    Some(&t[2]),
                    false,
                    0.1,
                    1e-5,
                )
            },
            vec![randn(&shape, 54), randn(&[3], 55), randn(&[3], 56)],
        );
    }
    c.check(
        "batch_norm_train_no_stats_transposed",
        |t| F::batch_norm(&t[0].t(), None, None, None, None, true, 0.1, 1e-5),
        vec![randn(&[3, 6], 57)],
    );
    c.finish("norms");
}

#[test]
fn gradcheck_conv() {
    let mut c = Checks::default();
    c.check(
        "conv1d_stride_pad_dil_groups",
        |t| F::conv1d(&t[0], &t[1], Some(&t[2]), 2, 1, 2, 2),
        vec![
            randn(&[2, 4, 9], 60),
            randn(&[4, 2, 3], 61),
            randn(&[4], 62),
        ],
    );
    c.check(
        "conv1d_narrowed",
        |t| F::conv1d(&t[0].narrow(2, 1, 6), &t[1], None, 1, 0, 1, 1),
        vec![randn(&[1, 2, 8], 63), randn(&[3, 2, 2], 64)],
    );
    c.check(
        "conv2d_plain_bias",
        |t| F::conv2d(&t[0], &t[1], Some(&t[2]), 1, 0, 1, 1),
        vec![
            randn(&[2, 2, 4, 4], 65),
            randn(&[3, 2, 3, 3], 66),
            randn(&[3], 67),
        ],
    );
    c.check(
        "conv2d_stride_pad_dil",
        |t| F::conv2d(&t[0], &t[1], None, (2, 1), (1, 2), (1, 2), 1),
        vec![randn(&[1, 2, 5, 6], 68), randn(&[2, 2, 2, 3], 69)],
    );
    c.check(
        "conv2d_groups_transposed_input",
        |t| F::conv2d(&t[0].transpose(2, 3), &t[1], Some(&t[2]), 1, 1, 1, 2),
        vec![
            randn(&[1, 4, 5, 4], 70),
            randn(&[2, 2, 3, 3], 71),
            randn(&[2], 72),
        ],
    );
    c.check(
        "conv2d_depthwise_transposed_weight",
        |t| F::conv2d(&t[0], &t[1].transpose(2, 3), None, 1, 1, 1, 3),
        vec![randn(&[1, 3, 4, 4], 73), randn(&[3, 1, 3, 2], 74)],
    );
    c.check(
        "conv_transpose2d_plain",
        |t| F::conv_transpose2d(&t[0], &t[1], Some(&t[2]), 1, 0, 0, 1, 1),
        vec![
            randn(&[1, 2, 3, 3], 75),
            randn(&[2, 3, 2, 2], 76),
            randn(&[3], 77),
        ],
    );
    c.check(
        "conv_transpose2d_stride_pad_outpad_groups",
        |t| F::conv_transpose2d(&t[0], &t[1], Some(&t[2]), 2, 1, 1, 2, 1),
        vec![
            randn(&[1, 4, 3, 3], 78),
            randn(&[4, 1, 3, 3], 79),
            randn(&[2], 80),
        ],
    );
    c.check(
        "conv_transpose2d_outpad_ge_stride_dilated",
        |t| F::conv_transpose2d(&t[0], &t[1], None, (1, 2), (1, 0), 1, 1, 2),
        vec![randn(&[1, 2, 3, 3], 81), randn(&[2, 2, 2, 2], 82)],
    );
    c.check(
        "conv_transpose2d_narrowed_input",
        |t| F::conv_transpose2d(&t[0].narrow(3, 1, 3), &t[1], None, 2, 0, 0, 1, 1),
        vec![randn(&[1, 2, 3, 5], 83), randn(&[2, 2, 2, 2], 84)],
    );
    c.finish("conv");
}

#[test]
fn gradcheck_pool() {
    let mut c = Checks::default();
    let x = randn(&[1, 2, 6, 7], 90);
    c.check(
        "max_pool2d_k2",
        |t| F::max_pool2d(&t[0], 2, None, 0, 1, false),
        vec![x.clone()],
    );
    c.check(
        "max_pool2d_k3_s2_p1_ceil",
        |t| F::max_pool2d(&t[0], 3, 2, 1, 1, true),
        vec![x.clone()],
    );
    c.check(
        "max_pool2d_dilated_overlapping_transposed",
        |t| F::max_pool2d(&t[0].transpose(2, 3), (2, 3), 1, 0, (2, 1), false),
        vec![x.clone()],
    );
    c.check(
        "avg_pool2d_k2",
        |t| F::avg_pool2d(&t[0], 2, None, 0, false, true, None),
        vec![x.clone()],
    );
    c.check(
        "avg_pool2d_k3_s2_p1_ceil_include_pad",
        |t| F::avg_pool2d(&t[0], 3, 2, 1, true, true, None),
        vec![x.clone()],
    );
    c.check(
        "avg_pool2d_k3_s2_p1_ceil_exclude_pad",
        |t| F::avg_pool2d(&t[0], 3, 2, 1, true, false, None),
        vec![x.clone()],
    );
    c.check(
        "avg_pool2d_divisor_override_narrowed",
        |t| F::avg_pool2d(&t[0].narrow(3, 1, 4), 2, 1, 0, false, true, Some(3)),
        vec![x.clone()],
    );
    c.check(
        "adaptive_avg_pool2d_divisible",
        |t| F::adaptive_avg_pool2d(&t[0], (3, 7)),
        vec![x.clone()],
    );
    c.check(
        "adaptive_avg_pool2d_uneven",
        |t| F::adaptive_avg_pool2d(&t[0], (4, 3)),
        vec![x.clone()],
    );
    c.check(
        "adaptive_avg_pool2d_upsample_transposed_unbatched",
        |t| F::adaptive_avg_pool2d(&t[0].transpose(1, 2), [5, 4]),
        vec![randn(&[2, 3, 2], 91)],
    );
    c.finish("pool");
}

#[test]
fn gradcheck_attention() {
    let mut c = Checks::default();
    let q = randn(&[2, 2, 3, 4], 100);
    let k = randn(&[2, 2, 5, 4], 101);
    let v = randn(&[2, 2, 5, 3], 102);
    c.check(
        "sdpa_plain",
        |t| F::scaled_dot_product_attention(&t[0], &t[1], &t[2], None, false, None),
        vec![q.clone(), k.clone(), v.clone()],
    );
    c.check(
        "sdpa_scale",
        |t| F::scaled_dot_product_attention(&t[0], &t[1], &t[2], None, false, Some(0.3)),
        vec![q.clone(), k.clone(), v.clone()],
    );
    c.check(
        "sdpa_causal_rectangular",
        |t| F::scaled_dot_product_attention(&t[0], &t[1], &t[2], None, true, None),
        vec![q.clone(), k.clone(), v.clone()],
    );
    let keep = Tensor::from_vec(
        vec![
            true, false, true, true, false, true, true, false, false, true, false, true, true,
            true, false,
        ],
        [3, 5],
    );
    c.check(
        "sdpa_bool_mask_bcast",
        |t| F::scaled_dot_product_attention(&t[0], &t[1], &t[2], Some(&keep), false, None),
        vec![q.clone(), k.clone(), v.clone()],
    );
    c.check(
        "sdpa_float_mask_bcast_b1",
        |t| F::scaled_dot_product_attention(&t[0], &t[1], &t[2], Some(&t[3]), false, None),
        vec![q.clone(), k.clone(), v.clone(), randn(&[2, 1, 3, 5], 103)],
    );
    c.check(
        "sdpa_transposed_key_bcast_heads",
        |t| {
            F::scaled_dot_product_attention(
                &t[0],
                &t[1].transpose(-2, -1),
                &t[2],
                None,
                false,
                None,
            )
        },
        vec![q, randn(&[2, 1, 4, 5], 104), randn(&[2, 1, 5, 3], 105)],
    );
    c.check(
        "sdpa_3d_causal_square",
        |t| F::scaled_dot_product_attention(&t[0], &t[1], &t[2], None, true, None),
        vec![
            randn(&[2, 4, 3], 106),
            randn(&[2, 4, 3], 107),
            randn(&[2, 4, 2], 108),
        ],
    );
    c.finish("attention");
}
