//! CPU kernels for the primitive ops. `execute` is the backend contract: given an op, its
//! inputs and the inferred output, return the output's storage and layout.

mod binary;
mod conv;
mod copy;
mod index;
mod matmul;
pub mod num;
pub mod pool;
mod random;
mod reduce;
pub mod strided;
pub mod threads;
mod unary;

pub use copy::copy_into;
pub use random::{counters_for as random_counters, philox_uniforms};

use crate::dtype::DType;
use crate::layout::Layout;
use crate::ops::Op;
use crate::storage::{CpuStorage, Storage, StorageElement};
use crate::tensor::Tensor;
use std::sync::Arc;

/// Runs `op` on CPU tensors.
pub fn execute(
    op: &Op,
    inputs: &[&Tensor],
    shape: &[usize],
    dtype: DType,
) -> (Arc<Storage>, Layout) {
    let x = inputs.first();
    match op {
        Op::Permute(p) => view(inputs[0], inputs[0].layout().permute(p)),
        Op::Expand(s) => view(inputs[0], inputs[0].layout().broadcast_to(s)),
        Op::Slice {
            dim,
            start,
            len,
            step,
        } => view(
            inputs[0],
            inputs[0].layout().slice(*dim, *start, *len, *step),
        ),
        Op::Reshape(s) => match inputs[0].layout().reshape_view(s) {
            Some(l) => view(inputs[0], l),
            None => dense(copy::contiguous(inputs[0]), shape),
        },
        Op::Contiguous => dense(copy::contiguous(inputs[0]), shape),
        Op::Cast(d) => dense(copy::cast(inputs[0], *d), shape),
        Op::Cat(dim) => dense(copy::cat(inputs, *dim, shape), shape),
        Op::SliceScatter {
            dim, start, step, ..
        } => dense(
            copy::slice_scatter(inputs[0], *dim, *start, *step, shape),
            shape,
        ),
        _ if op.is_unary() => dense(unary::unary(op, inputs[0], dtype), shape),
        _ if op.is_binary() => dense(
            binary::binary(op, inputs[0], inputs[1], shape, dtype),
            shape,
        ),
        Op::Where => dense(
            binary::where_(inputs[0], inputs[1], inputs[2], shape, dtype),
            shape,
        ),
        Op::Sum { dims, .. }
        | Op::Max { dims, .. }
        | Op::Min { dims, .. }
        | Op::Prod { dims, .. } => dense(reduce::reduce(op, inputs[0], dims, dtype), shape),
        Op::ArgMax { dim, .. } | Op::ArgMin { dim, .. } => dense(
            reduce::arg_reduce(inputs[0], *dim, matches!(op, Op::ArgMax { .. })),
            shape,
        ),
        Op::IndexSelect(dim) => dense(
            index::index_select(inputs[0], inputs[1], *dim, shape),
            shape,
        ),
        Op::IndexAdd(dim) => dense(
            index::index_add(inputs[0], inputs[1], inputs[2], *dim),
            shape,
        ),
        Op::Gather(dim) => dense(index::gather(inputs[0], inputs[1], *dim), shape),
        Op::ScatterAdd(dim) => dense(
            index::scatter_add(inputs[0], inputs[1], inputs[2], *dim),
            shape,
        ),
        Op::Matmul => dense(matmul::matmul(inputs[0], inputs[1], shape), shape),
        Op::Unfold {
            kernel,
            stride,
            padding,
            dilation,
            pad_value,
        } => dense(
            conv::unfold(
                inputs[0], *kernel, *stride, *padding, *dilation, *pad_value, shape,
            ),
            shape,
        ),
        Op::Fold {
            output,
            kernel,
            stride,
            padding,
            dilation,
        } => dense(
            conv::fold(
                inputs[0], *output, *kernel, *stride, *padding, *dilation, shape,
            ),
            shape,
        ),
        Op::Random {
            dist,
            dtype,
            seed,
            offset,
            ..
        } => {
            let n = shape.iter().product();
            dense(random::random(*dist, n, *dtype, *seed, *offset), shape)
        }
        _ => unreachable!(
            "cpu: no kernel for {} ({:?})",
            op.name(),
            x.map(|t| t.shape())
        ),
    }
}

fn view(x: &Tensor, layout: Layout) -> (Arc<Storage>, Layout) {
    (x.storage().clone(), layout)
}

fn dense(data: CpuStorage, shape: &[usize]) -> (Arc<Storage>, Layout) {
    debug_assert_eq!(data.len(), shape.iter().product::<usize>());
    (Arc::new(Storage::cpu(data)), Layout::contiguous(shape))
}

/// Reads a tensor's elements of type `T` in row-major order into a new vector.
pub fn to_contiguous_vec<T: StorageElement>(t: &Tensor) -> Vec<T> {
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
        let mut out = pool::take(r.len());
        out.extend_from_slice(&data[r]);
        return out;
    }
    let mut out = pool::take(l.numel());
    strided::for_each_run(&l.shape, [&l.strides], [l.offset], |_, [o], [s], len| {
        if s == 1 {
            out.extend_from_slice(&data[o..o + len]);
        } else {
            out.extend((0..len).map(|i| data[o + i * s]));
        }
    });
    out
}

/// Casts `t` to `dtype` if needed (a new tensor, no autograd).
pub(crate) fn cast_if(t: &Tensor, dtype: DType) -> Tensor {
    if t.dtype() == dtype {
        t.clone()
    } else {
        let data = copy::cast(t, dtype);
        Tensor::from_storage(Arc::new(Storage::cpu(data)), Layout::contiguous(t.shape()))
    }
}
