//! Stop training as soon as the loss (or any logged value) becomes NaN or infinite.

use super::{Callback, TrainContext};
use crate::error::TrainError;
use crate::history::Logs;

/// Keras' `TerminateOnNaN`: ends `fit` with [`TrainError::NonFinite`] at the first batch whose
/// loss is NaN or ±inf, and at the end of an epoch whose logs (validation values included)
/// hold one. It fails the run instead of only stopping it, so no checkpoint of the broken
/// weights is written (`on_epoch_end` runs before checkpoints are saved) and a command-line
/// run exits with an error that names the epoch and step.
#[derive(Debug, Default)]
pub struct TerminateOnNaN;

impl TerminateOnNaN {
    /// The callback.
    pub fn new() -> TerminateOnNaN {
        TerminateOnNaN
    }
}

fn first_non_finite(logs: &Logs) -> Option<(&str, f64)> {
    // The loss first: it is what goes wrong first, and what the user watches.
    logs.get("loss")
        .filter(|v| !v.is_finite())
        .map(|&v| ("loss", v))
        .or_else(|| {
            logs.iter()
                .find(|(_, v)| !v.is_finite())
                .map(|(k, &v)| (k.as_str(), v))
        })
}

impl Callback for TerminateOnNaN {
    fn name(&self) -> String {
        "terminate_on_nan".into()
    }

    fn on_batch_end(
        &mut self,
        ctx: &mut TrainContext,
        _batch: usize,
        logs: &Logs,
    ) -> Result<(), TrainError> {
        check(ctx, logs)
    }

    fn on_epoch_end(&mut self, ctx: &mut TrainContext, logs: &Logs) -> Result<(), TrainError> {
        check(ctx, logs)
    }
}

/// The error for the first non-finite value in `logs` (batch logs: loss, metrics, lr; epoch
/// logs: the same with validation), naming where training is.
fn check(ctx: &TrainContext, logs: &Logs) -> Result<(), TrainError> {
    match first_non_finite(logs) {
        Some((what, value)) => Err(TrainError::NonFinite {
            what: what.into(),
            value,
            epoch: ctx.epoch + 1,
            step: ctx.global_step,
        }),
        None => Ok(()),
    }
}
