//! Step decays: StepLR, MultiStepLR, ExponentialLR.

use super::{bisect_right, rule_initial_step, rule_scheduler, Rule, SchedCore};
use crate::optim::json;
use crate::optim::{OptimError, Optimizer};
use serde_json::{Map, Value};

/// Multiplies the learning rate by `gamma` every `step_size` epochs
/// (`torch.optim.lr_scheduler.StepLR`).
#[derive(Clone, Debug)]
pub struct StepLR {
    core: SchedCore,
    step_size: i64,
    gamma: f64,
}

impl StepLR {
    /// Attaches to `opt` and performs the initial step. Panics unless `step_size > 0`.
    pub fn new(opt: &mut dyn Optimizer, step_size: usize, gamma: f64) -> StepLR {
        assert!(step_size > 0, "StepLR: step_size must be positive");
        let mut s = StepLR {
            core: SchedCore::attach(opt),
            step_size: step_size as i64,
            gamma,
        };
        rule_initial_step(&mut s, opt);
        s
    }
}

impl Rule for StepLR {
    const KIND: &'static str = "StepLR";
    fn core(&self) -> &SchedCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut SchedCore {
        &mut self.core
    }
    fn get_lr(&mut self, opt: &mut dyn Optimizer) -> Vec<f64> {
        let e = self.core.last_epoch;
        if e == 0 || e.rem_euclid(self.step_size) != 0 {
            return opt.lrs();
        }
        opt.lrs().iter().map(|lr| lr * self.gamma).collect()
    }
    fn closed_form(&self) -> Option<Vec<f64>> {
        let k = self.core.last_epoch.div_euclid(self.step_size) as f64;
        Some(
            self.core
                .base_lrs
                .iter()
                .map(|b| b * self.gamma.powf(k))
                .collect(),
        )
    }
    fn options_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("step_size".into(), Value::from(self.step_size));
        m.insert("gamma".into(), json::num(self.gamma));
        m
    }
    fn parse_options(&self, m: &Map<String, Value>) -> Result<Self, OptimError> {
        let step_size = json::i64_field(m, "step_size")?;
        if step_size <= 0 {
            return Err(OptimError::Malformed(
                "StepLR step_size must be positive".into(),
            ));
        }
        Ok(StepLR {
            core: self.core.clone(),
            step_size,
            gamma: json::f64_field(m, "gamma")?,
        })
    }
}

rule_scheduler!(StepLR);

/// Multiplies the learning rate by `gamma` at each milestone epoch; a milestone listed `n`
/// times multiplies by `gammaⁿ` (`torch.optim.lr_scheduler.MultiStepLR`).
#[derive(Clone, Debug)]
pub struct MultiStepLR {
    core: SchedCore,
    milestones: Vec<i64>,
    gamma: f64,
}

impl MultiStepLR {
    /// Attaches to `opt` and performs the initial step.
    pub fn new(opt: &mut dyn Optimizer, milestones: &[usize], gamma: f64) -> MultiStepLR {
        let mut milestones: Vec<i64> = milestones.iter().map(|&m| m as i64).collect();
        milestones.sort_unstable();
        let mut s = MultiStepLR {
            core: SchedCore::attach(opt),
            milestones,
            gamma,
        };
        rule_initial_step(&mut s, opt);
        s
    }
}

impl Rule for MultiStepLR {
    const KIND: &'static str = "MultiStepLR";
    fn core(&self) -> &SchedCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut SchedCore {
        &mut self.core
    }
    fn get_lr(&mut self, opt: &mut dyn Optimizer) -> Vec<f64> {
        let e = self.core.last_epoch;
        let count = self.milestones.iter().filter(|&&m| m == e).count();
        if count == 0 {
            return opt.lrs();
        }
        opt.lrs()
            .iter()
            .map(|lr| lr * self.gamma.powf(count as f64))
            .collect()
    }
    fn closed_form(&self) -> Option<Vec<f64>> {
        let k = bisect_right(&self.milestones, self.core.last_epoch) as f64;
        Some(
            self.core
                .base_lrs
                .iter()
                .map(|b| b * self.gamma.powf(k))
                .collect(),
        )
    }
    fn options_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("milestones".into(), Value::from(self.milestones.clone()));
        m.insert("gamma".into(), json::num(self.gamma));
        m
    }
    fn parse_options(&self, m: &Map<String, Value>) -> Result<Self, OptimError> {
        let mut milestones = json::i64s_field(m, "milestones")?;
        milestones.sort_unstable();
        Ok(MultiStepLR {
            core: self.core.clone(),
            milestones,
            gamma: json::f64_field(m, "gamma")?,
        })
    }
}

rule_scheduler!(MultiStepLR);

/// Multiplies the learning rate by `gamma` every epoch
/// (`torch.optim.lr_scheduler.ExponentialLR`).
#[derive(Clone, Debug)]
pub struct ExponentialLR {
    core: SchedCore,
    gamma: f64,
}

impl ExponentialLR {
    /// Attaches to `opt` and performs the initial step.
    pub fn new(opt: &mut dyn Optimizer, gamma: f64) -> ExponentialLR {
        let mut s = ExponentialLR {
            core: SchedCore::attach(opt),
            gamma,
        };
        rule_initial_step(&mut s, opt);
        s
    }
}

impl Rule for ExponentialLR {
    const KIND: &'static str = "ExponentialLR";
    fn core(&self) -> &SchedCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut SchedCore {
        &mut self.core
    }
    fn get_lr(&mut self, opt: &mut dyn Optimizer) -> Vec<f64> {
        if self.core.is_initial {
            return opt.lrs();
        }
        opt.lrs().iter().map(|lr| lr * self.gamma).collect()
    }
    fn closed_form(&self) -> Option<Vec<f64>> {
        let e = self.core.last_epoch as f64;
        Some(
            self.core
                .base_lrs
                .iter()
                .map(|b| b * self.gamma.powf(e))
                .collect(),
        )
    }
    fn options_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("gamma".into(), json::num(self.gamma));
        m
    }
    fn parse_options(&self, m: &Map<String, Value>) -> Result<Self, OptimError> {
        Ok(ExponentialLR {
            core: self.core.clone(),
            gamma: json::f64_field(m, "gamma")?,
        })
    }
}

rule_scheduler!(ExponentialLR);
