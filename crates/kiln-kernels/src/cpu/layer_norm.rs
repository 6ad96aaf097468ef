//! Fused layer normalization over the last dim and its input gradient: per row, the mean and
//! the inverse standard deviation (accumulated in f64) and the normalized values in one sweep,
//! instead of the eight whole-tensor ops of the composite (each reading and writing the data,
//! and several of them saved for backward).

use super::dst::Dst;
use super::{simd, with_dense};
use crate::dtype::{DType, Element};
use crate::operand::Operand;
use crate::storage::{CpuStorage, StorageElement};
use half::{bf16, f16};
use num_traits::Float;

/// Element types with fused kernels (bf16/f16 compute in f32).
trait Elem: Float + StorageElement + Send + Sync {}
impl Elem for f32 {}
impl Elem for f64 {}

/// Mean and `1 / sqrt(var + eps)` of a row (biased variance, two passes in f64).
#[inline(always)]
fn moments<T: Elem>(row: &[T], eps: f64) -> (f64, f64) {
    let d = row.len().max(1) as f64;
    let mean = simd::sum_f64(row, |v| Element::to_f64(v)) / d;
    let var = simd::sum_f64(row, |v| {
        let c = Element::to_f64(v) - mean;
        c * c
    }) / d;
    (mean, 1.0 / (var + eps).sqrt())
}

#[inline(always)]
fn forward_row<T: Elem>(x: &[T], y: &mut [T], affine: Option<(&[T], &[T])>, eps: f64) {
    let (mean, rstd) = moments(x, eps);
    let (m, r) = (T::from_f64(mean), T::from_f64(rstd));
    match affine {
        None => {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = (x - m) * r;
            }
        }
        Some((w, b)) => {
            for (((y, &x), &w), &b) in y.iter_mut().zip(x).zip(w).zip(b) {
                *y = (x - m) * r * w + b;
            }
        }
    }
}

/// `gx = rstd · (g − mean(g) − x̂ · mean(g · x̂))` with `x̂` the normalized row.
#[inline(always)]
fn backward_row<T: Elem>(x: &[T], g: &[T], gx: &mut [T], eps: f64) {
    let (mean, rstd) = moments(x, eps);
    let (m, r) = (T::from_f64(mean), T::from_f64(rstd));
    let d = x.len().max(1) as f64;
    let g_mean = T::from_f64(simd::sum_f64(g, |v| Element::to_f64(v)) / d);
    let mut dot = 0.0f64;
    for (&x, &g) in x.iter().zip(g) {
        dot += Element::to_f64((x - m) * r * g);
    }
    let gx_mean = T::from_f64(dot / d);
    for ((o, &x), &g) in gx.iter_mut().zip(x).zip(g) {
        *o = r * (g - g_mean - (x - m) * r * gx_mean);
    }
}

/// Runs `row(i, out_row)` over rows of length `d`, whole rows per task.
fn rows<T: Elem>(
    numel: usize,
    d: usize,
    dst: &mut Dst,
    row: impl Fn(usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    let mut out = dst.take(numel);
    out.resize(numel, <T as num_traits::Zero>::zero());
    if numel == 0 || d == 0 {
        return out;
    }
    let per_task = d * (super::threads::MAP_CHUNK / d).max(1);
    super::threads::for_each_chunk(&mut out, per_task, |start, piece| {
        for (k, o) in piece.chunks_exact_mut(d).enumerate() {
            row(start / d + k, o);
        }
    });
    out
}

fn forward_typed<T: Elem>(inputs: &[Operand<'_>], eps: f64, dst: &mut Dst) -> Vec<T> {
    let x = inputs[0];
    let d = x.shape().last().copied().unwrap_or(1);
    with_dense::<T, _>(x, |src| {
        let run = |affine: Option<(&[T], &[T])>, dst: &mut Dst| {
            rows(src.len(), d, dst, |i, o| {
                simd::widest!(forward_row(&src[i * d..(i + 1) * d], o, affine, eps))
            })
        };
        match inputs {
            [_, w, b] => {
                with_dense::<T, _>(*w, |w| with_dense::<T, _>(*b, |b| run(Some((w, b)), dst)))
            }
            _ => run(None, dst),
        }
    })
}

fn backward_typed<T: Elem>(x: Operand<'_>, g: Operand<'_>, eps: f64, dst: &mut Dst) -> Vec<T> {
    let d = x.shape().last().copied().unwrap_or(1);
    with_dense::<T, _>(x, |xs| {
        with_dense::<T, _>(g, |gs| {
            rows(xs.len(), d, dst, |i, o| {
                let r = i * d..(i + 1) * d;
                simd::widest!(backward_row(&xs[r.clone()], &gs[r], o, eps))
            })
        })
    })
}

/// Runs an f32/f64 kernel on float tensors of dtype `out`, computing bf16/f16 in f32.
fn by_dtype(
    inputs: &[Operand<'_>],
    out: DType,
    dst: &mut Dst,
    f32_kernel: impl Fn(&[Operand<'_>], &mut Dst) -> Vec<f32>,
    f64_kernel: impl Fn(&[Operand<'_>], &mut Dst) -> Vec<f64>,
) -> CpuStorage {
    match out {
        DType::F32 => CpuStorage::F32(f32_kernel(inputs, dst)),
        DType::F64 => CpuStorage::F64(f64_kernel(inputs, dst)),
        DType::BF16 | DType::F16 => {
            let wide: Vec<_> = inputs
                .iter()
                .map(|&t| super::cast_if(t, DType::F32))
                .collect();
            let refs: Vec<Operand<'_>> = wide.iter().map(|w| w.operand()).collect();
            let r = f32_kernel(&refs, &mut Dst::fresh());
            if out == DType::BF16 {
                CpuStorage::BF16(r.into_iter().map(bf16::from_f32).collect())
            } else {
                CpuStorage::F16(r.into_iter().map(f16::from_f32).collect())
            }
        }
        d => unreachable!("layer_norm: non-float dtype {d}"),
    }
}

/// `(x − mean) / sqrt(var + eps)` over the last dim of `inputs[0]`, times `inputs[1]` plus
/// `inputs[2]` when given.
pub(crate) fn layer_norm(
    inputs: &[Operand<'_>],
    eps: f64,
    out: DType,
    dst: &mut Dst,
) -> CpuStorage {
    by_dtype(
        inputs,
        out,
        dst,
        |t, dst| forward_typed::<f32>(t, eps, dst),
        |t, dst| forward_typed::<f64>(t, eps, dst),
    )
}

/// The gradient of [`layer_norm`] with respect to `x`, given the output gradient `g`.
pub(crate) fn layer_norm_backward(
    x: Operand<'_>,
    g: Operand<'_>,
    eps: f64,
    out: DType,
    dst: &mut Dst,
) -> CpuStorage {
    by_dtype(
        &[x, g],
        out,
        dst,
        |t, dst| backward_typed::<f32>(t[0], t[1], eps, dst),
        |t, dst| backward_typed::<f64>(t[0], t[1], eps, dst),
    )
}
