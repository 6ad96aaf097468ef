//! Fused scaled dot-product attention and its gradient, one (batch, head) slice at a time:
//! the `T × T` scores and probabilities live in a per-task scratch buffer (64 KiB for T = 128,
//! in L2) instead of whole-tensor scores, masked scores and probabilities in memory, and the
//! backward recomputes them rather than keeping them from the forward pass. Causal heads run
//! their products in blocks of query rows that skip the masked keys.

use super::dst::{Dst, SendPtr};
use super::num::Num;
use super::threads;
use crate::dtype::{DType, Element};
use crate::operand::Operand;
use crate::storage::CpuStorage;
use rayon::prelude::*;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicBool, Ordering};

/// Element types with attention kernels.
trait Elem: Num + num_traits::Float {
    fn exp_row(x: &mut [Self]);
}
impl Elem for f32 {
    fn exp_row(x: &mut [f32]) {
        super::simd::exp_inplace(x)
    }
}
impl Elem for f64 {
    fn exp_row(x: &mut [f64]) {
        x.iter_mut().for_each(|v| *v = v.exp());
    }
}

/// A strided `rows × cols` matrix inside a storage slice.
#[derive(Clone, Copy)]
struct Mat<T> {
    ptr: *const T,
    rs: isize,
    cs: isize,
}
// SAFETY: read-only views into storages that outlive the parallel loop.
unsafe impl<T> Send for Mat<T> {}
unsafe impl<T> Sync for Mat<T> {}

impl<T> Mat<T> {
    /// The view starting `r` rows further down.
    fn skip_rows(self, r: usize) -> Mat<T> {
        Mat {
            // SAFETY (of later reads): callers pass a row inside the matrix.
            ptr: self.ptr.wrapping_offset(r as isize * self.rs),
            ..self
        }
    }

    /// The transposed view.
    fn t(self) -> Mat<T> {
        Mat {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// A dense row-major `rows × cols` matrix.
fn dense<T>(p: &[T], cols: usize) -> Mat<T> {
    Mat {
        ptr: p.as_ptr(),
        rs: cols as isize,
        cs: 1,
    }
}

/// `dst (m × n, row stride dst_rs) = alpha · a (m × k) @ b (k × n)`, on this thread.
#[allow(clippy::too_many_arguments)]
fn gemm<T: Num>(
    dst: &mut [T],
    dst_rs: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<T>,
    b: Mat<T>,
    alpha: T,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst.len() >= (m - 1) * dst_rs + n,
        "attention: product block out of bounds"
    );
    let _in_gemm = super::matmul::GemmCall::enter();
    // SAFETY: `dst` holds the m×n block (checked above); `a` and `b` describe matrices inside
    // live storages (offsets and strides from validated layouts, or dense scratch of the right
    // size).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            false,
            a.ptr,
            a.cs,
            a.rs,
            b.ptr,
            b.cs,
            b.rs,
            T::from_f64(0.0),
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Query rows per block of a causal head: a block reads only the keys up to its last row, so
/// the products skip the masked upper triangle a block at a time (at T = 128, 5/8 of the full
/// products' work).
const CAUSAL_BLOCK: usize = 32;

/// The row blocks `(r0, r1, cols)` of a head's `T × T` scores: rows `r0..r1` have live
/// columns `0..cols` (the keys up to the block's last row when causal; one block of all `T`
/// otherwise). The same blocks, read as column blocks `c0..c1`, have live rows from
/// [`first_live_row`] on.
fn blocks(h: Head) -> impl Iterator<Item = (usize, usize, usize)> {
    let step = if h.causal { CAUSAL_BLOCK } else { h.t.max(1) };
    (0..h.t).step_by(step).map(move |r0| {
        let r1 = (r0 + step).min(h.t);
        (r0, r1, if h.causal { r1 } else { h.t })
    })
}

/// The first row of the scores with a live entry in the column block starting at `c0`.
fn first_live_row(h: Head, c0: usize) -> usize {
    if h.causal {
        c0
    } else {
        0
    }
}

/// One head's geometry: `T` query/key rows of `D` features.
#[derive(Clone, Copy)]
struct Head {
    t: usize,
    d: usize,
    scale: f64,
    causal: bool,
}

/// The probabilities `P = softmax(scale · q kᵀ)` (causal: keys after the query masked out)
/// into `p` (`T × T`, dense), given `kt = kᵀ` (`D × T`). Only each row block's live columns
/// are written (with zeros where masked inside them); the rest of `p` is never read.
fn probabilities<T: Elem>(h: Head, q: Mat<T>, kt: Mat<T>, p: &mut [T]) {
    let t = h.t;
    for (r0, r1, cols) in blocks(h) {
        let rows = &mut p[r0 * t..r1 * t];
        gemm(
            rows,
            t,
            r1 - r0,
            cols,
            h.d,
            q.skip_rows(r0),
            kt,
            T::from_f64(h.scale),
        );
        super::simd::widest!(softmax_rows(h, r0, cols, rows))
    }
}

/// The first `cols` entries of each row of `p` (rows `r0..` of the `T × T` scores) replaced by
/// their softmax (causal: the keys after the row's query zeroed).
#[inline(always)]
fn softmax_rows<T: Elem>(h: Head, r0: usize, cols: usize, p: &mut [T]) {
    for (i, row) in p.chunks_exact_mut(h.t).enumerate() {
        let live = if h.causal { r0 + i + 1 } else { cols };
        let (row, masked) = row[..cols].split_at_mut(live);
        let max = row.iter().fold(
            T::neg_infinity(),
            |m, &v| if v > m || v.is_nan() { v } else { m },
        );
        row.iter_mut().for_each(|v| *v = *v - max);
        T::exp_row(row);
        let sum = T::from_f64(super::simd::sum_f64(row, |v| Element::to_f64(v)));
        row.iter_mut().for_each(|v| *v = *v / sum);
        masked.iter_mut().for_each(|v| *v = T::from_f64(0.0));
    }
}

/// `ds = p ⊙ (ds − rowsum(ds ⊙ p))` over the first `cols` entries of each row (of `t`): the
/// softmax backward, with `ds` holding the gradient with respect to the probabilities on entry.
#[inline(always)]
fn softmax_backward_rows<T: Elem>(ds: &mut [T], p: &[T], t: usize, cols: usize) {
    for (dp, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
        let (dp, pr) = (&mut dp[..cols], &pr[..cols]);
        let dot = T::from_f64(super::simd::sum_f64(
            &dp.iter()
                .zip(pr)
                .map(|(&a, &b)| a * b)
                .collect::<smallvec::SmallVec<[T; 256]>>(),
            |v| Element::to_f64(v),
        ));
        for (x, &pv) in dp.iter_mut().zip(pr) {
            *x = pv * (*x - dot);
        }
    }
}

/// Storage offset of head `i` (row-major over the batch dims) of a `[.., T, D]` layout.
fn head_offset(l: &crate::layout::Layout, mut i: usize) -> usize {
    let r = l.rank();
    let mut off = l.offset;
    for dim in (0..r - 2).rev() {
        off += (i % l.shape[dim]) * l.strides[dim];
        i /= l.shape[dim];
    }
    off
}

/// Runs `f(q, k, v, g, outputs, scratch)` for every head in parallel, with the head's views
/// of the inputs (the 4th is the last input again when there are 3), its slice of each of the
/// `outputs` results (laid out one after another, each `heads · per_head` long) and a
/// scratch of `scratch_len` elements.
fn for_each_head<T: Elem>(
    inputs: &[Operand<'_>],
    outputs: usize,
    per_head: usize,
    scratch_len: usize,
    dst: &mut Dst,
    f: impl Fn([Mat<T>; 4], &mut [&mut [T]; 3], &mut [T]) + Sync,
) -> Vec<T> {
    let x = inputs[0].layout();
    let r = x.rank();
    let heads: usize = x.shape[..r - 2].iter().product();
    let mut out = dst.filled(outputs * heads * per_head, T::from_f64(0.0));
    if per_head == 0 || heads == 0 {
        return out;
    }
    let guards: smallvec::SmallVec<[_; 4]> = inputs.iter().map(|t| t.storage().read()).collect();
    let bases: smallvec::SmallVec<[SendPtr<T>; 4]> = guards
        .iter()
        .map(|g| SendPtr(T::slice(g).expect("attention: dtype").as_ptr() as *mut T))
        .collect();
    let base = SendPtr(out.as_mut_ptr());
    let run = |i: usize, scratch: &mut [T]| {
        let mats: [Mat<T>; 4] = std::array::from_fn(|j| {
            let j = j.min(inputs.len() - 1);
            let l = inputs[j].layout();
            Mat {
                // SAFETY: the offset is inside the storage (validated layout).
                ptr: unsafe { bases[j].0.add(head_offset(l, i)) as *const T },
                rs: l.strides[r - 2] as isize,
                cs: l.strides[r - 1] as isize,
            }
        });
        let b = base;
        let mut outs: [&mut [T]; 3] = std::array::from_fn(|o| {
            if o >= outputs {
                return &mut [][..];
            }
            // SAFETY: head i's slice of output o lies inside `out`; tasks touch disjoint
            // slices.
            unsafe { std::slice::from_raw_parts_mut(b.0.add((o * heads + i) * per_head), per_head) }
        });
        f(mats, &mut outs, scratch);
    };
    // One scratch region per pool thread, all in one vector taken on this thread: a later
    // call of the same size allocates nothing, whichever threads run its heads (a per-thread
    // scratch grew on the first call a thread happened to run a head of), and each thread
    // keeps reusing its own region, warm in its cache.
    let nt = threads::num_threads();
    let part = scratch_len.max(1);
    let busy: SmallVec<[AtomicBool; 8]> = (0..=nt).map(|_| AtomicBool::new(false)).collect();
    super::scratch::with_vec(|scratch: &mut Vec<T>| {
        scratch.resize((nt + 1) * part, T::from_f64(0.0));
        let regions = SendPtr(scratch.as_mut_ptr());
        let head = |i: usize| {
            let r = rayon::current_thread_index().map_or(nt, |t| t.min(nt));
            if busy[r].swap(true, Ordering::Acquire) {
                // A head started inside another on this thread (work stealing): own scratch.
                return run(i, &mut vec![T::from_f64(0.0); scratch_len]);
            }
            let rg = regions;
            // SAFETY: region `r` lies inside `scratch`, and only the task holding `busy[r]`
            // touches it.
            run(i, unsafe {
                std::slice::from_raw_parts_mut(rg.0.add(r * part), scratch_len)
            });
            busy[r].store(false, Ordering::Release);
        };
        if heads > 1 && nt > 1 {
            threads::install(|| (0..heads).into_par_iter().for_each(head));
        } else {
            (0..heads).for_each(head);
        }
    });
    out
}

/// Copies the `rows × cols` matrix `m` into `dst` row-major (`transpose`: its transpose,
/// `cols × rows`). The gemm crate runs a product whose right operand has unit row stride (a
/// transposed view, as in `q kᵀ`) at a fraction of its speed, and strided head views are
/// read once here instead of in every product.
fn dense_copy<T: Copy + Send + Sync>(
    m: Mat<T>,
    rows: usize,
    cols: usize,
    transpose: bool,
    dst: &mut [T],
) {
    if transpose && m.cs == 1 {
        // The transpose is the `cols × rows` matrix whose element (p, j) sits at p + j·rs.
        let span = (rows - 1) * m.rs as usize + cols;
        // SAFETY: the matrix's elements lie within `span` elements of its start.
        let src = unsafe { std::slice::from_raw_parts(m.ptr, span) };
        super::transpose::transpose_into(src, m.rs as usize, cols, rows, dst);
        return;
    }
    for i in 0..rows {
        // SAFETY: row i of the matrix `m` describes: `cols` elements `m.cs` apart.
        let row = unsafe { m.ptr.offset(i as isize * m.rs) };
        if m.cs == 1 {
            // SAFETY: a unit-stride row of `cols` elements.
            let src = unsafe { std::slice::from_raw_parts(row, cols) };
            dst[i * cols..(i + 1) * cols].copy_from_slice(src);
            continue;
        }
        for j in 0..cols {
            // SAFETY: (i, j) is inside the matrix.
            let v = unsafe { *row.offset(j as isize * m.cs) };
            if transpose {
                dst[j * rows + i] = v;
            } else {
                dst[i * cols + j] = v;
            }
        }
    }
}

fn forward_typed<T: Elem>(inputs: &[Operand<'_>], h: Head, dst: &mut Dst) -> Vec<T> {
    let (t, d) = (h.t, h.d);
    for_each_head::<T>(
        inputs,
        1,
        t * d,
        t * t + 3 * t * d,
        dst,
        |[q, k, v, _], outs, scratch| {
            let (p, rest) = scratch.split_at_mut(t * t);
            let (qd, rest) = rest.split_at_mut(t * d);
            let (kt, vd) = rest.split_at_mut(t * d);
            dense_copy(q, t, d, false, qd);
            dense_copy(k, t, d, true, kt);
            dense_copy(v, t, d, false, vd);
            probabilities(h, dense(qd, d), dense(kt, t), p);
            let (p, vd) = (dense(p, t), dense(vd, d));
            for (r0, r1, cols) in blocks(h) {
                let out = &mut outs[0][r0 * d..r1 * d];
                gemm(
                    out,
                    d,
                    r1 - r0,
                    d,
                    cols,
                    p.skip_rows(r0),
                    vd,
                    T::from_f64(1.0),
                );
            }
        },
    )
}

/// `dq, dk, dv` of one head for the output gradient `g`:
/// `dv = Pᵀ g`, `dS = P ⊙ (g vᵀ − rowsum(g vᵀ ⊙ P))`, `dq = scale · dS k`, `dk = scale · dSᵀ q`.
fn backward_typed<T: Elem>(inputs: &[Operand<'_>], h: Head, dst: &mut Dst) -> Vec<T> {
    let (t, d) = (h.t, h.d);
    let alpha = T::from_f64(h.scale);
    let scratch_len = 2 * t * t + 5 * t * d;
    for_each_head::<T>(
        inputs,
        3,
        t * d,
        scratch_len,
        dst,
        |[q, k, v, g], outs, scratch| {
            let (p, rest) = scratch.split_at_mut(t * t);
            let (ds, rest) = rest.split_at_mut(t * t);
            let (qd, rest) = rest.split_at_mut(t * d);
            let (kd, rest) = rest.split_at_mut(t * d);
            let (kt, rest) = rest.split_at_mut(t * d);
            let (vt, gd) = rest.split_at_mut(t * d);
            dense_copy(q, t, d, false, qd);
            dense_copy(k, t, d, false, kd);
            dense_copy(k, t, d, true, kt);
            dense_copy(v, t, d, true, vt);
            dense_copy(g, t, d, false, gd);
            let (qd, kd, gd) = (dense(qd, d), dense(kd, d), dense(gd, d));
            probabilities(h, qd, dense(kt, t), p);
            let one = T::from_f64(1.0);
            for (r0, r1, cols) in blocks(h) {
                // dS for the block's rows, then dq = scale · dS k.
                let rows = &mut ds[r0 * t..r1 * t];
                gemm(
                    rows,
                    t,
                    r1 - r0,
                    cols,
                    d,
                    gd.skip_rows(r0),
                    dense(vt, t),
                    one,
                );
                let p_rows = &p[r0 * t..r1 * t];
                super::simd::widest!(softmax_backward_rows(rows, p_rows, t, cols));
                let dq = &mut outs[0][r0 * d..r1 * d];
                gemm(dq, d, r1 - r0, d, cols, dense(rows, t), kd, alpha);
            }
            for (c0, c1, _) in blocks(h) {
                // dv = Pᵀ g and dk = scale · dSᵀ q for the block's keys, over the rows that
                // see them.
                let i0 = first_live_row(h, c0);
                let (n, live) = (c1 - c0, t - i0);
                let p_cols = dense(&p[i0 * t + c0..], t).t();
                let dv = &mut outs[2][c0 * d..c1 * d];
                gemm(dv, d, n, d, live, p_cols, gd.skip_rows(i0), one);
                let ds_cols = dense(&ds[i0 * t + c0..], t).t();
                let dk = &mut outs[1][c0 * d..c1 * d];
                gemm(dk, d, n, d, live, ds_cols, qd.skip_rows(i0), alpha);
            }
        },
    )
}

fn head(x: Operand<'_>, scale: f64, causal: bool) -> Head {
    let r = x.rank();
    Head {
        t: x.shape()[r - 2],
        d: x.shape()[r - 1],
        scale,
        causal,
    }
}

/// `softmax(scale · q kᵀ) v` per head for `q, k, v` of one shape `[.., T, D]`; with
/// `backward`, `[dq, dk, dv]` stacked along a new first dim for inputs `q, k, v, g`.
pub(crate) fn attention(
    inputs: &[Operand<'_>],
    scale: f64,
    causal: bool,
    backward: bool,
    out: DType,
    dst: &mut Dst,
) -> CpuStorage {
    let h = head(inputs[0], scale, causal);
    match (out, backward) {
        (DType::F32, false) => CpuStorage::F32(forward_typed::<f32>(inputs, h, dst)),
        (DType::F32, true) => CpuStorage::F32(backward_typed::<f32>(inputs, h, dst)),
        (DType::F64, false) => CpuStorage::F64(forward_typed::<f64>(inputs, h, dst)),
        (DType::F64, true) => CpuStorage::F64(backward_typed::<f64>(inputs, h, dst)),
        (d, _) => unreachable!("attention: dtype {d}"),
    }
}
