//! kiln-core: the foundation of Kiln — the [`Tensor`] (dtypes, strided views, devices), the one
//! primitive op set with its single [`ops::dispatch`], CPU kernels, reverse-mode autograd, and
//! the neural-network functionals built from the primitives.
//!
//! Layering: built on `kiln-kernels` (dtypes, shapes, layouts, storage, the op set's
//! declarations and the CPU kernels, re-exported here under their usual paths); nothing here
//! knows about layers, files or HTTP. `kiln-nn`, `kiln-data` and the rest build on this crate.
//!
//! Guide: *Tensors and autograd* (`docs/src/tensors.md`); *Errors and bad input*
//! (`docs/src/errors.md`) for what a wrong shape or dtype reports.

#![deny(missing_docs)]

pub mod autograd;
pub mod nn;
pub mod ops;
pub mod tensor;
pub mod trace;

pub use kiln_kernels::{
    backend, buffer, cpu, device, dtype, layout, memory, operand, pool, profile, random, shape,
    storage, with_storage,
};

pub use autograd::{no_grad, NoGradGuard};
pub use cpu::threads::{num_threads, set_num_threads};
pub use device::Device;
pub use dtype::{DType, Element};
pub use half::{bf16, f16};
pub use random::{manual_seed, Generator};
pub use tensor::Tensor;
