//! Kiln: write a model as plain Rust and run it eagerly with autograd; later, compile the same
//! code into an optimized graph. This crate is the facade users depend on:
//! `use kiln::prelude::*;`.
//!
//! - [`Tensor`] and the core (`kiln::autograd`, `kiln::ops`, …) come from `kiln-core`;
//! - [`nn`] is `kiln-nn`: the `Module` trait and derive, layers, losses, optimizers,
//!   schedules, checkpoints, and `nn::functional`;
//! - [`data`] is `kiln-data`: datasets, the `DataLoader`, transforms and readers;
//! - [`train`] is `kiln-train`: the `Trainer` (fit / evaluate / predict), metrics, callbacks
//!   and TensorBoard logging;
//! - [`compile`] and [`graph`] are `kiln-graph`: graph mode (trace a function — forward,
//!   backward and optimizer step — into an optimized graph and run it).
//!
//! Layering: the facade re-exports the library crates and adds no code of its own; it may
//! depend on every library crate, and none depends on it (`kiln-bench` does, as a user would).

#![warn(missing_docs)]

pub use kiln_core::{
    autograd, cpu, device, dtype, layout, memory, ops, profile, random, shape, storage, tensor,
    trace,
};
pub use kiln_core::{bf16, f16, manual_seed, no_grad, num_threads, set_num_threads};
pub use kiln_core::{DType, Device, Generator, NoGradGuard, Tensor};
pub use kiln_data as data;
pub use kiln_graph as graph;
pub use kiln_graph::compile;
pub use kiln_nn as nn;
pub use kiln_train as train;

/// Everything a model script needs in scope.
pub mod prelude {
    pub use kiln_core::autograd::{gradcheck, BackwardOptions};
    pub use kiln_core::nn::functional as F;
    pub use kiln_core::{
        manual_seed, no_grad, set_num_threads, DType, Device, Generator, NoGradGuard, Tensor,
    };
    pub use kiln_data::{DataLoader, Dataset, TensorDataset};
    pub use kiln_graph::compile;
    pub use kiln_nn::optim::lr_scheduler::LrScheduler;
    pub use kiln_nn::optim::{Adam, AdamW, Optimizer, Sgd};
    pub use kiln_nn::{layers::*, Module, ModuleBase};
    pub use kiln_train::Trainer;
}

// The README's Rust code, compiled and run by `cargo test --workspace` so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

// The guide's chapters (`docs/`), compiled and run the same way.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/graph-mode.md")]
pub struct GuideGraphModeDoctests;
