//! Compile reports: what tracing and each pass did, printed when `KILN_LOG` contains `compile`
//! and kept on the [`Compiled`](crate::Compiled) function for inspection.

use std::fmt;
use std::time::Duration;

/// What one pass did.
#[derive(Clone, Debug)]
pub struct PassReport {
    /// The pass's name.
    pub name: &'static str,
    /// Time it took.
    pub time: Duration,
    /// Nodes before it ran.
    pub nodes_before: usize,
    /// Nodes after it ran.
    pub nodes_after: usize,
}

/// What one compilation (one input signature) did.
#[derive(Clone, Debug, Default)]
pub struct CompileReport {
    /// Time spent tracing the function.
    pub trace_time: Duration,
    /// Nodes recorded by the trace.
    pub traced_nodes: usize,
    /// Each pass in order.
    pub passes: Vec<PassReport>,
    /// Nodes left after all passes.
    pub final_nodes: usize,
    /// Bytes of all intermediate values if each had its own buffer.
    pub intermediate_bytes: usize,
    /// Bytes of values needed at once at the peak of the schedule, views keeping their base
    /// alive (the least the planned buffers can total).
    pub peak_live_bytes: usize,
    /// Bytes of the executor's planned buffers (see [`crate::memplan`]).
    pub arena_bytes: usize,
    /// How many planned buffers.
    pub buffers: usize,
}

impl CompileReport {
    /// Trace plus pass time.
    pub fn total_time(&self) -> Duration {
        self.trace_time + self.passes.iter().map(|p| p.time).sum::<Duration>()
    }

    /// Fills in the memory plan's figures.
    pub fn set_plan(&mut self, plan: &kiln_runtime::memplan::MemoryPlan) {
        self.arena_bytes = plan.arena_bytes();
        self.buffers = plan.buffers.len();
        self.peak_live_bytes = plan.live_peak_bytes;
    }
}

impl fmt::Display for CompileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kiln compile: trace {:.2} ms, {} nodes",
            self.trace_time.as_secs_f64() * 1e3,
            self.traced_nodes
        )?;
        for p in &self.passes {
            writeln!(
                f,
                "kiln compile:   {:<15} {:>8.3} ms  {:>6} -> {:<6} nodes",
                p.name,
                p.time.as_secs_f64() * 1e3,
                p.nodes_before,
                p.nodes_after
            )?;
        }
        write!(
            f,
            "kiln compile: total {:.2} ms, {} nodes; intermediates {:.1} MiB, planned arena \
             {:.1} MiB in {} buffers (peak live {:.1} MiB)",
            self.total_time().as_secs_f64() * 1e3,
            self.final_nodes,
            mib(self.intermediate_bytes),
            mib(self.arena_bytes),
            self.buffers,
            mib(self.peak_live_bytes)
        )
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// True when `KILN_LOG` asks for compile reports.
pub fn enabled() -> bool {
    std::env::var("KILN_LOG").is_ok_and(|v| v.split(',').any(|s| s.trim() == "compile"))
}
