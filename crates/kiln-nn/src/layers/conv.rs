//! Convolutions: `Conv1d`, `Conv2d` and `ConvTranspose2d` (zero padding).

use super::{default_bias_init, default_weight_init, named, new_param};
use crate::{Module, ModuleBase};
use kiln_core::nn::functional::{self as F, Pair};
use kiln_core::Tensor;

fn check_groups(op: &str, in_channels: usize, out_channels: usize, groups: usize) {
    if groups == 0 || !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
        panic!(
            "{op}: in_channels {in_channels} and out_channels {out_channels} must both be \
             divisible by groups {groups}"
        );
    }
}

/// Creates `[weight, bias]` with PyTorch's default init (fan-in from the weight's shape).
fn conv_params(
    weight_shape: &[usize],
    out_channels: usize,
    bias: bool,
) -> (Tensor, Option<Tensor>) {
    let weight = new_param(weight_shape);
    default_weight_init(&weight);
    let (fan_in, _) = crate::init::fans(&weight);
    let bias = bias.then(|| {
        let b = new_param(&[out_channels]);
        default_bias_init(&b, fan_in);
        b
    });
    (weight, bias)
}

/// Options of [`Conv1d`] (PyTorch's keyword arguments and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv1dConfig {
    /// Step between windows (1).
    pub stride: usize,
    /// Zeros added on both sides (0).
    pub padding: usize,
    /// Spacing between kernel taps (1).
    pub dilation: usize,
    /// Blocked connections from input to output channels (1).
    pub groups: usize,
    /// Whether to learn a bias (true).
    pub bias: bool,
}

impl Default for Conv1dConfig {
    fn default() -> Self {
        Conv1dConfig {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            bias: true,
        }
    }
}

impl Conv1dConfig {
    /// Sets the stride.
    pub fn stride(mut self, v: usize) -> Self {
        self.stride = v;
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, v: usize) -> Self {
        self.padding = v;
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, v: usize) -> Self {
        self.dilation = v;
        self
    }
    /// Sets the number of groups.
    pub fn groups(mut self, v: usize) -> Self {
        self.groups = v;
        self
    }
    /// Sets whether there is a bias.
    pub fn bias(mut self, v: bool) -> Self {
        self.bias = v;
        self
    }
}

/// 1-D convolution over `[N, C, L]`, like `torch.nn.Conv1d`: `weight`
/// `[out_channels, in_channels/groups, kernel_size]`, `bias` `[out_channels]`.
pub struct Conv1d {
    /// `[out_channels, in_channels/groups, kernel_size]`.
    pub weight: Tensor,
    /// `[out_channels]`, absent for `bias = false`.
    pub bias: Option<Tensor>,
    /// The options.
    pub config: Conv1dConfig,
}

impl Conv1d {
    /// A convolution with default options.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Conv1d {
        Conv1d::with_config(
            in_channels,
            out_channels,
            kernel_size,
            Conv1dConfig::default(),
        )
    }

    /// A convolution with the given options.
    pub fn with_config(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        config: Conv1dConfig,
    ) -> Conv1d {
        check_groups("Conv1d", in_channels, out_channels, config.groups);
        let (weight, bias) = conv_params(
            &[out_channels, in_channels / config.groups, kernel_size],
            out_channels,
            config.bias,
        );
        Conv1d {
            weight,
            bias,
            config,
        }
    }
}

impl ModuleBase for Conv1d {
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        named(&[("weight", Some(&self.weight)), ("bias", self.bias.as_ref())])
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for Conv1d {
    /// `[N, C_in, L]` (or unbatched `[C_in, L]`) → `[N, C_out, L']`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, {
            let c = &self.config;
            if x.rank() == 2 {
                return self.forward(&x.unsqueeze(0)).squeeze(0);
            }
            F::conv1d(
                x,
                &self.weight,
                self.bias.as_ref(),
                c.stride,
                c.padding,
                c.dilation,
                c.groups,
            )
        })
    }
}

/// Options of [`Conv2d`] (PyTorch's keyword arguments and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    /// Step between windows (1).
    pub stride: Pair,
    /// Zeros added on both sides of each spatial dim (0).
    pub padding: Pair,
    /// Spacing between kernel taps (1).
    pub dilation: Pair,
    /// Blocked connections from input to output channels (1).
    pub groups: usize,
    /// Whether to learn a bias (true).
    pub bias: bool,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: Pair([1, 1]),
            padding: Pair([0, 0]),
            dilation: Pair([1, 1]),
            groups: 1,
            bias: true,
        }
    }
}

impl Conv2dConfig {
    /// Sets the stride (`2`, `(2, 1)` or `[2, 1]`).
    pub fn stride(mut self, v: impl Into<Pair>) -> Self {
        self.stride = v.into();
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, v: impl Into<Pair>) -> Self {
        self.padding = v.into();
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, v: impl Into<Pair>) -> Self {
        self.dilation = v.into();
        self
    }
    /// Sets the number of groups.
    pub fn groups(mut self, v: usize) -> Self {
        self.groups = v;
        self
    }
    /// Sets whether there is a bias.
    pub fn bias(mut self, v: bool) -> Self {
        self.bias = v;
        self
    }
}

/// 2-D convolution over `[N, C, H, W]`, like `torch.nn.Conv2d`: `weight`
/// `[out_channels, in_channels/groups, kh, kw]`, `bias` `[out_channels]`.
pub struct Conv2d {
    /// `[out_channels, in_channels/groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out_channels]`, absent for `bias = false`.
    pub bias: Option<Tensor>,
    /// The options.
    pub config: Conv2dConfig,
}

impl Conv2d {
    /// A convolution with default options; `kernel_size` is `3`, `(3, 5)` or `[3, 5]`.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl Into<Pair>) -> Conv2d {
        Conv2d::with_config(
            in_channels,
            out_channels,
            kernel_size,
            Conv2dConfig::default(),
        )
    }

    /// A convolution with the given options.
    pub fn with_config(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl Into<Pair>,
        config: Conv2dConfig,
    ) -> Conv2d {
        check_groups("Conv2d", in_channels, out_channels, config.groups);
        let [kh, kw] = kernel_size.into().0;
        let (weight, bias) = conv_params(
            &[out_channels, in_channels / config.groups, kh, kw],
            out_channels,
            config.bias,
        );
        Conv2d {
            weight,
            bias,
            config,
        }
    }
}

impl ModuleBase for Conv2d {
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        named(&[("weight", Some(&self.weight)), ("bias", self.bias.as_ref())])
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
    fn extra_repr(&self) -> String {
        let w = self.weight.shape();
        let c = &self.config;
        let pair = |p: Pair| format!("({}, {})", p.0[0], p.0[1]);
        format!(
            "{}, {}, kernel_size={}, stride={}, padding={}, dilation={}, groups={}, bias={}",
            w[1] * c.groups,
            w[0],
            pair(Pair([w[2], w[3]])),
            pair(c.stride),
            pair(c.padding),
            pair(c.dilation),
            c.groups,
            self.bias.is_some()
        )
    }
}

impl Module for Conv2d {
    /// `[N, C_in, H, W]` (or unbatched `[C_in, H, W]`) → `[N, C_out, H', W']`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, {
            let c = &self.config;
            if x.rank() == 3 {
                return self.forward(&x.unsqueeze(0)).squeeze(0);
            }
            F::conv2d(
                x,
                &self.weight,
                self.bias.as_ref(),
                c.stride,
                c.padding,
                c.dilation,
                c.groups,
            )
        })
    }
}

/// Options of [`ConvTranspose2d`] (PyTorch's keyword arguments and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTranspose2dConfig {
    /// Stride of the corresponding convolution (1).
    pub stride: Pair,
    /// Padding of the corresponding convolution, removed from the output (0).
    pub padding: Pair,
    /// Extra size added to one side of the output (0).
    pub output_padding: Pair,
    /// Blocked connections from input to output channels (1).
    pub groups: usize,
    /// Whether to learn a bias (true).
    pub bias: bool,
    /// Spacing between kernel taps (1).
    pub dilation: Pair,
}

impl Default for ConvTranspose2dConfig {
    fn default() -> Self {
        ConvTranspose2dConfig {
            stride: Pair([1, 1]),
            padding: Pair([0, 0]),
            output_padding: Pair([0, 0]),
            groups: 1,
            bias: true,
            dilation: Pair([1, 1]),
        }
    }
}

impl ConvTranspose2dConfig {
    /// Sets the stride.
    pub fn stride(mut self, v: impl Into<Pair>) -> Self {
        self.stride = v.into();
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, v: impl Into<Pair>) -> Self {
        self.padding = v.into();
        self
    }
    /// Sets the output padding.
    pub fn output_padding(mut self, v: impl Into<Pair>) -> Self {
        self.output_padding = v.into();
        self
    }
    /// Sets the number of groups.
    pub fn groups(mut self, v: usize) -> Self {
        self.groups = v;
        self
    }
    /// Sets whether there is a bias.
    pub fn bias(mut self, v: bool) -> Self {
        self.bias = v;
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, v: impl Into<Pair>) -> Self {
        self.dilation = v.into();
        self
    }
}

/// 2-D transposed convolution, like `torch.nn.ConvTranspose2d`: `weight`
/// `[in_channels, out_channels/groups, kh, kw]`, `bias` `[out_channels]`; PyTorch's fan-in for
/// the init is `out_channels/groups · kh · kw` (dim 1 of the weight).
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels/groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out_channels]`, absent for `bias = false`.
    pub bias: Option<Tensor>,
    /// The options.
    pub config: ConvTranspose2dConfig,
}

impl ConvTranspose2d {
    /// A transposed convolution with default options.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl Into<Pair>,
    ) -> ConvTranspose2d {
        ConvTranspose2d::with_config(
            in_channels,
            out_channels,
            kernel_size,
            ConvTranspose2dConfig::default(),
        )
    }

    /// A transposed convolution with the given options.
    pub fn with_config(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl Into<Pair>,
        config: ConvTranspose2dConfig,
    ) -> ConvTranspose2d {
        check_groups("ConvTranspose2d", in_channels, out_channels, config.groups);
        let [kh, kw] = kernel_size.into().0;
        let (weight, bias) = conv_params(
            &[in_channels, out_channels / config.groups, kh, kw],
            out_channels,
            config.bias,
        );
        ConvTranspose2d {
            weight,
            bias,
            config,
        }
    }
}

impl ModuleBase for ConvTranspose2d {
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        named(&[("weight", Some(&self.weight)), ("bias", self.bias.as_ref())])
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for ConvTranspose2d {
    /// `[N, C_in, H, W]` (or unbatched `[C_in, H, W]`) → `[N, C_out, H', W']`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, {
            let c = &self.config;
            if x.rank() == 3 {
                return self.forward(&x.unsqueeze(0)).squeeze(0);
            }
            F::conv_transpose2d(
                x,
                &self.weight,
                self.bias.as_ref(),
                c.stride,
                c.padding,
                c.output_padding,
                c.groups,
                c.dilation,
            )
        })
    }
}
