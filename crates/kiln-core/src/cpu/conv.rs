//! im2col (`unfold`) and its adjoint col2im (`fold`), the building blocks of convolution and
//! pooling. Work is split over the batch on the thread pool when large enough.

use super::threads;
use super::to_contiguous_vec;
use crate::dtype::DType;
use crate::storage::{CpuStorage, StorageElement};
use crate::tensor::Tensor;
use half::{bf16, f16};
use rayon::prelude::*;

#[derive(Clone, Copy)]
struct Window {
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    d: [usize; 2],
}

impl Window {
    /// Input coordinate read by output position `o` at kernel tap `t` along axis `a`.
    #[inline]
    fn src(&self, a: usize, o: usize, t: usize) -> Option<usize> {
        let v = (o * self.s[a] + t * self.d[a]) as isize - self.p[a] as isize;
        let size = if a == 0 { self.h } else { self.w };
        (v >= 0 && (v as usize) < size).then_some(v as usize)
    }
}

fn unfold_one<T: Copy>(x: &[T], out: &mut [T], w: &Window, pad: T) {
    let l = w.oh * w.ow;
    for c in 0..w.c {
        let plane = &x[c * w.h * w.w..(c + 1) * w.h * w.w];
        for ki in 0..w.k[0] {
            for kj in 0..w.k[1] {
                let row = ((c * w.k[0] + ki) * w.k[1] + kj) * l;
                let dst = &mut out[row..row + l];
                for oy in 0..w.oh {
                    let line = &mut dst[oy * w.ow..(oy + 1) * w.ow];
                    match w.src(0, oy, ki) {
                        None => line.fill(pad),
                        Some(iy) => {
                            let src = &plane[iy * w.w..(iy + 1) * w.w];
                            for (ox, v) in line.iter_mut().enumerate() {
                                *v = match w.src(1, ox, kj) {
                                    Some(ix) => src[ix],
                                    None => pad,
                                };
                            }
                        }
                    }
                }
            }
        }
    }
}

fn fold_one<T: super::num::Num>(cols: &[T], out: &mut [T], w: &Window) {
    let l = w.oh * w.ow;
    for c in 0..w.c {
        let plane = &mut out[c * w.h * w.w..(c + 1) * w.h * w.w];
        for ki in 0..w.k[0] {
            for kj in 0..w.k[1] {
                let row = ((c * w.k[0] + ki) * w.k[1] + kj) * l;
                let src = &cols[row..row + l];
                for oy in 0..w.oh {
                    let Some(iy) = w.src(0, oy, ki) else { continue };
                    for ox in 0..w.ow {
                        if let Some(ix) = w.src(1, ox, kj) {
                            let dst = &mut plane[iy * w.w + ix];
                            *dst = dst.add(src[oy * w.ow + ox]);
                        }
                    }
                }
            }
        }
    }
}

fn per_batch<T: Send>(out: &mut [T], n: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    let per = out.len() / n.max(1);
    if per == 0 {
        return;
    }
    if out.len() >= threads::GRAIN && n > 1 {
        threads::install(|| {
            out.par_chunks_mut(per)
                .enumerate()
                .for_each(|(i, o)| f(i, o))
        });
    } else {
        out.chunks_mut(per).enumerate().for_each(|(i, o)| f(i, o));
    }
}

#[allow(clippy::too_many_arguments)]
fn unfold_typed<T: StorageElement>(
    x: &Tensor,
    w: &Window,
    n: usize,
    pad: f64,
    total: usize,
) -> Vec<T> {
    let data = to_contiguous_vec::<T>(x);
    let per_in = w.c * w.h * w.w;
    let mut out = super::pool::filled(total, T::zero());
    let pad = T::from_f64(pad);
    per_batch(&mut out, n, |i, o| {
        unfold_one(&data[i * per_in..(i + 1) * per_in], o, w, pad)
    });
    out
}

/// `[N, C, H, W]` → `[N, C·kh·kw, OH·OW]`.
#[allow(clippy::too_many_arguments)]
pub fn unfold(
    x: &Tensor,
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    d: [usize; 2],
    pad: f64,
    shape: &[usize],
) -> CpuStorage {
    let sh = x.shape();
    let (n, c, h, wd) = (sh[0], sh[1], sh[2], sh[3]);
    let oh = crate::ops::infer::conv_out(h, k[0], s[0], p[0], d[0], sh);
    let ow = crate::ops::infer::conv_out(wd, k[1], s[1], p[1], d[1], sh);
    let w = Window {
        c,
        h,
        w: wd,
        oh,
        ow,
        k,
        s,
        p,
        d,
    };
    let total = shape.iter().product();
    match x.dtype() {
        DType::F32 => CpuStorage::F32(unfold_typed(x, &w, n, pad, total)),
        DType::F64 => CpuStorage::F64(unfold_typed(x, &w, n, pad, total)),
        DType::BF16 => CpuStorage::BF16(unfold_typed(x, &w, n, pad, total)),
        DType::F16 => CpuStorage::F16(unfold_typed(x, &w, n, pad, total)),
        DType::I64 => CpuStorage::I64(unfold_typed(x, &w, n, pad, total)),
        DType::I32 => CpuStorage::I32(unfold_typed(x, &w, n, pad, total)),
        DType::U8 => CpuStorage::U8(unfold_typed(x, &w, n, pad, total)),
        DType::Bool => CpuStorage::Bool(unfold_typed(x, &w, n, pad, total)),
    }
}

fn fold_typed<T: super::num::Num>(x: &Tensor, w: &Window, n: usize, total: usize) -> Vec<T> {
    let cols = to_contiguous_vec::<T>(x);
    let per_in = cols.len() / n.max(1);
    let mut out = super::pool::filled(total, T::zero());
    per_batch(&mut out, n, |i, o| {
        fold_one(&cols[i * per_in..(i + 1) * per_in], o, w)
    });
    out
}

/// `[N, C·kh·kw, L]` → `[N, C, H, W]`, summing overlapping windows.
pub fn fold(
    x: &Tensor,
    output: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    d: [usize; 2],
    shape: &[usize],
) -> CpuStorage {
    let (n, c) = (shape[0], shape[1]);
    let oh = crate::ops::infer::conv_out(output[0], k[0], s[0], p[0], d[0], x.shape());
    let ow = crate::ops::infer::conv_out(output[1], k[1], s[1], p[1], d[1], x.shape());
    let w = Window {
        c,
        h: output[0],
        w: output[1],
        oh,
        ow,
        k,
        s,
        p,
        d,
    };
    let total = shape.iter().product();
    match x.dtype() {
        DType::F32 => CpuStorage::F32(fold_typed(x, &w, n, total)),
        DType::F64 => CpuStorage::F64(fold_typed(x, &w, n, total)),
        DType::BF16 => CpuStorage::BF16(fold_typed::<bf16>(x, &w, n, total)),
        DType::F16 => CpuStorage::F16(fold_typed::<f16>(x, &w, n, total)),
        DType::I64 => CpuStorage::I64(fold_typed(x, &w, n, total)),
        DType::I32 => CpuStorage::I32(fold_typed(x, &w, n, total)),
        DType::U8 => CpuStorage::U8(fold_typed(x, &w, n, total)),
        DType::Bool => CpuStorage::Bool(fold_typed(x, &w, n, total)),
    }
}
