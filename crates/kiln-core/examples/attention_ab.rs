//! Times fused vs composite attention (forward + backward) on the GPT benchmark's shapes.
use kiln_core::nn::functional as F;
use kiln_core::{DType, Tensor};
use std::time::Instant;

fn composite(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let t = q.shape()[2];
    let scores = q.mul_scalar(0.125).matmul(&k.transpose(-2, -1));
    let keep = Tensor::ones([t, t], DType::Bool).tril(0);
    let neg = Tensor::scalar(f64::NEG_INFINITY, DType::F32);
    F::softmax(&Tensor::where_(&keep, &scores, &neg), -1).matmul(v)
}

fn main() {
    kiln_core::set_num_threads(2);
    let qkv = Tensor::randn([16, 128, 768], DType::F32).requires_grad_(true);
    let heads = |i: usize| {
        qkv.narrow(2, i * 256, 256)
            .reshape([16, 128, 4, 64])
            .transpose(1, 2)
    };
    let g = Tensor::randn([16, 4, 128, 64], DType::F32);
    let time = |name: &str, fused: bool| {
        let mut best = f64::MAX;
        let mut fwd_best = f64::MAX;
        for _ in 0..15 {
            let t0 = Instant::now();
            let (q, k, v) = (heads(0), heads(1), heads(2));
            let y = if fused {
                F::scaled_dot_product_attention(&q, &k, &v, None, true, None)
            } else {
                composite(&q, &k, &v)
            };
            let t1 = Instant::now();
            (&y * &g).sum_all().backward();
            qkv.zero_grad();
            fwd_best = fwd_best.min((t1 - t0).as_secs_f64());
            best = best.min(t0.elapsed().as_secs_f64());
        }
        println!(
            "{name}: fwd {:.2} ms, fwd+bwd {:.2} ms",
            fwd_best * 1e3,
            best * 1e3
        );
    };
    backward_alone();
    for _ in 0..2 {
        time("composite", false);
        time("fused", true);
    }
}

/// Times the backward primitive alone.
pub fn backward_alone() {
    use kiln_core::ops::{dispatch, Op};
    let qkv = Tensor::randn([16, 128, 768], DType::F32);
    let h = |i: usize| {
        qkv.narrow(2, i * 256, 256)
            .reshape([16, 128, 4, 64])
            .transpose(1, 2)
    };
    let g = Tensor::randn([16, 4, 128, 64], DType::F32);
    let (q, k, v) = (h(0), h(1), h(2));
    for op in [
        Op::Attention {
            scale: 0.125,
            causal: true,
        },
        Op::AttentionBackward {
            scale: 0.125,
            causal: true,
        },
    ] {
        let mut best = f64::MAX;
        for _ in 0..15 {
            let t0 = Instant::now();
            let _y = if matches!(op, Op::Attention { .. }) {
                dispatch(op.clone(), &[&q, &k, &v])
            } else {
                dispatch(op.clone(), &[&q, &k, &v, &g])
            };
            best = best.min(t0.elapsed().as_secs_f64());
        }
        println!("{}: {:.2} ms", op.name(), best * 1e3);
    }
}
