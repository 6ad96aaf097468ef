//! Shipping a graph: a compiled inference graph and its weights in one safetensors file (the
//! graph as JSON in the header metadata, captured tensors as named tensors), loadable and
//! runnable by a process that has no Rust code of the model. The format is read and written
//! by [`kiln_runtime::artifact`] (a server links that alone); this module runs loaded graphs
//! on tensors.

use kiln_core::trace::Graph;
use kiln_core::{DType, Tensor};
use kiln_runtime::artifact as runtime;
use std::path::Path;

pub use kiln_runtime::artifact::{
    default_buffer_limit, save, save_dynamic, ArtifactError, LoadOptions, FORMAT, VERSION,
};
pub use kiln_runtime::symbolic::{Dim, DynamicGraph, SymShape};

/// A graph loaded from a file, ready to run on tensors.
pub struct LoadedGraph {
    inner: runtime::LoadedGraph,
}

impl LoadedGraph {
    /// The graph.
    pub fn graph(&self) -> &Graph {
        self.inner.graph()
    }

    /// The expected argument shapes and dtypes.
    pub fn signature(&self) -> &[(Vec<usize>, DType)] {
        self.inner.signature()
    }

    /// The arguments' dims (each `mul·B + add` of the batch size `B`) and dtypes.
    pub fn arg_dims(&self) -> &[(SymShape, DType)] {
        self.inner.arg_dims()
    }

    /// The outputs' dims and dtypes.
    pub fn output_dims(&self) -> Vec<(SymShape, DType)> {
        self.inner.output_dims()
    }

    /// The graph with its symbolic batch, if it has one.
    pub fn dynamic(&self) -> Option<&DynamicGraph> {
        self.inner.dynamic()
    }

    /// True when the graph has a symbolic batch dim (it runs at every batch size).
    pub fn dynamic_batch(&self) -> bool {
        self.inner.dynamic().is_some()
    }

    /// How many plans were made so far: one per batch size run.
    pub fn plans_made(&self) -> usize {
        self.inner.plans_made()
    }

    /// Runs the graph; arguments must match [`LoadedGraph::arg_dims`]. Outputs kept past
    /// the next call stay as they are (that call moves to fresh buffers).
    pub fn run(&self, args: &[Tensor]) -> Result<Vec<Tensor>, ArtifactError> {
        let operands: Vec<_> = args.iter().map(Tensor::operand).collect();
        let outputs = self.inner.run(&operands)?;
        Ok(outputs.iter().map(Tensor::from_owned_operand).collect())
    }
}

/// Loads a graph saved by [`save`] with the default [`LoadOptions`].
pub fn load(path: impl AsRef<Path>) -> Result<LoadedGraph, ArtifactError> {
    runtime::load(path).map(|inner| LoadedGraph { inner })
}

/// Loads a graph saved by [`save`]. Every property the executor relies on is checked
/// (operands defined before use, each node's attributes, shapes and dtypes re-inferred,
/// weights present, no writes into weights, buffers within `options`' bound), so a damaged or
/// hand-edited file is an error, not a crash; nothing is printed on rejection.
pub fn load_with(
    path: impl AsRef<Path>,
    options: LoadOptions,
) -> Result<LoadedGraph, ArtifactError> {
    runtime::load_with(path, options).map(|inner| LoadedGraph { inner })
}

/// [`load_with`] for the bytes of a graph file; `path` only names it in errors.
pub fn load_bytes(
    bytes: &[u8],
    path: &Path,
    options: LoadOptions,
) -> Result<LoadedGraph, ArtifactError> {
    runtime::load_bytes(bytes, path, options).map(|inner| LoadedGraph { inner })
}
