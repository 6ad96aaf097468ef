//! Batched matmul with broadcast batch dims on top of the `gemm` crate (runtime-dispatched
//! AVX-512 with the `x86-v4` feature); strided operands such as transposed views are read in
//! place, never copied.

use super::dst::{Dst, SendPtr};
use super::packed_weights::{self, Packed};
use super::scratch::set_len_for_overwrite;
use super::skinny;
use super::strided::for_each_run;
use super::threads;
use super::transpose::{transpose_into, transpose_par};
use super::{cast_if, num::Num};
use crate::dtype::DType;
use crate::layout::Layout;
use crate::operand::{Operand, OwnedOperand};
use crate::ops::Activation;
use crate::storage::CpuStorage;
use gemm::Parallelism;
use half::f16;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Calls into the `gemm` crate running now, on any thread.
static GEMM_CALLS: AtomicUsize = AtomicUsize::new(0);

/// How many calls into the `gemm` crate are running now. `gemm` allocates its packing
/// buffers at every call (outside Kiln's control): tests that count heap allocations use this
/// to tell those apart from Kiln's own.
pub fn gemm_calls_in_flight() -> usize {
    GEMM_CALLS.load(Ordering::Relaxed)
}

/// Counts one call into `gemm` while alive.
pub(crate) struct GemmCall;

impl GemmCall {
    pub(crate) fn enter() -> GemmCall {
        GEMM_CALLS.fetch_add(1, Ordering::Relaxed);
        GemmCall
    }
}

impl Drop for GemmCall {
    fn drop(&mut self) {
        GEMM_CALLS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Flops below which a single matmul stays on the calling thread.
const PARALLEL_FLOPS: usize = 1 << 22;

/// Right-operand elements (`k·n`) from which a product below [`PARALLEL_FLOPS`] is split
/// into column blocks across the pool when it runs on a pool thread (a compiled graph's
/// executor): batch-1 inference through a 784→512→512 MLP reads 2.6 MB of weights per call,
/// which one core streams from L3 while two hold half each in their own L2 (the three
/// products of one call: 66–76 µs on one thread, 26 µs split in the pool, on this 2-core
/// machine; from outside the pool the hand-off costs more than the split saves). A thin
/// product with a large output gains nothing: 128×10 @ 10×512 ran 13 µs on one thread and
/// 22 µs split.
const SPLIT_WEIGHT: usize = 1 << 16;

/// Whether an `m×k @ k×n` product (one pair) is split across the pool's threads when it runs
/// on one of them: every product of `PARALLEL_FLOPS` (4.2 Mflop) or more, and a smaller one
/// over a large weight. A graph executor enters the pool for such a product, so that the split is an
/// in-pool fork: from outside, the whole split is handed to the pool's threads while the
/// caller waits on a third, and on 2 cores the MLP's batch-8 call (two 4.2–6.4 Mflop
/// products) ran slower on two threads than on one (190–210 µs against 133–190 µs; in the
/// pool 106 µs).
pub fn splits_inside_pool(m: usize, k: usize, n: usize) -> bool {
    2 * m * n * k >= PARALLEL_FLOPS || small_split_in_pool(m, k, n)
}

/// Whether a product below [`PARALLEL_FLOPS`] is split into column blocks across the pool
/// when it runs on a pool thread (see [`SPLIT_WEIGHT`]).
fn small_split_in_pool(m: usize, k: usize, n: usize) -> bool {
    // (Rows with a long inner dim go through operand copies instead, see [`nt_copy`], unless
    // they are few enough for the skinny kernels, which read the operands in place.)
    let skinny = m <= skinny::MAX_ROWS && skinny::available();
    let copies = m > 1 && k >= NT_COPY_K && !skinny;
    2 * m * n * k < PARALLEL_FLOPS && k * n >= SPLIT_WEIGHT && n >= 64 && !copies
}

type Pairs = smallvec::SmallVec<[(usize, usize); 64]>;

struct Geometry {
    m: usize,
    n: usize,
    k: usize,
    a_rs: isize,
    a_cs: isize,
    b_rs: isize,
    b_cs: isize,
    /// (a offset, b offset) per batch entry, row-major over the output batch dims (on the
    /// stack up to 64 entries).
    pairs: Pairs,
    /// Add the product onto the output instead of overwriting it.
    accumulate: bool,
    /// The shared right operand packed for the skinny kernels (see `packed_weights.rs`).
    packed: Option<Arc<Packed>>,
}

fn geometry(a: &Layout, b: &Layout, shape: &[usize]) -> Geometry {
    let r = shape.len();
    let (m, n) = (shape[r - 2], shape[r - 1]);
    let k = a.shape[a.rank() - 1];
    let batch = &shape[..r - 2];
    let mut sa: crate::shape::Shape = batch.into();
    sa.extend([m, k]);
    let mut sb: crate::shape::Shape = batch.into();
    sb.extend([k, n]);
    let la = a.broadcast_to(&sa);
    let lb = b.broadcast_to(&sb);
    let mut pairs = Pairs::new();
    for_each_run(
        batch,
        [&la.strides[..r - 2], &lb.strides[..r - 2]],
        [la.offset, lb.offset],
        |_, [oa, ob], [s1, s2], len| {
            pairs.extend((0..len).map(|i| (oa + i * s1, ob + i * s2)));
        },
    );
    Geometry {
        m,
        n,
        k,
        a_rs: la.strides[r - 2] as isize,
        a_cs: la.strides[r - 1] as isize,
        b_rs: lb.strides[r - 2] as isize,
        b_cs: lb.strides[r - 1] as isize,
        pairs,
        accumulate: false,
        packed: None,
    }
}

/// Depth from which an operand pair with both inner dims contiguous (`a @ bᵀ` with row-major
/// `a` and `b`, as in every Linear's forward) is multiplied after copying operands to the
/// layouts the `gemm` crate runs fast: it runs this one at a third to a half of its usual
/// speed for long inner dims (k = 4096 33 → 70 GFLOPS serially, k = 1024 52 → 90), while the
/// copies are one pass each. At k ≤ 256 the two are level.
const NT_COPY_K: usize = 512;

/// How an `a @ bᵀ` pair (both inner dims contiguous) is fed to `gemm`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NtCopy {
    /// As it is (short inner dims, vectors).
    None,
    /// `b` copied to row-major (once when the whole batch shares it).
    B { shared: bool },
    /// `a` copied to column-major and the product written column-major to scratch, then
    /// transposed into the output: cheaper than copying `b` when `b` is the larger operand
    /// (a Linear's weight at a batch smaller than its width: 128×784 @ 784×512 runs
    /// 0.50 → 0.33 ms). `gemm` keeps a column-major output as it is, and then wants a
    /// column-major left operand; a row-major output it transposes, swapping the operands.
    AandC,
}

fn nt_copy(g: &Geometry, dtype: DType) -> NtCopy {
    let (m, n, k) = (g.m, g.n, g.k);
    if !(g.a_cs == 1 && g.b_rs == 1 && k >= NT_COPY_K && n > 1 && m > 1)
        || skinny_form(g, dtype).is_some()
    {
        return NtCopy::None;
    }
    let shared = g.pairs.iter().all(|p| p.1 == g.pairs[0].1);
    let b_cost = if shared { k * n } else { g.pairs.len() * k * n };
    if g.pairs.len() * (m * k + m * n) < b_cost {
        NtCopy::AandC
    } else {
        NtCopy::B { shared }
    }
}

fn gemm_typed<T: Num>(a: &[T], b: &[T], g: &Geometry, bias: Option<&[T]>, dst: &mut Dst) -> Vec<T> {
    let (m, n) = (g.m, g.n);
    let copy = nt_copy(g, T::DTYPE);
    let mut out = match bias {
        // Every row starts as the bias; the product accumulates onto it. (A product written
        // to scratch first starts from the bias there instead.)
        Some(bias) if copy != NtCopy::AandC => {
            let mut v = dst.take::<T>(g.pairs.len() * m * n);
            for _ in 0..g.pairs.len() * m {
                v.extend_from_slice(bias);
            }
            v
        }
        // gemm overwrites every element without reading it (`read_dst = false` stores with
        // α = 0).
        _ => dst.for_overwrite::<T>(g.pairs.len() * m * n),
    };
    if m * n == 0 {
        return out;
    }
    // The transposed shared operand goes in a per-thread scratch vector.
    super::scratch::with_vec(|bt: &mut Vec<T>| gemm_into(a, b, g, copy, &mut out, bt, bias));
    out
}

/// [`gemm_typed`]'s products into `out`, plus `bias` per row (which `out` already holds,
/// unless the product goes through scratch); `bt` is scratch for a transposed shared operand.
fn gemm_into<T: Num>(
    a: &[T],
    b: &[T],
    g: &Geometry,
    copy: NtCopy,
    out: &mut [T],
    bt: &mut Vec<T>,
    bias: Option<&[T]>,
) {
    let (m, n, k) = (g.m, g.n, g.k);
    let (read_dst, dst_scale) = if bias.is_some() || g.accumulate {
        (true, T::one())
    } else {
        (false, T::zero())
    };
    let flops = 2 * m * n * k;
    if let Some(form) = skinny_form(g, T::DTYPE) {
        // SAFETY: `skinny_form` found f32 operands with the strides `skinny` reads.
        let cast =
            |x: &[T]| unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<f32>(), x.len()) };
        let out =
            unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len()) };
        return skinny_products(form, cast(a), cast(b), g, out, read_dst);
    }
    // A right operand shared by the whole batch (a broadcast weight) is copied once up front.
    if copy == (NtCopy::B { shared: true }) {
        set_len_for_overwrite(bt, k * n);
        transpose_par(&b[g.pairs[0].1..], g.b_cs as usize, k, n, bt);
    }
    let bt = &*bt;
    let run = |dst: *mut T, (oa, ob): (usize, usize), par: Parallelism, scratch: &mut Vec<T>| {
        // Copies run on the pool only when the product does.
        let transpose = |src: &[T], cs: usize, k: usize, n: usize, dst: &mut [T]| match par {
            Parallelism::None => transpose_into(src, cs, k, n, dst),
            _ => transpose_par(src, cs, k, n, dst),
        };
        let (mut ap, mut a_rs, mut a_cs) = (a[oa..].as_ptr(), g.a_rs, g.a_cs);
        let (mut bp, mut b_rs, mut b_cs) = (b[ob..].as_ptr(), g.b_rs, g.b_cs);
        // The product goes to `dst` (row-major), or column-major to scratch for AandC.
        let (mut cp, mut c_rs, mut c_cs) = (dst, n as isize, 1isize);
        match copy {
            NtCopy::None => {}
            NtCopy::B { shared } => {
                if !shared {
                    set_len_for_overwrite(scratch, k * n);
                    transpose(&b[ob..], g.b_cs as usize, k, n, scratch);
                }
                let src: &[T] = if shared { bt } else { scratch };
                (bp, b_rs, b_cs) = (src.as_ptr(), n as isize, 1);
            }
            NtCopy::AandC => {
                set_len_for_overwrite(scratch, m * k + m * n);
                let (at, ct) = scratch.split_at_mut(m * k);
                // aᵀ row-major (k×m) is `a` column-major.
                transpose(&a[oa..], g.a_rs as usize, k, m, at);
                (ap, a_rs, a_cs) = (at.as_ptr(), 1, m as isize);
                (cp, c_rs, c_cs) = (ct.as_mut_ptr(), 1, m as isize);
                if let Some(bias) = bias {
                    // Column j of the column-major product starts as bias[j].
                    for (col, &bj) in ct.chunks_exact_mut(m).zip(bias) {
                        col.fill(bj);
                    }
                }
            }
        }
        // SAFETY: offsets and strides come from layouts validated against the storages (or
        // describe the dense copies in scratch); the output is a distinct m×n block of `out`
        // or the scratch's m×n tail.
        unsafe {
            gemm_call(
                [m, n, k],
                (cp, c_rs, c_cs),
                (read_dst, dst_scale),
                (ap, a_rs, a_cs),
                (bp, b_rs, b_cs),
                par,
            )
        };
        if copy == NtCopy::AandC {
            // SAFETY: `dst` is this entry's m×n block of `out`.
            let out = unsafe { std::slice::from_raw_parts_mut(dst, m * n) };
            // The column-major product (element (i, j) at i + j·m) into the output rows.
            transpose(&scratch[m * k..], m, m, n, out);
        }
    };
    let base = SendPtr(out.as_mut_ptr());
    if copy == NtCopy::None && g.pairs.len() == 1 && small_split_in_pool(m, k, n) {
        let nt = threads::num_threads();
        if nt > 1 && threads::on_pool() {
            // Column blocks of the output: block p reads rows of a row-major weight (`b`
            // transposed) or columns of `b`. The calling worker takes the first block and the
            // other the second, so each keeps its part of the weight in its own cache.
            let width = n.div_ceil(nt).next_multiple_of(16);
            let (oa, ob) = g.pairs[0];
            let (ap, bp) = (a[oa..].as_ptr() as usize, b[ob..].as_ptr() as usize);
            threads::install(|| {
                (0..n.div_ceil(width)).into_par_iter().for_each(|p| {
                    let (j0, j1) = (p * width, ((p + 1) * width).min(n));
                    // SAFETY: as for `run`; block p writes columns j0..j1 of the m×n output
                    // and reads columns j0..j1 of `b`, disjoint from the other blocks' writes.
                    unsafe {
                        gemm_call(
                            [m, j1 - j0, k],
                            (base.at(j0), n as isize, 1),
                            (read_dst, dst_scale),
                            (ap as *const T, g.a_rs, g.a_cs),
                            (
                                (bp as *const T).offset(j0 as isize * g.b_cs),
                                g.b_rs,
                                g.b_cs,
                            ),
                            Parallelism::None,
                        )
                    }
                })
            });
            return;
        }
    }
    let total = flops * g.pairs.len();
    if total < PARALLEL_FLOPS {
        let mut scratch = Vec::new();
        for (i, &p) in g.pairs.iter().enumerate() {
            run(base.at(i * m * n), p, Parallelism::None, &mut scratch);
        }
    } else if g.pairs.len() >= 2 * threads::num_threads() || flops < PARALLEL_FLOPS {
        threads::install(|| {
            g.pairs
                .par_iter()
                .enumerate()
                .for_each_init(Vec::new, |scratch, (i, &p)| {
                    run(base.at(i * m * n), p, Parallelism::None, scratch)
                })
        });
    } else {
        let nt = threads::num_threads();
        // The operand copies' scratch is kept from call to call.
        super::scratch::with_vec(|scratch: &mut Vec<T>| {
            threads::install(|| {
                for (i, &p) in g.pairs.iter().enumerate() {
                    run(base.at(i * m * n), p, Parallelism::Rayon(nt), scratch);
                }
            })
        });
    }
}

/// The skinny kernels' form for `g`'s products when they are f32 and fit them.
fn skinny_form(g: &Geometry, dtype: DType) -> Option<skinny::Form> {
    if dtype != DType::F32 {
        return None;
    }
    skinny::form(g.m, g.k, g.a_cs, g.b_rs, g.b_cs)
}

/// `g`'s products by the skinny kernels into `out` (added onto it with `accumulate`): each
/// pair's columns split across the pool where [`gemm_into`] would have split the product.
fn skinny_products(
    form: skinny::Form,
    a: &[f32],
    b: &[f32],
    g: &Geometry,
    out: &mut [f32],
    accumulate: bool,
) {
    let (m, n, k) = (g.m, g.n, g.k);
    let nt = threads::num_threads();
    let flops = 2 * m * n * k;
    let split = nt > 1
        && n >= 64
        && ((threads::on_pool() && k * n >= SPLIT_WEIGHT) || flops >= PARALLEL_FLOPS);
    let base = SendPtr(out.as_mut_ptr());
    // A packed weight is read in whole panels, so the threads' column blocks start on one.
    let (form, unit) = match &g.packed {
        Some(_) => (skinny::Form::Packed, packed_weights::PANEL),
        None => (form, 16),
    };
    for (i, &(oa, ob)) in g.pairs.iter().enumerate() {
        let product = skinny::Product {
            m,
            k,
            a: a[oa..].as_ptr(),
            a_rs: g.a_rs,
            b: match &g.packed {
                Some(packed) => packed.data.as_ptr(),
                None => b[ob..].as_ptr(),
            },
            b_stride: match form {
                skinny::Form::Nt => g.b_cs,
                skinny::Form::Nn => g.b_rs,
                skinny::Form::Packed => 0,
            },
            c: base.at(i * m * n),
            c_rs: n as isize,
            accumulate,
        };
        if !split {
            // SAFETY: the geometry's offsets and strides were validated against the storages;
            // entry i's m×n block of `out` is this product's alone.
            unsafe { skinny::run(form, &product, 0..n) };
            continue;
        }
        // Column blocks, one per thread, each a multiple of 16 wide: each thread keeps its part
        // of the weight in its own cache.
        let width = n.div_ceil(nt).next_multiple_of(unit);
        let product = SendProduct(product);
        threads::install(|| {
            (0..n.div_ceil(width)).into_par_iter().for_each(|p| {
                let cols = p * width..((p + 1) * width).min(n);
                // SAFETY: as above; the blocks write disjoint columns.
                unsafe { skinny::run(form, &{ product }.0, cols) }
            })
        });
    }
}

/// A [`skinny::Product`] handed to the pool's threads, which write disjoint columns of it.
#[derive(Clone, Copy)]
struct SendProduct(skinny::Product);
unsafe impl Send for SendProduct {}
unsafe impl Sync for SendProduct {}

/// A matrix operand for [`gemm_call`]: its first element, row stride and column stride.
type Strided<T> = (*const T, isize, isize);

/// `dst = scale·dst (read only when asked) + lhs @ rhs` for `[m, n, k]`, counted in
/// [`gemm_calls_in_flight`].
///
/// # Safety
/// The pointers and strides describe valid m×k and k×n operands and an m×n output that
/// nothing else reads or writes meanwhile.
unsafe fn gemm_call<T: Num>(
    [m, n, k]: [usize; 3],
    (dst, dst_rs, dst_cs): (*mut T, isize, isize),
    (read_dst, scale): (bool, T),
    (lhs, lhs_rs, lhs_cs): Strided<T>,
    (rhs, rhs_rs, rhs_cs): Strided<T>,
    par: Parallelism,
) {
    let _in_gemm = GemmCall::enter();
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs,
        dst_rs,
        read_dst,
        lhs,
        lhs_cs,
        lhs_rs,
        rhs,
        rhs_cs,
        rhs_rs,
        scale,
        T::one(),
        false,
        false,
        false,
        par,
    )
}

fn naive<T: Num>(a: &[T], b: &[T], g: &Geometry, bias: Option<&[T]>, dst: &mut Dst) -> Vec<T> {
    let (m, n, k) = (g.m, g.n, g.k);
    let mut out = dst.take(g.pairs.len() * m * n);
    for &(oa, ob) in &g.pairs {
        for i in 0..m {
            for j in 0..n {
                let mut acc = bias.map_or(T::zero(), |b| b[j]);
                for p in 0..k {
                    let x = a[(oa as isize + i as isize * g.a_rs + p as isize * g.a_cs) as usize];
                    let y = b[(ob as isize + p as isize * g.b_rs + j as isize * g.b_cs) as usize];
                    acc = acc.add(x.mul(y));
                }
                out.push(acc);
            }
        }
    }
    out
}

type Kernel<T> = fn(&[T], &[T], &Geometry, Option<&[T]>, &mut Dst) -> Vec<T>;

fn typed<T: Num>(
    a: Operand<'_>,
    b: Operand<'_>,
    bias: Option<Operand<'_>>,
    shape: &[usize],
    f: Kernel<T>,
    dst: &mut Dst,
) -> CpuStorage {
    let mut g = geometry(a.layout(), b.layout(), shape);
    let (ga, gb) = (a.storage().read(), b.storage().read());
    if let (Some(_), Some(weight)) = (
        skinny_form(&g, T::DTYPE),
        <f32 as crate::storage::StorageElement>::slice(&gb),
    ) {
        let shared = g.pairs.iter().all(|p| p.1 == g.pairs[0].1);
        if shared && !g.pairs.is_empty() {
            let key = packed_weights::Key {
                offset: g.pairs[0].1,
                k: g.k,
                n: g.n,
                rs: g.b_rs,
                cs: g.b_cs,
            };
            g.packed = packed_weights::lookup(b.storage(), b.storage().version(), key, weight);
        }
    }
    let gbias = bias.map(|t| t.storage().read());
    // A dense bias (a parameter) is read in place; anything else is copied first.
    let bias: Option<std::borrow::Cow<[T]>> =
        bias.zip(gbias.as_ref())
            .map(|(t, guard)| match t.layout().contiguous_range() {
                Some(r) => std::borrow::Cow::Borrowed(&T::slice(guard).unwrap()[r]),
                None => std::borrow::Cow::Owned(super::to_contiguous_vec::<T>(t)),
            });
    T::wrap(f(
        T::slice(&ga).unwrap(),
        T::slice(&gb).unwrap(),
        &g,
        bias.as_deref(),
        dst,
    ))
}

/// `a @ b (+ bias)` for rank ≥ 2 operands with broadcast batch dims.
pub(crate) fn matmul(
    a: Operand<'_>,
    b: Operand<'_>,
    bias: Option<Operand<'_>>,
    shape: &[usize],
    dst: &mut Dst,
) -> CpuStorage {
    match a.dtype() {
        DType::F32 => typed::<f32>(a, b, bias, shape, gemm_typed, dst),
        DType::F64 => typed::<f64>(a, b, bias, shape, gemm_typed, dst),
        DType::F16 => typed::<f16>(a, b, bias, shape, gemm_typed, dst),
        DType::BF16 => {
            let bias = bias.map(|t| cast_if(t, DType::F32));
            let r = typed::<f32>(
                cast_if(a, DType::F32).operand(),
                cast_if(b, DType::F32).operand(),
                bias.as_ref().map(|t| t.operand()),
                shape,
                gemm_typed,
                &mut Dst::fresh(),
            );
            let CpuStorage::F32(v) = r else {
                unreachable!()
            };
            let product = OwnedOperand::dense(CpuStorage::F32(v), shape);
            super::copy::cast(product.operand(), DType::BF16)
        }
        DType::I64 => typed::<i64>(a, b, bias, shape, naive, dst),
        DType::I32 => typed::<i32>(a, b, bias, shape, naive, dst),
        DType::U8 => typed::<u8>(a, b, bias, shape, naive, dst),
        DType::I8 => typed::<i8>(a, b, bias, shape, naive, dst),
        DType::I16 => typed::<i16>(a, b, bias, shape, naive, dst),
        DType::U16 => typed::<u16>(a, b, bias, shape, naive, dst),
        DType::U32 => typed::<u32>(a, b, bias, shape, naive, dst),
        DType::U64 => typed::<u64>(a, b, bias, shape, naive, dst),
        DType::Bool => unreachable!("matmul: bool"),
    }
}

/// `act(a @ b (+ bias))`: the product, then the activation over it in place while it is
/// still in cache (f32), instead of a second kernel reading it back into a new buffer.
pub(crate) fn matmul_act(
    a: Operand<'_>,
    b: Operand<'_>,
    bias: Option<Operand<'_>>,
    act: Activation,
    shape: &[usize],
    dtype: DType,
    dst: &mut Dst,
) -> CpuStorage {
    match matmul(a, b, bias, shape, dst) {
        CpuStorage::F32(mut v) => {
            super::unary::unary_f32_in_place(&act.unary(), &mut v);
            CpuStorage::F32(v)
        }
        other => {
            let product = OwnedOperand::dense(other, shape);
            super::unary::unary(&act.unary(), product.operand(), dtype, &mut Dst::fresh())
        }
    }
}

/// Elements of the product block [`gelu_backward_of_product`] computes at a time: 2 MiB of
/// f32, consumed while still in cache. Blocks of 512 rows of a GPT MLP's 2048×1024 product
/// ran as fast as the whole product plus a separate pass (6.3–6.5 ms both); 128-row blocks
/// ran 10% slower, each block packing `b` again.
const GELU_BACKWARD_BLOCK: usize = 512 * 1024;

/// Runs `f` on a per-thread scratch block of `len` f32 and the per-thread scratch that
/// [`gemm_into`] copies a transposed operand to, both reused from call to call.
fn with_block_scratch(len: usize, f: impl FnOnce(&mut [f32], &mut Vec<f32>)) {
    super::scratch::with_vec(|block: &mut Vec<f32>| {
        super::scratch::with_vec(|bt: &mut Vec<f32>| {
            block.resize(len.max(block.len()), 0.0);
            f(&mut block[..len], bt)
        })
    })
}

/// `x ← (a @ b) · gelu′(x)` for f32 `a` [m, k], `b` [k, n] and `x` the [m, n] GELU input, in
/// place: the product is computed a block of rows at a time into scratch and consumed there,
/// so a GELU's input gradient needs no buffer for the whole product ([`Op::MatmulGeluBackward`]
/// of graph mode, which writes over the GELU input where it dies).
///
/// [`Op::MatmulGeluBackward`]: crate::ops::Op::MatmulGeluBackward
fn gelu_backward_of_product(a: Operand<'_>, b: Operand<'_>, x: &mut [f32]) {
    let (m, n) = (a.shape()[0], b.shape()[1]);
    assert_eq!(x.len(), m * n, "matmul_gelu_backward: output size");
    let (ga, gb) = (a.storage().read(), b.storage().read());
    let (CpuStorage::F32(av), CpuStorage::F32(bv)) = (&*ga, &*gb) else {
        unreachable!("matmul_gelu_backward: f32 operands (checked by infer)")
    };
    let full = geometry(a.layout(), b.layout(), &[m, n]);
    let rows = (GELU_BACKWARD_BLOCK / n.max(1)).clamp(1, m.max(1));
    with_block_scratch(rows * n, |block, bt| {
        for r0 in (0..m).step_by(rows) {
            let len = rows.min(m - r0);
            let (oa, ob) = full.pairs[0];
            let g = Geometry {
                m: len,
                pairs: std::iter::once((oa + r0 * full.a_rs as usize, ob)).collect(),
                packed: None,
                ..full
            };
            let product = &mut block[..len * n];
            gemm_into(av, bv, &g, nt_copy(&g, DType::F32), product, bt, None);
            let product = &*product;
            threads::for_each_chunk(
                &mut x[r0 * n..(r0 + len) * n],
                threads::MAP_CHUNK,
                |s, xs| super::simd::gelu_backward_in_place(xs, &product[s..s + xs.len()]),
            );
        }
    })
}

/// `out += a @ gelu(x)` for f32 `a` [m, k] and `x` [k, n]: the exact GELU of a block of `x`'s
/// rows at a time goes to scratch and is multiplied there (accumulating over the blocks), so
/// `gelu(x)` is never held whole ([`Op::MatmulGeluRhs`]: a recomputed GELU output's weight
/// gradient in a backward).
///
/// [`Op::MatmulGeluRhs`]: crate::ops::Op::MatmulGeluRhs
fn gelu_rhs_product(a: Operand<'_>, x: Operand<'_>, out: &mut [f32]) {
    let (m, k, n) = (a.shape()[0], a.shape()[1], x.shape()[1]);
    assert_eq!(out.len(), m * n, "matmul_gelu_rhs: output size");
    let ga = a.storage().read();
    let CpuStorage::F32(av) = &*ga else {
        unreachable!("matmul_gelu_rhs: f32 operands (checked by infer)")
    };
    let full = geometry(a.layout(), &Layout::contiguous(&[k, n]), &[m, n]);
    let rows = (GELU_BACKWARD_BLOCK / n.max(1)).clamp(1, k.max(1));
    // `x` read in place when dense (a graph's matmul output), else copied once.
    super::with_dense::<f32, _>(x, |xv| {
        with_block_scratch(rows * n, |block, bt| {
            for k0 in (0..k).step_by(rows) {
                let len = rows.min(k - k0);
                let gelu = &mut block[..len * n];
                let src = &xv[k0 * n..(k0 + len) * n];
                threads::for_each_chunk(gelu, threads::MAP_CHUNK, |s, d| {
                    super::simd::gelu(&src[s..s + d.len()], d)
                });
                let (oa, _) = full.pairs[0];
                let g = Geometry {
                    k: len,
                    pairs: std::iter::once((oa + k0 * full.a_cs as usize, 0)).collect(),
                    accumulate: true,
                    packed: None,
                    ..full
                };
                gemm_into(
                    av,
                    &block[..len * n],
                    &g,
                    nt_copy(&g, DType::F32),
                    out,
                    bt,
                    None,
                );
            }
        })
    })
}

/// [`Op::MatmulGeluRhs`] into a buffer from `dst`, zeroed first (the blocks accumulate onto it).
///
/// [`Op::MatmulGeluRhs`]: crate::ops::Op::MatmulGeluRhs
pub(crate) fn matmul_gelu_rhs(inputs: &[Operand<'_>], dst: &mut Dst) -> CpuStorage {
    let n = inputs[0].shape()[0] * inputs[1].shape()[1];
    let mut v = dst.filled(n, 0.0f32);
    gelu_rhs_product(inputs[0], inputs[1], &mut v);
    CpuStorage::F32(v)
}

/// [`Op::MatmulGeluBackward`] into a new buffer: `x` copied, then updated in place.
///
/// [`Op::MatmulGeluBackward`]: crate::ops::Op::MatmulGeluBackward
pub(crate) fn matmul_gelu_backward(inputs: &[Operand<'_>], dst: &mut Dst) -> CpuStorage {
    match super::copy::contiguous_in(inputs[2], dst) {
        CpuStorage::F32(mut v) => {
            gelu_backward_of_product(inputs[0], inputs[1], &mut v);
            CpuStorage::F32(v)
        }
        other => unreachable!("matmul_gelu_backward: dtype {}", other.dtype()),
    }
}

/// [`Op::MatmulReluBackward`]: the product `a @ b` into the output, then zeroed where the ReLU
/// output `x` is not positive (`where(x > 0, a @ b, 0)` bit for bit), while it is in cache.
///
/// [`Op::MatmulReluBackward`]: crate::ops::Op::MatmulReluBackward
pub(crate) fn matmul_relu_backward(
    inputs: &[Operand<'_>],
    shape: &[usize],
    dst: &mut Dst,
) -> CpuStorage {
    let CpuStorage::F32(mut v) = matmul(inputs[0], inputs[1], None, shape, dst) else {
        unreachable!("matmul_relu_backward: f32 only (checked by infer)")
    };
    super::with_dense(inputs[2], |x: &[f32]| {
        super::unary::in_place_by_strips(&mut v, |at, g, out| {
            let x = &x[at..at + g.len()];
            super::simd::widest!(for ((o, &g), &x) in out.iter_mut().zip(g).zip(x) {
                *o = std::hint::select_unpredictable(x > 0.0, g, 0.0);
            })
        })
    });
    CpuStorage::F32(v)
}

/// [`Op::MatmulGeluBackward`] into `out`, which may be the GELU input `inputs[2]` itself (the
/// executor's in-place plan); otherwise the input is copied into `out` first.
///
/// [`Op::MatmulGeluBackward`]: crate::ops::Op::MatmulGeluBackward
pub(crate) fn matmul_gelu_backward_into(inputs: &[Operand<'_>], out: Operand<'_>) {
    let (a, b, x) = (inputs[0], inputs[1], inputs[2]);
    assert!(
        out.dtype() == DType::F32 && out.is_contiguous() && out.layout().offset == 0,
        "matmul_gelu_backward: the output must be a dense f32 tensor"
    );
    assert!(
        !a.shares_storage(out) && !b.shares_storage(out),
        "matmul_gelu_backward: a matmul operand aliases the output"
    );
    if x.shares_storage(out) {
        assert!(
            x.layout() == out.layout(),
            "matmul_gelu_backward: the GELU input aliases the output with another layout"
        );
    } else {
        super::copy::copy_into(out, x);
    }
    let mut guard = out.storage().write();
    let CpuStorage::F32(v) = &mut *guard else {
        unreachable!("matmul_gelu_backward: output dtype checked above")
    };
    gelu_backward_of_product(a, b, &mut v[..out.numel()]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::V;

    /// `gemm_typed` against the naive triple loop for `T`, on layouts given as tensors.
    fn check<T: Num + Into<f64>>(a: &V, b: &V, tol: f64) {
        check_with_bias::<T>(a, b, None, tol)
    }

    /// `a @ b (+ bias)` by the kernels against the naive product.
    fn check_with_bias<T: Num + Into<f64>>(a: &V, b: &V, bias: Option<&V>, tol: f64) {
        let (a, b) = (a.operand(), b.operand());
        let (ra, rb) = (a.rank(), b.rank());
        let batch: Vec<usize> = if ra > rb {
            a.shape()[..ra - 2].to_vec()
        } else {
            b.shape()[..rb - 2].to_vec()
        };
        let mut shape = batch;
        shape.extend([a.shape()[ra - 2], b.shape()[rb - 1]]);
        let g = geometry(a.layout(), b.layout(), &shape);
        let (ga, gb) = (a.storage().read(), b.storage().read());
        let (sa, sb) = (T::slice(&ga).unwrap(), T::slice(&gb).unwrap());
        let bias = bias.map(|v| v.to_vec::<T>());
        let fast = gemm_typed(sa, sb, &g, bias.as_deref(), &mut Dst::fresh());
        let slow = naive(sa, sb, &g, bias.as_deref(), &mut Dst::fresh());
        assert_eq!(fast.len(), slow.len());
        for (i, (&x, &y)) in fast.iter().zip(&slow).enumerate() {
            let (x, y): (f64, f64) = (x.into(), y.into());
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{:?} @ {:?} element {i}: {x} vs {y}",
                a.shape(),
                b.shape()
            );
        }
    }

    #[test]
    fn transposed_rhs_with_long_inner_dim_matches_the_naive_product() {
        // Row-major a times a transposed b (both inner dims contiguous) with k ≥ NT_COPY_K:
        // the paths that copy b to row-major (a shared, broadcast b) or a and the product
        // (a batched b, a large shared b).
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
            let k = NT_COPY_K + 37;
            let a = V::randn([3, 5, k], dtype);
            let w = V::randn([7, k], dtype);
            let bb = V::randn([3, 6, k], dtype);
            let a2 = V::randn([9, k], dtype);
            let cases = [
                (a.clone(), w.t()),
                (a.clone(), bb.transpose(-2, -1)),
                (a2, w.t()),
                // The weight larger than the batch: a and the product copied instead, in
                // one threaded product.
                (V::randn([128, k], dtype), V::randn([300, k], dtype).t()),
                // Too small to leave the calling thread.
                (V::randn([2, k], dtype), V::randn([3, k], dtype).t()),
            ];
            for (x, y) in &cases {
                if dtype == DType::F64 {
                    check::<f64>(x, y, tol);
                } else {
                    check::<f32>(x, y, tol);
                }
            }
        }
    }

    #[test]
    fn uninitialized_outputs_are_fully_written_for_every_path() {
        // Serial, parallel over the batch, and threaded inside one gemm; also k = 0.
        for (a, b) in [
            (V::randn([4, 3], DType::F32), V::randn([3, 5], DType::F32)),
            (
                V::randn([8, 64, 48], DType::F32),
                V::randn([48, 80], DType::F32),
            ),
            (
                V::randn([300, 200], DType::F32),
                V::randn([200, 300], DType::F32),
            ),
            (
                V::randn([2, 5, 0], DType::F32),
                V::randn([0, 4], DType::F32),
            ),
        ] {
            check::<f32>(&a, &b, 1e-4);
        }
    }

    #[test]
    fn small_products_split_into_column_blocks_on_a_pool_thread_match_the_naive_product() {
        use crate::cpu::testing::dispatch;
        use crate::ops::Op;
        // One row and a few rows; a row-major right operand and a transposed weight; a width
        // that leaves the last block short; with and without a bias.
        for (m, k, n, transposed) in [
            (1, 784, 301, true),
            (1, 300, 512, false),
            (8, 256, 300, true),
        ] {
            assert!(splits_inside_pool(m, k, n), "{m}×{k} @ {k}×{n} is split");
            let a = V::randn([m, k], DType::F32);
            let b = right_operand(k, n, transposed);
            let bias = V::randn([n], DType::F32);
            let plain = &a.matmul(&b) + &bias;
            let fused = threads::install(|| {
                assert!(threads::on_pool());
                check::<f32>(&a, &b, 1e-4);
                dispatch(Op::Matmul, &[&a, &b, &bias])
            });
            let (x, y) = (fused.to_vec::<f32>(), plain.to_vec::<f32>());
            for (i, (p, q)) in x.iter().zip(&y).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                    "{m}×{k}×{n} [{i}]: {p} vs {q}"
                );
            }
        }
        assert!(!threads::on_pool());
        assert!(
            !small_split_in_pool(128, 784, 512) && splits_inside_pool(128, 784, 512),
            "large products take the usual paths (split by gemm, in the pool too)"
        );
        assert_eq!(
            small_split_in_pool(4, 784, 512),
            skinny::available(),
            "rows with a long inner dim are copied, unless few enough for the skinny kernels"
        );
        assert!(
            splits_inside_pool(5, 784, 1024) && !small_split_in_pool(5, 784, 1024),
            "enough flops to split anywhere"
        );
    }

    /// `a @ b (+ bias)` by the naive kernel.
    fn naive_product(a: &V, b: &V, bias: Option<&V>) -> Vec<f32> {
        let (a, b) = (a.operand(), b.operand());
        let g = geometry(a.layout(), b.layout(), &[a.shape()[0], b.shape()[1]]);
        let (ga, gb) = (a.storage().read(), b.storage().read());
        let bias = bias.map(|v| v.to_vec::<f32>());
        use crate::storage::StorageElement;
        let (sa, sb) = (f32::slice(&ga).unwrap(), f32::slice(&gb).unwrap());
        naive(sa, sb, &g, bias.as_deref(), &mut Dst::fresh())
    }

    #[test]
    fn weights_packed_at_their_second_read_give_the_product_until_they_change() {
        use crate::cpu::testing::dispatch;
        use crate::ops::Op;
        if !skinny::available() {
            return;
        }
        // Every row count, a width that leaves the last panel short, a transposed weight (a
        // Linear's) and a row-major one; with a bias; off the pool and split on it.
        for m in 1..=8 {
            for transposed in [true, false] {
                let (k, n) = (300, 301);
                let w = right_operand(k, n, transposed);
                let (a, bias) = (V::randn([m, k], DType::F32), V::randn([n], DType::F32));
                let close = |got: &V, want: &[f32], what: &str| {
                    for (i, (p, q)) in got.to_vec::<f32>().iter().zip(want).enumerate() {
                        assert!(
                            (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                            "m {m}, transposed {transposed}, {what} [{i}]: {p} vs {q}"
                        );
                    }
                };
                let want = naive_product(&a, &w, Some(&bias));
                let first = dispatch(Op::Matmul, &[&a, &w, &bias]);
                assert!(!packed_weights::is_packed(w.operand().storage()));
                close(&first, &want, "first read, in place");
                let second = dispatch(Op::Matmul, &[&a, &w, &bias]);
                assert!(packed_weights::is_packed(w.operand().storage()));
                close(&second, &want, "second read, packed");
                let split = threads::install(|| dispatch(Op::Matmul, &[&a, &w, &bias]));
                close(&split, &want, "packed, split across the pool");
                close(
                    &a.matmul(&w),
                    &naive_product(&a, &w, None),
                    "packed, no bias",
                );
                // An in-place write (an optimizer step) changes the version: read in place
                // again, with the new values, until the new version is seen twice.
                {
                    let mut data = w.operand().storage().write();
                    let CpuStorage::F32(v) = &mut *data else {
                        unreachable!()
                    };
                    v.iter_mut().for_each(|x| *x *= -2.0);
                }
                let want = naive_product(&a, &w, Some(&bias));
                close(
                    &dispatch(Op::Matmul, &[&a, &w, &bias]),
                    &want,
                    "after a write",
                );
                assert!(!packed_weights::is_packed(w.operand().storage()));
                close(&dispatch(Op::Matmul, &[&a, &w, &bias]), &want, "repacked");
                assert!(packed_weights::is_packed(w.operand().storage()));
            }
        }
    }

    /// A random k×n right operand: row-major, or a transposed row-major n×k (a Linear's weight).
    fn right_operand(k: usize, n: usize, transposed: bool) -> V {
        if transposed {
            V::randn([n, k], DType::F32).t()
        } else {
            V::randn([k, n], DType::F32)
        }
    }

    #[test]
    fn skinny_products_match_the_naive_product() {
        // Every row count the skinny kernels take (and 9, which they leave to `gemm`), both
        // forms of the right operand, depths and widths that leave partial vectors and
        // blocks, with and without a bias, one pair and a batch, off the pool and on it
        // (where wide products split into column blocks).
        for m in 1..=9 {
            for k in [1, 7, 16, 33, 784] {
                for n in [1, 5, 16, 47, 130, 300] {
                    for transposed in [false, true] {
                        let a = V::randn([m, k], DType::F32);
                        let b = right_operand(k, n, transposed);
                        let bias = V::randn([n], DType::F32);
                        check::<f32>(&a, &b, 1e-4);
                        check_with_bias::<f32>(&a, &b, Some(&bias), 1e-4);
                        threads::install(|| check_with_bias::<f32>(&a, &b, Some(&bias), 1e-4));
                    }
                }
            }
            let a = V::randn([3, m, 40], DType::F32);
            check::<f32>(&a, &V::randn([40, 70], DType::F32), 1e-4);
            check::<f32>(&a, &V::randn([3, 40, 70], DType::F32), 1e-4);
            check::<f32>(&a, &V::randn([3, 70, 40], DType::F32).t(), 1e-4);
        }
    }
}
