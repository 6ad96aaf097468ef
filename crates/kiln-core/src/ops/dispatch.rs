//! The single entry point every tensor operation goes through, and the one place that turns
//! tensors into the kernels' storages and layouts and back.

use super::infer::infer;
use super::Op;
use crate::autograd::{is_grad_enabled, Node};
use crate::device::Device;
use crate::tensor::Tensor;
use kiln_kernels::Operand;
use smallvec::SmallVec;

/// Applies a primitive op: infers the output, runs the device kernel, and records an autograd
/// node when grad mode is on and an input requires grad.
///
/// This is the only place ops execute, so graph tracing and profiling hook in here.
#[track_caller]
pub fn dispatch(op: Op, inputs: &[&Tensor]) -> Tensor {
    let mut scope = crate::profile::scope(|| {
        crate::profile::op_row(op.name(), inputs.iter().map(|t| t.shape()))
    });
    let (shape, dtype) = infer(&op, inputs);
    #[cfg(debug_assertions)]
    let expected = shape.clone();
    let device = inputs.first().map(|t| t.device()).unwrap_or(Device::Cpu);
    if crate::trace::is_tracing() {
        return dispatch_traced(op, inputs, shape, dtype);
    }
    if crate::trace::ever_traced() {
        for t in inputs {
            crate::trace::check_readable(t, op.name());
        }
    }
    // Kernels see storages and layouts only; the inferred shape moves into the output
    // layout (no second copy of the dims).
    let (storage, layout) = match device {
        Device::Cpu => with_operands(inputs, |operands| {
            crate::cpu::execute_shape(&op, operands, shape, dtype)
        }),
    };
    #[cfg(debug_assertions)]
    assert_eq!(
        layout.shape,
        expected,
        "kernel of {} produced a wrong shape",
        op.name()
    );
    if scope.is_active() && !op.is_view() {
        scope.add_bytes((layout.numel() * dtype.size_in_bytes()) as u64);
    }
    let out = Tensor::from_parts(storage, layout, dtype, None);
    if !tracks_grad(dtype, inputs) {
        return out;
    }
    attach_grad(op, inputs, out)
}

/// Calls `f` with `inputs` seen as kernel operands. Up to three inputs (nearly every op) go
/// in an array on the stack: collecting them into a `SmallVec` showed up as an iterator fold
/// and a `memmove` per eager op.
#[inline(always)]
fn with_operands<R>(inputs: &[&Tensor], f: impl FnOnce(&[Operand<'_>]) -> R) -> R {
    match inputs {
        [] => f(&[]),
        [a] => f(&[a.operand()]),
        [a, b] => f(&[a.operand(), b.operand()]),
        [a, b, c] => f(&[a.operand(), b.operand(), c.operand()]),
        _ => f(&inputs
            .iter()
            .map(|t| t.operand())
            .collect::<SmallVec<[_; 8]>>()),
    }
}

/// The tracing path, out of line so the eager path stays small.
#[cold]
#[inline(never)]
fn dispatch_traced(
    op: Op,
    inputs: &[&Tensor],
    shape: crate::shape::Shape,
    dtype: crate::dtype::DType,
) -> Tensor {
    let (storage, layout) = crate::trace::record(op.clone(), inputs, shape, dtype);
    let out = Tensor::from_parts(storage, layout, dtype, None);
    if !tracks_grad(dtype, inputs) {
        return out;
    }
    attach_grad(op, inputs, out)
}

/// Whether the result gets an autograd node: grad mode on and an input requires grad.
#[inline(always)]
fn tracks_grad(dtype: crate::dtype::DType, inputs: &[&Tensor]) -> bool {
    dtype.is_float() && is_grad_enabled() && inputs.iter().any(|t| t.requires_grad())
}

/// Records an autograd node for `out` (the op moves into the node only on this path).
#[inline(never)]
fn attach_grad(op: Op, inputs: &[&Tensor], out: Tensor) -> Tensor {
    let dtype = out.dtype();
    let node = Node::record(op, inputs, &out);
    Tensor::from_parts(
        out.storage().clone(),
        out.layout().clone(),
        dtype,
        Some(node),
    )
}

/// Tensors are what the op families' VJPs compute with: each op they apply goes through
/// [`dispatch`], so a gradient is recorded for autograd (create_graph) and graph capture like
/// any other computation.
impl super::grad::Differentiable for Tensor {
    #[track_caller]
    fn apply(op: Op, args: &[&Tensor]) -> Tensor {
        dispatch(op, args)
    }

    #[track_caller]
    fn full(value: f64, shape: &[usize], dtype: crate::dtype::DType) -> Tensor {
        Tensor::full(shape, value, dtype)
    }
}
