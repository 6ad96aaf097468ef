//! im2col (`unfold`) and its adjoint col2im (`fold`), the building blocks of convolution and
//! pooling. Work is split over the batch on the thread pool when large enough.

use super::threads;
use super::with_dense;
use crate::operand::Operand;
use crate::storage::{CpuStorage, StorageElement};
use crate::with_dtype;
use rayon::prelude::*;

/// Geometry of im2col over one sample: `c` channels of `h×w`, an `oh×ow` grid of windows.
#[derive(Clone, Copy, Debug)]
pub(super) struct Window {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub k: [usize; 2],
    pub s: [usize; 2],
    pub p: [usize; 2],
    pub d: [usize; 2],
}

impl Window {
    /// Input coordinate read by output position `o` at kernel tap `t` along axis `a`.
    #[inline]
    pub(super) fn src(&self, a: usize, o: usize, t: usize) -> Option<usize> {
        let v = (o * self.s[a] + t * self.d[a]) as isize - self.p[a] as isize;
        let size = if a == 0 { self.h } else { self.w };
        (v >= 0 && (v as usize) < size).then_some(v as usize)
    }

    /// For kernel column `kj`: the range of output columns that read inside the input, and
    /// the input column the first of them reads (later ones step by the stride).
    #[inline]
    pub(super) fn cols(&self, kj: usize) -> (std::ops::Range<usize>, usize) {
        let (s, off) = (
            self.s[1] as isize,
            (kj * self.d[1]) as isize - self.p[1] as isize,
        );
        // ox·s + off ∈ [0, w)  ⇔  ox ∈ [ceil(−off / s), ceil((w − off) / s))
        let ceil_div = |a: isize| {
            if a <= 0 {
                0
            } else {
                ((a + s - 1) / s) as usize
            }
        };
        let lo = ceil_div(-off).min(self.ow);
        let hi = ceil_div(self.w as isize - off).min(self.ow).max(lo);
        (lo..hi, (lo as isize * s + off).max(0) as usize)
    }
}

/// im2col of one sample `[c, h, w]` into `[c·kh·kw, oh·ow]`, reading `pad` outside.
pub(super) fn unfold_one<T: Copy>(x: &[T], out: &mut [T], w: &Window, pad: T) {
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
                            // Valid columns form one range: pad, copy (contiguous at
                            // stride 1), pad.
                            let src = &plane[iy * w.w..(iy + 1) * w.w];
                            let (r, ix0) = w.cols(kj);
                            line[..r.start].fill(pad);
                            line[r.end..].fill(pad);
                            if r.is_empty() {
                                // Every column reads padding.
                            } else if w.s[1] == 1 {
                                line[r.clone()].copy_from_slice(&src[ix0..ix0 + r.len()]);
                            } else {
                                for (j, v) in line[r].iter_mut().enumerate() {
                                    *v = src[ix0 + j * w.s[1]];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// col2im of one sample, adding `[c·kh·kw, oh·ow]` columns into `out` `[c, h, w]`.
pub(super) fn fold_one<T: super::num::Num>(cols: &[T], out: &mut [T], w: &Window) {
    let l = w.oh * w.ow;
    for c in 0..w.c {
        let plane = &mut out[c * w.h * w.w..(c + 1) * w.h * w.w];
        for ki in 0..w.k[0] {
            for kj in 0..w.k[1] {
                let row = ((c * w.k[0] + ki) * w.k[1] + kj) * l;
                let src = &cols[row..row + l];
                for oy in 0..w.oh {
                    let Some(iy) = w.src(0, oy, ki) else { continue };
                    let (r, ix0) = w.cols(kj);
                    if r.is_empty() {
                        continue;
                    }
                    let line = &src[oy * w.ow + r.start..oy * w.ow + r.end];
                    let dst = &mut plane[iy * w.w..(iy + 1) * w.w];
                    if w.s[1] == 1 {
                        for (d, &v) in dst[ix0..ix0 + line.len()].iter_mut().zip(line) {
                            *d = d.add(v);
                        }
                    } else {
                        for (j, &v) in line.iter().enumerate() {
                            let d = &mut dst[ix0 + j * w.s[1]];
                            *d = d.add(v);
                        }
                    }
                }
            }
        }
    }
}

/// Output length of a window whose geometry shape inference accepted.
fn out_len(size: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    crate::ops::window::conv_len(size, k, s, p, d)
        .expect("unfold/fold geometry is checked by shape inference")
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

fn unfold_typed<T: StorageElement>(
    x: Operand<'_>,
    w: &Window,
    n: usize,
    pad: f64,
    total: usize,
) -> Vec<T> {
    let per_in = w.c * w.h * w.w;
    // Every output element is written (copied or padded).
    let mut out = super::dst::Dst::fresh().for_overwrite::<T>(total);
    let pad = T::from_f64(pad);
    with_dense::<T, _>(x, |data| {
        per_batch(&mut out, n, |i, o| {
            unfold_one(&data[i * per_in..(i + 1) * per_in], o, w, pad)
        })
    });
    out
}

/// `[N, C, H, W]` → `[N, C·kh·kw, OH·OW]`.
#[allow(clippy::too_many_arguments)]
pub fn unfold(
    x: Operand<'_>,
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    d: [usize; 2],
    pad: f64,
    shape: &[usize],
) -> CpuStorage {
    let sh = x.shape();
    let (n, c, h, wd) = (sh[0], sh[1], sh[2], sh[3]);
    let oh = out_len(h, k[0], s[0], p[0], d[0]);
    let ow = out_len(wd, k[1], s[1], p[1], d[1]);
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
    with_dtype!(x.dtype(), T => T::wrap(unfold_typed::<T>(x, &w, n, pad, total)))
}

fn fold_typed<T: super::num::Num>(x: Operand<'_>, w: &Window, n: usize, total: usize) -> Vec<T> {
    let per_in = x.numel() / n.max(1);
    let mut out = crate::pool::filled(total, T::zero());
    with_dense::<T, _>(x, |cols| {
        per_batch(&mut out, n, |i, o| {
            fold_one(&cols[i * per_in..(i + 1) * per_in], o, w)
        })
    });
    out
}

/// `[N, C·kh·kw, L]` → `[N, C, H, W]`, summing overlapping windows.
pub fn fold(
    x: Operand<'_>,
    output: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    d: [usize; 2],
    shape: &[usize],
) -> CpuStorage {
    let (n, c) = (shape[0], shape[1]);
    let oh = out_len(output[0], k[0], s[0], p[0], d[0]);
    let ow = out_len(output[1], k[1], s[1], p[1], d[1]);
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
    with_dtype!(x.dtype(), T => T::wrap(fold_typed::<T>(x, &w, n, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-element definition of im2col, to check the row-range fast path against.
    fn naive_unfold(x: &[f64], w: &Window, pad: f64) -> Vec<f64> {
        let l = w.oh * w.ow;
        let mut out = vec![0.0; w.c * w.k[0] * w.k[1] * l];
        for c in 0..w.c {
            for ki in 0..w.k[0] {
                for kj in 0..w.k[1] {
                    for oy in 0..w.oh {
                        for ox in 0..w.ow {
                            let v = match (w.src(0, oy, ki), w.src(1, ox, kj)) {
                                (Some(iy), Some(ix)) => x[(c * w.h + iy) * w.w + ix],
                                _ => pad,
                            };
                            out[((c * w.k[0] + ki) * w.k[1] + kj) * l + oy * w.ow + ox] = v;
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn row_ranges_match_the_definition_including_padding_wider_than_the_input() {
        for (k, s, p, d) in [
            (3, 1, 1, 1),
            (3, 2, 1, 1),
            (2, 3, 4, 1),
            (3, 1, 5, 2),
            (1, 1, 0, 1),
            (3, 2, 6, 3),
        ] {
            let (c, h, wd) = (2, 5, 4);
            let oh = out_len(h, k, s, p, d);
            let ow = out_len(wd, k, s, p, d);
            let win = Window {
                c,
                h,
                w: wd,
                oh,
                ow,
                k: [k, k],
                s: [s, s],
                p: [p, p],
                d: [d, d],
            };
            let x: Vec<f64> = (0..c * h * wd).map(|i| i as f64 + 1.0).collect();
            let mut got = vec![0.0; c * k * k * oh * ow];
            unfold_one(&x, &mut got, &win, -7.0);
            assert_eq!(got, naive_unfold(&x, &win, -7.0), "k{k} s{s} p{p} d{d}");
            // fold is the adjoint: <unfold(x), y> == <x, fold(y)>.
            let y: Vec<f64> = (0..got.len())
                .map(|i| ((i * 7) % 11) as f64 - 5.0)
                .collect();
            let mut fy = vec![0.0; x.len()];
            fold_one(&y, &mut fy, &win);
            let zero_pad = {
                let mut z = vec![0.0; got.len()];
                unfold_one(&x, &mut z, &win, 0.0);
                z
            };
            let lhs: f64 = zero_pad.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&fy).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rhs).abs() < 1e-9,
                "adjoint k{k} s{s} p{p} d{d}: {lhs} vs {rhs}"
            );
        }
    }
}
