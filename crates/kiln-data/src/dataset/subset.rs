//! [`Subset`]: a dataset restricted to chosen indices.

use super::{check_index, Dataset};
use std::sync::Arc;

/// The samples of a shared dataset at the given indices, in that order, like
/// `torch.utils.data.Subset`. Several subsets can share one dataset (see
/// [`random_split`](crate::random_split)).
#[derive(Debug)]
pub struct Subset<D> {
    dataset: Arc<D>,
    indices: Vec<usize>,
}

impl<D> Clone for Subset<D> {
    fn clone(&self) -> Self {
        Subset {
            dataset: Arc::clone(&self.dataset),
            indices: self.indices.clone(),
        }
    }
}

impl<D: Dataset> Subset<D> {
    /// The samples of `dataset` at `indices`.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn new(dataset: D, indices: Vec<usize>) -> Subset<D> {
        Subset::from_arc(Arc::new(dataset), indices)
    }

    /// The samples of a shared `dataset` at `indices`.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn from_arc(dataset: Arc<D>, indices: Vec<usize>) -> Subset<D> {
        let n = dataset.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            panic!("Subset::new: index {bad} is out of range for a dataset of {n} samples");
        }
        Subset { dataset, indices }
    }

    /// The indices into the underlying dataset.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The underlying dataset.
    pub fn dataset(&self) -> &Arc<D> {
        &self.dataset
    }
}

impl<D: Dataset> Dataset for Subset<D> {
    type Item = D::Item;

    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> D::Item {
        check_index("Subset::get", index, self.len());
        self.dataset.get(self.indices[index])
    }

    fn get_in_epoch(&self, index: usize, epoch: u64) -> D::Item {
        check_index("Subset::get", index, self.len());
        self.dataset.get_in_epoch(self.indices[index], epoch)
    }
}
