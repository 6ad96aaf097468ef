//! f32 convolution forward as an implicit GEMM on AVX-512: `out[o, l] = Σ_k w[o, k] ·
//! col[k, l]` where the column matrix is never built. Each thread packs the columns it needs
//! straight from the image into 32-position panels (im2col and packing in one pass, where the
//! `gemm` crate path first wrote the whole column matrix on one thread and then packed it
//! again), multiplies them by 12-row panels of the weight, and stores each output tile once
//! with the bias added: the sample's output is written once, in place.
//!
//! Batch 1 splits one sample's output positions (or, on small grids, its output channels)
//! across the pool, so the packing runs in parallel too; larger batches give each thread whole
//! samples. On the 2-core AVX-512 machine the `gemm` path ran ResNet-50's 256-channel 3×3 at
//! 14×14 (batch 1, 2 threads) in 2.34 ms, 0.37 ms of it a serial im2col.

use super::conv::Window;
use super::dst::SendPtr;
use super::scratch::{with_kept, with_vec};
use super::threads;
use rayon::prelude::*;
use std::ops::Range;

/// Output channels per tile (rows of the weight panel).
const MR: usize = 12;
/// Output positions per tile: two 16-lane vectors.
pub(super) const NR: usize = 32;
/// Depth of one packed block: a 12×256 weight panel (12 KB) stays in L1.
const KC: usize = 256;
/// Positions of one packed block: 256 deep × 256 wide is 256 KB, within L2.
const NC: usize = 8 * NR;

/// Row stride of the copied weight rows: a block's depth plus one cache line.
const A_STRIDE: usize = KC + 16;

/// Whether this CPU runs these kernels (AVX-512F).
pub(super) fn available() -> bool {
    super::simd::isa() == super::simd::Isa::Avx512
}

/// One group of one convolution: the input channels it reads (`win.c` of them, from `x`), its
/// weights `[og, kg]` and bias.
#[derive(Clone, Copy)]
pub(super) struct Group<'a> {
    pub x: &'a [f32],
    pub w: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub win: Window,
    /// Output channels.
    pub og: usize,
    /// Depth: `win.c · kh · kw`.
    pub kg: usize,
}

impl Group<'_> {
    /// Output positions `oh · ow`.
    fn positions(&self) -> usize {
        self.win.oh * self.win.ow
    }
}

/// One sample's convolution, all its groups: `out` is `[groups · og, oh·ow]`; with `split`,
/// the work is spread over the pool.
pub(super) fn sample(groups: &[Group<'_>], out: &mut [f32], split: bool) {
    let Some(g0) = groups.first() else { return };
    let (og, l) = (g0.og, g0.positions());
    check(groups, out);
    let base = SendPtr(out.as_mut_ptr());
    let nt = threads::num_threads();
    if !split || nt < 2 {
        with_vec(|pack: &mut Vec<f32>| {
            for (gi, g) in groups.iter().enumerate() {
                // SAFETY: group gi owns rows gi·og.. of `out`, checked above to fit.
                unsafe { block(g, base.at(gi * og * l), 0..og, 0..l, pack) };
            }
        });
        return;
    }
    // Chunks of positions or of output channels, whichever leaves the busiest thread the
    // fewest tiles (ties to positions: splitting channels packs every column on each
    // thread). 1×1 at 14×14 has 7 panels of positions: 4 + 3 on two threads, where its
    // 1024 channels split evenly.
    let (panels, row_tiles) = (l.div_ceil(NR), og.div_ceil(MR));
    let by_positions = panels.div_ceil(nt) * row_tiles <= row_tiles.div_ceil(nt) * panels;
    let (width, height) = if by_positions {
        (panels.div_ceil(nt) * NR, og)
    } else {
        (l, row_tiles.div_ceil(nt) * MR)
    };
    // Chunk p: rows and columns of every group's output.
    let chunk = |p: usize| {
        let (r, c) = if by_positions { (0, p) } else { (p, 0) };
        (
            r * height..((r + 1) * height).min(og),
            c * width..((c + 1) * width).min(l),
        )
    };
    let count = if by_positions {
        l.div_ceil(width)
    } else {
        og.div_ceil(height)
    };
    threads::install(|| {
        (0..count)
            .into_par_iter()
            .map(chunk)
            .for_each(|(rows, cols)| {
                with_vec(|pack: &mut Vec<f32>| {
                    for (gi, g) in groups.iter().enumerate() {
                        // SAFETY: chunks are disjoint tiles of each group's rows gi·og.. of `out`.
                        unsafe { block(g, base.at(gi * og * l), rows.clone(), cols.clone(), pack) };
                    }
                })
            })
    });
}

/// Panics unless `out` is `groups`' output and each group's operands hold what its geometry
/// reads (the kernels read through raw pointers).
pub(super) fn check(groups: &[Group<'_>], out: &[f32]) {
    let Some(g0) = groups.first() else { return };
    let (og, l) = (g0.og, g0.positions());
    assert_eq!(out.len(), groups.len() * og * l, "conv2d: output length");
    for g in groups {
        assert!(
            g.og == og && g.positions() == l,
            "conv2d: groups of different shapes"
        );
        assert!(
            g.w.len() >= g.og * g.kg && g.bias.is_none_or(|b| b.len() >= g.og),
            "conv2d: weight or bias too short"
        );
        assert!(
            g.x.len() >= g.win.c * g.win.h * g.win.w,
            "conv2d: input too short"
        );
    }
}

/// Output channels `rows` × positions `cols` of group `g` into `out` (`[og, l]` row-major).
///
/// # Safety
/// `out` points at `g.og · l` floats of which this call alone writes the tile; [`available`].
unsafe fn block(
    g: &Group<'_>,
    out: *mut f32,
    rows: Range<usize>,
    cols: Range<usize>,
    pack: &mut Vec<f32>,
) {
    let (l, kg) = (g.positions(), g.kg);
    let need = KC * NC + MR * A_STRIDE;
    if pack.len() < need {
        pack.resize(need, 0.0);
    }
    let (bpack, apack) = pack.split_at_mut(KC * NC);
    with_kept(|taps: &mut Taps| {
        let mut j0 = cols.start;
        while j0 < cols.end {
            let nc = NC.min(cols.end - j0);
            let panels = nc.div_ceil(NR);
            debug_assert!(panels <= NC / NR);
            taps.fill(&g.win, j0..j0 + nc);
            let mut k0 = 0;
            while k0 < kg {
                let kc = KC.min(kg - k0);
                let bpack = &mut bpack[..panels * kc * NR];
                // SAFETY: `available`; `bpack` holds the block's panels.
                unsafe { x86::pack_columns(g, k0..k0 + kc, j0..j0 + nc, bpack, taps) };
                let mut o0 = rows.start;
                while o0 < rows.end {
                    let mr = MR.min(rows.end - o0);
                    // The tile's weight rows are read in place unless rows 2 KB apart or a
                    // multiple of that (depth 512, 1024, …) would share one or two L1 sets and
                    // evict each other (a 1024-deep 1×1 ran at 60% of the gemm crate's speed):
                    // those are copied to rows at a stride off the 4 KB grid first.
                    let (a, lda) = if kg % 512 == 0 {
                        for i in 0..mr {
                            let row = &g.w[(o0 + i) * kg + k0..(o0 + i) * kg + k0 + kc];
                            apack[i * A_STRIDE..i * A_STRIDE + kc].copy_from_slice(row);
                        }
                        (apack.as_ptr(), A_STRIDE)
                    } else {
                        (g.w[o0 * kg + k0..].as_ptr(), kg)
                    };
                    for p in 0..panels {
                        let tile = Tile {
                            kc,
                            a,
                            lda,
                            b: bpack[p * kc * NR..].as_ptr(),
                            c: unsafe { out.add(o0 * l + j0 + p * NR) },
                            ldc: l,
                            rows: mr,
                            lanes: NR.min(nc - p * NR),
                            first: k0 == 0,
                            bias: g.bias.map(|b| b[o0..].as_ptr()),
                        };
                        // SAFETY: the tile lies in rows o0..o0+mr, columns j0+p·NR.. of `out`
                        // (clipped to `lanes`); `a` holds `rows` weight rows of kc floats `lda` apart and
                        // the panel kc·NR packed floats.
                        unsafe { x86::tile(&tile) };
                    }
                    o0 += mr;
                }
                k0 += kc;
            }
            j0 += nc;
        }
    })
}

/// Per block of positions: each position's start in the plane, each tap's shift, and each
/// (tap, panel)'s mask of positions whose tap lies inside the input (see
/// [`x86::pack_columns`]). Kept from call to call ([`with_kept`]), so they allocate only while
/// they grow.
#[derive(Default)]
pub(super) struct Taps {
    /// `oy·sh·w + ox·sw` per position of the block, padded to whole panels.
    pub(super) starts: Vec<i32>,
    /// Per tap `(ki, kj)`: `(ki·dh − ph)·w + kj·dw − pw`.
    pub(super) shifts: Vec<isize>,
    /// Bit `lane` of `masks[t · panels + p]`: position `p·NR + lane` reads inside the input
    /// at tap `t`.
    pub(super) masks: Vec<u32>,
    /// The same per kernel row, then per kernel column (`masks` is their AND).
    row_masks: Vec<u32>,
}

impl Taps {
    /// For positions `js`: a tap's mask is the AND of its kernel row's mask (the input row
    /// it reads exists) and its kernel column's, so the work is `(kh + kw)` per position.
    pub(super) fn fill(&mut self, win: &Window, js: Range<usize>) {
        let panels = js.len().div_ceil(NR);
        let (kh, kw) = (win.k[0], win.k[1]);
        self.starts.clear();
        self.starts.resize(panels * NR, 0);
        self.row_masks.clear();
        self.row_masks.resize((kh + kw) * panels, 0);
        let (rows, cols) = self.row_masks.split_at_mut(kh * panels);
        let (mut oy, mut ox) = (js.start / win.ow, js.start % win.ow);
        for jj in 0..js.len() {
            let (y, x) = (oy * win.s[0], ox * win.s[1]);
            // Fits: `implicit_gemm` admits planes whose indices fit in i32.
            self.starts[jj] = (y * win.w + x) as i32;
            let bit = 1u32 << (jj % NR);
            for ki in 0..kh {
                let iy = (y + ki * win.d[0]).wrapping_sub(win.p[0]);
                if iy < win.h {
                    rows[ki * panels + jj / NR] |= bit;
                }
            }
            for kj in 0..kw {
                let ix = (x + kj * win.d[1]).wrapping_sub(win.p[1]);
                if ix < win.w {
                    cols[kj * panels + jj / NR] |= bit;
                }
            }
            ox += 1;
            if ox == win.ow {
                (oy, ox) = (oy + 1, 0);
            }
        }
        self.shifts.clear();
        self.masks.clear();
        for ki in 0..kh {
            for kj in 0..kw {
                let dy = (ki * win.d[0]) as isize - win.p[0] as isize;
                let dx = (kj * win.d[1]) as isize - win.p[1] as isize;
                self.shifts.push(dy * win.w as isize + dx);
                self.masks
                    .extend((0..panels).map(|p| rows[ki * panels + p] & cols[kj * panels + p]));
            }
        }
    }
}

/// Whether `win`'s plane indices fit the gathers' i32 offsets.
pub(super) fn fits_i32(win: &Window) -> bool {
    let reach = (win.h + win.p[0]) * win.s[0].max(1) * (win.w + win.p[1]) * win.s[1].max(1)
        + win.k[0] * win.d[0] * win.w
        + win.k[1] * win.d[1];
    reach < i32::MAX as usize / 2
}

/// One output tile: `rows` × `lanes` of `c` (row stride `ldc`) from `rows` weight rows
/// `a[i·lda + q]` read in place (12 streams that stay in L1 across a block's panels; packing
/// them cost as much as the products on 1×1 convolutions) and a packed column panel
/// `b[q·NR + lane]`, `kc` deep.
struct Tile {
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    lanes: usize,
    /// The first depth block: overwrite `c` (adding the bias) instead of adding onto it.
    first: bool,
    bias: Option<*const f32>,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Tile, MR, NR};
    use crate::cpu::simd::first_lanes;
    use std::arch::x86_64::*;

    /// Column-matrix rows `ks`, positions `js` of group `g` into 32-wide panels:
    /// `dst[p·kc·NR + q·NR + lane]` is row `ks.start + q` at position `js.start + p·NR +
    /// lane`, zero where the window lies in the padding or past `js`.
    ///
    /// Row `(c, ki, kj)` at position `(oy, ox)` reads channel c's plane at `start(oy, ox) +
    /// shift(ki, kj)`, where `start = oy·sh·w + ox·sw` and `shift = (ki·dh − ph)·w + kj·dw −
    /// pw`: the starts of a panel and each tap's mask of positions inside the input are
    /// computed once per block of positions (`taps`), and each row is then two masked loads — plain
    /// ones where the starts are consecutive (stride 1 with rows as wide as the input, "same"
    /// and 1×1 convolutions), gathers otherwise.
    ///
    /// # Safety
    /// AVX-512F; `dst` holds `js.len().div_ceil(NR) · ks.len() · NR` floats.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pack_columns(
        g: &super::Group<'_>,
        ks: std::ops::Range<usize>,
        js: std::ops::Range<usize>,
        dst: &mut [f32],
        taps: &super::Taps,
    ) {
        let win = &g.win;
        let (kh, kw) = (win.k[0], win.k[1]);
        let ntaps = kh * kw;
        let panels = js.len().div_ceil(NR);
        let kc = ks.len();
        assert!(dst.len() >= panels * kc * NR, "conv2d: pack too short");
        let plane = win.h * win.w;
        let contiguous = win.s == [1, 1] && win.ow == win.w;
        let x = g.x.as_ptr();
        // SAFETY (whole body): a masked load or gather touches only lanes whose tap lies
        // inside the plane of channel c (the masks say so), which lies inside `g.x`; stores
        // stay in `dst` (asserted above).
        unsafe {
            for (q, k) in ks.enumerate() {
                let (c, t) = (k / ntaps, k % ntaps);
                let row = x.wrapping_add(c * plane).wrapping_offset(taps.shifts[t]);
                for p in 0..panels {
                    let m = taps.masks[t * panels + p];
                    let (m0, m1) = (m as __mmask16, (m >> 16) as __mmask16);
                    let (v0, v1) = if contiguous {
                        let at = row.wrapping_add(js.start + p * NR);
                        (
                            _mm512_maskz_loadu_ps(m0, at),
                            _mm512_maskz_loadu_ps(m1, at.wrapping_add(16)),
                        )
                    } else {
                        let idx = taps.starts.as_ptr().add(p * NR) as *const __m512i;
                        let zero = _mm512_setzero_ps();
                        (
                            _mm512_mask_i32gather_ps::<4>(zero, m0, _mm512_loadu_si512(idx), row),
                            _mm512_mask_i32gather_ps::<4>(
                                zero,
                                m1,
                                _mm512_loadu_si512(idx.add(1)),
                                row,
                            ),
                        )
                    };
                    let o = dst.as_mut_ptr().add(p * kc * NR + q * NR);
                    _mm512_storeu_ps(o, v0);
                    _mm512_storeu_ps(o.add(16), v1);
                }
            }
        }
    }

    /// # Safety
    /// AVX-512F; `t` describes valid packs and an output tile.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(t: &Tile) {
        // SAFETY (whole body): `a` holds `rows` rows of kc floats `lda` apart, `b` kc·NR floats;
        // the stores and loads of `c` stay within `rows` rows and `lanes` lanes.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 2]; MR];
            // Rows past `rows` repeat the last one (computed, never stored).
            let mut a = [t.a; MR];
            for (i, a) in a.iter_mut().enumerate() {
                *a = t.a.add(i.min(t.rows - 1) * t.lda);
            }
            let mut b = t.b;
            for q in 0..t.kc {
                let b0 = _mm512_loadu_ps(b);
                let b1 = _mm512_loadu_ps(b.add(16));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a[i].add(q));
                    acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
                }
                b = b.add(NR);
            }
            let m = [
                first_lanes(t.lanes),
                first_lanes(t.lanes.saturating_sub(16)),
            ];
            for (i, acc) in acc.iter().enumerate().take(t.rows) {
                let row = t.c.add(i * t.ldc);
                for v in 0..2 {
                    if m[v] == 0 {
                        continue;
                    }
                    let add = if t.first {
                        match t.bias {
                            Some(bias) => _mm512_set1_ps(*bias.add(i)),
                            None => _mm512_setzero_ps(),
                        }
                    } else {
                        _mm512_maskz_loadu_ps(m[v], row.add(16 * v))
                    };
                    _mm512_mask_storeu_ps(row.add(16 * v), m[v], _mm512_add_ps(acc[v], add));
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    pub(super) unsafe fn tile(_: &super::Tile) {
        unreachable!("conv_gemm needs AVX-512")
    }

    pub(super) unsafe fn pack_columns(
        _: &super::Group<'_>,
        _: std::ops::Range<usize>,
        _: std::ops::Range<usize>,
        _: &mut [f32],
        _: &super::Taps,
    ) {
        unreachable!("conv_gemm needs AVX-512")
    }
}
