//! The primitive op set as tensors use it: the op declarations and shape inference of
//! `kiln_kernels::ops` (re-exported here), the single entry [`dispatch`], each op's
//! vector-Jacobian product ([`vjp`]), the eager fused optimizer updates and the recording of
//! traced optimizer steps.

mod dispatch;
pub mod fused_optim;
pub mod optim;
pub(crate) mod pool_windows;
pub mod vjp;

pub use dispatch::dispatch;
pub use kiln_kernels::ops::*;
