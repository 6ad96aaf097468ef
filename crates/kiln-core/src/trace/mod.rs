//! Graph capture. While [`trace`] runs a function, [`crate::ops::dispatch`] records every
//! primitive op into a [`Graph`] instead of running a kernel, and hands back *tracer* tensors:
//! tensors with a shape and dtype but no data, standing for a value of the graph.
//!
//! - Tensors that exist outside the trace (parameters, buffers, optimizer state) become graph
//!   inputs read at each call; tensors created during the trace (literals) become constants.
//! - In-place writes (`copy_`, `add_`, … as optimizers do) rebind the written tensor to the new
//!   value; writes to captured tensors become state updates applied after each call.
//! - `.grad` slots set during the trace (by `backward`) become gradient outputs; the slots are
//!   restored when tracing ends so no tracer escapes into user objects.
//! - Random ops drawn from the global generator draw fresh numbers at each call.
//! - Reading a tracer's value (`item`, `to_vec`) panics with a message saying what to do.
//!
//! Eager-only fast paths (fused optimizer loops and the like) check [`is_tracing`] and fall
//! back to primitive ops so a traced step records them.

pub use kiln_runtime::ir::{
    infer_checked, op_label, GradOutput, GradTarget, Graph, Input, InputKind, Leaf, Node, Update,
    ValueId,
};

use crate::dtype::DType;
use crate::layout::Layout;
use crate::ops::{Distribution, Op};
use crate::shape::Shape;
use crate::storage::capture;
use crate::storage::Storage;
use crate::tensor::Tensor;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

thread_local! {
    /// Number of the current (or last) trace on this thread; tracers carry theirs.
    static GENERATION: Cell<u32> = const { Cell::new(0) };
    static STATE: RefCell<Option<TraceState>> = const { RefCell::new(None) };
}

/// The capture tag of a tracer's storage ([`Storage::capture_tag`]): the born-in-capture
/// bit, [`STAND_IN`], the trace's generation (30 bits) and the traced value's id (32 bits).
const STAND_IN: u64 = 1 << 62;
/// The bits of a generation a tag keeps (generations are compared modulo this).
const GENERATION_MASK: u32 = (1 << 30) - 1;

fn tracer_tag(id: ValueId, generation: u32) -> u64 {
    Storage::BORN_IN_CAPTURE
        | STAND_IN
        | u64::from(generation & GENERATION_MASK) << 32
        | u64::from(id)
}

/// The traced value a storage stands for, if it is a tracer's.
#[inline]
pub(crate) fn tracer_id(s: &Storage) -> Option<ValueId> {
    let tag = s.capture_tag();
    (tag & STAND_IN != 0).then_some(tag as u32)
}

/// The generation of the trace a tracer's storage was made by.
fn tag_generation(s: &Storage) -> u32 {
    (s.capture_tag() >> 32) as u32 & GENERATION_MASK
}

/// Rebinds a tracer to a new value (an in-place write recorded during tracing).
fn set_tracer_id(s: &Storage, id: ValueId) {
    s.set_capture_tag(s.capture_tag() & !u64::from(u32::MAX) | u64::from(id));
}

/// True while the current thread is tracing a function for `compile` (the flag lives with
/// storage, which marks the buffers a trace makes as its constants).
#[inline]
pub fn is_tracing() -> bool {
    capture::is_active()
}

/// False until the first trace in this process (no tracer can exist before it).
#[inline]
pub(crate) fn ever_traced() -> bool {
    capture::ever_active()
}

/// Shape, dtype and gradient flag of one argument of a traced function.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArgSpec {
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Whether the argument requires grad.
    pub requires_grad: bool,
}

impl ArgSpec {
    /// The spec of an existing tensor.
    pub fn of(t: &Tensor) -> ArgSpec {
        ArgSpec {
            shape: t.shape().to_vec(),
            dtype: t.dtype(),
            requires_grad: t.requires_grad(),
        }
    }
}

/// A captured (real-data) tensor bound to a graph value.
struct Binding {
    tensor: Tensor,
    input: ValueId,
    value: ValueId,
    /// Written in place by a node as the graph runs ([`mark_stored`]).
    stored: bool,
}

struct TraceState {
    graph: Graph,
    /// Captured tensors by storage address (several layouts of one storage may be bound).
    bound: HashMap<usize, Vec<Binding>>,
    /// Values produced by view ops: writing into them in place is not supported.
    views: std::collections::HashSet<ValueId>,
    /// Leaves whose `.grad` slot the trace touched, with the slot as it was before.
    grads: Vec<(Tensor, Option<Tensor>)>,
}

/// Clears the trace on every exit path (including a panic in the traced function) and puts
/// back the `.grad` slots the function touched.
struct ActiveGuard;

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        capture::set_active(false);
        if let Some(st) = STATE.with(|s| s.borrow_mut().take()) {
            for (leaf, original) in st.grads {
                *leaf.0.grad.lock() = original;
            }
        }
    }
}

/// Traces `f` on tracer arguments matching `args` and returns its graph (outputs = the tensors
/// `f` returns). Panics if a trace is already running on this thread.
pub fn trace(args: &[ArgSpec], f: impl FnOnce(&[Tensor]) -> Vec<Tensor>) -> Graph {
    if is_tracing() {
        panic!("trace: already tracing on this thread (nested compile is not supported)");
    }
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
    let mut graph = Graph::default();
    let tracers: Vec<Tensor> = args
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let id = graph.new_id();
            graph.inputs.push(Input {
                id,
                kind: InputKind::Arg(i),
                value: None,
                shape: spec.shape.iter().copied().collect(),
                dtype: spec.dtype,
            });
            let t = tracer_tensor(id, &spec.shape, spec.dtype);
            if spec.requires_grad {
                t.requires_grad_(true);
            }
            t
        })
        .collect();
    STATE.with(|s| {
        *s.borrow_mut() = Some(TraceState {
            graph,
            bound: HashMap::new(),
            views: Default::default(),
            grads: Vec::new(),
        })
    });
    let guard = ActiveGuard;
    capture::set_active(true);
    let outs = f(&tracers);
    let out_ids: Vec<ValueId> = outs.iter().map(value_of).collect();
    drop(outs);
    let graph = finish(out_ids);
    drop(guard);
    graph
}

fn with_state<R>(f: impl FnOnce(&mut TraceState) -> R) -> R {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        f(s.as_mut().expect("trace state missing while tracing"))
    })
}

/// Resolves the grad slots and state updates and returns the finished graph.
fn finish(outputs: Vec<ValueId>) -> Graph {
    // Read the final grad slots (registering concrete ones as inputs) before taking the state.
    let touched: Vec<Tensor> = with_state(|st| st.grads.iter().map(|(t, _)| t.clone()).collect());
    let mut grads = Vec::new();
    for leaf in touched {
        let slot = leaf.0.grad.lock().clone();
        let value = slot.as_ref().map(value_of);
        grads.push((leaf, value));
    }
    with_state(|st| {
        for (leaf, value) in grads {
            let target = match tracer_id(leaf.storage()) {
                Some(id) => match st.graph.input(id).map(|i| i.kind.clone()) {
                    Some(InputKind::Arg(i)) => GradTarget::Arg(i),
                    // Gradients of intermediate tracers (retain_grad) are not outputs.
                    _ => continue,
                },
                None => GradTarget::Leaf(leaf_handle(&leaf)),
            };
            st.graph.grads.push(GradOutput { target, value });
        }
        let mut updates = Vec::new();
        for bindings in st.bound.values() {
            for b in bindings {
                // A state a node writes in place updates itself (nothing to copy back).
                if b.value != b.input || b.stored {
                    updates.push(Update {
                        input: b.input,
                        value: b.value,
                    });
                }
            }
        }
        updates.sort_by_key(|u| u.input);
        for u in &updates {
            if let Some(i) = st.graph.inputs.iter_mut().find(|i| i.id == u.input) {
                // A literal the function writes to is state (optimizer moments created lazily).
                if i.kind == InputKind::Const {
                    i.kind = InputKind::State;
                }
            }
        }
        st.graph.updates = updates;
        st.graph.outputs = outputs;
        std::mem::take(&mut st.graph)
    })
}

fn generation() -> u32 {
    GENERATION.with(|g| g.get())
}

fn tracer_tensor(id: ValueId, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_parts(
        Arc::new(Storage::stand_in(dtype, tracer_tag(id, generation()))),
        Layout::contiguous(shape),
        dtype,
        None,
    )
}

/// The graph value a tensor stands for, binding captured tensors as inputs on first use.
fn value_of(t: &Tensor) -> ValueId {
    if let Some(id) = tracer_id(t.storage()) {
        check_generation(t);
        return id;
    }
    with_state(|st| bind(st, t))
}

fn bind(st: &mut TraceState, t: &Tensor) -> ValueId {
    let key = Arc::as_ptr(t.storage()) as usize;
    let list = st.bound.entry(key).or_default();
    if let Some(b) = list.iter().find(|b| b.tensor.layout() == t.layout()) {
        return b.value;
    }
    let id = st.graph.new_id();
    let kind = if t.storage().capture_tag() & Storage::BORN_IN_CAPTURE != 0 {
        InputKind::Const
    } else {
        InputKind::State
    };
    st.graph.inputs.push(Input {
        id,
        kind,
        value: Some(t.to_owned_operand()),
        shape: t.shape().iter().copied().collect(),
        dtype: t.dtype(),
    });
    list.push(Binding {
        tensor: t.detach(),
        input: id,
        value: id,
        stored: false,
    });
    id
}

/// Panics when a tracer from an earlier trace (kept in a struct field during that trace) is
/// used in this one.
fn check_generation(t: &Tensor) {
    if tag_generation(t.storage()) != generation() & GENERATION_MASK {
        panic!(
            "compile: a tensor (shape {:?}, {}) made while tracing an earlier call escaped into \
             this one — traced code stored a computed tensor in a struct (e.g. optimizer state \
             created out of place); state must be created as real tensors and updated in place",
            t.shape(),
            t.dtype()
        );
    }
}

/// Records `op` on `inputs` and returns the tracer storage and layout of its result.
pub(crate) fn record(
    op: Op,
    inputs: &[&Tensor],
    shape: Shape,
    dtype: DType,
) -> (Arc<Storage>, Layout) {
    let args = inputs.iter().map(|t| value_of(t)).collect();
    let is_view = op.is_view() || matches!(op, Op::Reshape(_));
    // Views get the layout the kernel would give them, so code that checks
    // `is_contiguous()` (and copies) traces the same ops it runs eagerly.
    let view_layout = match &op {
        Op::Permute(p) => Some(inputs[0].layout().permute(p)),
        Op::Expand(s) => Some(inputs[0].layout().broadcast_to(s)),
        Op::Slice {
            dim,
            start,
            len,
            step,
        } => Some(inputs[0].layout().slice(*dim, *start, *len, *step)),
        Op::Reshape(s) => inputs[0].layout().reshape_view(s),
        _ => None,
    };
    let id = with_state(|st| {
        let id = st.graph.new_id();
        if is_view {
            st.views.insert(id);
        }
        st.graph.nodes.push(Node {
            id,
            op,
            args,
            shape: shape.clone(),
            dtype,
            fresh_random: false,
        });
        id
    });
    let layout = view_layout.unwrap_or_else(|| Layout::contiguous_owned(shape));
    (
        Arc::new(Storage::stand_in(dtype, tracer_tag(id, generation()))),
        layout,
    )
}

/// Records a draw from the global generator that happens at each call of the graph.
pub(crate) fn record_fresh_random(dist: Distribution, shape: Shape, dtype: DType) -> Tensor {
    let id = with_state(|st| {
        let id = st.graph.new_id();
        st.graph.nodes.push(Node {
            id,
            op: Op::Random {
                dist,
                shape: shape.clone(),
                dtype,
                seed: 0,
                offset: 0,
            },
            args: Default::default(),
            shape: shape.clone(),
            dtype,
            fresh_random: true,
        });
        id
    });
    tracer_tensor(id, &shape, dtype)
}

/// Records the in-place write `dst ← value` (`value` already has `dst`'s shape and dtype).
pub(crate) fn assign(op_name: &str, dst: &Tensor, value: &Tensor) {
    let v = value_of(value);
    if let Some(id) = tracer_id(dst.storage()) {
        check_generation(dst);
        if with_state(|st| st.views.contains(&id)) {
            panic!(
                "{op_name}: in-place write into a view (shape {:?}) while tracing for compile is \
                 not supported; write the whole tensor, or build the result out of place \
                 (slice_scatter, where_)",
                dst.shape()
            );
        }
        set_tracer_id(dst.storage(), v);
        return;
    }
    with_state(|st| {
        bind(st, dst);
        let key = Arc::as_ptr(dst.storage()) as usize;
        let list = st.bound.get_mut(&key).expect("bound above");
        if list.len() > 1 {
            panic!(
                "{op_name}: in-place write to a tensor (shape {:?}) whose storage the traced \
                 function also reads through another view; compile cannot order such aliasing \
                 writes — make the views inside the function",
                dst.shape()
            );
        }
        list[0].value = v;
    });
}

/// Whether a node recorded now may write `t`'s elements in place as the graph runs: `t` is
/// real data (a captured tensor, or one made during the trace), the only view of its storage
/// the trace uses, neither written nor read by the trace so far. Reads recorded after the
/// node then see the written elements, as they would eagerly; an earlier read is refused
/// because graph passes move and merge reads (fusion runs a producer where its consumer is),
/// and nothing in the graph orders it before the write.
pub(crate) fn can_store_into(t: &Tensor) -> bool {
    if is_tracer(t) {
        return false;
    }
    with_state(|st| {
        let id = bind(st, t);
        let list = &st.bound[&(Arc::as_ptr(t.storage()) as usize)];
        let untouched = list.len() == 1 && list[0].value == list[0].input && !list[0].stored;
        untouched && !st.graph.nodes.iter().any(|n| n.args.contains(&id))
    })
}

/// Records that the node just recorded writes `t` in place (checked by [`can_store_into`]):
/// `t` becomes state the graph updates, and later reads of it in the trace read it after
/// that node.
pub(crate) fn mark_stored(t: &Tensor) {
    with_state(|st| {
        let list = st
            .bound
            .get_mut(&(Arc::as_ptr(t.storage()) as usize))
            .expect("mark_stored: the tensor is bound");
        list[0].stored = true;
    });
}

/// Called before a leaf's `.grad` slot is read or written during tracing: remembers the slot
/// as it was (restored when tracing ends), and turns a real gradient that is read into a
/// graph input, so each call reads the gradient current then.
pub(crate) fn touch_grad(leaf: &Tensor, slot: &mut Option<Tensor>, reads: bool) {
    with_state(|st| {
        if st.grads.iter().any(|(t, _)| t.same(leaf)) {
            return;
        }
        st.grads.push((leaf.clone(), slot.clone()));
        if let Some(g) = slot.as_ref().filter(|_| reads) {
            if tracer_id(g.storage()).is_none() {
                let id = st.graph.new_id();
                st.graph.inputs.push(Input {
                    id,
                    kind: InputKind::Grad(leaf_handle(leaf)),
                    value: None,
                    shape: g.shape().iter().copied().collect(),
                    dtype: g.dtype(),
                });
                *slot = Some(tracer_tensor(id, g.shape(), g.dtype()));
            }
        }
    });
}

/// True for tensors that stand for a traced value (no data).
pub fn is_tracer(t: &Tensor) -> bool {
    tracer_id(t.storage()).is_some()
}

/// Panics with a clear message when `op` would read the data of a tracer (a layer above
/// that reads tensors' storage itself, as checkpoint writing does, calls it first).
#[inline]
pub fn check_readable(t: &Tensor, op: &str) {
    if ever_traced() && is_tracer(t) {
        tracer_read_panic(t, op);
    }
}

#[cold]
fn tracer_read_panic(t: &Tensor, op: &str) -> ! {
    if is_tracing() {
        panic!(
            "{op}: cannot read the value of a traced tensor (shape {:?}, {}) while compiling: \
             values exist only when the compiled graph runs. Return the tensor from the compiled \
             function and read it after the call, or replace data-dependent Rust branching with \
             tensor ops (where_, maximum, clamp)",
            t.shape(),
            t.dtype()
        )
    }
    panic!(
        "{op}: this tensor (shape {:?}, {}) is a tracer that escaped a compile trace (stored in \
         a struct field or a static during tracing?); only values returned by the compiled \
         function are real",
        t.shape(),
        t.dtype()
    )
}

/// The graph's handle of a leaf whose `.grad` slot it reads or sets: the leaf itself, not a
/// detached handle (that would have a `.grad` slot of its own, empty), so the compiled
/// function reads and sets the leaf's at each call.
fn leaf_handle(leaf: &Tensor) -> Leaf {
    Leaf::new(leaf.clone(), leaf.shape())
}
