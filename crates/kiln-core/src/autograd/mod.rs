//! Reverse-mode automatic differentiation: grad mode, the recorded graph, the backward engine
//! and a finite-difference gradient checker.

mod engine;
mod grad_mode;
pub mod gradcheck;
mod node;

pub use engine::BackwardOptions;
pub use grad_mode::{is_grad_enabled, no_grad, NoGradGuard};
pub use gradcheck::{gradcheck, GradcheckError};
pub use node::{Edge, Node};
