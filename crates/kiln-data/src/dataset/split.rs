//! [`random_split`]: a seeded partition of a dataset into [`Subset`]s.

use super::{Dataset, Subset};
use crate::rng::{derive_key, permutation, stream};
use std::sync::Arc;

/// Sizes for [`random_split`]: absolute lengths (`[usize]`) that sum to the dataset length, or
/// fractions (`[f64]`) that sum to 1.
///
/// Fractions become `floor(n * f)` samples each, and the few samples left over are handed out
/// one at a time to the parts in order — PyTorch's rule.
pub trait SplitLengths {
    /// The absolute lengths for a dataset of `total` samples.
    ///
    /// # Panics
    /// If the lengths do not sum to `total` or the fractions do not sum to 1.
    fn resolve(&self, total: usize) -> Vec<usize>;
}

impl SplitLengths for [usize] {
    fn resolve(&self, total: usize) -> Vec<usize> {
        let sum: usize = self.iter().sum();
        if sum != total {
            panic!("random_split: lengths {self:?} sum to {sum}, not the dataset length {total}");
        }
        self.to_vec()
    }
}

impl SplitLengths for [f64] {
    fn resolve(&self, total: usize) -> Vec<usize> {
        let sum: f64 = self.iter().sum();
        if self.iter().any(|f| !(0.0..=1.0).contains(f)) || (sum - 1.0).abs() > 1e-6 {
            panic!("random_split: fractions {self:?} must each lie in [0, 1] and sum to 1");
        }
        let mut lengths: Vec<usize> = self
            .iter()
            .map(|f| (f * total as f64).floor() as usize)
            .collect();
        let assigned: usize = lengths.iter().sum();
        for k in 0..total.saturating_sub(assigned) {
            let slot = k % lengths.len();
            lengths[slot] += 1;
        }
        lengths
    }
}

impl<T, const N: usize> SplitLengths for [T; N]
where
    [T]: SplitLengths,
{
    fn resolve(&self, total: usize) -> Vec<usize> {
        self[..].resolve(total)
    }
}

impl<T> SplitLengths for Vec<T>
where
    [T]: SplitLengths,
{
    fn resolve(&self, total: usize) -> Vec<usize> {
        self[..].resolve(total)
    }
}

impl<S: SplitLengths + ?Sized> SplitLengths for &S {
    fn resolve(&self, total: usize) -> Vec<usize> {
        (**self).resolve(total)
    }
}

/// Randomly partitions `dataset` into non-overlapping [`Subset`]s of the given sizes, like
/// `torch.utils.data.random_split`. The same `seed` always gives the same partition. The
/// subsets share `dataset` (pass an `Arc` to keep a handle on it yourself).
///
/// ```
/// use kiln_data::{random_split, Dataset, TensorDataset};
/// use kiln_core::{DType, Tensor};
/// let ds = TensorDataset::new(Tensor::zeros([10, 3], DType::F32), Tensor::zeros([10], DType::I64));
/// let parts = random_split(ds, [0.8, 0.2], 0);
/// assert_eq!((parts[0].len(), parts[1].len()), (8, 2));
/// ```
///
/// # Panics
/// If `lengths` does not describe the whole dataset (see [`SplitLengths`]).
pub fn random_split<D: Dataset>(
    dataset: D,
    lengths: impl SplitLengths,
    seed: u64,
) -> Vec<Subset<D>> {
    let dataset = Arc::new(dataset);
    let lengths = lengths.resolve(dataset.len());
    let perm = permutation(dataset.len(), derive_key(&[stream::SPLIT, seed]));
    let mut start = 0;
    lengths
        .into_iter()
        .map(|len| {
            let indices = perm[start..start + len].to_vec();
            start += len;
            Subset::from_arc(Arc::clone(&dataset), indices)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_follow_pytorch_rounding() {
        assert_eq!([0.8, 0.2].resolve(10), vec![8, 2]);
        assert_eq!([0.5, 0.5].resolve(7), vec![4, 3]);
        assert_eq!([1.0 / 3.0; 3].resolve(10), vec![4, 3, 3]);
        assert_eq!([3usize, 7].resolve(10), vec![3, 7]);
    }

    #[test]
    #[should_panic(expected = "sum to 9")]
    fn wrong_lengths_panic() {
        [4usize, 5].resolve(10);
    }
}
