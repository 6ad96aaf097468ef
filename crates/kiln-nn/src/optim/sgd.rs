//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay
//! (`torch.optim.SGD`).

use super::core::{
    add_scaled, check, optimizer_common, signed_grad, use_fused, Core, GroupOptions, ParamState,
};
use super::json;
use super::OptimError;
use kiln_core::ops::fused_optim::{self, SgdStep};
use kiln_core::{no_grad, Tensor};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Options of one SGD parameter group; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Momentum factor (default 0: plain SGD).
    pub momentum: f64,
    /// Dampening of the gradient entering the momentum buffer (default 0).
    pub dampening: f64,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Nesterov momentum (needs momentum > 0 and zero dampening).
    pub nesterov: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> SgdConfig {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

impl GroupOptions for SgdConfig {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn momentum(&self) -> Option<f64> {
        Some(self.momentum)
    }
    fn set_momentum(&mut self, momentum: f64) {
        self.momentum = momentum;
    }
    fn validate(&self) -> Result<(), OptimError> {
        check(self.lr >= 0.0, "learning rate", self.lr)?;
        check(self.momentum >= 0.0, "momentum", self.momentum)?;
        check(self.weight_decay >= 0.0, "weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(OptimError::InvalidHyperParameter(
                "Nesterov momentum requires a momentum and zero dampening".into(),
            ));
        }
        Ok(())
    }
    fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("lr".into(), json::num(self.lr));
        m.insert("momentum".into(), json::num(self.momentum));
        m.insert("dampening".into(), json::num(self.dampening));
        m.insert("weight_decay".into(), json::num(self.weight_decay));
        m.insert("nesterov".into(), Value::Bool(self.nesterov));
        m.insert("maximize".into(), Value::Bool(self.maximize));
        m
    }
    fn from_json(m: &Map<String, Value>) -> Result<Self, OptimError> {
        Ok(SgdConfig {
            lr: json::f64_field(m, "lr")?,
            momentum: json::f64_field(m, "momentum")?,
            dampening: json::f64_field(m, "dampening")?,
            weight_decay: json::f64_field(m, "weight_decay")?,
            nesterov: json::bool_field(m, "nesterov")?,
            maximize: json::bool_field(m, "maximize")?,
        })
    }
}

/// Per-parameter SGD state: the momentum buffer, created from the first gradient.
pub(crate) struct SgdState {
    momentum_buffer: Option<Tensor>,
}

impl ParamState for SgdState {
    const NAMES: &'static [&'static str] = &["momentum_buffer"];
    fn step(&self) -> Option<f64> {
        None
    }
    fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        self.momentum_buffer
            .iter()
            .map(|t| ("momentum_buffer", t))
            .collect()
    }
    fn from_parts(
        _step: Option<f64>,
        parts: &mut BTreeMap<&'static str, Tensor>,
        _name: &dyn Fn(&str) -> String,
    ) -> Result<Self, OptimError> {
        Ok(SgdState {
            momentum_buffer: parts.remove("momentum_buffer"),
        })
    }
}

/// Stochastic gradient descent, `torch.optim.SGD`:
///
/// ```text
/// g = ∇ (+ weight_decay · p);  b = g on the first step, else momentum · b + (1 − dampening) · g
/// g = g + momentum · b (Nesterov) or b;  p −= lr · g
/// ```
pub struct Sgd {
    core: Core<SgdConfig, SgdState>,
}

optimizer_common!(Sgd, SgdConfig, "SGD");

impl Sgd {
    fn after_add(&mut self) {}

    fn update(&mut self) {
        self.core.for_each_with_grad_lr(|c, lr_t, p, grad, state| {
            let tracing = kiln_core::trace::is_tracing();
            if use_fused() && sgd_fused(c, p, grad, state) {
                return;
            }
            let mut g = signed_grad(grad, c.maximize);
            if c.weight_decay != 0.0 {
                g = add_scaled(&g, p, c.weight_decay);
            }
            if c.momentum != 0.0 {
                let st = state.get_or_insert(SgdState {
                    momentum_buffer: None,
                });
                if tracing && st.momentum_buffer.is_none() {
                    // A compiled step must be the same code on every call: start from a real
                    // zero buffer, so `m·0 + g` is the first step's `buf = g` (PyTorch's clone)
                    // and later calls run the general update. Dampening applies from the
                    // first step that way, which PyTorch skips, so it is refused.
                    if c.dampening != 0.0 {
                        panic!(
                            "SGD: momentum with dampening cannot be compiled before its first \
                             step; take one eager step first (shape {:?})",
                            p.shape()
                        );
                    }
                    st.momentum_buffer = Some(p.zeros_like());
                }
                let buf = match &st.momentum_buffer {
                    None => {
                        let b = no_grad(|| g.copy());
                        st.momentum_buffer = Some(b.clone());
                        b
                    }
                    Some(b) => {
                        b.mul_scalar_(c.momentum);
                        b.add_scaled_(&g, 1.0 - c.dampening);
                        b.clone()
                    }
                };
                g = if c.nesterov {
                    add_scaled(&g, &buf, c.momentum)
                } else {
                    buf
                };
            }
            // The group's lr tensor (equal to `c.lr`): a compiled step reads it at each call.
            p.sub_(&(&g * &lr_t.to_dtype(p.dtype())));
        });
    }
}

/// The fused single-pass update; `false` (nothing changed) when the kernel declines.
fn sgd_fused(c: &SgdConfig, p: &Tensor, grad: &Tensor, state: &mut Option<SgdState>) -> bool {
    let step = SgdStep {
        lr: c.lr,
        momentum: c.momentum,
        dampening: c.dampening,
        weight_decay: c.weight_decay,
        nesterov: c.nesterov,
        maximize: c.maximize,
    };
    if c.momentum == 0.0 {
        return fused_optim::sgd_step(p, grad, None, false, &step);
    }
    let existing = state.as_ref().and_then(|s| s.momentum_buffer.clone());
    let first = existing.is_none();
    // The first step fills a fresh buffer with the gradient (PyTorch's `clone(grad)`).
    let buf = existing.unwrap_or_else(|| p.zeros_like());
    if !fused_optim::sgd_step(p, grad, Some(&buf), first, &step) {
        return false;
    }
    state
        .get_or_insert(SgdState {
            momentum_buffer: None,
        })
        .momentum_buffer = Some(buf);
    true
}
