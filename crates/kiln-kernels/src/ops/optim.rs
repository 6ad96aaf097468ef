//! Optimizer updates as graph primitives: the parameters and operands of
//! [`Op::AdamStep`](super::Op::AdamStep). A traced `optimizer.step()` records one per
//! parameter, which runs the eager fused kernel (`crate::cpu::fused_optim`) when the graph
//! runs, instead of ~15 tensor ops that the graph's elementwise interpreter ran 3–6× slower
//! than that kernel (each of its steps is a pass over a tile, so the divisions and the square
//! root never overlap the rest).
//!
//! The op's value is the updated parameter (the executor writes it into the parameter in
//! place); the moments are written in place as it runs, the way a store-fused program writes
//! state (see [`Op::writes_args`](super::Op::writes_args)), and the trace records them as
//! updated by the op.

/// Operand positions of [`Op::AdamStep`](super::Op::AdamStep): parameter, gradient, first and
/// second moments, the step count after this update's increment and the learning rate (0-d
/// f64), then the AMSGrad maximum.
pub mod adam_args {
    /// The parameter.
    pub const PARAM: usize = 0;
    /// Its gradient.
    pub const GRAD: usize = 1;
    /// First moment (written in place).
    pub const EXP_AVG: usize = 2;
    /// Second moment (written in place).
    pub const EXP_AVG_SQ: usize = 3;
    /// Step count, 0-d f64, already incremented for this update.
    pub const STEP: usize = 4;
    /// Learning rate, 0-d f64.
    pub const LR: usize = 5;
    /// Maximum of past second moments (AMSGrad only; written in place).
    pub const MAX_EXP_AVG_SQ: usize = 6;
}

/// The fixed hyper-parameters of Adam / AdamW (`torch.optim.Adam`, `torch.optim.AdamW`); the
/// defaults are PyTorch's Adam.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamHyper {
    /// Decay rate of the first moment average.
    pub beta1: f64,
    /// Decay rate of the second moment average.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// L2 penalty (Adam) or decoupled decay (AdamW, see `decoupled`).
    pub weight_decay: f64,
    /// AdamW's decoupled weight decay (`p *= 1 − lr · weight_decay`) instead of adding
    /// `weight_decay · p` to the gradient.
    pub decoupled: bool,
    /// Maximize instead of minimize (the gradient is negated).
    pub maximize: bool,
    /// AMSGrad (a `max_exp_avg_sq` state is passed).
    pub amsgrad: bool,
}

impl Default for AdamHyper {
    fn default() -> AdamHyper {
        AdamHyper {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            maximize: false,
            amsgrad: false,
        }
    }
}

impl AdamHyper {
    /// Operand positions [`Op::AdamStep`](super::Op::AdamStep) writes in place.
    pub fn written_args(&self) -> &'static [usize] {
        use adam_args::*;
        if self.amsgrad {
            &[EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ]
        } else {
            &[EXP_AVG, EXP_AVG_SQ]
        }
    }

    /// Number of operands of [`Op::AdamStep`](super::Op::AdamStep).
    pub fn arity(&self) -> usize {
        if self.amsgrad {
            7
        } else {
            6
        }
    }
}
