//! [`Transformed`]: a dataset whose features pass through a [`Transform`] per sample.

use super::Dataset;
use crate::rng::SampleRng;
use crate::transforms::Transform;
use kiln_core::Tensor;

/// Applies `transform` to the features of each `(features, label)` sample of `dataset`; labels
/// pass through unchanged. Like handing `transform=` to a torchvision dataset.
///
/// Randomness is reproducible: sample `i` in epoch `e` sees the random stream
/// [`SampleRng::for_sample(seed, e, i)`](SampleRng::for_sample), whichever worker thread
/// produces it and in whatever order. A [`DataLoader`](crate::DataLoader) passes its epoch, so
/// each epoch draws fresh augmentations; [`Dataset::get`] uses epoch 0.
pub struct Transformed<D, T> {
    dataset: D,
    transform: T,
    seed: u64,
}

impl<D, T> Transformed<D, T> {
    /// Wraps `dataset`; `seed` selects the augmentation stream.
    pub fn new(dataset: D, transform: T, seed: u64) -> Transformed<D, T> {
        Transformed {
            dataset,
            transform,
            seed,
        }
    }

    /// The wrapped dataset.
    pub fn inner(&self) -> &D {
        &self.dataset
    }

    /// The transform.
    pub fn transform(&self) -> &T {
        &self.transform
    }
}

impl<D, T> Dataset for Transformed<D, T>
where
    D: Dataset<Item = (Tensor, Tensor)>,
    T: Transform,
{
    type Item = (Tensor, Tensor);

    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn get(&self, index: usize) -> (Tensor, Tensor) {
        self.get_in_epoch(index, 0)
    }

    fn get_in_epoch(&self, index: usize, epoch: u64) -> (Tensor, Tensor) {
        let (x, y) = self.dataset.get_in_epoch(index, epoch);
        let mut rng = SampleRng::for_sample(self.seed, epoch, index);
        (self.transform.apply(&x, &mut rng), y)
    }
}
