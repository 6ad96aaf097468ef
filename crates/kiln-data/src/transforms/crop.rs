//! [`RandomCrop`]: zero-pad, then cut a window at a random position.

use super::{SampleRng, Transform};
use kiln_core::Tensor;

/// Pads the last two (height, width) dims with `padding` zeros on every side, then crops a
/// `height × width` window at a uniformly random position, like
/// `torchvision.transforms.RandomCrop(size, padding)`. Draws two uniforms per sample (top,
/// then left). The classic CIFAR-10 augmentation is `RandomCrop::new(32, 32, 4)`.
#[derive(Clone, Copy, Debug)]
pub struct RandomCrop {
    height: usize,
    width: usize,
    padding: usize,
}

impl RandomCrop {
    /// Crops `height × width` after padding each side by `padding`.
    pub fn new(height: usize, width: usize, padding: usize) -> RandomCrop {
        RandomCrop {
            height,
            width,
            padding,
        }
    }
}

/// `x` with `pad` zeros before and after each of its last two dims.
pub(crate) fn pad_hw(x: &Tensor, pad: usize) -> Tensor {
    if pad == 0 {
        return x.clone();
    }
    let r = x.rank();
    let padded_h =
        Tensor::slice_scatter_zeros(&x.contiguous(), r - 2, pad, 1, x.size(-2) + 2 * pad);
    Tensor::slice_scatter_zeros(&padded_h, r - 1, pad, 1, x.size(-1) + 2 * pad)
}

impl Transform for RandomCrop {
    fn apply(&self, x: &Tensor, rng: &mut SampleRng) -> Tensor {
        if x.rank() < 2 {
            panic!(
                "RandomCrop: expected [..., H, W], got shape {:?}",
                x.shape()
            );
        }
        let padded = pad_hw(x, self.padding);
        let (h, w) = (padded.size(-2), padded.size(-1));
        if self.height > h || self.width > w {
            panic!(
                "RandomCrop: {}x{} crop does not fit a {h}x{w} (padded) sample of shape {:?}",
                self.height,
                self.width,
                x.shape()
            );
        }
        let top = rng.below(h - self.height + 1);
        let left = rng.below(w - self.width + 1);
        let r = padded.rank();
        padded
            .narrow(r - 2, top, self.height)
            .narrow(r - 1, left, self.width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_with_zeros() {
        let x = Tensor::from_vec(vec![1u8, 2, 3, 4], [1, 2, 2]);
        let p = pad_hw(&x, 1);
        assert_eq!(p.shape(), &[1, 4, 4]);
        #[rustfmt::skip]
        let expect = vec![0u8, 0, 0, 0,
                          0, 1, 2, 0,
                          0, 3, 4, 0,
                          0, 0, 0, 0];
        assert_eq!(p.to_vec::<u8>(), expect);
    }

    #[test]
    fn crop_is_a_window_of_the_padded_image() {
        let x = Tensor::from_vec(
            (0..16).map(|v| v as f32 + 1.0).collect::<Vec<_>>(),
            [1, 4, 4],
        );
        let crop = RandomCrop::new(4, 4, 2);
        let mut saw_shift = false;
        for i in 0..20 {
            let mut rng = SampleRng::for_sample(1, 0, i);
            let y = crop.apply(&x, &mut rng);
            assert_eq!(y.shape(), &[1, 4, 4]);
            // Every nonzero value of the crop comes from x; the total never exceeds x's.
            let total: f32 = y.to_vec::<f32>().iter().sum();
            assert!(total <= 136.0);
            saw_shift |= total < 136.0;
        }
        assert!(
            saw_shift,
            "20 random crops with padding 2 should move at least once"
        );
    }
}
