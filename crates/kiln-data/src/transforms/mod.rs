//! Per-sample transforms (augmentations and preprocessing), like `torchvision.transforms`.
//!
//! A [`Transform`] maps one sample's features tensor (typically `[C, H, W]`) to a new tensor,
//! drawing any randomness from the [`SampleRng`] it is handed. Wrap a dataset in
//! [`Transformed`](crate::Transformed) to apply a transform to every sample; the stream is
//! seeded from (seed, epoch, sample index), so augmentations are reproducible and independent
//! of how many loader workers run.
//!
//! ```
//! use kiln_data::transforms::{Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToFloat};
//! let train_tf = Compose::new()
//!     .then(ToFloat::new())
//!     .then(RandomCrop::new(32, 32, 4))
//!     .then(RandomHorizontalFlip::new(0.5))
//!     .then(Normalize::new(vec![0.49, 0.48, 0.45], vec![0.25, 0.24, 0.26]));
//! ```

mod compose;
mod crop;
mod flip;
mod normalize;
mod to_float;

pub use compose::Compose;
pub use crop::RandomCrop;
pub use flip::RandomHorizontalFlip;
pub use normalize::Normalize;
pub use to_float::ToFloat;

pub use crate::rng::SampleRng;
use kiln_core::Tensor;
use std::sync::Arc;

/// A function of one sample's features, possibly random.
///
/// Closures `Fn(&Tensor, &mut SampleRng) -> Tensor` are transforms too.
///
/// Implementations panic (with a message naming the transform and the shape) when handed a
/// tensor they cannot work on, like tensor math does.
pub trait Transform: Send + Sync {
    /// Transforms `x`, drawing randomness (if any) from `rng`.
    fn apply(&self, x: &Tensor, rng: &mut SampleRng) -> Tensor;
}

impl<F> Transform for F
where
    F: Fn(&Tensor, &mut SampleRng) -> Tensor + Send + Sync,
{
    fn apply(&self, x: &Tensor, rng: &mut SampleRng) -> Tensor {
        self(x, rng)
    }
}

impl Transform for Box<dyn Transform> {
    fn apply(&self, x: &Tensor, rng: &mut SampleRng) -> Tensor {
        (**self).apply(x, rng)
    }
}

impl<T: Transform + ?Sized> Transform for Arc<T> {
    fn apply(&self, x: &Tensor, rng: &mut SampleRng) -> Tensor {
        (**self).apply(x, rng)
    }
}
