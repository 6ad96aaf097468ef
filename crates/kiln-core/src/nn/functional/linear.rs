//! The affine map of a fully connected layer.

use crate::ops::{dispatch, Op};
use crate::tensor::Tensor;

/// `input @ weightᵀ + bias` with `weight` of shape `[out, in]` (PyTorch's layout), like
/// `F.linear`. `input` is `[.., in]`; leading dims are flattened into one matrix product.
#[track_caller]
pub fn linear(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    if weight.rank() != 2 {
        panic!(
            "linear: weight must be 2-D [out_features, in_features], got {:?}",
            weight.shape()
        );
    }
    let (out_f, in_f) = (weight.shape()[0], weight.shape()[1]);
    if input.rank() == 0 || input.shape()[input.rank() - 1] != in_f {
        panic!(
            "linear: input {:?} does not end in in_features = {in_f} of weight {:?}",
            input.shape(),
            weight.shape()
        );
    }
    if let Some(b) = bias {
        if b.shape() != [out_f] {
            panic!(
                "linear: bias must have shape [{out_f}], got {:?}",
                b.shape()
            );
        }
    }
    // `[.., in]` as one `[rows, in]` matrix; the bias rides in the product (no extra pass).
    let product = |x: &Tensor| match bias {
        Some(b) => dispatch(Op::Matmul, &[x, &weight.t(), b]),
        None => x.matmul(&weight.t()),
    };
    match input.rank() {
        1 => {
            let out = input.matmul(&weight.t());
            match bias {
                Some(b) => &out + b,
                None => out,
            }
        }
        2 => product(input),
        _ => {
            let mut shape = input.shape().to_vec();
            *shape.last_mut().expect("rank > 2") = out_f;
            product(&input.reshape([-1, in_f as i64])).reshape(shape)
        }
    }
}
