//! `log1p`, the example of adding a unary op (declared in `kiln-kernels/src/ops/unary.rs`
//! alone): values against closed forms, including the small arguments where `ln(1 + x)`
//! loses every digit, and its gradient by finite differences.

use kiln_core::autograd::gradcheck;
use kiln_core::ops::UnaryOp;
use kiln_core::{DType, Generator, Tensor};

#[test]
fn log1p_matches_closed_forms_in_f64_and_f32() {
    let e = std::f64::consts::E;
    let x = Tensor::from_vec(vec![0.0, e - 1.0, -0.5, 1e-10], [4]);
    let y = x.unary(UnaryOp::Log1p).to_vec::<f64>();
    let expected = [0.0, 1.0, -std::f64::consts::LN_2, 1e-10 - 5e-21];
    for (got, want) in y.iter().zip(expected) {
        assert!(
            (got - want).abs() <= 1e-16 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
    // In f32, ln(1 + 1e-7) rounds 1 + 1e-7 first and gives 1.19e-7; log1p keeps 1e-7.
    let small = Tensor::from_vec(vec![1e-7f32], [1]).unary(UnaryOp::Log1p);
    assert_eq!(small.dtype(), DType::F32);
    let v = small.to_vec::<f32>()[0];
    assert!((v - 1e-7).abs() < 1e-13, "{v}");
}

#[test]
fn log1p_gradient_matches_finite_differences() {
    let u = Tensor::rand_with([3, 4], DType::F64, &mut Generator::new(7));
    let x = u.affine(2.5, -0.5).requires_grad_(true);
    gradcheck(|xs| xs[0].unary(UnaryOp::Log1p), &[x], 1e-6, 1e-6, 1e-5).unwrap();
}

#[test]
fn log1p_of_an_integer_tensor_is_float_and_name_is_in_errors() {
    let y = Tensor::from_vec(vec![0i64, 1], [2]).unary(UnaryOp::Log1p);
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(UnaryOp::Log1p.name(), "log1p");
}
