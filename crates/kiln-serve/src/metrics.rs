//! Per model version metrics with Triton's names and meanings, exported at `/metrics` in
//! Prometheus' text format by the `prometheus` crate: requests that succeeded and failed,
//! inferences (batch rows) and executions (graph runs; inferences ÷ executions is the average
//! batch size), cumulative request, queue and compute durations, and a request latency
//! histogram.
//!
//! Each loaded version owns its metrics (labelled `model` and `version`); a scrape gathers those
//! of the versions loaded now, so an unloaded version's series end with it.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, Opts, TextEncoder};
use std::collections::HashMap;
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds: 50 µs to 30 s (the deadline).
const LATENCY_BUCKETS: [f64; 18] = [
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The metrics of one model version.
#[derive(Clone, Debug)]
pub struct Stats {
    success: IntCounter,
    failure: IntCounter,
    inferences: IntCounter,
    executions: IntCounter,
    request_us: IntCounter,
    queue_us: IntCounter,
    compute_us: IntCounter,
    latency: Histogram,
}

impl Stats {
    /// Fresh metrics for `version` of `model`.
    pub fn new(model: &str, version: u64) -> Stats {
        let labels = HashMap::from([
            ("model".to_string(), model.to_string()),
            ("version".to_string(), version.to_string()),
        ]);
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(Opts::new(name, help).const_labels(labels.clone()))
                .expect("a valid metric name")
        };
        Stats {
            success: counter(
                "nv_inference_request_success",
                "Number of successful inference requests",
            ),
            failure: counter(
                "nv_inference_request_failure",
                "Number of failed inference requests",
            ),
            inferences: counter(
                "nv_inference_count",
                "Number of inferences performed (batch rows)",
            ),
            executions: counter(
                "nv_inference_exec_count",
                "Number of model executions (batches run)",
            ),
            request_us: counter(
                "nv_inference_request_duration_us",
                "Cumulative request duration in microseconds",
            ),
            queue_us: counter(
                "nv_inference_queue_duration_us",
                "Cumulative queue duration in microseconds",
            ),
            compute_us: counter(
                "nv_inference_compute_infer_duration_us",
                "Cumulative compute duration in microseconds",
            ),
            latency: Histogram::with_opts(
                HistogramOpts::new(
                    "kiln_inference_request_duration_seconds",
                    "Request latency, arrival to answer, in seconds",
                )
                .const_labels(labels)
                .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid histogram options"),
        }
    }

    /// A request finished after `took`.
    pub fn record_request(&self, ok: bool, took: Duration) {
        if ok { &self.success } else { &self.failure }.inc();
        self.request_us.inc_by(took.as_micros() as u64);
        self.latency.observe(took.as_secs_f64());
    }

    /// A request left the queue after waiting `waited`.
    pub fn record_queue(&self, waited: Duration) {
        self.queue_us.inc_by(waited.as_micros() as u64);
    }

    /// The graph ran once on `rows` rows, taking `took`.
    pub fn record_execution(&self, rows: usize, took: Duration) {
        self.executions.inc();
        self.inferences.inc_by(rows as u64);
        self.compute_us.inc_by(took.as_micros() as u64);
    }

    fn parts(&self) -> [&dyn Collector; 8] {
        [
            &self.success,
            &self.failure,
            &self.inferences,
            &self.executions,
            &self.request_us,
            &self.queue_us,
            &self.compute_us,
            &self.latency,
        ]
    }
}

impl Collector for Stats {
    fn desc(&self) -> Vec<&Desc> {
        self.parts().into_iter().flat_map(|c| c.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.parts().into_iter().flat_map(|c| c.collect()).collect()
    }
}

/// Prometheus text (format 0.0.4) of these model versions' metrics.
pub fn render(models: &[&Stats]) -> String {
    let registry = prometheus::Registry::new();
    for stats in models {
        // Versions have distinct labels, so registering each succeeds.
        let _ = registry.register(Box::new((*stats).clone()));
    }
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding of gathered metrics");
    String::from_utf8(out).expect("the text format is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_versions_render_as_one_family_each_with_triton_names_and_a_histogram() {
        let (a, b) = (Stats::new("m", 1), Stats::new("m", 2));
        a.record_request(true, Duration::from_micros(300));
        a.record_request(false, Duration::from_millis(3));
        a.record_execution(4, Duration::from_micros(120));
        b.record_request(true, Duration::from_micros(70));
        let text = render(&[&a, &b]);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has("# TYPE nv_inference_request_success counter"), "{text}");
        assert!(
            has(r#"nv_inference_request_success{model="m",version="1"} 1"#),
            "{text}"
        );
        assert!(
            has(r#"nv_inference_request_success{model="m",version="2"} 1"#),
            "{text}"
        );
        assert!(
            has(r#"nv_inference_request_failure{model="m",version="1"} 1"#),
            "{text}"
        );
        assert!(
            has(r#"nv_inference_count{model="m",version="1"} 4"#),
            "{text}"
        );
        assert!(
            has(r#"nv_inference_request_duration_us{model="m",version="1"} 3300"#),
            "{text}"
        );
        assert!(
            has("# TYPE kiln_inference_request_duration_seconds histogram"),
            "{text}"
        );
        let bucket = |version: u64, le: &str| {
            format!(
                r#"kiln_inference_request_duration_seconds_bucket{{model="m",version="{version}",le="{le}"}}"#
            )
        };
        assert!(has(&format!("{} 0", bucket(1, "0.00025"))), "{text}");
        assert!(has(&format!("{} 1", bucket(1, "0.0005"))), "{text}");
        assert!(has(&format!("{} 2", bucket(1, "0.005"))), "{text}");
        assert!(has(&format!("{} 1", bucket(2, "0.0001"))), "{text}");
        assert_eq!(
            text.matches("# TYPE nv_inference_count counter").count(),
            1,
            "one family for both versions"
        );
    }
}
