//! Dropout.

use super::TrainingFlag;
use crate::{Module, ModuleBase};
use kiln_core::nn::functional as F;
use kiln_core::Tensor;

/// Zeroes each element with probability `p` in training mode and scales the rest by
/// `1 / (1 − p)`; the identity in evaluation mode. Like `torch.nn.Dropout`, it draws from the
/// global generator (seed it with `kiln_core::manual_seed`).
#[derive(Debug)]
pub struct Dropout {
    /// Probability of zeroing an element.
    pub p: f64,
    training: TrainingFlag,
}

impl Dropout {
    /// Dropout with probability `p` (PyTorch's default is 0.5), in training mode.
    pub fn new(p: f64) -> Dropout {
        if !(0.0..=1.0).contains(&p) {
            panic!("Dropout: probability has to be between 0 and 1, got {p}");
        }
        Dropout {
            p,
            training: TrainingFlag::new(),
        }
    }
}

impl Default for Dropout {
    /// `p = 0.5`.
    fn default() -> Self {
        Dropout::new(0.5)
    }
}

impl ModuleBase for Dropout {
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
        format!("p={}", self.p)
    }
}

impl Module for Dropout {
    /// Applies dropout when training.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, F::dropout(x, self.p, self.training.get()))
    }
}
