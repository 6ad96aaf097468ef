//! The trigonometric, hyperbolic and rounding unary ops: values against Rust's `f64`
//! functions and hand-written cases (halves round to even, as NumPy and PyTorch), gradients
//! by finite differences, integer inputs of the rounding ops kept as they are.

use kiln_core::autograd::gradcheck;
use kiln_core::ops::UnaryOp;
use kiln_core::{DType, Generator, Tensor};

/// An op, its reference function and a domain `[lo, hi]` inside which it is smooth.
type Case = (UnaryOp, fn(f64) -> f64, f64, f64);

/// Each smooth op's case.
fn smooth_ops() -> Vec<Case> {
    vec![
        (UnaryOp::Tan, f64::tan, -1.2, 1.2),
        (UnaryOp::Asin, f64::asin, -0.9, 0.9),
        (UnaryOp::Acos, f64::acos, -0.9, 0.9),
        (UnaryOp::Atan, f64::atan, -3.0, 3.0),
        (UnaryOp::Sinh, f64::sinh, -3.0, 3.0),
        (UnaryOp::Cosh, f64::cosh, -3.0, 3.0),
        (UnaryOp::Asinh, f64::asinh, -3.0, 3.0),
        (UnaryOp::Acosh, f64::acosh, 1.1, 4.0),
        (UnaryOp::Atanh, f64::atanh, -0.9, 0.9),
    ]
}

fn uniform(lo: f64, hi: f64, dtype: DType, seed: u64) -> Tensor {
    Tensor::rand_with([5, 7], dtype, &mut Generator::new(seed)).affine(hi - lo, lo)
}

#[test]
fn trig_and_hyperbolic_ops_match_the_f64_functions() {
    for (k, (op, f, lo, hi)) in smooth_ops().into_iter().enumerate() {
        let x = uniform(lo, hi, DType::F64, k as u64);
        let got = x.unary(op).to_vec::<f64>();
        for (g, v) in got.iter().zip(x.to_vec::<f64>()) {
            let want = f(v);
            assert!(
                (g - want).abs() <= 1e-15 * want.abs().max(1.0),
                "{}({v}) = {g}, expected {want}",
                op.name()
            );
        }
        // f32 within a few ulps of the f64 value.
        let x32 = x.to_dtype(DType::F32);
        let got = x32.unary(op).to_vec::<f32>();
        for (g, v) in got.iter().zip(x32.to_vec::<f32>()) {
            let want = f(v as f64);
            assert!(
                (*g as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{} in f32 of {v}: {g} vs {want}",
                op.name()
            );
        }
    }
}

#[test]
fn trig_and_hyperbolic_gradients_match_finite_differences() {
    for (k, (op, _, lo, hi)) in smooth_ops().into_iter().enumerate() {
        let x = uniform(lo, hi, DType::F64, 100 + k as u64).requires_grad_(true);
        gradcheck(|xs| xs[0].unary(op), &[x], 1e-6, 1e-6, 1e-5)
            .unwrap_or_else(|e| panic!("{}: {e}", op.name()));
    }
}

#[test]
fn rounding_ops_round_halves_to_even_and_keep_integers() {
    let x = Tensor::from_vec(vec![-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.7, -2.7, 0.0], [9]);
    assert_eq!(
        x.round().to_vec::<f64>(),
        [-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, 3.0, -3.0, 0.0]
    );
    assert_eq!(
        x.floor().to_vec::<f64>(),
        [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 2.0, -3.0, 0.0]
    );
    assert_eq!(
        x.ceil().to_vec::<f64>(),
        [-2.0, -1.0, -0.0, 1.0, 2.0, 3.0, 3.0, -2.0, 0.0]
    );
    let f32s = Tensor::from_vec(vec![0.5f32, 1.5, -1.5], [3]).round();
    assert_eq!(f32s.to_vec::<f32>(), [0.0, 2.0, -2.0]);
    let ints = Tensor::from_vec(vec![-3i64, 0, 7], [3]);
    for y in [ints.floor(), ints.ceil(), ints.round()] {
        assert_eq!(y.dtype(), DType::I64);
        assert_eq!(y.to_vec::<i64>(), [-3, 0, 7]);
    }
}

#[test]
fn rounding_ops_have_zero_gradient() {
    let x = Tensor::from_vec(vec![0.3, 1.7, -2.2], [3]).requires_grad_(true);
    let l = x.floor().add(&x.ceil()).add(&x.round()).sum_all();
    l.backward();
    assert_eq!(x.grad().unwrap().to_vec::<f64>(), [0.0, 0.0, 0.0]);
}
