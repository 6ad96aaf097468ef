//! Fused softmax / log-softmax along one dim: per row, the max, the shifted exponentials, their
//! sum and the normalization in one sweep over the data, instead of six ops each reading and
//! writing the whole tensor.

use super::dst::Dst;
use super::{simd, to_contiguous_vec};
use crate::dtype::DType;
use crate::operand::Operand;
use crate::storage::{CpuStorage, StorageElement};
use half::{bf16, f16};
use num_traits::Float;

/// Element types with a fused softmax kernel (others compute in f32).
trait Elem: Float + StorageElement + Send + Sync {
    fn exp_inplace(x: &mut [Self]);
    /// Max of a row, NaN winning.
    fn row_max(x: &[Self]) -> Self;
    /// Sum of a row, accumulated in f64 like the `sum` op.
    fn row_sum(x: &[Self]) -> f64;
}

impl Elem for f32 {
    fn exp_inplace(x: &mut [f32]) {
        simd::exp_inplace(x)
    }
    fn row_max(x: &[f32]) -> f32 {
        simd::max_f32(x)
    }
    fn row_sum(x: &[f32]) -> f64 {
        simd::sum_f64(x, |v| v as f64)
    }
}

impl Elem for f64 {
    fn exp_inplace(x: &mut [f64]) {
        x.iter_mut().for_each(|v| *v = v.exp());
    }
    fn row_max(x: &[f64]) -> f64 {
        let mut m = f64::NEG_INFINITY;
        for &v in x {
            if v > m || v.is_nan() {
                m = v;
            }
            if m.is_nan() {
                break;
            }
        }
        m
    }
    fn row_sum(x: &[f64]) -> f64 {
        simd::sum_f64(x, |v| v)
    }
}

/// The shift of a row: its max, or 0 when the max is infinite (an all-−∞ row then gives NaN
/// as in PyTorch, instead of turning into NaN one step early).
#[inline]
fn shift<T: Float>(m: T) -> T {
    if m.is_infinite() {
        T::zero()
    } else {
        m
    }
}

/// One block `[n, inner]` (the softmax dim and the dims after it): `src` → `dst`.
/// `scratch` holds the exponentials for log-softmax.
fn block<T: Elem>(src: &[T], dst: &mut [T], inner: usize, log: bool, scratch: &mut Vec<T>) {
    if inner == 1 {
        let m = shift(T::row_max(src));
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s - m;
        }
        if log {
            // The exponentials only feed the sum: made in pieces on the stack (rows up to
            // the piece size sum exactly as one run).
            let mut buf = [std::mem::MaybeUninit::<T>::uninit(); ROW_PIECE];
            let mut sum = 0.0f64;
            for piece in dst.chunks(ROW_PIECE) {
                let b = &mut buf[..piece.len()];
                for (b, &v) in b.iter_mut().zip(piece) {
                    b.write(v);
                }
                // SAFETY: the piece's elements were all written just above.
                let b = unsafe { &mut *(b as *mut [std::mem::MaybeUninit<T>] as *mut [T]) };
                T::exp_inplace(b);
                sum += T::row_sum(b);
            }
            let lse = T::from(sum).unwrap().ln();
            dst.iter_mut().for_each(|d| *d = *d - lse);
        } else {
            T::exp_inplace(dst);
            let s = T::from(T::row_sum(dst)).unwrap();
            dst.iter_mut().for_each(|d| *d = *d / s);
        }
        return;
    }
    // Rows along the dim are strided by `inner`: keep `inner` running maxima and sums, and
    // sweep contiguous `[inner]` slices.
    let mut m = vec![T::neg_infinity(); inner];
    for row in src.chunks_exact(inner) {
        for (a, &v) in m.iter_mut().zip(row) {
            if v > *a || v.is_nan() {
                *a = v;
            }
        }
    }
    m.iter_mut().for_each(|a| *a = shift(*a));
    for (d, s) in dst.chunks_exact_mut(inner).zip(src.chunks_exact(inner)) {
        for ((d, &s), &a) in d.iter_mut().zip(s).zip(&m) {
            *d = s - a;
        }
    }
    scratch.clear();
    scratch.extend_from_slice(dst);
    T::exp_inplace(scratch);
    let mut sum = vec![0.0f64; inner];
    for row in scratch.chunks_exact(inner) {
        for (a, &v) in sum.iter_mut().zip(row) {
            *a += <T as crate::dtype::Element>::to_f64(v);
        }
    }
    let sum: Vec<T> = sum.into_iter().map(|s| T::from(s).unwrap()).collect();
    if log {
        let lse: Vec<T> = sum.iter().map(|s| s.ln()).collect();
        for d in dst.chunks_exact_mut(inner) {
            for (d, &l) in d.iter_mut().zip(&lse) {
                *d = *d - l;
            }
        }
    } else {
        for (d, e) in dst.chunks_exact_mut(inner).zip(scratch.chunks_exact(inner)) {
            for ((d, &e), &s) in d.iter_mut().zip(e).zip(&sum) {
                *d = e / s;
            }
        }
    }
}

/// Elements of a row whose exponentials log-softmax sums at once.
const ROW_PIECE: usize = 1024;

fn typed<T: Elem>(x: Operand<'_>, dim: usize, log: bool, dst: &mut Dst) -> Vec<T> {
    let shape = x.shape();
    let (n, inner) = if shape.is_empty() {
        (1, 1)
    } else {
        (shape[dim], shape[dim + 1..].iter().product::<usize>())
    };
    let numel = x.numel();
    let mut run = |src: &[T]| {
        let mut out = dst.take(numel);
        out.resize(numel, <T as num_traits::Zero>::zero());
        let len = n * inner;
        if len == 0 {
            return out;
        }
        // Whole rows per task.
        let per_task = len * (super::threads::MAP_CHUNK / len).max(1);
        super::threads::for_each_chunk(&mut out, per_task, |start, d| {
            let mut scratch = Vec::new();
            let s = &src[start..start + d.len()];
            for (d, s) in d.chunks_exact_mut(len).zip(s.chunks_exact(len)) {
                block(s, d, inner, log, &mut scratch);
            }
        });
        out
    };
    if let Some(r) = x.layout().contiguous_range() {
        let g = x.storage().read();
        return run(&T::slice(&g).expect("softmax: dtype")[r]);
    }
    run(&to_contiguous_vec::<T>(x))
}

/// Softmax (or log-softmax) of `x` along `dim` into a dense buffer of dtype `out` (a float).
pub(crate) fn softmax(
    x: Operand<'_>,
    dim: usize,
    log: bool,
    out: DType,
    dst: &mut Dst,
) -> CpuStorage {
    let x = super::cast_if(x, out);
    let x = x.operand();
    match out {
        DType::F32 => CpuStorage::F32(typed::<f32>(x, dim, log, dst)),
        DType::F64 => CpuStorage::F64(typed::<f64>(x, dim, log, dst)),
        DType::BF16 | DType::F16 => {
            let fresh = &mut Dst::fresh();
            let r = typed::<f32>(super::cast_if(x, DType::F32).operand(), dim, log, fresh);
            if out == DType::BF16 {
                CpuStorage::BF16(r.into_iter().map(bf16::from_f32).collect())
            } else {
                CpuStorage::F16(r.into_iter().map(f16::from_f32).collect())
            }
        }
        d => unreachable!("softmax: non-float output {d}"),
    }
}
