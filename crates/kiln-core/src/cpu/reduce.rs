//! Reductions over one or more dims (sum, max, min, prod) and arg-reductions.

use super::cast_if;
use super::num::Num;
use super::strided::for_each_run;
use crate::dtype::DType;
use crate::ops::Op;
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
use half::{bf16, f16};

fn split_dims(x: &Tensor, dims: &[usize]) -> (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>) {
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

fn reduce_typed<T: Num>(
    x: &Tensor,
    dims: &[usize],
    init: T,
    f: impl Fn(T, T) -> T + Copy,
) -> Vec<T> {
    let g = x.storage().read();
    let data = T::slice(&g).expect("reduce: dtype");
    let l = x.layout();
    // Leading dims of a dense tensor (bias gradients): accumulate whole rows, vectorized.
    let k = dims.len();
    if l.is_contiguous() && dims.iter().enumerate().all(|(i, &d)| i == d) && k < l.rank() {
        let cols: usize = l.shape[k..].iter().product();
        let rows: usize = l.shape[..k].iter().product();
        let base = &data[l.offset..l.offset + rows * cols];
        let mut acc = vec![init; cols];
        for r in 0..rows {
            for (a, &v) in acc.iter_mut().zip(&base[r * cols..(r + 1) * cols]) {
                *a = f(*a, v);
            }
        }
        return acc;
    }
    let (ks, kst, rs, rst) = split_dims(x, dims);
    let mut out = Vec::with_capacity(ks.iter().product());
    for_each_run(&ks, [&kst], [l.offset], |_, [o], [s], len| {
        for i in 0..len {
            let mut acc = init;
            for_each_run(&rs, [&rst], [o + i * s], |_, [ro], [rs_], rlen| {
                if rs_ == 1 {
                    for &v in &data[ro..ro + rlen] {
                        acc = f(acc, v);
                    }
                } else {
                    for j in 0..rlen {
                        acc = f(acc, data[ro + j * rs_]);
                    }
                }
            });
            out.push(acc);
        }
    });
    out
}

fn reduce_num<T: Num>(op: &Op, x: &Tensor, dims: &[usize]) -> Vec<T> {
    match op {
        Op::Sum { .. } => reduce_typed(x, dims, T::zero(), T::add),
        Op::Prod { .. } => reduce_typed(x, dims, T::one(), T::mul),
        Op::Max { .. } => reduce_typed(x, dims, T::lowest(), T::max_),
        Op::Min { .. } => reduce_typed(x, dims, T::highest(), T::min_),
        _ => unreachable!(),
    }
}

/// Applies a reduction over `dims`; the output is dense with the kept dims in order
/// (keepdim only changes the shape, not the data).
pub fn reduce(op: &Op, x: &Tensor, dims: &[usize], out: DType) -> CpuStorage {
    // Long float sums accumulate in f64: a running f32 sum drifts (0.1 summed 10⁶ times is
    // off by 1%) and stops growing at 2²⁴.
    let reduced: usize = dims.iter().map(|&d| x.shape()[d]).product();
    if matches!(out, DType::F32 | DType::BF16 | DType::F16)
        && matches!(op, Op::Sum { .. })
        && reduced > 1024
    {
        let r = reduce_num::<f64>(op, &cast_if(x, DType::F64), dims);
        let n = r.len();
        return super::copy::cast(&Tensor::from_vec(r, [n]), out);
    }
    // Half-precision sums accumulate in f32 for accuracy, like PyTorch.
    if matches!(out, DType::BF16 | DType::F16) && matches!(op, Op::Sum { .. } | Op::Prod { .. }) {
        let r = reduce_num::<f32>(op, &cast_if(x, DType::F32), dims);
        let n = r.len();
        return super::copy::cast(&Tensor::from_vec(r, [n]), out);
    }
    let x = cast_if(x, out);
    match out {
        DType::F32 => CpuStorage::F32(reduce_num(op, &x, dims)),
        DType::F64 => CpuStorage::F64(reduce_num(op, &x, dims)),
        DType::BF16 => CpuStorage::BF16(reduce_num(op, &x, dims)),
        DType::F16 => CpuStorage::F16(reduce_num(op, &x, dims)),
        DType::I64 => CpuStorage::I64(reduce_num(op, &x, dims)),
        DType::I32 => CpuStorage::I32(reduce_num(op, &x, dims)),
        DType::U8 => CpuStorage::U8(reduce_num(op, &x, dims)),
        DType::Bool => CpuStorage::Bool(reduce_num(op, &x, dims)),
    }
}

fn arg_typed<T: Num>(x: &Tensor, dim: usize, max: bool) -> Vec<i64> {
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
pub fn arg_reduce(x: &Tensor, dim: usize, max: bool) -> CpuStorage {
    CpuStorage::I64(match x.dtype() {
        DType::F32 => arg_typed::<f32>(x, dim, max),
        DType::F64 => arg_typed::<f64>(x, dim, max),
        DType::BF16 => arg_typed::<bf16>(x, dim, max),
        DType::F16 => arg_typed::<f16>(x, dim, max),
        DType::I64 => arg_typed::<i64>(x, dim, max),
        DType::I32 => arg_typed::<i32>(x, dim, max),
        DType::U8 => arg_typed::<u8>(x, dim, max),
        DType::Bool => arg_typed::<bool>(x, dim, max),
    })
}
