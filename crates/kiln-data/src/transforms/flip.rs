//! [`RandomHorizontalFlip`]: mirror images left–right at random.

use super::{SampleRng, Transform};
use kiln_core::Tensor;

/// Reverses the last (width) dimension with probability `p`, like
/// `torchvision.transforms.RandomHorizontalFlip`. Draws one uniform per sample.
#[derive(Clone, Copy, Debug)]
pub struct RandomHorizontalFlip {
    p: f64,
}

impl RandomHorizontalFlip {
    /// Flips with probability `p` (0.5 is the usual choice).
    ///
    /// # Panics
    /// If `p` is not in [0, 1].
    pub fn new(p: f64) -> RandomHorizontalFlip {
        if !(0.0..=1.0).contains(&p) {
            panic!("RandomHorizontalFlip::new: probability {p} is not in [0, 1]");
        }
        RandomHorizontalFlip { p }
    }
}

/// `x` reversed along its last dimension.
pub(crate) fn hflip(x: &Tensor) -> Tensor {
    let w = x.size(-1);
    let rev = Tensor::from_vec((0..w as i64).rev().collect::<Vec<_>>(), [w]);
    x.index_select(-1, &rev)
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, x: &Tensor, rng: &mut SampleRng) -> Tensor {
        if x.rank() == 0 {
            panic!("RandomHorizontalFlip: cannot flip a 0-d tensor");
        }
        if rng.bernoulli(self.p) {
            hflip(x)
        } else {
            x.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_last_dim() {
        let x = Tensor::from_vec(vec![1u8, 2, 3, 4, 5, 6], [1, 2, 3]);
        assert_eq!(hflip(&x).to_vec::<u8>(), vec![3, 2, 1, 6, 5, 4]);
        let mut rng = SampleRng::new(0);
        let always = RandomHorizontalFlip::new(1.0).apply(&x, &mut rng);
        assert_eq!(always.to_vec::<u8>(), vec![3, 2, 1, 6, 5, 4]);
        let never = RandomHorizontalFlip::new(0.0).apply(&x, &mut rng);
        assert_eq!(never.to_vec::<u8>(), x.to_vec::<u8>());
    }
}
