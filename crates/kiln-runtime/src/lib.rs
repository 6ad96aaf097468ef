//! kiln-runtime: runs compiled graphs. The graph IR ([`ir`]: an SSA list of primitive ops over
//! numbered values, with the inputs it reads and the state it writes), memory planning
//! ([`inplace`], [`memplan`]), the [`executor`] that runs a planned graph over preallocated
//! buffers, the symbolic batch dim that lets one graph run at every batch size
//! ([`symbolic`]), and the graph file format ([`artifact`]) with its weights in safetensors
//! ([`weights`]).
//!
//! Layering: this crate depends on `kiln-kernels` alone. It knows no tensor handle, autograd
//! or tracer: values are storages seen through layouts, and the leaves whose gradient slots a
//! training graph reads or sets are opaque handles ([`ir::Leaf`]) that the caller resolves.
//! A program that only serves graphs links this and the kernels; tracing and the optimization
//! passes live in `kiln-graph`, which builds on it (and `kiln-core` builds its tracer's graphs
//! in this IR).
//!
//! Start reading at [`executor::Executable`].
//!
//! Guide: *Graph mode: `compile`* (`docs/src/graph-mode.md`) for graphs, memory planning and
//! graph files; *Serving* (`docs/src/serving.md`) for running saved graphs.

#![deny(missing_docs)]

pub mod artifact;
pub mod executor;
pub mod inplace;
pub mod ir;
pub mod memplan;
pub mod symbolic;
pub mod weights;

pub use executor::{Buffers, Executable, Feeds, RunError};
pub use ir::{Graph, Input, InputKind, Leaf, Node, ValueId};
