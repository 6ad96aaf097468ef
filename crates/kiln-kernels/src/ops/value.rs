//! What shape inference works on and returns: a value's type ([`ValueType`]: shape and
//! dtype) and [`OpError`], the message naming the op, shapes and dtypes.

use crate::dtype::DType;
use crate::operand::Operand;

/// Why an op cannot apply to its operands; the message names the op, shapes and dtypes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError(pub String);

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpError {}

/// Result of shape inference.
pub type InferResult<T> = Result<T, OpError>;

/// Returns an [`OpError`] formatted like `format!`.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err(OpError(format!($($arg)*)))
    };
}
pub(crate) use fail;

/// What inference needs to know of an operand: its shape and dtype. Implemented by
/// `kiln_core`'s tensor (eager and traced code), [`Operand`] (kernels) and [`TypeRef`] (a
/// graph read from a file).
pub trait ValueType {
    /// The dims.
    fn shape(&self) -> &[usize];
    /// The element type.
    fn dtype(&self) -> DType;
    /// Number of dims.
    fn rank(&self) -> usize {
        self.shape().len()
    }
    /// Number of elements, saturating: an operand's shape was checked when it was made, but
    /// inference must not panic even on one that was not.
    fn numel(&self) -> usize {
        self.shape()
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .unwrap_or(usize::MAX)
    }
}

impl ValueType for Operand<'_> {
    fn shape(&self) -> &[usize] {
        Operand::shape(self)
    }
    fn dtype(&self) -> DType {
        Operand::dtype(self)
    }
}

/// A shape and dtype without a tensor (a value of a graph).
#[derive(Clone, Copy, Debug)]
pub struct TypeRef<'a> {
    /// The dims.
    pub shape: &'a [usize],
    /// The element type.
    pub dtype: DType,
}

impl ValueType for TypeRef<'_> {
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
}

/// Advice for operands of two float dtypes that must match: which cast to use, and the usual
/// cause (a Rust float literal is f64 unless suffixed).
pub fn cast_hint(a: DType, b: DType) -> String {
    match (a, b) {
        (DType::F32, DType::F64) | (DType::F64, DType::F32) => {
            "; cast one of them, e.g. `.to_dtype(DType::F32)` (note that Rust float literals \
             such as `vec![1.0; n]` make f64 tensors unless written `1.0f32`)"
                .into()
        }
        (x, y) if x != y => format!("; cast one of them with `.to_dtype(DType::{y:?})`"),
        _ => String::new(),
    }
}
