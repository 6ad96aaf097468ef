//! [`ToFloat`]: u8 pixels to f32 in [0, 1].

use super::{SampleRng, Transform};
use kiln_core::{DType, Tensor};

/// Converts to f32, scaling `u8` input by 1/255 (pixels 0..=255 → [0, 1]), like the scaling
/// half of `torchvision.transforms.ToTensor`. Input of any other dtype is converted to f32
/// without scaling.
#[derive(Clone, Copy, Debug, Default)]
pub struct ToFloat;

impl ToFloat {
    /// The transform.
    pub fn new() -> ToFloat {
        ToFloat
    }
}

impl Transform for ToFloat {
    fn apply(&self, x: &Tensor, _rng: &mut SampleRng) -> Tensor {
        let f = x.to_dtype(DType::F32);
        if x.dtype() == DType::U8 {
            f.mul_scalar(1.0 / 255.0)
        } else {
            f
        }
    }
}
