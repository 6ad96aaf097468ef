//! Stop training when a monitored value stops improving.

use super::{Callback, TrainContext};
use crate::error::TrainError;
use crate::history::Logs;
use kiln_nn::StateDict;
use serde_json::{json, Value};

/// Whether lower or higher values of the monitored key are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Lower is better (losses).
    Min,
    /// Higher is better (accuracies).
    Max,
}

impl Mode {
    /// True when `value` beats `best` by more than `min_delta`.
    pub fn improved(self, value: f64, best: Option<f64>, min_delta: f64) -> bool {
        match (self, best) {
            (_, None) => true,
            (Mode::Min, Some(b)) => value < b - min_delta,
            (Mode::Max, Some(b)) => value > b + min_delta,
        }
    }
}

/// Keras' `EarlyStopping`: stops after `patience` epochs without an improvement of at least
/// `min_delta` in `monitor`; optionally restores the best epoch's weights at the end.
pub struct EarlyStopping {
    monitor: String,
    mode: Mode,
    patience: usize,
    min_delta: f64,
    restore_best_weights: bool,
    best: Option<f64>,
    wait: usize,
    best_weights: Option<StateDict>,
    /// Epoch (from 0) at which training was stopped, if it was.
    pub stopped_epoch: Option<usize>,
}

impl EarlyStopping {
    /// Monitors `monitor` (e.g. `"val_loss"`) in `mode` with the given patience.
    pub fn new(monitor: impl Into<String>, mode: Mode, patience: usize) -> EarlyStopping {
        EarlyStopping {
            monitor: monitor.into(),
            mode,
            patience,
            min_delta: 0.0,
            restore_best_weights: false,
            best: None,
            wait: 0,
            best_weights: None,
            stopped_epoch: None,
        }
    }

    /// Smallest change that counts as an improvement.
    pub fn min_delta(mut self, d: f64) -> Self {
        self.min_delta = d.abs();
        self
    }

    /// Load the best epoch's weights back into the model when training ends.
    pub fn restore_best_weights(mut self, on: bool) -> Self {
        self.restore_best_weights = on;
        self
    }
}

fn deep_copy(sd: &StateDict) -> StateDict {
    sd.iter()
        .map(|(n, t)| (n.to_string(), kiln_core::no_grad(|| t.copy()).detach()))
        .collect()
}

impl Callback for EarlyStopping {
    fn name(&self) -> String {
        format!("early_stopping[{}]", self.monitor)
    }

    fn on_epoch_end(&mut self, ctx: &mut TrainContext, logs: &Logs) -> Result<(), TrainError> {
        let Some(&value) = logs.get(&self.monitor) else {
            return Ok(());
        };
        if self.mode.improved(value, self.best, self.min_delta) {
            self.best = Some(value);
            self.wait = 0;
            if self.restore_best_weights {
                self.best_weights = Some(deep_copy(&ctx.model.state_dict()));
            }
        } else {
            self.wait += 1;
            if self.wait >= self.patience {
                ctx.stop_training = true;
                self.stopped_epoch = Some(ctx.epoch);
            }
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut TrainContext) -> Result<(), TrainError> {
        if let Some(w) = &self.best_weights {
            ctx.model.load_state_dict(w, true)?;
        }
        Ok(())
    }

    fn state(&self) -> Option<Value> {
        Some(json!({ "best": self.best, "wait": self.wait }))
    }

    fn load_state(&mut self, _ctx: &mut TrainContext, state: &Value) -> Result<(), TrainError> {
        self.best = state.get("best").and_then(Value::as_f64);
        self.wait = state.get("wait").and_then(Value::as_u64).unwrap_or(0) as usize;
        Ok(())
    }
}
