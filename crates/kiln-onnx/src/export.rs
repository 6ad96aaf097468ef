//! A Kiln inference graph as an ONNX model: arguments become graph inputs, captured weights
//! and constants initializers, each node its standard-op lowering (`lower.rs`), and the
//! outputs named as asked. A graph with a symbolic batch dimension keeps it symbolic (the dim
//! parameter `batch`), so one file serves every batch size.

use crate::error::OnnxError;
use crate::lower::{value_name, Emitter};
use crate::proto::tensor_shape_proto::{dimension, Dimension};
use crate::proto::type_proto::{self, Tensor};
use crate::proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use crate::types::onnx_dtype;
use kiln_kernels::dtype::DType;
use kiln_runtime::ir::{Graph, InputKind, ValueId};
use kiln_runtime::symbolic::{Dim, DynamicGraph};
use prost::Message;
use std::path::Path;

/// The operator sets an export may target (of the default domain).
pub const OPSETS: std::ops::RangeInclusive<i64> = 17..=21;

/// How a graph is exported.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Operator set of the default domain, 17 to 21 (default 21).
    pub opset: i64,
    /// Input names by argument position (default `input__0`, `input__1`, …, as `kiln serve`).
    pub input_names: Vec<String>,
    /// Output names by position (default `output__0`, …).
    pub output_names: Vec<String>,
    /// The graph's name.
    pub graph_name: String,
}

impl Default for ExportOptions {
    fn default() -> ExportOptions {
        ExportOptions {
            opset: 21,
            input_names: Vec::new(),
            output_names: Vec::new(),
            graph_name: "kiln".into(),
        }
    }
}

impl ExportOptions {
    fn input_name(&self, i: usize) -> String {
        self.input_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("input__{i}"))
    }

    fn output_name(&self, i: usize) -> String {
        self.output_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("output__{i}"))
    }
}

/// The ONNX IR version that goes with an operator set (onnx's `VERSION_TABLE`).
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=18 => 8,
        19 | 20 => 9,
        _ => 10,
    }
}

/// Exports a graph of fixed shapes.
pub fn export(graph: &Graph, options: &ExportOptions) -> Result<ModelProto, OnnxError> {
    let types = graph.types();
    let dims = |id: ValueId| {
        types
            .get(id as usize)
            .cloned()
            .flatten()
            .map(|(s, _)| s.iter().map(|&n| Dim::fixed(n)).collect())
    };
    build(graph, &dims, &Batch::default(), options)
}

/// What the exporter needs to know of a graph's symbolic batch.
#[derive(Default)]
struct Batch<'a> {
    /// The argument whose dim 0 is the batch size.
    arg: Option<usize>,
    /// The fill value of a constant made at each batch size (`DynamicGraph::fill_of`).
    fill: Option<&'a dyn Fn(ValueId) -> Option<f64>>,
}

/// Exports a graph with a symbolic batch dim: dims that follow the batch are written as the
/// dim parameter `batch` (or `k*batch+c` where they are an affine function of it).
pub fn export_dynamic(
    graph: &DynamicGraph,
    options: &ExportOptions,
) -> Result<ModelProto, OnnxError> {
    let dims = |id: ValueId| graph.dims(id).map(|s| s.to_vec());
    let fill = |id: ValueId| graph.fill_of(id);
    let batch = Batch {
        arg: graph.batch_args().first().copied(),
        fill: Some(&fill),
    };
    build(graph.graph(), &dims, &batch, options)
}

/// Writes `model` to `path` (atomically: a partial file never replaces a good one). A model
/// past protobuf's 2 GiB limit is written with its weights as external data, as
/// [`save_with_external_data`] does.
pub fn save(model: &ModelProto, path: impl AsRef<Path>) -> Result<(), OnnxError> {
    let path = path.as_ref();
    if model.encoded_len() > i32::MAX as usize {
        return save_with_external_data(model, path);
    }
    write(path, &model.encode_to_vec())
}

/// Initializers of at least this many bytes go to the external data file.
const EXTERNAL_MIN_BYTES: usize = 1024;

/// Writes `model` to `path` with its weights (initializers of 1 KiB or more) in the file
/// `<path's name>.data` beside it, as ONNX's external data format lays them out (`location`,
/// `offset`, `length`, each weight 4096-byte aligned): how models past 2 GiB are stored, and
/// read by onnxruntime and `kiln_onnx::load`. Both files are written atomically, the data
/// first.
pub fn save_with_external_data(
    model: &ModelProto,
    path: impl AsRef<Path>,
) -> Result<(), OnnxError> {
    let path = path.as_ref();
    let file_name = path
        .file_name()
        .ok_or_else(|| OnnxError::Graph(format!("{}: not a file name", path.display())))?
        .to_string_lossy()
        .into_owned();
    let location = format!("{file_name}.data");
    let mut model = model.clone();
    let mut data = Vec::new();
    if let Some(g) = model.graph.as_mut() {
        for t in &mut g.initializer {
            let Some(raw) = t.raw_data.take_if(|r| r.len() >= EXTERNAL_MIN_BYTES) else {
                continue;
            };
            data.resize(data.len().next_multiple_of(4096), 0);
            let entry = |k: &str, v: String| crate::proto::StringStringEntryProto {
                key: Some(k.into()),
                value: Some(v),
            };
            t.external_data = vec![
                entry("location", location.clone()),
                entry("offset", data.len().to_string()),
                entry("length", raw.len().to_string()),
            ];
            t.set_data_location(crate::proto::tensor_proto::DataLocation::External);
            data.extend_from_slice(&raw);
        }
    }
    if model.encoded_len() > i32::MAX as usize {
        return Err(OnnxError::Graph(format!(
            "the model is {} bytes even without its weights; protobuf files stop at 2 GiB",
            model.encoded_len()
        )));
    }
    write(&path.with_file_name(&location), &data)?;
    write(path, &model.encode_to_vec())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), OnnxError> {
    kiln_runtime::weights::write_atomic(path, bytes).map_err(|source| OnnxError::Io {
        path: path.into(),
        source,
    })
}

fn dim_proto(d: Dim) -> Dimension {
    let value = match (d.mul, d.add) {
        (0, n) => dimension::Value::DimValue(n),
        (1, 0) => dimension::Value::DimParam("batch".into()),
        (k, c) => dimension::Value::DimParam(format!("{k}*batch{c:+}")),
    };
    Dimension {
        value: Some(value),
        ..Default::default()
    }
}

fn value_info(name: String, dtype: DType, dims: &[Dim]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(Tensor {
                elem_type: Some(onnx_dtype(dtype)),
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|&d| dim_proto(d)).collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn identity(input: String, output: String) -> NodeProto {
    NodeProto {
        input: vec![input],
        output: vec![output.clone()],
        name: Some(format!("out_{output}")),
        op_type: Some("Identity".into()),
        ..Default::default()
    }
}

fn build(
    graph: &Graph,
    dims: &dyn Fn(ValueId) -> Option<Vec<Dim>>,
    batch: &Batch<'_>,
    options: &ExportOptions,
) -> Result<ModelProto, OnnxError> {
    if !OPSETS.contains(&options.opset) {
        return Err(OnnxError::Unsupported(format!(
            "opset {} (Kiln writes opsets {} to {})",
            options.opset,
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    if !graph.updates.is_empty() || !graph.grads.is_empty() {
        return Err(OnnxError::Graph(
            "a training graph (it updates state or sets gradients) does not export; compile \
             the model's inference function"
                .into(),
        ));
    }
    let dtypes: Vec<Option<DType>> = graph
        .types()
        .into_iter()
        .map(|t| t.map(|(_, d)| d))
        .collect();
    let shape_of =
        |id: ValueId| dims(id).ok_or_else(|| OnnxError::Graph(format!("value %{id} has no shape")));
    let mut emitter = Emitter::new(options.opset, &dtypes, dims);
    let batch_input = graph
        .inputs
        .iter()
        .find(|i| Some(&i.kind) == batch.arg.map(InputKind::Arg).as_ref());
    if let Some(input) = batch_input {
        emitter.set_batch_source(value_name(input.id));
    }
    let mut inputs = Vec::new();
    let mut prologue = Vec::new();
    for input in &graph.inputs {
        match (&input.kind, &input.value) {
            (InputKind::Arg(i), _) => {
                // The graph input carries the user's name; the body reads it as `v<id>`.
                let name = options.input_name(*i);
                inputs.push((
                    *i,
                    value_info(name.clone(), input.dtype, &shape_of(input.id)?),
                ));
                prologue.push(identity(name, value_name(input.id)));
            }
            (InputKind::Const, Some(_)) if batch.fill.and_then(|f| f(input.id)).is_some() => {
                // Made at each batch size from one value: built from the batch when it runs.
                let value = batch.fill.and_then(|f| f(input.id)).expect("checked");
                let dims = shape_of(input.id)?;
                emitter.fill(value_name(input.id), input.dtype, &dims, value)?;
            }
            (InputKind::State | InputKind::Const, Some(value)) => {
                let bytes = kiln_runtime::weights::operand_bytes(value.operand());
                emitter.constant(Some(value_name(input.id)), input.dtype, &input.shape, bytes);
            }
            (InputKind::Grad(_), _) | (_, None) => {
                return Err(OnnxError::Graph(format!(
                    "input %{} is read from a gradient slot or has no value: not an inference \
                     graph",
                    input.id
                )))
            }
        }
    }
    inputs.sort_by_key(|(i, _)| *i);
    for node in &graph.nodes {
        emitter.lower(node)?;
    }
    let mut outputs = Vec::new();
    let mut epilogue = Vec::new();
    for (k, &id) in graph.outputs.iter().enumerate() {
        let name = options.output_name(k);
        let dtype = dtypes
            .get(id as usize)
            .copied()
            .flatten()
            .ok_or_else(|| OnnxError::Graph(format!("output %{id} has no type")))?;
        outputs.push(value_info(name.clone(), dtype, &shape_of(id)?));
        epilogue.push(identity(value_name(id), name));
    }
    let mut nodes = prologue;
    nodes.append(&mut emitter.nodes);
    nodes.append(&mut epilogue);
    Ok(ModelProto {
        ir_version: Some(ir_version(options.opset)),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(options.opset),
        }],
        producer_name: Some("kiln".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(GraphProto {
            node: nodes,
            name: Some(options.graph_name.clone()),
            initializer: emitter.initializers,
            input: inputs.into_iter().map(|(_, v)| v).collect(),
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    })
}
