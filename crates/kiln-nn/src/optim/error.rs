//! The error type for loading optimizer and scheduler state.

use thiserror::Error;

/// Why `load_state_dict` refused an optimizer or scheduler state. Nothing is modified when one
/// of these is returned.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OptimError {
    /// The state was saved by another optimizer or scheduler type.
    #[error("state was saved by {found}, cannot load it into {expected}")]
    KindMismatch {
        /// The type being loaded into.
        expected: String,
        /// The type recorded in the state.
        found: String,
    },
    /// Different number of parameter groups (or of sub-schedulers).
    #[error("loaded state has {found} parameter groups, the optimizer has {expected}")]
    GroupCount {
        /// Groups in the optimizer.
        expected: usize,
        /// Groups in the state.
        found: usize,
    },
    /// A parameter group holds a different number of parameters.
    #[error("parameter group {group}: loaded state has {found} parameters, the optimizer has {expected}")]
    GroupSize {
        /// Group index.
        group: usize,
        /// Parameters in the optimizer's group.
        expected: usize,
        /// Parameters in the saved group.
        found: usize,
    },
    /// A state tensor's shape differs from its parameter's shape.
    #[error("state tensor {name}: checkpoint has shape {found:?}, the parameter has {expected:?}")]
    ShapeMismatch {
        /// Tensor name (`state.3.exp_avg`).
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The saved tensor's shape.
        found: Vec<usize>,
    },
    /// A state tensor the optimizer needs is absent.
    #[error("state tensor {0} is missing")]
    MissingTensor(String),
    /// A tensor the optimizer does not know.
    #[error("unexpected state tensor {0}")]
    UnexpectedTensor(String),
    /// The state refers to a parameter index that no group holds.
    #[error("state refers to parameter {0}, which no parameter group holds")]
    UnknownParam(String),
    /// A hyper-parameter is out of range (`lr: -1`, `betas: [2, 0.999]`): what the
    /// constructors panic with, returned when such a value is loaded from a state.
    #[error("{0}")]
    InvalidHyperParameter(String),
    /// A field is missing or has the wrong type.
    #[error("malformed state: {0}")]
    Malformed(String),
}
