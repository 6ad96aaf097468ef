//! kiln-kernels: the layer below the tensor — dtypes, shapes, layouts, storage, the compute
//! pool and scratch memory, the primitive op set's declarations with their shape inference,
//! and the CPU backend's kernels, each a function of [`Operand`]s (storage + layout) and op
//! parameters that returns storage.
//!
//! Layering: this crate depends on no Kiln crate and knows nothing of the tensor handle or
//! autograd: `kiln-core` builds the tensor, autograd and graph capture on it. The one trace of
//! graph capture here is one opaque word each [`storage::Storage`] keeps for it
//! ([`storage::Storage::capture_tag`]: the capture layer encodes which traced value a
//! stand-in buffer is; this layer only sets the bit saying a buffer was made during a
//! capture); kernels never read it. A device implements [`backend::Backend`].
//!
//! Guide: *Tensors and autograd* (`docs/src/tensors.md`) for dtypes, devices and layouts as
//! a user sees them; *Performance* (`docs/src/performance.md`) for the kernels, compute threads
//! and the caching allocator.

#![deny(missing_docs)]

pub mod backend;
pub mod buffer;
pub mod cpu;
pub mod device;
pub mod dtype;
pub mod layout;
pub mod memory;
pub mod minifloat;
pub mod operand;
pub mod ops;
pub mod pool;
pub mod profile;
pub mod random;
pub mod shape;
pub mod storage;

pub use device::Device;
pub use dtype::{DType, Element};
pub use half::{bf16, f16};
pub use operand::{Operand, OwnedOperand};
