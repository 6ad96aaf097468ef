//! Indexing kernels: index_select / index_add along a dim, gather / scatter_add.

use super::num::Num;
use super::strided::for_each_run;
use super::{cast_if, to_contiguous_vec};
use crate::dtype::DType;
use crate::layout::Layout;
use crate::storage::{CpuStorage, StorageElement};
use crate::tensor::Tensor;
use crate::with_storage;

fn indices(idx: &Tensor) -> Vec<i64> {
    to_contiguous_vec::<i64>(&cast_if(idx, DType::I64))
}

fn check(op: &str, i: i64, size: usize, dim: usize) -> usize {
    if i < 0 || i as usize >= size {
        panic!("{op}: index {i} is out of range for dim {dim} of size {size}");
    }
    i as usize
}

fn pre_post(shape: &[usize], dim: usize) -> (usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim + 1..].iter().product(),
    )
}

fn dense_of(x: &Tensor) -> CpuStorage {
    super::copy::contiguous(x)
}

/// `x.index_select(dim, idx)`.
pub fn index_select(x: &Tensor, idx: &Tensor, dim: usize, shape: &[usize]) -> CpuStorage {
    let ids = indices(idx);
    let (pre, post) = pre_post(x.shape(), dim);
    let n = x.shape()[dim];
    let m = ids.len();
    for &i in &ids {
        check("index_select", i, n, dim);
    }
    fn go<T: StorageElement>(
        v: &[T],
        ids: &[i64],
        pre: usize,
        n: usize,
        post: usize,
        total: usize,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(total);
        for p in 0..pre {
            for &i in ids {
                let s = (p * n + i as usize) * post;
                out.extend_from_slice(&v[s..s + post]);
            }
        }
        out
    }
    let total = pre * m * post;
    debug_assert_eq!(total, shape.iter().product::<usize>());
    with_storage!(dense_of(x), v => StorageElement::wrap(go(&v, &ids, pre, n, post, total)))
}

/// `base.index_add(dim, idx, src)`.
pub fn index_add(base: &Tensor, idx: &Tensor, src: &Tensor, dim: usize) -> CpuStorage {
    let ids = indices(idx);
    let (pre, post) = pre_post(base.shape(), dim);
    let n = base.shape()[dim];
    for &i in &ids {
        check("index_add", i, n, dim);
    }
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
    let mut out = dense_of(base);
    let s = dense_of(src);
    macro_rules! typed {
        ($($v:ident),*) => { match (&mut out, &s) {
            $((CpuStorage::$v(o), CpuStorage::$v(s)) => go(o, s, &ids, pre, n, post),)*
            _ => unreachable!("index_add: dtype"),
        }};
    }
    typed!(F32, F64, BF16, F16, I64, I32, U8, Bool);
    out
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
pub fn gather(x: &Tensor, idx: &Tensor, dim: usize) -> CpuStorage {
    let ids = indices(idx);
    let bl = base_layout(x.layout(), idx.shape(), dim);
    let stride = x.strides()[dim];
    let size = x.shape()[dim];
    let mut offsets = Vec::with_capacity(ids.len());
    for_each_run(
        &bl.shape,
        [&bl.strides],
        [bl.offset],
        |start, [o], [s], len| {
            for i in 0..len {
                let ix = check("gather", ids[start + i], size, dim);
                offsets.push(o + i * s + ix * stride);
            }
        },
    );
    let g = x.storage().read();
    with_storage!(&*g, v => StorageElement::wrap(offsets.iter().map(|&o| v[o]).collect()))
}

/// `base.scatter_add(dim, idx, src)`.
pub fn scatter_add(base: &Tensor, idx: &Tensor, src: &Tensor, dim: usize) -> CpuStorage {
    let ids = indices(idx);
    let mut out = dense_of(base);
    let ol = base_layout(&Layout::contiguous(base.shape()), idx.shape(), dim);
    let stride = ol.strides.clone();
    let dim_stride = Layout::contiguous(base.shape()).strides[dim];
    let size = base.shape()[dim];
    let sl = src.layout();
    let mut pairs = Vec::with_capacity(ids.len());
    for_each_run(
        &ol.shape,
        [&stride, &sl.strides],
        [0, sl.offset],
        |start, [o, so], [s, ss], len| {
            for i in 0..len {
                let ix = check("scatter_add", ids[start + i], size, dim);
                pairs.push((o + i * s + ix * dim_stride, so + i * ss));
            }
        },
    );
    let g = src.storage().read();
    fn go<T: Num>(out: &mut [T], s: &[T], pairs: &[(usize, usize)]) {
        for &(d, si) in pairs {
            out[d] = out[d].add(s[si]);
        }
    }
    macro_rules! typed {
        ($($v:ident),*) => { match (&mut out, &*g) {
            $((CpuStorage::$v(o), CpuStorage::$v(s)) => go(o, s, &pairs),)*
            _ => unreachable!("scatter_add: dtype"),
        }};
    }
    typed!(F32, F64, BF16, F16, I64, I32, U8, Bool);
    out
}
