//! Optimizers and learning-rate schedules that follow `torch.optim` formula for formula.
//!
//! Every optimizer holds one or more [`ParamGroup`]s (parameters plus their own options),
//! updates parameters **in place** under no-grad (parameters are handles shared with the
//! model), skips parameters without a gradient, and runs PyTorch's single-tensor
//! (`foreach=False`) update in PyTorch's operation order, so a Kiln run and a PyTorch run from
//! the same state agree to rounding.
//!
//! ```
//! use kiln_core::{DType, Tensor};
//! use kiln_nn::optim::{Adam, Optimizer, lr_scheduler::{LrScheduler, CosineAnnealingLR}};
//!
//! let w = Tensor::ones([3], DType::F32).requires_grad_(true);
//! let mut opt = Adam::new(vec![w.clone()], 1e-3);
//! let mut sched = CosineAnnealingLR::new(&mut opt, 100, 0.0);
//! for _ in 0..3 {
//!     opt.zero_grad();
//!     (&w * &w).sum_all().backward();
//!     opt.step();
//!     sched.step(&mut opt);
//! }
//! ```
//!
//! State for checkpoints: [`Optimizer::state_dict`] gives the state tensors as a
//! [`StateDict`] named like PyTorch's (`state.<param index>.exp_avg`) and hyper-parameters and
//! step counts as JSON; schedulers give their state as JSON.

mod adagrad;
mod adam;
mod clip;
pub(crate) mod core;
mod error;
#[cfg(test)]
mod fused_tests;
mod json;
#[cfg(test)]
mod load_validation_tests;
pub mod lr_scheduler;
mod rmsprop;
mod sgd;

pub use self::adagrad::{Adagrad, AdagradConfig};
pub use self::adam::{Adam, AdamConfig, AdamW, AdamWConfig};
pub use self::clip::{clip_grad_norm, clip_grad_value, grad_norm};
pub use self::core::ParamGroup;
pub use self::error::OptimError;
pub use self::rmsprop::{RmsProp, RmsPropConfig};
pub use self::sgd::{Sgd, SgdConfig};

use crate::StateDict;
use kiln_core::Tensor;

/// A snapshot of an optimizer for checkpoints: state tensors plus JSON metadata, split the way
/// a safetensors file wants it (tensors in the body, the JSON in the header's metadata).
#[derive(Clone, Debug)]
pub struct OptimizerState {
    /// Per-parameter state tensors, named `state.<param index>.<name>` where the index counts
    /// parameters across groups in order (PyTorch's numbering). Copies, not aliases.
    pub tensors: StateDict,
    /// `{"kind": "Adam", "param_groups": [{options…, "params": [0, 1]}], "state":
    /// {"0": {"step": 3.0}}}`: hyper-parameters per group and step counts per parameter.
    pub meta: serde_json::Value,
}

/// The interface every optimizer implements; schedulers and trainers work through it.
pub trait Optimizer: Send {
    /// Applies one update to every parameter that has a gradient.
    fn step(&mut self);

    /// The optimizer's name (`"Adam"`), recorded in its state.
    fn kind(&self) -> &'static str;

    /// Number of parameter groups.
    fn num_groups(&self) -> usize;

    /// The parameters of group `group`.
    fn group_params(&self, group: usize) -> &[Tensor];

    /// Learning rate of group `group`.
    fn group_lr(&self, group: usize) -> f64;

    /// Sets the learning rate of group `group`.
    fn set_group_lr(&mut self, group: usize, lr: f64);

    /// The learning rate schedules start from (`group["initial_lr"]`), once a scheduler has
    /// been attached.
    fn group_initial_lr(&self, group: usize) -> Option<f64>;

    /// Sets the schedules' starting learning rate of group `group`.
    fn set_group_initial_lr(&mut self, group: usize, lr: Option<f64>);

    /// The momentum a one-cycle schedule cycles: SGD's and RMSprop's `momentum`, Adam's and
    /// AdamW's β₁; `None` for optimizers without one (Adagrad).
    fn group_momentum(&self, group: usize) -> Option<f64>;

    /// Sets the value [`Optimizer::group_momentum`] reads (ignored when there is none).
    fn set_group_momentum(&mut self, group: usize, momentum: f64);

    /// A snapshot of hyper-parameters and per-parameter state.
    fn state_dict(&self) -> OptimizerState;

    /// Restores a snapshot taken from an optimizer of the same type over parameters of the same
    /// shapes (matched by position). The snapshot's hyper-parameters replace the current ones,
    /// as in PyTorch. On error nothing is changed.
    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<(), OptimError>;

    /// Clears every parameter's gradient (PyTorch's default `set_to_none=True`).
    fn zero_grad(&self) {
        for g in 0..self.num_groups() {
            for p in self.group_params(g) {
                p.zero_grad();
            }
        }
    }

    /// Learning rate of the first group.
    fn lr(&self) -> f64 {
        self.group_lr(0)
    }

    /// Sets the learning rate of every group.
    fn set_lr(&mut self, lr: f64) {
        for g in 0..self.num_groups() {
            self.set_group_lr(g, lr);
        }
    }

    /// Learning rates of all groups.
    fn lrs(&self) -> Vec<f64> {
        (0..self.num_groups()).map(|g| self.group_lr(g)).collect()
    }

    /// All parameters, group by group (the order state indices refer to).
    fn params(&self) -> Vec<Tensor> {
        (0..self.num_groups())
            .flat_map(|g| self.group_params(g).to_vec())
            .collect()
    }
}
