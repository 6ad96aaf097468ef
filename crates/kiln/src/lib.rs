//! Kiln is a deep-learning framework in plain Rust. You write a model as ordinary Rust code
//! and run it eagerly, op by op, with reverse-mode autograd: every line runs when it is
//! reached, so you can print any tensor or stop in a debugger anywhere. When the model works,
//! wrap the same code — a forward pass, or a whole training step with its backward pass and
//! optimizer update — in [`compile()`](fn@compile): it is traced into a graph, optimized, and
//! run as that graph from then on. Layers, losses, optimizers and checkpoints follow PyTorch's
//! parameter names, formulas and safetensors files, so weights move both ways.
//!
//! This crate is the facade users depend on: add `kiln` to your `Cargo.toml` and write
//! `use kiln::prelude::*;`. It adds no code of its own; each module below is one of Kiln's
//! library crates, re-exported.
//!
//! # Example
//!
//! A gradient in eager mode, then the same computation compiled into a graph:
//!
//! ```
//! use kiln::prelude::*;
//!
//! manual_seed(0);
//! let x = Tensor::randn([3, 4], DType::F32);
//! let w = Tensor::randn([4, 2], DType::F32).requires_grad_(true);
//!
//! // Eager: ops run as they are called and record what backward needs.
//! let y = x.matmul(&w).relu();
//! let loss = y.square().mean_all();
//! loss.backward();
//! assert_eq!(w.grad().unwrap().shape(), [4, 2]); // dloss/dw
//!
//! // Graph mode: the first call traces the closure, later calls run the optimized graph.
//! let mut f = compile(|args: &[Tensor]| vec![args[0].matmul(&args[1]).relu()]);
//! let y_graph = f.call(&[x.clone(), w.detach()]).remove(0);
//! for (a, b) in y.to_vec::<f32>().iter().zip(y_graph.to_vec::<f32>()) {
//!     assert!((a - b).abs() < 1e-5);
//! }
//! ```
//!
//! # Modules
//!
//! | Module | What it holds | From |
//! |---|---|---|
//! | [`prelude`] | Everything a model script needs in scope: [`Tensor`], layers, optimizers, `F` (the functionals), [`compile()`](fn@compile), `Trainer`. | this crate |
//! | [`tensor`] | The [`Tensor`] handle: creation, indexing and views, arithmetic, reductions, reading values out. | `kiln-core` |
//! | [`autograd`] | Reverse-mode autodiff: grad mode ([`no_grad`]), the backward engine, `gradcheck`. | `kiln-core` |
//! | [`ops`] | The primitive op set, its single dispatch and each op's vector-Jacobian product. | `kiln-core` |
//! | [`trace`] | Graph capture: records the ops a function runs into a graph instead of running them. | `kiln-core` |
//! | [`nn`] | The `Module` trait and `#[derive(Module)]`, layers, initializers, losses, optimizers, LR schedules, safetensors checkpoints, `nn::functional`. | `kiln-nn` |
//! | [`data`] | Datasets, the batching `DataLoader`, per-sample transforms, readers (bundled digits, MNIST, CIFAR-10, CSV, image folders). | `kiln-data` |
//! | [`train`] | The `Trainer` (fit / evaluate / predict), metrics, callbacks, progress display, TensorBoard logging. | `kiln-train` |
//! | [`mod@compile`] | [`compile()`](fn@compile) and its options, the compiled function and its graph cache. | `kiln-graph` |
//! | [`graph`] | Graph mode as a whole: the graph, optimization passes, executor, graph files. | `kiln-graph` |
//! | [`dtype`] | Element types ([`DType`]) and the Rust types that map to them, incl. [`struct@f16`] and [`bf16`]. | `kiln-kernels` |
//! | [`device`] | Where a tensor's storage lives ([`Device`]); only the CPU today. | `kiln-kernels` |
//! | [`shape`] | Shapes, dimension arguments and broadcasting rules. | `kiln-kernels` |
//! | [`layout`] | Strided layouts: how a tensor's indices map onto its storage. | `kiln-kernels` |
//! | [`storage`] | The buffers tensors and their views share, with the version counter autograd checks. | `kiln-kernels` |
//! | [`cpu`] | The CPU backend's kernels and its compute threads ([`set_num_threads`]). | `kiln-kernels` |
//! | [`random`] | Seeded, thread-count-independent random generators ([`manual_seed`], [`Generator`]). | `kiln-kernels` |
//! | [`memory`] | Peak tensor memory of a piece of work. | `kiln-kernels` |
//! | [`profile`] | The per-op profiler (`KILN_PROFILE=1`). | `kiln-kernels` |
//!
//! # Read on
//!
//! - The guide, an mdBook under `docs/src/`: start with *Getting started*
//!   (`docs/src/getting-started.md`) and *Coming from PyTorch, Keras or TensorFlow*
//!   (`docs/src/coming-from.md`); then *Tensors and autograd* (`docs/src/tensors.md`),
//!   *Building models* (`docs/src/models.md`), *Data* (`docs/src/data.md`), *Training and
//!   callbacks* (`docs/src/training.md`) and *Graph mode* (`docs/src/graph-mode.md`).
//! - The examples in `crates/kiln/examples/`: `eager.rs`, `digits_mlp.rs`, `digits_cnn.rs`,
//!   `compile_mlp.rs`, `char_transformer.rs` (`cargo run --release -p kiln --example eager`).
//! - The `kiln` command (train, evaluate, predict, inspect without writing code):
//!   *The `kiln` command* (`docs/src/command-line.md`).
//!
//! Layering: the facade re-exports the library crates and adds no code of its own; it may
//! depend on every library crate, and none depends on it (`kiln-bench` does, as a user would).

#![deny(missing_docs)]

pub use kiln_core::{
    autograd, cpu, device, dtype, layout, memory, ops, profile, random, shape, storage, tensor,
    trace,
};
pub use kiln_core::{bf16, f16, manual_seed, no_grad, num_threads, set_num_threads};
pub use kiln_core::{DType, Device, Generator, NoGradGuard, Tensor};
#[doc(inline)]
pub use kiln_data as data;
#[doc(inline)]
pub use kiln_graph as graph;
#[doc(inline)]
pub use kiln_graph::compile;
#[doc(inline)]
pub use kiln_nn as nn;
/// ONNX export and import (`kiln-onnx`). [`onnx::load`] and [`onnx::load_with`] here run
/// Kiln's graph passes (the pipeline `compile` runs) over the imported graph before it is
/// planned; `kiln_onnx::load` runs it as imported.
pub mod onnx {
    pub use kiln_onnx::*;

    /// The passes `compile` runs, as an import's [`ImportOptions::optimize`].
    pub fn optimize() -> Optimize {
        std::sync::Arc::new(kiln_graph::passes::run_default_pipeline)
    }

    /// Imports the ONNX model at `path` and optimizes its graph with Kiln's passes.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<OnnxModel, OnnxError> {
        load_with(path, &ImportOptions::default())
    }

    /// Imports the ONNX model at `path` as a module to train: its initializers become
    /// parameters (a batch norm's running statistics, buffers), and its forward pass runs the
    /// imported ops with autograd. `options.outputs` cuts the network (before its head, say);
    /// `options.trainable` is set here.
    pub fn load_trainable(
        path: impl AsRef<std::path::Path>,
        options: &ImportOptions,
    ) -> Result<kiln_nn::GraphModule, OnnxError> {
        let options = ImportOptions {
            trainable: true,
            optimize: None,
            ..options.clone()
        };
        let g = import_graph(path, &options)?;
        Ok(kiln_nn::GraphModule::new(g.graph, g.dynamic, &g.weights))
    }

    /// [`load`] with options; Kiln's passes run unless `options.optimize` names others.
    pub fn load_with(
        path: impl AsRef<std::path::Path>,
        options: &ImportOptions,
    ) -> Result<OnnxModel, OnnxError> {
        let mut options = options.clone();
        options.optimize.get_or_insert_with(optimize);
        kiln_onnx::load_with(path, &options)
    }
}
#[doc(inline)]
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
    pub use kiln_nn::{layers::*, Module, ModuleBase, MultiInput};
    pub use kiln_train::Trainer;
}

// The README's Rust code, compiled and run by `cargo test --workspace` so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

// The guide's chapters (`docs/src/`, an mdBook), compiled and run the same way: a broken
// example in the book fails `cargo test --workspace`. `tools/check_book.py` checks that every
// chapter in `docs/src/SUMMARY.md` is listed here.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../../../docs/src/introduction.md")]
    pub struct Introduction;
    #[doc = include_str!("../../../docs/src/getting-started.md")]
    pub struct GettingStarted;
    #[doc = include_str!("../../../docs/src/coming-from.md")]
    pub struct ComingFrom;
    #[doc = include_str!("../../../docs/src/tensors.md")]
    pub struct Tensors;
    #[doc = include_str!("../../../docs/src/models.md")]
    pub struct Models;
    #[doc = include_str!("../../../docs/src/data.md")]
    pub struct Data;
    #[doc = include_str!("../../../docs/src/training.md")]
    pub struct Training;
    #[doc = include_str!("../../../docs/src/tensorboard-profiler.md")]
    pub struct TensorboardProfiler;
    #[doc = include_str!("../../../docs/src/checkpoints.md")]
    pub struct Checkpoints;
    #[doc = include_str!("../../../docs/src/graph-mode.md")]
    pub struct GraphMode;
    #[doc = include_str!("../../../docs/src/command-line.md")]
    pub struct CommandLine;
    #[doc = include_str!("../../../docs/src/serving.md")]
    pub struct Serving;
    #[doc = include_str!("../../../docs/src/onnx.md")]
    pub struct Onnx;
    #[doc = include_str!("../../../docs/src/quantization.md")]
    pub struct Quantization;
    #[doc = include_str!("../../../docs/src/distributed.md")]
    pub struct Distributed;
    #[doc = include_str!("../../../docs/src/performance.md")]
    pub struct Performance;
    #[doc = include_str!("../../../docs/src/errors.md")]
    pub struct Errors;
}
