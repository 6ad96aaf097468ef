//! A served model version: its graph, the names, datatypes and shapes of its inputs and
//! outputs (the protocol's metadata), request checks, and its batcher.

use crate::batcher::{Batcher, Job, Runnable};
use crate::config::ModelConfig;
use crate::error::ServeError;
use crate::metrics::Stats;
use crate::tensor::HostTensor;
use kiln_kernels::DType;
use kiln_runtime::artifact;
use kiln_runtime::symbolic::Dim;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An input or output as metadata describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// Its name in requests and answers.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dims; -1 where the size is the batch size.
    pub shape: Vec<i64>,
}

/// One loaded version of a model.
pub struct ServedModel {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Inputs, in the graph's argument order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the graph's order.
    pub outputs: Vec<TensorSpec>,
    /// Whether requests are joined into batches (the graph has a symbolic batch dim that
    /// leads every input and output, and `max_batch_size` > 1).
    pub batching: bool,
    /// The settings it was loaded with.
    pub config: ModelConfig,
    /// Request and run counters (`/metrics`).
    pub stats: Arc<Stats>,
    batcher: Batcher,
}

/// How long a request may wait for its batch to run before it is answered 504.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// `-1` for a dim that is the batch size, its size for a fixed dim; `None` for a dim that is
/// another function of the batch (`2·B`), which the protocol cannot describe.
fn protocol_dim(d: Dim) -> Option<i64> {
    match (d.mul, d.add) {
        (0, n) => Some(n),
        (1, 0) => Some(-1),
        _ => None,
    }
}

fn spec(name: String, dims: &[Dim], dtype: DType) -> Result<TensorSpec, String> {
    let shape = dims
        .iter()
        .map(|&d| protocol_dim(d))
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(|| format!("`{name}` has a dim that is not the batch size nor fixed"))?;
    Ok(TensorSpec { name, dtype, shape })
}

/// One port of an opened model file: its own name (ONNX files have them), dims and dtype.
type Port = (Option<String>, Vec<Dim>, DType);

/// A model file, opened.
struct Opened {
    graph: Arc<dyn Runnable>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
}

/// Opens a Kiln graph file, or imports an ONNX model (`.onnx`) with `import`.
fn open(file: &Path, import: &kiln_onnx::ImportOptions) -> Result<Opened, String> {
    if file.extension().is_some_and(|e| e == "onnx") {
        let model =
            kiln_onnx::load_with(file, import).map_err(|e| format!("{}: {e}", file.display()))?;
        let ports = |p: &[kiln_onnx::Port]| -> Vec<Port> {
            p.iter()
                .map(|p| (Some(p.name.clone()), p.dims.to_vec(), p.dtype))
                .collect()
        };
        let (inputs, outputs) = (ports(model.inputs()), ports(model.outputs()));
        return Ok(Opened {
            graph: Arc::new(model),
            inputs,
            outputs,
        });
    }
    let graph = artifact::load(file).map_err(|e| e.to_string())?;
    let ports = |p: Vec<(kiln_runtime::symbolic::SymShape, DType)>| -> Vec<Port> {
        p.into_iter().map(|(d, t)| (None, d.to_vec(), t)).collect()
    };
    let inputs = ports(graph.arg_dims().to_vec());
    let outputs = ports(graph.output_dims());
    Ok(Opened {
        graph: Arc::new(graph),
        inputs,
        outputs,
    })
}

impl ServedModel {
    /// Loads `file` (a `.kgraph`, or a `.onnx` model imported) as version `version` of
    /// `name` and starts its batcher.
    pub fn load(
        name: &str,
        version: u64,
        file: &Path,
        config: &ModelConfig,
        import: &kiln_onnx::ImportOptions,
    ) -> Result<ServedModel, String> {
        let opened = open(file, import)?;
        let name_of = |names: &[String], i: usize, own: &Option<String>, default: String| {
            names
                .get(i)
                .cloned()
                .or_else(|| own.clone())
                .unwrap_or(default)
        };
        let inputs = opened
            .inputs
            .iter()
            .enumerate()
            .map(|(i, (own, dims, dtype))| {
                let name = name_of(&config.inputs, i, own, config.input_name(i));
                spec(name, dims, *dtype)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = opened
            .outputs
            .iter()
            .enumerate()
            .map(|(i, (own, dims, dtype))| {
                let name = name_of(&config.outputs, i, own, config.output_name(i));
                spec(name, dims, *dtype)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let graph = opened.graph;
        let leads = |s: &TensorSpec| s.shape.first() == Some(&-1) && !s.shape[1..].contains(&-1);
        let batched_graph = inputs.iter().chain(&outputs).all(leads);
        let batching = batched_graph && config.max_batch_size > 1;
        let stats = Arc::new(Stats::new(name, version));
        let batcher = Batcher::start(
            graph,
            config,
            batching,
            Arc::clone(&stats),
            format!("{name}/{version}"),
        );
        Ok(ServedModel {
            name: name.into(),
            version,
            inputs,
            outputs,
            batching,
            config: config.clone(),
            stats,
            batcher,
        })
    }

    /// Checks a request's tensors against the inputs (names in any order, dtypes, shapes)
    /// and returns them in argument order with the request's batch size.
    pub fn check_inputs(
        &self,
        mut given: Vec<(String, HostTensor)>,
    ) -> Result<(Vec<HostTensor>, usize), ServeError> {
        let bad = |m: String| ServeError::BadRequest(m);
        if given.len() != self.inputs.len() {
            return Err(bad(format!(
                "model `{}` takes {} input(s) ({}), the request has {}",
                self.name,
                self.inputs.len(),
                self.input_names(),
                given.len()
            )));
        }
        let mut ordered = Vec::with_capacity(self.inputs.len());
        let mut batch = None;
        for spec in &self.inputs {
            let i = given
                .iter()
                .position(|(n, _)| *n == spec.name)
                .ok_or_else(|| {
                    bad(format!(
                        "model `{}` has no input named `{}` in this request; its inputs are {}",
                        self.name,
                        given
                            .iter()
                            .map(|g| g.0.as_str())
                            .find(|n| !self.has_input(n))
                            .unwrap_or("?"),
                        self.input_names()
                    ))
                })?;
            let (_, t) = given.swap_remove(i);
            if t.dtype != spec.dtype {
                return Err(bad(format!(
                    "input `{}`: datatype {} but the model takes {}",
                    spec.name,
                    crate::datatype::protocol_name(t.dtype),
                    crate::datatype::protocol_name(spec.dtype)
                )));
            }
            let fits = t.shape.len() == spec.shape.len()
                && t.shape
                    .iter()
                    .zip(&spec.shape)
                    .all(|(&g, &w)| w < 0 || g as i64 == w);
            if !fits {
                return Err(bad(format!(
                    "input `{}`: shape {:?} but the model takes {:?} (-1: any batch size)",
                    spec.name, t.shape, spec.shape
                )));
            }
            if let Some(&b) = spec.shape.first().filter(|&&d| d < 0).and(t.shape.first()) {
                match batch {
                    Some(prev) if prev != b => {
                        return Err(bad(format!(
                            "input `{}` has batch size {b}, another input {prev}",
                            spec.name
                        )))
                    }
                    _ => batch = Some(b),
                }
            }
            ordered.push(t);
        }
        let batch = batch.unwrap_or(1);
        if batch == 0 {
            return Err(bad("the batch size is 0".into()));
        }
        if self.batching && batch > self.config.max_batch_size {
            return Err(bad(format!(
                "batch size {batch} is over the model's max_batch_size {}",
                self.config.max_batch_size
            )));
        }
        Ok((ordered, batch))
    }

    /// Runs checked inputs (through the batcher) and returns the outputs in order.
    pub async fn infer(
        &self,
        inputs: Vec<HostTensor>,
        batch: usize,
    ) -> Result<Vec<HostTensor>, ServeError> {
        let started = Instant::now();
        let (job, answer) = Job::new(inputs, batch, started + REQUEST_DEADLINE);
        self.batcher.submit(job)?;
        let result = answer
            .await
            .unwrap_or_else(|_| Err(ServeError::Internal("the model's worker stopped".into())));
        self.stats.record_request(result.is_ok(), started.elapsed());
        result
    }

    /// The position of the output called `name`; a 400 naming the outputs there are when
    /// there is none.
    pub fn output_index(&self, name: &str) -> Result<usize, ServeError> {
        self.outputs
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| {
                ServeError::BadRequest(format!(
                    "model `{}` has no output `{}`; its outputs are {}",
                    self.name,
                    name.escape_debug(),
                    self.outputs
                        .iter()
                        .map(|s| format!("`{}`", s.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|s| s.name == name)
    }

    fn input_names(&self) -> String {
        self.inputs
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
