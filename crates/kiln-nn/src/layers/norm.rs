//! Normalization layers: batch norm (1-D and 2-D, with running statistics), layer norm,
//! RMS norm and group norm.

use super::{named, new_buffer, new_param, TrainingFlag};
use crate::init::{ones_, zeros_};
use crate::{Module, ModuleBase};
use kiln_core::nn::functional as F;
use kiln_core::{no_grad, DType, Tensor};

/// The normalized trailing shape of [`LayerNorm`] and [`RMSNorm`]: converts from `usize`
/// (one dim), arrays, slices and vectors, like PyTorch's `int or list` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormShape(pub Vec<usize>);

impl From<usize> for NormShape {
    fn from(v: usize) -> NormShape {
        NormShape(vec![v])
    }
}

impl<const N: usize> From<[usize; N]> for NormShape {
    fn from(v: [usize; N]) -> NormShape {
        NormShape(v.to_vec())
    }
}

impl From<&[usize]> for NormShape {
    fn from(v: &[usize]) -> NormShape {
        NormShape(v.to_vec())
    }
}

impl From<Vec<usize>> for NormShape {
    fn from(v: Vec<usize>) -> NormShape {
        NormShape(v)
    }
}

fn ones_param(shape: &[usize]) -> Tensor {
    let t = new_param(shape);
    ones_(&t);
    t
}

fn zeros_param(shape: &[usize]) -> Tensor {
    let t = new_param(shape);
    zeros_(&t);
    t
}

/// Options of [`BatchNorm1d`] and [`BatchNorm2d`] (PyTorch's keyword arguments and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance (1e−5).
    pub eps: f64,
    /// Weight of the new batch in the running statistics (0.1); `None` keeps a cumulative
    /// average (`1 / num_batches_tracked`).
    pub momentum: Option<f64>,
    /// Learn a per-channel `weight` and `bias` (true).
    pub affine: bool,
    /// Keep `running_mean`, `running_var` and `num_batches_tracked` buffers (true); without
    /// them batch statistics are used in evaluation too.
    pub track_running_stats: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

impl BatchNormConfig {
    /// Sets eps.
    pub fn eps(mut self, v: f64) -> Self {
        self.eps = v;
        self
    }
    /// Sets the momentum.
    pub fn momentum(mut self, v: Option<f64>) -> Self {
        self.momentum = v;
        self
    }
    /// Sets whether there are affine parameters.
    pub fn affine(mut self, v: bool) -> Self {
        self.affine = v;
        self
    }
    /// Sets whether running statistics are tracked.
    pub fn track_running_stats(mut self, v: bool) -> Self {
        self.track_running_stats = v;
        self
    }
}

macro_rules! batch_norm {
    ($name:ident, $torch:literal, $ranks:expr, $shapes:literal) => {
        #[doc = concat!("Batch normalization of ", $shapes, ", like `torch.nn.", $torch, "`: ")]
        /// parameters `weight` (ones) and `bias` (zeros), buffers `running_mean` (zeros),
        /// `running_var` (ones) and `num_batches_tracked` (0-d i64), all per channel.
        ///
        /// In training mode batch statistics normalize and the running statistics are updated
        /// in place; in evaluation mode the running statistics normalize.
        pub struct $name {
            /// `[num_features]`, absent without `affine`.
            pub weight: Option<Tensor>,
            /// `[num_features]`, absent without `affine`.
            pub bias: Option<Tensor>,
            /// `[num_features]`, absent without `track_running_stats`.
            pub running_mean: Option<Tensor>,
            /// `[num_features]`, absent without `track_running_stats`.
            pub running_var: Option<Tensor>,
            /// 0-d i64 count of training batches seen, absent without `track_running_stats`.
            pub num_batches_tracked: Option<Tensor>,
            /// The options.
            pub config: BatchNormConfig,
            training: TrainingFlag,
        }

        impl $name {
            /// Batch norm over `num_features` channels with default options.
            pub fn new(num_features: usize) -> $name {
                $name::with_config(num_features, BatchNormConfig::default())
            }

            /// Batch norm with the given options.
            pub fn with_config(num_features: usize, config: BatchNormConfig) -> $name {
                let c = [num_features];
                let tracked = config.track_running_stats;
                $name {
                    weight: config.affine.then(|| ones_param(&c)),
                    bias: config.affine.then(|| zeros_param(&c)),
                    running_mean: tracked.then(|| new_buffer(&c)),
                    running_var: tracked.then(|| {
                        let t = new_buffer(&c);
                        ones_(&t);
                        t
                    }),
                    num_batches_tracked: tracked.then(|| Tensor::zeros([0usize; 0], DType::I64)),
                    config,
                    training: TrainingFlag::new(),
                }
            }

            /// Number of channels.
            pub fn num_features(&self) -> usize {
                self.running_mean
                    .as_ref()
                    .or(self.weight.as_ref())
                    .map(|t| t.shape()[0])
                    .unwrap_or(0)
            }
        }

        impl ModuleBase for $name {
            fn own_parameters(&self) -> Vec<(String, Tensor)> {
                named(&[
                    ("weight", self.weight.as_ref()),
                    ("bias", self.bias.as_ref()),
                ])
            }
            fn own_buffers(&self) -> Vec<(String, Tensor)> {
                named(&[
                    ("running_mean", self.running_mean.as_ref()),
                    ("running_var", self.running_var.as_ref()),
                    ("num_batches_tracked", self.num_batches_tracked.as_ref()),
                ])
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
            fn extra_repr(&self) -> String {
                let c = &self.config;
                let momentum = c.momentum.map_or("None".to_string(), |m| m.to_string());
                format!(
                    "{}, eps={:e}, momentum={momentum}, affine={}, track_running_stats={}",
                    self.num_features(),
                    c.eps,
                    c.affine,
                    c.track_running_stats
                )
            }
        }

        impl Module for $name {
            #[doc = concat!("Normalizes ", $shapes, " per channel (dim 1).")]
            fn forward(&self, x: &Tensor) -> Tensor {
                crate::summary::observed(self, {
                    if !$ranks.contains(&x.rank()) {
                        panic!(
                            "{}: expected a {} input, got shape {:?}",
                            $torch,
                            $shapes,
                            x.shape()
                        );
                    }
                    batch_norm_forward(
                        x,
                        self.training.get(),
                        &self.config,
                        self.weight.as_ref(),
                        self.bias.as_ref(),
                        self.running_mean.as_ref(),
                        self.running_var.as_ref(),
                        self.num_batches_tracked.as_ref(),
                    )
                })
            }
        }
    };
}

batch_norm!(
    BatchNorm1d,
    "BatchNorm1d",
    [2usize, 3],
    "`[N, C]` or `[N, C, L]`"
);
batch_norm!(BatchNorm2d, "BatchNorm2d", [4usize], "`[N, C, H, W]`");

/// PyTorch's `_BatchNorm.forward`: bump `num_batches_tracked` in training, pick the averaging
/// factor, and use batch statistics when training or when no running statistics are kept.
#[allow(clippy::too_many_arguments)]
fn batch_norm_forward(
    x: &Tensor,
    training: bool,
    config: &BatchNormConfig,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    num_batches_tracked: Option<&Tensor>,
) -> Tensor {
    let mut factor = config.momentum.unwrap_or(0.0);
    if training {
        if let Some(n) = num_batches_tracked {
            no_grad(|| n.add_scalar_(1.0));
            if config.momentum.is_none() {
                factor = 1.0 / n.item::<i64>() as f64;
            }
        }
    }
    let use_batch_stats = training || (running_mean.is_none() && running_var.is_none());
    F::batch_norm(
        x,
        running_mean,
        running_var,
        weight,
        bias,
        use_batch_stats,
        factor,
        config.eps,
    )
}

/// Options of [`LayerNorm`] (PyTorch's keyword arguments and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormConfig {
    /// Added to the variance (1e−5).
    pub eps: f64,
    /// Learn an elementwise `weight` (and `bias`) (true).
    pub elementwise_affine: bool,
    /// Learn a `bias` when affine (true).
    pub bias: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        LayerNormConfig {
            eps: 1e-5,
            elementwise_affine: true,
            bias: true,
        }
    }
}

impl LayerNormConfig {
    /// Sets eps.
    pub fn eps(mut self, v: f64) -> Self {
        self.eps = v;
        self
    }
    /// Sets whether there are elementwise affine parameters.
    pub fn elementwise_affine(mut self, v: bool) -> Self {
        self.elementwise_affine = v;
        self
    }
    /// Sets whether there is a bias.
    pub fn bias(mut self, v: bool) -> Self {
        self.bias = v;
        self
    }
}

/// Layer normalization over the trailing `normalized_shape` dims, like `torch.nn.LayerNorm`:
/// `weight` (ones) and `bias` (zeros) of that shape.
pub struct LayerNorm {
    /// The normalized trailing shape.
    pub normalized_shape: Vec<usize>,
    /// Elementwise scale, absent without `elementwise_affine`.
    pub weight: Option<Tensor>,
    /// Elementwise shift, absent without `elementwise_affine` or `bias`.
    pub bias: Option<Tensor>,
    /// The options.
    pub config: LayerNormConfig,
}

impl LayerNorm {
    /// Layer norm over `normalized_shape` (`64` or `[4, 8]`) with default options.
    pub fn new(normalized_shape: impl Into<NormShape>) -> LayerNorm {
        LayerNorm::with_config(normalized_shape, LayerNormConfig::default())
    }

    /// Layer norm with the given options.
    pub fn with_config(
        normalized_shape: impl Into<NormShape>,
        config: LayerNormConfig,
    ) -> LayerNorm {
        let shape = normalized_shape.into().0;
        LayerNorm {
            weight: config.elementwise_affine.then(|| ones_param(&shape)),
            bias: (config.elementwise_affine && config.bias).then(|| zeros_param(&shape)),
            normalized_shape: shape,
            config,
        }
    }
}

impl ModuleBase for LayerNorm {
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        named(&[
            ("weight", self.weight.as_ref()),
            ("bias", self.bias.as_ref()),
        ])
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
    fn extra_repr(&self) -> String {
        format!(
            "{:?}, eps={:e}, elementwise_affine={}",
            self.normalized_shape, self.config.eps, self.config.elementwise_affine
        )
    }
}

impl Module for LayerNorm {
    /// Normalizes `[.., *normalized_shape]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(
            self,
            F::layer_norm(
                x,
                &self.normalized_shape,
                self.weight.as_ref(),
                self.bias.as_ref(),
                self.config.eps,
            ),
        )
    }
}

/// RMS normalization `x / sqrt(mean(x²) + eps) · weight` over the trailing dims, like
/// `torch.nn.RMSNorm`: `weight` (ones) of `normalized_shape`, no bias.
pub struct RMSNorm {
    /// The normalized trailing shape.
    pub normalized_shape: Vec<usize>,
    /// Elementwise scale, absent without `elementwise_affine`.
    pub weight: Option<Tensor>,
    /// Added to the mean square; `None` uses the machine epsilon of the input's dtype
    /// (PyTorch's default).
    pub eps: Option<f64>,
}

impl RMSNorm {
    /// RMS norm with a learnt scale and PyTorch's default eps.
    pub fn new(normalized_shape: impl Into<NormShape>) -> RMSNorm {
        RMSNorm::with_options(normalized_shape, None, true)
    }

    /// RMS norm with an explicit eps and/or without the learnt scale.
    pub fn with_options(
        normalized_shape: impl Into<NormShape>,
        eps: Option<f64>,
        elementwise_affine: bool,
    ) -> RMSNorm {
        let shape = normalized_shape.into().0;
        RMSNorm {
            weight: elementwise_affine.then(|| ones_param(&shape)),
            normalized_shape: shape,
            eps,
        }
    }
}

/// `torch.finfo(dtype).eps`.
fn machine_eps(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::EPSILON,
        DType::BF16 => 0.0078125,
        DType::F16 => 0.0009765625,
        _ => f32::EPSILON as f64,
    }
}

impl ModuleBase for RMSNorm {
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        named(&[("weight", self.weight.as_ref())])
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for RMSNorm {
    /// Normalizes `[.., *normalized_shape]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, {
            let eps = self.eps.unwrap_or_else(|| machine_eps(x.dtype()));
            F::rms_norm(x, &self.normalized_shape, self.weight.as_ref(), eps)
        })
    }
}

/// Group normalization of `[N, C, ..]` over `num_groups` groups of channels, like
/// `torch.nn.GroupNorm`: per-channel `weight` (ones) and `bias` (zeros).
pub struct GroupNorm {
    /// Number of channel groups.
    pub num_groups: usize,
    /// Number of channels.
    pub num_channels: usize,
    /// Added to the variance.
    pub eps: f64,
    /// `[num_channels]`, absent without `affine`.
    pub weight: Option<Tensor>,
    /// `[num_channels]`, absent without `affine`.
    pub bias: Option<Tensor>,
}

impl GroupNorm {
    /// Group norm with eps 1e−5 and affine parameters.
    pub fn new(num_groups: usize, num_channels: usize) -> GroupNorm {
        GroupNorm::with_options(num_groups, num_channels, 1e-5, true)
    }

    /// Group norm with the given eps and whether to learn `weight` and `bias`.
    pub fn with_options(
        num_groups: usize,
        num_channels: usize,
        eps: f64,
        affine: bool,
    ) -> GroupNorm {
        if num_groups == 0 || !num_channels.is_multiple_of(num_groups) {
            panic!("GroupNorm: num_channels {num_channels} must be divisible by num_groups {num_groups}");
        }
        let c = [num_channels];
        GroupNorm {
            num_groups,
            num_channels,
            eps,
            weight: affine.then(|| ones_param(&c)),
            bias: affine.then(|| zeros_param(&c)),
        }
    }
}

impl ModuleBase for GroupNorm {
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        named(&[
            ("weight", self.weight.as_ref()),
            ("bias", self.bias.as_ref()),
        ])
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for GroupNorm {
    /// Normalizes `[N, C, ..]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, {
            if x.rank() < 2 || x.shape()[1] != self.num_channels {
                panic!(
                    "GroupNorm: expected an input [N, {}, ..], got shape {:?}",
                    self.num_channels,
                    x.shape()
                );
            }
            F::group_norm(
                x,
                self.num_groups,
                self.weight.as_ref(),
                self.bias.as_ref(),
                self.eps,
            )
        })
    }
}
