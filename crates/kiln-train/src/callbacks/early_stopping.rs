//! Stop training when a monitored value stops improving.

use super::{Best, Callback, Mode, TrainContext};
use crate::error::TrainError;
use crate::history::Logs;
use kiln_nn::StateDict;
use serde_json::{Map, Value};

/// Keras' `EarlyStopping`: stops after `patience` epochs without an improvement of at least
/// `min_delta` in `monitor`; optionally restores the best epoch's weights at the end. Both are
/// reported with [`TrainContext::note`]. Its whole state, best weights included, goes into
/// checkpoints, so a resumed run stops and restores exactly as the uninterrupted one would.
pub struct EarlyStopping {
    monitor: String,
    patience: usize,
    restore_best_weights: bool,
    best: Best,
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
            patience,
            restore_best_weights: false,
            best: Best::new(mode),
            wait: 0,
            best_weights: None,
            stopped_epoch: None,
        }
    }

    /// Smallest change that counts as an improvement.
    pub fn min_delta(mut self, d: f64) -> Self {
        self.best.set_min_delta(d);
        self
    }

    /// Load the best epoch's weights back into the model when training ends.
    pub fn restore_best_weights(mut self, on: bool) -> Self {
        self.restore_best_weights = on;
        self
    }

    fn patience_ran_out(&self) -> bool {
        self.best.get().is_some() && self.wait >= self.patience
    }
}

fn deep_copy(sd: &StateDict) -> StateDict {
    sd.iter()
        .map(|(n, t)| (n.to_string(), kiln_core::no_grad(|| t.copy()).detach()))
        .collect()
}

/// Prefix of the best weights among [`Callback::state_tensors`].
const BEST_WEIGHTS: &str = "best_weights.";

impl Callback for EarlyStopping {
    fn name(&self) -> String {
        format!("early_stopping[{}]", self.monitor)
    }

    fn on_train_begin(&mut self, ctx: &mut TrainContext) -> Result<(), TrainError> {
        // Resumed from the checkpoint of the epoch that stopped the run: the uninterrupted run
        // ended there, so this one does too.
        if self.patience_ran_out() && ctx.epoch < ctx.epochs {
            ctx.stop_training = true;
            ctx.note(format!(
                "early stopping: the checkpoint was written when training had already stopped \
                 ({} did not improve for {} epochs); not training further",
                self.monitor, self.wait
            ));
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, ctx: &mut TrainContext, logs: &Logs) -> Result<(), TrainError> {
        let Some(&value) = logs.get(&self.monitor) else {
            return Ok(());
        };
        if self.best.update(value, ctx.epoch + 1) {
            self.wait = 0;
            if self.restore_best_weights {
                self.best_weights = Some(deep_copy(&ctx.model.state_dict()));
            }
        } else {
            self.wait += 1;
            if self.wait >= self.patience {
                ctx.stop_training = true;
                self.stopped_epoch = Some(ctx.epoch);
                ctx.note(format!(
                    "epoch {}: early stopping: {} did not improve for {} epochs (best {:.4} \
                     at epoch {})",
                    ctx.epoch + 1,
                    self.monitor,
                    self.wait,
                    self.best.value().unwrap_or(f64::NAN),
                    self.best.epoch()
                ));
            }
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut TrainContext) -> Result<(), TrainError> {
        if let Some(w) = &self.best_weights {
            ctx.model.load_state_dict(w, true)?;
            ctx.note(format!(
                "early stopping: restored the model weights from the end of epoch {} (best {} \
                 {:.4})",
                self.best.epoch(),
                self.monitor,
                self.best.value().unwrap_or(f64::NAN)
            ));
        }
        Ok(())
    }

    fn state(&self) -> Option<Value> {
        let mut state = Map::new();
        self.best.save(&mut state);
        state.insert("wait".into(), self.wait.into());
        state.insert("stopped_epoch".into(), self.stopped_epoch.into());
        Some(Value::Object(state))
    }

    fn load_state(&mut self, _ctx: &mut TrainContext, state: &Value) -> Result<(), TrainError> {
        self.best.load(state);
        self.wait = state.get("wait").and_then(Value::as_u64).unwrap_or(0) as usize;
        self.stopped_epoch = state
            .get("stopped_epoch")
            .and_then(Value::as_u64)
            .map(|e| e as usize);
        Ok(())
    }

    fn state_tensors(&self) -> StateDict {
        self.best_weights
            .as_ref()
            .map(|w| w.prefixed(BEST_WEIGHTS))
            .unwrap_or_default()
    }

    fn load_state_tensors(
        &mut self,
        ctx: &mut TrainContext,
        tensors: &StateDict,
    ) -> Result<(), TrainError> {
        let weights = tensors.strip_prefix(BEST_WEIGHTS);
        self.best_weights = None;
        let best = self.best.value();
        if self.restore_best_weights && best.is_some() && weights.is_empty() {
            ctx.note(format!(
                "early stopping: the checkpoint holds no best weights for {}; weights will be \
                 restored only from an epoch that improves on {:.4}",
                self.monitor,
                best.unwrap_or(f64::NAN)
            ));
        } else if self.restore_best_weights && best.is_some() {
            // Checked now, with the check `on_train_end`'s `load_state_dict` makes, not at
            // the end of training: weights that do not fit the model must stop the resume,
            // not a finished run.
            ctx.model.check_state_dict(&weights, true)?;
            self.best_weights = Some(weights);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;
    use crate::progress::ProgressMode;
    use kiln_core::{DType, Tensor};
    use kiln_nn::{Adam, Linear, ModuleBase};
    use serde_json::json;

    #[test]
    fn best_weights_that_do_not_fit_the_model_stop_the_resume() {
        let model = Linear::new(2, 3);
        let mut opt = Adam::new(model.parameters(), 1e-2);
        let mut ctx = TrainContext {
            model: &model,
            optimizer: &mut opt,
            epoch: 1,
            epochs: 3,
            global_step: 4,
            stop_training: false,
            history: History::default(),
            progress: ProgressMode::Silent,
            notes: Vec::new(),
        };
        let mut es = EarlyStopping::new("val_loss", Mode::Min, 2).restore_best_weights(true);
        let state = json!({"best": 0.5, "best_epoch": 1, "wait": 0, "stopped_epoch": null});
        es.load_state(&mut ctx, &state).unwrap();

        let mut bad = StateDict::new();
        bad.insert("best_weights.weight", Tensor::zeros([3, 3], DType::F32));
        bad.insert("best_weights.bias", Tensor::zeros([3], DType::F32));
        match es.load_state_tensors(&mut ctx, &bad) {
            Err(TrainError::StateDict(e)) => {
                assert_eq!(e.mismatched, [("weight".into(), vec![3, 2], vec![3, 3])])
            }
            other => panic!("expected a state-dict error, got {other:?}"),
        }
        assert!(es.best_weights.is_none());

        let good = model.state_dict().prefixed(BEST_WEIGHTS);
        es.load_state_tensors(&mut ctx, &good).unwrap();
        assert_eq!(es.best_weights.as_ref().map(StateDict::len), Some(2));
    }
}
