//! Reductions over one or more dims (sum, max, min, prod) and arg-reductions.

use super::cast_if;
use super::dst::Dst;
use super::num::Num;
use super::strided::for_each_run;
use crate::dtype::DType;
use crate::layout::Layout;
use crate::operand::Operand;
use crate::ops::Op;
use crate::storage::{CpuStorage, StorageElement};
use crate::with_dtype;
use half::{bf16, f16};

fn split_dims(x: Operand<'_>, dims: &[usize]) -> (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>) {
    let l = x.layout();
    let (mut ks, mut kst, mut rs, mut rst) = (vec![], vec![], vec![], vec![]);
    for d in 0..l.rank() {
        if dims.contains(&d) {
            rs.push(l.shape[d]);
            rst.push(l.strides[d]);
        } else {
            ks.push(l.shape[d]);
            kst.push(l.strides[d]);
        }
    }
    (ks, kst, rs, rst)
}

/// Folds `x` over `dims` into a dense `[kept dims]` buffer of accumulators, walking the input
/// in memory order (each input element is read once, in cache order, whatever dims are
/// reduced); the inner loop is a horizontal fold (reduced innermost dim) or an elementwise
/// update of a row of accumulators (kept innermost dim), both vectorizable.
fn reduce_into<T: Copy, A: Copy>(
    data: &[T],
    l: &Layout,
    dims: &[usize],
    out: &mut Vec<A>,
    init: A,
    f: impl Fn(A, T) -> A + Copy,
) {
    reduce_runs(data, l, dims, out, init, f, |a, run| {
        run.iter().fold(a, |a, &v| f(a, v))
    })
}

/// [`reduce_into`] with `fold_run(acc, run)` folding a dense run of a reduced innermost dim
/// (sums pass a multi-accumulator fold there, which vectorizes). `out` (emptied first) gets
/// the accumulators.
fn reduce_runs<T: Copy, A: Copy>(
    data: &[T],
    l: &Layout,
    dims: &[usize],
    out: &mut Vec<A>,
    init: A,
    f: impl Fn(A, T) -> A + Copy,
    fold_run: impl Fn(A, &[T]) -> A,
) {
    let rank = l.rank();
    let mut ostr: smallvec::SmallVec<[usize; 6]> = smallvec::smallvec![0usize; rank];
    let mut acc = 1usize;
    for d in (0..rank).rev() {
        if !dims.contains(&d) {
            ostr[d] = acc;
            acc *= l.shape[d];
        }
    }
    out.clear();
    out.resize(acc, init);
    for_each_run(
        &l.shape,
        [&l.strides, &ostr],
        [l.offset, 0],
        |_, [xi, oi], [xs, os], len| {
            if os == 0 {
                let mut a = out[oi];
                if xs == 1 {
                    a = fold_run(a, &data[xi..xi + len]);
                } else {
                    for j in 0..len {
                        a = f(a, data[xi + j * xs]);
                    }
                }
                out[oi] = a;
            } else if xs == 1 && os == 1 {
                for (o, &v) in out[oi..oi + len].iter_mut().zip(&data[xi..xi + len]) {
                    *o = f(*o, v);
                }
            } else {
                for j in 0..len {
                    let o = &mut out[oi + j * os];
                    *o = f(*o, data[xi + j * xs]);
                }
            }
        },
    );
}

/// Float sums and products accumulate in f64 (a running f32 sum drifts: 0.1 summed 10⁶ times
/// is off by 1%, and it stops growing at 2²⁴), then round once to the output dtype.
fn float_fold<T: StorageElement>(x: Operand<'_>, dims: &[usize], prod: bool, acc: &mut Vec<f64>) {
    let g = x.storage().read();
    let data = T::slice(&g).expect("reduce: dtype");
    if prod {
        reduce_into(data, x.layout(), dims, acc, 1.0f64, |a, v: T| {
            a * v.to_f64()
        })
    } else if let Some((rows, cols)) = leading_reduction(x, dims) {
        let r = x.layout().contiguous_range().expect("reduce: dense");
        column_sums(&data[r], rows, cols, acc)
    } else {
        let add = |a, v: T| a + v.to_f64();
        reduce_runs(data, x.layout(), dims, acc, 0.0f64, add, |a, run| {
            a + super::simd::sum_f64(run, |v: T| v.to_f64())
        })
    }
}

/// `(rows, cols)` when `x` is dense and `dims` are exactly its leading dims (more than
/// one column kept): the sum is then per column of a `rows × cols` matrix, like a bias or
/// layer-norm weight gradient.
fn leading_reduction(x: Operand<'_>, dims: &[usize]) -> Option<(usize, usize)> {
    let shape = x.shape();
    let k = dims.len();
    let leading = k < shape.len() && (0..k).all(|d| dims.contains(&d));
    if !leading || !x.is_contiguous() {
        return None;
    }
    let (rows, cols) = (shape[..k].iter().product(), shape[k..].iter().product());
    (cols > 1).then_some((rows, cols))
}

/// Column sums of the row-major `rows × cols` matrix `data` into `acc` (f64). A large matrix
/// is summed in [`ROW_PARTS`] bands of rows, each on its own accumulators (in parallel on the
/// pool), then the bands are added in order: the same split whatever the thread count, so
/// the same bits with one thread or many. Every row update runs in the widest vector build.
/// One thread streaming a 2048×1024 gradient in baseline code took 0.42 ns per element;
/// split by columns instead, each thread read short strided pieces of rows and gained little.
fn column_sums<T: StorageElement>(data: &[T], rows: usize, cols: usize, acc: &mut Vec<f64>) {
    let sum_rows = |band: &[T], out: &mut [f64]| {
        for row in band.chunks_exact(cols) {
            super::simd::widest!(for (o, &v) in out.iter_mut().zip(row) {
                *o += v.to_f64();
            })
        }
    };
    acc.clear();
    acc.resize(cols, 0.0);
    let data = &data[..rows * cols];
    if rows * cols < 2 * super::threads::MAP_CHUNK || rows < ROW_PARTS {
        return sum_rows(data, acc);
    }
    let band = rows.div_ceil(ROW_PARTS) * cols;
    super::scratch::with_vec(|parts: &mut Vec<f64>| {
        parts.resize(ROW_PARTS * cols, 0.0);
        let work = |(out, rows): (&mut [f64], &[T])| sum_rows(rows, out);
        if super::threads::num_threads() < 2 {
            parts.chunks_mut(cols).zip(data.chunks(band)).for_each(work);
        } else {
            use rayon::prelude::*;
            super::threads::install(|| {
                parts
                    .par_chunks_mut(cols)
                    .zip(data.par_chunks(band))
                    .for_each(work)
            });
        }
        for part in parts.chunks(cols) {
            for (a, p) in acc.iter_mut().zip(part) {
                *a += p;
            }
        }
    })
}

/// Bands of rows a large column sum is split into (see [`column_sums`]).
const ROW_PARTS: usize = 4;

fn extreme<T: Num>(x: Operand<'_>, dims: &[usize], max: bool, dst: &mut Dst) -> Vec<T> {
    let g = x.storage().read();
    let data = T::slice(&g).expect("reduce: dtype");
    let mut out = dst.take(0);
    if max {
        reduce_into(data, x.layout(), dims, &mut out, T::lowest(), T::max_)
    } else {
        reduce_into(data, x.layout(), dims, &mut out, T::highest(), T::min_)
    }
    out
}

/// The f64 accumulators rounded to `out` (a float dtype), in a vector from `dst`.
fn round_to(acc: &[f64], out: DType, dst: &mut Dst) -> CpuStorage {
    fn go<T: StorageElement>(acc: &[f64], dst: &mut Dst) -> CpuStorage {
        let mut v = dst.take(acc.len());
        v.extend(acc.iter().map(|&a| T::from_f64(a)));
        T::wrap(v)
    }
    match out {
        DType::F32 => go::<f32>(acc, dst),
        DType::F64 => go::<f64>(acc, dst),
        DType::BF16 => go::<bf16>(acc, dst),
        DType::F16 => go::<f16>(acc, dst),
        d => unreachable!("reduce: float output {d}"),
    }
}

/// Applies a reduction over `dims`; the output is dense with the kept dims in order
/// (keepdim only changes the shape, not the data).
pub(crate) fn reduce(
    op: &Op,
    x: Operand<'_>,
    dims: &[usize],
    out: DType,
    dst: &mut Dst,
) -> CpuStorage {
    match op {
        Op::Sum { .. } | Op::Prod { .. } if out.is_float() => {
            let prod = matches!(op, Op::Prod { .. });
            // Accumulators in a per-thread scratch vector, then rounded into the output.
            super::scratch::with_vec(|acc: &mut Vec<f64>| {
                match x.dtype() {
                    DType::F32 => float_fold::<f32>(x, dims, prod, acc),
                    DType::F64 => float_fold::<f64>(x, dims, prod, acc),
                    DType::BF16 => float_fold::<bf16>(x, dims, prod, acc),
                    DType::F16 => float_fold::<f16>(x, dims, prod, acc),
                    d => unreachable!("reduce: float output from {d}"),
                }
                round_to(acc, out, dst)
            })
        }
        Op::Sum { .. } | Op::Prod { .. } => {
            let x = cast_if(x, DType::I64);
            let x = x.operand();
            let g = x.storage().read();
            let data = i64::slice(&g).expect("reduce: dtype");
            let mut r = dst.take(0);
            if matches!(op, Op::Prod { .. }) {
                reduce_into(data, x.layout(), dims, &mut r, 1i64, |a, v| {
                    a.wrapping_mul(v)
                })
            } else {
                reduce_into(data, x.layout(), dims, &mut r, 0i64, |a, v| {
                    a.wrapping_add(v)
                })
            };
            CpuStorage::I64(r)
        }
        Op::Max { .. } | Op::Min { .. } => {
            let max = matches!(op, Op::Max { .. });
            with_dtype!(x.dtype(), T => T::wrap(extreme::<T>(x, dims, max, dst)))
        }
        _ => unreachable!("reduce: {}", op.name()),
    }
}

fn arg_typed<T: Num>(x: Operand<'_>, dim: usize, max: bool) -> Vec<i64> {
    let g = x.storage().read();
    let data = T::slice(&g).expect("argmax: dtype");
    let l = x.layout();
    let (ks, kst, _, _) = split_dims(x, &[dim]);
    let (n, st) = if l.rank() == 0 {
        (1, 0)
    } else {
        (l.shape[dim], l.strides[dim])
    };
    let mut out = Vec::with_capacity(ks.iter().product());
    for_each_run(&ks, [&kst], [l.offset], |_, [o], [s], len| {
        for i in 0..len {
            let base = o + i * s;
            let mut best = data[base];
            let mut bi = 0usize;
            for j in 1..n {
                let v = data[base + j * st];
                if best.is_nan_() {
                    break;
                }
                let better = if max { v > best } else { v < best };
                if better || v.is_nan_() {
                    best = v;
                    bi = j;
                }
            }
            out.push(bi as i64);
        }
    });
    out
}

/// Index of the max (or min) along `dim`, first occurrence, NaN wins.
pub fn arg_reduce(x: Operand<'_>, dim: usize, max: bool) -> CpuStorage {
    CpuStorage::I64(with_dtype!(x.dtype(), T => arg_typed::<T>(x, dim, max)))
}
