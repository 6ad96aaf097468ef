//! Direct 2-D convolution kernels: forward, input gradient and weight gradient. Per sample,
//! im2col goes into a scratch buffer that stays in cache and one serial gemm per group reads
//! and writes the tensors in place; samples run in parallel on the pool (one skinny gemm split
//! across threads does not pay, DESIGN.md §5). A 1×1, stride-1, unpadded convolution skips
//! im2col: its input already is the column matrix.

use super::conv::{fold_one, unfold_one, Window};
use super::conv_dot;
use super::conv_gemm;
use super::depthwise::depthwise_one;
use super::dst::Dst;
use super::num::Num;
use super::threads;
use super::with_dense;
use crate::dtype::DType;
use crate::operand::Operand;
use crate::ops::Conv2dParams;
use crate::storage::CpuStorage;
use rayon::prelude::*;

/// Flops below which a convolution stays on the calling thread.
const PARALLEL_FLOPS: usize = 1 << 22;

/// Sizes of one convolution, per group.
#[derive(Clone, Copy)]
struct Geometry {
    n: usize,
    groups: usize,
    /// Output channels per group.
    og: usize,
    /// Column rows per group: `C/groups · kh · kw`.
    kg: usize,
    /// Output positions per sample: `H'·W'`.
    l: usize,
    /// im2col of one whole sample (all groups).
    win: Window,
}

impl Geometry {
    /// From the input `[N, C, H, W]`, weight `[O, C/groups, kh, kw]` and output `[H', W']`.
    fn new(p: &Conv2dParams, x: &[usize], w: &[usize], out: &[usize]) -> Geometry {
        Geometry {
            n: x[0],
            groups: p.groups,
            og: w[0] / p.groups,
            kg: w[1] * w[2] * w[3],
            l: out[0] * out[1],
            win: Window {
                c: x[1],
                h: x[2],
                w: x[3],
                oh: out[0],
                ow: out[1],
                k: [w[2], w[3]],
                s: p.stride,
                p: p.padding,
                d: p.dilation,
            },
        }
    }

    /// Whether the output grid has positions (an empty one has nothing to split).
    fn grid_nonempty(&self) -> bool {
        self.l > 0 && self.win.c > 0
    }

    fn depthwise(&self) -> bool {
        self.groups == self.win.c && self.og == 1 && self.groups > 1
    }

    /// Whether the f32 forward runs as an implicit GEMM ([`conv_gemm`]): on AVX-512, for
    /// every convolution but a depthwise one (which has its own kernel) or an empty one.
    fn implicit_gemm(&self) -> bool {
        conv_gemm::available()
            && !self.depthwise()
            && self.kg > 0
            && self.l > 0
            && self.og > 0
            && conv_gemm::fits_i32(&self.win)
    }

    /// One sample's groups for [`conv_gemm`]: `x` is the sample's input (on the stack up
    /// to four groups: one allocation fewer per call).
    fn groups_of<'a>(
        &self,
        x: &'a [f32],
        w: &'a [f32],
        bias: Option<&'a [f32]>,
    ) -> smallvec::SmallVec<[conv_gemm::Group<'a>; 4]> {
        let cg = self.win.c / self.groups;
        let plane = self.win.h * self.win.w;
        let (og, kg) = (self.og, self.kg);
        (0..self.groups)
            .map(|gi| conv_gemm::Group {
                x: &x[gi * cg * plane..(gi + 1) * cg * plane],
                w: &w[gi * og * kg..(gi + 1) * og * kg],
                bias: bias.map(|b| &b[gi * og..(gi + 1) * og]),
                win: Window { c: cg, ..self.win },
                og,
                kg,
            })
            .collect()
    }

    fn pointwise(&self) -> bool {
        self.win.k == [1, 1] && self.win.s == [1, 1] && self.win.p == [0, 0]
    }

    /// Input elements per sample.
    fn in_len(&self) -> usize {
        self.win.c * self.win.h * self.win.w
    }

    /// Output (and output gradient) elements per sample.
    fn out_len(&self) -> usize {
        self.groups * self.og * self.l
    }

    fn parallel(&self) -> bool {
        let flops = 2 * self.n * self.groups * self.og * self.kg * self.l;
        flops >= PARALLEL_FLOPS && self.n > 1 && threads::num_threads() > 1
    }

    /// One sample large enough to split inside (batch 1 of a real network): its products,
    /// or its channels, run across the pool instead of on one thread.
    fn split_inside(&self) -> bool {
        let flops = 2 * self.groups * self.og * self.kg * self.l;
        self.n == 1 && flops >= PARALLEL_FLOPS && threads::num_threads() > 1
    }

    /// The `[C·kh·kw, L]` columns of sample `x`: `x` itself when pointwise, else im2col into
    /// `scratch`.
    fn columns<'a, T: Num>(&self, x: &'a [T], scratch: &'a mut Vec<T>) -> &'a [T] {
        if self.pointwise() {
            return x;
        }
        let cols = scratch_of(scratch, self.groups * self.kg * self.l);
        unfold_one(x, cols, &self.win, T::zero());
        cols
    }
}

/// The first `len` elements of `scratch`, grown (zero-filled, once per thread and size) when
/// too short; callers overwrite them.
fn scratch_of<T: Num>(scratch: &mut Vec<T>, len: usize) -> &mut [T] {
    if scratch.len() < len {
        scratch.resize(len, T::zero());
    }
    &mut scratch[..len]
}

/// A row-major or transposed operand view for [`gemm`]: element `(i, j)` at `i·rs + j·cs`.
#[derive(Clone, Copy)]
struct Mat<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

impl<'a, T> Mat<'a, T> {
    fn new(data: &'a [T], rs: usize, cs: usize) -> Self {
        Mat { data, rs, cs }
    }

    /// Panics unless every element of a `rows×cols` view lies inside `data`.
    fn check(&self, rows: usize, cols: usize) {
        if rows > 0 && cols > 0 {
            assert!(
                (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len(),
                "conv2d: gemm operand out of bounds"
            );
        }
    }
}

/// `dst = a·b`, or `dst += a·b` when `accumulate`: `a` is `m×k`, `b` is `k×n`, `dst` is `m×n`
/// row-major with row stride `dst_rs`; on this thread (`Parallelism::None`), or split across
/// the pool's threads (one large sample).
#[allow(clippy::too_many_arguments)]
fn gemm<T: Num>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    a: Mat<T>,
    b: Mat<T>,
    parallelism: gemm::Parallelism,
) {
    Mat::new(&*dst, dst_rs, 1).check(m, n);
    a.check(m, k);
    b.check(k, n);
    // SAFETY: the checks above keep every access inside the slices; `dst` is borrowed
    // mutably, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Calls `f(sample, its chunk of out, scratch)` for each `per`-element chunk of `out`, on the
/// pool when `parallel`.
fn per_sample<T: Num>(
    out: &mut [T],
    per: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T], &mut Vec<T>) + Sync + Send,
) {
    if per == 0 {
        return;
    }
    if parallel {
        let n = out.len() / per;
        // A few chunks per thread balance the load; more would only allocate more scratch.
        let min_len = n.div_ceil(4 * threads::num_threads()).max(1);
        threads::install(|| {
            out.par_chunks_mut(per)
                .with_min_len(min_len)
                .enumerate()
                .for_each_init(Vec::new, |scratch, (i, o)| f(i, o, scratch))
        });
    } else {
        let mut scratch = Vec::new();
        for (i, o) in out.chunks_mut(per).enumerate() {
            f(i, o, &mut scratch);
        }
    }
}

/// A dense output buffer of `len` elements that the kernel overwrites completely: `dst`'s
/// (the executor's planned buffer, so no copy follows) when it fits, else a new one.
fn output<T: Num>(len: usize, dst: &mut Dst) -> Vec<T> {
    assert!(
        matches!(T::DTYPE, DType::F32 | DType::F64),
        "conv2d: output of {:?}",
        T::DTYPE
    );
    dst.for_overwrite(len)
}

/// A depthwise convolution of one sample with its channels split across the pool.
fn depthwise_split<T: Num>(x: &[T], w: &[T], out: &mut [T], win: &Window) {
    let (plane, taps, grid) = (win.h * win.w, win.k[0] * win.k[1], win.oh * win.ow);
    let per = win.c.div_ceil(threads::num_threads()).max(1);
    threads::install(|| {
        out.par_chunks_mut(per * grid)
            .enumerate()
            .for_each(|(i, o)| {
                let c0 = i * per;
                let n = o.len() / grid.max(1);
                let part = Window { c: n, ..*win };
                depthwise_one(
                    &x[c0 * plane..(c0 + n) * plane],
                    &w[c0 * taps..(c0 + n) * taps],
                    o,
                    &part,
                );
            })
    });
}

fn forward<T: Num>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Geometry, dst: &mut Dst) -> Vec<T> {
    let mut out = output::<T>(g.n * g.out_len(), dst);
    if g.split_inside() && g.grid_nonempty() {
        // Batch 1: the pool splits the sample's work instead of its (one) sample.
        forward_one(x, w, bias, g, &mut out, &mut Vec::new(), true);
        return out;
    }
    per_sample(&mut out, g.out_len(), g.parallel(), |i, out_n, scratch| {
        let x_n = &x[i * g.in_len()..(i + 1) * g.in_len()];
        forward_one(x_n, w, bias, g, out_n, scratch, false);
    });
    out
}

/// The f32 forward by [`conv_gemm`]: one sample split across the pool (batch 1), or whole
/// samples per thread.
fn forward_implicit(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    dst: &mut Dst,
) -> Vec<f32> {
    let mut out = output::<f32>(g.n * g.out_len(), dst);
    let one = |groups: &[conv_gemm::Group<'_>], out: &mut [f32], split: bool| {
        if groups.first().is_some_and(conv_dot::suits) {
            conv_dot::sample(groups, out, split)
        } else {
            conv_gemm::sample(groups, out, split)
        }
    };
    if g.split_inside() {
        one(&g.groups_of(x, w, bias), &mut out, true);
        return out;
    }
    per_sample(&mut out, g.out_len(), g.parallel(), |i, out_n, _| {
        let x_n = &x[i * g.in_len()..(i + 1) * g.in_len()];
        one(&g.groups_of(x_n, w, bias), out_n, false);
    });
    out
}

/// One sample's convolution: a depthwise one directly, else each group's product; with
/// `split`, across the pool (a depthwise convolution's channels, or the gemm's own threads).
/// The bias is added while the sample's output is still in cache.
fn forward_one<T: Num>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    g: &Geometry,
    out: &mut [T],
    scratch: &mut Vec<T>,
    split: bool,
) {
    let (og, kg, l) = (g.og, g.kg, g.l);
    let depthwise = g.depthwise();
    match (depthwise, split) {
        (true, true) => depthwise_split(x, w, out, &g.win),
        (true, false) => depthwise_one(x, w, out, &g.win),
        (false, _) => {
            let cols = g.columns(x, scratch);
            let parallelism = if split {
                gemm::Parallelism::Rayon(threads::num_threads())
            } else {
                gemm::Parallelism::None
            };
            let products = |out: &mut [T]| {
                for gi in 0..g.groups {
                    // out_g [og, L] = W_g [og, kg] · cols_g [kg, L]
                    gemm(
                        (og, l, kg),
                        &mut out[gi * og * l..],
                        l,
                        false,
                        Mat::new(&w[gi * og * kg..], kg, 1),
                        Mat::new(&cols[gi * kg * l..], l, 1),
                        parallelism,
                    );
                }
            };
            if split {
                threads::install(|| products(out));
            } else {
                products(out);
            }
        }
    }
    if let Some(b) = bias {
        for (row, &bv) in out.chunks_exact_mut(l.max(1)).zip(b) {
            row.iter_mut().for_each(|v| *v = v.add(bv));
        }
    }
}

fn input_grad<T: Num>(gy: &[T], w: &[T], g: &Geometry) -> Vec<T> {
    let (og, kg, l) = (g.og, g.kg, g.l);
    let mut dx = output::<T>(g.n * g.in_len(), &mut Dst::fresh());
    per_sample(&mut dx, g.in_len(), g.parallel(), |i, dx_n, scratch| {
        let gy_n = &gy[i * g.out_len()..(i + 1) * g.out_len()];
        // cols_g [kg, L] = W_gᵀ [kg, og] · gy_g [og, L]
        let cols_of = |cols: &mut [T]| {
            for gi in 0..g.groups {
                gemm(
                    (kg, l, og),
                    &mut cols[gi * kg * l..],
                    l,
                    false,
                    Mat::new(&w[gi * og * kg..], 1, kg),
                    Mat::new(&gy_n[gi * og * l..], l, 1),
                    gemm::Parallelism::None,
                );
            }
        };
        if g.pointwise() {
            cols_of(dx_n);
        } else {
            let cols = scratch_of(scratch, g.groups * kg * l);
            cols_of(cols);
            dx_n.fill(T::zero());
            fold_one(cols, dx_n, &g.win);
        }
    });
    dx
}

fn weight_grad<T: Num>(x: &[T], gy: &[T], g: &Geometry) -> Vec<T> {
    let (og, kg, l, n) = (g.og, g.kg, g.l, g.n);
    let len = g.groups * og * kg;
    if n == 0 {
        return crate::pool::filled(len, T::zero());
    }
    // Each run of samples sums dW_gᵀ [kg, og] = Σ cols_g [kg, L] · gy_gᵀ [L, og]: this
    // orientation runs at full gemm speed reading both operands in place (gy_g · cols_gᵀ ran
    // at half). The runs' sums are added and transposed at the end.
    let run = |samples: std::ops::Range<usize>| -> Vec<T> {
        let mut acc = output::<T>(len, &mut Dst::fresh());
        let mut scratch = Vec::new();
        for (j, i) in samples.enumerate() {
            let cols = g.columns(&x[i * g.in_len()..(i + 1) * g.in_len()], &mut scratch);
            let gy_i = &gy[i * g.out_len()..(i + 1) * g.out_len()];
            for gi in 0..g.groups {
                gemm(
                    (kg, og, l),
                    &mut acc[gi * kg * og..],
                    og,
                    j > 0,
                    Mat::new(&cols[gi * kg * l..], l, 1),
                    Mat::new(&gy_i[gi * og * l..], 1, l),
                    gemm::Parallelism::None,
                );
            }
        }
        acc
    };
    // The batch is cut into the same runs at any thread count and their sums are added in
    // order, so the gradient has the same bits with 1 thread or 16 (runs go in parallel when
    // there are threads for them, else one after another into a running total).
    let parts = n.min(WEIGHT_GRAD_RUNS);
    let bounds = |p: usize| p * n / parts..(p + 1) * n / parts;
    let total = if g.parallel() && parts > 1 {
        let partials: Vec<Vec<T>> =
            threads::install(|| (0..parts).into_par_iter().map(|p| run(bounds(p))).collect());
        let mut partials = partials.into_iter();
        let mut total = partials.next().expect("at least one run");
        for part in partials {
            add_into(&mut total, &part);
        }
        total
    } else {
        let mut total = run(bounds(0));
        for p in 1..parts {
            add_into(&mut total, &run(bounds(p)));
        }
        total
    };
    // [groups, kg, og] → [groups, og, kg]
    let mut dw = output::<T>(len, &mut Dst::fresh());
    for gi in 0..g.groups {
        for o in 0..og {
            for k in 0..kg {
                dw[(gi * og + o) * kg + k] = total[gi * kg * og + k * og + o];
            }
        }
    }
    dw
}

/// Runs of samples a weight gradient is summed over: fixed, not one per thread, so that the
/// result does not depend on the thread count.
const WEIGHT_GRAD_RUNS: usize = 8;

/// `acc[i] += x[i]`, elementwise in order.
fn add_into<T: Num>(acc: &mut [T], x: &[T]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a = a.add(b);
    }
}

fn typed<R>(dtype: DType, f32_: impl FnOnce() -> R, f64_: impl FnOnce() -> R) -> R {
    match dtype {
        DType::F32 => f32_(),
        DType::F64 => f64_(),
        d => unreachable!("conv2d kernels: dtype {d} (inference admits f32 and f64)"),
    }
}

/// [`crate::ops::Op::Conv2d`]: inputs x, weight and an optional bias; the output goes into
/// `dst`'s buffer when it fits.
pub fn conv2d(
    inputs: &[Operand<'_>],
    p: &Conv2dParams,
    shape: &[usize],
    dst: &mut Dst,
) -> CpuStorage {
    let (x, w) = (inputs[0], inputs[1]);
    let g = Geometry::new(p, x.shape(), w.shape(), &shape[2..]);
    fn go<T: Num>(inputs: &[Operand<'_>], g: &Geometry, dst: &mut Dst) -> Vec<T> {
        with_dense::<T, _>(inputs[0], |x| {
            with_dense::<T, _>(inputs[1], |w| match inputs.get(2) {
                Some(&b) => with_dense::<T, _>(b, |b| forward(x, w, Some(b), g, dst)),
                None => forward(x, w, None, g, dst),
            })
        })
    }
    match x.dtype() {
        DType::F32 if g.implicit_gemm() => CpuStorage::F32(with_dense::<f32, _>(inputs[0], |x| {
            with_dense::<f32, _>(inputs[1], |w| match inputs.get(2) {
                Some(&b) => with_dense::<f32, _>(b, |b| forward_implicit(x, w, Some(b), &g, dst)),
                None => forward_implicit(x, w, None, &g, dst),
            })
        })),
        DType::F32 => CpuStorage::F32(go(inputs, &g, dst)),
        DType::F64 => CpuStorage::F64(go(inputs, &g, dst)),
        d => unreachable!("conv2d kernels: dtype {d} (inference admits f32 and f64)"),
    }
}

/// [`crate::ops::Op::Conv2dInputGrad`]: inputs output gradient and weight.
pub fn conv2d_input_grad(
    gy: Operand<'_>,
    w: Operand<'_>,
    p: &Conv2dParams,
    shape: &[usize],
) -> CpuStorage {
    let g = Geometry::new(p, shape, w.shape(), &gy.shape()[2..]);
    fn go<T: Num>(gy: Operand<'_>, w: Operand<'_>, g: &Geometry) -> Vec<T> {
        with_dense::<T, _>(gy, |gy| with_dense::<T, _>(w, |w| input_grad(gy, w, g)))
    }
    typed(
        gy.dtype(),
        || CpuStorage::F32(go(gy, w, &g)),
        || CpuStorage::F64(go(gy, w, &g)),
    )
}

/// [`crate::ops::Op::Conv2dWeightGrad`]: inputs x and output gradient.
pub fn conv2d_weight_grad(
    x: Operand<'_>,
    gy: Operand<'_>,
    p: &Conv2dParams,
    shape: &[usize],
) -> CpuStorage {
    let g = Geometry::new(p, x.shape(), shape, &gy.shape()[2..]);
    fn go<T: Num>(x: Operand<'_>, gy: Operand<'_>, g: &Geometry) -> Vec<T> {
        with_dense::<T, _>(x, |x| with_dense::<T, _>(gy, |gy| weight_grad(x, gy, g)))
    }
    typed(
        x.dtype(),
        || CpuStorage::F32(go(x, gy, &g)),
        || CpuStorage::F64(go(x, gy, &g)),
    )
}
