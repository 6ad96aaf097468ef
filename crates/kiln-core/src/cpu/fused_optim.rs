//! Fused optimizer updates: one in-place pass over each parameter and its state, instead of the
//! ~30 tensor ops (each allocating and writing a full temporary) the composite update costs.
//!
//! Each function performs exactly the elementwise arithmetic of the matching `torch.optim`
//! single-tensor update in the same order and precision (the tensor's dtype, scalars converted
//! to it), so it agrees with the composite tensor-op path to rounding. It is an **eager-only**
//! fast path: every function returns `false` without touching anything when it cannot apply
//! (while tracing, non-contiguous or aliased tensors, dtypes other than f32/f64, mismatched
//! shapes or dtypes, gradient recording on for a parameter that requires grad), and the caller
//! then runs its composite path.
//!
//! Large parameters are split into chunks run on Kiln's thread pool; below
//! [`threads::GRAIN`](super::threads::GRAIN) elements per chunk the loop stays on the calling
//! thread.

use super::threads;
use crate::autograd::is_grad_enabled;
use crate::dtype::DType;
use crate::storage::StorageElement;
use crate::tensor::Tensor;
use num_traits::Float;
use rayon::prelude::*;
use smallvec::SmallVec;
use std::ops::Range;
use std::sync::Arc;

/// Hyper-parameters of one Adam / AdamW update (`torch.optim.Adam`, `torch.optim.AdamW`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f64,
    /// Decay rate of the first moment average.
    pub beta1: f64,
    /// Decay rate of the second moment average.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// L2 penalty (Adam) or decoupled decay (AdamW, see `decoupled`).
    pub weight_decay: f64,
    /// AdamW's decoupled weight decay (`p *= 1 − lr · weight_decay`) instead of adding
    /// `weight_decay · p` to the gradient.
    pub decoupled: bool,
    /// Maximize instead of minimize (the gradient is negated).
    pub maximize: bool,
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
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    max_exp_avg_sq: Option<&Tensor>,
    h: &AdamStep,
) -> bool {
    let mut writes: SmallVec<[&Tensor; 4]> = SmallVec::from_slice(&[param, exp_avg, exp_avg_sq]);
    writes.extend(max_exp_avg_sq);
    if !eligible(&writes, grad) {
        return false;
    }
    match param.dtype() {
        DType::F32 => drive(&writes, grad, adam_chunk::<f32>(h)),
        _ => drive(&writes, grad, adam_chunk::<f64>(h)),
    }
    true
}

/// One SGD update of `param` in place. With momentum, `momentum_buffer` is required: when
/// `first` it is overwritten with the (decayed) gradient, PyTorch's first-step
/// initialization, else it is decayed and accumulated. Returns `false`, changing nothing,
/// where the fused path does not apply.
pub fn sgd_step(
    param: &Tensor,
    grad: &Tensor,
    momentum_buffer: Option<&Tensor>,
    first: bool,
    h: &SgdStep,
) -> bool {
    let mut writes: SmallVec<[&Tensor; 4]> = SmallVec::from_slice(&[param]);
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
        DType::F32 => drive(&writes, grad, sgd_chunk::<f32>(h, first)),
        _ => drive(&writes, grad, sgd_chunk::<f64>(h, first)),
    }
    true
}

/// One RMSprop update of `param` in place, with `square_avg`, the momentum buffer (required
/// when `h.momentum > 0`) and `grad_avg` (pass it for the centered variant) updated in place.
/// Returns `false`, changing nothing, where the fused path does not apply.
pub fn rmsprop_step(
    param: &Tensor,
    grad: &Tensor,
    square_avg: &Tensor,
    momentum_buffer: Option<&Tensor>,
    grad_avg: Option<&Tensor>,
    h: &RmsPropStep,
) -> bool {
    let mut writes: SmallVec<[&Tensor; 4]> = SmallVec::from_slice(&[param, square_avg]);
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
            &writes,
            grad,
            rmsprop_chunk::<f32>(h, with_momentum, centered),
        ),
        _ => drive(
            &writes,
            grad,
            rmsprop_chunk::<f64>(h, with_momentum, centered),
        ),
    }
    true
}

/// One Adagrad update of `param` in place, with the squared-gradient `sum` updated in place.
/// Returns `false`, changing nothing, where the fused path does not apply.
pub fn adagrad_step(param: &Tensor, grad: &Tensor, sum: &Tensor, h: &AdagradStep) -> bool {
    let writes = [param, sum];
    if !eligible(&writes, grad) {
        return false;
    }
    match param.dtype() {
        DType::F32 => drive(&writes, grad, adagrad_chunk::<f32>(h)),
        _ => drive(&writes, grad, adagrad_chunk::<f64>(h)),
    }
    true
}

// ---- eligibility and the chunked driver ----

/// True when the fused loop can run: not tracing, no gradient recording through the
/// parameter, f32/f64, every tensor dense with the parameter's shape and dtype, and the
/// written tensors in distinct storages that the gradient does not share (the loop holds
/// their write locks while reading the gradient).
fn eligible(writes: &[&Tensor], grad: &Tensor) -> bool {
    if crate::trace::is_tracing() {
        return false;
    }
    let p = writes[0];
    if is_grad_enabled() && writes.iter().chain([&grad]).any(|t| t.requires_grad()) {
        return false;
    }
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
fn drive<T, F>(writes: &[&Tensor], grad: &Tensor, body: F)
where
    T: StorageElement,
    F: Fn(&mut [&mut [T]], &[T]) + Sync,
{
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

fn adam_chunk<T: Float + StorageElement>(h: &AdamStep) -> impl Fn(&mut [&mut [T]], &[T]) + Sync {
    let h = *h;
    let wd_grad = h.weight_decay != 0.0 && !h.decoupled;
    let decay: T = c(1.0 - h.lr * h.weight_decay);
    let decay_param = h.weight_decay != 0.0 && h.decoupled;
    let wd: T = c(h.weight_decay);
    let wd_one = h.weight_decay == 1.0;
    let lerp = Lerp::<T>::new(1.0 - h.beta1);
    let beta2: T = c(h.beta2);
    let sq_value = 1.0 - h.beta2;
    let (sq_coef, sq_one): (T, bool) = (c(sq_value), sq_value == 1.0);
    let bias_correction1 = 1.0 - h.beta1.powf(h.step);
    let bias_correction2 = 1.0 - h.beta2.powf(h.step);
    let step_size = h.lr / bias_correction1;
    let bc2_sqrt: T = c(bias_correction2.powf(0.5));
    let eps: T = c(h.eps);
    let (neg_step, step_one): (T, bool) = (c(-step_size), -step_size == 1.0);
    move |w: &mut [&mut [T]], g: &[T]| {
        let (p, rest) = w.split_first_mut().expect("adam: param");
        let (m, rest) = rest.split_first_mut().expect("adam: exp_avg");
        let (v, rest) = rest.split_first_mut().expect("adam: exp_avg_sq");
        let mut mx = rest.first_mut();
        for i in 0..g.len() {
            let mut gi = if h.maximize { -g[i] } else { g[i] };
            let mut pi = p[i];
            if decay_param {
                pi = pi * decay;
            }
            if wd_grad {
                gi = add_scaled(gi, pi, wd, wd_one);
            }
            let mi = lerp.apply(m[i], gi);
            m[i] = mi;
            let vi = if sq_one {
                v[i] * beta2 + gi * gi
            } else {
                v[i] * beta2 + gi * sq_coef * gi
            };
            v[i] = vi;
            let second = match mx.as_deref_mut() {
                Some(mx) => {
                    let s = maximum(mx[i], vi);
                    mx[i] = s;
                    s
                }
                None => vi,
            };
            let denom = second.sqrt() / bc2_sqrt + eps;
            p[i] = if step_one {
                pi + mi / denom
            } else {
                pi + mi * neg_step / denom
            };
        }
    }
}

fn sgd_chunk<T: Float + StorageElement>(
    h: &SgdStep,
    first: bool,
) -> impl Fn(&mut [&mut [T]], &[T]) + Sync {
    let h = *h;
    let has_wd = h.weight_decay != 0.0;
    let (wd, wd_one): (T, bool) = (c(h.weight_decay), h.weight_decay == 1.0);
    let has_momentum = h.momentum != 0.0;
    let (mom, mom_one): (T, bool) = (c(h.momentum), h.momentum == 1.0);
    let damp: T = c(1.0 - h.dampening);
    let neg_lr: T = c(-h.lr);
    move |w: &mut [&mut [T]], g: &[T]| {
        let (p, rest) = w.split_first_mut().expect("sgd: param");
        let mut buf = rest.first_mut();
        for i in 0..g.len() {
            let mut gi = if h.maximize { -g[i] } else { g[i] };
            if has_wd {
                gi = add_scaled(gi, p[i], wd, wd_one);
            }
            if has_momentum {
                let b = buf.as_deref_mut().expect("sgd: momentum buffer");
                let bi = if first { gi } else { b[i] * mom + gi * damp };
                b[i] = bi;
                gi = if h.nesterov {
                    add_scaled(gi, bi, mom, mom_one)
                } else {
                    bi
                };
            }
            p[i] = p[i] + gi * neg_lr;
        }
    }
}

fn rmsprop_chunk<T: Float + StorageElement>(
    h: &RmsPropStep,
    with_momentum: bool,
    centered: bool,
) -> impl Fn(&mut [&mut [T]], &[T]) + Sync {
    let h = *h;
    let has_wd = h.weight_decay != 0.0;
    let (wd, wd_one): (T, bool) = (c(h.weight_decay), h.weight_decay == 1.0);
    let alpha: T = c(h.alpha);
    let sq_value = 1.0 - h.alpha;
    let (sq_coef, sq_one): (T, bool) = (c(sq_value), sq_value == 1.0);
    let lerp = Lerp::<T>::new(1.0 - h.alpha);
    let eps: T = c(h.eps);
    let mom: T = c(h.momentum);
    let (neg_lr, neg_lr_one): (T, bool) = (c(-h.lr), -h.lr == 1.0);
    move |w: &mut [&mut [T]], g: &[T]| {
        let (p, rest) = w.split_first_mut().expect("rmsprop: param");
        let (sa, rest) = rest.split_first_mut().expect("rmsprop: square_avg");
        let (mut buf, rest) = if with_momentum {
            let (b, rest) = rest.split_first_mut().expect("rmsprop: momentum buffer");
            (Some(b), rest)
        } else {
            (None, rest)
        };
        let mut ga = if centered { rest.first_mut() } else { None };
        for i in 0..g.len() {
            let mut gi = if h.maximize { -g[i] } else { g[i] };
            if has_wd {
                gi = add_scaled(gi, p[i], wd, wd_one);
            }
            let si = if sq_one {
                sa[i] * alpha + gi * gi
            } else {
                sa[i] * alpha + gi * sq_coef * gi
            };
            sa[i] = si;
            let avg = match ga.as_deref_mut() {
                Some(ga) => {
                    let a = lerp.apply(ga[i], gi);
                    ga[i] = a;
                    (si + (-a) * a).sqrt()
                }
                None => si.sqrt(),
            } + eps;
            p[i] = match buf.as_deref_mut() {
                Some(b) => {
                    let bi = b[i] * mom + gi / avg;
                    b[i] = bi;
                    p[i] + bi * neg_lr
                }
                None if neg_lr_one => p[i] + gi / avg,
                None => p[i] + gi * neg_lr / avg,
            };
        }
    }
}

fn adagrad_chunk<T: Float + StorageElement>(
    h: &AdagradStep,
) -> impl Fn(&mut [&mut [T]], &[T]) + Sync {
    let h = *h;
    let has_wd = h.weight_decay != 0.0;
    let (wd, wd_one): (T, bool) = (c(h.weight_decay), h.weight_decay == 1.0);
    let eps: T = c(h.eps);
    let (neg_clr, neg_clr_one): (T, bool) = (c(-h.clr), -h.clr == 1.0);
    move |w: &mut [&mut [T]], g: &[T]| {
        let (p, rest) = w.split_first_mut().expect("adagrad: param");
        let s = rest.first_mut().expect("adagrad: sum");
        for i in 0..g.len() {
            let mut gi = if h.maximize { -g[i] } else { g[i] };
            if has_wd {
                gi = add_scaled(gi, p[i], wd, wd_one);
            }
            let si = s[i] + gi * gi;
            s[i] = si;
            let std = si.sqrt() + eps;
            p[i] = if neg_clr_one {
                p[i] + gi / std
            } else {
                p[i] + gi * neg_clr / std
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::no_grad;

    const SGD: SgdStep = SgdStep {
        lr: 0.5,
        momentum: 0.0,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        maximize: false,
    };

    #[test]
    fn plain_sgd_updates_in_place_and_bumps_the_version() {
        let p = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3]);
        let g = Tensor::from_vec(vec![2.0f32, -2.0, 0.0], [3]);
        let v0 = p.version();
        assert!(sgd_step(&p, &g, None, false, &SGD));
        assert_eq!(p.to_vec::<f32>(), [0.0, 3.0, 3.0]);
        assert!(p.version() > v0);
    }

    #[test]
    fn large_tensors_split_across_the_pool_match_the_inline_loop() {
        let n = 5 * threads::GRAIN + 17;
        let p = Tensor::randn([n], DType::F64);
        let g = Tensor::randn([n], DType::F64);
        let step = AdamStep {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            maximize: false,
            step: 1.0,
        };
        let (m, v) = (p.zeros_like(), p.zeros_like());
        let want: Vec<f64> = {
            let (pv, gv) = (p.to_vec::<f64>(), g.to_vec::<f64>());
            let (mut mv, mut vv) = (vec![0.0; n], vec![0.0; n]);
            let mut pv2 = pv.clone();
            adam_chunk::<f64>(&step)(&mut [&mut pv2[..], &mut mv[..], &mut vv[..]], &gv);
            pv2
        };
        assert!(adam_step(&p, &g, &m, &v, None, &step));
        assert_eq!(p.to_vec::<f64>(), want);
    }

    #[test]
    fn declines_what_it_cannot_fuse_and_changes_nothing() {
        let p = Tensor::randn([4, 5], DType::F32);
        let before = p.to_vec::<f32>();
        // A transposed (non-dense) gradient.
        let gt = Tensor::randn([5, 4], DType::F32).t();
        assert!(!sgd_step(&p, &gt, None, false, &SGD));
        // Mismatched dtype and unsupported dtype.
        assert!(!sgd_step(&p, &p.to_dtype(DType::F64), None, false, &SGD));
        let h = p.to_dtype(DType::BF16);
        assert!(!sgd_step(&h, &h.ones_like(), None, false, &SGD));
        // The gradient aliasing the parameter (the loop would lock it twice).
        assert!(!sgd_step(&p, &p.detach(), None, false, &SGD));
        // Momentum without a buffer, and a buffer aliasing the parameter.
        let mom = SgdStep {
            momentum: 0.9,
            ..SGD
        };
        let g = p.ones_like();
        assert!(!sgd_step(&p, &g, None, false, &mom));
        assert!(!sgd_step(&p, &g, Some(&p.detach()), false, &mom));
        assert_eq!(p.to_vec::<f32>(), before);
        // Gradient recording on for a parameter that requires grad.
        let w = p.detach().requires_grad_(true);
        assert!(!sgd_step(&w, &g, None, false, &SGD));
        assert!(no_grad(|| sgd_step(&w, &g, None, false, &SGD)));
    }
}
