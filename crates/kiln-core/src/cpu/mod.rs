//! CPU kernels for the primitive ops. `execute` is the backend contract: given an op, its
//! inputs and the inferred output, return the output's storage and layout; `execute_into`
//! writes the output into an existing tensor instead (the graph executor's planned buffers).
//! Kernels take their output vector from a [`dst::Dst`], so one kernel serves both.

mod attention;
mod binary;
mod conv;
mod conv2d;
mod copy;
mod dst;
mod fused;
mod fused_reduce;
pub use fused::fused_into;
pub mod fused_optim;
mod index;
mod layer_norm;
mod matmul;
mod max_pool;
pub mod num;
pub mod pool;
mod random;
mod reduce;
mod scratch;
mod simd;
mod softmax;
pub mod strided;
pub mod threads;
mod transpose;
mod unary;

pub use copy::copy_into;
pub use index::index_error;
pub use matmul::{gemm_calls_in_flight, splits_inside_pool};
pub use random::{counters_for as random_counters, philox_uniforms};

use crate::dtype::DType;
use crate::layout::Layout;
use crate::ops::Op;
use crate::shape::{shape_of, Shape};
use crate::storage::{CpuStorage, Storage, StorageElement};
use crate::tensor::Tensor;
use dst::Dst;
use std::borrow::Cow;
use std::sync::Arc;

/// Runs `op` on CPU tensors.
pub fn execute(
    op: &Op,
    inputs: &[&Tensor],
    shape: &[usize],
    dtype: DType,
) -> (Arc<Storage>, Layout) {
    execute_shape(op, inputs, shape_of(shape), dtype)
}

/// [`execute`] taking the inferred output shape by value, so a dense output's layout reuses it.
#[inline(always)]
pub fn execute_shape(
    op: &Op,
    inputs: &[&Tensor],
    shape: Shape,
    dtype: DType,
) -> (Arc<Storage>, Layout) {
    // The output layout is built before the kernel runs: by the time it is moved into the
    // tensor its stores have long retired (building it after measured slower).
    let dense_layout = Layout::contiguous_owned(shape);
    match run_kernel(op, inputs, &dense_layout.shape, dtype, &mut Dst::fresh()) {
        Out::Dense(data) => dense(data, dense_layout),
        Out::View(layout) => (inputs[0].storage().clone(), layout),
    }
}

/// Runs `op` on CPU tensors writing its result into `out`'s buffer instead of a new one (the
/// graph executor's planned buffers). `out` must be dense at offset 0 of its storage, with the
/// op's output shape and dtype, and share no storage with `inputs` (a fused program may:
/// see [`fused_into`]). View ops write a dense copy of the view. Kernels take their output
/// from the buffer; the few paths that still allocate theirs are copied into it.
pub fn execute_into(op: &Op, inputs: &[&Tensor], out: &Tensor) {
    if let Op::Fused(program) = op {
        return fused_into(program, inputs, out);
    }
    if let Op::AdamStep(h) = op {
        return crate::ops::optim::adam_into(h, inputs, out);
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
    let data = match run_kernel(op, inputs, out.shape(), out.dtype(), &mut dst) {
        Out::Dense(data) => data,
        Out::View(layout) => {
            let view = Tensor::from_storage(inputs[0].storage().clone(), layout);
            copy::contiguous_in(&view, &mut dst)
        }
    };
    *guard = dst.finish(data, len);
}

/// What a kernel produced: a new dense buffer of the output shape, or a view of `inputs[0]`.
enum Out {
    Dense(CpuStorage),
    View(Layout),
}

fn run_kernel(op: &Op, inputs: &[&Tensor], shape: &[usize], dtype: DType, dst: &mut Dst) -> Out {
    let x = inputs.first();
    match op {
        Op::Permute(p) => Out::View(inputs[0].layout().permute(p)),
        Op::Expand(s) => Out::View(inputs[0].layout().broadcast_to(s)),
        Op::Slice {
            dim,
            start,
            len,
            step,
        } => Out::View(inputs[0].layout().slice(*dim, *start, *len, *step)),
        Op::Reshape(s) => match inputs[0].layout().reshape_view(s) {
            Some(l) => Out::View(l),
            None => Out::Dense(copy::contiguous_in(inputs[0], dst)),
        },
        Op::Contiguous => Out::Dense(copy::contiguous_in(inputs[0], dst)),
        Op::Cast(d) => Out::Dense(copy::cast_in(inputs[0], *d, dst)),
        Op::Cat(dim) => Out::Dense(copy::cat(inputs, *dim, shape, dst)),
        Op::SliceScatter {
            dim, start, step, ..
        } => Out::Dense(copy::slice_scatter(
            inputs[0], *dim, *start, *step, shape, dst,
        )),
        _ if op.is_unary() => Out::Dense(unary::unary(op, inputs[0], dtype, dst)),
        _ if op.is_binary() => {
            Out::Dense(binary::binary(op, inputs[0], inputs[1], shape, dtype, dst))
        }
        Op::Where => Out::Dense(binary::where_(
            inputs[0], inputs[1], inputs[2], shape, dtype, dst,
        )),
        Op::Sum { dims, .. }
        | Op::Max { dims, .. }
        | Op::Min { dims, .. }
        | Op::Prod { dims, .. } => Out::Dense(reduce::reduce(op, inputs[0], dims, dtype, dst)),
        Op::ArgMax { dim, .. } | Op::ArgMin { dim, .. } => Out::Dense(reduce::arg_reduce(
            inputs[0],
            *dim,
            matches!(op, Op::ArgMax { .. }),
        )),
        Op::IndexSelect(dim) => {
            Out::Dense(index::index_select(inputs[0], inputs[1], *dim, shape, dst))
        }
        Op::IndexAdd(dim) => {
            Out::Dense(index::index_add(inputs[0], inputs[1], inputs[2], *dim, dst))
        }
        Op::Gather(dim) => Out::Dense(index::gather(inputs[0], inputs[1], *dim, dst)),
        Op::ScatterAdd(dim) => Out::Dense(index::scatter_add(
            inputs[0], inputs[1], inputs[2], *dim, dst,
        )),
        Op::Matmul => Out::Dense(matmul::matmul(
            inputs[0],
            inputs[1],
            inputs.get(2).copied(),
            shape,
            dst,
        )),
        Op::MatmulGeluBackward => Out::Dense(matmul::matmul_gelu_backward(inputs, dst)),
        Op::MatmulGeluRhs => Out::Dense(matmul::matmul_gelu_rhs(inputs, dst)),
        Op::MatmulReluBackward => Out::Dense(matmul::matmul_relu_backward(inputs, shape, dst)),
        Op::MatmulAct(act) => Out::Dense(matmul::matmul_act(
            inputs[0],
            inputs[1],
            inputs.get(2).copied(),
            *act,
            shape,
            dtype,
            dst,
        )),
        Op::Unfold {
            kernel,
            stride,
            padding,
            dilation,
            pad_value,
        } => Out::Dense(conv::unfold(
            inputs[0], *kernel, *stride, *padding, *dilation, *pad_value, shape,
        )),
        Op::Fold {
            output,
            kernel,
            stride,
            padding,
            dilation,
        } => Out::Dense(conv::fold(
            inputs[0], *output, *kernel, *stride, *padding, *dilation, shape,
        )),
        Op::Conv2d(p) => Out::Dense(conv2d::conv2d(inputs, p, shape)),
        Op::Conv2dInputGrad { conv, .. } => {
            Out::Dense(conv2d::conv2d_input_grad(inputs[0], inputs[1], conv, shape))
        }
        Op::Conv2dWeightGrad { conv, .. } => Out::Dense(conv2d::conv2d_weight_grad(
            inputs[0], inputs[1], conv, shape,
        )),
        Op::MaxPool2d(p) => Out::Dense(max_pool::max_pool2d(inputs[0], p, shape)),
        Op::MaxPool2dBackward(p) => {
            Out::Dense(max_pool::max_pool2d_backward(inputs[0], inputs[1], p))
        }
        Op::Softmax { dim, log } => Out::Dense(softmax::softmax(inputs[0], *dim, *log, dtype, dst)),
        Op::GeluBackward => Out::Dense(unary::gelu_backward(inputs[0], inputs[1], dtype, dst)),
        Op::Attention { scale, causal } | Op::AttentionBackward { scale, causal } => {
            let backward = matches!(op, Op::AttentionBackward { .. });
            Out::Dense(attention::attention(
                inputs, *scale, *causal, backward, dtype, dst,
            ))
        }
        Op::LayerNorm { eps } => Out::Dense(layer_norm::layer_norm(inputs, *eps, dtype, dst)),
        Op::LayerNormBackward { eps } => Out::Dense(layer_norm::layer_norm_backward(
            inputs[0], inputs[1], *eps, dtype, dst,
        )),
        Op::Random {
            dist,
            dtype,
            seed,
            offset,
            ..
        } => {
            let n = shape.iter().product();
            Out::Dense(random::random(*dist, n, *dtype, *seed, *offset))
        }
        Op::Fused(program) => Out::Dense(fused::fused(program, inputs, shape)),
        Op::AdamStep(h) => {
            // Eagerly (a direct dispatch): the update of a copy of the parameter; the moments
            // are updated in place.
            let updated = crate::autograd::no_grad(|| inputs[0].copy());
            let mut operands = inputs.to_vec();
            operands[0] = &updated;
            crate::autograd::no_grad(|| crate::ops::optim::adam_into(h, &operands, &updated));
            let data = std::mem::replace(&mut *updated.storage().write(), CpuStorage::Bool(vec![]));
            Out::Dense(data)
        }
        _ => unreachable!(
            "cpu: no kernel for {} ({:?})",
            op.name(),
            x.map(|t| t.shape())
        ),
    }
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
pub fn to_contiguous_vec<T: StorageElement>(t: &Tensor) -> Vec<T> {
    to_contiguous_vec_in(t, &mut Dst::fresh())
}

/// [`to_contiguous_vec`] into a vector from `dst`.
pub(crate) fn to_contiguous_vec_in<T: StorageElement>(t: &Tensor, dst: &mut Dst) -> Vec<T> {
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
pub(crate) fn with_dense<T: StorageElement, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> R {
    if let Some(r) = t.layout().contiguous_range() {
        let guard = t.storage().read();
        let data = T::slice(&guard).expect("internal: storage dtype");
        f(&data[r])
    } else {
        f(&to_contiguous_vec::<T>(t))
    }
}

/// Casts `t` to `dtype` if needed (a new tensor, no autograd); borrows `t` when it already has
/// that dtype.
pub(crate) fn cast_if(t: &Tensor, dtype: DType) -> Cow<'_, Tensor> {
    if t.dtype() == dtype {
        Cow::Borrowed(t)
    } else {
        let data = copy::cast(t, dtype);
        Cow::Owned(Tensor::from_storage(
            Arc::new(Storage::cpu(data)),
            Layout::contiguous(t.shape()),
        ))
    }
}
