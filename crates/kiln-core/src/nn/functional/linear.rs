//! The affine map of a fully connected layer.

use crate::tensor::Tensor;

/// `input @ weightᵀ + bias` with `weight` of shape `[out, in]` (PyTorch's layout), like
/// `F.linear`. `input` is `[.., in]`; leading dims are flattened into one matrix product.
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
    let out = if input.rank() > 2 {
        let mut shape = input.shape().to_vec();
        *shape.last_mut().expect("rank > 2") = out_f;
        input
            .reshape([-1, in_f as i64])
            .matmul(&weight.t())
            .reshape(shape)
    } else {
        input.matmul(&weight.t())
    };
    match bias {
        Some(b) => {
            if b.shape() != [out_f] {
                panic!(
                    "linear: bias must have shape [{out_f}], got {:?}",
                    b.shape()
                );
            }
            &out + b
        }
        None => out,
    }
}
