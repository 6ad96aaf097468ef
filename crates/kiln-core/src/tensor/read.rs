//! Reading values out of a tensor.

use super::Tensor;
use crate::cpu::to_contiguous_vec;
use crate::storage::StorageElement;

impl Tensor {
    /// All elements in row-major order, converted to `T`.
    #[track_caller]
    pub fn to_vec<T: StorageElement>(&self) -> Vec<T> {
        crate::trace::check_readable(self, "to_vec");
        let t = crate::cpu::cast_if(self.operand(), T::DTYPE);
        to_contiguous_vec::<T>(t.operand())
    }

    /// Rows of a 2-D tensor.
    #[track_caller]
    pub fn to_vec2<T: StorageElement>(&self) -> Vec<Vec<T>> {
        if self.rank() != 2 {
            panic!(
                "to_vec2: expected a 2-D tensor, got shape {:?}",
                self.shape()
            );
        }
        let cols = self.shape()[1];
        self.to_vec::<T>()
            .chunks(cols.max(1))
            .map(|c| c.to_vec())
            .collect()
    }

    /// The value of a one-element tensor, converted to `T`.
    #[track_caller]
    pub fn item<T: StorageElement>(&self) -> T {
        crate::trace::check_readable(self, "item");
        if self.numel() != 1 {
            panic!(
                "item: only one-element tensors can be converted to a scalar, got shape {:?}",
                self.shape()
            );
        }
        self.to_vec::<T>()[0]
    }

    /// All elements as f64 (any dtype).
    #[track_caller]
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.to_vec::<f64>()
    }
}
