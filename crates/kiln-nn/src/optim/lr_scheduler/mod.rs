//! Learning-rate schedules that match `torch.optim.lr_scheduler` step for step.
//!
//! As in PyTorch, building a scheduler records each group's starting learning rate
//! (`initial_lr`) in the optimizer and performs the initial step (so the optimizer's learning
//! rate is already the schedule's value for epoch 0), and after `k` calls of
//! [`LrScheduler::step`] the optimizer's learning rates equal PyTorch's after `k` calls of
//! `scheduler.step()`. The chainable schedules (StepLR, MultiStepLR, ExponentialLR, LinearLR,
//! CosineAnnealingLR) use PyTorch's recursive forms, so they compose: run in sequence with
//! [`SequentialLR`] (e.g. linear warmup, then cosine: [`warmup_then`]) or multiplied together
//! with [`ChainedScheduler`].
//!
//! A scheduler does not hold its optimizer (Rust borrowing), so every call takes it; pass the
//! same optimizer each time.
//!
//! Resuming: build the optimizer and scheduler as for a fresh run, then load the optimizer's
//! state and the scheduler's [`LrScheduler::state_dict`] (PyTorch's order).

mod compose;
mod cosine;
mod linear;
mod one_cycle;
mod plateau;
mod step;

pub use self::compose::{warmup_then, ChainedScheduler, SequentialLR};
pub use self::cosine::CosineAnnealingLR;
pub use self::linear::LinearLR;
pub use self::one_cycle::{AnnealStrategy, OneCycleConfig, OneCycleLR};
pub use self::plateau::{PlateauConfig, PlateauMode, ReduceLROnPlateau, ThresholdMode};
pub use self::step::{ExponentialLR, MultiStepLR, StepLR};

use super::json;
use super::{OptimError, Optimizer};
use serde_json::{Map, Value};

/// A learning-rate schedule stepped once per epoch (or per batch, for one-cycle schedules).
pub trait LrScheduler: Send {
    /// Advances the schedule by one and writes the new learning rates into `opt`. Call it after
    /// `opt.step()`.
    fn step(&mut self, opt: &mut dyn Optimizer);

    /// The learning rates the last step set, one per parameter group (`get_last_lr()`).
    fn last_lr(&self) -> Vec<f64>;

    /// Index of the last epoch seen (0 right after construction).
    fn last_epoch(&self) -> i64;

    /// Everything needed to resume the schedule, as JSON (`kind`, counters, base learning
    /// rates, hyper-parameters; composites nest their children's states).
    fn state_dict(&self) -> Value;

    /// Restores a [`LrScheduler::state_dict`] of the same kind of schedule. The state's
    /// hyper-parameters replace the current ones, as in PyTorch. On error nothing is changed.
    fn load_state_dict(&mut self, state: &Value) -> Result<(), OptimError>;

    /// Composition hook (PyTorch's `_initial_step`): restarts the step count and performs the
    /// construction-time step again. [`SequentialLR`] calls it on its first schedule.
    fn initial_step(&mut self, opt: &mut dyn Optimizer);

    /// Composition hook (PyTorch's `_update_lr(epoch)`): jumps to `epoch`, using the closed
    /// form where the schedule has one. [`SequentialLR`] calls it with 0 at each milestone.
    fn step_to(&mut self, opt: &mut dyn Optimizer, epoch: i64);

    /// Composition hook (PyTorch's `recursive_undo`): moves the epoch counter back by one
    /// without touching learning rates, undoing the construction-time step.
    fn rewind(&mut self);
}

/// The bookkeeping PyTorch's `LRScheduler` base class keeps.
#[derive(Clone, Debug)]
pub(crate) struct SchedCore {
    pub base_lrs: Vec<f64>,
    pub last_epoch: i64,
    pub step_count: i64,
    pub last_lr: Vec<f64>,
    pub is_initial: bool,
}

impl SchedCore {
    /// Records `initial_lr` in each group (unless a scheduler already did) and reads the base
    /// learning rates from it.
    pub fn attach(opt: &mut dyn Optimizer) -> SchedCore {
        let mut base_lrs = Vec::with_capacity(opt.num_groups());
        for g in 0..opt.num_groups() {
            let lr0 = match opt.group_initial_lr(g) {
                Some(lr0) => lr0,
                None => {
                    let lr = opt.group_lr(g);
                    opt.set_group_initial_lr(g, Some(lr));
                    lr
                }
            };
            base_lrs.push(lr0);
        }
        SchedCore {
            base_lrs,
            last_epoch: -1,
            step_count: 0,
            last_lr: opt.lrs(),
            is_initial: false,
        }
    }

    fn to_json(&self, kind: &str, options: Map<String, Value>) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), Value::from(kind));
        m.insert("last_epoch".into(), Value::from(self.last_epoch));
        m.insert("step_count".into(), Value::from(self.step_count));
        m.insert("base_lrs".into(), json::nums(&self.base_lrs));
        m.insert("last_lr".into(), json::nums(&self.last_lr));
        m.insert("options".into(), Value::Object(options));
        Value::Object(m)
    }

    fn from_json(m: &Map<String, Value>) -> Result<SchedCore, OptimError> {
        Ok(SchedCore {
            base_lrs: json::f64s_field(m, "base_lrs")?,
            last_epoch: json::i64_field(m, "last_epoch")?,
            step_count: json::i64_field(m, "step_count")?,
            last_lr: json::f64s_field(m, "last_lr")?,
            is_initial: false,
        })
    }
}

/// A schedule defined by PyTorch's `get_lr` (and optionally `_get_closed_form_lr`); the
/// stepping machinery around it is shared.
pub(crate) trait Rule: Send {
    const KIND: &'static str;
    fn core(&self) -> &SchedCore;
    fn core_mut(&mut self) -> &mut SchedCore;
    /// The learning rates for `core().last_epoch` (may read the optimizer's current ones).
    fn get_lr(&mut self, opt: &mut dyn Optimizer) -> Vec<f64>;
    /// The closed form for `core().last_epoch`, where the schedule has one.
    fn closed_form(&self) -> Option<Vec<f64>> {
        None
    }
    fn options_json(&self) -> Map<String, Value>;
    /// Parses options saved by `options_json` (validated, not yet applied).
    fn parse_options(&self, m: &Map<String, Value>) -> Result<Self, OptimError>
    where
        Self: Sized;
}

/// PyTorch's `_update_lr`: advance (or jump to `epoch`), compute, write into the optimizer.
pub(crate) fn rule_update<R: Rule>(r: &mut R, opt: &mut dyn Optimizer, epoch: Option<i64>) {
    let values = match epoch {
        None => {
            r.core_mut().last_epoch += 1;
            r.get_lr(opt)
        }
        Some(e) => {
            r.core_mut().last_epoch = e;
            match r.closed_form() {
                Some(v) => v,
                None => r.get_lr(opt),
            }
        }
    };
    for (g, lr) in values.into_iter().enumerate() {
        opt.set_group_lr(g, lr);
    }
    r.core_mut().last_lr = opt.lrs();
}

/// PyTorch's `step()` without an epoch.
pub(crate) fn rule_step<R: Rule>(r: &mut R, opt: &mut dyn Optimizer) {
    r.core_mut().step_count += 1;
    rule_update(r, opt, None);
}

/// PyTorch's `_initial_step()`.
pub(crate) fn rule_initial_step<R: Rule>(r: &mut R, opt: &mut dyn Optimizer) {
    r.core_mut().step_count = 0;
    r.core_mut().is_initial = true;
    rule_step(r, opt);
    r.core_mut().is_initial = false;
}

pub(crate) fn rule_state<R: Rule>(r: &R) -> Value {
    r.core().to_json(R::KIND, r.options_json())
}

pub(crate) fn rule_load<R: Rule>(r: &mut R, v: &Value) -> Result<(), OptimError> {
    let m = json::object(v, "scheduler state")?;
    json::check_kind(m, R::KIND)?;
    let core = SchedCore::from_json(m)?;
    if core.base_lrs.len() != r.core().base_lrs.len() {
        return Err(OptimError::GroupCount {
            expected: r.core().base_lrs.len(),
            found: core.base_lrs.len(),
        });
    }
    let options = m
        .get("options")
        .ok_or_else(|| OptimError::Malformed("missing field `options`".into()))?;
    let mut fresh = r.parse_options(json::object(options, "`options`")?)?;
    *fresh.core_mut() = core;
    *r = fresh;
    Ok(())
}

/// `bisect.bisect_right(sorted, x)`: how many entries are ≤ x.
pub(crate) fn bisect_right(sorted: &[i64], x: i64) -> usize {
    sorted.partition_point(|&m| m <= x)
}

/// Implements [`LrScheduler`] for a [`Rule`] type.
macro_rules! rule_scheduler {
    ($ty:ty) => {
        impl $crate::optim::lr_scheduler::LrScheduler for $ty {
            fn step(&mut self, opt: &mut dyn $crate::optim::Optimizer) {
                $crate::optim::lr_scheduler::rule_step(self, opt)
            }
            fn last_lr(&self) -> Vec<f64> {
                $crate::optim::lr_scheduler::Rule::core(self)
                    .last_lr
                    .clone()
            }
            fn last_epoch(&self) -> i64 {
                $crate::optim::lr_scheduler::Rule::core(self).last_epoch
            }
            fn state_dict(&self) -> serde_json::Value {
                $crate::optim::lr_scheduler::rule_state(self)
            }
            fn load_state_dict(
                &mut self,
                state: &serde_json::Value,
            ) -> Result<(), $crate::optim::OptimError> {
                $crate::optim::lr_scheduler::rule_load(self, state)
            }
            fn initial_step(&mut self, opt: &mut dyn $crate::optim::Optimizer) {
                $crate::optim::lr_scheduler::rule_initial_step(self, opt)
            }
            fn step_to(&mut self, opt: &mut dyn $crate::optim::Optimizer, epoch: i64) {
                $crate::optim::lr_scheduler::rule_update(self, opt, Some(epoch))
            }
            fn rewind(&mut self) {
                $crate::optim::lr_scheduler::Rule::core_mut(self).last_epoch -= 1;
            }
        }
    };
}

pub(crate) use rule_scheduler;
