//! OneCycleLR: the 1cycle policy, cycling momentum (or Adam's β₁) inversely to the learning
//! rate.

use super::{rule_initial_step, rule_scheduler, Rule, SchedCore};
use crate::optim::json;
use crate::optim::{OptimError, Optimizer};
use serde_json::{Map, Value};
use std::f64::consts::PI;

/// How OneCycleLR interpolates within a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnealStrategy {
    /// Cosine annealing (PyTorch's default `"cos"`).
    Cos,
    /// Linear interpolation (`"linear"`).
    Linear,
}

impl AnnealStrategy {
    fn apply(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            AnnealStrategy::Cos => {
                let cos_out = (PI * pct).cos() + 1.0;
                end + (start - end) / 2.0 * cos_out
            }
            AnnealStrategy::Linear => (end - start) * pct + start,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AnnealStrategy::Cos => "cos",
            AnnealStrategy::Linear => "linear",
        }
    }
}

/// Options of [`OneCycleLR`]; [`OneCycleConfig::new`] fills in PyTorch's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycleConfig {
    /// Peak learning rate: one value for every group, or one per group.
    pub max_lr: Vec<f64>,
    /// Number of steps in the cycle (`epochs · steps_per_epoch`).
    pub total_steps: usize,
    /// Fraction of the cycle spent increasing the learning rate (default 0.3).
    pub pct_start: f64,
    /// Interpolation within phases (default cosine).
    pub anneal_strategy: AnnealStrategy,
    /// Cycle momentum / β₁ inversely to the learning rate (default true).
    pub cycle_momentum: bool,
    /// Momentum at the learning-rate peak (default 0.85).
    pub base_momentum: f64,
    /// Momentum at the start and end of the cycle (default 0.95).
    pub max_momentum: f64,
    /// Starting learning rate = `max_lr / div_factor` (default 25).
    pub div_factor: f64,
    /// Final learning rate = starting learning rate / `final_div_factor` (default 1e4).
    pub final_div_factor: f64,
    /// Three phases (up, down to the start, annihilate) instead of two (default false).
    pub three_phase: bool,
}

impl OneCycleConfig {
    /// PyTorch's defaults for the given peak learning rate and cycle length.
    pub fn new(max_lr: f64, total_steps: usize) -> OneCycleConfig {
        OneCycleConfig {
            max_lr: vec![max_lr],
            total_steps,
            pct_start: 0.3,
            anneal_strategy: AnnealStrategy::Cos,
            cycle_momentum: true,
            base_momentum: 0.85,
            max_momentum: 0.95,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Lr {
    Initial,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug)]
enum Mom {
    Max,
    Base,
}

#[derive(Clone, Copy, Debug)]
struct Phase {
    end_step: f64,
    lr: (Lr, Lr),
    momentum: (Mom, Mom),
}

fn phases(total_steps: usize, pct_start: f64, three_phase: bool) -> Vec<Phase> {
    let total = total_steps as f64;
    if three_phase {
        vec![
            Phase {
                end_step: pct_start * total - 1.0,
                lr: (Lr::Initial, Lr::Max),
                momentum: (Mom::Max, Mom::Base),
            },
            Phase {
                end_step: 2.0 * pct_start * total - 2.0,
                lr: (Lr::Max, Lr::Initial),
                momentum: (Mom::Base, Mom::Max),
            },
            Phase {
                end_step: total - 1.0,
                lr: (Lr::Initial, Lr::Min),
                momentum: (Mom::Max, Mom::Max),
            },
        ]
    } else {
        vec![
            Phase {
                end_step: pct_start * total - 1.0,
                lr: (Lr::Initial, Lr::Max),
                momentum: (Mom::Max, Mom::Base),
            },
            Phase {
                end_step: total - 1.0,
                lr: (Lr::Max, Lr::Min),
                momentum: (Mom::Base, Mom::Max),
            },
        ]
    }
}

/// The 1cycle policy (`torch.optim.lr_scheduler.OneCycleLR`): the learning rate rises from
/// `max_lr / div_factor` to `max_lr`, then anneals far below the start, stepping once per
/// batch; momentum (SGD, RMSprop) or β₁ (Adam, AdamW) moves the opposite way between
/// `max_momentum` and `base_momentum`. Not chainable.
#[derive(Clone, Debug)]
pub struct OneCycleLR {
    core: SchedCore,
    total_steps: usize,
    pct_start: f64,
    anneal: AnnealStrategy,
    cycle_momentum: bool,
    three_phase: bool,
    phases: Vec<Phase>,
    initial_lrs: Vec<f64>,
    max_lrs: Vec<f64>,
    min_lrs: Vec<f64>,
    max_momentums: Vec<f64>,
    base_momentums: Vec<f64>,
}

fn per_group(name: &str, v: &[f64], groups: usize) -> Vec<f64> {
    match v.len() {
        1 => vec![v[0]; groups],
        n if n == groups => v.to_vec(),
        n => panic!("OneCycleLR: expected {groups} values for {name}, got {n}"),
    }
}

impl OneCycleLR {
    /// PyTorch's defaults for peak `max_lr` over `total_steps` steps.
    pub fn new(opt: &mut dyn Optimizer, max_lr: f64, total_steps: usize) -> OneCycleLR {
        OneCycleLR::with_config(opt, OneCycleConfig::new(max_lr, total_steps))
    }

    /// Attaches to `opt`: sets each group's starting learning rate (overwriting any earlier
    /// scheduler's, like PyTorch) and momentum, then performs the initial step.
    ///
    /// Panics on invalid options (`total_steps == 0`, `pct_start` outside [0, 1], a `max_lr`
    /// list of the wrong length) and when cycling momentum on an optimizer without one
    /// (Adagrad), like PyTorch's `ValueError`s.
    pub fn with_config(opt: &mut dyn Optimizer, cfg: OneCycleConfig) -> OneCycleLR {
        assert!(
            cfg.total_steps > 0,
            "OneCycleLR: expected positive integer total_steps, got 0"
        );
        assert!(
            (0.0..=1.0).contains(&cfg.pct_start),
            "OneCycleLR: expected float between 0 and 1 pct_start, got {}",
            cfg.pct_start
        );
        let n = opt.num_groups();
        let max_lrs = per_group("max_lr", &cfg.max_lr, n);
        let initial_lrs: Vec<f64> = max_lrs.iter().map(|m| m / cfg.div_factor).collect();
        let min_lrs: Vec<f64> = initial_lrs
            .iter()
            .map(|i| i / cfg.final_div_factor)
            .collect();
        for (g, &lr0) in initial_lrs.iter().enumerate() {
            opt.set_group_initial_lr(g, Some(lr0));
        }
        if cfg.cycle_momentum {
            if (0..n).any(|g| opt.group_momentum(g).is_none()) {
                panic!("OneCycleLR: optimizer must support momentum or beta1 with `cycle_momentum` option enabled");
            }
            for g in 0..n {
                opt.set_group_momentum(g, cfg.max_momentum);
            }
        }
        let mut s = OneCycleLR {
            core: SchedCore::attach(opt),
            total_steps: cfg.total_steps,
            pct_start: cfg.pct_start,
            anneal: cfg.anneal_strategy,
            cycle_momentum: cfg.cycle_momentum,
            three_phase: cfg.three_phase,
            phases: phases(cfg.total_steps, cfg.pct_start, cfg.three_phase),
            initial_lrs,
            max_lrs,
            min_lrs,
            max_momentums: vec![cfg.max_momentum; n],
            base_momentums: vec![cfg.base_momentum; n],
        };
        rule_initial_step(&mut s, opt);
        s
    }

    /// The total number of steps in the cycle.
    pub fn total_steps(&self) -> usize {
        self.total_steps
    }
}

impl Rule for OneCycleLR {
    const KIND: &'static str = "OneCycleLR";
    fn core(&self) -> &SchedCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut SchedCore {
        &mut self.core
    }
    /// Panics when stepped past `total_steps`, like PyTorch's `ValueError`.
    fn get_lr(&mut self, opt: &mut dyn Optimizer) -> Vec<f64> {
        let step_num = self.core.last_epoch;
        if step_num > self.total_steps as i64 {
            panic!(
                "OneCycleLR: tried to step {step_num} times. The specified number of total steps is {}",
                self.total_steps
            );
        }
        let mut lrs = Vec::with_capacity(opt.num_groups());
        for g in 0..opt.num_groups() {
            let lr_of = |w: Lr| match w {
                Lr::Initial => self.initial_lrs[g],
                Lr::Max => self.max_lrs[g],
                Lr::Min => self.min_lrs[g],
            };
            let mom_of = |w: Mom| match w {
                Mom::Max => self.max_momentums[g],
                Mom::Base => self.base_momentums[g],
            };
            let mut start_step = 0.0;
            let last = self.phases.len() - 1;
            for (i, phase) in self.phases.iter().enumerate() {
                if step_num as f64 <= phase.end_step || i == last {
                    let pct = (step_num as f64 - start_step) / (phase.end_step - start_step);
                    lrs.push(self.anneal.apply(lr_of(phase.lr.0), lr_of(phase.lr.1), pct));
                    if self.cycle_momentum {
                        let m = self.anneal.apply(
                            mom_of(phase.momentum.0),
                            mom_of(phase.momentum.1),
                            pct,
                        );
                        opt.set_group_momentum(g, m);
                    }
                    break;
                }
                start_step = phase.end_step;
            }
        }
        lrs
    }
    fn options_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("total_steps".into(), Value::from(self.total_steps));
        m.insert("pct_start".into(), json::num(self.pct_start));
        m.insert("anneal_strategy".into(), Value::from(self.anneal.name()));
        m.insert("cycle_momentum".into(), Value::Bool(self.cycle_momentum));
        m.insert("three_phase".into(), Value::Bool(self.three_phase));
        m.insert("initial_lrs".into(), json::nums(&self.initial_lrs));
        m.insert("max_lrs".into(), json::nums(&self.max_lrs));
        m.insert("min_lrs".into(), json::nums(&self.min_lrs));
        m.insert("max_momentums".into(), json::nums(&self.max_momentums));
        m.insert("base_momentums".into(), json::nums(&self.base_momentums));
        m
    }
    fn parse_options(&self, m: &Map<String, Value>) -> Result<Self, OptimError> {
        let total_steps = json::usize_field(m, "total_steps")?;
        let pct_start = json::f64_field(m, "pct_start")?;
        let three_phase = json::bool_field(m, "three_phase")?;
        let anneal = match json::str_field(m, "anneal_strategy")? {
            "cos" => AnnealStrategy::Cos,
            "linear" => AnnealStrategy::Linear,
            other => {
                return Err(OptimError::Malformed(format!(
                    "unknown anneal_strategy `{other}`"
                )))
            }
        };
        if total_steps == 0 {
            return Err(OptimError::Malformed(
                "OneCycleLR total_steps must be positive".into(),
            ));
        }
        let n = self.core.base_lrs.len();
        let vec_n = |key: &str| -> Result<Vec<f64>, OptimError> {
            let v = json::f64s_field(m, key)?;
            if v.len() != n {
                return Err(OptimError::GroupCount {
                    expected: n,
                    found: v.len(),
                });
            }
            Ok(v)
        };
        Ok(OneCycleLR {
            core: self.core.clone(),
            total_steps,
            pct_start,
            anneal,
            cycle_momentum: json::bool_field(m, "cycle_momentum")?,
            three_phase,
            phases: phases(total_steps, pct_start, three_phase),
            initial_lrs: vec_n("initial_lrs")?,
            max_lrs: vec_n("max_lrs")?,
            min_lrs: vec_n("min_lrs")?,
            max_momentums: vec_n("max_momentums")?,
            base_momentums: vec_n("base_momentums")?,
        })
    }
}

rule_scheduler!(OneCycleLR);
