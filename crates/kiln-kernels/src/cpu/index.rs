//! Indexing kernels: index_select / index_add along a dim, gather / scatter_add.

use super::dst::Dst;
use super::num::Num;
use super::strided::for_each_run;
use super::{cast_if, to_contiguous_vec};
use crate::dtype::DType;
use crate::layout::Layout;
use crate::operand::Operand;
use crate::ops::Op;
use crate::storage::{CpuStorage, StorageElement};
use crate::with_storage;

/// Runs `f` on the indices of `idx` as i64, borrowed from its buffer when dense.
fn with_indices<R>(idx: Operand<'_>, f: impl FnOnce(&[i64]) -> R) -> R {
    if idx.dtype() == DType::I64 {
        if let Some(r) = idx.layout().contiguous_range() {
            let g = idx.storage().read();
            return f(&i64::slice(&g).expect("index: dtype")[r]);
        }
    }
    f(&to_contiguous_vec::<i64>(
        cast_if(idx, DType::I64).operand(),
    ))
}

fn out_of_range(op: &str, i: i64, size: usize, dim: usize) -> String {
    format!("{op}: index {i} is out of range for dim {dim} of size {size}")
}

fn check(op: &str, i: i64, size: usize, dim: usize) -> usize {
    if i < 0 || i as usize >= size {
        panic!("{}", out_of_range(op, i, size, dim));
    }
    i as usize
}

/// The error an indexing kernel would panic with on these operands (an index outside the
/// indexed dim), or `None` for valid indices and for ops that read no indices. Graph
/// runtimes check data from outside with this before running the kernel, so a bad index is
/// an error they return, not a panic.
pub fn index_error(op: &Op, inputs: &[Operand<'_>]) -> Option<String> {
    let dim = match op {
        Op::Gather(d) | Op::IndexSelect(d) | Op::IndexAdd(d) | Op::ScatterAdd(d) => *d,
        _ => return None,
    };
    let (x, idx) = (inputs.first()?, inputs.get(1)?);
    // A 0-d tensor has the one index 0 along its "dim 0".
    let size = x.shape().get(dim).copied().unwrap_or(1);
    with_indices(*idx, |ids| {
        ids.iter()
            .find(|&&i| i < 0 || i as usize >= size)
            .map(|&i| out_of_range(op.name(), i, size, dim))
    })
}

fn pre_post(shape: &[usize], dim: usize) -> (usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim + 1..].iter().product(),
    )
}

/// `x.index_select(dim, idx)`.
pub(crate) fn index_select(
    x: Operand<'_>,
    idx: Operand<'_>,
    dim: usize,
    shape: &[usize],
    dst: &mut Dst,
) -> CpuStorage {
    let (pre, post) = pre_post(x.shape(), dim);
    let n = x.shape()[dim];
    fn go<T: StorageElement>(
        v: &[T],
        ids: &[i64],
        (pre, n, post): (usize, usize, usize),
        dst: &mut Dst,
    ) -> CpuStorage {
        let mut out = dst.take(pre * ids.len() * post);
        for p in 0..pre {
            for &i in ids {
                let s = (p * n + i as usize) * post;
                out.extend_from_slice(&v[s..s + post]);
            }
        }
        T::wrap(out)
    }
    debug_assert_eq!(pre * idx.numel() * post, shape.iter().product::<usize>());
    with_indices(idx, |ids| {
        for &i in ids {
            check("index_select", i, n, dim);
        }
        let x = super::dense_if_strided(x);
        let x = x.operand();
        let r = x.layout().contiguous_range().expect("dense");
        let g = x.storage().read();
        with_storage!(&*g, v => go(&v[r], ids, (pre, n, post), dst))
    })
}

/// `base.index_add(dim, idx, src)`.
pub(crate) fn index_add(
    base: Operand<'_>,
    idx: Operand<'_>,
    src: Operand<'_>,
    dim: usize,
    dst: &mut Dst,
) -> CpuStorage {
    let (pre, post) = pre_post(base.shape(), dim);
    let n = base.shape()[dim];
    fn go<T: Num>(out: &mut [T], s: &[T], ids: &[i64], pre: usize, n: usize, post: usize) {
        let m = ids.len();
        for p in 0..pre {
            for (j, &i) in ids.iter().enumerate() {
                let d = (p * n + i as usize) * post;
                let sj = (p * m + j) * post;
                for k in 0..post {
                    out[d + k] = out[d + k].add(s[sj + k]);
                }
            }
        }
    }
    with_indices(idx, |ids| {
        for &i in ids {
            check("index_add", i, n, dim);
        }
        let mut out = super::copy::contiguous_in(base, dst);
        let src = super::dense_if_strided(src);
        let src = src.operand();
        let r = src.layout().contiguous_range().expect("dense");
        let g = src.storage().read();
        macro_rules! typed {
            ($($v:ident),*) => { match (&mut out, &*g) {
                $((CpuStorage::$v(o), CpuStorage::$v(s)) => go(o, &s[r], ids, pre, n, post),)*
                _ => unreachable!("index_add: dtype"),
            }};
        }
        typed!(F32, F64, BF16, F16, I64, I32, U8, Bool, I8, I16, U16, U32, U64);
        out
    })
}

/// Layout of `t` restricted to `shape` with `dim`'s stride zeroed: walking it in row-major
/// order gives, for each index position, the base offset before adding `index * stride[dim]`.
fn base_layout(t: &Layout, shape: &[usize], dim: usize) -> Layout {
    let mut l = Layout {
        shape: shape.into(),
        strides: t.strides.clone(),
        offset: t.offset,
    };
    l.strides[dim] = 0;
    l
}

/// `x.gather(dim, idx)`.
pub(crate) fn gather(x: Operand<'_>, idx: Operand<'_>, dim: usize, dst: &mut Dst) -> CpuStorage {
    let bl = base_layout(x.layout(), idx.shape(), dim);
    let stride = x.strides()[dim];
    let size = x.shape()[dim];
    fn go<T: StorageElement>(
        v: &[T],
        ids: &[i64],
        bl: &Layout,
        (stride, size, dim): (usize, usize, usize),
        dst: &mut Dst,
    ) -> CpuStorage {
        let mut out = dst.take(ids.len());
        for_each_run(
            &bl.shape,
            [&bl.strides],
            [bl.offset],
            |start, [o], [s], len| {
                for i in 0..len {
                    let ix = check("gather", ids[start + i], size, dim);
                    out.push(v[o + i * s + ix * stride]);
                }
            },
        );
        T::wrap(out)
    }
    with_indices(idx, |ids| {
        let g = x.storage().read();
        with_storage!(&*g, v => go(v, ids, &bl, (stride, size, dim), dst))
    })
}

/// `base.scatter_add(dim, idx, src)`.
pub(crate) fn scatter_add(
    base: Operand<'_>,
    idx: Operand<'_>,
    src: Operand<'_>,
    dim: usize,
    dst: &mut Dst,
) -> CpuStorage {
    let ol = base_layout(&Layout::contiguous(base.shape()), idx.shape(), dim);
    let dim_stride = Layout::contiguous(base.shape()).strides[dim];
    let size = base.shape()[dim];
    let sl = src.layout();
    fn go<T: Num>(
        out: &mut [T],
        s: &[T],
        ids: &[i64],
        (ol, sl): (&Layout, &Layout),
        (dim_stride, size, dim): (usize, usize, usize),
    ) {
        for_each_run(
            &ol.shape,
            [&ol.strides, &sl.strides],
            [0, sl.offset],
            |start, [o, so], [st, ss], len| {
                for i in 0..len {
                    let ix = check("scatter_add", ids[start + i], size, dim);
                    let d = o + i * st + ix * dim_stride;
                    out[d] = out[d].add(s[so + i * ss]);
                }
            },
        );
    }
    with_indices(idx, |ids| {
        let mut out = super::copy::contiguous_in(base, dst);
        let g = src.storage().read();
        let geo = (dim_stride, size, dim);
        macro_rules! typed {
            ($($v:ident),*) => { match (&mut out, &*g) {
                $((CpuStorage::$v(o), CpuStorage::$v(s)) => go(o, s, ids, (&ol, sl), geo),)*
                _ => unreachable!("scatter_add: dtype"),
            }};
        }
        typed!(F32, F64, BF16, F16, I64, I32, U8, Bool, I8, I16, U16, U32, U64);
        out
    })
}
