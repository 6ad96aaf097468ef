//! Lookups by integer index: embedding tables and one-hot encoding.

use crate::dtype::DType;
use crate::tensor::Tensor;

/// Rows of `weight` (`[num_embeddings, dim]`) at the integer indices `input` (any shape),
/// giving `[*input.shape, dim]`, like `F.embedding`.
///
/// With `padding_idx` (negative counts from the end) the rows looked up at that index get no
/// gradient, so the padding embedding stays as initialised.
#[track_caller]
pub fn embedding(input: &Tensor, weight: &Tensor, padding_idx: Option<i64>) -> Tensor {
    if weight.rank() != 2 {
        panic!(
            "embedding: weight must be 2-D [num_embeddings, embedding_dim], got {:?}",
            weight.shape()
        );
    }
    if input.dtype().is_float() || input.dtype() == DType::Bool {
        panic!(
            "embedding: indices must be an integer tensor, got {} with shape {:?}",
            input.dtype(),
            input.shape()
        );
    }
    let (rows, dim) = (weight.shape()[0], weight.shape()[1]);
    let idx = input.to_dtype(DType::I64).flatten_all();
    let mut out = weight.index_select(0, &idx);
    if let Some(p) = padding_idx {
        let p = if p < 0 { p + rows as i64 } else { p };
        if p < 0 || p >= rows as i64 {
            panic!("embedding: padding_idx {p} is out of range for {rows} embeddings");
        }
        if out.requires_grad() {
            // Same values, but the padding rows' gradient stops here.
            let is_pad = idx.eq_scalar(p as f64).unsqueeze(1);
            out = Tensor::where_(&is_pad, &out.detach(), &out);
        }
    }
    let mut shape = input.shape().to_vec();
    shape.push(dim);
    out.reshape(shape)
}

/// One-hot encoding of integer class indices, `[.., num_classes]` of i64, like `F.one_hot`;
/// `None` infers the number of classes as `max + 1`.
#[track_caller]
pub fn one_hot(input: &Tensor, num_classes: Option<usize>) -> Tensor {
    let n = match num_classes {
        Some(n) => n,
        None if input.numel() == 0 => 0,
        None => (input.max_all().item::<i64>() + 1).max(0) as usize,
    };
    input.one_hot(n)
}
