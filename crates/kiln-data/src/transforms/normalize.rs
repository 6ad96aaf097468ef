//! [`Normalize`]: per-channel standardization.

use super::{SampleRng, Transform};
use kiln_core::Tensor;

/// `(x - mean[c]) / std[c]` for each channel `c` along dim 0 (of `[C, H, W]`, or of a
/// `[features]` vector), like `torchvision.transforms.Normalize`. A single mean/std applies to
/// every channel.
#[derive(Clone, Debug)]
pub struct Normalize {
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Normalize {
    /// Per-channel `mean` and `std` (equal lengths).
    ///
    /// # Panics
    /// If the lengths differ, are zero, or a std is not positive.
    pub fn new(mean: Vec<f64>, std: Vec<f64>) -> Normalize {
        if mean.is_empty() || mean.len() != std.len() {
            panic!(
                "Normalize::new: mean ({}) and std ({}) need the same non-zero length",
                mean.len(),
                std.len()
            );
        }
        if let Some(s) = std
            .iter()
            .find(|&&s| s.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
        {
            panic!("Normalize::new: std {s} is not positive");
        }
        Normalize { mean, std }
    }

    /// The per-channel means.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The per-channel standard deviations.
    pub fn std(&self) -> &[f64] {
        &self.std
    }
}

impl Transform for Normalize {
    fn apply(&self, x: &Tensor, _rng: &mut SampleRng) -> Tensor {
        if !x.dtype().is_float() || x.rank() == 0 {
            panic!(
                "Normalize: expected a float tensor [C, ...], got {} {:?} (apply ToFloat first)",
                x.dtype().name(),
                x.shape()
            );
        }
        let c = self.mean.len();
        if c != 1 && c != x.size(0) {
            panic!(
                "Normalize: {c} channel statistics for a sample of shape {:?}",
                x.shape()
            );
        }
        // Shape [C, 1, 1, ...] broadcasts over the remaining dims.
        let mut shape = vec![1usize; x.rank()];
        shape[0] = c;
        let mean = Tensor::from_vec(self.mean.clone(), shape.clone()).to_dtype(x.dtype());
        let inv_std = Tensor::from_vec(self.std.iter().map(|s| 1.0 / s).collect::<Vec<_>>(), shape)
            .to_dtype(x.dtype());
        x.sub(&mean).mul(&inv_std)
    }
}
