//! `torch.nn.functional` counterparts, each composed from existing [`Tensor`](crate::Tensor)
//! methods (so gradients, tracing and every device come for free).
//!
//! Rust has no keyword arguments: functions take positional arguments in the order of their
//! PyTorch namesakes, and option structs with [`Default`] where there are many knobs
//! ([`CrossEntropyOptions`], [`NllLossOptions`]). Spatial arguments of convolution and pooling
//! accept anything convertible into a [`Pair`]: `3`, `(3, 2)` or `[3, 2]`.

mod activation;
mod attention;
mod conv;
mod dropout;
mod embedding;
mod linear;
mod loss;
mod norm;
mod pair;
mod pool;
mod softmax;

pub use activation::{gelu, relu, sigmoid, silu, softplus, tanh};
pub use attention::scaled_dot_product_attention;
pub use conv::{conv1d, conv2d, conv2d_composite, conv_transpose2d};
pub use dropout::{dropout, dropout_with};
pub use embedding::{embedding, one_hot};
pub use linear::linear;
pub use loss::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, cross_entropy_with,
    huber_loss, kl_div, l1_loss, mse_loss, nll_loss, smooth_l1_loss, CrossEntropyOptions,
    KlDivReduction, NllLossOptions, Reduction,
};
pub use norm::{batch_norm, group_norm, layer_norm, rms_norm};
pub use pair::{OptPair, Pair};
pub use pool::{
    adaptive_avg_pool2d, avg_pool2d, max_pool2d, max_pool2d_composite, max_pool2d_with_indices,
};
pub use softmax::{log_softmax, softmax};
