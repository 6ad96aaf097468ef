//! `compile`: trace once per input signature, optimize, cache, run.

use crate::executor::Executable;
use crate::log::{CompileReport, PassReport};
use crate::passes::{default_pipeline, Pass};
use kiln_core::autograd::is_grad_enabled;
use kiln_core::trace::{trace, ArgSpec, Graph};
use kiln_core::Tensor;
use std::sync::Arc;
use std::time::Instant;

/// Options of [`Compiled`].
pub struct CompileOptions {
    /// Signatures kept compiled; the least recently used is dropped beyond this.
    pub cache_size: usize,
    /// Passes run on each traced graph, in order.
    pub passes: Vec<Box<dyn Pass>>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            cache_size: 8,
            passes: default_pipeline(),
        }
    }
}

/// The cache key: argument shapes, dtypes and gradient flags, plus grad mode.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Signature {
    args: Vec<ArgSpec>,
    grad_enabled: bool,
}

struct Entry {
    signature: Signature,
    executable: Arc<Executable>,
    report: CompileReport,
}

/// The compiled graphs of one function, keyed by input signature. [`Compiled`] pairs it with
/// its function; use it directly when the traced code needs borrows that only exist at call
/// time (a training loop passing its optimizer in).
pub struct GraphCache {
    options: CompileOptions,
    /// Most recently used first.
    cache: Vec<Entry>,
    traces: usize,
}

impl GraphCache {
    /// An empty cache.
    pub fn new(options: CompileOptions) -> GraphCache {
        GraphCache {
            options,
            cache: Vec::new(),
            traces: 0,
        }
    }

    /// Runs `f`'s graph for `args`' signature, tracing `f` first if there is none.
    pub fn call(
        &mut self,
        args: &[Tensor],
        f: &mut dyn FnMut(&[Tensor]) -> Vec<Tensor>,
    ) -> Vec<Tensor> {
        self.executable(args, f).run(args)
    }

    /// Reports of the compilations still cached, most recently used first.
    pub fn reports(&self) -> Vec<&CompileReport> {
        self.cache.iter().map(|e| &e.report).collect()
    }

    /// How many times the function was traced so far.
    pub fn trace_count(&self) -> usize {
        self.traces
    }

    /// The executable for `args`' signature, compiling `f` if needed.
    pub fn executable(
        &mut self,
        args: &[Tensor],
        f: &mut dyn FnMut(&[Tensor]) -> Vec<Tensor>,
    ) -> Arc<Executable> {
        let signature = Signature {
            args: args.iter().map(ArgSpec::of).collect(),
            grad_enabled: is_grad_enabled(),
        };
        if let Some(pos) = self.cache.iter().position(|e| e.signature == signature) {
            let entry = self.cache.remove(pos);
            let exe = entry.executable.clone();
            self.cache.insert(0, entry);
            return exe;
        }
        let (graph, mut report) = self.build(&signature.args, f);
        let executable = Arc::new(Executable::new(graph));
        let plan = executable.plan();
        report.arena_bytes = plan.arena_bytes();
        report.buffers = plan.buffers.len();
        report.peak_live_bytes = plan.live_peak_bytes;
        if crate::log::enabled() {
            eprintln!("{report}");
        }
        self.cache.insert(
            0,
            Entry {
                signature,
                executable: executable.clone(),
                report,
            },
        );
        self.cache.truncate(self.options.cache_size.max(1));
        executable
    }

    fn build(
        &mut self,
        specs: &[ArgSpec],
        f: &mut dyn FnMut(&[Tensor]) -> Vec<Tensor>,
    ) -> (Graph, CompileReport) {
        let start = Instant::now();
        let mut graph = trace(specs, f);
        self.traces += 1;
        let mut report = CompileReport {
            trace_time: start.elapsed(),
            traced_nodes: graph.nodes.len(),
            ..Default::default()
        };
        for pass in &self.options.passes {
            let t = Instant::now();
            let before = graph.nodes.len();
            pass.run(&mut graph);
            report.passes.push(PassReport {
                name: pass.name(),
                time: t.elapsed(),
                nodes_before: before,
                nodes_after: graph.nodes.len(),
            });
        }
        report.final_nodes = graph.nodes.len();
        report.intermediate_bytes = memory_profile(&graph).0;
        (graph, report)
    }
}

/// A compiled function: call it like the original; see [`compile`].
pub struct Compiled<F> {
    f: F,
    cache: GraphCache,
}

/// Compiles `f`, a function from tensors to tensors. The first call with a given input
/// signature (shapes, dtypes, `requires_grad` flags, grad mode) traces `f` into a graph,
/// optimizes it and runs it; later calls with that signature run the graph directly.
///
/// Parameters, buffers and optimizer state that `f` captures are read at each call (never
/// baked in); `backward()` and in-place optimizer updates inside `f` are part of the graph.
/// Rust control flow inside `f` runs once, at trace time: branching on tensor values panics.
pub fn compile<F>(f: F) -> Compiled<F>
where
    F: FnMut(&[Tensor]) -> Vec<Tensor>,
{
    Compiled::with_options(f, CompileOptions::default())
}

impl<F> Compiled<F>
where
    F: FnMut(&[Tensor]) -> Vec<Tensor>,
{
    /// [`compile`] with explicit options.
    pub fn with_options(f: F, options: CompileOptions) -> Compiled<F> {
        Compiled {
            f,
            cache: GraphCache::new(options),
        }
    }

    /// Runs the function on `args` (tracing and compiling first for a new signature).
    pub fn call(&mut self, args: &[Tensor]) -> Vec<Tensor> {
        self.cache.call(args, &mut self.f)
    }

    /// The optimized graph for `args`' signature (compiling it if needed).
    pub fn graph(&mut self, args: &[Tensor]) -> Graph {
        self.cache.executable(args, &mut self.f).graph().clone()
    }

    /// Reports of the compilations still cached, most recently used first.
    pub fn reports(&self) -> Vec<&CompileReport> {
        self.cache.reports()
    }

    /// How many times the function was traced so far.
    pub fn trace_count(&self) -> usize {
        self.cache.trace_count()
    }
}

/// Sum of all node results' bytes, and the most bytes live at once when each value is freed
/// after its last direct use (ignoring that views keep their base alive: the memory plan's
/// `live_peak_bytes` counts that).
pub fn memory_profile(g: &Graph) -> (usize, usize) {
    let bytes = |n: &kiln_core::trace::Node| {
        if n.op.is_view() || matches!(n.op, kiln_core::ops::Op::Reshape(_)) {
            0
        } else {
            n.shape.iter().product::<usize>() * n.dtype.size_in_bytes()
        }
    };
    let mut last_use = vec![0usize; g.id_bound()];
    for (i, n) in g.nodes.iter().enumerate() {
        for &a in &n.args {
            last_use[a as usize] = i;
        }
    }
    for r in g.roots() {
        last_use[r as usize] = usize::MAX;
    }
    let mut sum = 0;
    let mut live = 0usize;
    let mut peak = 0usize;
    let mut dying: Vec<Vec<usize>> = vec![Vec::new(); g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        let b = bytes(n);
        sum += b;
        live += b;
        peak = peak.max(live);
        let lu = last_use[n.id as usize];
        if lu != usize::MAX {
            dying[lu.max(i)].push(b);
        }
        for b in dying[i].drain(..) {
            live -= b;
        }
    }
    (sum, peak)
}
