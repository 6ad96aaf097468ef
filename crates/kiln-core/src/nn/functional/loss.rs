//! Loss functions: cross entropy and NLL over class indices (with class weights, label
//! smoothing and an ignored index), regression losses, binary cross entropy and KL divergence.
//! Reductions follow PyTorch exactly, including its weighted means.

use super::activation::stable_softplus;
use super::softmax::log_softmax;
use crate::dtype::DType;
use crate::tensor::Tensor;

/// How a loss reduces its elementwise values, like PyTorch's `reduction=` argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Keep one loss per element (`"none"`).
    None,
    /// The mean over elements (`"mean"`, the default); weighted losses divide by the weight sum.
    #[default]
    Mean,
    /// The sum over elements (`"sum"`).
    Sum,
}

/// The reductions of [`kl_div`]: [`Reduction`]'s plus `BatchMean`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KlDivReduction {
    /// Keep one value per element.
    None,
    /// The mean over all elements (PyTorch's default, though not the true KL divergence).
    #[default]
    Mean,
    /// The sum over all elements.
    Sum,
    /// The sum divided by the batch size (dim 0): the mathematically correct KL divergence.
    BatchMean,
}

impl From<Reduction> for KlDivReduction {
    fn from(r: Reduction) -> KlDivReduction {
        match r {
            Reduction::None => KlDivReduction::None,
            Reduction::Mean => KlDivReduction::Mean,
            Reduction::Sum => KlDivReduction::Sum,
        }
    }
}

#[track_caller]
fn reduce(t: Tensor, reduction: Reduction) -> Tensor {
    match reduction {
        Reduction::None => t,
        Reduction::Mean => t.mean_all(),
        Reduction::Sum => t.sum_all(),
    }
}

/// Options of [`cross_entropy`] (PyTorch's keyword arguments).
#[derive(Clone, Debug)]
pub struct CrossEntropyOptions {
    /// Per-class weights, shape `[C]`.
    pub weight: Option<Tensor>,
    /// Targets equal to this class index contribute nothing (PyTorch's default is −100);
    /// `None` ignores nothing.
    pub ignore_index: Option<i64>,
    /// Mixes the targets with the uniform distribution: `(1 − ε)·target + ε/C`.
    pub label_smoothing: f64,
    /// How to reduce the per-element losses.
    pub reduction: Reduction,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions {
            weight: None,
            ignore_index: Some(-100),
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
        }
    }
}

/// Options of [`nll_loss`] (PyTorch's keyword arguments).
#[derive(Clone, Debug)]
pub struct NllLossOptions {
    /// Per-class weights, shape `[C]`.
    pub weight: Option<Tensor>,
    /// Targets equal to this class index contribute nothing (default −100); `None` ignores
    /// nothing.
    pub ignore_index: Option<i64>,
    /// How to reduce the per-element losses.
    pub reduction: Reduction,
}

impl Default for NllLossOptions {
    fn default() -> Self {
        NllLossOptions {
            weight: None,
            ignore_index: Some(-100),
            reduction: Reduction::Mean,
        }
    }
}

/// Moves the class dim (1, or 0 for an unbatched `[C]` input) last and flattens the rest:
/// `[N, C, d1, …]` → `[N·d1·…, C]`.
#[track_caller]
fn classes_last(x: &Tensor, op: &str) -> Tensor {
    match x.rank() {
        0 => panic!("{op}: input must have a class dim, got a 0-d tensor"),
        1 => x.unsqueeze(0),
        2 => x.clone(),
        r => {
            let mut perm: Vec<usize> = vec![0];
            perm.extend(2..r);
            perm.push(1);
            x.permute(perm).reshape([-1, x.shape()[1] as i64])
        }
    }
}

/// The shape of per-element losses (the target shape) for an input of `x_shape`.
fn loss_shape(x_shape: &[usize]) -> Vec<usize> {
    let mut s = x_shape.to_vec();
    if s.len() == 1 {
        s.clear();
    } else {
        s.remove(1);
    }
    s
}

#[track_caller]
fn check_class_targets(input: &Tensor, target: &Tensor, op: &str) {
    if target.dtype().is_float() || target.dtype() == DType::Bool {
        panic!(
            "{op}: expected integer class-index targets, got {} with shape {:?}",
            target.dtype(),
            target.shape()
        );
    }
    if target.shape() != loss_shape(input.shape()).as_slice() {
        panic!(
            "{op}: input {:?} needs class-index targets of shape {:?}, got {:?}",
            input.shape(),
            loss_shape(input.shape()),
            target.shape()
        );
    }
}

/// Panics, naming `op`, when an eager class index lies outside `[0, classes)` (and is not
/// `ignore_index`); a traced target has no values to check.
#[track_caller]
fn check_label_range(target: &Tensor, classes: usize, ignore_index: Option<i64>, op: &str) {
    if crate::trace::is_tracing() || crate::trace::is_tracer(target) {
        return;
    }
    let labels = target.to_vec::<i64>();
    let bad = labels
        .iter()
        .position(|&l| Some(l) != ignore_index && !(0..classes as i64).contains(&l));
    if let Some(i) = bad {
        panic!(
            "{op}: target {} at position {i} is not a class index: labels must be integers in \
             [0, {classes}) for an input with {classes} classes{}",
            labels[i],
            match ignore_index {
                Some(ii) => format!(" (or ignore_index {ii})"),
                None => String::new(),
            }
        );
    }
}

/// Negative log-likelihood of log-probabilities `logp` (`[M, C]`) at class indices `target`
/// (`[M]`), optionally mixed with the label-smoothing term, as PyTorch defines both.
#[allow(clippy::too_many_arguments)]
#[track_caller]
fn nll_core(
    logp: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    ignore_index: Option<i64>,
    label_smoothing: f64,
    reduction: Reduction,
    out_shape: &[usize],
    op: &str,
) -> Tensor {
    let classes = logp.shape()[1];
    if let Some(w) = weight {
        if w.shape() != [classes] {
            panic!(
                "{op}: weight must have shape [{classes}] (one per class), got {:?}",
                w.shape()
            );
        }
    }
    let target = target.to_dtype(DType::I64);
    check_label_range(&target, classes, ignore_index, op);
    let valid = ignore_index.map(|ii| target.ne_scalar(ii as f64));
    let safe_target = match &valid {
        Some(v) => Tensor::where_(v, &target, &Tensor::scalar(0.0, DType::I64)),
        None => target,
    };
    let zero = Tensor::scalar(0.0, logp.dtype());
    let mask = |t: Tensor| match &valid {
        Some(v) => Tensor::where_(v, &t, &zero),
        None => t,
    };
    let picked = logp.gather(1, &safe_target.unsqueeze(1)).squeeze(1);
    // Per-target weights (zero where ignored): the mean divides by their sum.
    let raw_weight = weight.map(|w| w.index_select(0, &safe_target));
    let nll = mask(match &raw_weight {
        Some(w) => -(&picked * w),
        None => -picked,
    });
    let target_weight = raw_weight.map(mask);
    let denom = || match (&target_weight, &valid) {
        (Some(w), _) => w.sum_all(),
        (None, Some(v)) => v.to_dtype(logp.dtype()).sum_all(),
        (None, None) => logp.count([0], logp.dtype()),
    };
    let finish = |t: Tensor| match reduction {
        Reduction::None => t.reshape(out_shape),
        Reduction::Sum => t.sum_all(),
        Reduction::Mean => &t.sum_all() / &denom(),
    };
    if label_smoothing == 0.0 {
        return finish(nll);
    }
    let smooth = match weight {
        Some(w) => -(logp * w).sum([1], false),
        None => -logp.sum([1], false),
    };
    let smooth = mask(smooth);
    &finish(nll).mul_scalar(1.0 - label_smoothing)
        + &finish(smooth).mul_scalar(label_smoothing / classes as f64)
}

/// Cross-entropy between logits `[N, C, ...]` and i64 class indices `[N, ...]`, averaged, with
/// PyTorch's defaults (no weights, `ignore_index = -100`, no label smoothing). See
/// [`cross_entropy_with`] for the options.
#[track_caller]
pub fn cross_entropy(input: &Tensor, target: &Tensor) -> Tensor {
    cross_entropy_with(input, target, &CrossEntropyOptions::default())
}

/// Cross entropy between logits `input` (`[N, C]`, `[N, C, d1, …]` or unbatched `[C]`) and
/// `target`, like `F.cross_entropy`.
///
/// `target` holds either integer class indices (shape `[N]`, `[N, d1, …]` or `[]`), with
/// `weight`, `ignore_index` and `label_smoothing` exactly as PyTorch defines them (the weighted
/// mean divides by the summed weights of the non-ignored targets), or class probabilities of
/// the input's shape.
#[track_caller]
pub fn cross_entropy_with(input: &Tensor, target: &Tensor, opts: &CrossEntropyOptions) -> Tensor {
    let ls = opts.label_smoothing;
    if !(0.0..=1.0).contains(&ls) {
        panic!("cross_entropy: label_smoothing must be in [0, 1], got {ls}");
    }
    let class_dim = if input.rank() == 1 { 0 } else { 1 };
    let logp = log_softmax(input, class_dim);
    if target.dtype().is_float() {
        return soft_cross_entropy(&logp, target, opts);
    }
    check_class_targets(input, target, "cross_entropy");
    nll_core(
        &classes_last(&logp, "cross_entropy"),
        &target.flatten_all(),
        opts.weight.as_ref(),
        opts.ignore_index,
        ls,
        opts.reduction,
        target.shape(),
        "cross_entropy",
    )
}

/// Cross entropy against class probabilities (targets of the input's shape).
#[track_caller]
fn soft_cross_entropy(logp: &Tensor, target: &Tensor, opts: &CrossEntropyOptions) -> Tensor {
    if target.shape() == loss_shape(logp.shape()).as_slice() {
        // The shape of class indices: the labels were made float by mistake.
        panic!(
            "cross_entropy: class-index targets must be an integer tensor (i64), got {} with \
             shape {:?}; convert them with `target.to_dtype(DType::I64)` (or pass class \
             probabilities of the input's shape {:?})",
            target.dtype(),
            target.shape(),
            logp.shape()
        );
    }
    if target.shape() != logp.shape() {
        panic!(
            "cross_entropy: probability targets must have the input's shape {:?}, got {:?}",
            logp.shape(),
            target.shape()
        );
    }
    let class_dim = if logp.rank() == 1 { 0 } else { 1 };
    let classes = logp.shape()[class_dim];
    let ls = opts.label_smoothing;
    let target = if ls > 0.0 {
        target.affine(1.0 - ls, ls / classes as f64)
    } else {
        target.clone()
    };
    let mut prod = logp * &target;
    if let Some(w) = &opts.weight {
        let mut shape = vec![1usize; logp.rank()];
        shape[class_dim] = classes;
        prod = &prod * &w.reshape(shape);
    }
    reduce(-prod.sum([class_dim], false), opts.reduction)
}

/// Negative log-likelihood of log-probabilities `input` (`[N, C]`, `[N, C, d1, …]` or `[C]`)
/// at integer class indices `target`, like `F.nll_loss`.
#[track_caller]
pub fn nll_loss(input: &Tensor, target: &Tensor, opts: &NllLossOptions) -> Tensor {
    check_class_targets(input, target, "nll_loss");
    nll_core(
        &classes_last(input, "nll_loss"),
        &target.flatten_all(),
        opts.weight.as_ref(),
        opts.ignore_index,
        0.0,
        opts.reduction,
        target.shape(),
        "nll_loss",
    )
}

/// Panics, naming `op`, when broadcasting an elementwise loss's target would enlarge the
/// input: that compares every prediction with every target, e.g. `[N, 1]` against `[N]`
/// gives an `[N, N]` loss and trains a wrong model without a word (PyTorch only warns). A
/// target that broadcasts to the input's shape (the same target for every row) is fine.
#[track_caller]
fn check_same_shape(input: &Tensor, target: &Tensor, op: &str) {
    let fits = crate::shape::broadcast_shapes(input.shape(), target.shape())
        .is_some_and(|s| s.as_slice() == input.shape());
    if fits {
        return;
    }
    let hint: String = match (input.shape(), target.shape()) {
        ([n, 1], [m]) if n == m => {
            "; use `target.unsqueeze(1)` (or `input.squeeze(1)`) to compare them one to one".into()
        }
        ([n], [m, 1]) if n == m => {
            "; use `target.squeeze(1)` (or `input.unsqueeze(1)`) to compare them one to one".into()
        }
        _ => String::new(),
    };
    panic!(
        "{op}: input {:?} ({}) and target {:?} ({}) must have the same shape (or the target \
         one that broadcasts to it); broadcasting them would compare every input with every \
         target{hint}",
        input.shape(),
        input.dtype(),
        target.shape(),
        target.dtype()
    );
}

/// Mean squared error `(input − target)²`, like `F.mse_loss`; the target must have the
/// input's shape or broadcast to it.
#[track_caller]
pub fn mse_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    check_same_shape(input, target, "mse_loss");
    reduce((input - target).square(), reduction)
}

/// Mean absolute error `|input − target|`, like `F.l1_loss`.
#[track_caller]
pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    check_same_shape(input, target, "l1_loss");
    reduce((input - target).abs(), reduction)
}

/// `0.5·d²/β` where `d = |input − target| < β`, else `d − 0.5·β`, like
/// `F.smooth_l1_loss` (PyTorch's default `beta` is 1; `beta = 0` is the L1 loss).
#[track_caller]
pub fn smooth_l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction, beta: f64) -> Tensor {
    if beta < 0.0 {
        panic!("smooth_l1_loss: beta must be non-negative, got {beta}");
    }
    check_same_shape(input, target, "smooth_l1_loss");
    if beta == 0.0 {
        return l1_loss(input, target, reduction);
    }
    let d = (input - target).abs();
    let quad = d.square().mul_scalar(0.5 / beta);
    let lin = d.sub_scalar(0.5 * beta);
    reduce(Tensor::where_(&d.lt_scalar(beta), &quad, &lin), reduction)
}

/// `0.5·d²` where `d = |input − target| < δ`, else `δ·(d − 0.5·δ)`, like `F.huber_loss`
/// (PyTorch's default `delta` is 1).
#[track_caller]
pub fn huber_loss(input: &Tensor, target: &Tensor, reduction: Reduction, delta: f64) -> Tensor {
    if delta <= 0.0 {
        panic!("huber_loss: delta must be positive, got {delta}");
    }
    check_same_shape(input, target, "huber_loss");
    let d = (input - target).abs();
    let quad = d.square().mul_scalar(0.5);
    let lin = d.affine(delta, -0.5 * delta * delta);
    reduce(Tensor::where_(&d.lt_scalar(delta), &quad, &lin), reduction)
}

/// `log(u)` floored at −100 like PyTorch's BCE, with a finite gradient even at `u = 0`.
fn clamped_log(u: &Tensor) -> Tensor {
    u.clamp_min((-100f64).exp()).log().clamp_min(-100.0)
}

/// Binary cross entropy of probabilities `input` against `target` (same shape),
/// `−w·(t·log x + (1 − t)·log(1 − x))` with the logs floored at −100, like
/// `F.binary_cross_entropy`.
#[track_caller]
pub fn binary_cross_entropy(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    reduction: Reduction,
) -> Tensor {
    if input.shape() != target.shape() {
        panic!(
            "binary_cross_entropy: target shape {:?} must match input shape {:?}",
            target.shape(),
            input.shape()
        );
    }
    let pos = target * &clamped_log(input);
    let neg = &target.affine(-1.0, 1.0) * &clamped_log(&input.affine(-1.0, 1.0));
    let mut loss = -(&pos + &neg);
    if let Some(w) = weight {
        loss = &loss * w;
    }
    reduce(loss, reduction)
}

/// Binary cross entropy of logits, in the stable form
/// `(1 − t)·x + (1 + (p − 1)·t)·log(1 + e^−x)`, like `F.binary_cross_entropy_with_logits`.
/// `weight` multiplies each element's loss; `pos_weight` (broadcast along the last dim, one per
/// class) weighs the positive term.
#[track_caller]
pub fn binary_cross_entropy_with_logits(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    reduction: Reduction,
    pos_weight: Option<&Tensor>,
) -> Tensor {
    if input.shape() != target.shape() {
        panic!(
            "binary_cross_entropy_with_logits: target shape {:?} must match input shape {:?}",
            target.shape(),
            input.shape()
        );
    }
    // −log σ(x) = softplus(−x)
    let neg_log_sig = stable_softplus(&input.neg());
    let lin = &target.affine(-1.0, 1.0) * input;
    let mut loss = match pos_weight {
        Some(pw) => {
            let log_weight = &(&pw.add_scalar(-1.0) * target).add_scalar(1.0);
            &lin + &(log_weight * &neg_log_sig)
        }
        None => &lin + &neg_log_sig,
    };
    if let Some(w) = weight {
        loss = &loss * w;
    }
    reduce(loss, reduction)
}

/// Kullback–Leibler divergence with `input` as log-probabilities, like `F.kl_div`:
/// pointwise `t·(log t − input)` (0 where `t = 0`), or `eᵗ·(t − input)` with `log_target`.
#[track_caller]
pub fn kl_div(
    input: &Tensor,
    target: &Tensor,
    reduction: impl Into<KlDivReduction>,
    log_target: bool,
) -> Tensor {
    let pointwise = if log_target {
        &target.exp() * &(target - input)
    } else {
        // xlogy(t, t) − t·input, with 0·log 0 = 0 and no NaN in the gradient.
        let zero = target.eq_scalar(0.0);
        let safe = target.masked_fill(&zero, 1.0);
        let xlogx = Tensor::where_(&zero, &target.zeros_like(), &(target * &safe.log()));
        &xlogx - &(target * input)
    };
    match reduction.into() {
        KlDivReduction::None => pointwise,
        KlDivReduction::Mean => pointwise.mean_all(),
        KlDivReduction::Sum => pointwise.sum_all(),
        KlDivReduction::BatchMean => {
            let batch = if input.rank() == 0 {
                1
            } else {
                input.shape()[0]
            };
            pointwise.sum_all().mul_scalar(1.0 / batch as f64)
        }
    }
}
