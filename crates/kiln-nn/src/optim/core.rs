//! What every optimizer shares: parameter groups, per-parameter state indexed like PyTorch's
//! (position of the parameter across all groups), state dicts, and the torch-style in-place
//! primitives (`lerp_`, `addcmul_`, `addcdiv_`) the update rules are written with.

use super::json::{self, num};
use super::{OptimError, OptimizerState};
use crate::StateDict;
use kiln_core::{no_grad, DType, NoGradGuard, Tensor};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One parameter group: parameters plus the options that apply to them, like one entry of
/// PyTorch's `optimizer.param_groups`.
#[derive(Clone, Debug)]
pub struct ParamGroup<C> {
    /// The parameters (handles shared with the model; updates are written in place).
    pub params: Vec<Tensor>,
    /// Hyper-parameters of this group.
    pub options: C,
    /// The learning rate schedules start from (PyTorch's `group["initial_lr"]`): set by the
    /// first scheduler attached to the optimizer, `None` before.
    pub initial_lr: Option<f64>,
}

/// Hyper-parameters of one group of a particular optimizer.
pub(crate) trait GroupOptions: Clone + Send + 'static {
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
    /// The value a one-cycle schedule cycles (momentum or β₁), `None` when there is none.
    fn momentum(&self) -> Option<f64>;
    fn set_momentum(&mut self, momentum: f64);
    /// PyTorch's `ValueError` for an invalid value, as [`OptimError::InvalidHyperParameter`]
    /// (constructors panic with it, loading returns it).
    fn validate(&self) -> Result<(), OptimError>;
    fn to_json(&self) -> Map<String, Value>;
    fn from_json(m: &Map<String, Value>) -> Result<Self, OptimError>;
}

/// Per-parameter state of a particular optimizer.
pub(crate) trait ParamState: Send + Sized + 'static {
    /// Tensor names the state can hold (`exp_avg`, …).
    const NAMES: &'static [&'static str];
    /// The step count, for optimizers that keep one.
    fn step(&self) -> Option<f64>;
    /// The tensors present, by name.
    fn tensors(&self) -> Vec<(&'static str, &Tensor)>;
    /// Rebuilds a state from a loaded step count and tensors (already checked for shape and
    /// converted to the parameter's dtype; absent names are not in the map).
    fn from_parts(
        step: Option<f64>,
        tensors: &mut BTreeMap<&'static str, Tensor>,
        name: &dyn Fn(&str) -> String,
    ) -> Result<Self, OptimError>;
}

/// Parameter groups plus per-parameter state (`None` until a parameter's first update).
pub(crate) struct Core<C, S> {
    pub groups: Vec<ParamGroup<C>>,
    pub state: Vec<Option<S>>,
    /// Each group's learning rate as a 0-d f64 tensor, kept equal to its options' lr: a
    /// compiled step reads it at each call, so schedules keep working under `compile`.
    pub lr_tensors: Vec<Tensor>,
}

impl<C: GroupOptions, S: ParamState> Core<C, S> {
    pub fn new(groups: Vec<(Vec<Tensor>, C)>) -> Self {
        if groups.is_empty() {
            panic!("optimizer got an empty parameter list");
        }
        let mut core = Core {
            groups: Vec::new(),
            state: Vec::new(),
            lr_tensors: Vec::new(),
        };
        for (params, options) in groups {
            core.add_group(params, options);
        }
        core
    }

    pub fn add_group(&mut self, params: Vec<Tensor>, options: C) {
        if let Err(e) = options.validate() {
            panic!("{e}");
        }
        for (i, p) in params.iter().enumerate() {
            if !p.dtype().is_float() {
                panic!(
                    "optimizer can only optimize float tensors, got {} with shape {:?}",
                    p.dtype(),
                    p.shape()
                );
            }
            let seen_before = params[..i]
                .iter()
                .chain(self.groups.iter().flat_map(|g| &g.params))
                .any(|q| q.same(p));
            if seen_before {
                panic!("some parameters appear more than once in the optimizer's parameter groups (shape {:?})", p.shape());
            }
        }
        self.state.extend((0..params.len()).map(|_| None));
        self.lr_tensors
            .push(Tensor::scalar(options.lr(), kiln_core::DType::F64));
        self.groups.push(ParamGroup {
            params,
            options,
            initial_lr: None,
        });
    }

    /// Sets group `group`'s learning rate (options and the tensor compiled steps read).
    pub fn set_lr(&mut self, group: usize, lr: f64) {
        self.groups[group].options.set_lr(lr);
        self.sync_lr(group);
    }

    /// Copies group `group`'s option lr into its lr tensor (outside traces only: inside one
    /// the tensor is what the graph reads).
    pub fn sync_lr(&self, group: usize) {
        if kiln_core::trace::is_tracing() {
            return;
        }
        let lr = self.groups[group].options.lr();
        let t = &self.lr_tensors[group];
        if t.item::<f64>() != lr {
            kiln_core::no_grad(|| t.fill_(lr));
        }
    }

    /// Like [`Core::for_each_with_grad`], also passing the group's lr tensor (for the traced
    /// update path).
    pub fn for_each_with_grad_lr(
        &mut self,
        mut f: impl FnMut(&C, &Tensor, &Tensor, &Tensor, &mut Option<S>),
    ) {
        for g in 0..self.groups.len() {
            self.sync_lr(g);
        }
        let _guard = NoGradGuard::new();
        let mut idx = 0;
        for (g, lr) in self.groups.iter().zip(&self.lr_tensors) {
            for p in &g.params {
                if let Some(grad) = p.grad() {
                    f(&g.options, lr, p, &grad, &mut self.state[idx]);
                }
                idx += 1;
            }
        }
    }

    /// Calls `f(options, param, grad, state)` for every parameter that has a gradient, in
    /// order, with gradient recording off.
    pub fn for_each_with_grad(&mut self, mut f: impl FnMut(&C, &Tensor, &Tensor, &mut Option<S>)) {
        let _guard = NoGradGuard::new();
        let mut idx = 0;
        for g in &self.groups {
            for p in &g.params {
                if let Some(grad) = p.grad() {
                    f(&g.options, p, &grad, &mut self.state[idx]);
                }
                idx += 1;
            }
        }
    }

    /// Calls `f(options, param, state)` for every parameter (used for eager state creation).
    pub fn init_all(&mut self, mut f: impl FnMut(&C, &Tensor) -> S) {
        let _guard = NoGradGuard::new();
        let mut idx = 0;
        for g in &self.groups {
            for p in &g.params {
                if self.state[idx].is_none() {
                    self.state[idx] = Some(f(&g.options, p));
                }
                idx += 1;
            }
        }
    }

    fn params_flat(&self) -> impl Iterator<Item = &Tensor> {
        self.groups.iter().flat_map(|g| &g.params)
    }

    /// Snapshot of hyper-parameters and state (tensors are copies, not aliases).
    pub fn state_dict(&self, kind: &str) -> OptimizerState {
        let mut tensors = StateDict::new();
        let mut state = Map::new();
        no_grad(|| {
            for (i, s) in self.state.iter().enumerate() {
                let Some(s) = s else { continue };
                let mut entry = Map::new();
                if let Some(step) = s.step() {
                    entry.insert("step".into(), num(step));
                }
                for (name, t) in s.tensors() {
                    tensors.insert(format!("state.{i}.{name}"), t.copy());
                }
                state.insert(i.to_string(), Value::Object(entry));
            }
        });
        let mut start = 0;
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| {
                let mut m = g.options.to_json();
                if let Some(lr0) = g.initial_lr {
                    m.insert("initial_lr".into(), num(lr0));
                }
                m.insert(
                    "params".into(),
                    Value::from((start..start + g.params.len()).collect::<Vec<_>>()),
                );
                start += g.params.len();
                Value::Object(m)
            })
            .collect();
        let mut meta = Map::new();
        meta.insert("kind".into(), Value::from(kind));
        meta.insert("param_groups".into(), Value::Array(groups));
        meta.insert("state".into(), Value::Object(state));
        OptimizerState {
            tensors,
            meta: Value::Object(meta),
        }
    }

    /// Validates everything first, then replaces options and state (PyTorch semantics: the
    /// checkpoint's hyper-parameters win; parameters are matched by position).
    pub fn load_state_dict(&mut self, kind: &str, st: &OptimizerState) -> Result<(), OptimError> {
        let meta = json::object(&st.meta, "optimizer state")?;
        json::check_kind(meta, kind)?;
        let groups = meta
            .get("param_groups")
            .and_then(Value::as_array)
            .ok_or_else(|| OptimError::Malformed("missing list `param_groups`".into()))?;
        if groups.len() != self.groups.len() {
            return Err(OptimError::GroupCount {
                expected: self.groups.len(),
                found: groups.len(),
            });
        }
        // Saved parameter id → flat position here, group by group.
        let mut id_to_pos: BTreeMap<String, usize> = BTreeMap::new();
        let mut new_options = Vec::with_capacity(groups.len());
        let mut pos = 0;
        for (gi, (saved, mine)) in groups.iter().zip(&self.groups).enumerate() {
            let m = json::object(saved, "parameter group")?;
            let ids = json::i64s_field(m, "params")?;
            if ids.len() != mine.params.len() {
                return Err(OptimError::GroupSize {
                    group: gi,
                    expected: mine.params.len(),
                    found: ids.len(),
                });
            }
            for id in ids {
                if id_to_pos.insert(id.to_string(), pos).is_some() {
                    return Err(OptimError::Malformed(format!(
                        "parameter id {id} appears twice"
                    )));
                }
                pos += 1;
            }
            let options = C::from_json(m)?;
            // The same checks as the constructors: a checkpoint with `lr: -1` must not resume.
            options.validate()?;
            let initial_lr = json::opt_f64_field(m, "initial_lr")?;
            if let Some(lr0) = initial_lr {
                check(lr0 >= 0.0, "initial_lr", lr0)?;
            }
            new_options.push((options, initial_lr));
        }
        let params: Vec<&Tensor> = self.params_flat().collect();
        let saved_state = match meta.get("state") {
            None | Some(Value::Null) => Map::new(),
            Some(v) => json::object(v, "`state`")?.clone(),
        };
        // Every tensor must be `state.<id>.<known name>` for an id with a state entry.
        let mut by_id: BTreeMap<&str, BTreeMap<&'static str, &Tensor>> = BTreeMap::new();
        for (name, t) in st.tensors.iter() {
            let unexpected = || OptimError::UnexpectedTensor(name.to_string());
            let rest = name.strip_prefix("state.").ok_or_else(unexpected)?;
            let (id, short) = rest.split_once('.').ok_or_else(unexpected)?;
            let known = S::NAMES
                .iter()
                .find(|n| **n == short)
                .ok_or_else(unexpected)?;
            if !saved_state.contains_key(id) {
                return Err(unexpected());
            }
            by_id.entry(id).or_default().insert(known, t);
        }
        let mut new_state: Vec<Option<S>> = (0..params.len()).map(|_| None).collect();
        for (id, entry) in &saved_state {
            let &p = id_to_pos
                .get(id)
                .ok_or_else(|| OptimError::UnknownParam(id.clone()))?;
            let param = params[p];
            let entry = json::object(entry, "parameter state")?;
            let step = json::opt_f64_field(entry, "step")?;
            if let Some(step) = step {
                // PyTorch counts steps in a float; anything but a whole count ≥ 0 breaks the
                // bias corrections.
                if !(step >= 0.0 && step.fract() == 0.0) {
                    return Err(OptimError::Malformed(format!(
                        "step count {step} of state.{id} is not a whole number ≥ 0"
                    )));
                }
            }
            let mut found: BTreeMap<&'static str, Tensor> = BTreeMap::new();
            for (&short, &t) in by_id.get(id.as_str()).into_iter().flatten() {
                if t.shape() != param.shape() {
                    return Err(OptimError::ShapeMismatch {
                        name: format!("state.{id}.{short}"),
                        expected: param.shape().to_vec(),
                        found: t.shape().to_vec(),
                    });
                }
                let copy = param.zeros_like();
                no_grad(|| copy.copy_(t));
                found.insert(short, copy);
            }
            let name_of = |n: &str| format!("state.{id}.{n}");
            new_state[p] = Some(S::from_parts(step, &mut found, &name_of)?);
        }
        for (g, (options, initial_lr)) in self.groups.iter_mut().zip(new_options) {
            g.options = options;
            g.initial_lr = initial_lr;
        }
        self.state = new_state;
        Ok(())
    }
}

/// Takes a required tensor out of loaded parts.
pub(crate) fn take(
    parts: &mut BTreeMap<&'static str, Tensor>,
    key: &'static str,
    name: &dyn Fn(&str) -> String,
) -> Result<Tensor, OptimError> {
    parts
        .remove(key)
        .ok_or_else(|| OptimError::MissingTensor(name(key)))
}

/// Requires a step count.
pub(crate) fn need_step(
    step: Option<f64>,
    name: &dyn Fn(&str) -> String,
) -> Result<f64, OptimError> {
    step.ok_or_else(|| OptimError::Malformed(format!("missing step count for {}", name("step"))))
}

// ---- fused fast path ----

#[cfg(test)]
thread_local! {
    static FORCE_COMPOSITE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether an update may take the fused single-pass kernel of `kiln_core::ops::fused_optim`:
/// never while tracing, where the update is recorded instead (see [`use_traced_kernel`]). The
/// kernels themselves decline other cases (views, aliasing, half dtypes) and the caller then
/// runs the composite path.
pub(crate) fn use_fused() -> bool {
    !composite_forced() && !kiln_core::trace::is_tracing()
}

/// Whether a traced update may record the optimizer's graph op (which runs the fused kernel
/// when the graph runs) instead of its composite tensor ops.
pub(crate) fn use_traced_kernel() -> bool {
    !composite_forced() && kiln_core::trace::is_tracing()
}

/// Tests force the composite path to compare it with the kernels.
fn composite_forced() -> bool {
    #[cfg(test)]
    if FORCE_COMPOSITE.with(|c| c.get()) {
        return true;
    }
    false
}

/// Runs `f` with the fused path off on this thread (tests compare the two paths).
#[cfg(test)]
pub(crate) fn composite_only<R>(f: impl FnOnce() -> R) -> R {
    FORCE_COMPOSITE.with(|c| c.set(true));
    let r = f();
    FORCE_COMPOSITE.with(|c| c.set(false));
    r
}

// ---- the traced (compile) path ----

/// A 0-d tensor of `v` in `dtype` (a literal of the traced graph).
pub(crate) fn lit(v: f64, dtype: kiln_core::DType) -> Tensor {
    Tensor::scalar(v, dtype)
}

/// `lr` (a 0-d f64 tensor) times `k`, as a 0-d tensor in `dtype`: a step size that the
/// compiled graph recomputes from the current lr at each call.
pub(crate) fn lr_times(lr: &Tensor, k: f64, dtype: kiln_core::DType) -> Tensor {
    lr.mul_scalar(k).to_dtype(dtype)
}

// ---- torch-style primitives (exact operation order of ATen's CPU kernels) ----

/// `v` rounded to the precision of `dtype`, so scalar arithmetic done in f64 here matches
/// arithmetic PyTorch does on a scalar already converted to the tensor's dtype.
fn in_dtype(v: f64, dtype: DType) -> f64 {
    match dtype {
        DType::F32 => v as f32 as f64,
        _ => v,
    }
}

/// `a + alpha · b` (like `torch.add(a, b, alpha=alpha)`).
pub(crate) fn add_scaled(a: &Tensor, b: &Tensor, alpha: f64) -> Tensor {
    if alpha == 1.0 {
        a + b
    } else {
        a + &b.mul_scalar(alpha)
    }
}

/// `x.lerp_(end, w)`: `x + w·(end − x)` for |w| < 0.5, else `end − (end − x)·(1 − w)`.
pub(crate) fn lerp_(x: &Tensor, end: &Tensor, w: f64) {
    let diff = end - x;
    if w.abs() < 0.5 {
        x.add_(&diff.mul_scalar(w));
    } else {
        let w = in_dtype(w, x.dtype());
        x.copy_(&(end - &diff.mul_scalar(1.0 - w)));
    }
}

/// `x.addcmul_(t1, t2, value)`: `x + (value · t1) · t2`.
pub(crate) fn addcmul_(x: &Tensor, t1: &Tensor, t2: &Tensor, value: f64) {
    if value == 1.0 {
        x.add_(&(t1 * t2));
    } else {
        x.add_(&(&t1.mul_scalar(value) * t2));
    }
}

/// `x.addcdiv_(t1, t2, value)`: `x + (value · t1) / t2`.
pub(crate) fn addcdiv_(x: &Tensor, t1: &Tensor, t2: &Tensor, value: f64) {
    if value == 1.0 {
        x.add_(&(t1 / t2));
    } else {
        x.add_(&(&t1.mul_scalar(value) / t2));
    }
}

/// The gradient the update rule sees: negated when maximizing.
pub(crate) fn signed_grad(grad: &Tensor, maximize: bool) -> Tensor {
    if maximize {
        grad.neg()
    } else {
        grad.clone()
    }
}

/// PyTorch's message for an invalid value unless `ok`.
pub(crate) fn check(ok: bool, what: &str, value: impl std::fmt::Display) -> Result<(), OptimError> {
    if ok {
        Ok(())
    } else {
        Err(OptimError::InvalidHyperParameter(format!(
            "Invalid {what} value: {value}"
        )))
    }
}

/// Implements the constructors, group accessors and [`Optimizer`](super::Optimizer) for an
/// optimizer struct holding `core: Core<$cfg, $state>` and an inherent `fn update(&mut self)`.
macro_rules! optimizer_common {
    ($ty:ident, $cfg:ident, $kind:literal) => {
        impl $ty {
            /// One parameter group with the default options and learning rate `lr`.
            pub fn new(params: Vec<Tensor>, lr: f64) -> $ty {
                $ty::with_config(
                    params,
                    $cfg {
                        lr,
                        ..$cfg::default()
                    },
                )
            }

            /// One parameter group with the given options.
            pub fn with_config(params: Vec<Tensor>, config: $cfg) -> $ty {
                $ty::with_groups(vec![(params, config)])
            }

            /// Several parameter groups, each with its own options (PyTorch's list of dicts).
            ///
            /// Panics when `groups` is empty, a parameter appears twice, or an option is
            /// invalid (like PyTorch's `ValueError`s).
            pub fn with_groups(groups: Vec<(Vec<Tensor>, $cfg)>) -> $ty {
                let mut opt = $ty {
                    core: $crate::optim::core::Core::new(groups),
                };
                opt.after_add();
                opt
            }

            /// Adds a parameter group (like `optimizer.add_param_group`).
            pub fn add_param_group(&mut self, params: Vec<Tensor>, config: $cfg) {
                self.core.add_group(params, config);
                self.after_add();
            }

            /// The parameter groups.
            pub fn param_groups(&self) -> &[$crate::optim::ParamGroup<$cfg>] {
                &self.core.groups
            }

            /// Mutable options of group `group` (to change hyper-parameters mid-training).
            pub fn options_mut(&mut self, group: usize) -> &mut $cfg {
                &mut self.core.groups[group].options
            }
        }

        impl $crate::optim::Optimizer for $ty {
            fn step(&mut self) {
                self.update();
            }

            fn kind(&self) -> &'static str {
                $kind
            }

            fn num_groups(&self) -> usize {
                self.core.groups.len()
            }

            fn group_params(&self, group: usize) -> &[Tensor] {
                &self.core.groups[group].params
            }

            fn group_lr(&self, group: usize) -> f64 {
                $crate::optim::core::GroupOptions::lr(&self.core.groups[group].options)
            }

            fn set_group_lr(&mut self, group: usize, lr: f64) {
                self.core.set_lr(group, lr)
            }

            fn group_initial_lr(&self, group: usize) -> Option<f64> {
                self.core.groups[group].initial_lr
            }

            fn set_group_initial_lr(&mut self, group: usize, lr: Option<f64>) {
                self.core.groups[group].initial_lr = lr;
            }

            fn group_momentum(&self, group: usize) -> Option<f64> {
                $crate::optim::core::GroupOptions::momentum(&self.core.groups[group].options)
            }

            fn set_group_momentum(&mut self, group: usize, momentum: f64) {
                $crate::optim::core::GroupOptions::set_momentum(
                    &mut self.core.groups[group].options,
                    momentum,
                )
            }

            fn state_dict(&self) -> $crate::optim::OptimizerState {
                self.core.state_dict($kind)
            }

            fn load_state_dict(
                &mut self,
                state: &$crate::optim::OptimizerState,
            ) -> Result<(), $crate::optim::OptimError> {
                self.core.load_state_dict($kind, state)?;
                self.after_add();
                Ok(())
            }
        }
    };
}

pub(crate) use optimizer_common;
