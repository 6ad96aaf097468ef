//! The primitive op set. Every tensor operation in Kiln bottoms out in one [`Op`]. An op
//! family declared in its own file holds everything about its ops — variants, names, dtype
//! rule, element arithmetic, what the gradient reads and the vector-Jacobian product (written
//! against [`grad::Differentiable`]) — so reading or adding one touches that file:
//! [`unary`] so far. [`Op::family`] says which family an op belongs to; the other families'
//! shape rules are one function each in [`infer`], their kernel binding in `crate::backend`,
//! their VJPs one function each in `kiln_core::ops::vjp`; `dispatch` there is the single
//! entry for tensors.

pub mod fused;
pub mod grad;
pub mod infer;
pub mod optim;
pub mod unary;
pub mod value;
pub mod window;

pub use unary::UnaryOp;
pub use window::{Conv2dParams, Pool2dParams};

use crate::dtype::DType;
use crate::shape::Shape;
use smallvec::SmallVec;

/// Integer ops of [`Op::IntBinary`]: both operands integers, the result of their promoted
/// integer type, wrapping; a zero divisor gives 0 (never a trap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum IntOp {
    /// quotient rounded toward zero (C's `/`, ONNX's integer `Div`)
    Div,
    /// remainder with the dividend's sign (C's `%`, `torch.fmod`)
    Rem,
    /// remainder with the divisor's sign (Python's `%`, `torch.remainder`)
    Mod,
    /// bitwise and
    And,
    /// bitwise or
    Or,
    /// bitwise exclusive or
    Xor,
    /// shift left by the second operand (0 once it reaches the type's width)
    Shl,
    /// logical shift right for unsigned types, arithmetic for signed
    Shr,
}

impl IntOp {
    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            IntOp::Div => "div_trunc",
            IntOp::Rem => "fmod",
            IntOp::Mod => "remainder",
            IntOp::And => "bitwise_and",
            IntOp::Or => "bitwise_or",
            IntOp::Xor => "bitwise_xor",
            IntOp::Shl => "shift_left",
            IntOp::Shr => "shift_right",
        }
    }
}

/// Comparison kinds of [`Op::Compare`]; the result is a bool tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Distributions of [`Op::Random`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Distribution {
    /// Uniform on (0, 1).
    Uniform,
    /// Standard normal.
    Normal,
}

/// An activation a matmul applies to its result in the same kernel ([`Op::MatmulAct`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// [`UnaryOp::Relu`]
    Relu,
    /// [`UnaryOp::Gelu`]
    Gelu {
        /// the tanh approximation
        tanh: bool,
    },
}

impl Activation {
    /// The elementwise op it applies.
    pub fn unary(self) -> UnaryOp {
        match self {
            Activation::Relu => UnaryOp::Relu,
            Activation::Gelu { tanh } => UnaryOp::Gelu { tanh },
        }
    }

    /// The elementwise op it applies, as an [`Op`].
    pub fn op(self) -> Op {
        Op::Unary(self.unary())
    }

    /// The activation applying `op`, if `op` is one.
    pub fn of(op: &Op) -> Option<Activation> {
        match *op {
            Op::Unary(UnaryOp::Relu) => Some(Activation::Relu),
            Op::Unary(UnaryOp::Gelu { tanh }) => Some(Activation::Gelu { tanh }),
            _ => None,
        }
    }
}

/// The family an op is declared with: its shape rule and its VJP are written per family
/// (`infer.rs`, `kiln_core::ops::vjp`), the unary family in one file of its own ([`unary`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Elementwise with one operand ([`Op::Unary`]).
    Unary,
    /// Binary ops with broadcasting, comparisons and `where`.
    Elementwise,
    /// Reductions over dims, and arg-reductions.
    Reduce,
    /// Reshapes, views, copies, casts and concatenation.
    Layout,
    /// Softmax, layer norm, attention, GELU backward and their backward ops.
    Nn,
    /// Gathers and scatters along one dim.
    Index,
    /// Matrix products, their fused epilogues and backward ops.
    Matmul,
    /// Sliding windows (im2col) and their adjoint.
    Unfold,
    /// Convolution and max pooling ([`window`]).
    Window,
    /// Random draws.
    Random,
    /// Programs of the graph compiler's fused kernels.
    Fused,
    /// Optimizer updates.
    Optim,
}

/// Dims of a reduction or permutation.
pub type Dims = SmallVec<[usize; 6]>;

/// One primitive operation. Composite ops (softmax, losses, conv, …) are functions over these.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    // ---- elementwise binary with NumPy broadcasting; operands are promoted ----
    /// a + b (bool: or)
    Add,
    /// a − b
    Sub,
    /// a · b (bool: and)
    Mul,
    /// a / b (true division; integers promote to f32)
    Div,
    /// a^b (float)
    Pow,
    /// elementwise max (bool: or)
    Maximum,
    /// elementwise min (bool: and)
    Minimum,
    /// elementwise comparison → bool
    Compare(CmpOp),
    /// ternary `where(cond, a, b)`; inputs: cond (bool), a, b
    Where,
    /// integer division, remainders and bit operations with NumPy broadcasting (see
    /// [`IntOp`]); not differentiable
    IntBinary(IntOp),

    // ---- reductions ----
    /// sum over dims
    Sum {
        /// reduced dims (sorted)
        dims: Dims,
        /// keep reduced dims as size 1
        keepdim: bool,
    },
    /// max over dims
    Max {
        /// reduced dims (sorted)
        dims: Dims,
        /// keep reduced dims as size 1
        keepdim: bool,
    },
    /// min over dims
    Min {
        /// reduced dims (sorted)
        dims: Dims,
        /// keep reduced dims as size 1
        keepdim: bool,
    },
    /// product over dims
    Prod {
        /// reduced dims (sorted)
        dims: Dims,
        /// keep reduced dims as size 1
        keepdim: bool,
    },
    /// index of the max along one dim → i64
    ArgMax {
        /// reduced dim
        dim: usize,
        /// keep reduced dim as size 1
        keepdim: bool,
    },
    /// index of the min along one dim → i64
    ArgMin {
        /// reduced dim
        dim: usize,
        /// keep reduced dim as size 1
        keepdim: bool,
    },

    /// the number of elements over `dims` of the operand (the product of their sizes) as a
    /// 0-d `dtype` value: a mean's divisor, read from the operand's shape when the op runs so
    /// that a graph with a symbolic batch dim divides by the batch it is given; reads no
    /// element, not differentiable
    Numel {
        /// counted dims
        dims: Dims,
        /// output dtype (float)
        dtype: DType,
    },

    // ---- layout (views share storage; Contiguous, Cast, Cat and SliceScatter copy) ----
    /// new shape over the same elements (a view when strides allow, else a copy)
    Reshape(Shape),
    /// reorder dims (view)
    Permute(Dims),
    /// broadcast to a larger shape with stride-0 dims (view)
    Expand(Shape),
    /// `start, start+step, …` (`len` entries) along `dim` (view)
    Slice {
        /// dim
        dim: usize,
        /// first index
        start: usize,
        /// number of entries
        len: usize,
        /// step between entries
        step: usize,
    },
    /// zeros of size `size` along `dim`, with the input written at `start, start+step, …`
    /// (the adjoint of `Slice`)
    SliceScatter {
        /// dim
        dim: usize,
        /// first index
        start: usize,
        /// step between entries
        step: usize,
        /// size of the output along `dim`
        size: usize,
    },
    /// dense row-major copy
    Contiguous,
    /// dtype conversion
    Cast(DType),
    /// concatenation of all inputs along `dim`
    Cat(usize),

    // ---- indexing ----
    /// select entries along `dim` by an i64 index vector; inputs: x, index
    IndexSelect(usize),
    /// `base` with `src` rows added at `index` along `dim`; inputs: base, index, src
    IndexAdd(usize),
    /// `out[i][j] = x[i][index[i][j]]` along `dim`; inputs: x, index
    Gather(usize),
    /// `base` with `src[i][j]` added at `base[i][index[i][j]]`; inputs: base, index, src
    ScatterAdd(usize),

    // ---- linear algebra and convolution support ----
    /// batched matmul `[.., m, k] @ [.., k, n]` with broadcast batch dims (rank ≥ 2), plus an
    /// optional third input `bias` `[n]` added to every row (written before the product
    /// accumulates onto it, so a Linear's bias costs no extra pass)
    Matmul,
    /// `act(a @ b (+ bias))`: a [`Op::Matmul`] (same inputs) whose kernel applies the
    /// activation to its product before handing it out, instead of a second op reading it
    /// back (made by the graph compiler's matmul epilogue fusion)
    MatmulAct(Activation),
    /// `(a @ b) · gelu′(x)` for f32 `a` [m, k], `b` [k, n] and `x` [m, n]: an exact GELU's
    /// input gradient from the matmul producing its output gradient, computed a block of rows
    /// at a time so the whole product is never held (made by the graph compiler's matmul
    /// epilogue fusion; it runs in place over `x` where `x` dies); inputs: a, b, x
    MatmulGeluBackward,
    /// `a @ gelu(x)` for f32 `a` [m, k] and `x` [k, n] (exact GELU): a recomputed GELU
    /// output's weight gradient, with the GELU taken a block of `x`'s rows at a time so its
    /// output is never held whole (made by the graph compiler's matmul epilogue fusion after
    /// rematerialization); inputs: a, x
    MatmulGeluRhs,
    /// `(a @ b) · [x > 0]` for f32 `a` [m, k], `b` [k, n] and `x` [m, n]: a ReLU's input
    /// gradient (`x` its output) from the matmul producing its output gradient, masked while
    /// the product is still in cache instead of by a second pass (made by the graph
    /// compiler's matmul epilogue fusion); inputs: a, b, x
    MatmulReluBackward,
    /// im2col: `[N, C, H, W]` → `[N, C·kh·kw, L]`, out-of-bounds reads give `pad_value`
    Unfold {
        /// kernel size (h, w)
        kernel: [usize; 2],
        /// stride (h, w)
        stride: [usize; 2],
        /// zero padding (h, w)
        padding: [usize; 2],
        /// dilation (h, w)
        dilation: [usize; 2],
        /// value read outside the input (0 for conv, −∞ for max pooling)
        pad_value: f64,
    },
    /// col2im, the adjoint of `Unfold`: `[N, C·kh·kw, L]` → `[N, C, H, W]`, summing overlaps
    Fold {
        /// output spatial size (H, W)
        output: [usize; 2],
        /// kernel size (h, w)
        kernel: [usize; 2],
        /// stride (h, w)
        stride: [usize; 2],
        /// padding (h, w)
        padding: [usize; 2],
        /// dilation (h, w)
        dilation: [usize; 2],
    },

    // ---- direct convolution and max pooling (one pass instead of im2col of the whole batch)
    /// 2-D convolution (cross-correlation); inputs: x `[N, C, H, W]`, weight
    /// `[O, C/groups, kh, kw]` and optionally bias `[O]` → `[N, O, H', W']`; f32/f64
    Conv2d(Conv2dParams),
    /// the gradient of [`Op::Conv2d`] w.r.t. its input (a transposed convolution); inputs:
    /// output gradient `[N, O, H', W']`, weight → `[N, C, H, W]`
    Conv2dInputGrad {
        /// the convolution's parameters
        conv: Conv2dParams,
        /// the input's spatial size (H, W)
        input: [usize; 2],
    },
    /// the gradient of [`Op::Conv2d`] w.r.t. its weight; inputs: x `[N, C, H, W]`, output
    /// gradient `[N, O, H', W']` → `[O, C/groups, kh, kw]`
    Conv2dWeightGrad {
        /// the convolution's parameters
        conv: Conv2dParams,
        /// the kernel size (kh, kw)
        kernel: [usize; 2],
    },
    /// 2-D max pooling `[N, C, H, W]` → `[N, C, H', W']` (padding never wins; NaN propagates)
    MaxPool2d(Pool2dParams),
    /// the VJP of [`Op::MaxPool2d`]: inputs x, output gradient → the gradient added at each
    /// window's first maximum (PyTorch's argmax)
    MaxPool2dBackward(Pool2dParams),

    // ---- fused composites (primitives only because one pass per row is much faster) ----
    /// `softmax` along `dim`, or `log_softmax` when `log`, shifted by the row max
    Softmax {
        /// the normalized dim
        dim: usize,
        /// log-softmax instead of softmax
        log: bool,
    },

    /// `(x − mean) / sqrt(var + eps)` over the last dim (biased variance), in one pass per row;
    /// inputs: x, or x, weight, bias (both `[D]` for a last dim of `D`) for `x̂ · weight + bias`
    LayerNorm {
        /// added to the variance
        eps: f64,
    },
    /// the gradient of [`Op::LayerNorm`] with respect to its input; inputs: x, g (same shape)
    LayerNormBackward {
        /// added to the variance
        eps: f64,
    },

    /// `softmax(scale · q kᵀ) v` per head (the last two dims), keys after each query masked out
    /// when `causal`; inputs: q, k, v of one shape `[.., T, D]`, f32 or f64
    Attention {
        /// multiplier of the scores
        scale: f64,
        /// mask keys after each query
        causal: bool,
    },
    /// the gradients of [`Op::Attention`] stacked as `[3, .., T, D]` (dq, dk, dv); inputs: q, k,
    /// v, g; recomputes the probabilities; not differentiable
    AttentionBackward {
        /// multiplier of the scores
        scale: f64,
        /// mask keys after each query
        causal: bool,
    },

    /// `g · gelu′(x)` for the exact GELU, its VJP in one pass (instead of ten ops, two of them
    /// transcendental); inputs: x, g (same shape)
    GeluBackward,

    // ---- random ----
    /// samples from a counter-based generator: stream `seed`, starting at counter `offset`
    Random {
        /// distribution
        dist: Distribution,
        /// output shape
        shape: Shape,
        /// output dtype (float)
        dtype: DType,
        /// generator seed
        seed: u64,
        /// generator counter offset
        offset: u64,
    },

    // ---- produced by the graph compiler only ----
    /// a chain of elementwise ops run as one loop (see [`fused::FusedProgram`]); f32 output
    /// with the broadcast shape of the inputs; not differentiable
    Fused(Box<fused::FusedProgram>),

    // ---- recorded by a traced optimizer step ----
    /// one Adam/AdamW update of a parameter (see [`optim`]); inputs: param, grad, exp_avg,
    /// exp_avg_sq, step and lr (0-d f64), then max_exp_avg_sq with AMSGrad; output: the
    /// updated parameter; the moments are written in place; not differentiable
    AdamStep(optim::AdamHyper),

    // ---- elementwise unary (declared in `unary.rs`) ----
    /// An elementwise op with one operand. Untagged in files, so a graph file names it as
    /// before the unary ops had their own enum (`"Exp"`, `{"Gelu":{"tanh":false}}`).
    #[serde(untagged)]
    Unary(UnaryOp),
}

impl Op {
    /// Short lowercase name used in error messages, profiles and printed graphs.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Pow => "pow",
            Op::Maximum => "maximum",
            Op::Minimum => "minimum",
            Op::Compare(_) => "compare",
            Op::IntBinary(i) => i.name(),
            Op::Where => "where",
            Op::Sum { .. } => "sum",
            Op::Max { .. } => "max",
            Op::Min { .. } => "min",
            Op::Prod { .. } => "prod",
            Op::ArgMax { .. } => "argmax",
            Op::ArgMin { .. } => "argmin",
            Op::Numel { .. } => "numel",
            Op::Reshape(_) => "reshape",
            Op::Permute(_) => "permute",
            Op::Expand(_) => "expand",
            Op::Slice { .. } => "slice",
            Op::SliceScatter { .. } => "slice_scatter",
            Op::Contiguous => "contiguous",
            Op::Cast(_) => "cast",
            Op::Cat(_) => "cat",
            Op::IndexSelect(_) => "index_select",
            Op::IndexAdd(_) => "index_add",
            Op::Gather(_) => "gather",
            Op::ScatterAdd(_) => "scatter_add",
            Op::Matmul => "matmul",
            Op::MatmulGeluBackward => "matmul_gelu_backward",
            Op::MatmulGeluRhs => "matmul_gelu_rhs",
            Op::MatmulReluBackward => "matmul_relu_backward",
            Op::MatmulAct(Activation::Relu) => "matmul_relu",
            Op::MatmulAct(Activation::Gelu { tanh: false }) => "matmul_gelu",
            Op::MatmulAct(Activation::Gelu { tanh: true }) => "matmul_gelu_tanh",
            Op::Unfold { .. } => "unfold",
            Op::Fold { .. } => "fold",
            Op::Conv2d(_) => "conv2d",
            Op::Conv2dInputGrad { .. } => "conv2d_input_grad",
            Op::Conv2dWeightGrad { .. } => "conv2d_weight_grad",
            Op::MaxPool2d(_) => "max_pool2d",
            Op::MaxPool2dBackward(_) => "max_pool2d_backward",
            Op::Softmax { log: false, .. } => "softmax",
            Op::Softmax { log: true, .. } => "log_softmax",
            Op::GeluBackward => "gelu_backward",
            Op::LayerNorm { .. } => "layer_norm",
            Op::Attention { .. } => "attention",
            Op::AttentionBackward { .. } => "attention_backward",
            Op::LayerNormBackward { .. } => "layer_norm_backward",
            Op::Random { .. } => "random",
            Op::Fused(_) => "fused",
            Op::AdamStep(_) => "adam_step",
            Op::Unary(u) => u.name(),
        }
    }

    /// Operand positions the op writes in place as it runs (a store-fused program's state
    /// stores, an optimizer update's moments): graph passes must not merge, fold or move it.
    /// Nothing reads those values before it (store fusion checks; a trace records an
    /// optimizer op only on state it has not read), so later reads see the written values.
    pub fn writes_args(&self) -> SmallVec<[usize; 4]> {
        match self {
            Op::Fused(p) => p.stores.iter().map(|s| s.input as usize).collect(),
            Op::AdamStep(h) => SmallVec::from_slice(h.written_args()),
            _ => SmallVec::new(),
        }
    }

    /// The family the op is declared with.
    pub fn family(&self) -> Family {
        match self {
            Op::Unary(_) => Family::Unary,
            Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Pow
            | Op::Maximum
            | Op::Minimum
            | Op::Compare(_)
            | Op::IntBinary(_)
            | Op::Where => Family::Elementwise,
            Op::Sum { .. }
            | Op::Prod { .. }
            | Op::Max { .. }
            | Op::Min { .. }
            | Op::ArgMax { .. }
            | Op::ArgMin { .. }
            | Op::Numel { .. } => Family::Reduce,
            Op::Reshape(_)
            | Op::Permute(_)
            | Op::Expand(_)
            | Op::Slice { .. }
            | Op::SliceScatter { .. }
            | Op::Contiguous
            | Op::Cast(_)
            | Op::Cat(_) => Family::Layout,
            Op::GeluBackward
            | Op::LayerNorm { .. }
            | Op::LayerNormBackward { .. }
            | Op::Attention { .. }
            | Op::AttentionBackward { .. }
            | Op::Softmax { .. } => Family::Nn,
            Op::IndexSelect(_) | Op::IndexAdd(_) | Op::Gather(_) | Op::ScatterAdd(_) => {
                Family::Index
            }
            Op::Matmul
            | Op::MatmulAct(_)
            | Op::MatmulGeluBackward
            | Op::MatmulGeluRhs
            | Op::MatmulReluBackward => Family::Matmul,
            Op::Unfold { .. } | Op::Fold { .. } => Family::Unfold,
            Op::Conv2d(_)
            | Op::Conv2dInputGrad { .. }
            | Op::Conv2dWeightGrad { .. }
            | Op::MaxPool2d(_)
            | Op::MaxPool2dBackward(_) => Family::Window,
            Op::Random { .. } => Family::Random,
            Op::Fused(_) => Family::Fused,
            Op::AdamStep(_) => Family::Optim,
        }
    }

    /// True for ops whose output is a view sharing the first input's storage.
    #[inline]
    pub fn is_view(&self) -> bool {
        matches!(self, Op::Permute(_) | Op::Expand(_) | Op::Slice { .. })
    }

    /// True for elementwise ops with one input.
    #[inline]
    pub fn is_unary(&self) -> bool {
        matches!(self, Op::Unary(_))
    }

    /// True for elementwise broadcasting ops with two inputs.
    #[inline]
    pub fn is_binary(&self) -> bool {
        matches!(
            self,
            Op::Add
                | Op::Sub
                | Op::Mul
                | Op::Div
                | Op::Pow
                | Op::Maximum
                | Op::Minimum
                | Op::Compare(_)
        )
    }
}
