//! Dense matrix transposes for kernels that copy an operand to the layout the `gemm` crate
//! runs fastest (matmul's transposed operands, attention's `kᵀ`). Four-byte elements (f32,
//! i32) move through an AVX2 8×8 register transpose, picked at run time; everything else
//! through cache-sized scalar tiles. Large copies split their output rows over the pool.

use super::threads;

/// Elements from which a transpose runs on every pool thread.
const PARALLEL_ELEMS: usize = 1 << 16;

/// Copies the `k×n` matrix at `src` (element `(p, j)` at `p + j·cs`, i.e. column-major with
/// column stride `cs`) into `dst` row-major (`dst[p·n + j]`). Runs on the calling thread.
pub(crate) fn transpose_into<T: Copy + Send + Sync>(
    src: &[T],
    cs: usize,
    k: usize,
    n: usize,
    dst: &mut [T],
) {
    transpose_rows(src, cs, 0..k, n, &mut dst[..k * n]);
}

/// [`transpose_into`] with the output's rows split over the pool's threads when large, in
/// blocks of 8 rows so every block keeps the vector path. A transpose pays for the hand-off
/// from half the size an elementwise map does (the 128×784 copy of a Linear's input runs
/// 10% faster split than on one thread).
pub(crate) fn transpose_par<T: Copy + Send + Sync>(
    src: &[T],
    cs: usize,
    k: usize,
    n: usize,
    dst: &mut [T],
) {
    let threads = threads::num_threads();
    if k * n < PARALLEL_ELEMS || threads < 2 {
        return transpose_into(src, cs, k, n, dst);
    }
    use rayon::prelude::*;
    let rows = k.div_ceil(threads).div_ceil(8) * 8;
    threads::install(|| {
        dst[..k * n]
            .par_chunks_mut(rows * n)
            .enumerate()
            .for_each(|(i, piece)| {
                let p0 = i * rows;
                transpose_rows(src, cs, p0..p0 + piece.len() / n, n, piece)
            })
    });
}

/// Rows `rows` of the transpose into `dst` (which holds just those rows).
fn transpose_rows<T: Copy + Send + Sync>(
    src: &[T],
    cs: usize,
    rows: std::ops::Range<usize>,
    n: usize,
    dst: &mut [T],
) {
    if rows.is_empty() || n == 0 {
        return;
    }
    assert!(
        src.len() >= (n - 1) * cs + rows.end && dst.len() >= rows.len() * n,
        "transpose: operand too short"
    );
    #[cfg(target_arch = "x86_64")]
    if std::mem::size_of::<T>() == 4 && super::simd::isa() != super::simd::Isa::Baseline {
        // SAFETY: AVX2 is present (every `Isa` above the baseline has it); four-byte elements are moved as f32 bit patterns (no
        // arithmetic); the bounds were checked above.
        unsafe {
            x86::transpose_rows_4byte(src.as_ptr().cast(), cs, rows, n, dst.as_mut_ptr().cast())
        };
        return;
    }
    // Cache tiles of TILE×TILE elements, scalar moves.
    const TILE: usize = 16;
    for j0 in (0..n).step_by(TILE) {
        let j1 = (j0 + TILE).min(n);
        for p0 in rows.clone().step_by(TILE) {
            let p1 = (p0 + TILE).min(rows.end);
            for j in j0..j1 {
                let col = &src[j * cs..];
                for p in p0..p1 {
                    dst[(p - rows.start) * n + j] = col[p];
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Transposes the 8×8 block whose rows start `ss` apart at `src` into rows `ds` apart
    /// at `dst`.
    #[target_feature(enable = "avx2")]
    unsafe fn block8(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * ss)));
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let rows = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        for (i, row) in rows.into_iter().enumerate() {
            _mm256_storeu_ps(dst.add(i * ds), row);
        }
    }

    /// Rows `rows` of the transpose of the matrix at `src` (element `(p, j)` at `p + j·cs`,
    /// `n` columns) into `dst` (`dst[(p − rows.start)·n + j]`), in 32×32 tiles of 8×8 blocks.
    ///
    /// # Safety
    /// AVX2 is available; `src` holds `(n − 1)·cs + rows.end` elements and `dst`
    /// `rows.len()·n`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose_rows_4byte(
        src: *const f32,
        cs: usize,
        rows: std::ops::Range<usize>,
        n: usize,
        dst: *mut f32,
    ) {
        const TILE: usize = 32;
        let r0 = rows.start;
        let one = |p: usize, j: usize| *dst.add((p - r0) * n + j) = *src.add(j * cs + p);
        for j0 in (0..n).step_by(TILE) {
            let j1 = (j0 + TILE).min(n);
            for p0 in rows.clone().step_by(TILE) {
                let p1 = (p0 + TILE).min(rows.end);
                let mut j = j0;
                while j + 8 <= j1 {
                    let mut p = p0;
                    while p + 8 <= p1 {
                        block8(src.add(j * cs + p), cs, dst.add((p - r0) * n + j), n);
                        p += 8;
                    }
                    for pp in p..p1 {
                        (j..j + 8).for_each(|jj| one(pp, jj));
                    }
                    j += 8;
                }
                for jj in j..j1 {
                    (p0..p1).for_each(|pp| one(pp, jj));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T>(k: usize, n: usize, cs: usize, make: impl Fn(usize) -> T)
    where
        T: Copy + Send + Sync + PartialEq + std::fmt::Debug,
    {
        let src: Vec<T> = (0..n * cs).map(&make).collect();
        let mut a = vec![make(0); k * n];
        let mut b = vec![make(0); k * n];
        transpose_into(&src, cs, k, n, &mut a);
        transpose_par(&src, cs, k, n, &mut b);
        for p in 0..k {
            for j in 0..n {
                assert_eq!(a[p * n + j], src[p + j * cs], "({p}, {j}) of {k}×{n}");
            }
        }
        assert_eq!(a, b, "parallel transpose of {k}×{n}");
    }

    #[test]
    fn transposes_match_indexing_for_every_element_size_and_ragged_edges() {
        for (k, n, cs) in [
            (37, 21, 40),
            (8, 8, 8),
            (64, 48, 64),
            (300, 260, 301),
            (600, 300, 601),
            (1, 9, 1),
        ] {
            check::<f32>(k, n, cs, |i| i as f32);
            check::<i32>(k, n, cs, |i| i as i32);
            check::<f64>(k, n, cs, |i| i as f64);
            check::<i64>(k, n, cs, |i| i as i64);
        }
    }
}
