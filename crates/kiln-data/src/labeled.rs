//! [`LabeledImages`] and [`Split`]: what the image-dataset readers (MNIST, CIFAR-10) return.

use crate::dataset::TensorDataset;
use kiln_core::{DType, Tensor};

/// Which part of a dataset with a fixed train/test division to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

/// Images as stored on disk (`u8` pixels, `[N, C, H, W]`) with `i64` class labels (`[N]`).
#[derive(Clone, Debug)]
pub struct LabeledImages {
    /// `u8` pixels, `[N, C, H, W]`.
    pub images: Tensor,
    /// `i64` class indices, `[N]`.
    pub labels: Tensor,
}

impl LabeledImages {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.size(0)
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images as f32 in [0, 1] (pixel / 255), `[N, C, H, W]`.
    pub fn float_images(&self) -> Tensor {
        self.images.to_dtype(DType::F32).mul_scalar(1.0 / 255.0)
    }

    /// A dataset of (f32 `[C, H, W]` image in [0, 1], i64 label) samples.
    pub fn to_dataset(&self) -> TensorDataset {
        TensorDataset::new(self.float_images(), self.labels.clone())
    }

    /// A dataset of (u8 `[C, H, W]` image, i64 label) samples, for pipelines that start with
    /// [`ToFloat`](crate::transforms::ToFloat) (4× less memory than [`to_dataset`](Self::to_dataset)).
    pub fn raw_dataset(&self) -> TensorDataset {
        TensorDataset::new(self.images.clone(), self.labels.clone())
    }
}
