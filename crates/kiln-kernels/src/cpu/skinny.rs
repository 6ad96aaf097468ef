//! f32 products with few rows (m ≤ [`MAX_ROWS`]): batch-1 to batch-8 inference through a
//! Linear or a MatMul over a weight, read where it lies.
//!
//! The `gemm` crate packs its right operand at every call. With eight rows that packing moves
//! as many bytes as the product reads, and for a Linear's transposed weight it first needed a
//! copy of its own (`NtCopy`): 8×784 @ 784×512 ran at a quarter of onnxruntime's speed, whose
//! weights are packed once when the session loads. Here each output block is a handful of
//! AVX-512 accumulators fed straight from the operands, so the weight streams through once per
//! call, and the rows of the left operand stay in L1.
//!
//! Two forms of the right operand `b` (k×n), both with the left operand's rows contiguous:
//! - [`Form::Nt`]: column j of `b` contiguous (a Linear's weight `[n, k]`, transposed): each
//!   output is a dot product of two contiguous rows, in 16-lane partial sums reduced at the end;
//! - [`Form::Nn`]: rows of `b` contiguous (`x @ w` with `w` `[k, n]`): each output block is 16
//!   to 128 columns wide, accumulated row by row of `b`.

use std::ops::Range;

/// The most rows a product may have to run here.
pub(super) const MAX_ROWS: usize = 8;

/// Which of `b`'s two strides is 1 (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// Element (p, j) of `b` at `p + j·b_cs`.
    Nt,
    /// Element (p, j) of `b` at `p·b_rs + j`.
    Nn,
    /// `b` packed in panels by `packed_weights.rs`: each output block is one to three panels,
    /// accumulated row by row of the panels (chosen by the caller for a weight it packed,
    /// never by [`form`]).
    Packed,
}

/// Whether this CPU runs the kernels (AVX-512F).
pub(super) fn available() -> bool {
    super::simd::isa() == super::simd::Isa::Avx512
}

/// The form an f32 `m×k @ k×n` product with these strides runs in here, if any.
pub(super) fn form(m: usize, k: usize, a_cs: isize, b_rs: isize, b_cs: isize) -> Option<Form> {
    if m == 0 || m > MAX_ROWS || k == 0 || (a_cs != 1 && k > 1) || !available() {
        return None;
    }
    if b_rs == 1 {
        Some(Form::Nt)
    } else if b_cs == 1 {
        Some(Form::Nn)
    } else {
        None
    }
}

/// Operands and output of one product: pointers to element (0, 0) and the strides that are
/// not 1 (`a`'s row stride, `b`'s other stride, `c`'s row stride).
#[derive(Clone, Copy)]
pub(super) struct Product {
    pub m: usize,
    pub k: usize,
    pub a: *const f32,
    pub a_rs: isize,
    pub b: *const f32,
    /// `b_cs` for [`Form::Nt`], `b_rs` for [`Form::Nn`].
    pub b_stride: isize,
    pub c: *mut f32,
    pub c_rs: isize,
    /// Add the product onto `c` instead of overwriting it.
    pub accumulate: bool,
}

/// Writes output columns `cols` of `p` (all its rows).
///
/// # Safety
/// [`available`] is true, and the pointers and strides describe valid operands and an output
/// whose columns `cols` nothing else reads or writes meanwhile.
pub(super) unsafe fn run(form: Form, p: &Product, cols: Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as the caller promised.
    unsafe {
        match form {
            Form::Nt => x86::nt(p, cols),
            Form::Nn => x86::nn(p, cols),
            Form::Packed => x86::packed(p, cols),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (form, p, cols);
        unreachable!("skinny products need AVX-512")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Product;
    use crate::cpu::simd::first_lanes;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Dispatches on the row count to a kernel with `R` rows and as many columns per block as
    /// keep 8 to 24 independent accumulators in flight (an FMA's latency over its throughput,
    /// within AVX-512's 32 registers).
    macro_rules! by_rows {
        ($p:expr, $cols:expr, $block:ident, [$($r:literal => $w:literal),*]) => {
            match $p.m {
                $($r => columns::<$r, $w>($p, $cols, $block::<$r, $w>, $block::<$r, 1>),)*
                m => unreachable!("skinny product with {m} rows"),
            }
        };
    }

    /// Output columns per block of `W` units (one column for Nt, 16 for Nn).
    type Block = unsafe fn(&Product, usize, usize);

    /// Runs `wide` over blocks of `W` units of `cols`, then `narrow` over what is left.
    ///
    /// # Safety
    /// As [`super::run`].
    #[inline(always)]
    unsafe fn columns<const R: usize, const W: usize>(
        p: &Product,
        (cols, unit): (Range<usize>, usize),
        wide: Block,
        narrow: Block,
    ) {
        let mut j = cols.start;
        while j + W * unit <= cols.end {
            // SAFETY: columns j.. j + W·unit lie in `cols`.
            unsafe { wide(p, j, cols.end) };
            j += W * unit;
        }
        while j < cols.end {
            // SAFETY: the narrow block writes at most `unit` columns, clipped to `cols.end`.
            unsafe { narrow(p, j, cols.end) };
            j += unit;
        }
    }

    /// # Safety
    /// As [`super::run`], with `p` in [`super::Form::Nt`].
    pub(super) unsafe fn nt(p: &Product, cols: Range<usize>) {
        // SAFETY: as the caller promised.
        unsafe {
            // At most 16 accumulators: a dot-product block also holds its C weight vectors
            // and the row vector, and past 16 the compiler spills (8×784 @ 784×480 alone, hot:
            // C = 3 took 95 µs, C = 2 63 µs; 6 rows 69 vs 48 µs).
            by_rows!(p, (cols, 1), nt_block,
                [1 => 8, 2 => 6, 3 => 4, 4 => 4, 5 => 3, 6 => 2, 7 => 2, 8 => 2])
        }
    }

    /// # Safety
    /// As [`super::run`], with `p` in [`super::Form::Nn`].
    pub(super) unsafe fn nn(p: &Product, cols: Range<usize>) {
        // SAFETY: as the caller promised.
        unsafe {
            by_rows!(p, (cols, 16), nn_block,
                [1 => 8, 2 => 6, 3 => 4, 4 => 4, 5 => 3, 6 => 3, 7 => 3, 8 => 3])
        }
    }

    /// # Safety
    /// As [`super::run`], with `p.b` packed in panels by `packed_weights.rs` and `cols`
    /// starting on a panel.
    pub(super) unsafe fn packed(p: &Product, cols: Range<usize>) {
        const PANEL: usize = crate::cpu::packed_weights::PANEL;
        // SAFETY: as the caller promised.
        unsafe {
            match p.m {
                1 => columns::<1, 3>(p, (cols, PANEL), packed_block::<1, 9>, packed_block::<1, 3>),
                2 => columns::<2, 2>(p, (cols, PANEL), packed_block::<2, 6>, packed_block::<2, 3>),
                3 => columns::<3, 1>(p, (cols, PANEL), packed_block::<3, 3>, packed_block::<3, 3>),
                4 => columns::<4, 1>(p, (cols, PANEL), packed_block::<4, 3>, packed_block::<4, 3>),
                5 => columns::<5, 1>(p, (cols, PANEL), packed_block::<5, 3>, packed_block::<5, 3>),
                6 => columns::<6, 1>(p, (cols, PANEL), packed_block::<6, 3>, packed_block::<6, 3>),
                7 => columns::<7, 1>(p, (cols, PANEL), packed_block::<7, 3>, packed_block::<7, 3>),
                8 => columns::<8, 1>(p, (cols, PANEL), packed_block::<8, 3>, packed_block::<8, 3>),
                m => unreachable!("skinny product with {m} rows"),
            }
        }
    }

    /// Columns `j..j + 16·V` (V a multiple of 3: whole panels, `j` a panel's first column) of
    /// `R` rows, clipped to `end`, from packed panels (see [`broadcast_rows`]).
    #[target_feature(enable = "avx512f")]
    unsafe fn packed_block<const R: usize, const V: usize>(p: &Product, j: usize, end: usize) {
        const PANEL: usize = crate::cpu::packed_weights::PANEL;
        let mut b = [p.b; V];
        for (v, b) in b.iter_mut().enumerate() {
            // SAFETY: the panels from j / PANEL on hold k rows of PANEL floats each.
            *b = unsafe { p.b.add((j / PANEL + v / 3) * p.k * PANEL + (v % 3) * 16) };
        }
        // SAFETY: as the caller promised; row q of the panels lies PANEL floats after row q-1.
        unsafe { broadcast_rows::<R, V>(p, j, end, b, PANEL as isize) }
    }

    /// Columns `j..j + C` (C ≤ what is left) of `R` rows: each a dot product of a row of `a`
    /// and a column of `b`, both contiguous, in 16-lane partial sums.
    #[target_feature(enable = "avx512f")]
    unsafe fn nt_block<const R: usize, const C: usize>(p: &Product, j: usize, _end: usize) {
        let k = p.k;
        // SAFETY (whole body): rows i < R of `a` and columns j..j + C of `b` hold k floats
        // each; the caller gave this block columns j..j + C of `c`.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); C]; R];
            let mut w = [p.b; C];
            for (c, w) in w.iter_mut().enumerate() {
                *w = p.b.offset((j + c) as isize * p.b_stride);
            }
            let mut a = [p.a; R];
            for (i, a) in a.iter_mut().enumerate() {
                *a = p.a.offset(i as isize * p.a_rs);
            }
            let mut q = 0;
            while q < k {
                // Whole chunks, then the last partial one under a mask.
                let mask = first_lanes(k - q);
                let mut wv = [_mm512_setzero_ps(); C];
                for c in 0..C {
                    wv[c] = _mm512_maskz_loadu_ps(mask, w[c].add(q));
                }
                for i in 0..R {
                    let av = _mm512_maskz_loadu_ps(mask, a[i].add(q));
                    for c in 0..C {
                        acc[i][c] = _mm512_fmadd_ps(av, wv[c], acc[i][c]);
                    }
                }
                q += 16;
            }
            for (i, acc) in acc.iter().enumerate() {
                let row = p.c.offset(i as isize * p.c_rs).add(j);
                for (c, &v) in acc.iter().enumerate() {
                    let s = _mm512_reduce_add_ps(v);
                    *row.add(c) = if p.accumulate { *row.add(c) + s } else { s };
                }
            }
        }
    }

    /// Columns `j..j + 16·V` of `R` rows, clipped to `end`, from the rows of `b` in place
    /// (see [`broadcast_rows`]).
    #[target_feature(enable = "avx512f")]
    unsafe fn nn_block<const R: usize, const V: usize>(p: &Product, j: usize, end: usize) {
        let mut b = [p.b; V];
        for (v, b) in b.iter_mut().enumerate() {
            // SAFETY: row 0 of `b` holds the columns the masks let through.
            *b = unsafe { p.b.add(j + 16 * v) };
        }
        // SAFETY: as the caller promised; row q of `b` lies b_stride floats after row q-1.
        unsafe { broadcast_rows::<R, V>(p, j, end, b, p.b_stride) }
    }

    /// Columns `j..j + 16·V` of `R` rows, clipped to `end`: for each q < k, the V vectors at
    /// `b[v] + q·stride` scaled by a broadcast element q of each row of `a` and added (onto
    /// `c` when accumulating). The one loop of both right-operand layouts that are read row
    /// by row: `b` in place ([`nn_block`]) and packed panels ([`packed_block`]).
    ///
    /// # Safety
    /// AVX-512F; rows i < R of `a` hold k floats; `b[v] + q·stride` holds the lanes of vector v
    /// inside `end` for every q < k; the caller owns those columns of `c`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn broadcast_rows<const R: usize, const V: usize>(
        p: &Product,
        j: usize,
        end: usize,
        b: [*const f32; V],
        stride: isize,
    ) {
        // Lanes of each 16-column vector inside `end`.
        let mut masks = [0u16; V];
        for (v, mask) in masks.iter_mut().enumerate() {
            *mask = first_lanes(end.saturating_sub(j + 16 * v));
        }
        // SAFETY (whole body): as the caller promised; the masks clip every load and store.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            if p.accumulate {
                for (i, acc) in acc.iter_mut().enumerate() {
                    let row = p.c.offset(i as isize * p.c_rs).add(j);
                    for v in 0..V {
                        acc[v] = _mm512_maskz_loadu_ps(masks[v], row.add(16 * v));
                    }
                }
            }
            for q in 0..p.k {
                let mut bv = [_mm512_setzero_ps(); V];
                for v in 0..V {
                    bv[v] = _mm512_maskz_loadu_ps(masks[v], b[v].offset(q as isize * stride));
                }
                for (i, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*p.a.offset(i as isize * p.a_rs).add(q));
                    for v in 0..V {
                        acc[v] = _mm512_fmadd_ps(av, bv[v], acc[v]);
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                let row = p.c.offset(i as isize * p.c_rs).add(j);
                for v in 0..V {
                    _mm512_mask_storeu_ps(row.add(16 * v), masks[v], acc[v]);
                }
            }
        }
    }
}
