//! Kiln's benchmark suite: the reference workloads, measured the way the PyTorch reference
//! (`bench/torch_reference.py`) measures them, reported as one flat JSON object.
//!
//! Each workload family lives in its own module exposing `KEYS` (the JSON keys it can report)
//! and `run(&Selection, &mut Report)`; adding a family means adding a module and one entry in
//! [`WORKLOADS`].
//!
//! Layering: a user of Kiln, not part of it — it depends on the facade (`kiln`) alone, as a
//! user's crate would, and nothing depends on it.
//!
//! Guide: *Performance* (`docs/src/performance.md`), which reports these measurements.

#![deny(missing_docs)]

pub mod cnn;
pub mod compiled;
pub mod eager;
pub mod gpt;
pub mod infer;
pub mod matmul;
pub mod memory;
pub mod mlp;
pub mod timing;
pub mod train;

/// One family of measurements.
pub struct Workload {
    /// Short name, accepted by `--only` as a shorthand for all its keys.
    pub name: &'static str,
    /// Every key the family can report, in output order.
    pub keys: &'static [&'static str],
    /// Measures the selected keys and appends them to the report.
    pub run: fn(&Selection, &mut Report),
}

/// All workloads, in the order they run and print.
pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "matmul",
        keys: matmul::KEYS,
        run: matmul::run,
    },
    Workload {
        name: "eager",
        keys: eager::KEYS,
        run: eager::run,
    },
    Workload {
        name: "mlp",
        keys: mlp::KEYS,
        run: mlp::run,
    },
    Workload {
        name: "cnn",
        keys: cnn::KEYS,
        run: cnn::run,
    },
    Workload {
        name: "gpt",
        keys: gpt::KEYS,
        run: gpt::run,
    },
    // After the training workloads, as in the reference: the peak covers them.
    Workload {
        name: "memory",
        keys: memory::KEYS,
        run: memory::run,
    },
    Workload {
        name: "infer",
        keys: infer::KEYS,
        run: infer::run,
    },
    // Graph mode, after the eager keys so it does not change the eager peak RSS.
    Workload {
        name: "compiled",
        keys: compiled::KEYS,
        run: compiled::run,
    },
];

/// Every key any workload can report, in output order.
pub fn all_keys() -> impl Iterator<Item = &'static str> {
    WORKLOADS.iter().flat_map(|w| w.keys.iter().copied())
}

/// Which keys to measure: all of them, or an explicit subset.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    only: Option<Vec<String>>,
}

impl Selection {
    /// Everything.
    pub fn all() -> Selection {
        Selection { only: None }
    }

    /// Only the given keys or workload names; errors on a name nothing reports.
    pub fn only<S: AsRef<str>>(names: &[S]) -> Result<Selection, String> {
        let mut keys = Vec::new();
        for name in names {
            let name = name.as_ref();
            if let Some(w) = WORKLOADS.iter().find(|w| w.name == name) {
                keys.extend(w.keys.iter().map(|k| k.to_string()));
            } else if all_keys().any(|k| k == name) {
                keys.push(name.to_string());
            } else {
                let known: Vec<&str> = WORKLOADS.iter().map(|w| w.name).chain(all_keys()).collect();
                return Err(format!("unknown key {name:?}; known: {}", known.join(", ")));
            }
        }
        Ok(Selection { only: Some(keys) })
    }

    /// True if `key` should be measured.
    pub fn wants(&self, key: &str) -> bool {
        match &self.only {
            None => true,
            Some(keys) => keys.iter().any(|k| k == key),
        }
    }

    fn wants_any(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.wants(k))
    }
}

/// Measured values, in the order they were measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    entries: Vec<(String, f64)>,
}

impl Report {
    /// Appends one measurement.
    pub fn push(&mut self, key: impl Into<String>, value: f64) {
        self.entries.push((key.into(), value));
    }

    /// The measurements so far.
    pub fn entries(&self) -> &[(String, f64)] {
        &self.entries
    }

    /// Pretty JSON in the reference's format (`json.dumps(..., indent=1)` with every value
    /// rounded to 3 decimals); non-finite values print as `null`.
    pub fn to_json(&self) -> String {
        if self.entries.is_empty() {
            return "{}".to_string();
        }
        let body: Vec<String> = self
            .entries
            .iter()
            .map(|(k, v)| {
                let v = serde_json::Value::from((v * 1e3).round() / 1e3);
                format!(" {}: {v}", serde_json::Value::from(k.as_str()))
            })
            .collect();
        format!("{{\n{}\n}}", body.join(",\n"))
    }
}

/// Runs every selected workload on the current thread count and returns the report.
pub fn run(sel: &Selection) -> Report {
    kiln::manual_seed(0);
    let mut report = Report::default();
    for w in WORKLOADS {
        if sel.wants_any(w.keys) {
            (w.run)(sel, &mut report);
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_python_format() {
        let mut r = Report::default();
        r.push("a_gflops", 123.45678);
        r.push("b_us", 2.0);
        r.push("c", f64::NAN);
        assert_eq!(
            r.to_json(),
            "{\n \"a_gflops\": 123.457,\n \"b_us\": 2.0,\n \"c\": null\n}"
        );
        assert_eq!(Report::default().to_json(), "{}");
    }

    #[test]
    fn selection_by_key_and_family() {
        let s = Selection::only(&["eager_add16_us_per_op"]).unwrap();
        assert!(s.wants("eager_add16_us_per_op"));
        assert!(!s.wants("matmul_256_gflops"));
        let s = Selection::only(&["matmul"]).unwrap();
        assert!(s.wants("matmul_2048_gflops"));
        assert!(!s.wants("eager_add16_us_per_op"));
        assert!(Selection::only(&["nope"]).is_err());
        assert!(Selection::all().wants("anything"));
    }

    #[test]
    fn keys_are_unique() {
        let keys: Vec<_> = all_keys().collect();
        let mut dedup = keys.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(keys.len(), dedup.len());
    }

    #[test]
    fn eager_workload_reports_its_key() {
        let r = run(&Selection::only(&["eager"]).unwrap());
        let keys: Vec<_> = r.entries().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["eager_add16_us_per_op"]);
        assert!(r.entries()[0].1 > 0.0);
    }

    #[test]
    fn reference_keys_in_reference_order() {
        // The reference's keys first, in its order; graph-mode keys follow.
        let keys: Vec<_> = all_keys().take(9).collect();
        assert_eq!(
            keys,
            [
                "matmul_256_gflops",
                "matmul_1024_gflops",
                "matmul_2048_gflops",
                "eager_add16_us_per_op",
                "mlp_train_step_ms",
                "cnn_train_step_ms",
                "gpt_train_step_ms",
                "peak_rss_mib",
                "mlp_infer_b1_us",
            ]
        );
    }

    #[test]
    fn memory_and_infer_workloads_report() {
        let r = run(&Selection::only(&["memory", "infer"]).unwrap());
        let keys: Vec<_> = r.entries().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["peak_rss_mib", "mlp_infer_b1_us"]);
        assert!(r.entries()[1].1 > 0.0);
    }
}
