//! Depthwise convolution of one sample (one input and one output channel per group): each
//! channel's taps summed straight into its output, with no im2col (whose one-row gemm per
//! channel costs more than the arithmetic, DESIGN.md §5).
//!
//! f32 on AVX-512 runs [`avx512`]: the channel is first copied into a zero-padded plane (split
//! into its column-stride phases), so that every tap of a 16-column block of output is one
//! unmasked-by-position contiguous load, and the block's taps accumulate in a register that is
//! stored once. The portable loop adds each tap's input run onto the output rows in turn; it
//! ran MobileNetV2's depthwise layers at 170–1400 µs each, reading stride-2 inputs one element
//! at a time.

use super::conv::Window;
use super::num::Num;
use crate::dtype::DType;

/// One sample's depthwise convolution: `x` [c, h, w], `w` [c, kh, kw], `out` [c, oh, ow].
pub(super) fn depthwise_one<T: Num>(x: &[T], w: &[T], out: &mut [T], win: &Window) {
    #[cfg(target_arch = "x86_64")]
    if T::DTYPE == DType::F32 && super::simd::isa() == super::simd::Isa::Avx512 && avx512::fits(win)
    {
        // SAFETY: T is f32 (checked above), so the casts only rename the element type.
        let cast =
            |v: &[T]| unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) };
        let (x, w) = (cast(x), cast(w));
        let out =
            unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len()) };
        super::scratch::with_vec(|padded: &mut Vec<f32>| {
            // SAFETY: `isa` found AVX-512F on this CPU.
            unsafe { avx512::run(x, w, out, win, padded) }
        });
        return;
    }
    portable(x, w, out, win);
}

/// The portable loop: each tap's contiguous (or strided) input run added onto every output row.
fn portable<T: Num>(x: &[T], w: &[T], out: &mut [T], win: &Window) {
    let (plane, taps, grid) = (win.h * win.w, win.k[0] * win.k[1], win.oh * win.ow);
    for c in 0..win.c {
        let (xc, wc) = (&x[c * plane..(c + 1) * plane], &w[c * taps..(c + 1) * taps]);
        let oc = &mut out[c * grid..(c + 1) * grid];
        oc.fill(T::zero());
        for ki in 0..win.k[0] {
            for kj in 0..win.k[1] {
                let wv = wc[ki * win.k[1] + kj];
                let (cols, first) = win.cols(kj);
                if cols.is_empty() {
                    continue; // this tap reads only padding
                }
                for oy in 0..win.oh {
                    let Some(iy) = win.src(0, oy, ki) else {
                        continue;
                    };
                    let row = &xc[iy * win.w..(iy + 1) * win.w];
                    let dst = &mut oc[oy * win.ow + cols.start..oy * win.ow + cols.end];
                    if win.s[1] == 1 {
                        // Contiguous reads: the compiler vectorizes this.
                        for (o, &v) in dst.iter_mut().zip(&row[first..first + cols.len()]) {
                            *o = o.add(wv.mul(v));
                        }
                    } else {
                        for (n, o) in dst.iter_mut().enumerate() {
                            *o = o.add(wv.mul(row[first + n * win.s[1]]));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Window;
    use std::arch::x86_64::*;

    /// The padded plane's geometry: rows, and columns per stride phase.
    struct Padded {
        rows: usize,
        cols: usize,
        phase_cols: usize,
    }

    fn padded(win: &Window) -> Padded {
        let (rows, cols) = (win.h + 2 * win.p[0], win.w + 2 * win.p[1]);
        Padded {
            rows,
            cols,
            phase_cols: cols.div_ceil(win.s[1]),
        }
    }

    /// Whether every tap of every output lies inside the padded plane (true for the output
    /// size a convolution computes; anything else takes the portable loop).
    pub(super) fn fits(win: &Window) -> bool {
        let pad = padded(win);
        let last = |o: usize, s: usize, k: usize, d: usize| (o.max(1) - 1) * s + (k.max(1) - 1) * d;
        win.oh > 0
            && win.ow > 0
            && win.k[0] * win.k[1] <= MAX_TAPS
            && last(win.oh, win.s[0], win.k[0], win.d[0]) < pad.rows
            && last(win.ow, win.s[1], win.k[1], win.d[1]) < pad.cols
    }

    /// `dst[i] = src[2i]` for every i < dst.len() (= ⌈src.len() / 2⌉): 32 elements in, 16 out
    /// per permute (the stride-2 layers' copy ran one element at a time).
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn every_other(src: &[f32], dst: &mut [f32]) {
        let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        let mut i = 0;
        while 2 * i + 32 <= src.len() && i + 16 <= dst.len() {
            // SAFETY: src[2i..2i + 32] and dst[i..i + 16] are in bounds (the loop condition).
            unsafe {
                let a = _mm512_loadu_ps(src.as_ptr().add(2 * i));
                let b = _mm512_loadu_ps(src.as_ptr().add(2 * i + 16));
                let v = _mm512_permutex2var_ps(a, even, b);
                _mm512_storeu_ps(dst.as_mut_ptr().add(i), v);
            }
            i += 16;
        }
        for (d, &v) in dst[i..].iter_mut().zip(src[2 * i..].iter().step_by(2)) {
            *d = v;
        }
    }

    /// The most taps a kernel may have here (7×7 is ConvNeXt's).
    const MAX_TAPS: usize = 64;

    /// # Safety
    /// The CPU has AVX-512F, and [`fits`] holds for `win`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn run(
        x: &[f32],
        w: &[f32],
        out: &mut [f32],
        win: &Window,
        buf: &mut Vec<f32>,
    ) {
        let pad = padded(win);
        let (s0, s1) = (win.s[0], win.s[1]);
        let phase_len = pad.rows * pad.phase_cols;
        buf.clear();
        buf.resize(s1 * phase_len, 0.0);
        let (plane, taps, grid) = (win.h * win.w, win.k[0] * win.k[1], win.oh * win.ow);
        // Per tap: where its run starts in the padded buffer, relative to the output row's
        // first padded row and the block's first column.
        let mut offsets = [0usize; MAX_TAPS];
        for ki in 0..win.k[0] {
            for kj in 0..win.k[1] {
                let col = kj * win.d[1];
                offsets[ki * win.k[1] + kj] =
                    (col % s1) * phase_len + ki * win.d[0] * pad.phase_cols + col / s1;
            }
        }
        for c in 0..win.c {
            let (xc, wc) = (&x[c * plane..(c + 1) * plane], &w[c * taps..(c + 1) * taps]);
            let oc = &mut out[c * grid..(c + 1) * grid];
            // The channel into the padded phases (the zero border is never written).
            for (iy, row) in xc.chunks_exact(win.w).enumerate() {
                let y = iy + win.p[0];
                if s1 == 1 {
                    let start = y * pad.cols + win.p[1];
                    buf[start..start + win.w].copy_from_slice(row);
                    continue;
                }
                // Padded column `col` goes to phase col % s1, position col / s1: input column
                // ix = col − p, so phase r starts at the first ix with (ix + p) % s1 == r.
                for r in 0..s1 {
                    let first = (r + s1 - win.p[1] % s1) % s1;
                    if first >= win.w {
                        continue;
                    }
                    let start = r * phase_len + y * pad.phase_cols + (first + win.p[1]) / s1;
                    let n = (win.w - first).div_ceil(s1);
                    let dst = &mut buf[start..start + n];
                    if s1 == 2 {
                        // SAFETY: AVX-512F is on (this function's feature).
                        unsafe { every_other(&row[first..], dst) };
                    } else {
                        for (d, &v) in dst.iter_mut().zip(row[first..].iter().step_by(s1)) {
                            *d = v;
                        }
                    }
                }
            }
            let base = buf.as_ptr();
            for (oy, orow) in oc.chunks_exact_mut(win.ow).enumerate() {
                let row0 = oy * s0 * pad.phase_cols;
                let mut ox = 0;
                while ox < win.ow {
                    let left = win.ow - ox;
                    let mask = crate::cpu::simd::first_lanes(left);
                    let mut acc = _mm512_setzero_ps();
                    for t in 0..taps {
                        // SAFETY: `fits` bounds every tap's run inside the padded buffer; the
                        // mask keeps the block's tail inside its row's phase.
                        let v = unsafe {
                            _mm512_maskz_loadu_ps(mask, base.add(row0 + offsets[t] + ox))
                        };
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(wc[t]), v, acc);
                    }
                    // SAFETY: columns ox.. ox + 16 of the row, masked to its end.
                    unsafe { _mm512_mask_storeu_ps(orow.as_mut_ptr().add(ox), mask, acc) };
                    ox += 16;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vector_kernel_matches_the_portable_loop() {
        // Strides 1 to 3, dilation, padding 0 to 2, square and non-square kernels, widths
        // below, at and past one 16-lane block, and a tap that reads only padding.
        let mut seed = 1u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let mut checked = 0;
        for (h, w) in [(5, 7), (9, 16), (12, 17), (30, 33)] {
            for (k, s, p, d) in [
                ([3, 3], [1, 1], [1, 1], [1, 1]),
                ([3, 3], [2, 2], [1, 1], [1, 1]),
                ([5, 5], [2, 2], [2, 2], [1, 1]),
                ([3, 3], [1, 1], [2, 2], [2, 2]),
                ([1, 7], [1, 3], [0, 3], [1, 1]),
                ([3, 3], [3, 2], [0, 0], [1, 1]),
                ([5, 5], [1, 1], [1, 1], [1, 1]),
            ] {
                let out = |n: usize, k: usize, s: usize, p: usize, d: usize| {
                    (n + 2 * p).checked_sub(d * (k - 1) + 1).map(|v| v / s + 1)
                };
                let (Some(oh), Some(ow)) = (
                    out(h, k[0], s[0], p[0], d[0]),
                    out(w, k[1], s[1], p[1], d[1]),
                ) else {
                    continue;
                };
                let win = Window {
                    c: 3,
                    h,
                    w,
                    oh,
                    ow,
                    k,
                    s,
                    p,
                    d,
                };
                let x: Vec<f32> = (0..3 * h * w).map(|_| next()).collect();
                let wt: Vec<f32> = (0..3 * k[0] * k[1]).map(|_| next()).collect();
                let (mut fast, mut slow) =
                    (vec![f32::NAN; 3 * oh * ow], vec![f32::NAN; 3 * oh * ow]);
                depthwise_one(&x, &wt, &mut fast, &win);
                portable(&x, &wt, &mut slow, &win);
                for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                    assert!((a - b).abs() <= 1e-5, "{win:?} [{i}]: {a} vs {b}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 20, "{checked} windows checked");
    }
}
