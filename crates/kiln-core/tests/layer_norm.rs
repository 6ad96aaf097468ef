//! The fused layer-norm primitives (`Op::LayerNorm`, `Op::LayerNormBackward`): values and
//! gradients against the composite formula `(x − mean) / sqrt(var + eps)` written with plain
//! tensor ops, in f32 and f64, on dense and non-contiguous inputs; finite-difference checks of
//! both primitives (the backward's own VJP is the layer norm's second derivative).

use kiln_core::autograd::gradcheck;
use kiln_core::nn::functional as F;
use kiln_core::ops::{dispatch, Op};
use kiln_core::{DType, Generator, Tensor};
use std::panic::{catch_unwind, AssertUnwindSafe};

const EPS: f64 = 1e-5;

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    Tensor::randn_with(shape, dtype, &mut Generator::new(seed))
}

/// The composite reference over the last `k` dims.
fn composite(x: &Tensor, k: usize) -> Tensor {
    let dims: Vec<usize> = (x.rank() - k..x.rank()).collect();
    let centered = x - &x.mean(dims.as_slice(), true);
    let var = centered.square().mean(dims.as_slice(), true);
    &centered * &var.add_scalar(EPS).rsqrt()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_vec::<f64>()
        .iter()
        .zip(b.to_vec::<f64>())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Output and input gradient (for a random upstream gradient) of `f` at `x`.
fn value_and_grad(x: &Tensor, g: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> (Tensor, Tensor) {
    let leaf = x.detach().requires_grad_(true);
    let y = f(&leaf);
    (&y * g).sum_all().backward();
    (y.detach(), leaf.grad().unwrap())
}

#[test]
fn fused_layer_norm_matches_the_composite_formula_forward_and_backward() {
    // (shape, normalized trailing dims, a transposed view as input)
    let cases: [(&[usize], usize, bool); 5] = [
        (&[4, 7], 1, false),
        (&[2, 3, 256], 1, false),
        (&[3, 5, 6], 2, false),
        (&[5, 9], 1, true),
        (&[2, 6, 4], 2, true),
    ];
    for dtype in [DType::F64, DType::F32] {
        let tol = if dtype == DType::F64 { 1e-12 } else { 2e-5 };
        for (i, (shape, k, transposed)) in cases.iter().enumerate() {
            let base = randn(shape, dtype, 10 + i as u64).affine(3.0, 1.5);
            let x = if *transposed {
                base.transpose(-2, -1)
            } else {
                base
            };
            assert_eq!(x.is_contiguous(), !transposed);
            let g = randn(x.shape(), dtype, 50 + i as u64);
            let ns = x.shape()[x.rank() - k..].to_vec();
            let (y_fused, gx_fused) =
                value_and_grad(&x, &g, |t| F::layer_norm(t, &ns, None, None, EPS));
            let (y_ref, gx_ref) = value_and_grad(&x, &g, |t| composite(t, *k));
            let what = format!("{dtype} {shape:?} k={k} transposed={transposed}");
            assert!(max_abs_diff(&y_fused, &y_ref) < tol, "forward {what}");
            assert!(
                max_abs_diff(&gx_fused, &gx_ref) < tol * 10.0,
                "gradient {what}"
            );
        }
    }
}

#[test]
fn layer_norm_with_affine_matches_the_composite_gradients_of_all_inputs() {
    let x = randn(&[6, 16], DType::F64, 1);
    let (w, b) = (randn(&[16], DType::F64, 2), randn(&[16], DType::F64, 3));
    let g = randn(&[6, 16], DType::F64, 4);
    let grads = |f: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor| {
        let leaves: Vec<Tensor> = [&x, &w, &b]
            .iter()
            .map(|t| t.detach().requires_grad_(true))
            .collect();
        (&f(&leaves[0], &leaves[1], &leaves[2]) * &g)
            .sum_all()
            .backward();
        leaves.iter().map(|l| l.grad().unwrap()).collect::<Vec<_>>()
    };
    let fused = grads(&|x, w, b| F::layer_norm(x, &[16], Some(w), Some(b), EPS));
    let reference = grads(&|x, w, b| &(&composite(x, 1) * w) + b);
    // Also over two normalized dims (weight and bias shaped like them).
    let x2 = x.reshape([6, 4, 4]);
    let (w2, b2) = (w.reshape([4, 4]), b.reshape([4, 4]));
    let y2 = F::layer_norm(&x2, &[4, 4], Some(&w2), Some(&b2), EPS);
    let r2 = &(&composite(&x2, 2) * &w2) + &b2;
    assert!(max_abs_diff(&y2, &r2) < 1e-12);
    for (name, (a, r)) in ["x", "weight", "bias"]
        .iter()
        .zip(fused.iter().zip(&reference))
    {
        assert!(max_abs_diff(a, r) < 1e-12, "grad of {name}");
    }
}

#[test]
fn layer_norm_primitives_pass_gradcheck_including_the_second_derivative() {
    let x = randn(&[3, 5], DType::F64, 7).requires_grad_(true);
    let dy = randn(&[3, 5], DType::F64, 8).requires_grad_(true);
    let ln = |t: &[Tensor]| dispatch(Op::LayerNorm { eps: EPS }, &[&t[0]]);
    gradcheck(ln, std::slice::from_ref(&x), 1e-6, 1e-6, 1e-5).unwrap();
    // A non-contiguous input: the kernel reads the transposed view.
    let xt = randn(&[5, 3], DType::F64, 9).requires_grad_(true);
    let ln_t = |t: &[Tensor]| dispatch(Op::LayerNorm { eps: EPS }, &[&t[0].t()]);
    gradcheck(ln_t, &[xt], 1e-6, 1e-6, 1e-5).unwrap();
    // With weight and bias inside the op (weight and bias get gradients too).
    let (w, b) = (
        randn(&[5], DType::F64, 10).requires_grad_(true),
        randn(&[5], DType::F64, 11).requires_grad_(true),
    );
    let ln_affine = |t: &[Tensor]| dispatch(Op::LayerNorm { eps: EPS }, &[&t[0], &t[1], &t[2]]);
    gradcheck(ln_affine, &[x.clone(), w, b], 1e-6, 1e-6, 1e-5).unwrap();
    // The backward op's VJP (with respect to x and to the upstream gradient).
    let back = |t: &[Tensor]| dispatch(Op::LayerNormBackward { eps: EPS }, &[&t[0], &t[1]]);
    gradcheck(back, &[x.clone(), dy.clone()], 1e-6, 1e-6, 1e-5).unwrap();
    let back_t = |t: &[Tensor]| {
        dispatch(
            Op::LayerNormBackward { eps: EPS },
            &[&t[0].t().contiguous().t(), &t[1]],
        )
    };
    gradcheck(back_t, &[x, dy], 1e-6, 1e-6, 1e-5).unwrap();
}

#[test]
fn layer_norm_misuse_names_the_op_shapes_and_dtypes() {
    let x = Tensor::zeros([2, 3], DType::F32);
    let g = Tensor::zeros([3, 2], DType::F32);
    let err = catch_unwind(AssertUnwindSafe(|| {
        dispatch(Op::LayerNormBackward { eps: EPS }, &[&x, &g])
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("layer_norm_backward") && msg.contains("[2, 3]") && msg.contains("f32"),
        "{msg}"
    );
    let w = Tensor::zeros([2], DType::F32);
    let err = catch_unwind(AssertUnwindSafe(|| {
        dispatch(Op::LayerNorm { eps: EPS }, &[&x, &w, &w])
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("layer_norm") && msg.contains("[2, 3], [2], [2]"),
        "{msg}"
    );
    let ints = Tensor::zeros([2, 3], DType::I64);
    let err = catch_unwind(AssertUnwindSafe(|| {
        dispatch(Op::LayerNorm { eps: EPS }, &[&ints])
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("layer_norm") && msg.contains("i64"), "{msg}");
}
