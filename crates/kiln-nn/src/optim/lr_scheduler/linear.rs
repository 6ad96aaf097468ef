//! LinearLR: linear warmup (or decay) of a multiplicative factor.

use super::{rule_initial_step, rule_scheduler, Rule, SchedCore};
use crate::optim::json;
use crate::optim::{OptimError, Optimizer};
use serde_json::{Map, Value};

/// Scales the learning rate by a factor that moves linearly from `start_factor` to
/// `end_factor` over `total_iters` steps, then stays (`torch.optim.lr_scheduler.LinearLR`).
/// With `start_factor < 1` and `end_factor = 1` this is linear warmup; run it before another
/// schedule with [`SequentialLR`](super::SequentialLR) or [`warmup_then`](super::warmup_then).
#[derive(Clone, Debug)]
pub struct LinearLR {
    core: SchedCore,
    start_factor: f64,
    end_factor: f64,
    total_iters: i64,
}

impl LinearLR {
    /// Attaches to `opt` and performs the initial step (the learning rate becomes
    /// `lr · start_factor`). Panics unless `0 < start_factor ≤ 1` and `0 ≤ end_factor ≤ 1`
    /// (PyTorch's limits).
    pub fn new(
        opt: &mut dyn Optimizer,
        start_factor: f64,
        end_factor: f64,
        total_iters: usize,
    ) -> LinearLR {
        assert!(
            start_factor > 0.0 && start_factor <= 1.0,
            "LinearLR: starting multiplicative factor expected to be greater than 0 and less or equal to 1, got {start_factor}"
        );
        assert!(
            (0.0..=1.0).contains(&end_factor),
            "LinearLR: ending multiplicative factor expected to be between 0 and 1, got {end_factor}"
        );
        let mut s = LinearLR {
            core: SchedCore::attach(opt),
            start_factor,
            end_factor,
            total_iters: total_iters as i64,
        };
        rule_initial_step(&mut s, opt);
        s
    }

    /// Linear warmup: from `lr · start_factor` to `lr` over `warmup_iters` steps.
    pub fn warmup(opt: &mut dyn Optimizer, start_factor: f64, warmup_iters: usize) -> LinearLR {
        LinearLR::new(opt, start_factor, 1.0, warmup_iters)
    }
}

impl Rule for LinearLR {
    const KIND: &'static str = "LinearLR";
    fn core(&self) -> &SchedCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut SchedCore {
        &mut self.core
    }
    fn get_lr(&mut self, opt: &mut dyn Optimizer) -> Vec<f64> {
        let e = self.core.last_epoch;
        if e == 0 {
            return opt.lrs().iter().map(|lr| lr * self.start_factor).collect();
        }
        if self.core.is_initial || e > self.total_iters {
            return opt.lrs();
        }
        let (s, t) = (self.start_factor, self.end_factor);
        let factor = 1.0 + (t - s) / (self.total_iters as f64 * s + (e - 1) as f64 * (t - s));
        opt.lrs().iter().map(|lr| lr * factor).collect()
    }
    fn closed_form(&self) -> Option<Vec<f64>> {
        let (s, t) = (self.start_factor, self.end_factor);
        let done = self.total_iters.min(self.core.last_epoch) as f64;
        Some(
            self.core
                .base_lrs
                .iter()
                .map(|b| b * (s + (t - s) * done / self.total_iters as f64))
                .collect(),
        )
    }
    fn options_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("start_factor".into(), json::num(self.start_factor));
        m.insert("end_factor".into(), json::num(self.end_factor));
        m.insert("total_iters".into(), Value::from(self.total_iters));
        m
    }
    fn parse_options(&self, m: &Map<String, Value>) -> Result<Self, OptimError> {
        Ok(LinearLR {
            core: self.core.clone(),
            start_factor: json::f64_field(m, "start_factor")?,
            end_factor: json::f64_field(m, "end_factor")?,
            total_iters: json::i64_field(m, "total_iters")?,
        })
    }
}

rule_scheduler!(LinearLR);
