//! [`MultiInputDataset`]: rows of several input tensors paired with rows of a labels tensor,
//! for models that take more than one input (tokens and a padding mask, an image and its
//! metadata).

use super::{check_index, Dataset};
use kiln_core::Tensor;

/// Pairs row `i` of each input tensor with row `i` of `labels`, like
/// `torch.utils.data.TensorDataset(tokens, mask, labels)`.
///
/// `get(i)` returns `(vec![input_0[i], input_1[i], ..], labels[i])` as views (no copy); the
/// default collate stacks them into `(vec![[batch, ..], ..], [batch, ..])`, which the
/// `Trainer` passes to a `MultiInput` model.
///
/// ```
/// use kiln_core::{DType, Tensor};
/// use kiln_data::{DataLoader, Dataset, MultiInputDataset};
/// let tokens = Tensor::zeros([10, 16], DType::I64);
/// let mask = Tensor::ones([10, 16], DType::Bool);
/// let ds = MultiInputDataset::new(vec![tokens, mask], Tensor::zeros([10], DType::I64));
/// let (inputs, labels) = DataLoader::new(ds, 4).iter().next().unwrap();
/// assert_eq!((inputs[0].shape(), inputs[1].shape(), labels.shape()), ([4, 16].as_slice(), [4, 16].as_slice(), [4].as_slice()));
/// ```
#[derive(Clone, Debug)]
pub struct MultiInputDataset {
    inputs: Vec<Tensor>,
    labels: Tensor,
}

impl MultiInputDataset {
    /// Pairs `inputs` (each `[N, ...]`) with `labels` (`[N, ...]`).
    ///
    /// # Panics
    /// If there are no inputs, a tensor is 0-d, or their first dimensions differ.
    pub fn new(inputs: Vec<Tensor>, labels: Tensor) -> MultiInputDataset {
        let shapes = || -> Vec<Vec<usize>> { inputs.iter().map(|t| t.shape().to_vec()).collect() };
        if inputs.is_empty() {
            panic!("MultiInputDataset::new: needs at least one input tensor");
        }
        if labels.rank() == 0 || inputs.iter().any(|t| t.rank() == 0) {
            panic!(
                "MultiInputDataset::new: inputs {:?} and labels {:?} need a leading sample dim",
                shapes(),
                labels.shape()
            );
        }
        if inputs.iter().any(|t| t.size(0) != labels.size(0)) {
            panic!(
                "MultiInputDataset::new: inputs {:?} and labels {:?} differ in sample count",
                shapes(),
                labels.shape()
            );
        }
        MultiInputDataset { inputs, labels }
    }

    /// The whole input tensors, in order.
    pub fn inputs(&self) -> &[Tensor] {
        &self.inputs
    }

    /// The whole labels tensor.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }
}

impl Dataset for MultiInputDataset {
    type Item = (Vec<Tensor>, Tensor);

    fn len(&self) -> usize {
        self.labels.size(0)
    }

    fn get(&self, index: usize) -> (Vec<Tensor>, Tensor) {
        check_index("MultiInputDataset::get", index, self.len());
        (
            self.inputs.iter().map(|t| t.i(index)).collect(),
            self.labels.i(index),
        )
    }
}
