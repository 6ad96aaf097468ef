//! Per-epoch logs and the `History` that `fit` returns (Keras' `History.history`).

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Values logged for one epoch: `loss`, metrics, `val_`-prefixed validation values, `lr`.
pub type Logs = BTreeMap<String, f64>;

/// Every epoch's logs, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// One entry per completed epoch.
    pub epochs: Vec<Logs>,
}

impl History {
    /// The series of one key across epochs (missing entries are skipped).
    pub fn get(&self, key: &str) -> Vec<f64> {
        self.epochs
            .iter()
            .filter_map(|l| l.get(key).copied())
            .collect()
    }

    /// The last epoch's logs.
    pub fn last(&self) -> Option<&Logs> {
        self.epochs.last()
    }

    /// As JSON (for checkpoints).
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.epochs
                .iter()
                .map(|l| {
                    Value::Object(
                        l.iter()
                            .map(|(k, v)| (k.clone(), Value::from(*v)))
                            .collect::<Map<_, _>>(),
                    )
                })
                .collect(),
        )
    }

    /// From [`History::to_json`]'s format.
    pub fn from_json(v: &Value) -> Option<History> {
        let epochs = v
            .as_array()?
            .iter()
            .map(|e| {
                e.as_object().map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                        .collect()
                })
            })
            .collect::<Option<Vec<Logs>>>()?;
        Some(History { epochs })
    }
}
