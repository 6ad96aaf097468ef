//! `compile`: trace once per input signature, optimize, cache, run.

use crate::executor::Executable;
use crate::log::{CompileReport, PassReport};
use crate::passes::{default_pipeline, Pass};
use kiln_core::autograd::is_grad_enabled;
use kiln_core::trace::{trace, ArgSpec, Graph};
use kiln_core::Tensor;
use kiln_runtime::symbolic::{BySize, DynamicGraph, TRACE_BATCH};
use std::sync::Arc;
use std::time::Instant;

/// Options of [`Compiled`].
pub struct CompileOptions {
    /// Signatures kept compiled; the least recently used is dropped beyond this.
    pub cache_size: usize,
    /// Passes run on each traced graph, in order.
    pub passes: Vec<Box<dyn Pass>>,
    /// Trace one graph with a symbolic batch dim that runs at every batch size (see
    /// [`kiln_runtime::symbolic`]) instead of one graph per argument shape.
    pub dynamic_batch: bool,
    /// With `dynamic_batch`, the arguments whose dim 0 is the batch; `None`: every argument
    /// that is not 0-d.
    pub batch_args: Option<Vec<usize>>,
    /// With `dynamic_batch`, how many batch sizes keep their plan and buffers (most recently
    /// used).
    pub plans_per_graph: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            cache_size: 8,
            passes: default_pipeline(),
            dynamic_batch: false,
            batch_args: None,
            plans_per_graph: 4,
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
    plans: Plans,
    report: CompileReport,
}

/// The compiled form of one signature.
enum Plans {
    /// One graph for the signature's shapes.
    Fixed(Arc<Executable>),
    /// A graph with a symbolic batch dim, and its plans for the batch sizes run recently.
    Dynamic {
        graph: Box<DynamicGraph>,
        sizes: BySize<Executable>,
    },
}

/// The compiled graphs of one function, keyed by input signature. [`Compiled`] pairs it with
/// its function; use it directly when the traced code needs borrows that only exist at call
/// time (a training loop passing its optimizer in).
pub struct GraphCache {
    options: CompileOptions,
    /// Most recently used first.
    cache: Vec<Entry>,
    traces: usize,
    plans: usize,
}

impl GraphCache {
    /// An empty cache.
    pub fn new(options: CompileOptions) -> GraphCache {
        GraphCache {
            options,
            cache: Vec::new(),
            traces: 0,
            plans: 0,
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

    /// How many graphs were planned so far: one per trace, plus one per new batch size of a
    /// graph with a symbolic batch (no re-trace).
    pub fn plan_count(&self) -> usize {
        self.plans
    }

    /// The arguments that carry the batch, when the batch is symbolic.
    fn batch_args(&self, args: &[Tensor]) -> Vec<usize> {
        if !self.options.dynamic_batch {
            return Vec::new();
        }
        match &self.options.batch_args {
            Some(list) => list.clone(),
            None => (0..args.len()).filter(|&k| args[k].rank() > 0).collect(),
        }
    }

    /// The executable for `args`' signature, compiling `f` if needed.
    #[track_caller]
    pub fn executable(
        &mut self,
        args: &[Tensor],
        f: &mut dyn FnMut(&[Tensor]) -> Vec<Tensor>,
    ) -> Arc<Executable> {
        let batch_args = self.batch_args(args);
        let mut specs: Vec<ArgSpec> = args.iter().map(ArgSpec::of).collect();
        let mut batch = None;
        for &k in &batch_args {
            let Some(spec) = specs.get_mut(k).filter(|s| !s.shape.is_empty()) else {
                panic!(
                    "compile: argument {k} should carry the batch in dim 0, but {} arguments \
                     were given and it is not one of them or is 0-d",
                    args.len()
                );
            };
            match batch {
                Some(b) if b != spec.shape[0] => panic!(
                    "compile: the batch arguments disagree on the batch size: {b} and {} \
                     (argument {k}, shape {:?})",
                    spec.shape[0], spec.shape
                ),
                _ => batch = Some(spec.shape[0]),
            }
            // The signature leaves the batch out; the trace is made at TRACE_BATCH.
            spec.shape[0] = 0;
        }
        let signature = Signature {
            args: specs,
            grad_enabled: is_grad_enabled(),
        };
        let pos = match self.cache.iter().position(|e| e.signature == signature) {
            Some(pos) => pos,
            None => {
                self.compile_signature(signature, &batch_args, f);
                0
            }
        };
        let entry = self.cache.remove(pos);
        self.cache.insert(0, entry);
        let plans = &mut self.plans;
        match &mut self.cache[0].plans {
            Plans::Fixed(exe) => exe.clone(),
            Plans::Dynamic { graph, sizes } => {
                let b = batch.expect("a dynamic graph has batch arguments");
                sizes
                    .get_or_try_insert(b, || {
                        *plans += 1;
                        graph.instantiate(b).map(Executable::new)
                    })
                    .unwrap_or_else(|e| panic!("compile: {e}"))
            }
        }
    }

    /// The graph with a symbolic batch that `args`' signature runs, if the batch is symbolic
    /// (compiling `f` if needed): what [`kiln_runtime::artifact::save_dynamic`] ships.
    pub fn dynamic_graph(
        &mut self,
        args: &[Tensor],
        f: &mut dyn FnMut(&[Tensor]) -> Vec<Tensor>,
    ) -> Option<DynamicGraph> {
        self.executable(args, f);
        match &self.cache[0].plans {
            Plans::Dynamic { graph, .. } => Some((**graph).clone()),
            Plans::Fixed(_) => None,
        }
    }

    /// Traces, optimizes and plans `f` for `signature`, as the most recently used entry.
    #[track_caller]
    fn compile_signature(
        &mut self,
        signature: Signature,
        batch_args: &[usize],
        f: &mut dyn FnMut(&[Tensor]) -> Vec<Tensor>,
    ) {
        let mut specs = signature.args.clone();
        for &k in batch_args {
            specs[k].shape[0] = TRACE_BATCH;
        }
        let (graph, mut report) = self.build(&specs, f);
        let plans = if batch_args.is_empty() {
            self.plans += 1;
            let executable = Arc::new(Executable::new(graph));
            report.set_plan(executable.plan());
            Plans::Fixed(executable)
        } else {
            // The report shows the plan at TRACE_BATCH; calls plan their own sizes.
            report.set_plan(&kiln_runtime::memplan::plan_graph(&graph));
            let dynamic = DynamicGraph::new(graph, TRACE_BATCH, batch_args).unwrap_or_else(|e| {
                panic!("compile with a dynamic batch: {e}");
            });
            Plans::Dynamic {
                graph: Box::new(dynamic),
                sizes: BySize::new(self.options.plans_per_graph),
            }
        };
        if crate::log::enabled() {
            eprintln!("{report}");
        }
        self.cache.insert(
            0,
            Entry {
                signature,
                plans,
                report,
            },
        );
        self.cache.truncate(self.options.cache_size.max(1));
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

    /// How many graphs were planned so far: one per trace, and with
    /// [`Compiled::dynamic_batch`] one per new batch size (with no re-trace).
    pub fn plan_count(&self) -> usize {
        self.cache.plan_count()
    }

    /// Traces one graph with a symbolic batch dim (dim 0 of every argument that is not 0-d)
    /// that runs at every batch size: a new batch size makes a new memory plan from the same
    /// graph, with no re-trace (the plans of the last few sizes are kept). The trace happens
    /// at a batch of [`TRACE_BATCH`]; code that makes a tensor whose shape follows the batch
    /// size from plain numbers (`Tensor::zeros([x.shape()[0], 4])`) is read as such only when
    /// it is used with the batch, and an op that cannot follow the batch size is a panic at
    /// trace time naming it.
    pub fn dynamic_batch(mut self) -> Self {
        self.cache.options.dynamic_batch = true;
        self
    }

    /// The graph with a symbolic batch dim for `args`' signature (after
    /// [`Compiled::dynamic_batch`]; `None` otherwise), to ship with
    /// [`crate::artifact::save_dynamic`].
    pub fn dynamic_graph(&mut self, args: &[Tensor]) -> Option<DynamicGraph> {
        self.cache.dynamic_graph(args, &mut self.f)
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
