//! Multi-head attention with PyTorch's parameter layout.

use super::{new_param, Linear, TrainingFlag};
use crate::{Module, ModuleBase};
use kiln_core::nn::functional as F;
use kiln_core::{DType, Tensor};

/// Options of [`MultiheadAttention`] (PyTorch's keyword arguments and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiheadAttentionConfig {
    /// Dropout on the attention weights in training mode (0).
    pub dropout: f64,
    /// Learn `in_proj_bias` and `out_proj.bias` (true).
    pub bias: bool,
    /// Inputs and output are `[batch, seq, embed]` instead of `[seq, batch, embed]` (false).
    pub batch_first: bool,
}

impl Default for MultiheadAttentionConfig {
    fn default() -> Self {
        MultiheadAttentionConfig {
            dropout: 0.0,
            bias: true,
            batch_first: false,
        }
    }
}

impl MultiheadAttentionConfig {
    /// Sets the attention dropout.
    pub fn dropout(mut self, v: f64) -> Self {
        self.dropout = v;
        self
    }
    /// Sets whether there are biases.
    pub fn bias(mut self, v: bool) -> Self {
        self.bias = v;
        self
    }
    /// Sets batch-first layout.
    pub fn batch_first(mut self, v: bool) -> Self {
        self.batch_first = v;
        self
    }
}

/// Multi-head scaled dot-product attention, like `torch.nn.MultiheadAttention` (with
/// `kdim = vdim = embed_dim`).
///
/// Parameters: `in_proj_weight` `[3E, E]` (query, key and value projections stacked; Xavier
/// uniform), `in_proj_bias` `[3E]` (zeros), `out_proj.weight` `[E, E]` (Linear's default init)
/// and `out_proj.bias` `[E]` (zeros).
///
/// Masks follow PyTorch's `MultiheadAttention` (not `scaled_dot_product_attention`): in a
/// bool `attn_mask` or `key_padding_mask`, **true marks a pair that may not attend**; float
/// masks are added to the scores.
pub struct MultiheadAttention {
    /// `[3·embed_dim, embed_dim]`: rows `0..E` project the query, `E..2E` the key, `2E..3E`
    /// the value.
    pub in_proj_weight: Tensor,
    /// `[3·embed_dim]`, absent for `bias = false`.
    pub in_proj_bias: Option<Tensor>,
    /// The output projection.
    pub out_proj: Linear,
    /// Number of heads; `embed_dim` must be divisible by it.
    pub num_heads: usize,
    /// The options.
    pub config: MultiheadAttentionConfig,
    training: TrainingFlag,
}

impl MultiheadAttention {
    /// Attention over `embed_dim` features split into `num_heads` heads, sequence-first.
    pub fn new(embed_dim: usize, num_heads: usize) -> MultiheadAttention {
        MultiheadAttention::with_config(embed_dim, num_heads, MultiheadAttentionConfig::default())
    }

    /// Attention with the given options.
    pub fn with_config(
        embed_dim: usize,
        num_heads: usize,
        config: MultiheadAttentionConfig,
    ) -> MultiheadAttention {
        if num_heads == 0 || !embed_dim.is_multiple_of(num_heads) {
            panic!("MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads {num_heads}");
        }
        if !(0.0..=1.0).contains(&config.dropout) {
            panic!(
                "MultiheadAttention: dropout must be in [0, 1], got {}",
                config.dropout
            );
        }
        let in_proj_weight = new_param(&[3 * embed_dim, embed_dim]);
        crate::init::xavier_uniform_(&in_proj_weight, 1.0);
        let in_proj_bias = config.bias.then(|| new_param(&[3 * embed_dim]));
        let out_proj = Linear::with_bias(embed_dim, embed_dim, config.bias);
        if let Some(b) = &out_proj.bias {
            crate::init::zeros_(b);
        }
        MultiheadAttention {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            num_heads,
            config,
            training: TrainingFlag::new(),
        }
    }

    /// The model width E.
    pub fn embed_dim(&self) -> usize {
        self.in_proj_weight.shape()[1]
    }

    /// Size of each head, `E / num_heads`.
    pub fn head_dim(&self) -> usize {
        self.embed_dim() / self.num_heads
    }

    /// Attention of `query` `[L, N, E]` over `key`/`value` `[S, N, E]` (batch-first:
    /// `[N, L, E]` and `[N, S, E]`; unbatched: `[L, E]` and `[S, E]`), returning `[L, N, E]`
    /// (or `[N, L, E]` / `[L, E]`).
    ///
    /// `attn_mask` is `[L, S]` or `[N·num_heads, L, S]`; `key_padding_mask` is `[N, S]`
    /// (`[S]` unbatched); bool masks are true where attention is *not* allowed, float masks
    /// are added to the scores. `is_causal` lets position `i` attend to keys `≤ i` (unlike
    /// PyTorch, where it is only a hint that requires `attn_mask`, it builds the mask here).
    pub fn forward_qkv(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        attn_mask: Option<&Tensor>,
        key_padding_mask: Option<&Tensor>,
        is_causal: bool,
    ) -> Tensor {
        let (out, _) = self.attend(
            query,
            key,
            value,
            attn_mask,
            key_padding_mask,
            is_causal,
            None,
        );
        crate::summary::observed(self, out)
    }

    /// [`MultiheadAttention::forward_qkv`] that also returns the attention weights (after
    /// dropout, as PyTorch's `need_weights=True` does): `[N, L, S]` averaged over heads, or
    /// `[N, num_heads, L, S]` with `average_heads = false` (no batch dim when unbatched).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_qkv_with_weights(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        attn_mask: Option<&Tensor>,
        key_padding_mask: Option<&Tensor>,
        is_causal: bool,
        average_heads: bool,
    ) -> (Tensor, Tensor) {
        let (out, w) = self.attend(
            query,
            key,
            value,
            attn_mask,
            key_padding_mask,
            is_causal,
            Some(average_heads),
        );
        (out, w.expect("weights were requested"))
    }

    /// Self-attention `forward_qkv(x, x, x, None, None, is_causal)`.
    pub fn self_attention(&self, x: &Tensor, is_causal: bool) -> Tensor {
        self.forward_qkv(x, x, x, None, None, is_causal)
    }

    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        attn_mask: Option<&Tensor>,
        key_padding_mask: Option<&Tensor>,
        is_causal: bool,
        weights: Option<bool>,
    ) -> (Tensor, Option<Tensor>) {
        let op = "MultiheadAttention";
        let e = self.embed_dim();
        let (h, hd) = (self.num_heads, self.head_dim());
        let unbatched = query.rank() == 2;
        let want_rank = if unbatched { 2 } else { 3 };
        for (what, t) in [("query", query), ("key", key), ("value", value)] {
            if t.rank() != want_rank || t.shape()[want_rank - 1] != e {
                panic!(
                    "{op}: {what} must be {} with embed_dim {e} last, got shape {:?}",
                    if unbatched { "2-D [seq, embed]" } else { "3-D" },
                    t.shape()
                );
            }
        }
        // Batch-first [N, L, E] from here on.
        let to_bf = |t: &Tensor| {
            if unbatched {
                t.unsqueeze(0)
            } else if self.config.batch_first {
                t.clone()
            } else {
                t.transpose(0, 1)
            }
        };
        let (q, k, v) = (to_bf(query), to_bf(key), to_bf(value));
        let (n, l, s) = (q.shape()[0], q.shape()[1], k.shape()[1]);
        if k.shape()[0] != n || v.shape()[0] != n || v.shape()[1] != s {
            panic!(
                "{op}: query {:?}, key {:?} and value {:?} do not agree in batch and key length",
                query.shape(),
                key.shape(),
                value.shape()
            );
        }
        let (q, k, v) = if query.same(key) && key.same(value) {
            // Self-attention: one projection for all three.
            let qkv = F::linear(&q, &self.in_proj_weight, self.in_proj_bias.as_ref());
            (
                qkv.narrow(2, 0, e),
                qkv.narrow(2, e, e),
                qkv.narrow(2, 2 * e, e),
            )
        } else {
            let proj = |x: &Tensor, i: usize| {
                let w = self.in_proj_weight.narrow(0, i * e, e);
                let b = self.in_proj_bias.as_ref().map(|b| b.narrow(0, i * e, e));
                F::linear(x, &w, b.as_ref())
            };
            (proj(&q, 0), proj(&k, 1), proj(&v, 2))
        };
        // [N, T, E] → [N, H, T, D]
        let heads = |t: Tensor, len: usize| t.reshape([n, len, h, hd]).transpose(1, 2);
        let (q, k, v) = (heads(q, l), heads(k, s), heads(v, s));
        let mask = self.combined_mask(attn_mask, key_padding_mask, n, l, s, q.dtype(), unbatched);
        let p = if self.training.get() {
            self.config.dropout
        } else {
            0.0
        };
        let (ctx, w) = if p == 0.0 && weights.is_none() {
            let ctx = F::scaled_dot_product_attention(&q, &k, &v, mask.as_ref(), is_causal, None);
            (ctx, None)
        } else {
            let mut scores = q
                .mul_scalar(1.0 / (hd as f64).sqrt())
                .matmul(&k.transpose(-2, -1));
            if is_causal {
                let keep = Tensor::ones([l, s], DType::Bool).tril(0);
                scores = scores.masked_fill(&keep.logical_not(), f64::NEG_INFINITY);
            }
            if let Some(m) = &mask {
                scores = &scores + m;
            }
            let attn = F::dropout(&F::softmax(&scores, -1), p, p > 0.0);
            let ctx = attn.matmul(&v);
            (ctx, Some(attn))
        };
        // [N, H, L, D] → [N, L, E]
        let ctx = ctx.transpose(1, 2).reshape([n, l, e]);
        let out = self.out_proj.forward(&ctx);
        let out = if unbatched {
            out.squeeze(0)
        } else if self.config.batch_first {
            out
        } else {
            out.transpose(0, 1)
        };
        let w = match (weights, w) {
            (Some(avg), Some(w)) => {
                let w = if avg { w.mean([1], false) } else { w };
                Some(if unbatched { w.squeeze(0) } else { w })
            }
            _ => None,
        };
        (out, w)
    }

    /// Both masks as one additive float mask broadcasting to `[N, H, L, S]`.
    #[allow(clippy::too_many_arguments)]
    fn combined_mask(
        &self,
        attn_mask: Option<&Tensor>,
        key_padding_mask: Option<&Tensor>,
        n: usize,
        l: usize,
        s: usize,
        dtype: DType,
        unbatched: bool,
    ) -> Option<Tensor> {
        let op = "MultiheadAttention";
        let additive = |m: &Tensor| {
            if m.dtype() == DType::Bool {
                Tensor::zeros(m.shape(), dtype).masked_fill(m, f64::NEG_INFINITY)
            } else {
                m.to_dtype(dtype)
            }
        };
        let attn = attn_mask.map(|m| match m.rank() {
            2 if m.shape() == [l, s] => additive(m),
            3 if m.shape() == [n * self.num_heads, l, s] => {
                additive(m).reshape([n, self.num_heads, l, s])
            }
            _ => panic!(
                "{op}: attn_mask must be [{l}, {s}] or [{}, {l}, {s}], got {:?}",
                n * self.num_heads,
                m.shape()
            ),
        });
        let pad = key_padding_mask.map(|m| {
            let m = if unbatched { m.unsqueeze(0) } else { m.clone() };
            if m.shape() != [n, s] {
                panic!(
                    "{op}: key_padding_mask must be [batch, src_len] = [{n}, {s}], got {:?}",
                    key_padding_mask.map(|m| m.shape().to_vec())
                );
            }
            additive(&m).reshape([n, 1, 1, s])
        });
        match (attn, pad) {
            (Some(a), Some(p)) => Some(&a + &p),
            (a, p) => a.or(p),
        }
    }
}

impl ModuleBase for MultiheadAttention {
    fn children(&self) -> Vec<(String, &dyn ModuleBase)> {
        vec![("out_proj".to_string(), &self.out_proj as &dyn ModuleBase)]
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = vec![("in_proj_weight".to_string(), self.in_proj_weight.clone())];
        if let Some(b) = &self.in_proj_bias {
            p.push(("in_proj_bias".to_string(), b.clone()));
        }
        p
    }
    fn set_own_training(&self, training: bool) {
        self.training.set(training)
    }
    fn own_training(&self) -> Option<bool> {
        Some(self.training.get())
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for MultiheadAttention {
    /// Self-attention of `x` with no mask (`forward_qkv(x, x, x, None, None, false)`).
    fn forward(&self, x: &Tensor) -> Tensor {
        self.self_attention(x, false)
    }
}
