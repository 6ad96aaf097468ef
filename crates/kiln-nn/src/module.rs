//! `ModuleBase`: a tree of submodules with named parameters and buffers, train/eval
//! mode, and state dicts with PyTorch's dotted names.

use kiln_core::{no_grad, Device, Tensor};
use std::fmt;

/// An ordered list of (dotted name, tensor), like PyTorch's `state_dict()`.
#[derive(Clone, Default)]
pub struct StateDict {
    entries: Vec<(String, Tensor)>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> StateDict {
        StateDict::default()
    }

    /// Appends or replaces an entry.
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        let name = name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 = t,
            None => self.entries.push((name, t)),
        }
    }

    /// The tensor stored under `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Names in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The same entries with `prefix` put before every name (tensors shared, not copied).
    /// The prefix includes its separator, as in PyTorch: `sd.prefixed("encoder.")`.
    pub fn prefixed(&self, prefix: &str) -> StateDict {
        self.iter()
            .map(|(n, t)| (format!("{prefix}{n}"), t.clone()))
            .collect()
    }

    /// The entries whose names start with `prefix`, with it removed (tensors shared, not
    /// copied): the inverse of [`StateDict::prefixed`].
    pub fn strip_prefix(&self, prefix: &str) -> StateDict {
        self.iter()
            .filter_map(|(n, t)| Some((n.strip_prefix(prefix)?.to_string(), t.clone())))
            .collect()
    }
}

impl Extend<(String, Tensor)> for StateDict {
    /// Inserts every entry (replacing entries of the same name).
    fn extend<I: IntoIterator<Item = (String, Tensor)>>(&mut self, iter: I) {
        for (n, t) in iter {
            self.insert(n, t);
        }
    }
}

impl IntoIterator for StateDict {
    type Item = (String, Tensor);
    type IntoIter = std::vec::IntoIter<(String, Tensor)>;

    /// The entries in order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, Tensor)> for StateDict {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> StateDict {
        let mut sd = StateDict::new();
        sd.extend(iter);
        sd
    }
}

impl fmt::Debug for StateDict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(n, t)| (n, format!("{:?} {}", t.shape(), t.dtype()))),
            )
            .finish()
    }
}

/// Why `load_state_dict` refused a state dict; every offending name is listed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDictError {
    /// Keys the module has but the state dict lacks.
    pub missing: Vec<String>,
    /// Keys the state dict has but the module lacks.
    pub unexpected: Vec<String>,
    /// (key, expected shape, found shape).
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl StateDictError {
    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl fmt::Display for StateDictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error(s) in loading state_dict:")?;
        if !self.missing.is_empty() {
            write!(f, " missing key(s): {};", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, " unexpected key(s): {};", self.unexpected.join(", "))?;
        }
        for (k, want, got) in &self.mismatched {
            write!(
                f,
                " size mismatch for {k}: checkpoint has shape {got:?}, the model has {want:?};"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for StateDictError {}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Checks `sd` against a module's own state dict `own`: shapes always, missing and
/// unexpected keys with `strict`.
fn check_against(own: &StateDict, sd: &StateDict, strict: bool) -> Result<(), StateDictError> {
    let mut err = StateDictError::default();
    for (name, t) in own.iter() {
        match sd.get(name) {
            None => err.missing.push(name.to_string()),
            Some(src) if src.shape() != t.shape() => {
                err.mismatched
                    .push((name.to_string(), t.shape().to_vec(), src.shape().to_vec()))
            }
            Some(_) => {}
        }
    }
    err.unexpected = sd
        .keys()
        .filter(|k| own.get(k).is_none())
        .map(str::to_string)
        .collect();
    if !strict {
        err.missing.clear();
        err.unexpected.clear();
    }
    if err.is_empty() {
        Ok(())
    } else {
        Err(err)
    }
}

/// The structure of a module: submodules, parameters, buffers and mode. `#[derive(Module)]`
/// implements the three required-by-convention methods; everything else is provided.
pub trait ModuleBase: Send + Sync {
    /// Direct submodules with their names.
    fn children(&self) -> Vec<(String, &dyn ModuleBase)> {
        Vec::new()
    }

    /// This module's own parameters (not its children's).
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// This module's own buffers (running statistics and other non-trained state).
    fn own_buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Sets this module's own training flag (layers that behave differently override this).
    fn set_own_training(&self, _training: bool) {}

    /// This module's own training flag, if it has one.
    fn own_training(&self) -> Option<bool> {
        None
    }

    /// All parameters with dotted names (`blocks.0.attn.in_proj_weight`), in definition order.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        walk_dyn(self.as_dyn(), "", &mut |p, m| {
            out.extend(
                m.own_parameters()
                    .into_iter()
                    .map(|(n, t)| (join(p, &n), t)),
            );
        });
        out
    }

    /// All parameters.
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// All buffers with dotted names.
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        walk_dyn(self.as_dyn(), "", &mut |p, m| {
            out.extend(m.own_buffers().into_iter().map(|(n, t)| (join(p, &n), t)));
        });
        out
    }

    /// Parameters and buffers, per module (parameters first), parents before children — the
    /// order and names of PyTorch's `state_dict()`. Tensors are shared, not copied.
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        walk_dyn(self.as_dyn(), "", &mut |p, m| {
            for (n, t) in m.own_parameters().into_iter().chain(m.own_buffers()) {
                sd.insert(join(p, &n), t.detach());
            }
        });
        sd
    }

    /// Copies values from `sd` into this module's parameters and buffers (in place, so
    /// optimizers holding them see the new values). With `strict`, missing and unexpected keys
    /// are errors; shape mismatches always are. Nothing is modified when an error is returned.
    fn load_state_dict(&self, sd: &StateDict, strict: bool) -> Result<(), StateDictError> {
        let own = self.state_dict();
        check_against(&own, sd, strict)?;
        no_grad(|| {
            for (name, t) in own.iter() {
                if let Some(src) = sd.get(name) {
                    t.copy_(src);
                }
            }
        });
        Ok(())
    }

    /// The checks of [`ModuleBase::load_state_dict`] without loading anything: `Ok` exactly
    /// when loading `sd` with the same `strict` would succeed. Dtypes are not compared
    /// (loading converts values to the module's dtype).
    fn check_state_dict(&self, sd: &StateDict, strict: bool) -> Result<(), StateDictError> {
        check_against(&self.state_dict(), sd, strict)
    }

    /// Sets training mode on this module and all descendants.
    fn set_training(&self, training: bool) {
        walk_dyn(self.as_dyn(), "", &mut |_, m| m.set_own_training(training));
    }

    /// Training mode (dropout active, batch norm uses batch statistics).
    fn train(&self) {
        self.set_training(true)
    }

    /// Evaluation mode.
    fn eval(&self) {
        self.set_training(false)
    }

    /// The mode of the first module in the tree that has one (true if none does).
    fn is_training(&self) -> bool {
        let mut found = None;
        walk_dyn(self.as_dyn(), "", &mut |_, m| {
            if found.is_none() {
                found = m.own_training();
            }
        });
        found.unwrap_or(true)
    }

    /// Total number of parameter elements.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.numel()).sum()
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }

    /// Moves parameters and buffers to `device` (the CPU is the only device today, so this
    /// checks and returns).
    fn to_device(&self, device: Device) {
        match device {
            Device::Cpu => {}
        }
    }

    /// `self` as a trait object (implemented automatically).
    fn as_dyn(&self) -> &dyn ModuleBase;

    /// The module's settings as printed after its name in [`ModuleBase::tree`]
    /// (`in_features=4, out_features=2, bias=true`), like PyTorch's `extra_repr`; empty by
    /// default.
    fn extra_repr(&self) -> String {
        String::new()
    }

    /// The module's type name without its path or generic arguments (`Linear`).
    fn type_name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }

    /// The module tree as PyTorch's `print(model)` shows it: each module's type and settings,
    /// children indented under their names.
    ///
    /// ```
    /// use kiln_nn::{Linear, ModuleBase, ReLU, Sequential};
    /// let mlp = Sequential::new().append(Linear::new(4, 8)).append(ReLU::new());
    /// assert_eq!(
    ///     mlp.tree(),
    ///     "Sequential(\n  (0): Linear(in_features=4, out_features=8, bias=true)\n  (1): ReLU()\n)"
    /// );
    /// ```
    fn tree(&self) -> String {
        let mut out = String::new();
        write_tree(self.as_dyn(), 0, &mut out);
        out
    }
}

/// `kiln_nn::layers::linear::Linear` → `Linear`; `alloc::vec::Vec<..>` → `Vec`.
fn short_type_name(full: &'static str) -> &'static str {
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

fn write_tree(m: &dyn ModuleBase, indent: usize, out: &mut String) {
    use std::fmt::Write as _;
    let children = m.children();
    let extra = m.extra_repr();
    let _ = write!(out, "{}({extra}", m.type_name());
    if children.is_empty() {
        out.push(')');
        return;
    }
    if !extra.is_empty() {
        out.push(',');
    }
    out.push('\n');
    for (name, child) in children {
        let _ = write!(out, "{:w$}({name}): ", "", w = indent + 2);
        write_tree(child, indent + 2, out);
        out.push('\n');
    }
    let _ = write!(out, "{:w$})", "", w = indent);
}

fn walk_dyn(m: &dyn ModuleBase, prefix: &str, f: &mut dyn FnMut(&str, &dyn ModuleBase)) {
    f(prefix, m);
    for (name, child) in m.children() {
        walk_dyn(child, &join(prefix, &name), f);
    }
}

impl<M: ModuleBase> ModuleBase for Vec<M> {
    fn children(&self) -> Vec<(String, &dyn ModuleBase)> {
        self.iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m as &dyn ModuleBase))
            .collect()
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl<M: ModuleBase> ModuleBase for Option<M> {
    fn children(&self) -> Vec<(String, &dyn ModuleBase)> {
        match self {
            // An optional submodule keeps the field's own name, like PyTorch's `None` attribute.
            Some(m) => m.children(),
            None => Vec::new(),
        }
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        self.as_ref()
            .map(|m| m.own_parameters())
            .unwrap_or_default()
    }
    fn own_buffers(&self) -> Vec<(String, Tensor)> {
        self.as_ref().map(|m| m.own_buffers()).unwrap_or_default()
    }
    fn set_own_training(&self, t: bool) {
        if let Some(m) = self {
            m.set_own_training(t)
        }
    }
    fn own_training(&self) -> Option<bool> {
        self.as_ref().and_then(|m| m.own_training())
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Module as DeriveModule;
    use kiln_core::DType;

    #[derive(DeriveModule)]
    struct Leaf {
        #[param]
        weight: Tensor,
        #[buffer]
        stat: Tensor,
    }

    #[derive(DeriveModule)]
    struct Tree {
        first: Leaf,
        blocks: Vec<Leaf>,
        maybe: Option<Leaf>,
        #[module(skip)]
        _note: String,
    }

    fn leaf(v: f64) -> Leaf {
        Leaf {
            weight: Tensor::full([2], v, DType::F32).requires_grad_(true),
            stat: Tensor::zeros([1], DType::F32),
        }
    }

    #[test]
    fn dotted_names_follow_fields_and_indices() {
        let t = Tree {
            first: leaf(1.0),
            blocks: vec![leaf(2.0), leaf(3.0)],
            maybe: Some(leaf(4.0)),
            _note: String::new(),
        };
        let names: Vec<String> = t.state_dict().keys().map(str::to_string).collect();
        assert_eq!(
            names,
            [
                "first.weight",
                "first.stat",
                "blocks.0.weight",
                "blocks.0.stat",
                "blocks.1.weight",
                "blocks.1.stat",
                "maybe.weight",
                "maybe.stat"
            ]
        );
        assert_eq!(t.num_parameters(), 8);
    }

    #[test]
    fn load_state_dict_reports_every_bad_key() {
        let t = Tree {
            first: leaf(1.0),
            blocks: vec![],
            maybe: None,
            _note: String::new(),
        };
        let mut sd = StateDict::new();
        sd.insert("first.weight", Tensor::zeros([3], DType::F32));
        sd.insert("extra", Tensor::zeros([1], DType::F32));
        let err = t.load_state_dict(&sd, true).unwrap_err();
        assert_eq!(err.missing, vec!["first.stat"]);
        assert_eq!(err.unexpected, vec!["extra"]);
        assert_eq!(
            err.mismatched,
            vec![("first.weight".to_string(), vec![2], vec![3])]
        );
        // Nothing was written.
        assert_eq!(t.first.weight.to_vec::<f32>(), vec![1.0, 1.0]);
    }

    #[test]
    fn prefixes_are_added_and_stripped() {
        let mut sd = StateDict::new();
        sd.insert("a", Tensor::zeros([1], DType::F32));
        sd.insert("b.c", Tensor::zeros([2], DType::F32));
        let p = sd.prefixed("best.");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["best.a", "best.b.c"]);
        let mut mixed = p.clone();
        mixed.extend(StateDict::from_iter([(
            "other.a".to_string(),
            Tensor::zeros([3], DType::F32),
        )]));
        let back = mixed.strip_prefix("best.");
        assert_eq!(back.keys().collect::<Vec<_>>(), ["a", "b.c"]);
        assert_eq!(back.get("b.c").unwrap().shape(), [2]);
        assert!(mixed.strip_prefix("none.").is_empty());
    }

    #[test]
    fn check_state_dict_agrees_with_load_and_writes_nothing() {
        let t = Tree {
            first: leaf(1.0),
            blocks: vec![],
            maybe: None,
            _note: String::new(),
        };
        let mut sd = t.state_dict();
        sd.insert("extra", Tensor::zeros([1], DType::F32));
        let err = t.check_state_dict(&sd, true).unwrap_err();
        assert_eq!(err, t.load_state_dict(&sd, true).unwrap_err());
        assert_eq!(err.unexpected, vec!["extra"]);
        assert!(t.check_state_dict(&sd, false).is_ok());
        let mut other = StateDict::new();
        other.insert("first.weight", Tensor::zeros([2], DType::F64));
        other.insert("first.stat", Tensor::zeros([1], DType::F32));
        // Another dtype is converted when loaded, so it passes.
        assert!(t.check_state_dict(&other, true).is_ok());
        assert_eq!(t.first.weight.to_vec::<f32>(), vec![1.0, 1.0]);
    }

    #[test]
    fn load_state_dict_copies_in_place() {
        let a = Tree {
            first: leaf(1.0),
            blocks: vec![leaf(2.0)],
            maybe: None,
            _note: String::new(),
        };
        let b = Tree {
            first: leaf(5.0),
            blocks: vec![leaf(6.0)],
            maybe: None,
            _note: String::new(),
        };
        let held = a.first.weight.clone();
        a.load_state_dict(&b.state_dict(), true).unwrap();
        assert_eq!(held.to_vec::<f32>(), vec![5.0, 5.0]);
        assert_eq!(a.blocks[0].weight.to_vec::<f32>(), vec![6.0, 6.0]);
    }
}
