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
mod control;
pub(crate) mod narrow;
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
pub use kiln_runtime::ir::GraphWeight;
use kiln_runtime::ir::{Graph, ValueId};
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
    /// Values of the ONNX graph to return instead of its outputs (names of node outputs):
    /// cut a network before its head, say, to put a new one on it.
    pub outputs: Vec<String>,
    /// Keep the ops over weights in the graph (transposes, folded batch norms), so every
    /// initializer stays an input of the graph: what a graph to train needs
    /// ([`import_graph`]).
    pub trainable: bool,
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("dims", &self.dims)
            .field("optimize", &self.optimize.as_ref().map(|_| "…"))
            .field("max_buffer_bytes", &self.max_buffer_bytes)
            .field("outputs", &self.outputs)
            .field("trainable", &self.trainable)
            .finish()
    }
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
    form: Form,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    opset: i64,
    producer: String,
}

/// How an imported model runs its batch sizes.
enum Form {
    /// One graph: fixed shapes, or a symbolic batch Kiln's graph analysis follows.
    Graph(Box<LoadedGraph>),
    /// A model imported again for each batch size (and each value of the inputs it reads
    /// as shapes) it is run with: see [`Specialized`].
    Specialized(Box<Specialized>),
}

/// Why an import failed, and whether importing it specialized would succeed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Retry {
    /// It would not.
    No,
    /// The graph computes data from the batch size: import it at each batch size.
    Batch,
    /// The graph reads model input `k` as a shape (axes, a reshape target, …): import it
    /// for each value of that input.
    Value(usize),
}

/// A model imported per call signature: the batch size, and the values of the (small)
/// inputs its graph reads as shapes, sizes or scales. Each import is exact for its signature; the
/// last 8 are kept.
struct Specialized {
    model: ModelProto,
    weights: HashMap<String, OwnedOperand>,
    options: ImportOptions,
    name: std::path::PathBuf,
    /// Model inputs whose dim 0 is the batch.
    batch_inputs: Vec<usize>,
    /// Model inputs read as shapes, found as imports ask for them.
    value_inputs: parking_lot::Mutex<Vec<usize>>,
    /// Imported graphs by signature (batch, then each value input's elements), newest first.
    graphs: parking_lot::Mutex<Vec<(Vec<i64>, std::sync::Arc<LoadedGraph>)>>,
}

/// How many signatures a specialized model keeps imported.
const SIGNATURES: usize = 8;

/// The biggest input (in elements) read as a shape: larger ones are data, not shapes.
const SHAPE_INPUT_MAX: usize = 64;

impl Specialized {
    fn batch(&self, args: &[Operand<'_>]) -> Result<Option<usize>, ArtifactError> {
        let mut batch = None;
        for &k in &self.batch_inputs {
            let b = args.get(k).and_then(|a| a.shape().first().copied());
            match (batch, b) {
                (_, None) => {
                    return Err(ArtifactError::BadArgument {
                        index: k,
                        expected: "a value whose dim 0 is the batch".into(),
                        got: format!("{} arguments", args.len()),
                    })
                }
                (Some(p), Some(b)) if p != b => {
                    return Err(ArtifactError::BadArgument {
                        index: k,
                        expected: format!("batch {p}"),
                        got: format!("batch {b}"),
                    })
                }
                (_, b) => batch = b,
            }
        }
        Ok(batch)
    }

    fn run(&self, args: &[Operand<'_>]) -> Result<Vec<OwnedOperand>, ArtifactError> {
        let batch = self.batch(args)?;
        let malformed = |reason: String| ArtifactError::Malformed {
            path: self.name.clone(),
            reason,
        };
        // Each pass either runs, or learns one more input to specialize on.
        for _ in 0..=args.len() {
            let value_inputs = self.value_inputs.lock().clone();
            let mut key = vec![batch.map_or(-1, |b| b as i64)];
            let mut known = HashMap::new();
            for &k in &value_inputs {
                let a = args.get(k).ok_or_else(|| ArtifactError::BadArgument {
                    index: k,
                    expected: "an input".into(),
                    got: format!("{} arguments", args.len()),
                })?;
                if a.numel() > SHAPE_INPUT_MAX {
                    return Err(malformed(format!(
                        "input {k} is read as a shape but is {}{:?}",
                        a.dtype(),
                        a.shape()
                    )));
                }
                let value = OwnedOperand::new(a.storage().clone(), a.layout().clone(), a.dtype());
                // Floats (scales, range bounds, a depth) by their bits: exact signatures.
                let ints: Vec<i64> = if a.dtype().is_float() {
                    builder::known_f64s(&value)
                        .into_iter()
                        .map(|v| v.to_bits() as i64)
                        .collect()
                } else {
                    builder::known_i64s(&value)
                };
                key.push(ints.len() as i64);
                key.extend(ints);
                known.insert(k, value);
            }
            let rest: Vec<Operand<'_>> = args
                .iter()
                .enumerate()
                .filter(|(k, _)| !known.contains_key(k))
                .map(|(_, a)| *a)
                .collect();
            let found = {
                let graphs = self.graphs.lock();
                graphs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, g)| g.clone())
            };
            if let Some(g) = found {
                return g.run(&rest);
            }
            match import(&self.model, &self.weights, &self.options, batch, &known) {
                Ok(imported) => {
                    let g = std::sync::Arc::new(LoadedGraph::from_graph(
                        imported.graph,
                        &self.name,
                        load_options(&self.options),
                    )?);
                    let mut graphs = self.graphs.lock();
                    graphs.insert(0, (key, g.clone()));
                    graphs.truncate(SIGNATURES);
                    drop(graphs);
                    return g.run(&rest);
                }
                Err((_, Retry::Value(k))) if !value_inputs.contains(&k) && k < args.len() => {
                    self.value_inputs.lock().push(k);
                }
                Err((e, _)) => return Err(malformed(e.to_string())),
            }
        }
        Err(malformed("the inputs read as shapes do not settle".into()))
    }
}

impl OnnxModel {
    /// Runs the model on one value per input (in the order of [`OnnxModel::inputs`]); any
    /// batch size when the batch is symbolic. Wrong shapes or dtypes are an error.
    pub fn run(&self, args: &[Operand<'_>]) -> Result<Vec<OwnedOperand>, ArtifactError> {
        match &self.form {
            Form::Graph(g) => g.run(args),
            Form::Specialized(p) => p.run(args),
        }
    }

    /// True when the model is imported again per batch size (its graph computes data from
    /// the batch size, which one symbolic graph cannot follow), or per value of inputs it
    /// reads as shapes.
    pub fn specialized(&self) -> bool {
        matches!(self.form, Form::Specialized(_))
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

    /// The Kiln graph (at the trace batch size when the batch is symbolic); `None` for a
    /// model imported per batch size.
    pub fn graph(&self) -> Option<&Graph> {
        match &self.form {
            Form::Graph(g) => Some(g.graph()),
            Form::Specialized(_) => None,
        }
    }

    /// The graph with its symbolic batch, if it has one (what `artifact::save_dynamic` ships).
    pub fn dynamic(&self) -> Option<&DynamicGraph> {
        match &self.form {
            Form::Graph(g) => g.dynamic(),
            Form::Specialized(_) => None,
        }
    }
}

fn load_options(options: &ImportOptions) -> LoadOptions {
    LoadOptions {
        max_buffer_bytes: options.max_buffer_bytes,
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
    // External data lives beside the file itself (a repository may link to it).
    let dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    load_bytes(&bytes, dir.as_deref(), path, options)
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
    let weights = decode_weights(&model, dir)?;
    let producer = format!("{} {}", model.producer_name(), model.producer_version())
        .trim()
        .to_string();
    let invalid = |e: ArtifactError| OnnxError::Invalid(e.to_string());
    let none = HashMap::new();
    let specialize = |imported: &ImportedGraph, values: Vec<usize>, weights| Specialized {
        model: model.clone(),
        weights,
        options: options.clone(),
        name: name.into(),
        batch_inputs: imported.batch_inputs.clone(),
        value_inputs: parking_lot::Mutex::new(values),
        graphs: parking_lot::Mutex::new(Vec::new()),
    };
    let (imported, form) = match import(&model, &weights, options, None, &none) {
        Ok(imported) => {
            let planned = match imported.dynamic.clone() {
                Some(d) => LoadedGraph::from_dynamic(d, name, load_options(options)),
                None => {
                    LoadedGraph::from_graph(imported.graph.clone(), name, load_options(options))
                }
            };
            (imported, Form::Graph(Box::new(planned.map_err(invalid)?)))
        }
        // The batch cannot stay symbolic: check the model imports at a size, then import it
        // at each size it is run at.
        Err((_, Retry::Batch)) => {
            let mut imported =
                import(&model, &weights, options, Some(2), &none).map_err(|(e, _)| e)?;
            // Which output dims follow the batch: compare the imports at 2 and 3.
            let at3 = import(&model, &weights, options, Some(3), &none).map_err(|(e, _)| e)?;
            for (o, o3) in imported.outputs.iter_mut().zip(&at3.outputs) {
                o.dims = o
                    .dims
                    .iter()
                    .zip(&o3.dims)
                    .map(|(&d2, &d3)| {
                        let m = (d3.add - d2.add).max(0);
                        Dim {
                            mul: m as u32,
                            add: d2.add - 2 * m,
                        }
                    })
                    .collect();
            }
            let per = specialize(&imported, Vec::new(), weights);
            (imported, Form::Specialized(Box::new(per)))
        }
        // An input is read as a shape: its values are known only when the model runs. The
        // ports come from the model's declarations.
        Err((_, Retry::Value(k))) => {
            let imported = declared(&model, &weights, options).map_err(|(e, _)| e)?;
            let per = specialize(&imported, vec![k], weights);
            (imported, Form::Specialized(Box::new(per)))
        }
        Err((e, Retry::No)) => return Err(e),
    };
    Ok(OnnxModel {
        form,
        inputs: imported.inputs,
        outputs: imported.outputs,
        opset: imported.opset,
        producer,
    })
}

/// An ONNX model as a Kiln graph, not planned: what a caller that runs the graph its own way
/// needs (a module that trains it, replaying it with autograd).
pub struct ImportedGraph {
    /// The graph (at the trace batch size when the batch is symbolic).
    pub graph: Graph,
    /// The graph with its symbolic batch, if it has one.
    pub dynamic: Option<DynamicGraph>,
    /// The inputs, in argument order.
    pub inputs: Vec<Port>,
    /// The outputs.
    pub outputs: Vec<Port>,
    /// The initializers the graph reads, with their input ids.
    pub weights: Vec<GraphWeight>,
    /// The opset of the default domain the model was written for.
    pub opset: i64,
    /// The model inputs whose dim 0 is the batch.
    batch_inputs: Vec<usize>,
}

/// Imports the ONNX model at `path` as a graph; with `options.trainable`, every initializer
/// stays a graph input. A model that can only run per batch size is refused here.
pub fn import_graph(
    path: impl AsRef<Path>,
    options: &ImportOptions,
) -> Result<ImportedGraph, OnnxError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.into(),
        source,
    })?;
    let model = ModelProto::decode(&bytes[..])
        .map_err(|e| OnnxError::Invalid(format!("{}: not an ONNX model: {e}", path.display())))?;
    let dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let weights = decode_weights(&model, dir.as_deref())?;
    let imported =
        import(&model, &weights, options, None, &HashMap::new()).map_err(|(e, retry)| {
            if retry == Retry::No {
                e
            } else {
                OnnxError::NotSupported(format!(
                    "{}: a graph that computes data from the batch size or reads an input as \
                     a shape, as one graph ({e})",
                    path.display()
                ))
            }
        })?;
    Ok(imported)
}

/// Decodes every initializer of `model` (`dir`: where external data lives).
fn decode_weights(
    model: &ModelProto,
    dir: Option<&Path>,
) -> Result<HashMap<String, OwnedOperand>, OnnxError> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Invalid("the model has no graph".into()))?;
    let mut weights = HashMap::new();
    for t in &graph.initializer {
        let what = format!("initializer {:?}", t.name());
        if weights
            .insert(t.name().to_string(), tensor::decode(t, dir, &what)?)
            .is_some()
        {
            return Err(OnnxError::Invalid(format!("{what} is defined twice")));
        }
    }
    Ok(weights)
}

/// The model's inputs (its graph inputs that are not initializers) as ports, and which of
/// them carry the batch in dim 0.
fn model_inputs(
    g: &crate::proto::GraphProto,
    weights: &HashMap<String, OwnedOperand>,
    options: &ImportOptions,
) -> Result<(Vec<Port>, Vec<usize>), OnnxError> {
    let mut batch_name = None;
    let mut ports = Vec::new();
    let mut batch_inputs = Vec::new();
    for v in g.input.iter().filter(|v| !weights.contains_key(v.name())) {
        let t = input_type(v, options, &mut batch_name)?;
        if t.batch {
            batch_inputs.push(ports.len());
        }
        ports.push(Port {
            name: v.name().to_string(),
            dtype: t.dtype,
            dims: t.dims,
        });
    }
    Ok((ports, batch_inputs))
}

/// The model's inputs and outputs as it declares them (no graph is built): for a model
/// whose shapes are known only when it runs. Undeclared dims are -1.
fn declared(
    model: &ModelProto,
    weights: &HashMap<String, OwnedOperand>,
    options: &ImportOptions,
) -> Result<ImportedGraph, (OnnxError, Retry)> {
    let plain = |e: OnnxError| (e, Retry::No);
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| plain(OnnxError::Invalid("the model has no graph".into())))?;
    let (inputs, batch_inputs) = model_inputs(g, weights, options).map_err(plain)?;
    let mut outputs = Vec::new();
    for o in &g.output {
        let Some(type_proto::Value::TensorType(t)) =
            o.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(plain(OnnxError::NotSupported(format!(
                "output {:?}: a value that is not a tensor",
                o.name()
            ))));
        };
        let dtype = tensor::holder_dtype(t.elem_type(), &format!("output {:?}", o.name()))
            .map_err(plain)?;
        let dims = t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(dimension::Value::DimValue(n)) if n >= 0 => Dim::fixed(n as usize),
                        _ => Dim { mul: 0, add: -1 },
                    })
                    .collect()
            })
            .unwrap_or_default();
        outputs.push(Port {
            name: o.name().to_string(),
            dtype,
            dims,
        });
    }
    Ok(ImportedGraph {
        graph: Graph::default(),
        weights: Vec::new(),
        dynamic: None,
        inputs,
        outputs,
        opset: default_opset(model),
        batch_inputs,
    })
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
    /// Dim 0 is the batch (symbolic, or fixed at the size asked for).
    batch: bool,
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
    let dtype = tensor::holder_dtype(t.elem_type(), &format!("input {name:?}"))?;
    let shape = t.shape.as_ref().ok_or_else(|| {
        OnnxError::NotSupported(format!("input {name:?}: a tensor of unknown rank"))
    })?;
    let mut dims = SymShape::new();
    let mut batch = false;
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
            batch = true;
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
    Ok(InputType { dtype, dims, batch })
}

/// Imports `model` with its decoded initializers; the batch symbolic (`fixed_batch` `None`)
/// or of a given size, and the model inputs in `known` as those constants. An error says
/// whether importing it specialized would succeed.
fn import(
    model: &ModelProto,
    weights: &HashMap<String, OwnedOperand>,
    options: &ImportOptions,
    fixed_batch: Option<usize>,
    known: &HashMap<usize, OwnedOperand>,
) -> Result<ImportedGraph, (OnnxError, Retry)> {
    let opset = default_opset(model);
    let plain = |e: OnnxError| (e, Retry::No);
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| plain(OnnxError::Invalid("the model has no graph".into())))?;
    if !g.sparse_initializer.is_empty() {
        return Err(plain(OnnxError::NotSupported("sparse initializers".into())));
    }
    let mut b = Builder::default();
    let mut values: HashMap<String, Value> = HashMap::new();
    if options.trainable {
        b.keep_weight_ops();
    }
    for (name, v) in weights {
        values.insert(name.clone(), b.weight(v.clone(), name));
    }
    let (inputs, batch_inputs) = model_inputs(g, weights, options).map_err(plain)?;
    let mut batch_args = Vec::new();
    // Graph argument → model input.
    let mut arg_inputs = Vec::new();
    let size = fixed_batch.unwrap_or(TRACE_BATCH);
    for (m, port) in inputs.iter().enumerate() {
        if let Some(value) = known.get(&m) {
            values.insert(port.name.clone(), b.constant(value.clone()));
            continue;
        }
        let k = arg_inputs.len();
        arg_inputs.push(m);
        if batch_inputs.contains(&m) {
            batch_args.push(k);
        }
        let shape: Vec<usize> = port
            .dims
            .iter()
            .map(|d| d.at(size).expect("a batch dim is non-negative"))
            .collect();
        if let Err(e) = kiln_kernels::shape::checked_numel(&shape, port.dtype.size_in_bytes()) {
            let e = OnnxError::Invalid(format!("input {:?}: {e}", port.name));
            return Err(plain(e));
        }
        values.insert(port.name.clone(), b.arg(k, &shape, port.dtype));
    }
    if !batch_args.is_empty() && fixed_batch.is_none() {
        b.trace_batch(TRACE_BATCH);
    }
    // How many nodes (and graph outputs) read each value: a fold into the op that made a value
    // is only right when nothing else reads it.
    let readers = readers_of(g);
    let declared = declared_types(g);
    let mut names = HashMap::new();
    let context = Context {
        opset,
        readers: &readers,
        declared: &declared,
    };
    for node in &g.node {
        import_node(&mut b, &mut values, &mut names, node, &context).map_err(|(e, wanted)| {
            // A small integer model input read as a shape: import per value of it.
            let wanted_input = wanted.and_then(|id| b.arg_of(id)).filter(|&(_, n, d)| {
                n <= SHAPE_INPUT_MAX && (d.is_int() || d.is_float() || d == DType::Bool)
            });
            let retry = match wanted_input {
                Some((k, _, _)) => Retry::Value(arg_inputs[k]),
                None if b.refused_batch() => Retry::Batch,
                None => Retry::No,
            };
            (e, retry)
        })?;
    }
    let mut outs = Vec::new();
    let mut ports = Vec::new();
    let chosen: Vec<ValueInfoProto> = options
        .outputs
        .iter()
        .map(|n| ValueInfoProto {
            name: Some(n.clone()),
            ..Default::default()
        })
        .collect();
    let outputs = if chosen.is_empty() {
        &g.output
    } else {
        &chosen
    };
    for o in outputs {
        let v = values.get(o.name()).ok_or_else(|| {
            plain(OnnxError::Invalid(format!(
                "output {:?} is never computed",
                o.name()
            )))
        })?;
        if let Some(type_proto::Value::TensorType(t)) =
            o.r#type.as_ref().and_then(|t| t.value.as_ref())
        {
            if t.elem_type.is_some() {
                let declared =
                    tensor::holder_dtype(t.elem_type(), &format!("output {:?}", o.name()))
                        .map_err(plain)?;
                if declared != v.dtype() {
                    return Err(plain(OnnxError::Invalid(format!(
                        "output {:?} is declared {declared}, but the graph computes {}",
                        o.name(),
                        v.dtype()
                    ))));
                }
            }
        }
        outs.push(v.clone());
        ports.push((o.name().to_string(), v.dtype()));
    }
    let (mut graph, weight_inputs) = match b.finish(&outs) {
        Ok(g) => g,
        Err((e, from_batch)) => {
            let retry = if from_batch { Retry::Batch } else { Retry::No };
            return Err((OnnxError::Invalid(e), retry));
        }
    };
    if let Some(optimize) = &options.optimize {
        optimize(&mut graph);
    }
    let types = graph.types();
    let dynamic = if batch_args.is_empty() || fixed_batch.is_some() {
        None
    } else {
        let d = DynamicGraph::new(graph.clone(), TRACE_BATCH, &batch_args);
        Some(d.map_err(|e| {
            (
                OnnxError::NotSupported(format!("a symbolic batch ({e})")),
                Retry::Batch,
            )
        })?)
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
    Ok(ImportedGraph {
        graph: dynamic.as_ref().map_or(graph, |d| d.graph().clone()),
        weights: weight_inputs,
        dynamic,
        inputs,
        outputs,
        opset,
        batch_inputs,
    })
}

/// The name a node goes by in errors: its own, or its first output's.
fn node_label(node: &crate::proto::NodeProto) -> String {
    match node.name() {
        "" => node.output.first().cloned().unwrap_or_default(),
        n => n.to_string(),
    }
}

/// How many nodes (and graph outputs) of `g` read each name.
fn readers_of(g: &crate::proto::GraphProto) -> HashMap<&str, usize> {
    let mut readers = HashMap::new();
    let read = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str));
    for name in read.chain(g.output.iter().map(|o| o.name())) {
        *readers.entry(name).or_default() += 1;
    }
    readers
}

/// The element type the model declares for each value it names one for (inputs, outputs,
/// value infos, initializers, constants, casts): what a widened narrow type really is.
fn declared_types(g: &crate::proto::GraphProto) -> HashMap<&str, i32> {
    let mut types = HashMap::new();
    let infos = g.input.iter().chain(&g.value_info).chain(&g.output);
    for v in infos {
        if let Some(crate::proto::type_proto::Value::TensorType(t)) =
            v.r#type.as_ref().and_then(|t| t.value.as_ref())
        {
            types.insert(v.name(), t.elem_type());
        }
    }
    for t in &g.initializer {
        types.insert(t.name(), t.data_type());
    }
    for n in &g.node {
        let attr = |name: &str| n.attribute.iter().find(|a| a.name() == name);
        let t = match n.op_type() {
            "Constant" => attr("value")
                .and_then(|a| a.t.as_ref())
                .map(|t| t.data_type()),
            "Cast" => attr("to").and_then(|a| a.i).map(|i| i as i32),
            _ => None,
        };
        if let (Some(t), Some(out)) = (t, n.output.first()) {
            types.insert(out.as_str(), t);
        }
    }
    types
}

/// What every node's import reads about the whole model.
struct Context<'a> {
    /// The default domain's opset.
    opset: i64,
    /// How many nodes (and graph outputs) read each ONNX name.
    readers: &'a HashMap<&'a str, usize>,
    /// The element type declared for each name that has one.
    declared: &'a HashMap<&'a str, i32>,
}

/// Imports one node; `names` counts the ONNX names bound to each value computed in the
/// graph (a pass-through op such as `Identity` gives a value a second name).
fn import_node(
    b: &mut Builder,
    values: &mut HashMap<String, Value>,
    names: &mut HashMap<ValueId, usize>,
    node: &crate::proto::NodeProto,
    context: &Context,
) -> Result<(), (OnnxError, Option<ValueId>)> {
    let (opset, readers, declared) = (context.opset, context.readers, context.declared);
    let label = node_label(node);
    let op = node.op_type();
    let unsupported = || OnnxError::UnsupportedOp {
        node: label.clone(),
        op: op.to_string(),
        domain: node.domain().to_string(),
        opset,
    };
    if !matches!(node.domain(), "" | "ai.onnx") {
        return Err((unsupported(), None));
    }
    let fail = |reason: String| OnnxError::Node {
        node: label.clone(),
        op: op.to_string(),
        reason,
    };
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
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (e, None))?;
    if control::handles(op) {
        // A body imports in the scope of the node (outer values visible), with its own
        // readers and declared types; the input a body node wanted known is passed on.
        let body_wanted = std::cell::Cell::new(None);
        let mut import_graph = |b: &mut Builder,
                                scope: &mut HashMap<String, Value>,
                                g: &crate::proto::GraphProto|
         -> builder::R<()> {
            let body_readers = readers_of(g);
            let body_declared = declared_types(g);
            let body = Context {
                opset,
                readers: &body_readers,
                declared: &body_declared,
            };
            let mut body_names = names.clone();
            for n in &g.node {
                import_node(b, scope, &mut body_names, n, &body).map_err(|(e, w)| {
                    body_wanted.set(w);
                    e.to_string()
                })?;
            }
            Ok(())
        };
        // An `If` on a condition computed from a model input: import per value of it.
        let wanted = match inputs.first() {
            Some(Some(Value::Node { id, .. })) if op == "If" => Some(*id),
            _ => None,
        };
        let results = control::import(b, node, &inputs, values, opset, &mut import_graph)
            .map_err(|e| (fail(e), body_wanted.get().or(wanted)))?;
        for (name, v) in node.output.iter().zip(&results) {
            if !name.is_empty() {
                values.insert(name.clone(), v.clone());
            }
        }
        return Ok(());
    }
    let def = ops::find(op).ok_or_else(|| (unsupported(), None))?;
    let attrs = attrs::Attrs::of(node);
    attrs.only(def.attrs).map_err(|e| (fail(e), None))?;
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
        // A value under several names is read through each: count it as read more than once.
        readers: node
            .input
            .iter()
            .map(|i| {
                let own = readers.get(i.as_str()).copied().unwrap_or(0);
                match values.get(i.as_str()) {
                    Some(Value::Node { id, .. }) if names.get(id).copied().unwrap_or(0) > 1 => {
                        own.max(2)
                    }
                    _ => own,
                }
            })
            .collect(),
        wanted: std::cell::Cell::new(None),
        declared: node
            .input
            .iter()
            .map(|i| declared.get(i.as_str()).copied())
            .collect(),
    };
    let results = (def.import)(b, &n).map_err(|e| {
        // The input the op needed to know, when it is computed by the graph.
        let wanted = n.wanted.get().and_then(|k| match n.opt(k) {
            Some(Value::Node { id, .. }) => Some(*id),
            _ => None,
        });
        (fail(e), wanted)
    })?;
    for (i, name) in node
        .output
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.is_empty())
    {
        let v = results
            .get(i)
            .ok_or_else(|| (fail(format!("output {i} is not supported")), None))?;
        if let Value::Node { id, .. } = v {
            *names.entry(*id).or_default() += 1;
        }
        values.insert(name.clone(), v.clone());
    }
    Ok(())
}
