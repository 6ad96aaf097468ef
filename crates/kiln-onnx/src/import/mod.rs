//! ONNX import: an ONNX model as a Kiln inference graph, run by Kiln's executor.
//!
//! The graph is built at one size, as `compile` traces one: a symbolic batch dim (dim 0 of the
//! inputs that have a dim parameter there) is given the trace size 97, every other symbolic
//! dim a size from [`ImportOptions::dims`]. Each node becomes Kiln ops checked by their shape
//! rules; shape arithmetic is folded while importing. The graph is then analysed for its
//! symbolic batch (`DynamicGraph`), so one import runs every batch size. Anything Kiln cannot
//! import — an op, an attribute, an element type, a batch dim that cannot stay symbolic — is an
//! [`OnnxError`] naming it; nothing panics on a malformed file.

mod attrs;
mod builder;
mod ops;
mod tensor;

pub use ops::supported;
pub use tensor::decode as decode_tensor;

use crate::error::OnnxError;
use crate::proto::tensor_shape_proto::dimension;
use crate::proto::{type_proto, ModelProto, ValueInfoProto};
use builder::{Builder, Value};
use kiln_kernels::{DType, Operand, OwnedOperand};
use kiln_runtime::artifact::{ArtifactError, LoadOptions, LoadedGraph};
use kiln_runtime::ir::Graph;
use kiln_runtime::symbolic::{Dim, DynamicGraph, SymShape, TRACE_BATCH};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// A graph rewrite run on the imported graph before it is planned (the facade passes Kiln's
/// optimization pipeline).
pub type Optimize = Arc<dyn Fn(&mut Graph) + Send + Sync>;

/// How a model is imported.
#[derive(Clone, Default)]
pub struct ImportOptions {
    /// Sizes of symbolic dims, by their ONNX dim parameter name (`"sequence" → 128`). A symbolic
    /// dim 0 not named here is the batch and stays symbolic; any other must be named.
    pub dims: BTreeMap<String, usize>,
    /// Rewrites the graph before it is planned (Kiln's passes; `None`: run it as imported).
    pub optimize: Option<Optimize>,
    /// The most bytes the graph's buffers may take at one batch size (`None`: the default
    /// bound of graph files, `kiln_runtime::artifact::default_buffer_limit`).
    pub max_buffer_bytes: Option<usize>,
}

/// One input or output of an imported model.
#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    /// Its name in the ONNX graph.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dims; the batch is symbolic.
    pub dims: SymShape,
}

/// An imported model, ready to run.
pub struct OnnxModel {
    loaded: LoadedGraph,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    opset: i64,
    producer: String,
}

impl OnnxModel {
    /// Runs the model on one value per input (in the order of [`OnnxModel::inputs`]); any
    /// batch size when the batch is symbolic. Wrong shapes or dtypes are an error.
    pub fn run(&self, args: &[Operand<'_>]) -> Result<Vec<OwnedOperand>, ArtifactError> {
        self.loaded.run(args)
    }

    /// The inputs, in the order [`OnnxModel::run`] takes them.
    pub fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    /// The outputs, in the order [`OnnxModel::run`] returns them.
    pub fn outputs(&self) -> &[Port] {
        &self.outputs
    }

    /// The opset of the default domain the model was written for.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// The tool that wrote the model (its `producer_name` and version).
    pub fn producer(&self) -> &str {
        &self.producer
    }

    /// The Kiln graph (at the trace batch size when the batch is symbolic).
    pub fn graph(&self) -> &Graph {
        self.loaded.graph()
    }

    /// The graph with its symbolic batch, if it has one (what `artifact::save_dynamic` ships).
    pub fn dynamic(&self) -> Option<&DynamicGraph> {
        self.loaded.dynamic()
    }

    /// The runnable graph, for a caller that keeps only it (`kiln serve`).
    pub fn into_loaded(self) -> LoadedGraph {
        self.loaded
    }
}

/// Imports the ONNX model at `path` with default options (external data is read from files
/// beside it).
pub fn load(path: impl AsRef<Path>) -> Result<OnnxModel, OnnxError> {
    load_with(path, &ImportOptions::default())
}

/// [`load`] with options.
pub fn load_with(path: impl AsRef<Path>, options: &ImportOptions) -> Result<OnnxModel, OnnxError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.into(),
        source,
    })?;
    load_bytes(&bytes, path.parent(), path, options)
}

/// Imports a model from its bytes; `dir` is where its external data files are (`None`:
/// refused), `name` names it in errors.
pub fn load_bytes(
    bytes: &[u8],
    dir: Option<&Path>,
    name: &Path,
    options: &ImportOptions,
) -> Result<OnnxModel, OnnxError> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| OnnxError::Invalid(format!("{}: not an ONNX model: {e}", name.display())))?;
    let imported = import(&model, dir, options)?;
    let load = LoadOptions {
        max_buffer_bytes: options.max_buffer_bytes,
    };
    let planned = match imported.dynamic {
        Some(d) => LoadedGraph::from_dynamic(d, name, load),
        None => LoadedGraph::from_graph(imported.graph, name, load),
    };
    let loaded = planned.map_err(|e| OnnxError::Invalid(e.to_string()))?;
    Ok(OnnxModel {
        loaded,
        inputs: imported.inputs,
        outputs: imported.outputs,
        opset: imported.opset,
        producer: format!("{} {}", model.producer_name(), model.producer_version())
            .trim()
            .to_string(),
    })
}

/// A model as a Kiln graph, before it is planned.
struct Imported {
    graph: Graph,
    dynamic: Option<DynamicGraph>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    opset: i64,
}

/// The opset of the default domain (0 when the model imports none: then every node is of
/// another domain, and refused as such).
fn default_opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain(), "" | "ai.onnx"))
        .map_or(0, |o| o.version())
}

/// A graph input's element type and dims (the batch, and named dims, resolved).
struct InputType {
    dtype: DType,
    dims: SymShape,
}

fn input_type(
    v: &ValueInfoProto,
    options: &ImportOptions,
    batch_name: &mut Option<String>,
) -> Result<InputType, OnnxError> {
    let name = v.name();
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(OnnxError::NotSupported(format!(
            "input {name:?}: a value that is not a tensor"
        )));
    };
    let dtype = tensor::kiln_dtype(t.elem_type(), &format!("input {name:?}"))?;
    let shape = t.shape.as_ref().ok_or_else(|| {
        OnnxError::NotSupported(format!("input {name:?}: a tensor of unknown rank"))
    })?;
    let mut dims = SymShape::new();
    for (i, d) in shape.dim.iter().enumerate() {
        let symbol = match &d.value {
            Some(dimension::Value::DimValue(n)) if *n >= 0 => {
                dims.push(Dim::fixed(*n as usize));
                continue;
            }
            Some(dimension::Value::DimParam(p)) => p.clone(),
            _ => String::new(),
        };
        if let Some(&n) = options.dims.get(&symbol) {
            dims.push(Dim::fixed(n));
        } else if i == 0 && (symbol.is_empty() || batch_name.as_ref().is_none_or(|b| *b == symbol))
        {
            batch_name.get_or_insert(symbol);
            dims.push(Dim::batch());
        } else {
            let shown = if symbol.is_empty() {
                "unnamed".to_string()
            } else {
                format!("{symbol:?}")
            };
            return Err(OnnxError::NotSupported(format!(
                "input {name:?}: dim {i} is symbolic ({shown}); only dim 0 may be (the batch): \
                 give its size (ImportOptions::dims, `--dim NAME=SIZE`)"
            )));
        }
    }
    Ok(InputType { dtype, dims })
}

fn import(
    model: &ModelProto,
    dir: Option<&Path>,
    options: &ImportOptions,
) -> Result<Imported, OnnxError> {
    let opset = default_opset(model);
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Invalid("the model has no graph".into()))?;
    if !g.sparse_initializer.is_empty() {
        return Err(OnnxError::NotSupported("sparse initializers".into()));
    }
    let mut b = Builder::default();
    let mut values: HashMap<String, Value> = HashMap::new();
    for t in &g.initializer {
        let what = format!("initializer {:?}", t.name());
        let v = tensor::decode(t, dir, &what)?;
        if values.insert(t.name().to_string(), b.weight(v)).is_some() {
            return Err(OnnxError::Invalid(format!("{what} is defined twice")));
        }
    }
    let mut inputs = Vec::new();
    let mut batch_args = Vec::new();
    let mut batch_name = None;
    let initializers: std::collections::HashSet<&str> =
        g.initializer.iter().map(|t| t.name()).collect();
    for v in g.input.iter().filter(|v| !initializers.contains(v.name())) {
        let t = input_type(v, options, &mut batch_name)?;
        let k = inputs.len();
        if t.dims.first().is_some_and(|d| !d.is_fixed()) {
            batch_args.push(k);
        }
        let shape: Vec<usize> = t
            .dims
            .iter()
            .map(|d| d.at(TRACE_BATCH).expect("a batch dim is non-negative"))
            .collect();
        values.insert(v.name().to_string(), b.arg(k, &shape, t.dtype));
        inputs.push(Port {
            name: v.name().to_string(),
            dtype: t.dtype,
            dims: t.dims,
        });
    }
    if !batch_args.is_empty() {
        b.trace_batch(TRACE_BATCH);
    }
    for node in &g.node {
        import_node(&mut b, &mut values, node, opset)?;
    }
    let mut outs = Vec::new();
    let mut ports = Vec::new();
    for o in &g.output {
        let v = values.get(o.name()).ok_or_else(|| {
            OnnxError::Invalid(format!("output {:?} is never computed", o.name()))
        })?;
        if let Some(type_proto::Value::TensorType(t)) =
            o.r#type.as_ref().and_then(|t| t.value.as_ref())
        {
            if t.elem_type.is_some() {
                let declared =
                    tensor::kiln_dtype(t.elem_type(), &format!("output {:?}", o.name()))?;
                if declared != v.dtype() {
                    return Err(OnnxError::Invalid(format!(
                        "output {:?} is declared {declared}, but the graph computes {}",
                        o.name(),
                        v.dtype()
                    )));
                }
            }
        }
        outs.push(v.clone());
        ports.push((o.name().to_string(), v.dtype()));
    }
    let mut graph = b.finish(&outs).map_err(OnnxError::Invalid)?;
    if let Some(optimize) = &options.optimize {
        optimize(&mut graph);
    }
    let types = graph.types();
    let dynamic = if batch_args.is_empty() {
        None
    } else {
        Some(
            DynamicGraph::new(graph.clone(), TRACE_BATCH, &batch_args).map_err(|e| {
                OnnxError::NotSupported(format!(
                    "a batch dim that stays symbolic here ({e}); fix its size with \
                 ImportOptions::dims (`--dim NAME=SIZE`), and this model"
                ))
            })?,
        )
    };
    let outputs = graph
        .outputs
        .iter()
        .zip(ports)
        .map(|(&id, (name, dtype))| Port {
            name,
            dtype,
            dims: match &dynamic {
                Some(d) => d.dims(id).cloned().unwrap_or_default(),
                None => types[id as usize]
                    .as_ref()
                    .map(|(s, _)| s.iter().map(|&n| Dim::fixed(n)).collect())
                    .unwrap_or_default(),
            },
        })
        .collect();
    Ok(Imported {
        graph: dynamic.as_ref().map_or(graph, |d| d.graph().clone()),
        dynamic,
        inputs,
        outputs,
        opset,
    })
}

/// The name a node goes by in errors: its own, or its first output's.
fn node_label(node: &crate::proto::NodeProto) -> String {
    match node.name() {
        "" => node.output.first().cloned().unwrap_or_default(),
        n => n.to_string(),
    }
}

fn import_node(
    b: &mut Builder,
    values: &mut HashMap<String, Value>,
    node: &crate::proto::NodeProto,
    opset: i64,
) -> Result<(), OnnxError> {
    let label = node_label(node);
    let op = node.op_type();
    let unsupported = || OnnxError::UnsupportedOp {
        node: label.clone(),
        op: op.to_string(),
        domain: node.domain().to_string(),
        opset,
    };
    if !matches!(node.domain(), "" | "ai.onnx") {
        return Err(unsupported());
    }
    let def = ops::find(op).ok_or_else(unsupported)?;
    let fail = |reason: String| OnnxError::Node {
        node: label.clone(),
        op: op.to_string(),
        reason,
    };
    let attrs = attrs::Attrs::of(node);
    attrs.only(def.attrs).map_err(fail)?;
    let inputs = node
        .input
        .iter()
        .map(|name| match name.as_str() {
            "" => Ok(None),
            name => values.get(name).cloned().map(Some).ok_or_else(|| {
                OnnxError::Invalid(format!(
                    "node {label:?} ({op}) reads {name:?} before it is defined"
                ))
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = node
        .output
        .iter()
        .rposition(|o| !o.is_empty())
        .map_or(0, |i| i + 1);
    let n = ops::NodeIn {
        inputs,
        attrs,
        outputs,
        opset,
    };
    let results = (def.import)(b, &n).map_err(fail)?;
    for (i, name) in node
        .output
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.is_empty())
    {
        let v = results
            .get(i)
            .ok_or_else(|| fail(format!("output {i} is not supported")))?;
        values.insert(name.clone(), v.clone());
    }
    Ok(())
}
