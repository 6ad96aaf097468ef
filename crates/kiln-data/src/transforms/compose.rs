//! [`Compose`]: transforms applied one after another.

use super::{SampleRng, Transform};
use kiln_core::Tensor;

/// Applies its transforms in order, like `torchvision.transforms.Compose`. All of them draw
/// from the same per-sample random stream, in order.
#[derive(Default)]
pub struct Compose {
    steps: Vec<Box<dyn Transform>>,
}

impl Compose {
    /// An empty composition (the identity).
    pub fn new() -> Compose {
        Compose::default()
    }

    /// Appends `transform` (builder style).
    pub fn then(mut self, transform: impl Transform + 'static) -> Compose {
        self.steps.push(Box::new(transform));
        self
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when there are no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl From<Vec<Box<dyn Transform>>> for Compose {
    fn from(steps: Vec<Box<dyn Transform>>) -> Compose {
        Compose { steps }
    }
}

impl Transform for Compose {
    fn apply(&self, x: &Tensor, rng: &mut SampleRng) -> Tensor {
        self.steps
            .iter()
            .fold(x.clone(), |acc, step| step.apply(&acc, rng))
    }
}
