//! The forward-pass traits: [`Module`] (one input tensor, what most layers and models take)
//! and [`MultiInput`] (several: a text classifier's tokens and padding mask, an image and its
//! metadata; PyTorch's `forward(self, tokens, mask)`).
//!
//! Every [`Module`] is a [`MultiInput`] of one tensor, so code that runs models of any arity
//! (the `Trainer`, `summary`) takes `&dyn MultiInput` and single-tensor models stay as simple
//! as before. A model of several inputs implements `MultiInput` instead of `Module`:
//!
//! ```
//! use kiln_nn::{Linear, Module, MultiInput, Tensor};
//!
//! #[derive(kiln_nn::Module)]
//! struct ImageAndMeta { image: Linear, meta: Linear }
//!
//! impl MultiInput for ImageAndMeta {
//!     fn forward_inputs(&self, inputs: &[Tensor]) -> Tensor {
//!         let [image, meta] = inputs else { panic!("ImageAndMeta takes (image, meta)") };
//!         &self.image.forward(image) + &self.meta.forward(meta)
//!     }
//!     fn num_inputs(&self) -> Option<usize> { Some(2) }
//! }
//!
//! let m = ImageAndMeta { image: Linear::new(64, 10), meta: Linear::new(3, 10) };
//! let y = m.forward_inputs(&[Tensor::ones([5, 64], kiln_core::DType::F32),
//!                            Tensor::ones([5, 3], kiln_core::DType::F32)]);
//! assert_eq!(y.shape(), [5, 10]);
//! ```

use crate::module::ModuleBase;
use kiln_core::Tensor;

/// A module with a single-tensor forward pass. Layers with other signatures (attention,
/// recurrent layers) also have inherent methods taking more arguments; a model of several
/// input tensors implements [`MultiInput`] instead.
pub trait Module: MultiInput {
    /// Applies the module.
    ///
    /// `#[track_caller]`: a misuse panic inside a layer (wrong input shape or dtype) names
    /// the line that called `forward`, in every implementation.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor;
}

/// A module whose forward pass takes one or more tensors and returns one.
///
/// Implemented automatically for every [`Module`] (one input); implement it yourself, instead
/// of `Module`, for a model that takes several.
pub trait MultiInput: ModuleBase {
    /// Applies the module to `inputs`, in the order the model documents (for a
    /// [`Module`]: exactly one tensor).
    #[track_caller]
    fn forward_inputs(&self, inputs: &[Tensor]) -> Tensor;

    /// How many input tensors the forward pass takes, when it is fixed: callers check it
    /// before running, to name the mismatch instead of failing inside the model.
    fn num_inputs(&self) -> Option<usize> {
        None
    }
}

impl<M: Module> MultiInput for M {
    #[track_caller]
    fn forward_inputs(&self, inputs: &[Tensor]) -> Tensor {
        match inputs {
            [x] => self.forward(x),
            _ => panic!(
                "{}::forward takes one input tensor, got {}; a model of several inputs \
                 implements MultiInput::forward_inputs instead of Module::forward",
                self.type_name(),
                inputs.len()
            ),
        }
    }

    fn num_inputs(&self) -> Option<usize> {
        Some(1)
    }
}

impl ModuleBase for Box<dyn Module> {
    fn children(&self) -> Vec<(String, &dyn ModuleBase)> {
        (**self).children()
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        (**self).own_parameters()
    }
    fn own_buffers(&self) -> Vec<(String, Tensor)> {
        (**self).own_buffers()
    }
    fn set_own_training(&self, t: bool) {
        (**self).set_own_training(t)
    }
    fn own_training(&self) -> Option<bool> {
        (**self).own_training()
    }
    fn extra_repr(&self) -> String {
        (**self).extra_repr()
    }
    fn type_name(&self) -> &'static str {
        (**self).type_name()
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}
