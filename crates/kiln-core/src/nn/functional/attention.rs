//! Scaled dot-product attention, composed from matmul, masking and softmax.

use super::softmax::softmax;
use crate::dtype::DType;
use crate::tensor::Tensor;

/// `softmax(q·kᵀ·scale + mask)·v` for `query` `[.., Tq, D]`, `key` `[.., Tk, D]` and `value`
/// `[.., Tk, Dv]` (batch dims broadcast), like `F.scaled_dot_product_attention`.
///
/// `attn_mask` broadcasts to `[.., Tq, Tk]`: a bool mask marks the pairs that take part (true)
/// and a float mask is added to the scores. `is_causal` lets query `i` attend to keys `≤ i`
/// (PyTorch's top-left aligned lower triangle). `scale` defaults to `1 / sqrt(D)`. A query row
/// with every key masked out gives NaN, as in PyTorch.
#[track_caller]
pub fn scaled_dot_product_attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    attn_mask: Option<&Tensor>,
    is_causal: bool,
    scale: Option<f64>,
) -> Tensor {
    let op = "scaled_dot_product_attention";
    if query.rank() < 2 || key.rank() < 2 || value.rank() < 2 {
        panic!(
            "{op}: query, key and value need at least 2 dims [.., T, D], got {:?}, {:?}, {:?}",
            query.shape(),
            key.shape(),
            value.shape()
        );
    }
    let d = query.shape()[query.rank() - 1];
    let (tq, tk) = (query.shape()[query.rank() - 2], key.shape()[key.rank() - 2]);
    if key.shape()[key.rank() - 1] != d || value.shape()[value.rank() - 2] != tk {
        panic!(
            "{op}: shapes do not fit: query {:?}, key {:?}, value {:?}",
            query.shape(),
            key.shape(),
            value.shape()
        );
    }
    let scale = scale.unwrap_or(1.0 / (d as f64).sqrt());
    // Self-attention shapes without an explicit mask run as one fused op per head.
    let fusable = attn_mask.is_none()
        && query.shape() == key.shape()
        && key.shape() == value.shape()
        && query.dtype() == key.dtype()
        && key.dtype() == value.dtype()
        && matches!(query.dtype(), DType::F32 | DType::F64);
    if fusable {
        let op = crate::ops::Op::Attention {
            scale,
            causal: is_causal,
        };
        return crate::ops::dispatch(op, &[query, key, value]);
    }
    let mut scores = query.mul_scalar(scale).matmul(&key.transpose(-2, -1));
    let neg_inf = Tensor::scalar(f64::NEG_INFINITY, scores.dtype());
    if is_causal {
        let keep = Tensor::ones([tq, tk], DType::Bool).tril(0);
        scores = Tensor::where_(&keep, &scores, &neg_inf);
    }
    if let Some(mask) = attn_mask {
        scores = if mask.dtype() == DType::Bool {
            Tensor::where_(mask, &scores, &neg_inf)
        } else {
            &scores + mask
        };
    }
    softmax(&scores, -1).matmul(value)
}
