//! Fused optimizer updates: one in-place pass over each parameter and its state, instead of the
//! ~30 tensor ops (each allocating and writing a full temporary) the composite update costs.
//!
//! Each function performs exactly the elementwise arithmetic of the matching `torch.optim`
//! single-tensor update in the same order and precision (the tensor's dtype, scalars converted
//! to it), so it agrees with the composite tensor-op path to rounding. Every function returns
//! `false` without touching anything when it cannot apply (non-contiguous or aliased
//! operands, dtypes other than f32/f64, mismatched shapes or dtypes), and the caller then runs
//! its composite path. The eager wrappers in `kiln_core::ops::fused_optim` also decline while
//! tracing or recording gradients; the graph executor runs [`adam_into`] for `Op::AdamStep`.
//!
//! Large parameters are split into chunks run on Kiln's thread pool; below
//! [`threads::GRAIN`] elements per chunk the loop stays on the calling
//! thread.

use super::simd::widest;
use super::threads;
use crate::dtype::DType;
use crate::operand::Operand;
use crate::ops::optim::adam_args;
pub use crate::ops::optim::AdamHyper;
use crate::storage::StorageElement;
use num_traits::Float;
use rayon::prelude::*;
use smallvec::SmallVec;
use std::ops::Range;
use std::sync::Arc;

/// One Adam / AdamW update: the hyper-parameters, the learning rate and the step count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// The fixed hyper-parameters.
    pub hyper: AdamHyper,
    /// Learning rate.
    pub lr: f64,
    /// The step count after incrementing it for this update (1 on the first update).
    pub step: f64,
}

/// Hyper-parameters of one SGD update (`torch.optim.SGD`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0: plain SGD, the momentum buffer is not touched).
    pub momentum: f64,
    /// Dampening of the gradient entering the momentum buffer.
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Maximize instead of minimize.
    pub maximize: bool,
}

/// Hyper-parameters of one RMSprop update (`torch.optim.RMSprop`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropStep {
    /// Learning rate.
    pub lr: f64,
    /// Smoothing constant of the squared-gradient average.
    pub alpha: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Momentum factor (a momentum buffer must be passed when > 0).
    pub momentum: f64,
    /// Maximize instead of minimize.
    pub maximize: bool,
}

/// Hyper-parameters of one Adagrad update (`torch.optim.Adagrad`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradStep {
    /// The decayed learning rate of this step, `lr / (1 + (t − 1) · lr_decay)`.
    pub clr: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Maximize instead of minimize.
    pub maximize: bool,
}

/// One Adam/AdamW update of `param` in place, with `exp_avg`, `exp_avg_sq` (and
/// `max_exp_avg_sq` for AMSGrad) updated in place too. Returns `false`, changing nothing,
/// where the fused path does not apply (see the module docs).
pub fn adam_step(
    param: Operand<'_>,
    grad: Operand<'_>,
    exp_avg: Operand<'_>,
    exp_avg_sq: Operand<'_>,
    max_exp_avg_sq: Option<Operand<'_>>,
    h: &AdamStep,
) -> bool {
    let mut writes: SmallVec<[Operand<'_>; 4]> =
        SmallVec::from_slice(&[param, exp_avg, exp_avg_sq]);
    writes.extend(max_exp_avg_sq);
    if !eligible(&writes, grad) {
        return false;
    }
    match param.dtype() {
        DType::F32 => drive("fused_adam", &writes, grad, adam_chunk::<f32>(h)),
        _ => drive("fused_adam", &writes, grad, adam_chunk::<f64>(h)),
    }
    true
}

/// One SGD update of `param` in place. With momentum, `momentum_buffer` is required: when
/// `first` it is overwritten with the (decayed) gradient, PyTorch's first-step
/// initialization, else it is decayed and accumulated. Returns `false`, changing nothing,
/// where the fused path does not apply.
pub fn sgd_step(
    param: Operand<'_>,
    grad: Operand<'_>,
    momentum_buffer: Option<Operand<'_>>,
    first: bool,
    h: &SgdStep,
) -> bool {
    let mut writes: SmallVec<[Operand<'_>; 4]> = SmallVec::from_slice(&[param]);
    if h.momentum != 0.0 {
        match momentum_buffer {
            Some(b) => writes.push(b),
            None => return false,
        }
    }
    if !eligible(&writes, grad) {
        return false;
    }
    match param.dtype() {
        DType::F32 => drive("fused_sgd", &writes, grad, sgd_chunk::<f32>(h, first)),
        _ => drive("fused_sgd", &writes, grad, sgd_chunk::<f64>(h, first)),
    }
    true
}

/// One RMSprop update of `param` in place, with `square_avg`, the momentum buffer (required
/// when `h.momentum > 0`) and `grad_avg` (pass it for the centered variant) updated in place.
/// Returns `false`, changing nothing, where the fused path does not apply.
pub fn rmsprop_step(
    param: Operand<'_>,
    grad: Operand<'_>,
    square_avg: Operand<'_>,
    momentum_buffer: Option<Operand<'_>>,
    grad_avg: Option<Operand<'_>>,
    h: &RmsPropStep,
) -> bool {
    let mut writes: SmallVec<[Operand<'_>; 4]> = SmallVec::from_slice(&[param, square_avg]);
    let with_momentum = h.momentum > 0.0;
    if with_momentum {
        match momentum_buffer {
            Some(b) => writes.push(b),
            None => return false,
        }
    }
    writes.extend(grad_avg);
    if !eligible(&writes, grad) {
        return false;
    }
    let centered = grad_avg.is_some();
    match param.dtype() {
        DType::F32 => drive(
            "fused_rmsprop",
            &writes,
            grad,
            rmsprop_chunk::<f32>(h, with_momentum, centered),
        ),
        _ => drive(
            "fused_rmsprop",
            &writes,
            grad,
            rmsprop_chunk::<f64>(h, with_momentum, centered),
        ),
    }
    true
}

/// One Adagrad update of `param` in place, with the squared-gradient `sum` updated in place.
/// Returns `false`, changing nothing, where the fused path does not apply.
pub fn adagrad_step(
    param: Operand<'_>,
    grad: Operand<'_>,
    sum: Operand<'_>,
    h: &AdagradStep,
) -> bool {
    let writes = [param, sum];
    if !eligible(&writes, grad) {
        return false;
    }
    match param.dtype() {
        DType::F32 => drive("fused_adagrad", &writes, grad, adagrad_chunk::<f32>(h)),
        _ => drive("fused_adagrad", &writes, grad, adagrad_chunk::<f64>(h)),
    }
    true
}

// ---- eligibility and the chunked driver ----

/// True when the fused loop can run: f32/f64, every operand dense with the parameter's shape
/// and dtype, and the written operands in distinct storages that the gradient does not share
/// (the loop holds their write locks while reading the gradient).
fn eligible(writes: &[Operand<'_>], grad: Operand<'_>) -> bool {
    let p = writes[0];
    if !matches!(p.dtype(), DType::F32 | DType::F64) {
        return false;
    }
    let all_dense = writes
        .iter()
        .chain([&grad])
        .all(|t| t.dtype() == p.dtype() && t.shape() == p.shape() && t.is_contiguous());
    if !all_dense {
        return false;
    }
    for (i, a) in writes.iter().enumerate() {
        let clash = writes[i + 1..]
            .iter()
            .chain([&grad])
            .any(|b| Arc::ptr_eq(a.storage(), b.storage()));
        if clash {
            return false;
        }
    }
    true
}

/// A raw pointer to the first element of a locked, dense tensor, shareable across the pool's
/// threads (each thread only touches its own disjoint range).
#[derive(Clone, Copy)]
struct Col<T>(*mut T);
// SAFETY: the pointee is only accessed through disjoint ranges while `drive` holds the lock.
unsafe impl<T: Send> Send for Col<T> {}
unsafe impl<T: Send> Sync for Col<T> {}

/// Locks the written tensors and the gradient, then runs `body(written chunks, grad chunk)`
/// over the elements, split into chunks on the thread pool when large.
fn drive<T, F>(name: &'static str, writes: &[Operand<'_>], grad: Operand<'_>, body: F)
where
    T: StorageElement,
    F: Fn(&mut [&mut [T]], &[T]) + Sync,
{
    let _scope = crate::profile::scope(|| name.to_string());
    let n = grad.numel();
    let mut guards: SmallVec<[_; 4]> = writes.iter().map(|t| t.storage().write()).collect();
    let cols: SmallVec<[Col<T>; 4]> = guards
        .iter_mut()
        .zip(writes)
        .map(|(g, t)| {
            let r = t.layout().contiguous_range().expect("fused_optim: dense");
            Col(T::slice_mut(g).expect("fused_optim: dtype")[r].as_mut_ptr())
        })
        .collect();
    let gguard = grad.storage().read();
    let gr = grad
        .layout()
        .contiguous_range()
        .expect("fused_optim: dense");
    let gs = &T::slice(&gguard).expect("fused_optim: dtype")[gr];
    let job = |r: Range<usize>| {
        let mut chunk: SmallVec<[&mut [T]; 4]> = cols
            .iter()
            // SAFETY: every column has `n` elements from its pointer (dense, same shape), `r`
            // lies within `0..n`, ranges given to different calls are disjoint, the columns
            // are distinct storages, and the write guards outlive the calls.
            .map(|c| unsafe { std::slice::from_raw_parts_mut(c.0.add(r.start), r.len()) })
            .collect();
        body(&mut chunk, &gs[r]);
    };
    for_ranges(n, job);
}

/// Calls `f` on ranges covering `0..n`: once inline below two grains (a hand-off to the pool
/// costs more than the loop), else on a few grain-sized-or-larger chunks in the pool.
fn for_ranges(n: usize, f: impl Fn(Range<usize>) + Sync) {
    if n < 2 * threads::GRAIN {
        return f(0..n);
    }
    let nt = threads::num_threads();
    if nt < 2 {
        return f(0..n);
    }
    // A few chunks per thread so a core busy with something else does not hold the step up.
    let chunks = (n / threads::GRAIN).clamp(2, 2 * nt);
    let per = n.div_ceil(chunks).next_multiple_of(64);
    threads::install(|| {
        (0..n.div_ceil(per))
            .into_par_iter()
            .for_each(|c| f(c * per..((c + 1) * per).min(n)))
    });
}

// ---- per-chunk kernels (element order and rounding of the composite tensor ops) ----

/// A scalar converted to the tensor's dtype, as a scalar operand of a tensor op is.
#[inline(always)]
fn c<T: Float>(v: f64) -> T {
    T::from(v).expect("fused_optim: scalar")
}

/// `a + alpha · b` as `add(a, b, alpha)` computes it (no multiply when `alpha == 1`).
#[inline(always)]
fn add_scaled<T: Float>(a: T, b: T, alpha: T, alpha_is_one: bool) -> T {
    if alpha_is_one {
        a + b
    } else {
        a + b * alpha
    }
}

/// Coefficients of `x.lerp_(end, w)`: `x + w·(end − x)` when |w| < 0.5, else
/// `end − (end − x)·(1 − w)` (with `w` first rounded to the dtype, like ATen).
#[derive(Clone, Copy)]
struct Lerp<T> {
    small: bool,
    w: T,
    one_minus_w: T,
}

impl<T: Float> Lerp<T> {
    fn new(w: f64) -> Lerp<T> {
        let wt: T = c(w);
        Lerp {
            small: w.abs() < 0.5,
            w: wt,
            one_minus_w: c(1.0 - wt.to_f64().expect("fused_optim: scalar")),
        }
    }

    #[inline(always)]
    fn apply(self, x: T, end: T) -> T {
        let diff = end - x;
        if self.small {
            x + diff * self.w
        } else {
            end - diff * self.one_minus_w
        }
    }
}

/// NaN-propagating maximum (`torch.maximum`).
#[inline(always)]
fn maximum<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || a >= b {
        a
    } else {
        b
    }
}

/// Adam's scalars, converted to the dtype once per update.
#[derive(Clone, Copy)]
struct AdamK<T> {
    maximize: bool,
    decay_param: bool,
    decay: T,
    wd_grad: bool,
    wd: T,
    wd_one: bool,
    lerp: Lerp<T>,
    beta2: T,
    sq_coef: T,
    sq_one: bool,
    bc2_sqrt: T,
    eps: T,
    neg_step: T,
    step_one: bool,
}

impl<T: Float> AdamK<T> {
    fn new(s: &AdamStep) -> AdamK<T> {
        let (h, lr) = (&s.hyper, s.lr);
        let sq_value = 1.0 - h.beta2;
        let bias_correction1 = 1.0 - h.beta1.powf(s.step);
        let bias_correction2 = 1.0 - h.beta2.powf(s.step);
        let step_size = lr / bias_correction1;
        AdamK {
            maximize: h.maximize,
            decay_param: h.weight_decay != 0.0 && h.decoupled,
            decay: c(1.0 - lr * h.weight_decay),
            wd_grad: h.weight_decay != 0.0 && !h.decoupled,
            wd: c(h.weight_decay),
            wd_one: h.weight_decay == 1.0,
            lerp: Lerp::new(1.0 - h.beta1),
            beta2: c(h.beta2),
            sq_coef: c(sq_value),
            sq_one: sq_value == 1.0,
            bc2_sqrt: c(bias_correction2.powf(0.5)),
            eps: c(h.eps),
            neg_step: c(-step_size),
            step_one: -step_size == 1.0,
        }
    }

    /// Updates `m` and `v` and returns (the parameter after decoupled decay, the new `m`,
    /// the new `v`) for the gradient `g`.
    #[inline(always)]
    fn moments(&self, p: T, m: &mut T, v: &mut T, g: T) -> (T, T, T) {
        let mut g = if self.maximize { -g } else { g };
        let p = if self.decay_param { p * self.decay } else { p };
        if self.wd_grad {
            g = add_scaled(g, p, self.wd, self.wd_one);
        }
        let mi = self.lerp.apply(*m, g);
        *m = mi;
        let vi = if self.sq_one {
            *v * self.beta2 + g * g
        } else {
            *v * self.beta2 + g * self.sq_coef * g
        };
        *v = vi;
        (p, mi, vi)
    }

    /// The parameter after the step, from the second moment estimate in use.
    #[inline(always)]
    fn update(&self, p: T, m: T, second: T) -> T {
        let denom = second.sqrt() / self.bc2_sqrt + self.eps;
        if self.step_one {
            p + m / denom
        } else {
            p + m * self.neg_step / denom
        }
    }
}

/// The Adam arithmetic on one chunk of (param, exp_avg, exp_avg_sq[, max]) and the gradient
/// (public so a test can compare the pooled loop with one chunk).
pub fn adam_chunk<T: Float + StorageElement>(
    h: &AdamStep,
) -> impl Fn(&mut [&mut [T]], &[T]) + Sync {
    let k = AdamK::<T>::new(h);
    let adam = move |p: &mut T, m: &mut T, v: &mut T, g: T| {
        let (pi, mi, vi) = k.moments(*p, m, v, g);
        *p = k.update(pi, mi, vi);
    };
    let amsgrad = move |p: &mut T, m: &mut T, v: &mut T, mx: &mut T, g: T| {
        let (pi, mi, vi) = k.moments(*p, m, v, g);
        let second = maximum(*mx, vi);
        *mx = second;
        *p = k.update(pi, mi, second);
    };
    move |w: &mut [&mut [T]], g: &[T]| match w {
        [p, m, v] => widest!(each3(adam, p, m, v, g)),
        [p, m, v, mx] => widest!(each4(amsgrad, p, m, v, mx, g)),
        _ => unreachable!("adam: param, exp_avg, exp_avg_sq and maybe max_exp_avg_sq"),
    }
}

// The loops take every slice as its own argument and the element function (with its scalars)
// by value: slices reached through `&mut [&mut [T]]` carry no no-alias information, and LLVM
// then reloads captured scalars after every store and does not vectorize (measured 4× slower).

/// `f(p, g)` over every element.
#[inline(always)]
fn each1<T: Copy>(f: impl Fn(&mut T, T) + Copy, p: &mut [T], g: &[T]) {
    for (p, &g) in p.iter_mut().zip(g) {
        f(p, g);
    }
}

/// `f(p, a, g)` over every element.
#[inline(always)]
fn each2<T: Copy>(f: impl Fn(&mut T, &mut T, T) + Copy, p: &mut [T], a: &mut [T], g: &[T]) {
    for ((p, a), &g) in p.iter_mut().zip(a.iter_mut()).zip(g) {
        f(p, a, g);
    }
}

/// `f(p, a, b, g)` over every element.
#[inline(always)]
fn each3<T: Copy>(
    f: impl Fn(&mut T, &mut T, &mut T, T) + Copy,
    p: &mut [T],
    a: &mut [T],
    b: &mut [T],
    g: &[T],
) {
    for (((p, a), b), &g) in p.iter_mut().zip(a.iter_mut()).zip(b.iter_mut()).zip(g) {
        f(p, a, b, g);
    }
}

/// `f(p, a, b, c, g)` over every element.
#[inline(always)]
fn each4<T: Copy>(
    f: impl Fn(&mut T, &mut T, &mut T, &mut T, T) + Copy,
    p: &mut [T],
    a: &mut [T],
    b: &mut [T],
    c: &mut [T],
    g: &[T],
) {
    let it = p.iter_mut().zip(a.iter_mut()).zip(b.iter_mut());
    for ((((p, a), b), c), &g) in it.zip(c.iter_mut()).zip(g) {
        f(p, a, b, c, g);
    }
}

fn sgd_chunk<T: Float + StorageElement>(
    h: &SgdStep,
    first: bool,
) -> impl Fn(&mut [&mut [T]], &[T]) + Sync {
    let h = *h;
    let has_wd = h.weight_decay != 0.0;
    let (wd, wd_one): (T, bool) = (c(h.weight_decay), h.weight_decay == 1.0);
    let (mom, mom_one): (T, bool) = (c(h.momentum), h.momentum == 1.0);
    let damp: T = c(1.0 - h.dampening);
    let neg_lr: T = c(-h.lr);
    let (maximize, nesterov) = (h.maximize, h.nesterov);
    let grad = move |p: T, g: T| {
        let g = if maximize { -g } else { g };
        if has_wd {
            add_scaled(g, p, wd, wd_one)
        } else {
            g
        }
    };
    let plain = move |p: &mut T, g: T| *p = *p + grad(*p, g) * neg_lr;
    let with_buf = move |p: &mut T, b: &mut T, g: T| {
        let gi = grad(*p, g);
        let bi = if first { gi } else { *b * mom + gi * damp };
        *b = bi;
        let gi = if nesterov {
            add_scaled(gi, bi, mom, mom_one)
        } else {
            bi
        };
        *p = *p + gi * neg_lr;
    };
    move |w: &mut [&mut [T]], g: &[T]| match w {
        [p] => widest!(each1(plain, p, g)),
        [p, b] => widest!(each2(with_buf, p, b, g)),
        _ => unreachable!("sgd: param and at most a momentum buffer"),
    }
}

fn rmsprop_chunk<T: Float + StorageElement>(
    h: &RmsPropStep,
    with_momentum: bool,
    centered: bool,
) -> impl Fn(&mut [&mut [T]], &[T]) + Sync {
    let h = *h;
    let maximize = h.maximize;
    let has_wd = h.weight_decay != 0.0;
    let (wd, wd_one): (T, bool) = (c(h.weight_decay), h.weight_decay == 1.0);
    let alpha: T = c(h.alpha);
    let sq_value = 1.0 - h.alpha;
    let (sq_coef, sq_one): (T, bool) = (c(sq_value), sq_value == 1.0);
    let lerp = Lerp::<T>::new(1.0 - h.alpha);
    let eps: T = c(h.eps);
    let mom: T = c(h.momentum);
    let (neg_lr, neg_lr_one): (T, bool) = (c(-h.lr), -h.lr == 1.0);
    // The gradient in use and the new square average.
    let square = move |p: T, sa: &mut T, g: T| {
        let mut g = if maximize { -g } else { g };
        if has_wd {
            g = add_scaled(g, p, wd, wd_one);
        }
        let si = if sq_one {
            *sa * alpha + g * g
        } else {
            *sa * alpha + g * sq_coef * g
        };
        *sa = si;
        (g, si)
    };
    let centered_avg = move |si: T, ga: &mut T, g: T| {
        let a = lerp.apply(*ga, g);
        *ga = a;
        (si + (-a) * a).sqrt() + eps
    };
    let plain = move |p: T, g: T, avg: T| {
        if neg_lr_one {
            p + g / avg
        } else {
            p + g * neg_lr / avg
        }
    };
    let with_buf = move |p: T, b: &mut T, g: T, avg: T| {
        let bi = *b * mom + g / avg;
        *b = bi;
        p + bi * neg_lr
    };
    let f_plain = move |p: &mut T, sa: &mut T, g: T| {
        let (gi, si) = square(*p, sa, g);
        *p = plain(*p, gi, si.sqrt() + eps);
    };
    let f_centered = move |p: &mut T, sa: &mut T, ga: &mut T, g: T| {
        let (gi, si) = square(*p, sa, g);
        *p = plain(*p, gi, centered_avg(si, ga, gi));
    };
    let f_momentum = move |p: &mut T, sa: &mut T, b: &mut T, g: T| {
        let (gi, si) = square(*p, sa, g);
        *p = with_buf(*p, b, gi, si.sqrt() + eps);
    };
    let f_both = move |p: &mut T, sa: &mut T, b: &mut T, ga: &mut T, g: T| {
        let (gi, si) = square(*p, sa, g);
        *p = with_buf(*p, b, gi, centered_avg(si, ga, gi));
    };
    move |w: &mut [&mut [T]], g: &[T]| match (w, with_momentum, centered) {
        ([p, sa], false, false) => widest!(each2(f_plain, p, sa, g)),
        ([p, sa, ga], false, true) => widest!(each3(f_centered, p, sa, ga, g)),
        ([p, sa, b], true, false) => widest!(each3(f_momentum, p, sa, b, g)),
        ([p, sa, b, ga], true, true) => widest!(each4(f_both, p, sa, b, ga, g)),
        _ => unreachable!("rmsprop: state tensors do not match the options"),
    }
}

fn adagrad_chunk<T: Float + StorageElement>(
    h: &AdagradStep,
) -> impl Fn(&mut [&mut [T]], &[T]) + Sync {
    let h = *h;
    let maximize = h.maximize;
    let has_wd = h.weight_decay != 0.0;
    let (wd, wd_one): (T, bool) = (c(h.weight_decay), h.weight_decay == 1.0);
    let eps: T = c(h.eps);
    let (neg_clr, neg_clr_one): (T, bool) = (c(-h.clr), -h.clr == 1.0);
    let f = move |p: &mut T, s: &mut T, g: T| {
        let mut gi = if maximize { -g } else { g };
        if has_wd {
            gi = add_scaled(gi, *p, wd, wd_one);
        }
        let si = *s + gi * gi;
        *s = si;
        let std = si.sqrt() + eps;
        *p = if neg_clr_one {
            *p + gi / std
        } else {
            *p + gi * neg_clr / std
        };
    };
    move |w: &mut [&mut [T]], g: &[T]| match w {
        [p, s] => widest!(each2(f, p, s, g)),
        _ => unreachable!("adagrad: param and sum"),
    }
}

/// The kernel of [`Op::AdamStep`](crate::ops::Op::AdamStep) when the graph runs: the parameter's update is written
/// into `out` (the parameter itself when the executor runs it in place, else a copy of it).
pub fn adam_into(h: &AdamHyper, inputs: &[Operand<'_>], out: Operand<'_>) {
    use adam_args::*;
    let p = inputs[PARAM];
    if !(out.shares_storage(p) && out.layout() == p.layout()) {
        super::copy_into(out, p);
    }
    let settings = AdamStep {
        hyper: *h,
        lr: scalar_f64(inputs[LR]),
        step: scalar_f64(inputs[STEP]),
    };
    let grad = super::dense_if_strided(inputs[GRAD]);
    let done = adam_step(
        out,
        grad.operand(),
        inputs[EXP_AVG],
        inputs[EXP_AVG_SQ],
        h.amsgrad.then(|| inputs[MAX_EXP_AVG_SQ]),
        &settings,
    );
    assert!(
        done,
        "adam_step: parameter {:?} {}, its gradient and moments must be dense, of one dtype \
         and not share storage",
        out.shape(),
        out.dtype()
    );
}

/// The value of a one-element f64 tensor, read in place (`item` copies it out through a
/// vector, and the executor allocates nothing per call).
fn scalar_f64(t: Operand<'_>) -> f64 {
    let guard = t.storage().read();
    let data = <f64 as crate::storage::StorageElement>::slice(&guard)
        .unwrap_or_else(|| panic!("adam_step: step and lr must be f64, got {}", t.dtype()));
    data[t.layout().offset]
}
