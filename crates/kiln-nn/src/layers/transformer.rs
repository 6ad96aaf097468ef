//! Transformer blocks: `TransformerEncoderLayer` (post- or pre-norm, like PyTorch's),
//! `TransformerEncoder` (a stack of them) and a GPT-style causal decoder block.

use super::{
    Dropout, LayerNorm, LayerNormConfig, Linear, MultiheadAttention, MultiheadAttentionConfig,
    Sequential, GELU,
};
use crate::Module;
use kiln_core::nn::functional as F;
use kiln_core::Tensor;

/// The feed-forward activation of a [`TransformerEncoderLayer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// max(x, 0) (PyTorch's default).
    #[default]
    Relu,
    /// Exact (erf) GELU.
    Gelu,
}

impl Activation {
    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => F::relu(x),
            Activation::Gelu => F::gelu(x, false),
        }
    }
}

/// Options of [`TransformerEncoderLayer`] (PyTorch's keyword arguments and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformerEncoderLayerConfig {
    /// Width of the feed-forward hidden layer (2048).
    pub dim_feedforward: usize,
    /// Dropout in attention, feed-forward and on both residual branches (0.1).
    pub dropout: f64,
    /// Feed-forward activation (ReLU).
    pub activation: Activation,
    /// eps of both layer norms (1e−5).
    pub layer_norm_eps: f64,
    /// Inputs are `[batch, seq, feature]` instead of `[seq, batch, feature]` (false).
    pub batch_first: bool,
    /// Pre-norm (`x + f(norm(x))`) instead of post-norm (`norm(x + f(x))`) (false).
    pub norm_first: bool,
    /// Biases in the linear layers and layer norms (true).
    pub bias: bool,
}

impl Default for TransformerEncoderLayerConfig {
    fn default() -> Self {
        TransformerEncoderLayerConfig {
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: Activation::Relu,
            layer_norm_eps: 1e-5,
            batch_first: false,
            norm_first: false,
            bias: true,
        }
    }
}

impl TransformerEncoderLayerConfig {
    /// Sets the feed-forward width.
    pub fn dim_feedforward(mut self, v: usize) -> Self {
        self.dim_feedforward = v;
        self
    }
    /// Sets the dropout.
    pub fn dropout(mut self, v: f64) -> Self {
        self.dropout = v;
        self
    }
    /// Sets the activation.
    pub fn activation(mut self, v: Activation) -> Self {
        self.activation = v;
        self
    }
    /// Sets the layer norm eps.
    pub fn layer_norm_eps(mut self, v: f64) -> Self {
        self.layer_norm_eps = v;
        self
    }
    /// Sets batch-first layout.
    pub fn batch_first(mut self, v: bool) -> Self {
        self.batch_first = v;
        self
    }
    /// Sets pre-norm (true) or post-norm (false).
    pub fn norm_first(mut self, v: bool) -> Self {
        self.norm_first = v;
        self
    }
    /// Sets whether there are biases.
    pub fn bias(mut self, v: bool) -> Self {
        self.bias = v;
        self
    }
}

/// Self-attention plus feed-forward with residual connections, like
/// `torch.nn.TransformerEncoderLayer`; submodule names `self_attn`, `linear1`, `linear2`,
/// `norm1`, `norm2` (and parameter-free `dropout`, `dropout1`, `dropout2`).
///
/// Post-norm (default): `x = norm1(x + sa(x)); x = norm2(x + ff(x))`.
/// Pre-norm (`norm_first`): `x = x + sa(norm1(x)); x = x + ff(norm2(x))`.
#[derive(Module)]
pub struct TransformerEncoderLayer {
    /// The self-attention.
    pub self_attn: MultiheadAttention,
    /// `d_model → dim_feedforward`.
    pub linear1: Linear,
    /// Dropout inside the feed-forward block.
    pub dropout: Dropout,
    /// `dim_feedforward → d_model`.
    pub linear2: Linear,
    /// Norm of the attention sub-block.
    pub norm1: LayerNorm,
    /// Norm of the feed-forward sub-block.
    pub norm2: LayerNorm,
    /// Dropout on the attention branch.
    pub dropout1: Dropout,
    /// Dropout on the feed-forward branch.
    pub dropout2: Dropout,
    /// The options.
    #[module(skip)]
    pub config: TransformerEncoderLayerConfig,
}

impl TransformerEncoderLayer {
    /// A layer of width `d_model` with `nhead` heads and PyTorch's defaults.
    pub fn new(d_model: usize, nhead: usize) -> TransformerEncoderLayer {
        TransformerEncoderLayer::with_config(
            d_model,
            nhead,
            TransformerEncoderLayerConfig::default(),
        )
    }

    /// A layer with the given options.
    pub fn with_config(
        d_model: usize,
        nhead: usize,
        config: TransformerEncoderLayerConfig,
    ) -> TransformerEncoderLayer {
        let c = &config;
        let ln = || {
            LayerNorm::with_config(
                d_model,
                LayerNormConfig::default()
                    .eps(c.layer_norm_eps)
                    .bias(c.bias),
            )
        };
        TransformerEncoderLayer {
            self_attn: MultiheadAttention::with_config(
                d_model,
                nhead,
                MultiheadAttentionConfig::default()
                    .dropout(c.dropout)
                    .bias(c.bias)
                    .batch_first(c.batch_first),
            ),
            linear1: Linear::with_bias(d_model, c.dim_feedforward, c.bias),
            dropout: Dropout::new(c.dropout),
            linear2: Linear::with_bias(c.dim_feedforward, d_model, c.bias),
            norm1: ln(),
            norm2: ln(),
            dropout1: Dropout::new(c.dropout),
            dropout2: Dropout::new(c.dropout),
            config,
        }
    }

    /// The layer with masks, like PyTorch's `forward(src, src_mask, src_key_padding_mask,
    /// is_causal)`; masks as in [`MultiheadAttention::forward_qkv`] (bool true = blocked).
    pub fn forward_with_mask(
        &self,
        src: &Tensor,
        src_mask: Option<&Tensor>,
        src_key_padding_mask: Option<&Tensor>,
        is_causal: bool,
    ) -> Tensor {
        let sa = |x: &Tensor| {
            self.dropout1.forward(&self.self_attn.forward_qkv(
                x,
                x,
                x,
                src_mask,
                src_key_padding_mask,
                is_causal,
            ))
        };
        let ff = |x: &Tensor| {
            let hidden = self.config.activation.apply(&self.linear1.forward(x));
            self.dropout2
                .forward(&self.linear2.forward(&self.dropout.forward(&hidden)))
        };
        let out = if self.config.norm_first {
            let x = src + &sa(&self.norm1.forward(src));
            &x + &ff(&self.norm2.forward(&x))
        } else {
            let x = self.norm1.forward(&(src + &sa(src)));
            self.norm2.forward(&(&x + &ff(&x)))
        };
        crate::summary::observed(self, out)
    }
}

impl Module for TransformerEncoderLayer {
    /// The layer without masks.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_mask(x, None, None, false)
    }
}

/// A stack of encoder layers with an optional final norm, like `torch.nn.TransformerEncoder`;
/// keys `layers.{i}.…` and `norm.…`.
///
/// PyTorch deep-copies one layer (so all start equal); here each layer is built by the
/// closure, so they start independently initialized.
#[derive(Module)]
pub struct TransformerEncoder {
    /// The layers, applied in order.
    pub layers: Vec<TransformerEncoderLayer>,
    /// Optional norm after the last layer.
    pub norm: Option<LayerNorm>,
}

impl TransformerEncoder {
    /// `num_layers` layers, each made by `make_layer`, and no final norm.
    pub fn new(
        num_layers: usize,
        mut make_layer: impl FnMut() -> TransformerEncoderLayer,
    ) -> TransformerEncoder {
        TransformerEncoder {
            layers: (0..num_layers).map(|_| make_layer()).collect(),
            norm: None,
        }
    }

    /// Adds a final norm.
    pub fn with_norm(mut self, norm: LayerNorm) -> TransformerEncoder {
        self.norm = Some(norm);
        self
    }

    /// Runs every layer with the same masks.
    pub fn forward_with_mask(
        &self,
        src: &Tensor,
        mask: Option<&Tensor>,
        src_key_padding_mask: Option<&Tensor>,
        is_causal: bool,
    ) -> Tensor {
        let mut x = src.clone();
        for layer in &self.layers {
            x = layer.forward_with_mask(&x, mask, src_key_padding_mask, is_causal);
        }
        match &self.norm {
            Some(n) => n.forward(&x),
            None => x,
        }
    }
}

impl Module for TransformerEncoder {
    /// The stack without masks.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, self.forward_with_mask(x, None, None, false))
    }
}

/// Options of [`CausalDecoderBlock`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CausalDecoderBlockConfig {
    /// Dropout on the attention weights and on both residual branches (0).
    pub dropout: f64,
    /// eps of both layer norms (1e−5).
    pub layer_norm_eps: f64,
    /// Biases in the linear layers and layer norms (true).
    pub bias: bool,
    /// The MLP's hidden width is `mlp_ratio · d_model` (4).
    pub mlp_ratio: usize,
}

impl Default for CausalDecoderBlockConfig {
    fn default() -> Self {
        CausalDecoderBlockConfig {
            dropout: 0.0,
            layer_norm_eps: 1e-5,
            bias: true,
            mlp_ratio: 4,
        }
    }
}

impl CausalDecoderBlockConfig {
    /// Sets the dropout.
    pub fn dropout(mut self, v: f64) -> Self {
        self.dropout = v;
        self
    }
    /// Sets the layer norm eps.
    pub fn layer_norm_eps(mut self, v: f64) -> Self {
        self.layer_norm_eps = v;
        self
    }
    /// Sets whether there are biases.
    pub fn bias(mut self, v: bool) -> Self {
        self.bias = v;
        self
    }
    /// Sets the MLP expansion ratio.
    pub fn mlp_ratio(mut self, v: usize) -> Self {
        self.mlp_ratio = v;
        self
    }
}

/// A GPT-style pre-norm decoder block over batch-first `[batch, seq, d_model]`:
///
/// ```text
/// x = x + dropout(attn(ln1(x), causal))
/// x = x + dropout(mlp(ln2(x)))          mlp = Linear(d, 4d) → GELU → Linear(4d, d)
/// ```
///
/// State dict keys: `ln1.*`, `attn.in_proj_weight`, `attn.in_proj_bias`, `attn.out_proj.*`,
/// `ln2.*`, `mlp.0.*`, `mlp.2.*` — the same as a PyTorch module with fields `ln1 =
/// nn.LayerNorm(d)`, `attn = nn.MultiheadAttention(d, h, batch_first=True)`, `ln2`, and
/// `mlp = nn.Sequential(nn.Linear(d, 4d), nn.GELU(), nn.Linear(4d, d))`.
#[derive(Module)]
pub struct CausalDecoderBlock {
    /// Norm before attention.
    pub ln1: LayerNorm,
    /// Causal self-attention (batch-first).
    pub attn: MultiheadAttention,
    /// Norm before the MLP.
    pub ln2: LayerNorm,
    /// `Linear(d, 4d)`, `GELU`, `Linear(4d, d)`.
    pub mlp: Sequential,
    /// Dropout on both residual branches.
    pub resid_dropout: Dropout,
}

impl CausalDecoderBlock {
    /// A block of width `d_model` with `n_head` heads, no dropout.
    pub fn new(d_model: usize, n_head: usize) -> CausalDecoderBlock {
        CausalDecoderBlock::with_config(d_model, n_head, CausalDecoderBlockConfig::default())
    }

    /// A block with the given options.
    pub fn with_config(
        d_model: usize,
        n_head: usize,
        config: CausalDecoderBlockConfig,
    ) -> CausalDecoderBlock {
        let c = &config;
        let ln = || {
            LayerNorm::with_config(
                d_model,
                LayerNormConfig::default()
                    .eps(c.layer_norm_eps)
                    .bias(c.bias),
            )
        };
        let hidden = c.mlp_ratio * d_model;
        CausalDecoderBlock {
            ln1: ln(),
            attn: MultiheadAttention::with_config(
                d_model,
                n_head,
                MultiheadAttentionConfig::default()
                    .dropout(c.dropout)
                    .bias(c.bias)
                    .batch_first(true),
            ),
            ln2: ln(),
            mlp: Sequential::new()
                .append(Linear::with_bias(d_model, hidden, c.bias))
                .append(GELU::new())
                .append(Linear::with_bias(hidden, d_model, c.bias)),
            resid_dropout: Dropout::new(c.dropout),
        }
    }
}

impl Module for CausalDecoderBlock {
    /// `[batch, seq, d_model]` → same shape; position `t` sees positions `≤ t` only.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, {
            let a = self.attn.self_attention(&self.ln1.forward(x), true);
            let x = x + &self.resid_dropout.forward(&a);
            let m = self.mlp.forward(&self.ln2.forward(&x));
            &x + &self.resid_dropout.forward(&m)
        })
    }
}
