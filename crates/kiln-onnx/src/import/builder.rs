//! Builds a Kiln graph from ONNX nodes, one Kiln op at a time. Each op is checked by its own
//! shape rule (`infer_checked`) before it is added, so a model Kiln cannot run is refused with
//! the op's message while importing, never when it runs. Ops whose operands are all known
//! while importing (shape arithmetic: `Shape` → `Gather` → `Concat` → a `Reshape` target;
//! weight transposes; folded batch norms) are run right away by the CPU kernels and stay
//! constants, as ONNX Runtime's constant folding does.

use kiln_kernels::cpu::{execute, to_contiguous_vec};
use kiln_kernels::ops::{Op, UnaryOp};
use kiln_kernels::shape::{checked_numel, Shape};
use kiln_kernels::storage::CpuStorage;
use kiln_kernels::{DType, OwnedOperand};
use kiln_runtime::ir::{infer_checked, Graph, GraphWeight, Input, InputKind, Node, ValueId};
use std::cell::Cell;
use std::rc::Rc;

/// What an import step fails with: a message the caller puts beside the node it came from.
pub(crate) type R<T> = Result<T, String>;

/// Constants folded while importing may take this many bytes in all (a model whose shape
/// arithmetic builds more is refused rather than allowed to exhaust memory).
const FOLD_BUDGET: usize = 1 << 30;

/// A value known while importing: an initializer, a `Constant`, or a folded result.
pub(crate) struct Const {
    /// The value (dense).
    pub value: OwnedOperand,
    /// A weight of the model (an initializer), rather than a constant made while importing.
    weight: bool,
    /// The initializer's name, for a weight.
    name: Option<String>,
    /// Made from a weight (a weight itself, or an op over one folded while importing).
    from_weight: bool,
    /// A weight that is a statistic, not a parameter (a batch norm's running mean and
    /// variance): not trained.
    frozen: Cell<bool>,
    /// Its values were computed from the traced batch size (a `Shape` of a batch-sized
    /// value): right at that size only, so it may steer shapes but not enter the graph.
    batch_valued: bool,
    /// Its graph input, once some op that runs in the graph reads it.
    id: Cell<Option<ValueId>>,
}

/// A value of the ONNX graph as Kiln sees it.
#[derive(Clone)]
pub(crate) enum Value {
    /// Computed when the graph runs.
    Node {
        /// Its id in the Kiln graph.
        id: ValueId,
        /// Shape.
        shape: Shape,
        /// Element type.
        dtype: DType,
    },
    /// Known while importing.
    Const(Rc<Const>),
}

impl Value {
    /// Its shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Node { shape, .. } => shape,
            Value::Const(c) => c.value.operand().shape(),
        }
    }

    /// Its element type.
    pub fn dtype(&self) -> DType {
        match self {
            Value::Node { dtype, .. } => *dtype,
            Value::Const(c) => c.value.operand().dtype(),
        }
    }

    /// Its rank.
    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    /// Its value, when known while importing.
    pub fn known(&self) -> Option<&OwnedOperand> {
        match self {
            Value::Const(c) => Some(&c.value),
            Value::Node { .. } => None,
        }
    }
}

/// The Kiln graph being built.
#[derive(Default)]
pub(crate) struct Builder {
    inputs: Vec<Input>,
    nodes: Vec<Node>,
    next_id: ValueId,
    folded_bytes: usize,
    /// The size given to the symbolic batch, when there is one.
    batch: Option<usize>,
    /// Set when a value computed from the batch size was refused as data.
    refused_batch: Cell<bool>,
    /// Keep ops over weights in the graph (a graph to train) instead of folding them.
    keep_weight_ops: bool,
    /// The weights read by the graph: input id, initializer name, trainable.
    weights: Vec<GraphWeight>,
}

impl Builder {
    fn fresh_id(&mut self) -> ValueId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The `k`-th argument of the graph.
    pub fn arg(&mut self, k: usize, shape: &[usize], dtype: DType) -> Value {
        let id = self.fresh_id();
        self.inputs.push(Input {
            id,
            kind: InputKind::Arg(k),
            value: None,
            shape: shape.iter().copied().collect(),
            dtype,
        });
        Value::Node {
            id,
            shape: shape.iter().copied().collect(),
            dtype,
        }
    }

    /// Builds the graph at batch size `b` (the trace size of a symbolic batch).
    pub fn trace_batch(&mut self, b: usize) {
        self.batch = Some(b);
    }

    /// Keeps ops over weights in the graph, so the weights stay its inputs (to train them).
    pub fn keep_weight_ops(&mut self) {
        self.keep_weight_ops = true;
    }

    fn known(&self, value: OwnedOperand, weight: bool, batch_valued: bool) -> Value {
        Value::Const(Rc::new(Const {
            value: dense(value),
            weight,
            name: None,
            from_weight: weight,
            frozen: Cell::new(false),
            batch_valued,
            id: Cell::new(None),
        }))
    }

    /// The graph argument `id` is, with its element count and dtype.
    pub fn arg_of(&self, id: ValueId) -> Option<(usize, usize, DType)> {
        self.inputs
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| match i.kind {
                InputKind::Arg(k) => Some((k, i.shape.iter().product(), i.dtype)),
                _ => None,
            })
    }

    /// A weight of the model (the initializer `name`).
    pub fn weight(&self, value: OwnedOperand, name: &str) -> Value {
        Value::Const(Rc::new(Const {
            value: dense(value),
            weight: true,
            name: Some(name.to_string()),
            from_weight: true,
            frozen: Cell::new(false),
            batch_valued: false,
            id: Cell::new(None),
        }))
    }

    /// Marks a weight as a statistic that is not trained.
    pub fn freeze(&self, v: &Value) {
        if let Value::Const(c) = v {
            c.frozen.set(true);
        }
    }

    /// A constant made while importing.
    pub fn constant(&self, value: OwnedOperand) -> Value {
        self.known(value, false, false)
    }

    /// The dims of a value as a 1-d i64 constant (`Shape`, `Size`); with a symbolic batch, one
    /// holding a multiple of the trace size counts as computed from the batch.
    pub fn dims_of(&self, dims: &[i64], shape: &[usize]) -> Value {
        let from_batch = self.batch.is_some_and(|b| {
            dims.iter()
                .any(|&d| d > 0 && (d as usize).is_multiple_of(b))
        });
        self.known(
            OwnedOperand::dense(CpuStorage::I64(dims.to_vec()), shape),
            false,
            from_batch,
        )
    }

    /// A 0-d constant.
    pub fn scalar(&self, v: f64, dtype: DType) -> Value {
        self.constant(OwnedOperand::dense(
            CpuStorage::from_f64s(dtype, std::iter::once(v)),
            &[],
        ))
    }

    /// A 1-d i64 constant.
    pub fn i64s(&self, v: &[i64]) -> Value {
        self.constant(OwnedOperand::dense(CpuStorage::I64(v.to_vec()), &[v.len()]))
    }

    /// The graph value of `v`, adding a constant as a graph input the first time it is read.
    pub fn id(&mut self, v: &Value) -> R<ValueId> {
        match v {
            Value::Node { id, .. } => Ok(*id),
            Value::Const(c) => {
                if let Some(id) = c.id.get() {
                    return Ok(id);
                }
                if c.batch_valued && self.batch.is_some_and(|b| holds_multiple(&c.value, b)) {
                    self.refused_batch.set(true);
                    return Err(
                        "a value computed from the batch size enters the graph as data; it would \
                         be wrong at other batch sizes (fix the batch size to import this model)"
                            .into(),
                    );
                }
                let kind = if c.weight {
                    InputKind::State
                } else {
                    InputKind::Const
                };
                let id = self.value_input(kind, c.value.clone());
                c.id.set(Some(id));
                if let (true, Some(name)) = (c.weight, &c.name) {
                    self.weights.push(GraphWeight {
                        id,
                        name: name.clone(),
                        trainable: !c.frozen.get() && c.value.operand().dtype().is_float(),
                    });
                }
                Ok(id)
            }
        }
    }

    /// Applies `op` to `args`: run now when every operand is known, else added to the graph.
    /// Refused with the op's own message when its shape rule rejects the operands.
    pub fn op(&mut self, op: Op, args: &[&Value]) -> R<Value> {
        let types: Vec<(&[usize], DType)> = args.iter().map(|a| (a.shape(), a.dtype())).collect();
        let (shape, dtype) = infer_checked(&op, &types)?;
        // A value past the kernels' size bound is refused here, before anything plans it.
        let bytes = checked_numel(&shape, dtype.size_in_bytes())
            .map_err(|e| format!("{}: {e}", op.name()))?
            * dtype.size_in_bytes();
        let known: Option<Vec<_>> = args.iter().map(|a| a.known()).collect();
        let over_weight = args
            .iter()
            .any(|a| matches!(a, Value::Const(c) if c.from_weight));
        // A trainable import keeps ops over weights in the graph, so the weights stay its inputs.
        let keep = matches!(op, Op::Random { .. }) || (self.keep_weight_ops && over_weight);
        if let (Some(known), false) = (known, keep) {
            self.folded_bytes = self.folded_bytes.saturating_add(bytes);
            if self.folded_bytes > FOLD_BUDGET {
                return Err(format!(
                    "the constants computed while importing pass {FOLD_BUDGET} bytes"
                ));
            }
            let operands: Vec<_> = known.iter().map(|k| k.operand()).collect();
            let (storage, layout) = execute(&op, &operands, &shape, dtype);
            let batch_valued = args
                .iter()
                .any(|a| matches!(a, Value::Const(c) if c.batch_valued));
            return Ok(Value::Const(Rc::new(Const {
                value: dense(OwnedOperand::new(storage, layout, dtype)),
                weight: false,
                name: None,
                from_weight: over_weight,
                frozen: Cell::new(false),
                batch_valued,
                id: Cell::new(None),
            })));
        }
        let ids = args.iter().map(|a| self.id(a)).collect::<R<_>>()?;
        let id = self.fresh_id();
        self.nodes.push(Node {
            id,
            op,
            args: ids,
            shape: shape.clone(),
            dtype,
            fresh_random: false,
        });
        Ok(Value::Node { id, shape, dtype })
    }

    /// `x` reshaped (no op when the shape is already `shape`).
    pub fn reshape(&mut self, x: &Value, shape: &[usize]) -> R<Value> {
        if x.shape() == shape {
            return Ok(x.clone());
        }
        self.op(Op::Reshape(shape.iter().copied().collect()), &[x])
    }

    /// `x` with its dims reordered.
    pub fn permute(&mut self, x: &Value, perm: &[usize]) -> R<Value> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(x.clone());
        }
        self.op(Op::Permute(perm.iter().copied().collect()), &[x])
    }

    /// An elementwise unary op.
    pub fn unary(&mut self, x: &Value, u: UnaryOp) -> R<Value> {
        self.op(Op::Unary(u), &[x])
    }

    /// A binary op.
    pub fn binary(&mut self, op: Op, a: &Value, b: &Value) -> R<Value> {
        self.op(op, &[a, b])
    }

    /// `x` as `dtype` (no op when it already is).
    pub fn cast(&mut self, x: &Value, dtype: DType) -> R<Value> {
        if x.dtype() == dtype {
            return Ok(x.clone());
        }
        self.op(Op::Cast(dtype), &[x])
    }

    /// `x · k` with a scalar of `x`'s dtype.
    pub fn scale(&mut self, x: &Value, k: f64) -> R<Value> {
        if k == 1.0 {
            return Ok(x.clone());
        }
        let k = self.scalar(k, x.dtype());
        self.binary(Op::Mul, x, &k)
    }

    /// A copy of `x` computed in the graph, for an output that would otherwise be an input
    /// or a constant.
    pub fn computed(&mut self, x: &Value) -> R<Value> {
        if let Value::Node { id, .. } = x {
            if !self.inputs.iter().any(|i| i.id == *id) {
                return Ok(x.clone());
            }
        }
        let arg = self.id(x)?;
        let id = self.fresh_id();
        let shape: Shape = x.shape().iter().copied().collect();
        let dtype = x.dtype();
        self.nodes.push(Node {
            id,
            op: Op::Contiguous,
            args: [arg].into_iter().collect(),
            shape: shape.clone(),
            dtype,
            fresh_random: false,
        });
        Ok(Value::Node { id, shape, dtype })
    }

    /// Folds a per-channel `y = x·scale + shift` into the convolution computing `x` (a batch
    /// norm after a conv, as exported models have it): the conv's weight and bias are
    /// rescaled on the host into new constants, so the graph loses two passes over the
    /// activations. Only when `x` is a conv node over known weights, and ops over weights may
    /// be folded; returns whether it did. The caller knows `x` has no other reader.
    pub fn fold_affine_into_conv(&mut self, x: &Value, scale: &[f64], shift: &[f64]) -> bool {
        let Value::Node { id, dtype, .. } = x else {
            return false;
        };
        if self.keep_weight_ops || !matches!(dtype, DType::F32 | DType::F64) {
            return false;
        }
        let Some(k) = self
            .nodes
            .iter()
            .rposition(|n| n.id == *id && matches!(n.op, Op::Conv2d(_)))
        else {
            return false;
        };
        let value = |ids: Option<&ValueId>| {
            ids.and_then(|a| self.inputs.iter().find(|i| i.id == *a))
                .and_then(|i| i.value.clone())
        };
        let args = self.nodes[k].args.clone();
        let Some(w) = value(args.get(1)) else {
            return false;
        };
        let bias = match args.get(2) {
            Some(_) => match value(args.get(2)) {
                Some(b) => Some(b),
                None => return false,
            },
            None => None,
        };
        let shape = w.operand().shape().to_vec();
        let o = shape[0];
        if scale.len() != o || shift.len() != o {
            return false;
        }
        let per = shape[1..].iter().product::<usize>();
        let wv = known_f64s(&w);
        let scaled = wv
            .iter()
            .enumerate()
            .map(|(i, &v)| v * scale[i / per.max(1)]);
        let new_w = OwnedOperand::dense(CpuStorage::from_f64s(*dtype, scaled), &shape);
        let bv = bias.as_ref().map_or(vec![0.0; o], known_f64s);
        let new_b = (0..o).map(|c| bv[c] * scale[c] + shift[c]);
        let new_b = OwnedOperand::dense(CpuStorage::from_f64s(*dtype, new_b), &[o]);
        let w_id = self.value_input(InputKind::Const, new_w);
        let b_id = self.value_input(InputKind::Const, new_b);
        let node = &mut self.nodes[k];
        node.args[1] = w_id;
        if node.args.len() > 2 {
            node.args[2] = b_id;
        } else {
            node.args.push(b_id);
        }
        true
    }

    /// A graph input holding `value`.
    fn value_input(&mut self, kind: InputKind, value: OwnedOperand) -> ValueId {
        let id = self.fresh_id();
        let o = value.operand();
        let (shape, dtype) = (o.shape().iter().copied().collect(), o.dtype());
        self.inputs.push(Input {
            id,
            kind,
            shape,
            dtype,
            value: Some(value),
        });
        id
    }

    /// True when a value computed from the batch size was refused as data (the model can
    /// still be imported at a fixed batch size).
    pub fn refused_batch(&self) -> bool {
        self.refused_batch.get()
    }

    /// A value computed on the host from `from` (a `Range`, integer arithmetic): computed
    /// from the batch size when one of them is.
    pub fn derived(&self, value: OwnedOperand, from: &[&Value]) -> Value {
        let batch_valued = from
            .iter()
            .any(|a| matches!(a, Value::Const(c) if c.batch_valued));
        self.known(value, false, batch_valued)
    }

    /// The graph, returning `outputs`, and the weights it reads; an error says whether it
    /// came from the batch.
    pub fn finish(
        mut self,
        outputs: &[Value],
    ) -> Result<(Graph, Vec<GraphWeight>), (String, bool)> {
        let outputs = outputs
            .iter()
            .map(|o| self.computed(o))
            .collect::<R<Vec<_>>>()
            .map_err(|e| (e, self.refused_batch()))?;
        let ids = outputs
            .iter()
            .map(|o| node_id(o).expect("computed"))
            .collect();
        Ok((Graph::inference(self.inputs, self.nodes, ids), self.weights))
    }
}

fn node_id(v: &Value) -> Option<ValueId> {
    match v {
        Value::Node { id, .. } => Some(*id),
        Value::Const(_) => None,
    }
}

/// `v` with a dense row-major layout (a folded transpose is a strided view until copied).
fn dense(v: OwnedOperand) -> OwnedOperand {
    let o = v.operand();
    if o.is_contiguous() && o.layout().offset == 0 {
        return v;
    }
    let (storage, layout) = execute(&Op::Contiguous, &[o], o.shape(), o.dtype());
    OwnedOperand::new(storage, layout, o.dtype())
}

/// True when some element of `v` is a non-zero multiple of `b` (a value made from a batch
/// of `b`: the batch itself, batch × heads, …).
fn holds_multiple(v: &OwnedOperand, b: usize) -> bool {
    known_f64s(v)
        .iter()
        .any(|&x| x != 0.0 && x.fract() == 0.0 && (x.abs() % b as f64) == 0.0)
}

/// The elements of a known value as `T` (cast as Kiln casts: floats truncated to integers).
fn known_as<T: kiln_kernels::storage::StorageElement>(v: &OwnedOperand) -> Vec<T> {
    let o = v.operand();
    if o.dtype() == T::DTYPE {
        return to_contiguous_vec::<T>(o);
    }
    let (storage, layout) = execute(&Op::Cast(T::DTYPE), &[o], o.shape(), T::DTYPE);
    to_contiguous_vec::<T>(OwnedOperand::new(storage, layout, T::DTYPE).operand())
}

/// The elements of a known value as i64.
pub(crate) fn known_i64s(v: &OwnedOperand) -> Vec<i64> {
    known_as(v)
}

/// The elements of a known value as f64.
pub(crate) fn known_f64s(v: &OwnedOperand) -> Vec<f64> {
    known_as(v)
}
