//! Behaviour of the functionals beyond the PyTorch fixtures: dropout statistics and seeding,
//! f32 agreeing with f64, unbatched inputs, and error messages on misuse.

use kiln_core::nn::functional as F;
use kiln_core::nn::functional::{CrossEntropyOptions, Reduction};
use kiln_core::{DType, Generator, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn_with(shape, DType::F64, &mut Generator::new(seed))
}

/// The fused softmax kernels (vectorized f32 exp, strided dims, parallel blocks) against the
/// definition computed in f64 with plain ops.
#[test]
fn softmax_kernel_matches_the_definition() {
    for shape in [
        vec![7usize, 300],
        vec![3, 5, 33],
        vec![600, 128],
        vec![2, 130, 3],
    ] {
        let x64 = randn(&shape, 11).mul_scalar(4.0);
        let x32 = x64.to_dtype(DType::F32);
        for dim in 0..shape.len() {
            let m = x64.amax([dim], true);
            let e = (&x64 - &m).exp();
            let s = e.sum([dim], true);
            let want_soft = (&e / &s).to_vec::<f64>();
            let want_log = (&(&x64 - &m) - &s.log()).to_vec::<f64>();
            for (x, tol) in [(&x64, 1e-12), (&x32, 1e-6)] {
                let soft = F::softmax(x, dim).to_dtype(DType::F64).to_vec::<f64>();
                let log = F::log_softmax(x, dim).to_dtype(DType::F64).to_vec::<f64>();
                for i in 0..soft.len() {
                    assert!(
                        (soft[i] - want_soft[i]).abs() <= tol,
                        "softmax {shape:?} dim {dim}"
                    );
                    assert!(
                        (log[i] - want_log[i]).abs() <= tol * (1.0 + want_log[i].abs()) * 4.0,
                        "log_softmax {shape:?} dim {dim}: {} vs {}",
                        log[i],
                        want_log[i]
                    );
                }
            }
        }
    }
    // Rows of −∞ give NaN (as in PyTorch); a NaN poisons its row only; +∞ gives NaN.
    let x = Tensor::from_vec(
        vec![
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            1.0,
            f32::NAN,
            0.0,
            1.0,
            2.0,
            f32::INFINITY,
        ],
        [4, 2],
    );
    let y = F::softmax(&x, 1).to_vec::<f32>();
    assert!(y[0].is_nan() && y[1].is_nan() && y[2].is_nan() && y[3].is_nan());
    assert!((y[4] - 0.268_941_43).abs() < 1e-6 && (y[5] - 0.731_058_6).abs() < 1e-6);
    assert!(y[7].is_nan());
    let l = F::log_softmax(&x, 1).to_vec::<f32>();
    assert!(l[0].is_nan() && l[3].is_nan());
    assert!((l[4] + 1.313_261_7).abs() < 1e-6);
}

/// Tensors above the parallel threshold (split into pool tasks) give the serial results.
#[test]
fn large_elementwise_kernels_match_the_serial_path() {
    let x = randn(&[700, 600], 12).to_dtype(DType::F32);
    let y = randn(&[700, 600], 13).to_dtype(DType::F32);
    let (xv, yv) = (x.to_vec::<f32>(), y.to_vec::<f32>());
    let sum = (&x + &y).to_vec::<f32>();
    let aff = x.affine(2.0, -1.0).to_vec::<f32>();
    for i in 0..xv.len() {
        assert_eq!(sum[i], xv[i] + yv[i]);
        assert_eq!(aff[i], xv[i] * 2.0 - 1.0);
    }
    // Vectorized transcendental kernels: the same value per element as on a small tensor.
    let small = |i: usize| Tensor::from_vec(vec![xv[i]], [1]);
    let gelu = F::gelu(&x, false).to_vec::<f32>();
    let exp = x.exp().to_vec::<f32>();
    for i in (0..xv.len()).step_by(997) {
        assert_eq!(gelu[i], F::gelu(&small(i), false).to_vec::<f32>()[0]);
        assert_eq!(exp[i], small(i).exp().to_vec::<f32>()[0]);
    }
    let soft = F::softmax(&x, 1).to_vec::<f32>();
    let row = F::softmax(&x.narrow(0, 350, 1), 1).to_vec::<f32>();
    assert_eq!(&soft[350 * 600..351 * 600], row.as_slice());
}

#[test]
fn dropout_zeroes_p_and_rescales_survivors() {
    let x = Tensor::ones([100, 100], DType::F32);
    let y = F::dropout_with(&x, 0.25, true, &mut Generator::new(3)).to_vec::<f32>();
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((zeros - 0.25).abs() < 0.02, "dropped fraction {zeros}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    // Seeded: the same generator state gives the same mask; the next draw differs.
    let mut g = Generator::new(3);
    let a = F::dropout_with(&x, 0.25, true, &mut g).to_vec::<f32>();
    let b = F::dropout_with(&x, 0.25, true, &mut g).to_vec::<f32>();
    assert_eq!(a, y);
    assert_ne!(a, b);
    // The global generator is used by `dropout`.
    let z = F::dropout(&x, 0.5, true).to_vec::<f32>();
    assert!(z.contains(&0.0) && z.contains(&2.0));
}

#[test]
fn dropout_edge_probabilities() {
    let x = randn(&[4, 5], 1);
    assert!(F::dropout(&x, 0.7, false).same(&x));
    assert!(F::dropout(&x, 0.0, true).same(&x));
    assert!(F::dropout(&x, 1.0, true)
        .to_vec::<f64>()
        .iter()
        .all(|&v| v == 0.0));
}

#[test]
#[should_panic(expected = "dropout: probability has to be between 0 and 1")]
fn dropout_rejects_bad_p() {
    F::dropout(&randn(&[2], 1), 1.5, true);
}

fn assert_close_f32(name: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape(), "{name}: shapes");
    assert_eq!(a.dtype(), DType::F32, "{name}: f32 in, f32 out");
    for (x, y) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()) {
        assert!(
            (x - y).abs() <= 1e-4 + 1e-4 * y.abs(),
            "{name}: f32 {x} vs f64 {y}"
        );
    }
}

/// Every functional run in f32 agrees with its f64 run (scalars, masks and helper matrices
/// take the input's dtype).
#[test]
fn f32_agrees_with_f64() {
    type Case = (&'static str, Vec<Tensor>, Box<dyn Fn(&[Tensor]) -> Tensor>);
    let target = Tensor::from_vec(vec![0i64, 3, -100, 2], [4]);
    let probs = randn(&[3, 4], 2).sigmoid();
    let cases: Vec<Case> = vec![
        (
            "softmax",
            vec![randn(&[3, 4], 1)],
            Box::new(|t| F::softmax(&t[0], 1)),
        ),
        (
            "log_softmax",
            vec![randn(&[3, 4], 1)],
            Box::new(|t| F::log_softmax(&t[0], 0)),
        ),
        (
            "softplus",
            vec![randn(&[3, 4], 1)],
            Box::new(|t| F::softplus(&t[0], 2.0, 1.0)),
        ),
        (
            "cross_entropy",
            vec![randn(&[4, 5], 3)],
            Box::new(move |t| {
                let opts = CrossEntropyOptions {
                    label_smoothing: 0.1,
                    ..Default::default()
                };
                F::cross_entropy_with(&t[0], &target, &opts)
            }),
        ),
        (
            "bce",
            vec![probs.clone(), probs.clone()],
            Box::new(|t| F::binary_cross_entropy(&t[0], &t[1], None, Reduction::Sum)),
        ),
        (
            "bce_with_logits",
            vec![randn(&[3, 4], 4), probs],
            Box::new(|t| {
                F::binary_cross_entropy_with_logits(&t[0], &t[1], None, Reduction::Mean, None)
            }),
        ),
        (
            "kl_div",
            vec![randn(&[3, 4], 5), randn(&[3, 4], 6)],
            Box::new(|t| {
                let p = F::softmax(&t[1], 1);
                F::kl_div(&F::log_softmax(&t[0], 1), &p, Reduction::Sum, false)
            }),
        ),
        (
            "smooth_l1",
            vec![randn(&[3, 4], 7), randn(&[3, 4], 8)],
            Box::new(|t| F::smooth_l1_loss(&t[0], &t[1], Reduction::None, 0.5)),
        ),
        (
            "layer_norm",
            vec![randn(&[2, 6], 9)],
            Box::new(|t| F::layer_norm(&t[0], &[6], None, None, 1e-5)),
        ),
        (
            "group_norm",
            vec![randn(&[2, 4, 3], 10)],
            Box::new(|t| F::group_norm(&t[0], 2, None, None, 1e-5)),
        ),
        (
            "batch_norm",
            vec![randn(&[4, 3, 2], 11)],
            Box::new(|t| F::batch_norm(&t[0], None, None, None, None, true, 0.1, 1e-5)),
        ),
        (
            "conv2d",
            vec![randn(&[1, 2, 5, 5], 12), randn(&[4, 1, 3, 3], 13)],
            Box::new(|t| F::conv2d(&t[0], &t[1], None, 2, 1, 1, 2)),
        ),
        (
            "conv_transpose2d",
            vec![randn(&[1, 2, 3, 3], 14), randn(&[2, 2, 3, 3], 15)],
            Box::new(|t| F::conv_transpose2d(&t[0], &t[1], None, 2, 1, 1, 1, 1)),
        ),
        (
            "max_pool2d",
            vec![randn(&[1, 2, 5, 5], 16)],
            Box::new(|t| F::max_pool2d(&t[0], 3, 2, 1, 1, true)),
        ),
        (
            "avg_pool2d",
            vec![randn(&[1, 2, 5, 5], 17)],
            Box::new(|t| F::avg_pool2d(&t[0], 3, 2, 1, true, false, None)),
        ),
        (
            "adaptive_avg_pool2d",
            vec![randn(&[1, 2, 5, 7], 18)],
            Box::new(|t| F::adaptive_avg_pool2d(&t[0], (2, 3))),
        ),
        (
            "sdpa",
            vec![
                randn(&[2, 3, 4], 19),
                randn(&[2, 5, 4], 20),
                randn(&[2, 5, 4], 21),
            ],
            Box::new(|t| F::scaled_dot_product_attention(&t[0], &t[1], &t[2], None, true, None)),
        ),
    ];
    for (name, inputs, f) in &cases {
        let want = f(inputs);
        let narrow: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(DType::F32)).collect();
        assert_close_f32(name, &f(&narrow), &want);
    }
}

#[test]
fn unbatched_pooling_and_indices() {
    let x = randn(&[2, 4, 4], 30);
    let (out, idx) = F::max_pool2d_with_indices(&x, 2, None, 0, 1, false);
    assert_eq!(out.shape(), &[2, 2, 2]);
    assert_eq!(idx.shape(), &[2, 2, 2]);
    // Each index points at the winning value in its plane.
    let flat = x.reshape([2, 16]).gather(1, &idx.reshape([2, 4]));
    assert_eq!(flat.to_vec::<f64>(), out.reshape([2, 4]).to_vec::<f64>());
    assert_eq!(
        F::avg_pool2d(&x, 2, None, 0, false, true, None).shape(),
        &[2, 2, 2]
    );
    assert_eq!(F::adaptive_avg_pool2d(&x, 3).shape(), &[2, 3, 3]);
}

#[test]
fn batch_norm_updates_running_stats_and_eval_uses_them() {
    let x = randn(&[8, 2], 40).affine(2.0, 1.0);
    let rm = Tensor::zeros([2], DType::F64);
    let rv = Tensor::ones([2], DType::F64);
    F::batch_norm(&x, Some(&rm), Some(&rv), None, None, true, 0.5, 1e-5);
    let mean = x.mean([0], false).to_vec::<f64>();
    let var = x.var([0], true, false).to_vec::<f64>();
    for c in 0..2 {
        assert!((rm.to_vec::<f64>()[c] - 0.5 * mean[c]).abs() < 1e-12);
        assert!((rv.to_vec::<f64>()[c] - (0.5 + 0.5 * var[c])).abs() < 1e-12);
    }
    let y = F::batch_norm(&x, Some(&rm), Some(&rv), None, None, false, 0.5, 0.0);
    let want = (&x - &rm) / rv.sqrt();
    for (a, b) in y.to_vec::<f64>().iter().zip(want.to_vec::<f64>()) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

#[test]
fn conv1d_matches_conv2d_with_height_one() {
    let x = randn(&[2, 4, 9], 50);
    let w = randn(&[6, 2, 3], 51);
    let b = randn(&[6], 52);
    let y1 = F::conv1d(&x, &w, Some(&b), 2, 1, 2, 2);
    let y2 = F::conv2d(
        &x.unsqueeze(2),
        &w.unsqueeze(2),
        Some(&b),
        (1, 2),
        (0, 1),
        (1, 2),
        2,
    );
    assert_eq!(y1.to_vec::<f64>(), y2.to_vec::<f64>());
    assert_eq!(y1.shape(), &[2, 6, 4]);
}

#[test]
#[should_panic(expected = "conv2d: input [1, 3, 5, 5] with 1 groups does not match weight")]
fn conv2d_reports_channel_mismatch() {
    F::conv2d(
        &randn(&[1, 3, 5, 5], 1),
        &randn(&[2, 2, 3, 3], 2),
        None,
        1,
        0,
        1,
        1,
    );
}

#[test]
#[should_panic(expected = "cross_entropy: input [4, 5] needs class-index targets of shape [4]")]
fn cross_entropy_reports_target_shape() {
    let t = Tensor::from_vec(vec![0i64, 1, 2], [3]);
    F::cross_entropy_with(&randn(&[4, 5], 1), &t, &CrossEntropyOptions::default());
}

#[test]
#[should_panic(expected = "linear: input [2, 4] does not end in in_features = 3")]
fn linear_reports_feature_mismatch() {
    F::linear(&randn(&[2, 4], 1), &randn(&[5, 3], 2), None);
}
