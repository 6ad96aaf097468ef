//! The backend contract: what a device provides so that every primitive op runs on it.
//!
//! A device implements [`Backend`]: one method per kernel family, each a function of
//! [`Operand`]s (storage + layout), the op's parameters and the inferred output shape and
//! dtype, returning a dense buffer. View ops (permute, expand, slice, reshape of a dense
//! layout) are layout arithmetic and need no device. [`run`] is the one place that binds each
//! [`Op`] to its method; the CPU backend is [`crate::cpu::Cpu`], and a CUDA backend implements
//! the same list.

use crate::dtype::DType;
use crate::layout::Layout;
use crate::operand::Operand;
use crate::ops::fused::FusedProgram;
use crate::ops::optim::AdamHyper;
use crate::ops::{Activation, Conv2dParams, Distribution, Op, Pool2dParams, UnaryOp};

/// What a kernel produced: a new dense buffer of the output shape, or a view of `inputs[0]`.
pub enum Out<B> {
    /// A dense row-major buffer.
    Dense(B),
    /// `inputs[0]`'s storage through a new layout.
    View(Layout),
}

/// UnfoldParams geometry of [`Op::Unfold`] and [`Op::Fold`] (im2col / col2im).
#[derive(Clone, Copy, Debug)]
pub struct UnfoldParams {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Zero (or `pad_value`) padding.
    pub padding: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
}

/// The kernels a device provides. `shape` and `dtype` are the output's, as inferred by
/// [`crate::ops::infer::try_infer`], which has checked every size and attribute first.
#[allow(clippy::too_many_arguments)]
pub trait Backend {
    /// A dense buffer of one dtype in the device's memory.
    type Buffer;
    /// Where a kernel takes its output buffer from: a new allocation, or the planned buffer
    /// of a graph that it reuses.
    type Dst;

    /// A dense row-major copy (also reshapes that a layout cannot express).
    fn contiguous(&self, x: Operand<'_>, dst: &mut Self::Dst) -> Self::Buffer;
    /// An elementwise conversion to `to`.
    fn cast(&self, x: Operand<'_>, to: DType, dst: &mut Self::Dst) -> Self::Buffer;
    /// Concatenation along `dim`.
    fn cat(
        &self,
        xs: &[Operand<'_>],
        dim: usize,
        shape: &[usize],
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// Zeros of `shape` with `x` written at `start, start + step, …` along `dim`.
    fn slice_scatter(
        &self,
        x: Operand<'_>,
        dim: usize,
        start: usize,
        step: usize,
        shape: &[usize],
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// An elementwise unary op ([`Op::Unary`]).
    fn unary(
        &self,
        op: &UnaryOp,
        x: Operand<'_>,
        dtype: DType,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// An elementwise binary op with broadcasting ([`Op::is_binary`]).
    fn binary(
        &self,
        op: &Op,
        a: Operand<'_>,
        b: Operand<'_>,
        shape: &[usize],
        dtype: DType,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// `cond ? a : b` with broadcasting.
    fn where_(
        &self,
        cond: Operand<'_>,
        a: Operand<'_>,
        b: Operand<'_>,
        shape: &[usize],
        dtype: DType,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// Sum, max, min or prod over `dims`.
    fn reduce(
        &self,
        op: &Op,
        x: Operand<'_>,
        dims: &[usize],
        dtype: DType,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// Index of the maximum (`max`) or minimum along `dim`.
    fn arg_reduce(&self, x: Operand<'_>, dim: usize, max: bool) -> Self::Buffer;
    /// Rows of `x` along `dim` picked by `idx`.
    fn index_select(
        &self,
        x: Operand<'_>,
        idx: Operand<'_>,
        dim: usize,
        shape: &[usize],
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// `base` with `src`'s rows added at `idx` along `dim`.
    fn index_add(
        &self,
        base: Operand<'_>,
        idx: Operand<'_>,
        src: Operand<'_>,
        dim: usize,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// Elements of `x` picked along `dim` by `idx` (same rank).
    fn gather(
        &self,
        x: Operand<'_>,
        idx: Operand<'_>,
        dim: usize,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// `base` with `src` added at `idx` along `dim`.
    fn scatter_add(
        &self,
        base: Operand<'_>,
        idx: Operand<'_>,
        src: Operand<'_>,
        dim: usize,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// Batched `a @ b (+ bias)`, then `act`.
    fn matmul(
        &self,
        a: Operand<'_>,
        b: Operand<'_>,
        bias: Option<Operand<'_>>,
        act: Option<Activation>,
        shape: &[usize],
        dtype: DType,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// The fused composites of a matmul with a GELU or ReLU gradient
    /// ([`Op::MatmulGeluBackward`], [`Op::MatmulGeluRhs`], [`Op::MatmulReluBackward`]).
    fn matmul_epilogue(
        &self,
        op: &Op,
        inputs: &[Operand<'_>],
        shape: &[usize],
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// im2col: each window of `x` as a column.
    fn unfold(
        &self,
        x: Operand<'_>,
        w: &UnfoldParams,
        pad_value: f64,
        shape: &[usize],
    ) -> Self::Buffer;
    /// col2im: columns summed back into an image of `output` size.
    fn fold(
        &self,
        x: Operand<'_>,
        output: [usize; 2],
        w: &UnfoldParams,
        shape: &[usize],
    ) -> Self::Buffer;
    /// Direct 2-d convolution of input, weight (and bias), into `dst`'s buffer when it fits.
    fn conv2d(
        &self,
        inputs: &[Operand<'_>],
        p: &Conv2dParams,
        shape: &[usize],
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// Gradient of a convolution with respect to its input.
    fn conv2d_input_grad(
        &self,
        gy: Operand<'_>,
        w: Operand<'_>,
        p: &Conv2dParams,
        shape: &[usize],
    ) -> Self::Buffer;
    /// Gradient of a convolution with respect to its weight.
    fn conv2d_weight_grad(
        &self,
        x: Operand<'_>,
        gy: Operand<'_>,
        p: &Conv2dParams,
        shape: &[usize],
    ) -> Self::Buffer;
    /// 2-d max pooling.
    fn max_pool2d(&self, x: Operand<'_>, p: &Pool2dParams, shape: &[usize]) -> Self::Buffer;
    /// Gradient of 2-d max pooling.
    fn max_pool2d_backward(
        &self,
        x: Operand<'_>,
        gy: Operand<'_>,
        p: &Pool2dParams,
    ) -> Self::Buffer;
    /// (Log-)softmax along `dim`.
    fn softmax(
        &self,
        x: Operand<'_>,
        dim: usize,
        log: bool,
        dtype: DType,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// GELU's gradient at `x` times `g`.
    fn gelu_backward(
        &self,
        x: Operand<'_>,
        g: Operand<'_>,
        dtype: DType,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// Scaled dot-product attention, or its backward.
    fn attention(
        &self,
        inputs: &[Operand<'_>],
        scale: f64,
        causal: bool,
        backward: bool,
        dtype: DType,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// Layer normalization over the last dim (weight and bias optional).
    fn layer_norm(
        &self,
        inputs: &[Operand<'_>],
        eps: f64,
        dtype: DType,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// Gradient of layer normalization's input.
    fn layer_norm_backward(
        &self,
        x: Operand<'_>,
        g: Operand<'_>,
        eps: f64,
        dtype: DType,
        dst: &mut Self::Dst,
    ) -> Self::Buffer;
    /// `n` counter-based random numbers (Philox at `seed`, `offset`).
    fn random(
        &self,
        dist: Distribution,
        n: usize,
        dtype: DType,
        seed: u64,
        offset: u64,
    ) -> Self::Buffer;
    /// `n` elements equal to `value`.
    fn full(&self, value: f64, n: usize, dtype: DType) -> Self::Buffer;
    /// A fused elementwise program over broadcast operands.
    fn fused(
        &self,
        program: &FusedProgram,
        inputs: &[Operand<'_>],
        shape: &[usize],
    ) -> Self::Buffer;
    /// One Adam update of a copy of `inputs[0]` (the moments are updated in place).
    fn adam_step(&self, h: &AdamHyper, inputs: &[Operand<'_>], dst: &mut Self::Dst)
        -> Self::Buffer;
}

/// Runs `op` on backend `b`: the one binding of every primitive op to its kernel.
#[inline(always)]
pub fn run<B: Backend>(
    b: &B,
    op: &Op,
    inputs: &[Operand<'_>],
    shape: &[usize],
    dtype: DType,
    dst: &mut B::Dst,
) -> Out<B::Buffer> {
    let x = || inputs[0];
    let dense = Out::Dense;
    match op {
        Op::Permute(p) => Out::View(x().layout().permute(p)),
        Op::Expand(s) => Out::View(x().layout().broadcast_to(s)),
        Op::Slice {
            dim,
            start,
            len,
            step,
        } => Out::View(x().layout().slice(*dim, *start, *len, *step)),
        Op::Reshape(s) => match x().layout().reshape_view(s) {
            Some(l) => Out::View(l),
            None => dense(b.contiguous(x(), dst)),
        },
        Op::Contiguous => dense(b.contiguous(x(), dst)),
        Op::Cast(d) => dense(b.cast(x(), *d, dst)),
        Op::Cat(dim) => dense(b.cat(inputs, *dim, shape, dst)),
        Op::SliceScatter {
            dim, start, step, ..
        } => dense(b.slice_scatter(x(), *dim, *start, *step, shape, dst)),
        Op::Unary(u) => dense(b.unary(u, x(), dtype, dst)),
        _ if op.is_binary() || matches!(op, Op::IntBinary(_)) => {
            dense(b.binary(op, x(), inputs[1], shape, dtype, dst))
        }
        Op::Where => dense(b.where_(x(), inputs[1], inputs[2], shape, dtype, dst)),
        Op::Sum { dims, .. }
        | Op::Max { dims, .. }
        | Op::Min { dims, .. }
        | Op::Prod { dims, .. } => dense(b.reduce(op, x(), dims, dtype, dst)),
        Op::ArgMax { dim, .. } => dense(b.arg_reduce(x(), *dim, true)),
        Op::ArgMin { dim, .. } => dense(b.arg_reduce(x(), *dim, false)),
        Op::Numel { dims, dtype } => {
            let n: usize = dims.iter().map(|&d| x().shape()[d]).product();
            dense(b.full(n as f64, 1, *dtype))
        }
        Op::IndexSelect(dim) => dense(b.index_select(x(), inputs[1], *dim, shape, dst)),
        Op::IndexAdd(dim) => dense(b.index_add(x(), inputs[1], inputs[2], *dim, dst)),
        Op::Gather(dim) => dense(b.gather(x(), inputs[1], *dim, dst)),
        Op::ScatterAdd(dim) => dense(b.scatter_add(x(), inputs[1], inputs[2], *dim, dst)),
        Op::Matmul => {
            let bias = inputs.get(2).copied();
            dense(b.matmul(x(), inputs[1], bias, None, shape, dtype, dst))
        }
        Op::MatmulAct(act) => {
            let bias = inputs.get(2).copied();
            dense(b.matmul(x(), inputs[1], bias, Some(*act), shape, dtype, dst))
        }
        Op::MatmulGeluBackward | Op::MatmulGeluRhs | Op::MatmulReluBackward => {
            dense(b.matmul_epilogue(op, inputs, shape, dst))
        }
        Op::Unfold {
            kernel,
            stride,
            padding,
            dilation,
            pad_value,
        } => {
            let w = UnfoldParams {
                kernel: *kernel,
                stride: *stride,
                padding: *padding,
                dilation: *dilation,
            };
            dense(b.unfold(x(), &w, *pad_value, shape))
        }
        Op::Fold {
            output,
            kernel,
            stride,
            padding,
            dilation,
        } => {
            let w = UnfoldParams {
                kernel: *kernel,
                stride: *stride,
                padding: *padding,
                dilation: *dilation,
            };
            dense(b.fold(x(), *output, &w, shape))
        }
        Op::Conv2d(p) => dense(b.conv2d(inputs, p, shape, dst)),
        Op::Conv2dInputGrad { conv, .. } => dense(b.conv2d_input_grad(x(), inputs[1], conv, shape)),
        Op::Conv2dWeightGrad { conv, .. } => {
            dense(b.conv2d_weight_grad(x(), inputs[1], conv, shape))
        }
        Op::MaxPool2d(p) => dense(b.max_pool2d(x(), p, shape)),
        Op::MaxPool2dBackward(p) => dense(b.max_pool2d_backward(x(), inputs[1], p)),
        Op::Softmax { dim, log } => dense(b.softmax(x(), *dim, *log, dtype, dst)),
        Op::GeluBackward => dense(b.gelu_backward(x(), inputs[1], dtype, dst)),
        Op::Attention { scale, causal } => {
            dense(b.attention(inputs, *scale, *causal, false, dtype, dst))
        }
        Op::AttentionBackward { scale, causal } => {
            dense(b.attention(inputs, *scale, *causal, true, dtype, dst))
        }
        Op::LayerNorm { eps } => dense(b.layer_norm(inputs, *eps, dtype, dst)),
        Op::LayerNormBackward { eps } => {
            dense(b.layer_norm_backward(x(), inputs[1], *eps, dtype, dst))
        }
        Op::Random {
            dist,
            dtype,
            seed,
            offset,
            ..
        } => dense(b.random(*dist, shape.iter().product(), *dtype, *seed, *offset)),
        Op::Fused(program) => dense(b.fused(program, inputs, shape)),
        Op::AdamStep(h) => dense(b.adam_step(h, inputs, dst)),
        _ => unreachable!(
            "backend: no kernel for {} ({:?})",
            op.name(),
            inputs.first().map(|t| t.shape())
        ),
    }
}
