//! The best value of a monitored key so far: what `EarlyStopping` and `ModelCheckpoint` both
//! track, kept in one place.

use serde_json::{Map, Value};

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

/// The best value seen so far in `mode` and the epoch (from 1) it was reached in; a value
/// counts as better only when it beats the best by more than `min_delta`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Best {
    mode: Mode,
    min_delta: f64,
    best: Option<(f64, usize)>,
}

impl Best {
    /// Nothing seen yet; any improvement counts.
    pub(crate) fn new(mode: Mode) -> Best {
        Best {
            mode,
            min_delta: 0.0,
            best: None,
        }
    }

    /// The smallest change that counts as an improvement (its sign is ignored).
    pub(crate) fn set_min_delta(&mut self, d: f64) {
        self.min_delta = d.abs();
    }

    /// Records the value of epoch `epoch` (from 1): true, and the new best, when it improves
    /// on the best so far.
    pub(crate) fn update(&mut self, value: f64, epoch: usize) -> bool {
        let improved = self.mode.improved(value, self.value(), self.min_delta);
        if improved {
            self.best = Some((value, epoch));
        }
        improved
    }

    /// The best value and its epoch, if any value was seen.
    pub(crate) fn get(&self) -> Option<(f64, usize)> {
        self.best
    }

    /// The best value, if any.
    pub(crate) fn value(&self) -> Option<f64> {
        self.best.map(|(v, _)| v)
    }

    /// The epoch (from 1) of the best value; 0 when none (or unknown).
    pub(crate) fn epoch(&self) -> usize {
        self.best.map_or(0, |(_, e)| e)
    }

    /// Adds `"best"` and `"best_epoch"` to a callback's checkpoint state.
    pub(crate) fn save(&self, state: &mut Map<String, Value>) {
        state.insert("best".into(), self.value().into());
        state.insert("best_epoch".into(), self.best.map(|(_, e)| e).into());
    }

    /// Restores what [`Best::save`] wrote. A state without `best_epoch` (written before it
    /// was kept) gives epoch 0, unknown.
    pub(crate) fn load(&mut self, state: &Value) {
        let value = state.get("best").and_then(Value::as_f64);
        let epoch = state.get("best_epoch").and_then(Value::as_u64).unwrap_or(0);
        self.best = value.map(|v| (v, epoch as usize));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn improvements_follow_the_mode_and_min_delta() {
        let mut b = Best::new(Mode::Min);
        b.set_min_delta(-0.1);
        assert!(b.update(1.0, 1));
        assert!(!b.update(0.95, 2), "within min_delta");
        assert!(b.update(0.8, 3));
        assert_eq!(b.get(), Some((0.8, 3)));
        let mut m = Best::new(Mode::Max);
        assert!(m.update(0.5, 1));
        assert!(!m.update(0.5, 2), "equal is no improvement");
        assert!(m.update(0.6, 3));
        assert_eq!((m.value(), m.epoch()), (Some(0.6), 3));
    }

    #[test]
    fn state_round_trips() {
        let mut b = Best::new(Mode::Max);
        b.update(0.75, 4);
        let mut state = Map::new();
        b.save(&mut state);
        let mut back = Best::new(Mode::Max);
        back.load(&Value::Object(state));
        assert_eq!(back.get(), Some((0.75, 4)));
        back.load(&serde_json::json!({ "best": 0.5 }));
        assert_eq!(back.get(), Some((0.5, 0)));
        back.load(&serde_json::json!({}));
        assert_eq!(back.get(), None);
    }
}
