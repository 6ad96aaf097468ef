//! Parameter-free layers: activations, softmax, `Flatten` and `Identity`.

use crate::{Module, ModuleBase};
use kiln_core::nn::functional as F;
use kiln_core::Tensor;

macro_rules! stateless {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct $name;

        impl ModuleBase for $name {
            fn as_dyn(&self) -> &dyn ModuleBase {
                self
            }
        }
    };
}

macro_rules! elementwise {
    ($(#[$doc:meta])* $name:ident, $f:expr) => {
        stateless!($(#[$doc])* $name);

        impl $name {
            /// The layer.
            pub fn new() -> $name {
                $name
            }
        }

        impl Module for $name {
            /// Applies the function elementwise.
            fn forward(&self, x: &Tensor) -> Tensor {
                let f: fn(&Tensor) -> Tensor = $f;
                crate::summary::observed(self, f(x))
            }
        }
    };
}

elementwise!(
    /// Returns its input unchanged, like `torch.nn.Identity`.
    Identity,
    |x| x.clone()
);
elementwise!(
    /// max(x, 0), like `torch.nn.ReLU`.
    ReLU,
    F::relu
);
elementwise!(
    /// x·sigmoid(x), like `torch.nn.SiLU`.
    SiLU,
    F::silu
);
elementwise!(
    /// Hyperbolic tangent, like `torch.nn.Tanh`.
    Tanh,
    F::tanh
);
elementwise!(
    /// The logistic sigmoid, like `torch.nn.Sigmoid`.
    Sigmoid,
    F::sigmoid
);

/// GELU `x·Φ(x)`, like `torch.nn.GELU`; `approximate_tanh` selects PyTorch's
/// `approximate="tanh"`.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GELU {
    /// Use the tanh approximation instead of the exact erf form.
    pub approximate_tanh: bool,
}

impl GELU {
    /// Exact (erf) GELU, PyTorch's default.
    pub fn new() -> GELU {
        GELU::default()
    }

    /// GELU with the tanh approximation.
    pub fn tanh_approximation() -> GELU {
        GELU {
            approximate_tanh: true,
        }
    }
}

impl ModuleBase for GELU {
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for GELU {
    /// Applies GELU elementwise.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, F::gelu(x, self.approximate_tanh))
    }
}

/// Softmax along `dim`, like `torch.nn.Softmax(dim)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softmax {
    /// The dim that sums to one (negative counts from the end).
    pub dim: i64,
}

impl Softmax {
    /// Softmax along `dim`.
    pub fn new(dim: i64) -> Softmax {
        Softmax { dim }
    }
}

impl ModuleBase for Softmax {
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for Softmax {
    /// Applies softmax along `dim`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, F::softmax(x, self.dim))
    }
}

/// Log-softmax along `dim`, like `torch.nn.LogSoftmax(dim)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogSoftmax {
    /// The dim normalized over (negative counts from the end).
    pub dim: i64,
}

impl LogSoftmax {
    /// Log-softmax along `dim`.
    pub fn new(dim: i64) -> LogSoftmax {
        LogSoftmax { dim }
    }
}

impl ModuleBase for LogSoftmax {
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for LogSoftmax {
    /// Applies log-softmax along `dim`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, F::log_softmax(x, self.dim))
    }
}

/// Merges dims `start_dim..=end_dim`, like `torch.nn.Flatten` (defaults 1 and −1: everything
/// but the batch dim).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flatten {
    /// First merged dim.
    pub start_dim: i64,
    /// Last merged dim (inclusive).
    pub end_dim: i64,
}

impl Flatten {
    /// Flattens all dims but the first.
    pub fn new() -> Flatten {
        Flatten::with_dims(1, -1)
    }

    /// Flattens `start_dim..=end_dim`.
    pub fn with_dims(start_dim: i64, end_dim: i64) -> Flatten {
        Flatten { start_dim, end_dim }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new()
    }
}

impl ModuleBase for Flatten {
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl Module for Flatten {
    /// Merges the dims.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, x.flatten(self.start_dim, self.end_dim))
    }
}
