//! Per model version counters with Triton's meanings, exported at `/metrics` in Prometheus'
//! text format: requests that succeeded and failed, inferences (batch rows) and executions
//! (graph runs; inferences ÷ executions is the average batch size), and cumulative request,
//! queue and compute durations.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The counters of one model version.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered with outputs.
    pub success: AtomicU64,
    /// Requests answered with an error after they were queued.
    pub failure: AtomicU64,
    /// Batch rows run.
    pub inferences: AtomicU64,
    /// Graph runs.
    pub executions: AtomicU64,
    /// Microseconds from a request's arrival to its answer, summed.
    pub request_us: AtomicU64,
    /// Microseconds requests waited in the queue, summed.
    pub queue_us: AtomicU64,
    /// Microseconds the graph ran, summed over runs.
    pub compute_us: AtomicU64,
}

impl Stats {
    /// A request finished after `took`.
    pub fn record_request(&self, ok: bool, took: Duration) {
        if ok { &self.success } else { &self.failure }.fetch_add(1, Relaxed);
        self.request_us.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// A request left the queue after waiting `waited`.
    pub fn record_queue(&self, waited: Duration) {
        self.queue_us.fetch_add(waited.as_micros() as u64, Relaxed);
    }

    /// The graph ran once on `rows` rows, taking `took`.
    pub fn record_execution(&self, rows: usize, took: Duration) {
        self.executions.fetch_add(1, Relaxed);
        self.inferences.fetch_add(rows as u64, Relaxed);
        self.compute_us.fetch_add(took.as_micros() as u64, Relaxed);
    }
}

/// A metric: name, help text, and the counter it reads (every metric is a counter).
type Metric = (&'static str, &'static str, fn(&Stats) -> &AtomicU64);

/// Prometheus text for `(model, version, stats)` rows, metric names as Triton's.
pub fn render(models: &[(String, u64, &Stats)]) -> String {
    let metrics: [Metric; 7] = [
        (
            "nv_inference_request_success",
            "Number of successful inference requests",
            |s| &s.success,
        ),
        (
            "nv_inference_request_failure",
            "Number of failed inference requests",
            |s| &s.failure,
        ),
        (
            "nv_inference_count",
            "Number of inferences performed (batch rows)",
            |s| &s.inferences,
        ),
        (
            "nv_inference_exec_count",
            "Number of model executions (batches run)",
            |s| &s.executions,
        ),
        (
            "nv_inference_request_duration_us",
            "Cumulative request duration in microseconds",
            |s| &s.request_us,
        ),
        (
            "nv_inference_queue_duration_us",
            "Cumulative queue duration in microseconds",
            |s| &s.queue_us,
        ),
        (
            "nv_inference_compute_infer_duration_us",
            "Cumulative compute duration in microseconds",
            |s| &s.compute_us,
        ),
    ];
    let mut out = String::new();
    for (name, help, field) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (model, version, stats) in models {
            let _ = writeln!(
                out,
                "{name}{{model=\"{model}\",version=\"{version}\"}} {}",
                field(stats).load(Relaxed)
            );
        }
    }
    out
}
