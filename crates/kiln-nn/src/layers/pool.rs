//! Pooling layers: max, average and adaptive average pooling over `[N, C, H, W]`.

use crate::{Module, ModuleBase};
use kiln_core::nn::functional::{self as F, Pair};
use kiln_core::Tensor;

/// 2-D max pooling, like `torch.nn.MaxPool2d` (no parameters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel_size: Pair,
    /// Step between windows (PyTorch's default: the kernel size).
    pub stride: Pair,
    /// Implicit −∞ padding on both sides.
    pub padding: Pair,
    /// Spacing between window taps.
    pub dilation: Pair,
    /// Use ceil instead of floor for the output size.
    pub ceil_mode: bool,
}

impl MaxPool2d {
    /// Pooling with stride = kernel size, no padding.
    pub fn new(kernel_size: impl Into<Pair>) -> MaxPool2d {
        let k = kernel_size.into();
        MaxPool2d {
            kernel_size: k,
            stride: k,
            padding: Pair([0, 0]),
            dilation: Pair([1, 1]),
            ceil_mode: false,
        }
    }

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

    /// Sets the dilation.
    pub fn dilation(mut self, v: impl Into<Pair>) -> Self {
        self.dilation = v.into();
        self
    }

    /// Sets ceil mode.
    pub fn ceil_mode(mut self, v: bool) -> Self {
        self.ceil_mode = v;
        self
    }
}

impl ModuleBase for MaxPool2d {
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
    fn extra_repr(&self) -> String {
        let pair = |p: Pair| format!("({}, {})", p.0[0], p.0[1]);
        format!(
            "kernel_size={}, stride={}, padding={}, dilation={}",
            pair(self.kernel_size),
            pair(self.stride),
            pair(self.padding),
            pair(self.dilation)
        )
    }
}

impl Module for MaxPool2d {
    /// `[N, C, H, W]` or `[C, H, W]` → pooled.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(
            self,
            F::max_pool2d(
                x,
                self.kernel_size,
                self.stride,
                self.padding,
                self.dilation,
                self.ceil_mode,
            ),
        )
    }
}

/// 2-D average pooling, like `torch.nn.AvgPool2d` (no parameters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPool2d {
    /// Window size.
    pub kernel_size: Pair,
    /// Step between windows (PyTorch's default: the kernel size).
    pub stride: Pair,
    /// Implicit zero padding on both sides.
    pub padding: Pair,
    /// Use ceil instead of floor for the output size.
    pub ceil_mode: bool,
    /// Count the zero padding in the divisor (true, PyTorch's default).
    pub count_include_pad: bool,
    /// Divide by this instead of the window size.
    pub divisor_override: Option<usize>,
}

impl AvgPool2d {
    /// Pooling with stride = kernel size, no padding.
    pub fn new(kernel_size: impl Into<Pair>) -> AvgPool2d {
        let k = kernel_size.into();
        AvgPool2d {
            kernel_size: k,
            stride: k,
            padding: Pair([0, 0]),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }

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

    /// Sets ceil mode.
    pub fn ceil_mode(mut self, v: bool) -> Self {
        self.ceil_mode = v;
        self
    }

    /// Sets whether padding counts in the divisor.
    pub fn count_include_pad(mut self, v: bool) -> Self {
        self.count_include_pad = v;
        self
    }

    /// Sets a fixed divisor.
    pub fn divisor_override(mut self, v: Option<usize>) -> Self {
        self.divisor_override = v;
        self
    }
}

impl ModuleBase for AvgPool2d {
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for AvgPool2d {
    /// `[N, C, H, W]` or `[C, H, W]` → pooled.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(
            self,
            F::avg_pool2d(
                x,
                self.kernel_size,
                self.stride,
                self.padding,
                self.ceil_mode,
                self.count_include_pad,
                self.divisor_override,
            ),
        )
    }
}

/// Adaptive average pooling to a fixed output size, like `torch.nn.AdaptiveAvgPool2d`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveAvgPool2d {
    /// (H', W') of the output.
    pub output_size: Pair,
}

impl AdaptiveAvgPool2d {
    /// Pools any `[N, C, H, W]` to `[N, C, H', W']` (`1` gives global average pooling).
    pub fn new(output_size: impl Into<Pair>) -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d {
            output_size: output_size.into(),
        }
    }
}

impl ModuleBase for AdaptiveAvgPool2d {
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for AdaptiveAvgPool2d {
    /// `[N, C, H, W]` or `[C, H, W]` → `[.., H', W']`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, F::adaptive_avg_pool2d(x, self.output_size))
    }
}
