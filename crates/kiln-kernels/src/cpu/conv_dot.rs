//! Small output grids for [`super::conv_gemm`]: each output a dot product over the depth.
//!
//! The panel kernel computes 32 positions per tile, so a 7×7 grid (49 positions, the last
//! stage of ResNet-50: a quarter of its work) ran 64 lanes for 49, and its 512-channel 3×3 took
//! 1.55× onnxruntime's time. Here the column matrix is packed transposed (one row of depth per
//! position), and a tile of 3 output channels × 7 positions keeps 21 accumulators of 16 depths
//! each, reduced at the end: 49 positions are 7 tiles with nothing wasted.
//!
//! With `split`, the positions' packing is shared out across the pool first, then the output
//! channels.

use super::conv_gemm::{Group, Taps, NR};
use super::dst::SendPtr;
use super::scratch::{with_kept, with_vec};
use super::threads;
use rayon::prelude::*;
use std::ops::Range;

/// Grids with fewer positions than this run here…
const MAX_POSITIONS: usize = 64;
/// …when at least this deep: each output's 16-lane partial sums are reduced once per block,
/// which MobileNetV2's 160-deep 1×1 at 7×7 could not repay (0.23 ms on 2 threads, 65 GFLOPS).
const MIN_DEPTH: usize = 512;

/// Whether group `g`'s products run here rather than in 32-position panels.
pub(super) fn suits(g: &Group<'_>) -> bool {
    g.win.oh * g.win.ow < MAX_POSITIONS && g.kg >= MIN_DEPTH
}
/// Output channels per tile.
const RO: usize = 3;
/// Positions per tile.
const CJ: usize = 7;
/// Depth per packed block: 49 positions × 2048 deep is 400 KB, within L2.
const KD: usize = 2048;

/// One sample's convolution, all its groups, into `out` (`[groups · og, oh·ow]`).
pub(super) fn sample(groups: &[Group<'_>], out: &mut [f32], split: bool) {
    let Some(g0) = groups.first() else { return };
    let (og, l) = (g0.og, g0.win.oh * g0.win.ow);
    super::conv_gemm::check(groups, out);
    let nt = if split { threads::num_threads() } else { 1 };
    let base = SendPtr(out.as_mut_ptr());
    // The whole call runs inside the pool when split: one hand-off, however many depth
    // blocks and phases.
    let body = || {
        with_vec(|colt: &mut Vec<f32>| {
            with_kept(|taps: &mut Taps| {
                for (gi, g) in groups.iter().enumerate() {
                    taps.fill(&g.win, 0..l);
                    let taps = &*taps;
                    let mut k0 = 0;
                    while k0 < g.kg {
                        let kc = KD.min(g.kg - k0);
                        if colt.len() < l * kc {
                            colt.resize(l * kc, 0.0);
                        }
                        let packed = &mut colt[..l * kc];
                        let ks = k0..k0 + kc;
                        if nt > 1 {
                            let per = l.div_ceil(nt);
                            packed
                                .par_chunks_mut(per * kc)
                                .enumerate()
                                .for_each(|(p, rows)| pack(g, taps, ks.clone(), p * per, rows));
                        } else {
                            pack(g, taps, ks.clone(), 0, packed);
                        }
                        let packed = &colt[..l * kc];
                        let run = |rows: Range<usize>| {
                            // SAFETY: group gi owns rows gi·og.. of `out` (checked above);
                            // each call writes its own rows.
                            unsafe { tiles(g, packed, ks.clone(), rows, base.at(gi * og * l)) }
                        };
                        if nt > 1 {
                            let height = og.div_ceil(RO).div_ceil(nt) * RO;
                            (0..og.div_ceil(height))
                                .into_par_iter()
                                .for_each(|p| run(p * height..((p + 1) * height).min(og)));
                        } else {
                            run(0..og);
                        }
                        k0 += kc;
                    }
                }
            })
        })
    };
    if nt > 1 {
        threads::install(body);
    } else {
        body();
    }
}

/// Column-matrix depths `ks` of positions `j0..` (one row of `ks.len()` per position) into
/// `dst`, zero where the window lies in the padding.
fn pack(g: &Group<'_>, taps: &Taps, ks: Range<usize>, j0: usize, dst: &mut [f32]) {
    let ntaps = g.win.k[0] * g.win.k[1];
    let panels = taps.masks.len() / ntaps;
    let plane = g.win.h * g.win.w;
    let kc = ks.len();
    for (jj, row) in dst.chunks_exact_mut(kc).enumerate() {
        let j = j0 + jj;
        let (word, bit) = (j / NR, j % NR);
        let start = taps.starts[j] as isize;
        let (mut c, mut t) = (ks.start / ntaps, ks.start % ntaps);
        for v in row.iter_mut() {
            let inside = (taps.masks[t * panels + word] >> bit) & 1 != 0;
            *v = if inside {
                g.x[c * plane + (start + taps.shifts[t]) as usize]
            } else {
                0.0
            };
            t += 1;
            if t == ntaps {
                (c, t) = (c + 1, 0);
            }
        }
    }
}

/// Output channels `rows`, all positions, of depths `ks` (packed transposed in `packed`).
///
/// # Safety
/// `out` points at group `g`'s `og × l` output, whose `rows` this call alone writes.
unsafe fn tiles(
    g: &Group<'_>,
    packed: &[f32],
    ks: Range<usize>,
    rows: Range<usize>,
    out: *mut f32,
) {
    let l = g.win.oh * g.win.ow;
    let kc = ks.len();
    assert!(packed.len() >= l * kc && g.w.len() >= g.og * g.kg);
    let mut o0 = rows.start;
    while o0 < rows.end {
        let ro = RO.min(rows.end - o0);
        let mut j0 = 0;
        while j0 < l {
            let cj = CJ.min(l - j0);
            let tile = Tile {
                kc,
                a: g.w[o0 * g.kg + ks.start..].as_ptr(),
                lda: g.kg,
                rows: ro,
                b: packed[j0 * kc..].as_ptr(),
                cols: cj,
                // SAFETY: rows o0.. and positions j0.. lie inside the group's output.
                c: unsafe { out.add(o0 * l + j0) },
                ldc: l,
                first: ks.start == 0,
                bias: g.bias.map(|b| b[o0..].as_ptr()),
            };
            // SAFETY: `available` (the caller's dispatch); operands as described.
            unsafe { x86::tile(&tile) };
            j0 += cj;
        }
        o0 += ro;
    }
}

/// `rows × cols` outputs: weight rows `a[i·lda ..]` dotted with packed positions
/// `b[j·kc ..]`, `kc` deep; added onto `c` unless `first` (then onto the bias).
struct Tile {
    kc: usize,
    a: *const f32,
    lda: usize,
    rows: usize,
    b: *const f32,
    cols: usize,
    c: *mut f32,
    ldc: usize,
    first: bool,
    bias: Option<*const f32>,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Tile, CJ, RO};
    use crate::cpu::simd::first_lanes;
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512F; `t` describes valid operands and an output tile.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(t: &Tile) {
        // SAFETY (whole body): rows and columns past the tile repeat its last one (read,
        // never stored); the loads stay within `kc` floats of each row (masked at the end).
        unsafe {
            let mut a = [t.a; RO];
            for (i, a) in a.iter_mut().enumerate() {
                *a = t.a.add(i.min(t.rows - 1) * t.lda);
            }
            let mut b = [t.b; CJ];
            for (j, b) in b.iter_mut().enumerate() {
                *b = t.b.add(j.min(t.cols - 1) * t.kc);
            }
            let mut acc = [[_mm512_setzero_ps(); CJ]; RO];
            let mut q = 0;
            while q < t.kc {
                let m = first_lanes(t.kc - q);
                let mut av = [_mm512_setzero_ps(); RO];
                for i in 0..RO {
                    av[i] = _mm512_maskz_loadu_ps(m, a[i].add(q));
                }
                for j in 0..CJ {
                    let bv = _mm512_maskz_loadu_ps(m, b[j].add(q));
                    for i in 0..RO {
                        acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
                    }
                }
                q += 16;
            }
            for (i, acc) in acc.iter().enumerate().take(t.rows) {
                let row = t.c.add(i * t.ldc);
                let add = match (t.first, t.bias) {
                    (true, Some(bias)) => *bias.add(i),
                    _ => 0.0,
                };
                for (j, &v) in acc.iter().enumerate().take(t.cols) {
                    let s = _mm512_reduce_add_ps(v);
                    *row.add(j) = if t.first { s + add } else { *row.add(j) + s };
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    pub(super) unsafe fn tile(_: &super::Tile) {
        unreachable!("conv_dot needs AVX-512")
    }
}
