//! The graph IR: an SSA list of primitive-op nodes over numbered values, with the inputs it
//! reads at each call and the state it writes back. Printable as text (like a jaxpr) and as
//! Graphviz DOT.

use kiln_kernels::dtype::DType;
use kiln_kernels::ops::infer::{try_infer, TypeRef};
use kiln_kernels::ops::Op;
use kiln_kernels::shape::Shape;
use kiln_kernels::OwnedOperand;
use smallvec::SmallVec;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

/// The number of one value (an input or a node's output). Ids are unique within a graph but
/// not dense once passes have removed nodes.
pub type ValueId = u32;

/// A leaf value whose gradient slot a graph reads (a [`InputKind::Grad`] input) or sets (a
/// [`GradTarget::Leaf`]). The runtime does not know what a leaf is: the layer that traced the
/// graph puts its own handle here (kiln-core's `Tensor`) and reads it back with
/// [`Leaf::get`]; the runtime only passes it to the caller's [`crate::executor::Feeds`].
#[derive(Clone)]
pub struct Leaf {
    handle: Arc<dyn Any + Send + Sync>,
    shape: Shape,
}

impl Leaf {
    /// Wraps the tracing layer's handle of a leaf whose gradients have `shape`.
    pub fn new<T: Any + Send + Sync>(handle: T, shape: &[usize]) -> Leaf {
        Leaf {
            handle: Arc::new(handle),
            shape: shape.iter().copied().collect(),
        }
    }

    /// The handle, when it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.handle.downcast_ref()
    }

    /// The shape of the leaf.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
}

impl PartialEq for Leaf {
    /// The same leaf: the same handle.
    fn eq(&self, other: &Leaf) -> bool {
        Arc::ptr_eq(&self.handle, &other.handle)
    }
}

impl Eq for Leaf {}

impl fmt::Debug for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Leaf{:?}", &self.shape[..])
    }
}

/// Where a graph input's value comes from at each call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// The i-th positional argument of the compiled function.
    Arg(usize),
    /// A captured tensor (parameter, buffer, optimizer state), read at each call.
    State,
    /// A tensor created while tracing (a literal such as a scalar or a mask): fixed.
    Const,
    /// The `.grad` of a captured leaf, read at each call.
    Grad(Leaf),
}

/// One graph input.
#[derive(Clone)]
pub struct Input {
    /// Its value id.
    pub id: ValueId,
    /// Where its value comes from.
    pub kind: InputKind,
    /// The bound value of a state or constant input: its storage and layout, shared with
    /// the captured tensor (writes to one are seen by the other). `None` for arguments and
    /// gradients, whose values come with each call.
    pub value: Option<OwnedOperand>,
    /// Shape.
    pub shape: Shape,
    /// Element type.
    pub dtype: DType,
}

/// One op application.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value it defines.
    pub id: ValueId,
    /// The primitive op.
    pub op: Op,
    /// Operand values.
    pub args: SmallVec<[ValueId; 3]>,
    /// Output shape.
    pub shape: Shape,
    /// Output dtype.
    pub dtype: DType,
    /// A random op that draws fresh (seed, offset) from the global generator at each call
    /// rather than replaying the ones in `op`.
    pub fresh_random: bool,
}

/// Where a computed gradient goes after each call.
#[derive(Clone)]
pub enum GradTarget {
    /// A captured leaf tensor (a parameter).
    Leaf(Leaf),
    /// The i-th positional argument.
    Arg(usize),
}

/// A `.grad` slot the function leaves set (or cleared).
#[derive(Clone)]
pub struct GradOutput {
    /// Whose gradient.
    pub target: GradTarget,
    /// The gradient value, or `None` when the function leaves the slot empty.
    pub value: Option<ValueId>,
}

/// An in-place write the function made to a captured tensor: after each call `value` is
/// copied into `target` (an optimizer step updating parameters and moments).
#[derive(Clone)]
pub struct Update {
    /// The input id of the written tensor.
    pub input: ValueId,
    /// Its new value.
    pub value: ValueId,
}

/// A weight a graph reads as an input, by name: what an importer hands a module that trains
/// the graph (kiln-nn's `GraphModule`).
#[derive(Clone, Debug, PartialEq)]
pub struct GraphWeight {
    /// The graph input it feeds.
    pub id: ValueId,
    /// Its name (an ONNX initializer's).
    pub name: String,
    /// A parameter to train (false for statistics such as a batch norm's running mean).
    pub trainable: bool,
}

/// A traced function.
#[derive(Clone, Default)]
pub struct Graph {
    /// Inputs in order of first use.
    pub inputs: Vec<Input>,
    /// Nodes in execution order (every operand is defined earlier).
    pub nodes: Vec<Node>,
    /// Values returned by the function.
    pub outputs: Vec<ValueId>,
    /// State written back after each call.
    pub updates: Vec<Update>,
    /// Gradient slots set after each call.
    pub grads: Vec<GradOutput>,
    /// One more than the largest id handed out by [`Graph::new_id`].
    next_id: ValueId,
}

impl Graph {
    /// A graph without state updates or gradient outputs (an inference graph), e.g. loaded
    /// from a file. Ids must be unique; operands must be defined before use (not checked here).
    pub fn inference(inputs: Vec<Input>, nodes: Vec<Node>, outputs: Vec<ValueId>) -> Graph {
        let next_id = inputs
            .iter()
            .map(|i| i.id)
            .chain(nodes.iter().map(|n| n.id))
            .max()
            .map_or(0, |m| m + 1);
        Graph {
            inputs,
            nodes,
            outputs,
            updates: Vec::new(),
            grads: Vec::new(),
            next_id,
        }
    }

    /// A fresh value id.
    pub fn new_id(&mut self) -> ValueId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// One more than the largest id in use (size of an id-indexed table).
    pub fn id_bound(&self) -> usize {
        self.next_id as usize
    }

    /// The input with id `id`, if any.
    pub fn input(&self, id: ValueId) -> Option<&Input> {
        self.inputs.iter().find(|i| i.id == id)
    }

    /// Shape and dtype of every value, indexed by id (one pass; passes look types up per
    /// node, and a search per lookup would make them quadratic).
    pub fn types(&self) -> Vec<Option<(Shape, DType)>> {
        let mut t = vec![None; self.id_bound()];
        for i in &self.inputs {
            t[i.id as usize] = Some((i.shape.clone(), i.dtype));
        }
        for n in &self.nodes {
            t[n.id as usize] = Some((n.shape.clone(), n.dtype));
        }
        t
    }

    /// The position in `inputs` of every input, indexed by id.
    pub fn input_positions(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.id_bound()];
        for (k, i) in self.inputs.iter().enumerate() {
            p[i.id as usize] = Some(k);
        }
        p
    }

    /// Values whose results the graph must produce: outputs, state updates and gradients.
    pub fn roots(&self) -> Vec<ValueId> {
        let mut r = self.outputs.clone();
        r.extend(self.updates.iter().map(|u| u.value));
        r.extend(self.grads.iter().filter_map(|g| g.value));
        r
    }

    /// Node count per op name, sorted by name.
    pub fn op_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for n in &self.nodes {
            *m.entry(n.op.name()).or_insert(0) += 1;
        }
        m
    }

    /// Graphviz DOT: inputs as ellipses, ops as boxes, outputs/updates/grads as sinks.
    pub fn to_dot(&self) -> String {
        let mut s =
            String::from("digraph kiln {\n  rankdir=TB;\n  node [fontname=\"monospace\"];\n");
        for i in &self.inputs {
            let _ = writeln!(
                s,
                "  v{} [shape=ellipse,label=\"%{} {}\\n{}\"];",
                i.id,
                i.id,
                kind_label(&i.kind),
                type_label(&i.shape, i.dtype)
            );
        }
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "  v{} [shape=box,label=\"%{} = {}\\n{}\"];",
                n.id,
                n.id,
                op_label(&n.op).replace('"', "'"),
                type_label(&n.shape, n.dtype)
            );
            for a in &n.args {
                let _ = writeln!(s, "  v{a} -> v{};", n.id);
            }
        }
        for (k, o) in self.outputs.iter().enumerate() {
            let _ = writeln!(
                s,
                "  out{k} [shape=doublecircle,label=\"out{k}\"];\n  v{o} -> out{k};"
            );
        }
        for u in &self.updates {
            let _ = writeln!(
                s,
                "  v{} -> v{} [style=dashed,label=\"update\"];",
                u.value, u.input
            );
        }
        for (k, g) in self.grads.iter().enumerate() {
            if let Some(v) = g.value {
                let _ = writeln!(
                    s,
                    "  grad{k} [shape=note,label=\"grad{k}\"];\n  v{v} -> grad{k};"
                );
            }
        }
        s.push_str("}\n");
        s
    }
}

fn kind_label(k: &InputKind) -> String {
    match k {
        InputKind::Arg(i) => format!("arg{i}"),
        InputKind::State => "state".into(),
        InputKind::Const => "const".into(),
        InputKind::Grad(_) => "grad".into(),
    }
}

fn type_label(shape: &[usize], dtype: DType) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("{dtype}[{}]", dims.join(","))
}

/// `name` or `name{params}` for an op, parameters as in its Debug form.
pub fn op_label(op: &Op) -> String {
    if let Op::Fused(p) = op {
        use kiln_kernels::ops::fused::FusedStep;
        let steps: Vec<String> = p
            .steps
            .iter()
            .map(|s| match s {
                FusedStep::Unary { op, x } => format!("{}(r{x})", op_label(&Op::Unary(*op))),
                FusedStep::Binary { op, a, b } => format!("{}(r{a}, r{b})", op_label(op)),
                FusedStep::Where { c, a, b } => format!("where(r{c}, r{a}, r{b})"),
                FusedStep::Copy { x } => format!("copy(r{x})"),
            })
            .collect();
        let stores: Vec<String> = p
            .stores
            .iter()
            .map(|st| format!("; store(r{} -> in{})", st.reg, st.input))
            .collect();
        return format!("fused[{}{}]", steps.join("; "), stores.concat());
    }
    if let Op::MatmulAct(_) = op {
        // The name says it all (matmul_relu, matmul_gelu, matmul_gelu_tanh).
        return op.name().to_string();
    }
    let dbg = format!("{op:?}");
    match dbg.find(['(', '{']) {
        Some(i) => format!("{}{}", op.name(), dbg[i..].trim()),
        None => op.name().to_string(),
    }
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "graph(")?;
        for i in &self.inputs {
            writeln!(
                f,
                "  %{}: {} {}",
                i.id,
                type_label(&i.shape, i.dtype),
                kind_label(&i.kind)
            )?;
        }
        writeln!(f, ") {{")?;
        for n in &self.nodes {
            let args: Vec<String> = n.args.iter().map(|a| format!("%{a}")).collect();
            writeln!(
                f,
                "  %{} = {}({}) : {}{}",
                n.id,
                op_label(&n.op),
                args.join(", "),
                type_label(&n.shape, n.dtype),
                if n.fresh_random { "  # fresh draw" } else { "" }
            )?;
        }
        let outs: Vec<String> = self.outputs.iter().map(|o| format!("%{o}")).collect();
        writeln!(f, "  return ({})", outs.join(", "))?;
        for u in &self.updates {
            writeln!(f, "  update %{} <- %{}", u.input, u.value)?;
        }
        for (k, g) in self.grads.iter().enumerate() {
            let target = match &g.target {
                GradTarget::Leaf(t) => format!("leaf{k}{:?}", t.shape()),
                GradTarget::Arg(i) => format!("arg{i}"),
            };
            match g.value {
                Some(v) => writeln!(f, "  grad {target} <- %{v}")?,
                None => writeln!(f, "  grad {target} <- none")?,
            }
        }
        let counts: Vec<String> = self
            .op_counts()
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        writeln!(
            f,
            "}}  # {} nodes ({})",
            self.nodes.len(),
            counts.join(", ")
        )
    }
}

/// The output shape and dtype `op` would give on operands of these types, or the message it
/// would panic with in eager code (for validating graphs read from files). Never panics.
pub fn infer_checked(op: &Op, args: &[(&[usize], DType)]) -> Result<(Shape, DType), String> {
    let types: Vec<TypeRef> = args
        .iter()
        .map(|&(shape, dtype)| TypeRef { shape, dtype })
        .collect();
    let refs: Vec<&TypeRef> = types.iter().collect();
    try_infer(op, &refs).map_err(|e| e.0)
}

/// True for ops whose result is a view of their operand's storage (no kernel runs).
pub fn is_view_like(op: &Op) -> bool {
    op.is_view() || matches!(op, Op::Reshape(_))
}
