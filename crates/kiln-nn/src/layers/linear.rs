//! The fully connected layer.

use super::{default_bias_init, default_weight_init, named, new_param};
use crate::{Module, ModuleBase};
use kiln_core::nn::functional as F;
use kiln_core::Tensor;

/// `y = x·Wᵀ + b`, like `torch.nn.Linear`: `weight` `[out_features, in_features]`, `bias`
/// `[out_features]`, both U(−1/√in, 1/√in) initially.
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`, absent for `bias = false`.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer with a bias.
    pub fn new(in_features: usize, out_features: usize) -> Linear {
        Linear::with_bias(in_features, out_features, true)
    }

    /// A layer with or without a bias (`bias=False` in PyTorch leaves `bias` out of the state
    /// dict).
    pub fn with_bias(in_features: usize, out_features: usize, bias: bool) -> Linear {
        let weight = new_param(&[out_features, in_features]);
        default_weight_init(&weight);
        let bias = bias.then(|| {
            let b = new_param(&[out_features]);
            default_bias_init(&b, in_features);
            b
        });
        Linear { weight, bias }
    }

    /// `in_features`.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// `out_features`.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl ModuleBase for Linear {
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        named(&[("weight", Some(&self.weight)), ("bias", self.bias.as_ref())])
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
    fn extra_repr(&self) -> String {
        format!(
            "in_features={}, out_features={}, bias={}",
            self.in_features(),
            self.out_features(),
            self.bias.is_some()
        )
    }
}

impl std::fmt::Debug for Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.tree())
    }
}

impl Module for Linear {
    /// `[.., in_features]` → `[.., out_features]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, F::linear(x, &self.weight, self.bias.as_ref()))
    }
}
