//! ReduceLROnPlateau: cut the learning rate when a metric stops improving.

use crate::optim::json;
use crate::optim::{OptimError, Optimizer};
use serde_json::{Map, Value};

/// Whether a lower or a higher metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` defines a significant improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Relative: better than `best · (1 ∓ threshold)`.
    Rel,
    /// Absolute: better than `best ∓ threshold`.
    Abs,
}

/// Options of [`ReduceLROnPlateau`]; the defaults are PyTorch's.
#[derive(Clone, Debug, PartialEq)]
pub struct PlateauConfig {
    /// Lower or higher is better (default `Min`).
    pub mode: PlateauMode,
    /// New learning rate = old · factor (default 0.1; must be < 1).
    pub factor: f64,
    /// Bad epochs tolerated before reducing (default 10).
    pub patience: usize,
    /// Minimum significant change (default 1e-4).
    pub threshold: f64,
    /// Relative or absolute threshold (default `Rel`).
    pub threshold_mode: ThresholdMode,
    /// Epochs to wait after a reduction before counting bad epochs again (default 0).
    pub cooldown: usize,
    /// Lower bound of the learning rate: one value for all groups or one per group
    /// (default `[0.0]`).
    pub min_lr: Vec<f64>,
    /// Reductions smaller than this are skipped (default 1e-8).
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> PlateauConfig {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: vec![0.0],
            eps: 1e-8,
        }
    }
}

/// Reduces every group's learning rate by `factor` once the metric has not improved for more
/// than `patience` epochs (`torch.optim.lr_scheduler.ReduceLROnPlateau`). Stepped with the
/// metric: [`ReduceLROnPlateau::step_metric`].
#[derive(Clone, Debug)]
pub struct ReduceLROnPlateau {
    cfg: PlateauConfig,
    min_lrs: Vec<f64>,
    best: f64,
    num_bad_epochs: usize,
    cooldown_counter: usize,
    last_epoch: i64,
    last_lr: Vec<f64>,
}

impl ReduceLROnPlateau {
    /// Watches `opt` (reads its learning rates; nothing is changed until a reduction).
    /// Panics when `factor ≥ 1` or `min_lr` has neither one value nor one per group.
    pub fn new(opt: &dyn Optimizer, cfg: PlateauConfig) -> ReduceLROnPlateau {
        assert!(
            cfg.factor < 1.0,
            "ReduceLROnPlateau: factor should be < 1.0, got {}",
            cfg.factor
        );
        let n = opt.num_groups();
        let min_lrs = match cfg.min_lr.len() {
            1 => vec![cfg.min_lr[0]; n],
            k if k == n => cfg.min_lr.clone(),
            k => panic!("ReduceLROnPlateau: expected {n} min_lrs, got {k}"),
        };
        let best = worst(cfg.mode);
        ReduceLROnPlateau {
            cfg,
            min_lrs,
            best,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            last_epoch: 0,
            last_lr: opt.lrs(),
        }
    }

    /// Records this epoch's metric and reduces the learning rates if it has plateaued.
    pub fn step_metric(&mut self, metric: f64, opt: &mut dyn Optimizer) {
        self.last_epoch += 1;
        if self.is_better(metric) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.cfg.patience {
            self.reduce_lr(opt);
            self.cooldown_counter = self.cfg.cooldown;
            self.num_bad_epochs = 0;
        }
        self.last_lr = opt.lrs();
    }

    fn reduce_lr(&mut self, opt: &mut dyn Optimizer) {
        for g in 0..opt.num_groups() {
            let old = opt.group_lr(g);
            let min_lr = self.min_lrs.get(g).copied().unwrap_or(self.cfg.min_lr[0]);
            let new = (old * self.cfg.factor).max(min_lr);
            if old - new > self.cfg.eps {
                opt.set_group_lr(g, new);
            }
        }
    }

    fn is_better(&self, a: f64) -> bool {
        let (best, th) = (self.best, self.cfg.threshold);
        match (self.cfg.mode, self.cfg.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - th),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - th,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (th + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + th,
        }
    }

    /// The learning rates after the last step.
    pub fn last_lr(&self) -> Vec<f64> {
        self.last_lr.clone()
    }

    /// Number of epochs stepped.
    pub fn last_epoch(&self) -> i64 {
        self.last_epoch
    }

    /// The best metric seen (±∞ before the first step).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Consecutive epochs without improvement.
    pub fn num_bad_epochs(&self) -> usize {
        self.num_bad_epochs
    }

    /// True while waiting out the cooldown after a reduction.
    pub fn in_cooldown(&self) -> bool {
        self.cooldown_counter > 0
    }

    /// Everything needed to resume, as JSON.
    pub fn state_dict(&self) -> Value {
        let c = &self.cfg;
        let mut m = Map::new();
        m.insert("kind".into(), Value::from("ReduceLROnPlateau"));
        m.insert(
            "mode".into(),
            Value::from(if c.mode == PlateauMode::Min {
                "min"
            } else {
                "max"
            }),
        );
        m.insert("factor".into(), json::num(c.factor));
        m.insert("patience".into(), Value::from(c.patience));
        m.insert("threshold".into(), json::num(c.threshold));
        m.insert(
            "threshold_mode".into(),
            Value::from(if c.threshold_mode == ThresholdMode::Rel {
                "rel"
            } else {
                "abs"
            }),
        );
        m.insert("cooldown".into(), Value::from(c.cooldown));
        m.insert("min_lrs".into(), json::nums(&self.min_lrs));
        m.insert("eps".into(), json::num(c.eps));
        m.insert("best".into(), json::num(self.best));
        m.insert("num_bad_epochs".into(), Value::from(self.num_bad_epochs));
        m.insert(
            "cooldown_counter".into(),
            Value::from(self.cooldown_counter),
        );
        m.insert("last_epoch".into(), Value::from(self.last_epoch));
        m.insert("last_lr".into(), json::nums(&self.last_lr));
        Value::Object(m)
    }

    /// Restores a [`ReduceLROnPlateau::state_dict`]; on error nothing is changed.
    pub fn load_state_dict(&mut self, state: &Value) -> Result<(), OptimError> {
        let m = json::object(state, "scheduler state")?;
        json::check_kind(m, "ReduceLROnPlateau")?;
        let mode = match json::str_field(m, "mode")? {
            "min" => PlateauMode::Min,
            "max" => PlateauMode::Max,
            other => return Err(OptimError::Malformed(format!("unknown mode `{other}`"))),
        };
        let threshold_mode = match json::str_field(m, "threshold_mode")? {
            "rel" => ThresholdMode::Rel,
            "abs" => ThresholdMode::Abs,
            other => {
                return Err(OptimError::Malformed(format!(
                    "unknown threshold_mode `{other}`"
                )))
            }
        };
        let min_lrs = json::f64s_field(m, "min_lrs")?;
        if min_lrs.len() != self.min_lrs.len() {
            return Err(OptimError::GroupCount {
                expected: self.min_lrs.len(),
                found: min_lrs.len(),
            });
        }
        let cfg = PlateauConfig {
            mode,
            factor: json::f64_field(m, "factor")?,
            patience: json::usize_field(m, "patience")?,
            threshold: json::f64_field(m, "threshold")?,
            threshold_mode,
            cooldown: json::usize_field(m, "cooldown")?,
            min_lr: min_lrs.clone(),
            eps: json::f64_field(m, "eps")?,
        };
        *self = ReduceLROnPlateau {
            cfg,
            min_lrs,
            best: json::f64_field(m, "best")?,
            num_bad_epochs: json::usize_field(m, "num_bad_epochs")?,
            cooldown_counter: json::usize_field(m, "cooldown_counter")?,
            last_epoch: json::i64_field(m, "last_epoch")?,
            last_lr: json::f64s_field(m, "last_lr")?,
        };
        Ok(())
    }
}

fn worst(mode: PlateauMode) -> f64 {
    match mode {
        PlateauMode::Min => f64::INFINITY,
        PlateauMode::Max => f64::NEG_INFINITY,
    }
}
