//! [`ConcatDataset`]: several datasets read one after another.

use super::{check_index, Dataset};

/// The samples of several datasets, one after another, like `torch.utils.data.ConcatDataset`.
///
/// The parts share one type; to concatenate different dataset types, box them as
/// `Box<dyn Dataset<Item = I> + Send + Sync>`.
#[derive(Debug)]
pub struct ConcatDataset<D> {
    parts: Vec<D>,
    /// `ends[k]` = total length of parts `0..=k`.
    ends: Vec<usize>,
}

impl<D: Dataset> ConcatDataset<D> {
    /// Concatenates `parts` in order.
    pub fn new(parts: Vec<D>) -> ConcatDataset<D> {
        let ends = parts
            .iter()
            .scan(0, |total, d| {
                *total += d.len();
                Some(*total)
            })
            .collect();
        ConcatDataset { parts, ends }
    }

    /// The concatenated datasets.
    pub fn parts(&self) -> &[D] {
        &self.parts
    }

    /// (part, index within the part) of global `index`.
    fn locate(&self, index: usize) -> (usize, usize) {
        check_index("ConcatDataset::get", index, self.len());
        let part = self.ends.partition_point(|&end| end <= index);
        let start = if part == 0 { 0 } else { self.ends[part - 1] };
        (part, index - start)
    }
}

impl<D: Dataset> Dataset for ConcatDataset<D> {
    type Item = D::Item;

    fn len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    fn get(&self, index: usize) -> D::Item {
        let (part, i) = self.locate(index);
        self.parts[part].get(i)
    }

    fn get_in_epoch(&self, index: usize, epoch: u64) -> D::Item {
        let (part, i) = self.locate(index);
        self.parts[part].get_in_epoch(i, epoch)
    }
}
