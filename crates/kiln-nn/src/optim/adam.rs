//! Adam and AdamW, with AMSGrad (`torch.optim.Adam`, `torch.optim.AdamW`).

use super::core::{
    add_scaled, addcmul_, check, lerp_, lit, lr_times, need_step, optimizer_common, signed_grad,
    take, use_fused, use_traced_kernel, Core, GroupOptions, ParamState,
};
use super::json;
use super::OptimError;
use kiln_core::ops::fused_optim::{self, AdamStep};
use kiln_core::ops::optim::{self, AdamHyper};
use kiln_core::{DType, Tensor};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Options of one Adam parameter group; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay rates of the first and second moment averages (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability (default 1e-8).
    pub eps: f64,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Use the maximum of past second moments (AMSGrad).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

impl Default for AdamConfig {
    fn default() -> AdamConfig {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// Options of one AdamW parameter group; the defaults are PyTorch's (weight decay 1e-2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay rates of the first and second moment averages (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay: `p *= 1 − lr · weight_decay` before each update (default 1e-2).
    pub weight_decay: f64,
    /// Use the maximum of past second moments (AMSGrad).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

impl Default for AdamWConfig {
    fn default() -> AdamWConfig {
        AdamWConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
            maximize: false,
        }
    }
}

macro_rules! adam_options {
    ($cfg:ident) => {
        impl GroupOptions for $cfg {
            fn lr(&self) -> f64 {
                self.lr
            }
            fn set_lr(&mut self, lr: f64) {
                self.lr = lr;
            }
            fn momentum(&self) -> Option<f64> {
                Some(self.betas.0)
            }
            fn set_momentum(&mut self, momentum: f64) {
                self.betas.0 = momentum;
            }
            fn validate(&self) -> Result<(), OptimError> {
                check(self.lr >= 0.0, "learning rate", self.lr)?;
                check(self.eps >= 0.0, "epsilon", self.eps)?;
                check(
                    (0.0..1.0).contains(&self.betas.0),
                    "beta parameter at index 0",
                    self.betas.0,
                )?;
                check(
                    (0.0..1.0).contains(&self.betas.1),
                    "beta parameter at index 1",
                    self.betas.1,
                )?;
                check(self.weight_decay >= 0.0, "weight_decay", self.weight_decay)?;
                Ok(())
            }
            fn to_json(&self) -> Map<String, Value> {
                let mut m = Map::new();
                m.insert("lr".into(), json::num(self.lr));
                m.insert("betas".into(), json::nums(&[self.betas.0, self.betas.1]));
                m.insert("eps".into(), json::num(self.eps));
                m.insert("weight_decay".into(), json::num(self.weight_decay));
                m.insert("amsgrad".into(), Value::Bool(self.amsgrad));
                m.insert("maximize".into(), Value::Bool(self.maximize));
                m
            }
            fn from_json(m: &Map<String, Value>) -> Result<Self, OptimError> {
                Ok($cfg {
                    lr: json::f64_field(m, "lr")?,
                    betas: json::pair_field(m, "betas")?,
                    eps: json::f64_field(m, "eps")?,
                    weight_decay: json::f64_field(m, "weight_decay")?,
                    amsgrad: json::bool_field(m, "amsgrad")?,
                    maximize: json::bool_field(m, "maximize")?,
                })
            }
        }
    };
}

adam_options!(AdamConfig);
adam_options!(AdamWConfig);

/// Per-parameter Adam/AdamW state.
pub(crate) struct AdamState {
    /// The step count as a 0-d f64 tensor (like PyTorch's): a compiled step reads and
    /// increments it at each call, so one representation serves eager and compiled steps.
    step: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Option<Tensor>,
}

impl ParamState for AdamState {
    const NAMES: &'static [&'static str] = &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];
    fn step(&self) -> Option<f64> {
        Some(self.step.item::<f64>())
    }
    fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        let mut v = vec![("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)];
        if let Some(m) = &self.max_exp_avg_sq {
            v.push(("max_exp_avg_sq", m));
        }
        v
    }
    fn from_parts(
        step: Option<f64>,
        parts: &mut BTreeMap<&'static str, Tensor>,
        name: &dyn Fn(&str) -> String,
    ) -> Result<Self, OptimError> {
        Ok(AdamState {
            step: Tensor::scalar(need_step(step, name)?, DType::F64),
            exp_avg: take(parts, "exp_avg", name)?,
            exp_avg_sq: take(parts, "exp_avg_sq", name)?,
            max_exp_avg_sq: parts.remove("max_exp_avg_sq"),
        })
    }
}

/// The options both variants share, plus which weight decay applies.
struct Hyper {
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
}

impl Hyper {
    /// The fixed hyper-parameters as the fused kernel and the graph op take them.
    fn kernel(&self) -> AdamHyper {
        AdamHyper {
            beta1: self.betas.0,
            beta2: self.betas.1,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
            maximize: self.maximize,
            amsgrad: self.amsgrad,
        }
    }
}

/// PyTorch's `_single_tensor_adam` for one parameter: the fused kernel in eager mode, else
/// (tracing, or a case the kernel declines) the same formulas as tensor ops.
fn adam_update(h: &Hyper, lr_t: &Tensor, p: &Tensor, grad: &Tensor, state: &mut Option<AdamState>) {
    let st = state.get_or_insert_with(|| AdamState {
        step: Tensor::scalar(0.0, DType::F64),
        exp_avg: p.zeros_like(),
        exp_avg_sq: p.zeros_like(),
        max_exp_avg_sq: h.amsgrad.then(|| p.zeros_like()),
    });
    if h.amsgrad && st.max_exp_avg_sq.is_none() {
        st.max_exp_avg_sq = Some(p.zeros_like());
    }
    if use_fused() && adam_fused(h, p, grad, st) {
        return;
    }
    if use_traced_kernel() && adam_traced(h, lr_t, p, grad, st) {
        return;
    }
    adam_composite(h, lr_t, p, grad, st);
}

/// The fused single-pass update; `false` (nothing changed) when the kernel declines.
fn adam_fused(h: &Hyper, p: &Tensor, grad: &Tensor, st: &AdamState) -> bool {
    let step = st.step.item::<f64>() + 1.0;
    let settings = AdamStep {
        hyper: h.kernel(),
        lr: h.lr,
        step,
    };
    let done = fused_optim::adam_step(
        p,
        grad,
        &st.exp_avg,
        &st.exp_avg_sq,
        st.max_exp_avg_sq.as_ref().filter(|_| h.amsgrad),
        &settings,
    );
    if done {
        st.step.fill_(step);
    }
    done
}

/// While tracing: the update as one graph op running the fused kernel at each call
/// (`kiln_core::ops::optim`); `false` (nothing recorded) when the op does not apply.
fn adam_traced(h: &Hyper, lr_t: &Tensor, p: &Tensor, grad: &Tensor, st: &AdamState) -> bool {
    optim::trace_adam(
        p,
        grad,
        &st.exp_avg,
        &st.exp_avg_sq,
        st.max_exp_avg_sq.as_ref().filter(|_| h.amsgrad),
        &st.step,
        lr_t,
        &h.kernel(),
    )
}

/// The update as tensor ops, in PyTorch's order. The step count and the learning rate are
/// tensors, so a compiled step recomputes the bias corrections and step size at each call
/// instead of freezing those of the step it was traced on.
fn adam_composite(h: &Hyper, lr_t: &Tensor, p: &Tensor, grad: &Tensor, st: &AdamState) {
    let (beta1, beta2) = h.betas;
    let dt = p.dtype();
    st.step.add_scalar_(1.0);
    let mut g = signed_grad(grad, h.maximize);
    if h.weight_decay != 0.0 {
        if h.decoupled {
            p.mul_(
                &lr_times(lr_t, -h.weight_decay, DType::F64)
                    .add_scalar(1.0)
                    .to_dtype(dt),
            );
        } else {
            g = add_scaled(&g, p, h.weight_decay);
        }
    }
    lerp_(&st.exp_avg, &g, 1.0 - beta1);
    st.exp_avg_sq.mul_scalar_(beta2);
    addcmul_(&st.exp_avg_sq, &g, &g, 1.0 - beta2);
    // 1 − βᵗ for the current t, on 0-d f64 tensors.
    let correction = |beta: f64| lit(beta, DType::F64).pow(&st.step).affine(-1.0, 1.0);
    let step_size = (lr_t / &correction(beta1)).to_dtype(dt);
    let bias_correction2_sqrt = correction(beta2).sqrt().to_dtype(dt);
    let second = match &st.max_exp_avg_sq {
        Some(m) if h.amsgrad => {
            m.copy_(&m.maximum(&st.exp_avg_sq));
            m
        }
        _ => &st.exp_avg_sq,
    };
    let denom = (&second.sqrt() / &bias_correction2_sqrt).add_scalar(h.eps);
    p.sub_(&(&(&st.exp_avg * &step_size) / &denom));
}

/// Adam, `torch.optim.Adam`:
///
/// ```text
/// g = ∇ (+ weight_decay · p);  m = lerp(m, g, 1 − β₁);  v = β₂ · v + (1 − β₂) · g²
/// p −= lr / (1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + eps)      (v̂ = max of all v with AMSGrad)
/// ```
pub struct Adam {
    core: Core<AdamConfig, AdamState>,
}

optimizer_common!(Adam, AdamConfig, "Adam");

impl Adam {
    fn after_add(&mut self) {}

    fn update(&mut self) {
        self.core.for_each_with_grad_lr(|c, lr_t, p, grad, state| {
            let h = Hyper {
                lr: c.lr,
                betas: c.betas,
                eps: c.eps,
                weight_decay: c.weight_decay,
                amsgrad: c.amsgrad,
                maximize: c.maximize,
                decoupled: false,
            };
            adam_update(&h, lr_t, p, grad, state);
        });
    }
}

/// AdamW, `torch.optim.AdamW`: Adam with decoupled weight decay (`p *= 1 − lr · weight_decay`
/// before the Adam update, instead of adding `weight_decay · p` to the gradient).
pub struct AdamW {
    core: Core<AdamWConfig, AdamState>,
}

optimizer_common!(AdamW, AdamWConfig, "AdamW");

impl AdamW {
    fn after_add(&mut self) {}

    fn update(&mut self) {
        self.core.for_each_with_grad_lr(|c, lr_t, p, grad, state| {
            let h = Hyper {
                lr: c.lr,
                betas: c.betas,
                eps: c.eps,
                weight_decay: c.weight_decay,
                amsgrad: c.amsgrad,
                maximize: c.maximize,
                decoupled: true,
            };
            adam_update(&h, lr_t, p, grad, state);
        });
    }
}
