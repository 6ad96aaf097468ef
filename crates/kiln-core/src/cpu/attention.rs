//! Fused scaled dot-product attention and its gradient, one (batch, head) slice at a time:
//! the `T × T` scores and probabilities live in a per-task scratch buffer (64 KiB for T = 128,
//! in L2) instead of whole-tensor scores, masked scores and probabilities in memory, and the
//! backward recomputes them rather than keeping them from the forward pass.

use super::dst::Dst;
use super::num::Num;
use super::threads;
use crate::dtype::{DType, Element};
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
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

/// `dst (m × n, dense) = alpha · a (m × k) @ b (k × n)`, on this thread.
fn gemm<T: Num>(dst: &mut [T], m: usize, n: usize, k: usize, a: Mat<T>, b: Mat<T>, alpha: T) {
    debug_assert_eq!(dst.len(), m * n);
    let _in_gemm = super::matmul::GemmCall::enter();
    // SAFETY: `dst` holds m·n elements; `a` and `b` describe matrices inside live storages
    // (offsets and strides from validated layouts, or dense scratch of the right size).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
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

/// One head's geometry: `T` query/key rows of `D` features.
#[derive(Clone, Copy)]
struct Head {
    t: usize,
    d: usize,
    scale: f64,
    causal: bool,
}

/// The probabilities `P = softmax(scale · q kᵀ)` (causal: keys after the query masked out)
/// into `p` (`T × T`, dense), given `kt = kᵀ` (`D × T`).
fn probabilities<T: Elem>(h: Head, q: Mat<T>, kt: Mat<T>, p: &mut [T]) {
    let t = h.t;
    gemm(p, t, t, h.d, q, kt, T::from_f64(h.scale));
    super::simd::widest!(softmax_rows(h, p))
}

/// Each row of `p` (`T × T`) replaced by its softmax (causal: the keys after the row's query
/// zeroed).
#[inline(always)]
fn softmax_rows<T: Elem>(h: Head, p: &mut [T]) {
    let t = h.t;
    for (i, row) in p.chunks_exact_mut(t).enumerate() {
        let live = if h.causal { i + 1 } else { t };
        let (row, masked) = row.split_at_mut(live);
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

/// `ds = p ⊙ (ds − rowsum(ds ⊙ p))` row by row: the softmax backward, with `ds` holding the
/// gradient with respect to the probabilities on entry.
#[inline(always)]
fn softmax_backward_rows<T: Elem>(ds: &mut [T], p: &[T], t: usize) {
    for (dp, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
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

/// A pointer the head tasks write their disjoint output slices through.
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: each task writes only its own head's slices.
unsafe impl<T> Send for OutPtr<T> {}
unsafe impl<T> Sync for OutPtr<T> {}

/// Runs `f(q, k, v, g, outputs, scratch)` for every head in parallel, with the head's views
/// of the inputs (the 4th is the last input again when there are 3), its slice of each of the
/// `outputs` results (laid out one after another, each `heads · per_head` long) and a
/// scratch of `scratch_len` elements.
fn for_each_head<T: Elem>(
    inputs: &[&Tensor],
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
    let bases: smallvec::SmallVec<[OutPtr<T>; 4]> = guards
        .iter()
        .map(|g| OutPtr(T::slice(g).expect("attention: dtype").as_ptr() as *mut T))
        .collect();
    let base = OutPtr(out.as_mut_ptr());
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
        let regions = OutPtr(scratch.as_mut_ptr());
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

fn forward_typed<T: Elem>(inputs: &[&Tensor], h: Head, dst: &mut Dst) -> Vec<T> {
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
            gemm(
                outs[0],
                t,
                d,
                t,
                dense(p, t),
                dense(vd, d),
                T::from_f64(1.0),
            );
        },
    )
}

/// `dq, dk, dv` of one head for the output gradient `g`:
/// `dv = Pᵀ g`, `dS = P ⊙ (g vᵀ − rowsum(g vᵀ ⊙ P))`, `dq = scale · dS k`, `dk = scale · dSᵀ q`.
fn backward_typed<T: Elem>(inputs: &[&Tensor], h: Head, dst: &mut Dst) -> Vec<T> {
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
            gemm(outs[2], t, d, t, dense(p, t).t(), gd, T::from_f64(1.0));
            gemm(ds, t, t, d, gd, dense(vt, t), T::from_f64(1.0));
            super::simd::widest!(softmax_backward_rows(ds, p, t));
            gemm(outs[0], t, d, t, dense(ds, t), kd, alpha);
            gemm(outs[1], t, d, t, dense(ds, t).t(), qd, alpha);
        },
    )
}

fn head(x: &Tensor, scale: f64, causal: bool) -> Head {
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
    inputs: &[&Tensor],
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
