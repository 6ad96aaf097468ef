//! The CPU backend: [`Backend`] implemented by this module's kernels.

use super::dst::Dst;
use super::*;
use crate::backend::{Backend, UnfoldParams};
use crate::operand::OwnedOperand;
use crate::ops::fused::FusedProgram;
use crate::ops::optim::AdamHyper;
use crate::ops::{Activation, Conv2dParams, Distribution, Pool2dParams, UnaryOp};

/// The host: buffers are `Vec`s behind [`CpuStorage`], kernels run on Kiln's thread pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

impl Backend for Cpu {
    type Buffer = CpuStorage;
    type Dst = Dst;

    fn contiguous(&self, x: Operand<'_>, dst: &mut Dst) -> CpuStorage {
        copy::contiguous_in(x, dst)
    }
    fn cast(&self, x: Operand<'_>, to: DType, dst: &mut Dst) -> CpuStorage {
        copy::cast_in(x, to, dst)
    }
    fn cat(&self, xs: &[Operand<'_>], dim: usize, shape: &[usize], dst: &mut Dst) -> CpuStorage {
        copy::cat(xs, dim, shape, dst)
    }
    fn slice_scatter(
        &self,
        x: Operand<'_>,
        dim: usize,
        start: usize,
        step: usize,
        shape: &[usize],
        dst: &mut Dst,
    ) -> CpuStorage {
        copy::slice_scatter(x, dim, start, step, shape, dst)
    }
    fn unary(&self, op: &UnaryOp, x: Operand<'_>, dtype: DType, dst: &mut Dst) -> CpuStorage {
        unary::unary(op, x, dtype, dst)
    }
    fn binary(
        &self,
        op: &Op,
        a: Operand<'_>,
        b: Operand<'_>,
        shape: &[usize],
        dtype: DType,
        dst: &mut Dst,
    ) -> CpuStorage {
        binary::binary(op, a, b, shape, dtype, dst)
    }
    fn where_(
        &self,
        cond: Operand<'_>,
        a: Operand<'_>,
        b: Operand<'_>,
        shape: &[usize],
        dtype: DType,
        dst: &mut Dst,
    ) -> CpuStorage {
        binary::where_(cond, a, b, shape, dtype, dst)
    }
    fn reduce(
        &self,
        op: &Op,
        x: Operand<'_>,
        dims: &[usize],
        dtype: DType,
        dst: &mut Dst,
    ) -> CpuStorage {
        reduce::reduce(op, x, dims, dtype, dst)
    }
    fn arg_reduce(&self, x: Operand<'_>, dim: usize, max: bool) -> CpuStorage {
        reduce::arg_reduce(x, dim, max)
    }
    fn index_select(
        &self,
        x: Operand<'_>,
        idx: Operand<'_>,
        dim: usize,
        shape: &[usize],
        dst: &mut Dst,
    ) -> CpuStorage {
        index::index_select(x, idx, dim, shape, dst)
    }
    fn index_add(
        &self,
        base: Operand<'_>,
        idx: Operand<'_>,
        src: Operand<'_>,
        dim: usize,
        dst: &mut Dst,
    ) -> CpuStorage {
        index::index_add(base, idx, src, dim, dst)
    }
    fn gather(&self, x: Operand<'_>, idx: Operand<'_>, dim: usize, dst: &mut Dst) -> CpuStorage {
        index::gather(x, idx, dim, dst)
    }
    fn scatter_add(
        &self,
        base: Operand<'_>,
        idx: Operand<'_>,
        src: Operand<'_>,
        dim: usize,
        dst: &mut Dst,
    ) -> CpuStorage {
        index::scatter_add(base, idx, src, dim, dst)
    }
    fn matmul(
        &self,
        a: Operand<'_>,
        b: Operand<'_>,
        bias: Option<Operand<'_>>,
        act: Option<Activation>,
        shape: &[usize],
        dtype: DType,
        dst: &mut Dst,
    ) -> CpuStorage {
        match act {
            None => matmul::matmul(a, b, bias, shape, dst),
            Some(act) => matmul::matmul_act(a, b, bias, act, shape, dtype, dst),
        }
    }
    fn matmul_epilogue(
        &self,
        op: &Op,
        inputs: &[Operand<'_>],
        shape: &[usize],
        dst: &mut Dst,
    ) -> CpuStorage {
        match op {
            Op::MatmulGeluBackward => matmul::matmul_gelu_backward(inputs, dst),
            Op::MatmulGeluRhs => matmul::matmul_gelu_rhs(inputs, dst),
            Op::MatmulReluBackward => matmul::matmul_relu_backward(inputs, shape, dst),
            _ => unreachable!("matmul_epilogue: {} is not a matmul epilogue", op.name()),
        }
    }
    fn unfold(
        &self,
        x: Operand<'_>,
        w: &UnfoldParams,
        pad_value: f64,
        shape: &[usize],
    ) -> CpuStorage {
        conv::unfold(
            x, w.kernel, w.stride, w.padding, w.dilation, pad_value, shape,
        )
    }
    fn fold(
        &self,
        x: Operand<'_>,
        output: [usize; 2],
        w: &UnfoldParams,
        shape: &[usize],
    ) -> CpuStorage {
        conv::fold(x, output, w.kernel, w.stride, w.padding, w.dilation, shape)
    }
    fn conv2d(
        &self,
        inputs: &[Operand<'_>],
        p: &Conv2dParams,
        shape: &[usize],
        dst: &mut Dst,
    ) -> CpuStorage {
        conv2d::conv2d(inputs, p, shape, dst)
    }
    fn conv2d_input_grad(
        &self,
        gy: Operand<'_>,
        w: Operand<'_>,
        p: &Conv2dParams,
        shape: &[usize],
    ) -> CpuStorage {
        conv2d::conv2d_input_grad(gy, w, p, shape)
    }
    fn conv2d_weight_grad(
        &self,
        x: Operand<'_>,
        gy: Operand<'_>,
        p: &Conv2dParams,
        shape: &[usize],
    ) -> CpuStorage {
        conv2d::conv2d_weight_grad(x, gy, p, shape)
    }
    fn max_pool2d(&self, x: Operand<'_>, p: &Pool2dParams, shape: &[usize]) -> CpuStorage {
        max_pool::max_pool2d(x, p, shape)
    }
    fn max_pool2d_backward(&self, x: Operand<'_>, gy: Operand<'_>, p: &Pool2dParams) -> CpuStorage {
        max_pool::max_pool2d_backward(x, gy, p)
    }
    fn softmax(
        &self,
        x: Operand<'_>,
        dim: usize,
        log: bool,
        dtype: DType,
        dst: &mut Dst,
    ) -> CpuStorage {
        softmax::softmax(x, dim, log, dtype, dst)
    }
    fn gelu_backward(
        &self,
        x: Operand<'_>,
        g: Operand<'_>,
        dtype: DType,
        dst: &mut Dst,
    ) -> CpuStorage {
        unary::gelu_backward(x, g, dtype, dst)
    }
    fn attention(
        &self,
        inputs: &[Operand<'_>],
        scale: f64,
        causal: bool,
        backward: bool,
        dtype: DType,
        dst: &mut Dst,
    ) -> CpuStorage {
        attention::attention(inputs, scale, causal, backward, dtype, dst)
    }
    fn layer_norm(
        &self,
        inputs: &[Operand<'_>],
        eps: f64,
        dtype: DType,
        dst: &mut Dst,
    ) -> CpuStorage {
        layer_norm::layer_norm(inputs, eps, dtype, dst)
    }
    fn layer_norm_backward(
        &self,
        x: Operand<'_>,
        g: Operand<'_>,
        eps: f64,
        dtype: DType,
        dst: &mut Dst,
    ) -> CpuStorage {
        layer_norm::layer_norm_backward(x, g, eps, dtype, dst)
    }
    fn random(
        &self,
        dist: Distribution,
        n: usize,
        dtype: DType,
        seed: u64,
        offset: u64,
    ) -> CpuStorage {
        random::random(dist, n, dtype, seed, offset)
    }
    fn full(&self, value: f64, n: usize, dtype: DType) -> CpuStorage {
        CpuStorage::filled(dtype, n, value)
    }
    fn fused(&self, program: &FusedProgram, inputs: &[Operand<'_>], shape: &[usize]) -> CpuStorage {
        fused::fused(program, inputs, shape)
    }
    fn adam_step(&self, h: &AdamHyper, inputs: &[Operand<'_>], dst: &mut Dst) -> CpuStorage {
        // Eagerly (a direct dispatch): the update of a copy of the parameter; the moments are
        // updated in place.
        let updated = OwnedOperand::dense(copy::contiguous_in(inputs[0], dst), inputs[0].shape());
        let mut operands = inputs.to_vec();
        operands[0] = updated.operand();
        fused_optim::adam_into(h, &operands, updated.operand());
        let mut guard = updated.operand().storage().write();
        std::mem::replace(&mut *guard, CpuStorage::Bool(Vec::new()))
    }
}
