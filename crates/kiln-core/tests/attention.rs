//! The fused attention primitives (`Op::Attention`, `Op::AttentionBackward`) against the
//! composite formula `softmax(scale · q kᵀ + causal mask) v` written with plain tensor ops: values
//! and all three input gradients, f32 and f64, causal or not, on dense inputs and on the strided
//! per-head views a multi-head layer makes of one packed projection.

use kiln_core::autograd::gradcheck;
use kiln_core::nn::functional as F;
use kiln_core::ops::{dispatch, Op};
use kiln_core::{DType, Generator, Tensor};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    Tensor::randn_with(shape, dtype, &mut Generator::new(seed))
}

/// The composite reference (what `scaled_dot_product_attention` computes without the op).
fn composite(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool, scale: f64) -> Tensor {
    let mut scores = q.matmul(&k.transpose(-2, -1)).mul_scalar(scale);
    if causal {
        let t = q.shape()[q.rank() - 2];
        let keep = Tensor::ones([t, t], DType::Bool).tril(0);
        scores = scores.masked_fill(&keep.logical_not(), f64::NEG_INFINITY);
    }
    F::softmax(&scores, -1).matmul(v)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_vec::<f64>()
        .iter()
        .zip(b.to_vec::<f64>())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Output and the gradients of q, k, v for upstream `g`.
fn run(
    qkv: [&Tensor; 3],
    g: &Tensor,
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
) -> Vec<Tensor> {
    let leaves: Vec<Tensor> = qkv
        .iter()
        .map(|t| t.detach().requires_grad_(true))
        .collect();
    let y = f(&leaves[0], &leaves[1], &leaves[2]);
    (&y * g).sum_all().backward();
    let mut out = vec![y.detach()];
    out.extend(leaves.iter().map(|l| l.grad().unwrap()));
    out
}

/// q, k, v as the strided head views of one `[N, T, 3E]` projection (like MultiheadAttention).
fn packed_heads(n: usize, t: usize, h: usize, d: usize, dtype: DType, seed: u64) -> [Tensor; 3] {
    let e = h * d;
    let qkv = randn(&[n, t, 3 * e], dtype, seed);
    std::array::from_fn(|i| {
        qkv.narrow(2, i * e, e)
            .reshape([n, t, h, d])
            .transpose(1, 2)
    })
}

#[test]
fn fused_attention_matches_the_composite_values_and_gradients() {
    for dtype in [DType::F64, DType::F32] {
        let tol = if dtype == DType::F64 { 1e-12 } else { 2e-5 };
        let dense: [Tensor; 3] = std::array::from_fn(|i| randn(&[2, 3, 7, 5], dtype, i as u64));
        let unbatched: [Tensor; 3] = std::array::from_fn(|i| randn(&[6, 4], dtype, 9 + i as u64));
        let heads = packed_heads(2, 9, 3, 4, dtype, 20);
        assert!(!heads[0].is_contiguous());
        // Longer than two causal row blocks, the last one partial.
        let long = packed_heads(1, 70, 2, 8, dtype, 30);
        let cases = [
            ("dense", dense),
            ("unbatched", unbatched),
            ("heads", heads),
            ("long heads", long),
        ];
        for (name, qkv) in cases {
            for causal in [false, true] {
                let d = qkv[0].shape()[qkv[0].rank() - 1];
                let scale = 1.0 / (d as f64).sqrt();
                let g = randn(qkv[0].shape(), dtype, 99);
                let refs = [&qkv[0], &qkv[1], &qkv[2]];
                let fused = run(refs, &g, |q, k, v| {
                    F::scaled_dot_product_attention(q, k, v, None, causal, None)
                });
                let reference = run(refs, &g, |q, k, v| composite(q, k, v, causal, scale));
                for (what, (a, b)) in ["out", "dq", "dk", "dv"]
                    .iter()
                    .zip(fused.iter().zip(&reference))
                {
                    let diff = max_abs_diff(a, b);
                    assert!(diff < tol, "{dtype} {name} causal={causal} {what}: {diff}");
                }
            }
        }
    }
}

#[test]
fn attention_op_passes_gradcheck_on_strided_heads() {
    // T = 40 spans two causal row blocks, the second partial.
    for (causal, t) in [(false, 5), (true, 5), (true, 40)] {
        let inputs: Vec<Tensor> = packed_heads(1, t, 2, 3, DType::F64, 7)
            .iter()
            .map(|t| t.detach().requires_grad_(true))
            .collect();
        let f =
            |t: &[Tensor]| dispatch(Op::Attention { scale: 0.7, causal }, &[&t[0], &t[1], &t[2]]);
        gradcheck(f, &inputs, 1e-6, 1e-6, 1e-5).unwrap();
    }
}

#[test]
fn attention_misuse_and_double_backward_name_the_op() {
    let q = Tensor::zeros([2, 4, 3], DType::F32);
    let k = Tensor::zeros([2, 5, 3], DType::F32);
    let err = catch_unwind(AssertUnwindSafe(|| {
        dispatch(
            Op::Attention {
                scale: 1.0,
                causal: false,
            },
            &[&q, &k, &k],
        )
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("attention") && msg.contains("[2, 4, 3], [2, 5, 3]") && msg.contains("f32"),
        "{msg}"
    );
    // The backward op is not differentiable: differentiating it is an error, not a zero.
    let x = randn(&[3, 2], DType::F64, 1).requires_grad_(true);
    let op = Op::AttentionBackward {
        scale: 1.0,
        causal: true,
    };
    let y = dispatch(op, &[&x, &x, &x, &x]);
    let err = catch_unwind(AssertUnwindSafe(|| y.sum_all().backward())).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("attention_backward") && msg.contains("not differentiable"),
        "{msg}"
    );
}
