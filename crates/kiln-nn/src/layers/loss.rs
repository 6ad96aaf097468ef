//! Loss modules: thin wrappers over the loss functionals holding PyTorch's constructor
//! options. Each has `forward(input, target)`; class weights are buffers named `weight` (and
//! `pos_weight`) as in PyTorch's state dict.

use super::named;
use crate::ModuleBase;
use kiln_core::nn::functional::Reduction;
use kiln_core::nn::functional::{self as F, CrossEntropyOptions, KlDivReduction, NllLossOptions};
use kiln_core::Tensor;

macro_rules! weight_buffers {
    ($name:ident, $($field:ident),*) => {
        impl ModuleBase for $name {
            fn own_buffers(&self) -> Vec<(String, Tensor)> {
                named(&[$((stringify!($field), self.$field.as_ref())),*])
            }
            fn as_dyn(&self) -> &dyn ModuleBase {
                self
            }
        }
    };
}

/// Cross entropy of logits `[N, C, ..]` against class indices `[N, ..]` (i64), like
/// `torch.nn.CrossEntropyLoss`: optional class `weight` `[C]`, `ignore_index` (−100 by
/// default), `label_smoothing` and `reduction` (mean).
#[derive(Clone, Debug, Default)]
pub struct CrossEntropyLoss {
    /// Per-class weights `[C]` (a buffer named `weight`).
    pub weight: Option<Tensor>,
    /// The options passed to the functional (its `weight` is taken from the field above).
    pub options: CrossEntropyOptions,
}

impl CrossEntropyLoss {
    /// Mean cross entropy ignoring target −100, no weights, no smoothing.
    pub fn new() -> CrossEntropyLoss {
        CrossEntropyLoss::default()
    }
    /// Sets per-class weights.
    pub fn weight(mut self, w: Tensor) -> Self {
        self.weight = Some(w);
        self
    }
    /// Sets the ignored class index (`None`: ignore nothing).
    pub fn ignore_index(mut self, i: Option<i64>) -> Self {
        self.options.ignore_index = i;
        self
    }
    /// Sets label smoothing ε.
    pub fn label_smoothing(mut self, eps: f64) -> Self {
        self.options.label_smoothing = eps;
        self
    }
    /// Sets the reduction.
    pub fn reduction(mut self, r: Reduction) -> Self {
        self.options.reduction = r;
        self
    }
    /// The loss.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        let opts = CrossEntropyOptions {
            weight: self.weight.clone(),
            ..self.options.clone()
        };
        F::cross_entropy_with(input, target, &opts)
    }
}
weight_buffers!(CrossEntropyLoss, weight);

/// Negative log likelihood of log-probabilities `[N, C, ..]` against class indices, like
/// `torch.nn.NLLLoss`.
#[derive(Clone, Debug, Default)]
pub struct NLLLoss {
    /// Per-class weights `[C]` (a buffer named `weight`).
    pub weight: Option<Tensor>,
    /// The options passed to the functional (its `weight` is taken from the field above).
    pub options: NllLossOptions,
}

impl NLLLoss {
    /// Mean NLL ignoring target −100, no weights.
    pub fn new() -> NLLLoss {
        NLLLoss::default()
    }
    /// Sets per-class weights.
    pub fn weight(mut self, w: Tensor) -> Self {
        self.weight = Some(w);
        self
    }
    /// Sets the ignored class index (`None`: ignore nothing).
    pub fn ignore_index(mut self, i: Option<i64>) -> Self {
        self.options.ignore_index = i;
        self
    }
    /// Sets the reduction.
    pub fn reduction(mut self, r: Reduction) -> Self {
        self.options.reduction = r;
        self
    }
    /// The loss.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        let opts = NllLossOptions {
            weight: self.weight.clone(),
            ..self.options.clone()
        };
        F::nll_loss(input, target, &opts)
    }
}
weight_buffers!(NLLLoss, weight);

macro_rules! simple_loss {
    ($(#[$doc:meta])* $name:ident, |$i:ident, $t:ident, $s:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct $name {
            /// How the elementwise losses are reduced (mean).
            pub reduction: Reduction,
        }

        impl $name {
            /// The loss with mean reduction.
            pub fn new() -> $name {
                $name::default()
            }
            /// Sets the reduction.
            pub fn reduction(mut self, r: Reduction) -> Self {
                self.reduction = r;
                self
            }
            /// The loss.
            pub fn forward(&self, $i: &Tensor, $t: &Tensor) -> Tensor {
                let $s = self;
                $body
            }
        }

        impl ModuleBase for $name {
            fn as_dyn(&self) -> &dyn ModuleBase {
                self
            }
        }
    };
}

simple_loss!(
    /// Mean squared error, like `torch.nn.MSELoss`.
    MSELoss,
    |input, target, s| F::mse_loss(input, target, s.reduction)
);
simple_loss!(
    /// Mean absolute error, like `torch.nn.L1Loss`.
    L1Loss,
    |input, target, s| F::l1_loss(input, target, s.reduction)
);

/// Smooth L1 loss (quadratic below `beta`, linear above), like `torch.nn.SmoothL1Loss`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothL1Loss {
    /// How the elementwise losses are reduced (mean).
    pub reduction: Reduction,
    /// The switch point (1.0).
    pub beta: f64,
}

impl Default for SmoothL1Loss {
    fn default() -> Self {
        SmoothL1Loss {
            reduction: Reduction::Mean,
            beta: 1.0,
        }
    }
}

impl SmoothL1Loss {
    /// Mean reduction, beta 1.
    pub fn new() -> SmoothL1Loss {
        SmoothL1Loss::default()
    }
    /// Sets the reduction.
    pub fn reduction(mut self, r: Reduction) -> Self {
        self.reduction = r;
        self
    }
    /// Sets beta.
    pub fn beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }
    /// The loss.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        F::smooth_l1_loss(input, target, self.reduction, self.beta)
    }
}

impl ModuleBase for SmoothL1Loss {
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

/// Huber loss (quadratic below `delta`, `delta`-scaled linear above), like
/// `torch.nn.HuberLoss`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HuberLoss {
    /// How the elementwise losses are reduced (mean).
    pub reduction: Reduction,
    /// The switch point (1.0).
    pub delta: f64,
}

impl Default for HuberLoss {
    fn default() -> Self {
        HuberLoss {
            reduction: Reduction::Mean,
            delta: 1.0,
        }
    }
}

impl HuberLoss {
    /// Mean reduction, delta 1.
    pub fn new() -> HuberLoss {
        HuberLoss::default()
    }
    /// Sets the reduction.
    pub fn reduction(mut self, r: Reduction) -> Self {
        self.reduction = r;
        self
    }
    /// Sets delta.
    pub fn delta(mut self, delta: f64) -> Self {
        self.delta = delta;
        self
    }
    /// The loss.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        F::huber_loss(input, target, self.reduction, self.delta)
    }
}

impl ModuleBase for HuberLoss {
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

/// Binary cross entropy of probabilities, like `torch.nn.BCELoss`.
#[derive(Clone, Debug, Default)]
pub struct BCELoss {
    /// Weight of each element's loss (broadcast; a buffer named `weight`).
    pub weight: Option<Tensor>,
    /// How the elementwise losses are reduced (mean).
    pub reduction: Reduction,
}

impl BCELoss {
    /// Mean reduction, no weights.
    pub fn new() -> BCELoss {
        BCELoss::default()
    }
    /// Sets the element weights.
    pub fn weight(mut self, w: Tensor) -> Self {
        self.weight = Some(w);
        self
    }
    /// Sets the reduction.
    pub fn reduction(mut self, r: Reduction) -> Self {
        self.reduction = r;
        self
    }
    /// The loss.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        F::binary_cross_entropy(input, target, self.weight.as_ref(), self.reduction)
    }
}
weight_buffers!(BCELoss, weight);

/// Binary cross entropy of logits (sigmoid folded in, numerically stable), like
/// `torch.nn.BCEWithLogitsLoss`; `pos_weight` (one per class, broadcast along the last dim)
/// weighs the positive term.
#[derive(Clone, Debug, Default)]
pub struct BCEWithLogitsLoss {
    /// Weight of each element's loss (a buffer named `weight`).
    pub weight: Option<Tensor>,
    /// Weight of positive examples per class (a buffer named `pos_weight`).
    pub pos_weight: Option<Tensor>,
    /// How the elementwise losses are reduced (mean).
    pub reduction: Reduction,
}

impl BCEWithLogitsLoss {
    /// Mean reduction, no weights.
    pub fn new() -> BCEWithLogitsLoss {
        BCEWithLogitsLoss::default()
    }
    /// Sets the element weights.
    pub fn weight(mut self, w: Tensor) -> Self {
        self.weight = Some(w);
        self
    }
    /// Sets the positive-class weights.
    pub fn pos_weight(mut self, w: Tensor) -> Self {
        self.pos_weight = Some(w);
        self
    }
    /// Sets the reduction.
    pub fn reduction(mut self, r: Reduction) -> Self {
        self.reduction = r;
        self
    }
    /// The loss.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        F::binary_cross_entropy_with_logits(
            input,
            target,
            self.weight.as_ref(),
            self.reduction,
            self.pos_weight.as_ref(),
        )
    }
}
weight_buffers!(BCEWithLogitsLoss, weight, pos_weight);

/// Kullback–Leibler divergence with log-probability inputs, like `torch.nn.KLDivLoss`
/// (reduction `mean` by default; `BatchMean` is the true KL divergence).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KLDivLoss {
    /// How the pointwise values are reduced.
    pub reduction: KlDivReduction,
    /// The target is given as log-probabilities too.
    pub log_target: bool,
}

impl KLDivLoss {
    /// Mean reduction, probability targets.
    pub fn new() -> KLDivLoss {
        KLDivLoss::default()
    }
    /// Sets the reduction.
    pub fn reduction(mut self, r: impl Into<KlDivReduction>) -> Self {
        self.reduction = r.into();
        self
    }
    /// Sets whether the target is in log space.
    pub fn log_target(mut self, v: bool) -> Self {
        self.log_target = v;
        self
    }
    /// The loss.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        F::kl_div(input, target, self.reduction, self.log_target)
    }
}

impl ModuleBase for KLDivLoss {
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}
