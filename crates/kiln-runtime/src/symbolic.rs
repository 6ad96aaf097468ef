//! A symbolic batch dimension: one graph that runs at every batch size.
//!
//! A graph is traced once, at a batch size of [`TRACE_BATCH`] in the arguments that carry the
//! batch (at their dim 0). [`DynamicGraph::new`] then works out, for every value, how each dim
//! depends on the batch `B` — as `mul·B + add`, the only dependence that reshapes, broadcasts,
//! matmuls, convolutions, reductions and concatenation can create — and which of the ops'
//! shape parameters (a reshape's target, an expand's shape, a random draw's shape, a slice's
//! length) carry it. [`DynamicGraph::instantiate`] writes the graph out for a concrete batch,
//! checked op by op, for the executor to plan; callers cache the plans of the last few sizes.
//!
//! How a dim's dependence is found: the op's own shape rule is evaluated at three batch sizes
//! (the traced one and the next two) with its parameters instantiated at each, and the three
//! results must lie on a line. An op whose shape cannot follow the batch (a constant made
//! while tracing with the batch size in its shape, a reshape that splits the batch, a slice
//! of the batch from a non-zero position) is an error naming the node, found at trace time
//! rather than at the first call of a new size.
//!
//! Why a traced batch size of 97: the parameters the tracer records are plain numbers, so an
//! expand to `[97, 1, 64]` is read as "expand to the batch". A prime that no layer width,
//! class count or sequence length is likely to equal (or be a multiple of) keeps that reading
//! unambiguous; tracing at the user's batch of 32 would confuse it with a hidden size of 32.

use crate::ir::{infer_checked, Graph, InputKind, ValueId};
use kiln_kernels::buffer::CpuStorage;
use kiln_kernels::dtype::DType;
use kiln_kernels::ops::Op;
use kiln_kernels::shape::Shape;
use kiln_kernels::OwnedOperand;
use std::fmt;

/// The batch size graphs with a symbolic batch dim are traced at (see the module docs).
pub const TRACE_BATCH: usize = 97;

/// One dimension: `mul·B + add` for the batch size `B` (a fixed dim has `mul` 0). Prints
/// (also with `{:?}`) as users read it: `B`, `3B`, `B-1`, `10`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Dim {
    /// Multiple of the batch size.
    pub mul: u32,
    /// Constant part.
    pub add: i64,
}

impl Dim {
    /// A dim of fixed size `n`.
    pub fn fixed(n: usize) -> Dim {
        Dim {
            mul: 0,
            add: n as i64,
        }
    }

    /// The batch dim itself.
    pub fn batch() -> Dim {
        Dim { mul: 1, add: 0 }
    }

    /// True when the dim does not depend on the batch size.
    pub fn is_fixed(self) -> bool {
        self.mul == 0
    }

    /// The size at batch `b`, or `None` when it would be negative or overflow.
    pub fn at(self, b: usize) -> Option<usize> {
        let v = i128::from(self.mul) * b as i128 + i128::from(self.add);
        usize::try_from(v).ok()
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.mul, self.add) {
            (0, a) => write!(f, "{a}"),
            (1, 0) => write!(f, "B"),
            (m, 0) => write!(f, "{m}B"),
            (1, a) => write!(f, "B{a:+}"),
            (m, a) => write!(f, "{m}B{a:+}"),
        }
    }
}

impl fmt::Debug for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A shape whose dims may depend on the batch size.
pub type SymShape = Vec<Dim>;

/// `[B, 10]`: a symbolic shape as users read it.
pub fn shape_label(s: &[Dim]) -> String {
    let dims: Vec<String> = s.iter().map(Dim::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// The concrete shape at batch `b`, or `None` when a dim would be negative.
pub fn shape_at(s: &[Dim], b: usize) -> Option<Shape> {
    s.iter().map(|d| d.at(b)).collect()
}

/// Why a graph cannot take a symbolic batch dim, or a batch size it cannot run at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("symbolic batch: {0}")]
pub struct SymbolicError(pub String);

/// The symbolic form of an op's shape parameter.
#[derive(Clone, Debug)]
enum Param {
    /// A reshape's target or an expand's shape.
    Shape(SymShape),
    /// A random draw's shape.
    RandomShape(SymShape),
    /// A slice's length.
    SliceLen(Dim),
    /// A slice-scatter's output size.
    ScatterSize(Dim),
}

/// A graph with a symbolic batch dim: the graph traced at [`DynamicGraph::traced_batch`], and
/// how each of its values' dims and its ops' shape parameters follow the batch size.
#[derive(Clone)]
pub struct DynamicGraph {
    graph: Graph,
    traced: usize,
    batch_args: Vec<usize>,
    /// Per value id: its dims.
    dims: Vec<Option<SymShape>>,
    /// Per node: its symbolic shape parameter, if it has one that follows the batch.
    params: Vec<Option<Param>>,
    /// Constants made while tracing whose shape follows the batch (a gradient's zeros, a
    /// mask of ones): their id and the one value they are filled with.
    fills: Vec<(ValueId, f64)>,
}

impl DynamicGraph {
    /// Analyses `graph`, traced with `traced` as the size of dim 0 of the arguments
    /// `batch_args` (the batch). Fails, naming the node, when some op's shape cannot follow
    /// the batch size.
    pub fn new(
        graph: Graph,
        traced: usize,
        batch_args: &[usize],
    ) -> Result<DynamicGraph, SymbolicError> {
        let err = |m: String| Err(SymbolicError(m));
        if traced < 2 {
            return err(format!(
                "a graph must be traced at a batch size of 2 or more to find its batch dim \
                 (got {traced})"
            ));
        }
        if batch_args.is_empty() {
            return err("no argument carries the batch".into());
        }
        let mut dims: Vec<Option<SymShape>> = vec![None; graph.id_bound()];
        let mut fills = Vec::new();
        for i in &graph.inputs {
            let mut d: SymShape = i.shape.iter().map(|&n| Dim::fixed(n)).collect();
            // A constant filled with one value (zeros made by a VJP, a mask of ones) with a
            // dim that is a multiple of the traced batch was made from the batch size: it
            // follows it. A constant with varied values cannot, and stays fixed.
            let sized: SymShape = i.shape.iter().map(|&n| batch_multiple(n, traced)).collect();
            let batch_sized = sized.iter().any(|d| !d.is_fixed());
            if let (InputKind::Const, Some(v), true) = (&i.kind, &i.value, batch_sized) {
                if let Some(fill) = uniform_value(v) {
                    d = sized;
                    fills.push((i.id, fill));
                }
            }
            if let InputKind::Arg(k) = i.kind {
                if batch_args.contains(&k) {
                    if i.shape.first() != Some(&traced) {
                        return err(format!(
                            "argument {k} carries the batch but its shape {:?} does not start \
                             with the traced batch size {traced}",
                            &i.shape[..]
                        ));
                    }
                    d[0] = Dim::batch();
                }
            }
            dims[i.id as usize] = Some(d);
        }
        let types = graph.types();
        let mut params = Vec::with_capacity(graph.nodes.len());
        for n in &graph.nodes {
            let ins: Vec<(&SymShape, DType)> = n
                .args
                .iter()
                .map(|&a| {
                    let d = dims[a as usize]
                        .as_ref()
                        .expect("operands defined before use");
                    (d, types[a as usize].as_ref().expect("typed").1)
                })
                .collect();
            let explain = |why: String| -> SymbolicError {
                let operands: Vec<String> = n
                    .args
                    .iter()
                    .zip(&ins)
                    .map(|(a, (d, t))| {
                        let made = match graph.input(*a).map(|i| &i.kind) {
                            Some(InputKind::Const) => " (a tensor made while tracing)",
                            _ => "",
                        };
                        format!("%{a}: {t}{}{made}", shape_label(d))
                    })
                    .collect();
                SymbolicError(format!(
                    "%{} = {}({}) cannot follow the batch size: {why}",
                    n.id,
                    n.op.name(),
                    operands.join(", ")
                ))
            };
            let in_dims: Vec<&SymShape> = ins.iter().map(|(d, _)| *d).collect();
            let param = symbolic_param(&n.op, &in_dims, traced).map_err(explain)?;
            let at = |b: usize| -> Result<Shape, String> {
                let op = substitute(&n.op, param.as_ref(), b)?;
                let shapes: Vec<Shape> = in_dims
                    .iter()
                    .map(|d| shape_at(d, b).ok_or_else(|| format!("a dim is negative at {b}")))
                    .collect::<Result<_, _>>()?;
                let types: Vec<(&[usize], DType)> = shapes
                    .iter()
                    .zip(&ins)
                    .map(|(s, (_, t))| (&s[..], *t))
                    .collect();
                infer_checked(&op, &types).map(|(s, _)| s)
            };
            let s0 = at(traced).map_err(explain)?;
            if s0 != n.shape {
                return Err(explain(format!(
                    "its shape rule gives {:?} at the traced batch, the graph says {:?}",
                    &s0[..],
                    &n.shape[..]
                )));
            }
            let s1 =
                at(traced + 1).map_err(|e| explain(format!("at batch {}: {e}", traced + 1)))?;
            let s2 =
                at(traced + 2).map_err(|e| explain(format!("at batch {}: {e}", traced + 2)))?;
            dims[n.id as usize] = Some(fit(&s0, &s1, &s2, traced).map_err(explain)?);
            params.push(param);
        }
        for u in &graph.updates {
            let d = dims[u.value as usize]
                .as_ref()
                .expect("update values defined");
            if d.iter().any(|d| !d.is_fixed()) {
                return err(format!(
                    "the state %{} would be written with a value of shape {} that depends on \
                     the batch size",
                    u.input,
                    shape_label(d)
                ));
            }
        }
        Ok(DynamicGraph {
            graph,
            traced,
            batch_args: batch_args.to_vec(),
            dims,
            params,
            fills,
        })
    }

    /// The graph at the traced batch size.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The batch size the graph was traced at.
    pub fn traced_batch(&self) -> usize {
        self.traced
    }

    /// The arguments whose dim 0 is the batch.
    pub fn batch_args(&self) -> &[usize] {
        &self.batch_args
    }

    /// The value a constant input whose shape follows the batch is filled with (it is made
    /// at each batch size, not stored); `None` for other values.
    pub fn fill_of(&self, id: ValueId) -> Option<f64> {
        self.fills.iter().find(|(i, _)| *i == id).map(|&(_, v)| v)
    }

    /// The symbolic dims of a value.
    pub fn dims(&self, id: ValueId) -> Option<&SymShape> {
        self.dims.get(id as usize).and_then(Option::as_ref)
    }

    /// The symbolic shapes of the outputs.
    pub fn output_dims(&self) -> Vec<SymShape> {
        self.graph
            .outputs
            .iter()
            .map(|&o| self.dims(o).expect("outputs defined").clone())
            .collect()
    }

    /// The batch size of a call with arguments of these shapes: dim 0 of the batch
    /// arguments, which must agree.
    pub fn batch_of(&self, arg_shapes: &[&[usize]]) -> Result<usize, SymbolicError> {
        let mut batch = None;
        for &k in &self.batch_args {
            let Some(shape) = arg_shapes.get(k) else {
                return Err(SymbolicError(format!(
                    "{} arguments given, the batch is in argument {k}",
                    arg_shapes.len()
                )));
            };
            let Some(&b) = shape.first() else {
                return Err(SymbolicError(format!(
                    "argument {k} carries the batch in dim 0 but is a 0-d value"
                )));
            };
            match batch {
                Some(prev) if prev != b => {
                    return Err(SymbolicError(format!(
                        "the batch arguments disagree: argument {} has batch {prev}, \
                         argument {k} has {b}",
                        self.batch_args[0]
                    )))
                }
                _ => batch = Some(b),
            }
        }
        batch.ok_or_else(|| SymbolicError("no argument carries the batch".into()))
    }

    /// The graph at batch size `batch` (≥ 1), every node checked by its shape rule.
    pub fn instantiate(&self, batch: usize) -> Result<Graph, SymbolicError> {
        if batch == 0 {
            return Err(SymbolicError("the batch size must be at least 1".into()));
        }
        let mut g = self.graph.clone();
        let mut types: Vec<Option<(Shape, DType)>> = vec![None; g.id_bound()];
        for i in &mut g.inputs {
            if let InputKind::Arg(k) = i.kind {
                if self.batch_args.contains(&k) {
                    i.shape[0] = batch;
                }
            }
            if let Some(&(_, fill)) = self.fills.iter().find(|(id, _)| *id == i.id) {
                let dims = self.dims(i.id).expect("input dims");
                i.shape = shape_at(dims, batch).expect("a multiple of the batch");
                let n = i.shape.iter().product();
                i.value = Some(OwnedOperand::dense(
                    CpuStorage::filled(i.dtype, n, fill),
                    &i.shape,
                ));
            }
            types[i.id as usize] = Some((i.shape.clone(), i.dtype));
        }
        for (n, param) in g.nodes.iter_mut().zip(&self.params) {
            let too_small = |why: String| {
                SymbolicError(format!(
                    "at batch {batch}, %{} = {}: {why}",
                    n.id,
                    n.op.name()
                ))
            };
            let op = substitute(&n.op, param.as_ref(), batch).map_err(&too_small)?;
            let operands: Vec<(&[usize], DType)> = n
                .args
                .iter()
                .map(|&a| {
                    let (s, d) = types[a as usize].as_ref().expect("operands defined");
                    (&s[..], *d)
                })
                .collect();
            let (shape, dtype) = infer_checked(&op, &operands).map_err(&too_small)?;
            let expected = shape_at(self.dims(n.id).expect("node dims"), batch)
                .ok_or_else(|| too_small("a dim would be negative".into()))?;
            if shape != expected {
                return Err(too_small(format!(
                    "gives {:?}, the symbolic shape says {:?}",
                    &shape[..],
                    &expected[..]
                )));
            }
            n.op = op;
            n.shape = shape.clone();
            types[n.id as usize] = Some((shape, dtype));
        }
        Ok(g)
    }
}

/// The value every element of `v` has, if they all have one (bit for bit).
fn uniform_value(v: &OwnedOperand) -> Option<f64> {
    let storage = v.operand().storage().read();
    if storage.is_empty() {
        return None;
    }
    let first = storage.get_f64(0);
    (1..storage.len())
        .all(|i| storage.get_f64(i).to_bits() == first.to_bits())
        .then_some(first)
}

/// The line through the shapes at batches `t`, `t+1`, `t+2`.
fn fit(s0: &[usize], s1: &[usize], s2: &[usize], t: usize) -> Result<SymShape, String> {
    if s0.len() != s1.len() || s1.len() != s2.len() {
        return Err("its rank changes with the batch size".into());
    }
    let mut out = SymShape::with_capacity(s0.len());
    for i in 0..s0.len() {
        let (a, b, c) = (s0[i] as i64, s1[i] as i64, s2[i] as i64);
        let step = b - a;
        if c - b != step || step < 0 {
            return Err(format!(
                "dim {i} is {a}, {b}, {c} at batches {t}, {}, {}: not a multiple of the batch \
                 plus a constant",
                t + 1,
                t + 2
            ));
        }
        out.push(Dim {
            mul: u32::try_from(step).map_err(|_| "a dim grows too fast".to_string())?,
            add: a - step * t as i64,
        });
    }
    Ok(out)
}

/// The symbolic form of `op`'s shape parameter, when it follows the batch.
fn symbolic_param(op: &Op, ins: &[&SymShape], t: usize) -> Result<Option<Param>, String> {
    let multiple = |n: usize| batch_multiple(n, t);
    let symbolic = |s: &SymShape| s.iter().any(|d| !d.is_fixed());
    Ok(match op {
        Op::Reshape(target) => {
            let s = reshape_dims(ins[0], target, t)?;
            symbolic(&s).then_some(Param::Shape(s))
        }
        Op::Expand(target) => {
            let x = ins[0];
            let lead = target.len().saturating_sub(x.len());
            let s: SymShape = target
                .iter()
                .enumerate()
                .map(|(i, &n)| match i.checked_sub(lead).map(|j| x[j]) {
                    Some(d) if !d.is_fixed() => d,
                    Some(d) if d != Dim::fixed(1) => Dim::fixed(n),
                    _ => multiple(n),
                })
                .collect();
            symbolic(&s).then_some(Param::Shape(s))
        }
        Op::Random { shape, .. } => {
            let s: SymShape = shape.iter().map(|&n| multiple(n)).collect();
            symbolic(&s).then_some(Param::RandomShape(s))
        }
        Op::Slice {
            dim,
            start,
            len,
            step,
        } => {
            let Some(&d) = ins[0].get(*dim) else {
                return Ok(None);
            };
            if d.is_fixed() {
                None
            } else if *start == 0 && *step == 1 && d.at(t) == Some(*len) {
                Some(Param::SliceLen(d))
            } else if *start == 0 && *step == 1 {
                None
            } else {
                return Err(format!(
                    "slicing dim {dim}, of size {d}, from {start} in steps of {step}: only \
                     a fixed-length slice from 0 keeps a batch-dependent dim's meaning"
                ));
            }
        }
        Op::SliceScatter { dim, size, .. } => {
            let Some(&d) = ins[0].get(*dim) else {
                return Ok(None);
            };
            if !d.is_fixed() {
                let traced = d.at(t).unwrap_or(0) as i64;
                Some(Param::ScatterSize(Dim {
                    mul: d.mul,
                    add: d.add + *size as i64 - traced,
                }))
            } else {
                let s = multiple(*size);
                (!s.is_fixed()).then_some(Param::ScatterSize(s))
            }
        }
        _ => None,
    })
}

/// A reshape's target dims given its input's: the batch-dependent input dim (at most one,
/// `m·B`) lands on the target dim that holds it in row-major order, which must not split it.
fn reshape_dims(x: &[Dim], target: &[usize], t: usize) -> Result<SymShape, String> {
    let fixed: SymShape = target.iter().map(|&n| Dim::fixed(n)).collect();
    let sym: Vec<usize> = (0..x.len()).filter(|&i| !x[i].is_fixed()).collect();
    let p = match sym[..] {
        [] => return Ok(fixed),
        [p] => p,
        _ => {
            return Err(format!(
                "reshaping {} to {target:?}: more than one dim depends on the batch size",
                shape_label(x)
            ))
        }
    };
    if x[p].add != 0 {
        return Err(format!(
            "reshaping {} to {target:?}: dim {p} is not a multiple of the batch size",
            shape_label(x)
        ));
    }
    // The batch is one factor of dim p; which target dim holds it: one whose size is a
    // multiple of the traced batch and whose place in the row-major order overlaps dim p's.
    let outer: usize = x[..p].iter().map(|d| d.at(t).unwrap_or(0)).product();
    let end = outer * x[p].at(t).unwrap_or(0);
    let mut before = 1usize;
    let mut found = None;
    for (j, &n) in target.iter().enumerate() {
        if n > 0 && n.is_multiple_of(t) && before < end && before * n > outer {
            if found.is_some() {
                return Err(format!(
                    "reshaping {} to {target:?}: more than one target dim could hold the batch",
                    shape_label(x)
                ));
            }
            found = Some(j);
        }
        before *= n;
    }
    let Some(j) = found else {
        return Err(format!(
            "reshaping {} to {target:?} splits the batch dim across dims",
            shape_label(x)
        ));
    };
    let mut out = fixed;
    out[j] = batch_multiple(target[j], t);
    Ok(out)
}

/// `k·B` for a size `n` that is `k` times the traced batch `t`, else `n` fixed.
fn batch_multiple(n: usize, t: usize) -> Dim {
    match u32::try_from(n / t) {
        Ok(mul) if n > 0 && n.is_multiple_of(t) => Dim { mul, add: 0 },
        _ => Dim::fixed(n),
    }
}

/// `op` with its shape parameter written out at batch `b`.
fn substitute(op: &Op, param: Option<&Param>, b: usize) -> Result<Op, String> {
    let Some(param) = param else {
        return Ok(op.clone());
    };
    let shape =
        |s: &SymShape| shape_at(s, b).ok_or_else(|| format!("batch {b} makes a dim negative"));
    let size = |d: &Dim| {
        d.at(b)
            .ok_or_else(|| format!("batch {b} makes a size negative"))
    };
    let mut op = op.clone();
    match (&mut op, param) {
        (Op::Reshape(s), Param::Shape(p)) | (Op::Expand(s), Param::Shape(p)) => *s = shape(p)?,
        (Op::Random { shape: s, .. }, Param::RandomShape(p)) => *s = shape(p)?,
        (Op::Slice { len, .. }, Param::SliceLen(d)) => *len = size(d)?,
        (Op::SliceScatter { size: s, .. }, Param::ScatterSize(d)) => *s = size(d)?,
        _ => unreachable!("a parameter of another op"),
    }
    Ok(op)
}

/// What a graph with a symbolic batch keeps per batch size (its plan and buffers), for the
/// last few sizes called, most recently used first: a server's batcher cycles through a few
/// sizes, and re-planning each call would cost more than the run.
pub struct BySize<T> {
    entries: Vec<(usize, std::sync::Arc<T>)>,
    capacity: usize,
    made: usize,
}

impl<T> BySize<T> {
    /// An empty cache of at most `capacity` sizes (at least one).
    pub fn new(capacity: usize) -> BySize<T> {
        BySize {
            entries: Vec::new(),
            capacity: capacity.max(1),
            made: 0,
        }
    }

    /// The entry for `batch`, made by `make` when it is not cached (dropping the least
    /// recently used beyond the capacity).
    pub fn get_or_try_insert<E>(
        &mut self,
        batch: usize,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<std::sync::Arc<T>, E> {
        if let Some(pos) = self.entries.iter().position(|(b, _)| *b == batch) {
            let e = self.entries.remove(pos);
            let t = e.1.clone();
            self.entries.insert(0, e);
            return Ok(t);
        }
        let t = std::sync::Arc::new(make()?);
        self.made += 1;
        self.entries.insert(0, (batch, t.clone()));
        self.entries.truncate(self.capacity);
        Ok(t)
    }

    /// How many entries were made so far (a plan per new size, or per size evicted and seen
    /// again).
    pub fn made(&self) -> usize {
        self.made
    }

    /// The batch sizes cached, most recently used first.
    pub fn sizes(&self) -> Vec<usize> {
        self.entries.iter().map(|(b, _)| *b).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: usize = TRACE_BATCH;

    fn dims(s: &str) -> SymShape {
        s.split(',')
            .map(|d| match d.trim() {
                "B" => Dim::batch(),
                d if d.ends_with('B') => Dim {
                    mul: d[..d.len() - 1].parse().unwrap(),
                    add: 0,
                },
                d => Dim::fixed(d.parse().unwrap()),
            })
            .collect()
    }

    #[test]
    fn dims_print_as_users_read_them() {
        let d = |mul, add| Dim { mul, add }.to_string();
        assert_eq!(
            [d(0, 5), d(1, 0), d(3, 0), d(1, -1), d(2, 4)],
            ["5", "B", "3B", "B-1", "2B+4"]
        );
        assert_eq!(Dim { mul: 1, add: -1 }.at(0), None);
        assert_eq!(Dim { mul: 2, add: 1 }.at(3), Some(7));
    }

    #[test]
    fn a_reshape_keeps_the_batch_where_row_major_order_puts_it() {
        let r = |x: &str, target: &[usize]| reshape_dims(&dims(x), target, T);
        // Flatten, merge with the next dim, split back, merge from behind.
        assert_eq!(r("B, 4, 7", &[T, 28]), Ok(dims("B, 28")));
        assert_eq!(r("B, 3, 4", &[3 * T, 4]), Ok(dims("3B, 4")));
        assert_eq!(r("8B, 16", &[T, 8, 16]), Ok(dims("B, 8, 16")));
        assert_eq!(r("4, B", &[4 * T]), Ok(dims("4B")));
        assert_eq!(r("2, 3", &[3, 2]), Ok(dims("3, 2")));
        // A new dim of 1; a merged dim split with the batch inner; two batch dims refused.
        assert_eq!(r("B", &[1, T]), Ok(dims("1, B")));
        assert_eq!(r("2B", &[2, T]), Ok(dims("2, B")));
        assert!(r("B, B", &[T * T]).is_err());
    }

    #[test]
    fn the_fit_finds_a_line_or_refuses() {
        assert_eq!(fit(&[T, 5], &[T + 1, 5], &[T + 2, 5], T), Ok(dims("B, 5")));
        assert!(fit(&[T * T], &[(T + 1) * (T + 1)], &[(T + 2) * (T + 2)], T).is_err());
    }

    #[test]
    fn the_cache_keeps_the_last_sizes() {
        let mut c: BySize<usize> = BySize::new(2);
        for b in [1, 2, 1, 3, 2] {
            c.get_or_try_insert::<()>(b, || Ok(b)).unwrap();
        }
        // 1 and 2 made, 1 reused, 3 made (2 evicted), 2 made again.
        assert_eq!(c.made(), 4);
        assert_eq!(c.sizes(), vec![2, 3]);
    }
}
