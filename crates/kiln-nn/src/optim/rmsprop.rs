//! RMSprop, optionally centered and with momentum (`torch.optim.RMSprop`).

use super::core::{
    add_scaled, addcdiv_, addcmul_, check, lerp_, need_step, optimizer_common, signed_grad, take,
    use_fused, Core, GroupOptions, ParamState,
};
use super::json;
use super::OptimError;
use kiln_core::ops::fused_optim::{self, RmsPropStep};
use kiln_core::Tensor;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Options of one RMSprop parameter group; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Smoothing constant of the squared-gradient average (default 0.99).
    pub alpha: f64,
    /// Added to the denominator for numerical stability (default 1e-8).
    pub eps: f64,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Momentum factor (default 0).
    pub momentum: f64,
    /// Normalize by the estimated variance instead of the raw second moment.
    pub centered: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> RmsPropConfig {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

impl GroupOptions for RmsPropConfig {
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
        check(self.eps >= 0.0, "epsilon", self.eps)?;
        check(self.momentum >= 0.0, "momentum", self.momentum)?;
        check(self.weight_decay >= 0.0, "weight_decay", self.weight_decay)?;
        check(self.alpha >= 0.0, "alpha", self.alpha)?;
        Ok(())
    }
    fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("lr".into(), json::num(self.lr));
        m.insert("alpha".into(), json::num(self.alpha));
        m.insert("eps".into(), json::num(self.eps));
        m.insert("weight_decay".into(), json::num(self.weight_decay));
        m.insert("momentum".into(), json::num(self.momentum));
        m.insert("centered".into(), Value::Bool(self.centered));
        m.insert("maximize".into(), Value::Bool(self.maximize));
        m
    }
    fn from_json(m: &Map<String, Value>) -> Result<Self, OptimError> {
        Ok(RmsPropConfig {
            lr: json::f64_field(m, "lr")?,
            alpha: json::f64_field(m, "alpha")?,
            eps: json::f64_field(m, "eps")?,
            weight_decay: json::f64_field(m, "weight_decay")?,
            momentum: json::f64_field(m, "momentum")?,
            centered: json::bool_field(m, "centered")?,
            maximize: json::bool_field(m, "maximize")?,
        })
    }
}

/// Per-parameter RMSprop state.
pub(crate) struct RmsPropState {
    step: f64,
    square_avg: Tensor,
    momentum_buffer: Option<Tensor>,
    grad_avg: Option<Tensor>,
}

impl ParamState for RmsPropState {
    const NAMES: &'static [&'static str] = &["square_avg", "momentum_buffer", "grad_avg"];
    fn step(&self) -> Option<f64> {
        Some(self.step)
    }
    fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        let mut v = vec![("square_avg", &self.square_avg)];
        if let Some(b) = &self.momentum_buffer {
            v.push(("momentum_buffer", b));
        }
        if let Some(g) = &self.grad_avg {
            v.push(("grad_avg", g));
        }
        v
    }
    fn from_parts(
        step: Option<f64>,
        parts: &mut BTreeMap<&'static str, Tensor>,
        name: &dyn Fn(&str) -> String,
    ) -> Result<Self, OptimError> {
        Ok(RmsPropState {
            step: need_step(step, name)?,
            square_avg: take(parts, "square_avg", name)?,
            momentum_buffer: parts.remove("momentum_buffer"),
            grad_avg: parts.remove("grad_avg"),
        })
    }
}

/// RMSprop, `torch.optim.RMSprop`:
///
/// ```text
/// g = ∇ (+ weight_decay · p);  v = α · v + (1 − α) · g²
/// avg = √(v − ḡ²) with ḡ = lerp(ḡ, g, 1 − α) when centered, else √v;  avg += eps
/// with momentum: b = momentum · b + g / avg;  p −= lr · b      else p −= lr · g / avg
/// ```
///
/// Raising `momentum` from 0 or turning `centered` on mid-training starts the missing buffer
/// at zero (PyTorch fails with a missing key there).
pub struct RmsProp {
    core: Core<RmsPropConfig, RmsPropState>,
}

optimizer_common!(RmsProp, RmsPropConfig, "RMSprop");

impl RmsProp {
    fn after_add(&mut self) {}

    fn update(&mut self) {
        self.core.for_each_with_grad(|c, p, grad, state| {
            let st = state.get_or_insert_with(|| RmsPropState {
                step: 0.0,
                square_avg: p.zeros_like(),
                momentum_buffer: (c.momentum > 0.0).then(|| p.zeros_like()),
                grad_avg: c.centered.then(|| p.zeros_like()),
            });
            st.step += 1.0;
            if use_fused() {
                // Buffers switched on mid-training start at zero, as in the composite path.
                if c.momentum > 0.0 && st.momentum_buffer.is_none() {
                    st.momentum_buffer = Some(p.zeros_like());
                }
                if c.centered && st.grad_avg.is_none() {
                    st.grad_avg = Some(p.zeros_like());
                }
                let step = RmsPropStep {
                    lr: c.lr,
                    alpha: c.alpha,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                    momentum: c.momentum,
                    maximize: c.maximize,
                };
                let buf = st.momentum_buffer.as_ref().filter(|_| c.momentum > 0.0);
                let grad_avg = st.grad_avg.as_ref().filter(|_| c.centered);
                if fused_optim::rmsprop_step(p, grad, &st.square_avg, buf, grad_avg, &step) {
                    return;
                }
            }
            let mut g = signed_grad(grad, c.maximize);
            if c.weight_decay != 0.0 {
                g = add_scaled(&g, p, c.weight_decay);
            }
            st.square_avg.mul_scalar_(c.alpha);
            addcmul_(&st.square_avg, &g, &g, 1.0 - c.alpha);
            let avg = if c.centered {
                let ga = st.grad_avg.get_or_insert_with(|| p.zeros_like());
                lerp_(ga, &g, 1.0 - c.alpha);
                // square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
                (&st.square_avg + &(&ga.neg() * &*ga)).sqrt()
            } else {
                st.square_avg.sqrt()
            };
            let avg = avg.add_scalar(c.eps);
            if c.momentum > 0.0 {
                let buf = st.momentum_buffer.get_or_insert_with(|| p.zeros_like());
                buf.mul_scalar_(c.momentum);
                addcdiv_(buf, &g, &avg, 1.0);
                p.add_scaled_(buf, -c.lr);
            } else {
                addcdiv_(p, &g, &avg, -c.lr);
            }
        });
    }
}
