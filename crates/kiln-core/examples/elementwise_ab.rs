//! Times the big elementwise kernels of the GPT step (GELU forward/backward, add, layer norm
//! inputs) at the step's sizes, to see ns per element.
use kiln_core::ops::{dispatch, Op, UnaryOp};
use kiln_core::{DType, Tensor};
use std::time::Instant;

fn time(name: &str, elems: usize, f: impl Fn() -> Tensor) {
    for _ in 0..3 {
        let _ = f();
    }
    let mut ts: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    println!(
        "{name:24} median {:8.3} ms  {:6.2} ns/elem",
        ts[7] * 1e3,
        ts[7] * 1e9 / elems as f64
    );
}

fn main() {
    let shape = [16usize, 128, 1024];
    let n: usize = shape.iter().product();
    let x = Tensor::randn(shape.to_vec(), DType::F32);
    let g = Tensor::randn(shape.to_vec(), DType::F32);
    time("gelu", n, || {
        dispatch(Op::Unary(UnaryOp::Gelu { tanh: false }), &[&x])
    });
    time("gelu_backward", n, || dispatch(Op::GeluBackward, &[&x, &g]));
    time("add", n, || dispatch(Op::Add, &[&x, &g]));
    time("mul", n, || dispatch(Op::Mul, &[&x, &g]));
    time("exp", n, || dispatch(Op::Unary(UnaryOp::Exp), &[&x]));
    time("sum all", n, || x.sum_all());
}
