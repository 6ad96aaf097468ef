//! The [`Dataset`] trait and the datasets built from others: [`TensorDataset`], [`Subset`],
//! [`ConcatDataset`], [`random_split`] and [`Transformed`].

mod concat;
mod multi_input_dataset;
mod split;
mod subset;
mod tensor_dataset;
mod transformed;

pub use concat::ConcatDataset;
pub use multi_input_dataset::MultiInputDataset;
pub use split::{random_split, SplitLengths};
pub use subset::Subset;
pub use tensor_dataset::TensorDataset;
pub use transformed::Transformed;

use std::sync::Arc;

/// A collection of samples addressable by index, like `torch.utils.data.Dataset`.
///
/// Implement [`len`](Dataset::len) and [`get`](Dataset::get). A
/// [`DataLoader`](crate::DataLoader) fetches samples through
/// [`get_in_epoch`](Dataset::get_in_epoch), which passes the current epoch so that datasets with
/// per-epoch randomness (such as [`Transformed`]) draw fresh, reproducible augmentations each
/// epoch; the default ignores the epoch and calls `get`.
///
/// `get` may panic on an index `>= len()`, like slice indexing.
pub trait Dataset {
    /// One sample, e.g. `(Tensor, Tensor)` for a (features, label) pair.
    type Item;

    /// The number of samples.
    fn len(&self) -> usize;

    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `index` (as seen in epoch 0).
    fn get(&self, index: usize) -> Self::Item;

    /// Sample `index` as seen in `epoch`. Wrappers must forward the epoch to the dataset they
    /// wrap; datasets with per-epoch randomness override this.
    fn get_in_epoch(&self, index: usize, epoch: u64) -> Self::Item {
        let _ = epoch;
        self.get(index)
    }
}

impl<D: Dataset + ?Sized> Dataset for Arc<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        (**self).len()
    }
    fn get(&self, index: usize) -> D::Item {
        (**self).get(index)
    }
    fn get_in_epoch(&self, index: usize, epoch: u64) -> D::Item {
        (**self).get_in_epoch(index, epoch)
    }
}

impl<D: Dataset + ?Sized> Dataset for Box<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        (**self).len()
    }
    fn get(&self, index: usize) -> D::Item {
        (**self).get(index)
    }
    fn get_in_epoch(&self, index: usize, epoch: u64) -> D::Item {
        (**self).get_in_epoch(index, epoch)
    }
}

/// Panics with a uniform message when `index` is out of range for a dataset of `len` samples.
pub(crate) fn check_index(what: &str, index: usize, len: usize) {
    if index >= len {
        panic!("{what}: index {index} is out of range for a dataset of {len} samples");
    }
}
