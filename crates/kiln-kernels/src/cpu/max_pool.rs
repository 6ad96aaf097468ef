//! Max pooling over each `H×W` plane, and its gradient, which finds each window's argmax again
//! (PyTorch's choice: the first maximum, or the last NaN) instead of storing indices. Both run
//! in one pass over the input, parallel over planes.

use super::dst::Dst;
use super::num::Num;
use super::threads;
use super::with_dense;
use crate::dtype::DType;
use crate::operand::Operand;
use crate::ops::Pool2dParams;
use crate::storage::CpuStorage;

/// Window taps along one axis that fall inside the input: the first input index read and
/// how many taps (spaced by the dilation) read inside.
#[derive(Clone, Copy)]
struct Taps {
    first: usize,
    count: usize,
}

/// [`Taps`] of each output position along an axis of `size` inputs.
fn axis_taps(size: usize, out: usize, p: &Pool2dParams, a: usize) -> Vec<Taps> {
    let (k, s, pad, d) = (p.kernel[a], p.stride[a], p.padding[a], p.dilation[a]);
    (0..out)
        .map(|o| {
            let start = (o * s) as isize - pad as isize;
            // The first tap at or after index 0.
            let t0 = if start >= 0 {
                0
            } else {
                ((-start) as usize).div_ceil(d)
            };
            let first = start + (t0 * d) as isize;
            let count = if t0 < k && (first as usize) < size {
                (k - t0).min((size - 1 - first as usize) / d + 1)
            } else {
                0
            };
            Taps {
                first: first.max(0) as usize,
                count,
            }
        })
        .collect()
}

/// Geometry of one plane: taps per output row and column.
struct Plane {
    h: usize,
    w: usize,
    rows: Vec<Taps>,
    cols: Vec<Taps>,
    dilation: [usize; 2],
    /// Window width and stride along a row.
    col_kernel: usize,
    col_stride: usize,
    /// 2×2 windows at stride 2, all inside the input: the vectorizable forward.
    halving: bool,
}

impl Plane {
    fn new(p: &Pool2dParams, h: usize, w: usize, out: [usize; 2]) -> Plane {
        let halving = p.kernel == [2, 2]
            && p.stride == [2, 2]
            && p.padding == [0, 0]
            && p.dilation == [1, 1]
            && 2 * out[0] <= h
            && 2 * out[1] <= w;
        Plane {
            h,
            w,
            rows: axis_taps(h, out[0], p, 0),
            cols: axis_taps(w, out[1], p, 1),
            dilation: p.dilation,
            col_kernel: p.kernel[1],
            col_stride: p.stride[1],
            halving,
        }
    }

    fn in_len(&self) -> usize {
        self.h * self.w
    }

    fn out_len(&self) -> usize {
        self.rows.len() * self.cols.len()
    }

    /// The maximum of one window and its index in the plane: the first maximum, except that a
    /// NaN wins and a later NaN replaces it (PyTorch's `val > max || isnan(val)`). A window
    /// reading only padding gives −∞ at its first tap.
    #[inline(always)]
    fn argmax<T: Num + PartialOrd>(&self, x: &[T], r: Taps, c: Taps) -> (T, usize) {
        let mut best = T::lowest();
        let mut arg = r.first * self.w + c.first;
        for a in 0..r.count {
            let row = (r.first + a * self.dilation[0]) * self.w;
            for b in 0..c.count {
                let i = row + c.first + b * self.dilation[1];
                let v = x[i];
                if (v > best) | v.is_nan_() {
                    best = v;
                    arg = i;
                }
            }
        }
        (best, arg)
    }

    #[inline(always)]
    fn forward<T: Num + PartialOrd>(&self, x: &[T], out: &mut [T], rowmax: &mut Vec<T>) {
        if self.halving {
            let ow = self.cols.len();
            for (oy, line) in out.chunks_exact_mut(ow).enumerate() {
                let r0 = &x[2 * oy * self.w..][..2 * ow];
                let r1 = &x[(2 * oy + 1) * self.w..][..2 * ow];
                for ((o, a), b) in line
                    .iter_mut()
                    .zip(r0.chunks_exact(2))
                    .zip(r1.chunks_exact(2))
                {
                    // max_ propagates NaN and keeps the first of equal values.
                    *o = a[0].max_(a[1]).max_(b[0].max_(b[1]));
                }
            }
            return;
        }
        if self.col_stride <= 2 {
            return self.forward_separable(x, out, rowmax);
        }
        let mut o = out.iter_mut();
        for &r in &self.rows {
            for &c in &self.cols {
                *o.next().expect("max_pool2d: output size") = self.argmax(x, r, c).0;
            }
        }
    }

    /// The window maxima as the maxima over each window's rows of per-row maxima: first
    /// each input row's maximum under every window's columns (into `rowmax`, `h × ow`), then
    /// the maximum over the window's rows of those. Taps are visited left to right and top
    /// to bottom, and `max_` keeps the first of equal values and propagates NaN, so the
    /// values are [`Plane::argmax`]'s (a window's first maximum is in its first row holding
    /// the maximum, at that row's first such column). Each pass loops over positions with the
    /// tap fixed, with the row stride a constant (1 or 2; wider strides go window by window):
    /// ResNet-50's 3×3 stride-2 pooling of 64×112×112, medians of 200 calls, 3 alternating
    /// runs: 1.75 → 1.49–1.56 ms on one thread, 1.24–1.58 → 1.04–1.30 ms on two (a runtime
    /// stride, `step_by`, was slower than window by window: 1.90 ms; onnxruntime, in its
    /// blocked channel layout: 0.15 ms).
    #[inline(always)]
    fn forward_separable<T: Num + PartialOrd>(&self, x: &[T], out: &mut [T], rowmax: &mut Vec<T>) {
        let ow = self.cols.len();
        let (k, s, d) = (self.col_kernel, self.col_stride, self.dilation[1]);
        // Output columns whose every tap lies inside the row: a contiguous range.
        let full = |c: &Taps| c.count == k;
        let ia = self.cols.iter().position(full).unwrap_or(ow);
        let ib = self.cols.iter().rposition(full).map_or(ia, |i| i + 1);
        rowmax.clear();
        rowmax.resize(self.h * ow, T::lowest());
        for (y, dst) in rowmax.chunks_exact_mut(ow.max(1)).enumerate().take(self.h) {
            let line = &x[y * self.w..(y + 1) * self.w];
            for (ox, c) in self.cols.iter().enumerate() {
                if (ia..ib).contains(&ox) {
                    continue;
                }
                for b in 0..c.count {
                    dst[ox] = dst[ox].max_(line[c.first + b * d]);
                }
            }
            if ia < ib {
                let first = self.cols[ia].first;
                let dst = &mut dst[ia..ib];
                if s == 1 {
                    row_taps::<T, 1>(&line[first..], dst, k, d)
                } else {
                    row_taps::<T, 2>(&line[first..], dst, k, d)
                }
            }
        }
        for (line, r) in out.chunks_exact_mut(ow.max(1)).zip(&self.rows) {
            line.fill(T::lowest());
            for a in 0..r.count {
                let src = &rowmax[(r.first + a * self.dilation[0]) * ow..][..ow];
                for (o, &v) in line.iter_mut().zip(src) {
                    *o = o.max_(v);
                }
            }
        }
    }

    /// Adds each window's gradient at its argmax. All argmaxes are found before `dx` is
    /// written (interleaving reads of `x` with writes to `dx` at the same offsets was slower).
    #[inline(always)]
    fn backward<T: Num + PartialOrd>(&self, x: &[T], gy: &[T], dx: &mut [T], arg: &mut Vec<usize>) {
        arg.clear();
        if self.halving {
            self.argmax_halving(x, arg);
        } else {
            for &r in &self.rows {
                for &c in &self.cols {
                    let inside = r.count > 0 && c.count > 0;
                    arg.push(if inside {
                        self.argmax(x, r, c).1
                    } else {
                        usize::MAX
                    });
                }
            }
        }
        // Filling the (cache-resident) plane and scattering one value per window beat
        // writing each input once with selects, which did not vectorize.
        dx.fill(T::zero());
        for (&i, &g) in arg.iter().zip(gy) {
            if i != usize::MAX {
                dx[i] = dx[i].add(g);
            }
        }
    }

    /// [`Plane::argmax`] of each disjoint 2×2 window, branch-free so that it vectorizes (random
    /// data mispredicts every other branch): the window's maximum as in the forward, then the
    /// first tap equal to it, or the last NaN tap when it is NaN.
    #[inline(always)]
    fn argmax_halving<T: Num + PartialOrd>(&self, x: &[T], arg: &mut Vec<usize>) {
        let (w, ow) = (self.w, self.cols.len());
        arg.resize(self.out_len(), 0);
        for (oy, out) in arg.chunks_exact_mut(ow).enumerate() {
            let r0 = &x[2 * oy * w..][..2 * ow];
            let r1 = &x[(2 * oy + 1) * w..][..2 * ow];
            let base = 2 * oy * w;
            for (ox, ((o, a), b)) in out
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
                .enumerate()
            {
                let m = a[0].max_(a[1]).max_(b[0].max_(b[1]));
                let first = if a[0] == m {
                    0
                } else if a[1] == m {
                    1
                } else if b[0] == m {
                    w
                } else {
                    w + 1
                };
                let last_nan = if b[1].is_nan_() {
                    w + 1
                } else if b[0].is_nan_() {
                    w
                } else if a[1].is_nan_() {
                    1
                } else {
                    0
                };
                *o = base + 2 * ox + if m.is_nan_() { last_nan } else { first };
            }
        }
    }
}

/// `dst[o] = max(dst[o], line[o·S + b·d])` for each tap `b < k`, in order: every tap of
/// every output inside `line`.
#[inline(always)]
fn row_taps<T: Num + PartialOrd, const S: usize>(line: &[T], dst: &mut [T], k: usize, d: usize) {
    for b in 0..k {
        let (q, r) = ((b * d) / S, (b * d) % S);
        let src = &line[q * S..];
        // Whole chunks while the line has them, then the last outputs' taps one by one.
        let whole = (src.len() / S).min(dst.len());
        let (head, tail) = dst.split_at_mut(whole);
        for (o, ch) in head.iter_mut().zip(src.chunks_exact(S)) {
            *o = o.max_(ch[r]);
        }
        for (i, o) in tail.iter_mut().enumerate() {
            *o = o.max_(src[(whole + i) * S + r]);
        }
    }
}

/// Runs `f(plane index, that plane's chunk of out, scratch)` over the `per`-element planes of
/// `out`, several planes per pool task.
fn per_plane<T: Num, S: Default>(
    out: &mut [T],
    per: usize,
    f: impl Fn(usize, &mut [T], &mut S) + Sync + Send,
) {
    if per == 0 {
        return;
    }
    let chunk = threads::MAP_CHUNK.div_ceil(per) * per;
    threads::for_each_chunk(out, chunk, |start, piece| {
        let mut scratch = S::default();
        for (j, plane) in piece.chunks_exact_mut(per).enumerate() {
            f(start / per + j, plane, &mut scratch);
        }
    });
}

/// A buffer of `len` elements for a kernel that writes all of them.
fn uninit<T: Num>(len: usize) -> Vec<T> {
    Dst::fresh().for_overwrite(len)
}

fn forward<T: Num + PartialOrd>(x: &[T], pl: &Plane, total: usize) -> Vec<T> {
    let mut out = uninit::<T>(total);
    per_plane(&mut out, pl.out_len(), |i, o, rowmax: &mut Vec<T>| {
        super::simd::widest!(pl.forward(&x[i * pl.in_len()..(i + 1) * pl.in_len()], o, rowmax))
    });
    out
}

fn backward<T: Num + PartialOrd>(x: &[T], gy: &[T], pl: &Plane) -> Vec<T> {
    let mut dx = uninit::<T>(x.len());
    let (il, ol) = (pl.in_len(), pl.out_len());
    per_plane(&mut dx, il, |i, d, arg: &mut Vec<usize>| {
        super::simd::widest!(pl.backward(
            &x[i * il..(i + 1) * il],
            &gy[i * ol..(i + 1) * ol],
            d,
            arg
        ))
    });
    dx
}

/// [`crate::ops::Op::MaxPool2d`].
pub fn max_pool2d(x: Operand<'_>, p: &Pool2dParams, shape: &[usize]) -> CpuStorage {
    let pl = Plane::new(p, x.shape()[2], x.shape()[3], [shape[2], shape[3]]);
    let total = shape.iter().product();
    match x.dtype() {
        DType::F32 => CpuStorage::F32(with_dense::<f32, _>(x, |v| forward(v, &pl, total))),
        DType::F64 => CpuStorage::F64(with_dense::<f64, _>(x, |v| forward(v, &pl, total))),
        d => unreachable!("max_pool2d: dtype {d} (inference admits f32 and f64)"),
    }
}

/// [`crate::ops::Op::MaxPool2dBackward`]: inputs x and the output gradient.
pub fn max_pool2d_backward(x: Operand<'_>, gy: Operand<'_>, p: &Pool2dParams) -> CpuStorage {
    let pl = Plane::new(
        p,
        x.shape()[2],
        x.shape()[3],
        [gy.shape()[2], gy.shape()[3]],
    );
    fn go<T: Num + PartialOrd>(x: Operand<'_>, gy: Operand<'_>, pl: &Plane) -> Vec<T> {
        with_dense::<T, _>(x, |x| with_dense::<T, _>(gy, |gy| backward(x, gy, pl)))
    }
    match x.dtype() {
        DType::F32 => CpuStorage::F32(go(x, gy, &pl)),
        DType::F64 => CpuStorage::F64(go(x, gy, &pl)),
        d => unreachable!("max_pool2d_backward: dtype {d} (inference admits f32 and f64)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_skip_padding_and_stop_at_the_edge() {
        // size 5, kernel 3, stride 2, padding 1, dilation 1: windows start at −1, 1, 3.
        let p = Pool2dParams {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
            ceil_mode: false,
        };
        let t = axis_taps(5, 3, &p, 0);
        let got: Vec<(usize, usize)> = t.iter().map(|t| (t.first, t.count)).collect();
        assert_eq!(got, vec![(0, 2), (1, 3), (3, 2)]);
        // dilation 2, kernel 3, padding 2, stride 1 on size 4: taps from −2, −1, 0, 1.
        let p = Pool2dParams {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [2, 2],
            dilation: [2, 2],
            ceil_mode: false,
        };
        let t = axis_taps(4, 4, &p, 0);
        let got: Vec<(usize, usize)> = t.iter().map(|t| (t.first, t.count)).collect();
        assert_eq!(got, vec![(0, 2), (1, 2), (0, 2), (1, 2)]);
    }

    #[test]
    fn ties_pick_the_first_and_nan_the_last() {
        let p = Pool2dParams {
            kernel: [2, 2],
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            ceil_mode: false,
        };
        let pl = Plane::new(&p, 2, 2, [1, 1]);
        let t = Taps { first: 0, count: 2 };
        assert_eq!(pl.argmax(&[1.0f64, 3.0, 3.0, 2.0], t, t), (3.0, 1));
        let (v, i) = pl.argmax(&[f64::NAN, 3.0, f64::NAN, 2.0], t, t);
        assert!(v.is_nan());
        assert_eq!(i, 2);
    }
}
