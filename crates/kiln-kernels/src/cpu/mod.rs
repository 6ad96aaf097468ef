//! The CPU backend: [`Cpu`] implements [`crate::backend::Backend`] with the kernels in this
//! module's files, one per kernel family. [`execute`] runs an op on operands and returns the
//! output's storage and layout; [`execute_into`] writes the output into an existing buffer
//! instead (the graph executor's planned buffers). Kernels take their output vector from a
//! [`Dst`], so one kernel serves both.

mod attention;
mod backend;
mod binary;
mod conv;
mod conv2d;
mod conv_dot;
mod conv_gemm;
mod copy;
mod depthwise;
mod dst;
mod fused;
mod handoff;
pub use fused::fused_into;
pub mod fused_optim;
mod index;
mod layer_norm;
mod matmul;
mod max_pool;
pub mod num;
mod packed_weights;
mod random;
mod reduce;
mod scratch;
mod simd;
mod skinny;
mod softmax;
pub mod strided;
#[cfg(test)]
mod testing;
pub mod threads;
mod transpose;
mod unary;

pub use copy::{cast, contiguous, copy_into};
pub use index::index_error;
pub use matmul::{gemm_calls_in_flight, splits_inside_pool};
pub use random::{counters_for as random_counters, philox_uniforms};

pub use backend::Cpu;
pub use dst::Dst;

use crate::backend::{run, Out};
use crate::dtype::DType;
use crate::layout::Layout;
use crate::operand::{CowOperand, Operand, OwnedOperand};
use crate::ops::Op;
use crate::shape::{shape_of, Shape};
use crate::storage::{CpuStorage, Storage, StorageElement};
use std::sync::Arc;

/// Runs `op` on CPU operands; returns the output's storage and layout (a view of `inputs[0]`'s
/// storage for view ops).
pub fn execute(
    op: &Op,
    inputs: &[Operand<'_>],
    shape: &[usize],
    dtype: DType,
) -> (Arc<Storage>, Layout) {
    execute_shape(op, inputs, shape_of(shape), dtype)
}

/// [`execute`] taking the inferred output shape by value, so a dense output's layout reuses it.
/// Not inlined into callers of other crates: the binding of each op to its kernel then stays
/// one call inside this crate (inlined into `dispatch` it made every `Cpu` method a
/// cross-crate call).
pub fn execute_shape(
    op: &Op,
    inputs: &[Operand<'_>],
    shape: Shape,
    dtype: DType,
) -> (Arc<Storage>, Layout) {
    // The output layout is built before the kernel runs: by the time it is moved into the
    // tensor its stores have long retired (building it after measured slower).
    let dense_layout = Layout::contiguous_owned(shape);
    match run(
        &Cpu,
        op,
        inputs,
        &dense_layout.shape,
        dtype,
        &mut Dst::fresh(),
    ) {
        Out::Dense(data) => dense(data, dense_layout),
        Out::View(layout) => (inputs[0].storage().clone(), layout),
    }
}

/// Runs `op` on CPU operands writing its result into `out`'s buffer instead of a new one (the
/// graph executor's planned buffers). `out` must be dense at offset 0 of its storage, with the
/// op's output shape and dtype, and share no storage with `inputs` (a fused program may:
/// see [`fused_into`]). View ops write a dense copy of the view. Kernels take their output
/// from the buffer; the few paths that still allocate theirs are copied into it.
pub fn execute_into(op: &Op, inputs: &[Operand<'_>], out: Operand<'_>) {
    if let Op::Fused(program) = op {
        return fused_into(program, inputs, out);
    }
    if let Op::AdamStep(h) = op {
        return fused_optim::adam_into(h, inputs, out);
    }
    if let Op::MatmulGeluBackward = op {
        return matmul::matmul_gelu_backward_into(inputs, out);
    }
    assert!(
        out.is_contiguous() && out.layout().offset == 0,
        "execute_into: {} output must be dense at offset 0, got {:?}",
        op.name(),
        out.layout()
    );
    if inputs.iter().any(|t| t.shares_storage(out)) {
        panic!(
            "execute_into: {} output {:?} shares storage with an input",
            op.name(),
            out.shape()
        );
    }
    let mut guard = out.storage().write();
    let len = guard.len();
    let mut dst = Dst::reuse(std::mem::replace(&mut *guard, CpuStorage::Bool(Vec::new())));
    let data = match run(&Cpu, op, inputs, out.shape(), out.dtype(), &mut dst) {
        Out::Dense(data) => data,
        Out::View(layout) => {
            let view = Operand::new(inputs[0].storage(), &layout, inputs[0].dtype());
            copy::contiguous_in(view, &mut dst)
        }
    };
    *guard = dst.finish(data, len);
}

#[inline(always)]
fn dense(data: CpuStorage, layout: Layout) -> (Arc<Storage>, Layout) {
    debug_assert_eq!(data.len(), layout.numel());
    (Arc::new(Storage::cpu(data)), layout)
}

/// A dense copy of a layout whose last two dims are a transposed matrix (strides `[1, cs]`,
/// like `x.t()`), through the blocked transpose kernel, one matrix per index of the leading
/// dims; `None` for other layouts. Run by run, the strided walk reads one element per cache
/// line (a 128×512 f32 `t()` copied at 1.8 ns per element).
fn transposed_copy<T: StorageElement>(data: &[T], l: &Layout, dst: &mut Dst) -> Option<Vec<T>> {
    /// Below this many elements per matrix the run-by-run walk is as fast.
    const MIN_ELEMS: usize = 64;
    let nd = l.shape.len();
    if nd < 2 {
        return None;
    }
    let (rows, cols) = (l.shape[nd - 2], l.shape[nd - 1]);
    let (row_stride, col_stride) = (l.strides[nd - 2], l.strides[nd - 1]);
    if row_stride != 1 || col_stride < rows || rows * cols < MIN_ELEMS {
        return None;
    }
    let mut out = dst.take(l.numel());
    scratch::set_len_for_overwrite(&mut out, l.numel());
    let mut matrices = out.chunks_mut(rows * cols);
    let batch = &l.shape[..nd - 2];
    strided::for_each_run(
        batch,
        [&l.strides[..nd - 2]],
        [l.offset],
        |_, [o], [s], len| {
            for at in (0..len).map(|i| o + i * s) {
                let matrix = matrices
                    .next()
                    .expect("transposed_copy: one matrix per index");
                transpose::transpose_par(&data[at..], col_stride, rows, cols, matrix);
            }
        },
    );
    Some(out)
}

/// Reads a tensor's elements of type `T` in row-major order into a new vector.
pub fn to_contiguous_vec<T: StorageElement>(t: Operand<'_>) -> Vec<T> {
    to_contiguous_vec_in(t, &mut Dst::fresh())
}

/// [`to_contiguous_vec`] into a vector from `dst`.
pub(crate) fn to_contiguous_vec_in<T: StorageElement>(t: Operand<'_>, dst: &mut Dst) -> Vec<T> {
    let guard = t.storage().read();
    let data = T::slice(&guard).unwrap_or_else(|| {
        panic!(
            "internal: expected {:?} storage, found {}",
            T::DTYPE,
            guard.dtype()
        )
    });
    let l = t.layout();
    if let Some(r) = l.contiguous_range() {
        let mut out = dst.take(r.len());
        out.extend_from_slice(&data[r]);
        return out;
    }
    if let Some(out) = transposed_copy(data, l, dst) {
        return out;
    }
    let mut out = dst.take(l.numel());
    strided::for_each_run(&l.shape, [&l.strides], [l.offset], |_, [o], [s], len| {
        if s == 1 {
            out.extend_from_slice(&data[o..o + len]);
        } else {
            out.extend((0..len).map(|i| data[o + i * s]));
        }
    });
    out
}

/// Runs `f` on `t`'s elements in row-major order: borrowed in place when `t` is dense (a conv
/// backward's columns are tens of MiB, copying them was a full extra pass), else copied.
pub(crate) fn with_dense<T: StorageElement, R>(t: Operand<'_>, f: impl FnOnce(&[T]) -> R) -> R {
    if let Some(r) = t.layout().contiguous_range() {
        let guard = t.storage().read();
        let data = T::slice(&guard).expect("internal: storage dtype");
        f(&data[r])
    } else {
        f(&to_contiguous_vec::<T>(t))
    }
}

/// `t` cast to `dtype` if needed (a new dense buffer); borrows `t` when it already has that
/// dtype.
pub fn cast_if(t: Operand<'_>, dtype: DType) -> CowOperand<'_> {
    if t.dtype() == dtype {
        CowOperand::Borrowed(t)
    } else {
        CowOperand::owned(OwnedOperand::dense(copy::cast(t, dtype), t.shape()))
    }
}

/// `t` itself when its elements are one dense run of its storage, else a dense copy of it.
pub fn dense_if_strided(t: Operand<'_>) -> CowOperand<'_> {
    if t.is_contiguous() {
        CowOperand::Borrowed(t)
    } else {
        CowOperand::owned(OwnedOperand::dense(copy::contiguous(t), t.shape()))
    }
}
