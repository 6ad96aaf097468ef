//! Kiln: write a model as plain Rust and run it eagerly with autograd; later, compile the same
//! code into an optimized graph. This crate is the facade users depend on:
//! `use kiln::prelude::*;`.

#![warn(missing_docs)]

pub use kiln_core::{
    autograd, cpu, device, dtype, layout, nn, ops, random, shape, storage, tensor,
};
pub use kiln_core::{bf16, f16, manual_seed, no_grad, num_threads, set_num_threads};
pub use kiln_core::{DType, Device, Generator, NoGradGuard, Tensor};

/// Everything a model script needs in scope.
pub mod prelude {
    pub use kiln_core::autograd::{gradcheck, BackwardOptions};
    pub use kiln_core::nn::functional as F;
    pub use kiln_core::{
        manual_seed, no_grad, set_num_threads, DType, Device, Generator, NoGradGuard, Tensor,
    };
}
