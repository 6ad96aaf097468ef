//! kiln-nn: the building blocks for models — the [`Module`] trait and `#[derive(Module)]`,
//! layers with PyTorch's parameter names and default initialization, initializers, losses,
//! optimizers with parameter groups, learning-rate schedules, and safetensors checkpoints
//! that PyTorch reads and writes.
//!
//! Layering: built on `kiln-core` (tensors, autograd, functionals), `kiln-derive` (the derive
//! macro) and `kiln-runtime` (whose safetensors reader and writer the checkpoints use). It knows
//! nothing of data loading, training loops, graph compilation or files other than checkpoints.
//!
//! Guide: *Building models* (`docs/src/models.md`) for modules, layers, losses and optimizers;
//! *Checkpoints and PyTorch interop* (`docs/src/checkpoints.md`) for safetensors files.

#![deny(missing_docs)]

// Lets `#[derive(Module)]` name this crate `::kiln_nn` from inside it too.
extern crate self as kiln_nn;

pub mod checkpoint;
pub mod forward;
pub mod graph_module;
pub mod init;
pub mod layers;
pub mod module;
pub mod optim;
pub mod summary;

pub use forward::{Module, MultiInput};
pub use graph_module::{GraphModule, GraphWeight};
pub use kiln_core::nn::functional;
pub use kiln_core::Tensor;
pub use kiln_derive::Module;
pub use layers::*;
pub use module::{ModuleBase, StateDict, StateDictError};
pub use optim::{Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd};
pub use summary::{summary, Summary};
