//! CosineAnnealingLR.

use super::{rule_initial_step, rule_scheduler, Rule, SchedCore};
use crate::optim::json;
use crate::optim::{OptimError, Optimizer};
use serde_json::{Map, Value};
use std::f64::consts::PI;

/// Cosine annealing from the base learning rate to `eta_min` over `t_max` epochs, then back up
/// (no restarts), in PyTorch's recursive form (`torch.optim.lr_scheduler.CosineAnnealingLR`):
///
/// ```text
/// lr ← eta_min + (lr − eta_min) · (1 + cos(π·t/T)) / (1 + cos(π·(t−1)/T))
/// ```
#[derive(Clone, Debug)]
pub struct CosineAnnealingLR {
    core: SchedCore,
    t_max: i64,
    eta_min: f64,
}

impl CosineAnnealingLR {
    /// Attaches to `opt` and performs the initial step. Panics unless `t_max > 0`.
    pub fn new(opt: &mut dyn Optimizer, t_max: usize, eta_min: f64) -> CosineAnnealingLR {
        assert!(t_max > 0, "CosineAnnealingLR: T_max must be positive");
        let mut s = CosineAnnealingLR {
            core: SchedCore::attach(opt),
            t_max: t_max as i64,
            eta_min,
        };
        rule_initial_step(&mut s, opt);
        s
    }
}

impl Rule for CosineAnnealingLR {
    const KIND: &'static str = "CosineAnnealingLR";
    fn core(&self) -> &SchedCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut SchedCore {
        &mut self.core
    }
    fn get_lr(&mut self, opt: &mut dyn Optimizer) -> Vec<f64> {
        let e = self.core.last_epoch;
        let (t, eta_min) = (self.t_max, self.eta_min);
        if self.core.is_initial {
            return opt.lrs();
        }
        if self.core.step_count == 1 && e > 0 {
            return self
                .core
                .base_lrs
                .iter()
                .map(|b| eta_min + (b - eta_min) * (1.0 + (e as f64 * PI / t as f64).cos()) / 2.0)
                .collect();
        }
        if (e - 1 - t).rem_euclid(2 * t) == 0 {
            return opt
                .lrs()
                .iter()
                .zip(&self.core.base_lrs)
                .map(|(lr, b)| lr + (b - eta_min) * (1.0 - (PI / t as f64).cos()) / 2.0)
                .collect();
        }
        let ratio = (1.0 + (PI * e as f64 / t as f64).cos())
            / (1.0 + (PI * (e - 1) as f64 / t as f64).cos());
        opt.lrs()
            .iter()
            .map(|lr| ratio * (lr - eta_min) + eta_min)
            .collect()
    }
    fn closed_form(&self) -> Option<Vec<f64>> {
        let (e, t, eta_min) = (self.core.last_epoch as f64, self.t_max as f64, self.eta_min);
        Some(
            self.core
                .base_lrs
                .iter()
                .map(|b| eta_min + (b - eta_min) * (1.0 + (PI * e / t).cos()) / 2.0)
                .collect(),
        )
    }
    fn options_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("T_max".into(), Value::from(self.t_max));
        m.insert("eta_min".into(), json::num(self.eta_min));
        m
    }
    fn parse_options(&self, m: &Map<String, Value>) -> Result<Self, OptimError> {
        let t_max = json::i64_field(m, "T_max")?;
        if t_max <= 0 {
            return Err(OptimError::Malformed(
                "CosineAnnealingLR T_max must be positive".into(),
            ));
        }
        Ok(CosineAnnealingLR {
            core: self.core.clone(),
            t_max,
            eta_min: json::f64_field(m, "eta_min")?,
        })
    }
}

rule_scheduler!(CosineAnnealingLR);
