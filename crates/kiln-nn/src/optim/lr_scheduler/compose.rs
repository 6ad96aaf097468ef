//! Composition: SequentialLR (one schedule after another), ChainedScheduler (all at once),
//! and `warmup_then` (linear warmup followed by any schedule).

use super::{bisect_right, LinearLR, LrScheduler};
use crate::optim::json;
use crate::optim::{OptimError, Optimizer};
use serde_json::{Map, Value};

/// Runs schedules one after another, switching at the milestones
/// (`torch.optim.lr_scheduler.SequentialLR`): schedule `i` runs from `milestones[i-1]`, and
/// is restarted at epoch 0 (its closed form) when its turn comes.
///
/// Build the schedules on the optimizer first, in order, then hand them over; construction
/// resets the learning rates to the groups' `initial_lr` and redoes the first schedule's
/// initial step, exactly as PyTorch does.
pub struct SequentialLR {
    schedulers: Vec<Box<dyn LrScheduler>>,
    milestones: Vec<i64>,
    last_epoch: i64,
    last_lr: Vec<f64>,
}

impl SequentialLR {
    /// Panics unless there is one schedule more than milestones (and at least one), or when a
    /// group has no `initial_lr` (no schedule was built on `opt`).
    pub fn new(
        opt: &mut dyn Optimizer,
        mut schedulers: Vec<Box<dyn LrScheduler>>,
        milestones: &[usize],
    ) -> SequentialLR {
        assert!(
            !schedulers.is_empty(),
            "SequentialLR expects at least one scheduler, but got no scheduler"
        );
        assert!(
            milestones.len() + 1 == schedulers.len(),
            "SequentialLR expects number of schedulers provided to be one more than the number of milestone points, \
             but got number of schedulers {} and the number of milestones to be equal to {}",
            schedulers.len(),
            milestones.len()
        );
        for g in 0..opt.num_groups() {
            let lr0 = opt
                .group_initial_lr(g)
                .unwrap_or_else(|| panic!("SequentialLR: parameter group {g} has no initial_lr; build the schedulers on this optimizer first"));
            opt.set_group_lr(g, lr0);
        }
        for s in &mut schedulers {
            s.rewind();
        }
        let milestones: Vec<i64> = milestones.iter().map(|&m| m as i64).collect();
        let idx = bisect_right(&milestones, 0);
        schedulers[idx].initial_step(opt);
        let last_lr = schedulers[idx].last_lr();
        SequentialLR {
            schedulers,
            milestones,
            last_epoch: 0,
            last_lr,
        }
    }

    /// The wrapped schedules.
    pub fn schedulers(&self) -> &[Box<dyn LrScheduler>] {
        &self.schedulers
    }
}

impl LrScheduler for SequentialLR {
    fn step(&mut self, opt: &mut dyn Optimizer) {
        self.last_epoch += 1;
        let idx = bisect_right(&self.milestones, self.last_epoch);
        let s = &mut self.schedulers[idx];
        if idx > 0 && self.milestones[idx - 1] == self.last_epoch {
            s.step_to(opt, 0);
        } else {
            s.step(opt);
        }
        self.last_lr = s.last_lr();
    }

    fn last_lr(&self) -> Vec<f64> {
        self.last_lr.clone()
    }

    fn last_epoch(&self) -> i64 {
        self.last_epoch
    }

    fn state_dict(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), Value::from("SequentialLR"));
        m.insert("last_epoch".into(), Value::from(self.last_epoch));
        m.insert("milestones".into(), Value::from(self.milestones.clone()));
        m.insert("last_lr".into(), json::nums(&self.last_lr));
        m.insert(
            "schedulers".into(),
            Value::Array(self.schedulers.iter().map(|s| s.state_dict()).collect()),
        );
        Value::Object(m)
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<(), OptimError> {
        let m = json::object(state, "scheduler state")?;
        json::check_kind(m, "SequentialLR")?;
        let last_epoch = json::i64_field(m, "last_epoch")?;
        let milestones = json::i64s_field(m, "milestones")?;
        let last_lr = json::f64s_field(m, "last_lr")?;
        if milestones.len() + 1 != self.schedulers.len() {
            return Err(OptimError::Malformed(format!(
                "SequentialLR state has {} milestones for {} schedulers",
                milestones.len(),
                self.schedulers.len()
            )));
        }
        load_children(&mut self.schedulers, m)?;
        self.last_epoch = last_epoch;
        self.milestones = milestones;
        self.last_lr = last_lr;
        Ok(())
    }

    /// PyTorch's inherited `_initial_step`: one ordinary step.
    fn initial_step(&mut self, opt: &mut dyn Optimizer) {
        self.step(opt);
    }

    /// Jumps to `epoch`: the schedule active then jumps to its offset from its milestone.
    fn step_to(&mut self, opt: &mut dyn Optimizer, epoch: i64) {
        self.last_epoch = epoch;
        let idx = bisect_right(&self.milestones, epoch);
        let offset = if idx > 0 {
            epoch - self.milestones[idx - 1]
        } else {
            epoch
        };
        let s = &mut self.schedulers[idx];
        s.step_to(opt, offset);
        self.last_lr = s.last_lr();
    }

    /// Rewinds the children (PyTorch's `recursive_undo` leaves a composite's own counter).
    fn rewind(&mut self) {
        for s in &mut self.schedulers {
            s.rewind();
        }
    }
}

/// Loads every child's state, restoring the earlier ones if a later one fails.
fn load_children(
    children: &mut [Box<dyn LrScheduler>],
    m: &Map<String, Value>,
) -> Result<(), OptimError> {
    let states = m
        .get("schedulers")
        .and_then(Value::as_array)
        .ok_or_else(|| OptimError::Malformed("missing list `schedulers`".into()))?;
    if states.len() != children.len() {
        return Err(OptimError::Malformed(format!(
            "state has {} schedulers, this composite has {}",
            states.len(),
            children.len()
        )));
    }
    let backup: Vec<Value> = children.iter().map(|s| s.state_dict()).collect();
    for (i, (s, st)) in children.iter_mut().zip(states).enumerate() {
        if let Err(e) = s.load_state_dict(st) {
            for (s, b) in children.iter_mut().zip(&backup).take(i) {
                s.load_state_dict(b)
                    .expect("restoring a scheduler's own state");
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Steps several chainable schedules together each epoch, so their factors multiply
/// (`torch.optim.lr_scheduler.ChainedScheduler`), e.g. a warmup and an exponential decay.
pub struct ChainedScheduler {
    schedulers: Vec<Box<dyn LrScheduler>>,
    last_lr: Vec<f64>,
}

impl ChainedScheduler {
    /// Chains schedules already built on `opt`. Panics when `schedulers` is empty.
    pub fn new(opt: &dyn Optimizer, schedulers: Vec<Box<dyn LrScheduler>>) -> ChainedScheduler {
        assert!(
            !schedulers.is_empty(),
            "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler"
        );
        ChainedScheduler {
            schedulers,
            last_lr: opt.lrs(),
        }
    }

    /// The chained schedules.
    pub fn schedulers(&self) -> &[Box<dyn LrScheduler>] {
        &self.schedulers
    }
}

impl LrScheduler for ChainedScheduler {
    fn step(&mut self, opt: &mut dyn Optimizer) {
        for s in &mut self.schedulers {
            s.step(opt);
        }
        self.last_lr = opt.lrs();
    }

    fn last_lr(&self) -> Vec<f64> {
        self.last_lr.clone()
    }

    /// The first schedule's epoch.
    fn last_epoch(&self) -> i64 {
        self.schedulers[0].last_epoch()
    }

    fn state_dict(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), Value::from("ChainedScheduler"));
        m.insert("last_lr".into(), json::nums(&self.last_lr));
        m.insert(
            "schedulers".into(),
            Value::Array(self.schedulers.iter().map(|s| s.state_dict()).collect()),
        );
        Value::Object(m)
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<(), OptimError> {
        let m = json::object(state, "scheduler state")?;
        json::check_kind(m, "ChainedScheduler")?;
        let last_lr = json::f64s_field(m, "last_lr")?;
        load_children(&mut self.schedulers, m)?;
        self.last_lr = last_lr;
        Ok(())
    }

    /// PyTorch's inherited `_initial_step`: one ordinary step of every schedule.
    fn initial_step(&mut self, opt: &mut dyn Optimizer) {
        self.step(opt);
    }

    /// Jumps every schedule to `epoch` in order (closed forms do not multiply, so the last
    /// schedule's value wins; PyTorch has no equivalent).
    fn step_to(&mut self, opt: &mut dyn Optimizer, epoch: i64) {
        for s in &mut self.schedulers {
            s.step_to(opt, epoch);
        }
        self.last_lr = opt.lrs();
    }

    fn rewind(&mut self) {
        for s in &mut self.schedulers {
            s.rewind();
        }
    }
}

/// Linear warmup from `lr · start_factor` to `lr` over `warmup_iters` steps, then the schedule
/// `then` builds, as PyTorch's
/// `SequentialLR(opt, [LinearLR(opt, start_factor, total_iters=warmup_iters), then(opt)], milestones=[warmup_iters])`.
///
/// ```
/// # use kiln_core::{DType, Tensor};
/// # use kiln_nn::optim::{Sgd, Optimizer, lr_scheduler::{warmup_then, CosineAnnealingLR, LrScheduler}};
/// # let w = Tensor::ones([2], DType::F32).requires_grad_(true);
/// let mut opt = Sgd::new(vec![w], 0.1);
/// let mut sched = warmup_then(&mut opt, 0.1, 5, |opt| CosineAnnealingLR::new(opt, 95, 0.0));
/// assert!((opt.lr() - 0.01).abs() < 1e-12);
/// for _ in 0..5 { sched.step(&mut opt); }
/// assert!((opt.lr() - 0.1).abs() < 1e-12);
/// ```
pub fn warmup_then<S: LrScheduler + 'static>(
    opt: &mut dyn Optimizer,
    start_factor: f64,
    warmup_iters: usize,
    then: impl FnOnce(&mut dyn Optimizer) -> S,
) -> SequentialLR {
    let warm = LinearLR::warmup(opt, start_factor, warmup_iters);
    let main = then(opt);
    SequentialLR::new(opt, vec![Box::new(warm), Box::new(main)], &[warmup_iters])
}
