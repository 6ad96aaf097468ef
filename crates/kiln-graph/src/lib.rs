//! kiln-graph: Kiln's graph mode. [`compile()`] wraps a function over tensors; its first call per
//! input signature traces the function through `kiln-core`'s single dispatch into a
//! [`Graph`] (an SSA list of primitive ops, with parameters and optimizer state as inputs and
//! in-place updates as state writes), runs the optimization [`passes`], and later calls run the
//! graph with the [`executor`].
//!
//! Layering: this crate is the compiler. It depends on `kiln-core` (tracing) and
//! `kiln-runtime` (the IR, memory planning, the executor and the graph file format, which it
//! re-exports under their old paths: [`memplan`], [`inplace`]); models (`kiln-nn`) are plain
//! functions to it.
//!
//! Guide: *Graph mode: `compile`* (`docs/src/graph-mode.md`).

#![deny(missing_docs)]

pub mod artifact;
pub mod compile;
pub mod executor;
pub mod log;
pub mod passes;

pub use kiln_runtime::{inplace, memplan};

pub use compile::{compile, CompileOptions, Compiled, GraphCache};
pub use kiln_core::trace::{ArgSpec, Graph, InputKind, Node, ValueId};
