//! Dropout: zeroes elements with probability `p` and rescales the rest by `1 / (1 − p)`.

use crate::random::Generator;
use crate::tensor::Tensor;

#[track_caller]
fn apply(x: &Tensor, p: f64, training: bool, uniform: impl FnOnce() -> Tensor) -> Tensor {
    if !(0.0..=1.0).contains(&p) {
        panic!("dropout: probability has to be between 0 and 1, got {p}");
    }
    if !x.dtype().is_float() {
        panic!(
            "dropout: needs a float tensor, got {} with shape {:?}",
            x.dtype(),
            x.shape()
        );
    }
    if !training || p == 0.0 {
        return x.clone();
    }
    if p == 1.0 {
        return x.mul_scalar(0.0);
    }
    let keep = uniform().ge_scalar(p).to_dtype(x.dtype());
    x * &keep.mul_scalar(1.0 / (1.0 - p))
}

/// Dropout with the global generator (seed it with [`crate::manual_seed`]), like
/// `F.dropout(x, p, training)`: each element is zeroed with probability `p` and the survivors
/// are scaled by `1 / (1 − p)`; the identity when not training.
#[track_caller]
pub fn dropout(x: &Tensor, p: f64, training: bool) -> Tensor {
    apply(x, p, training, || x.rand_like())
}

/// [`dropout`] drawing from an explicit generator.
#[track_caller]
pub fn dropout_with(x: &Tensor, p: f64, training: bool, gen: &mut Generator) -> Tensor {
    apply(x, p, training, || {
        Tensor::rand_with(x.shape(), x.dtype(), gen)
    })
}
