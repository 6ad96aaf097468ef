//! [`TensorDataset`]: rows of a features tensor paired with rows of a labels tensor.

use super::{check_index, Dataset};
use kiln_core::Tensor;

/// Pairs row `i` of `features` with row `i` of `labels`, like `torch.utils.data.TensorDataset`
/// with two tensors.
///
/// `get(i)` returns `(features[i], labels[i])` as views (no copy); for class labels of shape
/// `[N]` the label is a 0-d tensor, which the default collate stacks back into `[batch]`.
#[derive(Clone, Debug)]
pub struct TensorDataset {
    features: Tensor,
    labels: Tensor,
}

impl TensorDataset {
    /// Pairs `features` (`[N, ...]`) with `labels` (`[N, ...]`).
    ///
    /// # Panics
    /// If either tensor is 0-d or their first dimensions differ.
    pub fn new(features: Tensor, labels: Tensor) -> TensorDataset {
        if features.rank() == 0 || labels.rank() == 0 {
            panic!(
                "TensorDataset::new: features {:?} and labels {:?} need a leading sample dim",
                features.shape(),
                labels.shape()
            );
        }
        if features.size(0) != labels.size(0) {
            panic!(
                "TensorDataset::new: features {:?} and labels {:?} differ in sample count",
                features.shape(),
                labels.shape()
            );
        }
        TensorDataset { features, labels }
    }

    /// The whole features tensor.
    pub fn features(&self) -> &Tensor {
        &self.features
    }

    /// The whole labels tensor.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    /// Consumes the dataset, returning `(features, labels)`.
    pub fn into_tensors(self) -> (Tensor, Tensor) {
        (self.features, self.labels)
    }
}

impl Dataset for TensorDataset {
    type Item = (Tensor, Tensor);

    fn len(&self) -> usize {
        self.features.size(0)
    }

    fn get(&self, index: usize) -> (Tensor, Tensor) {
        check_index("TensorDataset::get", index, self.len());
        (self.features.i(index), self.labels.i(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_pair_up() {
        let x = Tensor::from_vec((0..6).map(|v| v as f32).collect::<Vec<_>>(), [3, 2]);
        let y = Tensor::from_vec(vec![7i64, 8, 9], [3]);
        let ds = TensorDataset::new(x, y);
        assert_eq!(ds.len(), 3);
        let (xi, yi) = ds.get(1);
        assert_eq!(xi.to_vec::<f32>(), vec![2.0, 3.0]);
        assert_eq!(yi.shape(), &[] as &[usize]);
        assert_eq!(yi.item::<i64>(), 8);
    }

    #[test]
    #[should_panic(expected = "differ in sample count")]
    fn mismatched_counts_panic() {
        TensorDataset::new(
            Tensor::zeros([3, 2], kiln_core::DType::F32),
            Tensor::zeros([2], kiln_core::DType::I64),
        );
    }
}
