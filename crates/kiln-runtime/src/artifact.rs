//! Shipping a graph: a compiled inference graph and its weights in one safetensors file (the
//! graph as JSON in the header metadata, captured tensors as named tensors), loadable and
//! runnable by a process that has no Rust code of the model.

use crate::executor::{Buffers, Executable};
use crate::ir::{infer_checked, Graph, Input, InputKind, Node, ValueId};
use crate::symbolic::{shape_at, BySize, Dim, DynamicGraph, SymShape, SymbolicError};
use crate::weights::{self, CheckpointError};
use kiln_kernels::ops::Op;
use kiln_kernels::shape::checked_numel;
use kiln_kernels::{DType, Operand, OwnedOperand};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The `format` metadata value of graph files.
pub const FORMAT: &str = "kiln-graph";
/// The graph schema version this build writes and reads.
pub const VERSION: u32 = 1;

/// Why a graph could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Reading or writing the file failed, or it is not a valid safetensors file.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The file is safetensors but not a Kiln graph (or a newer schema).
    #[error("{path}: not a Kiln graph file: {reason}")]
    NotAGraph {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The graph inside is inconsistent (bad operand, shape, missing weight…).
    #[error("{path}: malformed graph: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Running the graph would need more memory than the load options allow.
    #[error(
        "{path}: the graph needs {needed} bytes of buffers, more than the limit of {limit} \
         bytes (raise it with LoadOptions::max_buffer_bytes if the file is trusted)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Bytes its memory plan needs.
        needed: usize,
        /// The limit.
        limit: usize,
    },
    /// Only inference graphs (no state updates or gradients) can be shipped.
    #[error("cannot save a graph that updates state or sets gradients (a train step); compile the inference function under no_grad")]
    NotInference,
    /// The graph refused the data of a call (an index out of range).
    #[error("running the graph: {0}")]
    Run(#[from] crate::executor::RunError),
    /// The arguments' batch size is one the graph cannot run at (or they disagree on it).
    #[error(transparent)]
    Batch(#[from] SymbolicError),
    /// Arguments given to a loaded graph do not match its signature.
    #[error("argument {index}: expected {expected}, got {got}")]
    BadArgument {
        /// Which argument.
        index: usize,
        /// The signature's type.
        expected: String,
        /// The given type.
        got: String,
    },
}

#[derive(Serialize, Deserialize)]
struct InputRecord {
    id: ValueId,
    /// `arg`, `weight` (a captured parameter or buffer) or `const` (a tensor made while
    /// tracing: a constant filled with one value may follow a symbolic batch).
    kind: String,
    arg: Option<usize>,
    shape: Vec<usize>,
    dtype: DType,
}

#[derive(Serialize, Deserialize)]
struct NodeRecord {
    id: ValueId,
    op: Op,
    args: Vec<ValueId>,
    shape: Vec<usize>,
    dtype: DType,
    fresh_random: bool,
}

/// Where a graph with a symbolic batch dim has it.
#[derive(Serialize, Deserialize)]
struct BatchRecord {
    /// The batch size the graph was traced at (its recorded shapes are at this size).
    traced: usize,
    /// The arguments whose dim 0 is the batch.
    args: Vec<usize>,
    /// The arguments' and outputs' dims (`mul·B + add`), for readers of the file; the loader
    /// derives them again from the graph and checks they agree.
    arg_dims: Vec<SymShape>,
    output_dims: Vec<SymShape>,
}

#[derive(Serialize, Deserialize)]
struct GraphRecord {
    version: u32,
    inputs: Vec<InputRecord>,
    nodes: Vec<NodeRecord>,
    outputs: Vec<ValueId>,
    /// Present when the batch dim is symbolic (files without it run at one batch size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch: Option<BatchRecord>,
}

fn weight_name(id: ValueId) -> String {
    format!("v{id}")
}

/// Saves an inference graph and the current values of the tensors it captures to `path`
/// (written atomically).
pub fn save(graph: &Graph, path: impl AsRef<Path>) -> Result<(), ArtifactError> {
    save_record(graph, None, path.as_ref())
}

/// Saves an inference graph with a symbolic batch dim (see [`crate::symbolic`]): the loaded
/// graph runs at every batch size.
pub fn save_dynamic(graph: &DynamicGraph, path: impl AsRef<Path>) -> Result<(), ArtifactError> {
    let batch = BatchRecord {
        traced: graph.traced_batch(),
        args: graph.batch_args().to_vec(),
        arg_dims: arg_dims(graph).into_iter().map(|(d, _)| d).collect(),
        output_dims: graph.output_dims(),
    };
    save_record(graph.graph(), Some(batch), path.as_ref())
}

/// The dims of each argument of a graph with a symbolic batch, in argument order.
fn arg_dims(graph: &DynamicGraph) -> Vec<(SymShape, DType)> {
    let g = graph.graph();
    let mut args: Vec<(usize, SymShape, DType)> = g
        .inputs
        .iter()
        .filter_map(|i| match i.kind {
            InputKind::Arg(k) => Some((k, graph.dims(i.id).expect("input dims").clone(), i.dtype)),
            _ => None,
        })
        .collect();
    args.sort_by_key(|a| a.0);
    args.into_iter().map(|(_, d, t)| (d, t)).collect()
}

fn save_record(
    graph: &Graph,
    batch: Option<BatchRecord>,
    path: &Path,
) -> Result<(), ArtifactError> {
    if !graph.updates.is_empty() || !graph.grads.is_empty() {
        return Err(ArtifactError::NotInference);
    }
    let mut named: Vec<(String, Operand<'_>)> = Vec::new();
    let mut inputs = Vec::new();
    for i in &graph.inputs {
        let (kind, arg) = match &i.kind {
            InputKind::Arg(k) => ("arg", Some(*k)),
            InputKind::State | InputKind::Const => {
                let v = i.value.as_ref().expect("bound input");
                named.push((weight_name(i.id), v.operand()));
                let kind = if i.kind == InputKind::Const {
                    "const"
                } else {
                    "weight"
                };
                (kind, None)
            }
            InputKind::Grad(_) => return Err(ArtifactError::NotInference),
        };
        inputs.push(InputRecord {
            id: i.id,
            kind: kind.into(),
            arg,
            shape: i.shape.to_vec(),
            dtype: i.dtype,
        });
    }
    let record = GraphRecord {
        version: VERSION,
        inputs,
        nodes: graph
            .nodes
            .iter()
            .map(|n| NodeRecord {
                id: n.id,
                op: n.op.clone(),
                args: n.args.to_vec(),
                shape: n.shape.to_vec(),
                dtype: n.dtype,
                fresh_random: n.fresh_random,
            })
            .collect(),
        outputs: graph.outputs.clone(),
        batch,
    };
    let json = serde_json::to_string(&record).expect("graph serializes");
    let meta = HashMap::from([
        ("kiln.format".to_string(), FORMAT.to_string()),
        ("kiln.graph".to_string(), json),
    ]);
    weights::save(named.iter().map(|(n, v)| (n.as_str(), *v)), path, &meta)?;
    Ok(())
}

/// A graph loaded from a file, ready to run.
pub struct LoadedGraph {
    form: Form,
    /// Argument dims and dtypes (fixed dims unless the batch is symbolic).
    arg_dims: Vec<(SymShape, DType)>,
    /// The argument shapes (at the traced batch size, when the batch is symbolic).
    args: Vec<(Vec<usize>, DType)>,
}

/// A loaded graph at one size, or with its symbolic batch.
enum Form {
    /// Fixed shapes: one plan.
    Fixed(SizedGraph),
    /// A symbolic batch: the plans of the batch sizes run recently.
    Dynamic {
        graph: DynamicGraph,
        plans: Mutex<BySize<SizedGraph>>,
        /// The most bytes one size's buffers may take.
        limit: usize,
        path: PathBuf,
    },
}

/// A graph written out at one batch size, with its plan and the buffers of its last call.
struct SizedGraph {
    exe: Executable,
    buffers: Mutex<Option<Buffers>>,
}

impl SizedGraph {
    /// Plans `graph`, refusing it when its buffers would pass `limit`.
    fn new(graph: Graph, limit: usize, path: &Path) -> Result<SizedGraph, ArtifactError> {
        let exe = Executable::new(graph);
        let needed = exe
            .plan()
            .buffers
            .iter()
            .map(|b| b.bytes())
            .fold(0usize, usize::saturating_add);
        if needed > limit {
            return Err(ArtifactError::TooLarge {
                path: path.into(),
                needed,
                limit,
            });
        }
        Ok(SizedGraph {
            exe,
            buffers: Mutex::new(None),
        })
    }

    fn run(&self, args: &[Operand<'_>]) -> Result<Vec<OwnedOperand>, ArtifactError> {
        let mut slot = self.buffers.lock();
        if slot.as_ref().is_none_or(Buffers::escaped) {
            *slot = Some(self.exe.buffers());
        }
        let bufs = slot.as_ref().expect("buffers made");
        self.exe.run(bufs, args)?;
        Ok(self
            .exe
            .graph()
            .outputs
            .iter()
            .map(|&o| bufs.value(o).clone())
            .collect())
    }
}

impl LoadedGraph {
    /// The graph (at its traced batch size, when the batch is symbolic).
    pub fn graph(&self) -> &Graph {
        match &self.form {
            Form::Fixed(sized) => sized.exe.graph(),
            Form::Dynamic { graph, .. } => graph.graph(),
        }
    }

    /// The expected argument shapes and dtypes; for a graph with a symbolic batch, at the
    /// batch size it was traced at ([`LoadedGraph::arg_dims`] says which dims follow the
    /// batch).
    pub fn signature(&self) -> &[(Vec<usize>, DType)] {
        &self.args
    }

    /// The arguments' dims (each `mul·B + add` of the batch size `B`) and dtypes.
    pub fn arg_dims(&self) -> &[(SymShape, DType)] {
        &self.arg_dims
    }

    /// The outputs' dims and dtypes.
    pub fn output_dims(&self) -> Vec<(SymShape, DType)> {
        let graph = self.graph();
        let types = graph.types();
        graph
            .outputs
            .iter()
            .map(|&o| {
                let (shape, dtype) = types[o as usize].clone().expect("outputs typed");
                let dims = match self.dynamic() {
                    Some(d) => d.dims(o).expect("output dims").clone(),
                    None => shape.iter().map(|&n| Dim::fixed(n)).collect(),
                };
                (dims, dtype)
            })
            .collect()
    }

    /// The graph with its symbolic batch, if it has one.
    pub fn dynamic(&self) -> Option<&DynamicGraph> {
        match &self.form {
            Form::Fixed(_) => None,
            Form::Dynamic { graph, .. } => Some(graph),
        }
    }

    /// How many plans were made so far: one per batch size run (and per size seen again after
    /// it was evicted from the cache of recent sizes); 1 for a graph of fixed shapes.
    pub fn plans_made(&self) -> usize {
        match &self.form {
            Form::Fixed(_) => 1,
            Form::Dynamic { plans, .. } => plans.lock().made(),
        }
    }

    /// Checks `args` against [`LoadedGraph::arg_dims`] at `batch` (`None`: fixed shapes).
    fn check_args(&self, args: &[Operand<'_>], batch: Option<usize>) -> Result<(), ArtifactError> {
        if args.len() != self.arg_dims.len() {
            return Err(ArtifactError::BadArgument {
                index: args.len().min(self.arg_dims.len()),
                expected: format!("{} arguments", self.arg_dims.len()),
                got: format!("{} arguments", args.len()),
            });
        }
        for (index, (a, (dims, dtype))) in args.iter().zip(&self.arg_dims).enumerate() {
            let shape = shape_at(dims, batch.unwrap_or(0));
            if shape.as_deref() != Some(a.shape()) || a.dtype() != *dtype {
                return Err(ArtifactError::BadArgument {
                    index,
                    expected: format!("{dtype}{}", crate::symbolic::shape_label(dims)),
                    got: format!("{}{:?}", a.dtype(), a.shape()),
                });
            }
        }
        Ok(())
    }

    /// Runs the graph; arguments must match [`LoadedGraph::arg_dims`] (at one batch size,
    /// when the batch is symbolic). The outputs are views of the graph's buffers: kept past
    /// the next call, they stay as they are (that call moves to fresh buffers).
    pub fn run(&self, args: &[Operand<'_>]) -> Result<Vec<OwnedOperand>, ArtifactError> {
        match &self.form {
            Form::Fixed(sized) => {
                self.check_args(args, None)?;
                sized.run(args)
            }
            Form::Dynamic {
                graph,
                plans,
                limit,
                path,
            } => {
                let shapes: Vec<&[usize]> = args.iter().map(|a| a.shape()).collect();
                let batch = graph.batch_of(&shapes)?;
                self.check_args(args, Some(batch))?;
                let sized = plans.lock().get_or_try_insert(batch, || {
                    SizedGraph::new(graph.instantiate(batch)?, *limit, path)
                })?;
                sized.run(args)
            }
        }
    }
}

impl LoadedGraph {
    /// A graph built in memory (an imported model) ready to run, under the same bound on its
    /// buffers as a loaded file (`options`; the default is [`default_buffer_limit`] of its
    /// weights). Its nodes must already be checked (operands defined, shapes inferred), as an
    /// importer does while building it; `name` names it in errors.
    pub fn from_graph(
        graph: Graph,
        name: &Path,
        options: LoadOptions,
    ) -> Result<LoadedGraph, ArtifactError> {
        let limit = buffer_limit(&graph, options);
        let args = graph_args(&graph);
        let arg_dims = args
            .iter()
            .map(|(s, t)| (s.iter().map(|&n| Dim::fixed(n)).collect(), *t))
            .collect();
        Ok(LoadedGraph {
            form: Form::Fixed(SizedGraph::new(graph, limit, name)?),
            arg_dims,
            args,
        })
    }

    /// [`LoadedGraph::from_graph`] for a graph with a symbolic batch: each batch size gets its
    /// own plan when first run (the last 4 are kept).
    pub fn from_dynamic(
        graph: DynamicGraph,
        name: &Path,
        options: LoadOptions,
    ) -> Result<LoadedGraph, ArtifactError> {
        let limit = buffer_limit(graph.graph(), options);
        let args = graph_args(graph.graph());
        let mut plans = BySize::new(4);
        plans.get_or_try_insert(graph.traced_batch(), || {
            SizedGraph::new(graph.graph().clone(), limit, name)
        })?;
        let arg_dims = arg_dims(&graph);
        Ok(LoadedGraph {
            form: Form::Dynamic {
                graph,
                plans: Mutex::new(plans),
                limit,
                path: name.into(),
            },
            arg_dims,
            args,
        })
    }
}

/// The bound on a graph's buffers: `options`' or the default for its weights.
fn buffer_limit(graph: &Graph, options: LoadOptions) -> usize {
    let weight_bytes = graph
        .inputs
        .iter()
        .filter_map(|i| i.value.as_ref())
        .map(|v| v.operand().numel() * v.operand().dtype().size_in_bytes())
        .fold(0usize, usize::saturating_add);
    options
        .max_buffer_bytes
        .unwrap_or_else(|| default_buffer_limit(weight_bytes))
}

/// A graph's argument shapes and dtypes, by position.
fn graph_args(graph: &Graph) -> Vec<(Vec<usize>, DType)> {
    let mut args: Vec<(usize, Vec<usize>, DType)> = graph
        .inputs
        .iter()
        .filter_map(|i| match i.kind {
            InputKind::Arg(k) => Some((k, i.shape.to_vec(), i.dtype)),
            _ => None,
        })
        .collect();
    args.sort_by_key(|a| a.0);
    args.into_iter().map(|(_, s, t)| (s, t)).collect()
}

/// Limits applied when loading a graph file.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// The most bytes the graph's planned buffers may take. `None`: the default,
    /// [`default_buffer_limit`] of the file's weights.
    pub max_buffer_bytes: Option<usize>,
}

/// The default bound on a loaded graph's buffers: 1 GiB, or 64 times its weights' bytes when
/// that is more (a real model's activations are a small multiple of its weights even at large
/// batch; a file asking for more is almost surely damaged or hostile).
pub fn default_buffer_limit(weight_bytes: usize) -> usize {
    (1usize << 30).max(weight_bytes.saturating_mul(64))
}

/// Loads a graph saved by [`save`] with the default [`LoadOptions`].
pub fn load(path: impl AsRef<Path>) -> Result<LoadedGraph, ArtifactError> {
    load_with(path, LoadOptions::default())
}

/// Loads a graph saved by [`save`]. Every property the executor relies on is checked
/// (operands defined before use, each node's attributes, shapes and dtypes re-inferred,
/// weights present, no writes into weights, buffers within `options`' bound), so a damaged or
/// hand-edited file is an error, not a crash; nothing is printed on rejection.
pub fn load_with(
    path: impl AsRef<Path>,
    options: LoadOptions,
) -> Result<LoadedGraph, ArtifactError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.into(),
        source,
    })?;
    load_bytes(&bytes, path, options)
}

/// [`load_with`] for the bytes of a graph file; `path` only names it in errors.
pub fn load_bytes(
    bytes: &[u8],
    path: &Path,
    options: LoadOptions,
) -> Result<LoadedGraph, ArtifactError> {
    let (named, meta) = weights::parse(bytes, path)?;
    let weights: HashMap<String, OwnedOperand> = named.into_iter().collect();
    let not_graph = |reason: String| ArtifactError::NotAGraph {
        path: path.into(),
        reason,
    };
    let malformed = |reason: String| ArtifactError::Malformed {
        path: path.into(),
        reason,
    };
    if meta.get("kiln.format").map(String::as_str) != Some(FORMAT) {
        return Err(not_graph("no kiln.format=kiln-graph metadata".into()));
    }
    let json = meta
        .get("kiln.graph")
        .ok_or_else(|| not_graph("no kiln.graph metadata".into()))?;
    let record: GraphRecord =
        serde_json::from_str(json).map_err(|e| malformed(format!("graph JSON: {e}")))?;
    if record.version != VERSION {
        return Err(not_graph(format!(
            "schema version {} (this build reads {VERSION})",
            record.version
        )));
    }
    // Ids index dense tables in the executor: refuse absurd ones rather than allocate them.
    let max_id = 16 * (record.inputs.len() + record.nodes.len()) as u64 + 1024;
    if let Some(id) = record
        .inputs
        .iter()
        .map(|i| i.id)
        .chain(record.nodes.iter().map(|n| n.id))
        .find(|&id| id as u64 > max_id)
    {
        return Err(malformed(format!("value id %{id} is out of range")));
    }
    let mut types: HashMap<ValueId, (Vec<usize>, DType)> = HashMap::new();
    let mut inputs = Vec::new();
    let mut args: Vec<Option<(Vec<usize>, DType)>> = Vec::new();
    for r in record.inputs {
        if types.contains_key(&r.id) {
            return Err(malformed(format!("value %{} defined twice", r.id)));
        }
        let (kind, value) = match (r.kind.as_str(), r.arg) {
            ("arg", Some(k)) => {
                if k > 1024 {
                    return Err(malformed(format!("argument index {k} out of range")));
                }
                if let Err(e) = checked_numel(&r.shape, r.dtype.size_in_bytes()) {
                    return Err(malformed(format!("argument {k}: {e}")));
                }
                if args.len() <= k {
                    args.resize(k + 1, None);
                }
                args[k] = Some((r.shape.clone(), r.dtype));
                (InputKind::Arg(k), None)
            }
            (kind @ ("weight" | "const"), _) => {
                let v = weights
                    .get(&weight_name(r.id))
                    .ok_or_else(|| malformed(format!("weight for %{} is missing", r.id)))?;
                let t = v.operand();
                if t.shape() != &r.shape[..] || t.dtype() != r.dtype {
                    return Err(malformed(format!(
                        "weight for %{} is {}{:?}, the graph says {}{:?}",
                        r.id,
                        t.dtype(),
                        t.shape(),
                        r.dtype,
                        r.shape
                    )));
                }
                let kind = if kind == "const" {
                    InputKind::Const
                } else {
                    InputKind::State
                };
                (kind, Some(v.clone()))
            }
            (k, _) => return Err(malformed(format!("unknown input kind {k:?}"))),
        };
        types.insert(r.id, (r.shape.clone(), r.dtype));
        inputs.push(Input {
            id: r.id,
            kind,
            value,
            shape: r.shape.iter().copied().collect(),
            dtype: r.dtype,
        });
    }
    let args: Vec<(Vec<usize>, DType)> = args
        .into_iter()
        .enumerate()
        .map(|(k, a)| a.ok_or_else(|| malformed(format!("argument {k} is never declared"))))
        .collect::<Result<_, _>>()?;
    let mut nodes = Vec::new();
    for r in record.nodes {
        if types.contains_key(&r.id) {
            return Err(malformed(format!("value %{} defined twice", r.id)));
        }
        let operand_types =
            r.args
                .iter()
                .map(|a| {
                    types.get(a).map(|(s, d)| (&s[..], *d)).ok_or_else(|| {
                        malformed(format!("%{} uses %{a} before it is defined", r.id))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
        if r.fresh_random && !matches!(r.op, Op::Random { .. }) {
            return Err(malformed(format!("%{}: only random ops draw fresh", r.id)));
        }
        // An inference graph must give the same outputs at every call: nothing may write
        // into its operands (the weights).
        if !r.op.writes_args().is_empty() {
            return Err(malformed(format!(
                "%{}: {} writes into its operands, which an inference graph may not do",
                r.id,
                r.op.name()
            )));
        }
        let (shape, dtype) = infer_checked(&r.op, &operand_types)
            .map_err(|e| malformed(format!("%{}: {e}", r.id)))?;
        if shape.as_slice() != &r.shape[..] || dtype != r.dtype {
            return Err(malformed(format!(
                "%{}: {} gives {dtype}{shape:?}, the file says {}{:?}",
                r.id,
                r.op.name(),
                r.dtype,
                r.shape
            )));
        }
        types.insert(r.id, (r.shape.clone(), r.dtype));
        nodes.push(Node {
            id: r.id,
            op: r.op,
            args: r.args.into_iter().collect(),
            shape,
            dtype,
            fresh_random: r.fresh_random,
        });
    }
    let defined: HashSet<ValueId> = types.keys().copied().collect();
    if let Some(o) = record.outputs.iter().find(|o| !defined.contains(o)) {
        return Err(malformed(format!("output %{o} is not defined")));
    }
    let weight_bytes = weights
        .values()
        .map(|v| v.operand().numel() * v.operand().dtype().size_in_bytes())
        .fold(0usize, usize::saturating_add);
    let limit = options
        .max_buffer_bytes
        .unwrap_or_else(|| default_buffer_limit(weight_bytes));
    let graph = Graph::inference(inputs, nodes, record.outputs);
    // The plan at the traced size is made now, so a graph too large for the limit is refused
    // at load (other sizes are checked when first run).
    let (form, arg_dims) = match record.batch {
        None => {
            let arg_dims = args
                .iter()
                .map(|(s, t)| (s.iter().map(|&n| Dim::fixed(n)).collect(), *t))
                .collect();
            (Form::Fixed(SizedGraph::new(graph, limit, path)?), arg_dims)
        }
        Some(b) => {
            let dynamic = dynamic_of(graph, b, &args).map_err(malformed)?;
            let mut plans = BySize::new(4);
            plans.get_or_try_insert(dynamic.traced_batch(), || {
                SizedGraph::new(dynamic.graph().clone(), limit, path)
            })?;
            let arg_dims = arg_dims(&dynamic);
            let form = Form::Dynamic {
                graph: dynamic,
                plans: Mutex::new(plans),
                limit,
                path: path.into(),
            };
            (form, arg_dims)
        }
    };
    Ok(LoadedGraph {
        form,
        arg_dims,
        args,
    })
}

/// The symbolic batch of a loaded graph, checked against what the file says.
fn dynamic_of(
    graph: Graph,
    b: BatchRecord,
    args: &[(Vec<usize>, DType)],
) -> Result<DynamicGraph, String> {
    if b.traced > 1 << 20 {
        return Err(format!("traced batch size {} is out of range", b.traced));
    }
    if let Some(k) = b.args.iter().find(|&&k| k >= args.len()) {
        return Err(format!("batch argument {k} does not exist"));
    }
    let d = DynamicGraph::new(graph, b.traced, &b.args).map_err(|e| e.to_string())?;
    let derived: Vec<SymShape> = arg_dims(&d).into_iter().map(|(s, _)| s).collect();
    if derived != b.arg_dims || d.output_dims() != b.output_dims {
        return Err("the recorded symbolic dims do not match the graph".into());
    }
    Ok(d)
}
