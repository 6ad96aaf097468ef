//! Layers with PyTorch's parameter names, shapes and default initialization.
//!
//! Every layer implements [`ModuleBase`](crate::ModuleBase) (parameters, buffers, submodules,
//! train/eval) and, when it maps one tensor to one tensor, [`Module`](crate::Module). State
//! dict keys equal PyTorch's, so a `torch.nn` model's `state_dict()` saved with safetensors
//! loads into the Kiln model of the same architecture with `strict = true`, and back.
//!
//! # Parameter dtype
//!
//! Constructors create parameters in the *default dtype*, f32 unless changed, like
//! `torch.get_default_dtype()`. [`with_default_dtype`] builds layers in another float dtype
//! (f64 for gradient checks):
//!
//! ```
//! use kiln_core::DType;
//! use kiln_nn::layers::{with_default_dtype, Linear};
//! let fc = with_default_dtype(DType::F64, || Linear::new(3, 2));
//! assert_eq!(fc.weight.dtype(), DType::F64);
//! ```
//!
//! The default is per thread (unlike PyTorch's process-wide one) so that tests running in
//! parallel do not see each other's setting.

mod activation;
mod attention;
mod container;
mod conv;
mod dropout;
mod embedding;
mod linear;
mod loss;
mod norm;
mod pool;
mod recurrent;
mod transformer;

pub use activation::{Flatten, Identity, LogSoftmax, ReLU, SiLU, Sigmoid, Softmax, Tanh, GELU};
pub use attention::{MultiheadAttention, MultiheadAttentionConfig};
pub use container::{ModuleList, Sequential};
pub use conv::{
    Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig,
};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use kiln_core::nn::functional::{KlDivReduction, Pair, Reduction};
pub use linear::Linear;
pub use loss::{
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss, NLLLoss,
    SmoothL1Loss,
};
pub use norm::{
    BatchNorm1d, BatchNorm2d, BatchNormConfig, GroupNorm, LayerNorm, LayerNormConfig, NormShape,
    RMSNorm,
};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use recurrent::{RecurrentConfig, GRU, LSTM};
pub use transformer::{
    Activation, CausalDecoderBlock, CausalDecoderBlockConfig, TransformerEncoder,
    TransformerEncoderLayer, TransformerEncoderLayerConfig,
};

use kiln_core::{DType, Tensor};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    static DEFAULT_DTYPE: Cell<DType> = const { Cell::new(DType::F32) };
}

/// The float dtype new layers create their parameters in (f32 unless changed on this thread).
pub fn default_dtype() -> DType {
    DEFAULT_DTYPE.with(|d| d.get())
}

/// Sets this thread's default parameter dtype (like `torch.set_default_dtype`), returning the
/// previous one. Panics for non-float dtypes.
pub fn set_default_dtype(dtype: DType) -> DType {
    if !dtype.is_float() {
        panic!("set_default_dtype: only float dtypes are allowed, got {dtype}");
    }
    DEFAULT_DTYPE.with(|d| d.replace(dtype))
}

/// Runs `f` (typically layer constructors) with `dtype` as this thread's default parameter
/// dtype, restoring the previous default afterwards (also if `f` panics).
pub fn with_default_dtype<R>(dtype: DType, f: impl FnOnce() -> R) -> R {
    struct Restore(DType);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEFAULT_DTYPE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(set_default_dtype(dtype));
    f()
}

/// A zero-filled trainable parameter of the default dtype.
pub(crate) fn new_param(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, default_dtype()).requires_grad_(true)
}

/// A zero-filled buffer of the default dtype.
pub(crate) fn new_buffer(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, default_dtype())
}

/// PyTorch's default init of a weight (Linear, Conv): kaiming uniform with a = √5, i.e.
/// U(−1/√fan_in, 1/√fan_in).
pub(crate) fn default_weight_init(w: &Tensor) {
    crate::init::kaiming_uniform_(
        w,
        crate::init::FanMode::FanIn,
        crate::init::Nonlinearity::LeakyRelu(5f64.sqrt()),
    );
}

/// PyTorch's default init of a bias: U(−1/√fan_in, 1/√fan_in) (zero when fan_in is 0).
pub(crate) fn default_bias_init(b: &Tensor, fan_in: usize) {
    let bound = if fan_in > 0 {
        1.0 / (fan_in as f64).sqrt()
    } else {
        0.0
    };
    crate::init::uniform_(b, -bound, bound);
}

/// Named entries from `(name, Option<tensor>)` pairs, skipping `None` (PyTorch leaves a
/// parameter registered as `None` out of the state dict).
pub(crate) fn named(entries: &[(&str, Option<&Tensor>)]) -> Vec<(String, Tensor)> {
    entries
        .iter()
        .filter_map(|(n, t)| t.map(|t| (n.to_string(), t.clone())))
        .collect()
}

/// A train/eval flag shared by `&self` methods (layers are used through shared references).
#[derive(Debug)]
pub(crate) struct TrainingFlag(AtomicBool);

impl TrainingFlag {
    /// A flag in training mode (PyTorch's default for new modules).
    pub(crate) fn new() -> TrainingFlag {
        TrainingFlag(AtomicBool::new(true))
    }

    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, training: bool) {
        self.0.store(training, Ordering::Relaxed)
    }
}

impl Default for TrainingFlag {
    fn default() -> Self {
        TrainingFlag::new()
    }
}
