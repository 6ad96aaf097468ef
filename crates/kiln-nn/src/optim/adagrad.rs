//! Adagrad (`torch.optim.Adagrad`).

use super::core::{
    add_scaled, addcdiv_, addcmul_, check, need_step, optimizer_common, signed_grad, take,
    use_fused, Core, GroupOptions, ParamState,
};
use super::json;
use super::OptimError;
use kiln_core::ops::fused_optim::{self, AdagradStep};
use kiln_core::Tensor;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Options of one Adagrad parameter group; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Learning-rate decay: step t uses `lr / (1 + (t − 1) · lr_decay)` (default 0).
    pub lr_decay: f64,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Starting value of the squared-gradient sum (default 0).
    pub initial_accumulator_value: f64,
    /// Added to the denominator for numerical stability (default 1e-10).
    pub eps: f64,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> AdagradConfig {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

impl GroupOptions for AdagradConfig {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn momentum(&self) -> Option<f64> {
        None
    }
    fn set_momentum(&mut self, _momentum: f64) {}
    fn validate(&self) -> Result<(), OptimError> {
        check(self.lr >= 0.0, "learning rate", self.lr)?;
        check(self.lr_decay >= 0.0, "lr_decay", self.lr_decay)?;
        check(self.weight_decay >= 0.0, "weight_decay", self.weight_decay)?;
        check(
            self.initial_accumulator_value >= 0.0,
            "initial_accumulator_value",
            self.initial_accumulator_value,
        )?;
        check(self.eps >= 0.0, "epsilon", self.eps)?;
        Ok(())
    }
    fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("lr".into(), json::num(self.lr));
        m.insert("lr_decay".into(), json::num(self.lr_decay));
        m.insert("weight_decay".into(), json::num(self.weight_decay));
        m.insert(
            "initial_accumulator_value".into(),
            json::num(self.initial_accumulator_value),
        );
        m.insert("eps".into(), json::num(self.eps));
        m.insert("maximize".into(), Value::Bool(self.maximize));
        m
    }
    fn from_json(m: &Map<String, Value>) -> Result<Self, OptimError> {
        Ok(AdagradConfig {
            lr: json::f64_field(m, "lr")?,
            lr_decay: json::f64_field(m, "lr_decay")?,
            weight_decay: json::f64_field(m, "weight_decay")?,
            initial_accumulator_value: json::f64_field(m, "initial_accumulator_value")?,
            eps: json::f64_field(m, "eps")?,
            maximize: json::bool_field(m, "maximize")?,
        })
    }
}

/// Per-parameter Adagrad state (created for every parameter up front, like PyTorch).
pub(crate) struct AdagradState {
    step: f64,
    sum: Tensor,
}

impl ParamState for AdagradState {
    const NAMES: &'static [&'static str] = &["sum"];
    fn step(&self) -> Option<f64> {
        Some(self.step)
    }
    fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("sum", &self.sum)]
    }
    fn from_parts(
        step: Option<f64>,
        parts: &mut BTreeMap<&'static str, Tensor>,
        name: &dyn Fn(&str) -> String,
    ) -> Result<Self, OptimError> {
        Ok(AdagradState {
            step: need_step(step, name)?,
            sum: take(parts, "sum", name)?,
        })
    }
}

/// Adagrad, `torch.optim.Adagrad`:
///
/// ```text
/// g = ∇ (+ weight_decay · p);  clr = lr / (1 + (t − 1) · lr_decay)
/// s += g²;  p −= clr · g / (√s + eps)
/// ```
pub struct Adagrad {
    core: Core<AdagradConfig, AdagradState>,
}

optimizer_common!(Adagrad, AdagradConfig, "Adagrad");

impl Adagrad {
    fn after_add(&mut self) {
        self.core.init_all(|c, p| AdagradState {
            step: 0.0,
            sum: p.full_like(c.initial_accumulator_value),
        });
    }

    fn update(&mut self) {
        self.core.for_each_with_grad(|c, p, grad, state| {
            let st = state.get_or_insert_with(|| AdagradState {
                step: 0.0,
                sum: p.full_like(c.initial_accumulator_value),
            });
            st.step += 1.0;
            let clr = c.lr / (1.0 + (st.step - 1.0) * c.lr_decay);
            if use_fused() {
                let step = AdagradStep {
                    clr,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                    maximize: c.maximize,
                };
                if fused_optim::adagrad_step(p, grad, &st.sum, &step) {
                    return;
                }
            }
            let mut g = signed_grad(grad, c.maximize);
            if c.weight_decay != 0.0 {
                g = add_scaled(&g, p, c.weight_decay);
            }
            addcmul_(&st.sum, &g, &g, 1.0);
            let std = st.sum.sqrt().add_scalar(c.eps);
            addcdiv_(p, &g, &std, -clr);
        });
    }
}
