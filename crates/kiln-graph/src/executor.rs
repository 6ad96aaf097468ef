//! Runs a graph over preallocated buffers: a fixed schedule of kernels writing into the
//! buffers of the [memory plan](crate::memplan), with every view made once. The first call
//! allocates the buffers; later calls allocate nothing (arguments are copied into their planned
//! buffers, kernels write into existing ones, state updates are written in place or copied
//! into the state, gradient slots receive the executor's own gradient tensors).
//!
//! Results handed out (outputs returned by [`Executable::run`], gradients in `.grad` slots)
//! live in the executor's buffers. A result still referenced elsewhere when the next call
//! starts (a loss kept from the last step, a gradient someone holds) is left alone: that call
//! first moves to fresh buffers, so what the caller holds never changes under it.

use crate::inplace::InPlace;
use crate::memplan::{MemoryPlan, Placement};
use kiln_core::cpu::{copy_into, execute_into, index_error};
use kiln_core::dtype::DType;
use kiln_core::layout::Layout;
use kiln_core::operand::Operand;
use kiln_core::ops::Op;
use kiln_core::shape::Shape;
use kiln_core::storage::{CpuStorage, Storage};
use kiln_core::trace::{GradTarget, Graph, InputKind, Node, ValueId};
use kiln_core::{no_grad, Tensor};
use parking_lot::Mutex;
use smallvec::SmallVec;
use std::sync::Arc;

/// Why a call of a graph failed: an op refused its data (an index out of range).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("%{node}: {message}")]
pub struct RunError {
    /// The node that refused.
    pub node: ValueId,
    /// What it refused, as the eager op would have said it.
    pub message: String,
}

/// A graph prepared for repeated execution over planned buffers.
pub struct Executable {
    graph: Graph,
    plan: MemoryPlan,
    /// Per node: how it runs.
    steps: Vec<Step>,
    /// (input id, argument position) of the arguments copied in at each call.
    args: Vec<(ValueId, usize)>,
    /// (input id, leaf) of the gradients read at each call.
    grad_inputs: Vec<(ValueId, Tensor)>,
    /// The tensor each update writes back to, in `graph.updates` order.
    update_targets: Vec<Tensor>,
    /// Per gradient slot: whether it gets its own copy of the value (a value another slot
    /// also gets, or one not in a planned buffer, e.g. a captured tensor).
    grad_copy: Vec<bool>,
    /// Whether the schedule runs on a pool thread. With a kernel writing a value large
    /// enough to split across threads, yes: each parallel loop then starts with a cheap
    /// in-pool fork instead of a hand-off from outside the pool (~14 µs, a dozen times per
    /// train step). So does a graph with a batch-1 product over a large weight, which the
    /// matmul kernel splits across the pool's cores only from inside it. A graph of small
    /// values and small products stays on the caller's thread and pays no hand-off at all.
    in_pool: bool,
    /// The buffers and every value's tensor, made at the first call.
    runtime: Mutex<Option<Runtime>>,
}

/// Whether `node` is a single product that the matmul kernel splits across the pool only when
/// it runs on a pool thread (a batch-1 layer over a large weight).
fn splits_in_pool(node: &Node, types: &[Option<(Shape, DType)>]) -> bool {
    if !matches!(node.op, Op::Matmul | Op::MatmulAct(_)) || node.args.len() < 2 {
        return false;
    }
    let shape = |id: ValueId| types[id as usize].as_ref().map(|t| &t.0[..]);
    match (shape(node.args[0]), shape(node.args[1])) {
        (Some(&[m, k]), Some(&[_, n])) => kiln_core::cpu::splits_inside_pool(m, k, n),
        _ => false,
    }
}

/// How a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// A view made once with the buffers: nothing to do.
    View,
    /// Its kernel writes into the value's buffer (or, in place, into a dying operand's or
    /// the updated state's).
    Kernel,
    /// A random draw with fresh counters from the global generator, as the eager op would.
    FreshRandom,
}

/// The buffers of one executable and the tensors over them.
struct Runtime {
    buffers: Vec<Arc<Storage>>,
    /// Every value's tensor, by id.
    values: Vec<Option<Tensor>>,
    /// Per gradient slot that gets a copy: its own tensor.
    grad_copies: Vec<Option<Tensor>>,
    /// Per buffer: storage references this runtime holds itself (more means a handed-out
    /// result was viewed elsewhere).
    own_refs: Vec<usize>,
}

impl Executable {
    /// Prepares `graph` for execution: plans its memory (buffers are allocated at the first
    /// call).
    pub fn new(graph: Graph) -> Executable {
        let n = graph.id_bound();
        let mut last_use = vec![usize::MAX; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            for &a in &node.args {
                last_use[a as usize] = i;
            }
        }
        let in_place = crate::inplace::plan(&graph, &last_use);
        let plan = crate::memplan::plan(&graph, in_place);
        let steps: Vec<Step> = graph
            .nodes
            .iter()
            .map(|node| match plan.placement[node.id as usize] {
                Some(Placement::View { .. }) => Step::View,
                _ if node.fresh_random => Step::FreshRandom,
                _ => Step::Kernel,
            })
            .collect();
        let used = |id: ValueId| last_use[id as usize] != usize::MAX || graph.roots().contains(&id);
        let args = graph
            .inputs
            .iter()
            .filter_map(|i| match i.kind {
                InputKind::Arg(k) => Some((i.id, k)),
                _ => None,
            })
            .collect();
        let grad_inputs = graph
            .inputs
            .iter()
            .filter(|i| i.kind == InputKind::Grad && used(i.id))
            .map(|i| (i.id, i.tensor.clone().expect("grad input has its leaf")))
            .collect();
        let update_targets = graph
            .updates
            .iter()
            .map(|u| {
                graph
                    .input(u.input)
                    .and_then(|i| i.tensor.clone())
                    .expect("updated input is bound")
            })
            .collect();
        let mut seen: Vec<usize> = Vec::new();
        let grad_copy = graph
            .grads
            .iter()
            .map(|go| match go.value.map(|v| plan.buffer_of(v)) {
                // Two slots never share a buffer (in-place clipping of one must not change
                // the other), as in eager mode; captured tensors are not handed out.
                Some(Some(b)) if !seen.contains(&b) => {
                    seen.push(b);
                    false
                }
                Some(_) => true,
                None => false,
            })
            .collect();
        let grain = kiln_core::cpu::threads::GRAIN;
        let types = graph.types();
        let in_pool = graph.nodes.iter().zip(&steps).any(|(n, step)| {
            *step != Step::View
                && (n.shape.iter().product::<usize>() >= grain || splits_in_pool(n, &types))
        });
        Executable {
            graph,
            plan,
            steps,
            args,
            grad_inputs,
            update_targets,
            grad_copy,
            in_pool,
            runtime: Mutex::new(None),
        }
    }

    /// The graph this runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The memory plan.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// Per node, the buffer it writes in place, if any.
    pub fn in_place(&self) -> &[Option<InPlace>] {
        &self.plan.in_place
    }

    /// Runs the graph on `args` and returns its outputs. State updates and gradient slots are
    /// written before it returns. The outputs are the executor's own result tensors: kept by
    /// the caller, they stay as they are (the next call moves to fresh buffers).
    ///
    /// Panics, like the eager ops would, when the data is invalid for an op (an index out of
    /// range); [`Executable::try_run`] returns that as an error instead.
    #[track_caller]
    pub fn run(&self, args: &[Tensor]) -> Vec<Tensor> {
        match self.try_run(args) {
            Ok(outputs) => outputs,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Executable::run`], returning an error instead of panicking when the data is invalid
    /// for an op (the values of an index: a graph served to the outside gets its indices from
    /// requests). The run stops at the refusing node: gradient slots and state copied back at
    /// the end are not written (an inference graph changes nothing).
    pub fn try_run(&self, args: &[Tensor]) -> Result<Vec<Tensor>, RunError> {
        let mut rt = self.runtime.lock();
        let rt = self.execute(&mut rt, args)?;
        Ok(self
            .graph
            .outputs
            .iter()
            .map(|o| rt.value(*o).clone())
            .collect())
    }

    /// Runs the graph on `args` and copies its outputs into `outputs` (tensors of the
    /// outputs' shapes, e.g. from an earlier [`Executable::run`]). After the first call this
    /// allocates nothing: arguments are copied into planned buffers, every kernel writes
    /// into an existing buffer, state is updated in place or by a copy, and each `.grad` slot
    /// is set to the executor's gradient tensor for it, which the next call overwrites unless
    /// something else still holds it then (that call then moves to fresh buffers first).
    pub fn run_into(&self, args: &[Tensor], outputs: &mut [Tensor]) {
        assert_eq!(
            outputs.len(),
            self.graph.outputs.len(),
            "run_into: {} output tensors for {} outputs",
            outputs.len(),
            self.graph.outputs.len()
        );
        let mut rt = self.runtime.lock();
        let rt = match self.execute(&mut rt, args) {
            Ok(rt) => rt,
            Err(e) => panic!("{e}"),
        };
        no_grad(|| {
            for (out, o) in outputs.iter().zip(&self.graph.outputs) {
                copy_into(out.operand(), rt.value(*o).operand());
            }
        });
    }

    /// One call: buffers made or moved as needed, arguments in, nodes, updates, gradients.
    fn execute<'r>(
        &self,
        slot: &'r mut Option<Runtime>,
        args: &[Tensor],
    ) -> Result<&'r Runtime, RunError> {
        let fresh = match slot {
            Some(rt) => rt.escaped(self),
            None => true,
        };
        if fresh {
            *slot = Some(Runtime::new(self));
        }
        let rt = slot.as_ref().expect("runtime built");
        let g = &self.graph;
        let body = || {
            no_grad(|| {
                for &(id, k) in &self.args {
                    let arg = args.get(k).unwrap_or_else(|| {
                        panic!(
                            "compiled function: argument {k} missing ({} given)",
                            args.len()
                        )
                    });
                    copy_into(rt.value(id).operand(), arg.operand());
                }
                for (id, leaf) in &self.grad_inputs {
                    let grad = leaf.grad().unwrap_or_else(|| {
                        panic!(
                            "compiled function: the gradient of a tensor of shape {:?} was set \
                         when the function was traced but is empty now; zero_grad inside the \
                         compiled function, or keep the gradients set between calls",
                            leaf.shape()
                        )
                    });
                    copy_into(rt.value(*id).operand(), grad.operand());
                }
                for (node, step) in g.nodes.iter().zip(&self.steps) {
                    let out = rt.value(node.id);
                    match step {
                        Step::View => {}
                        Step::Kernel => {
                            let ins: SmallVec<[Operand<'_>; 16]> =
                                node.args.iter().map(|a| rt.value(*a).operand()).collect();
                            let _scope = kiln_core::profile::scope(|| {
                                kiln_core::profile::op_row(
                                    node.op.name(),
                                    ins.iter().map(|t| t.shape()),
                                )
                            });
                            if let Some(e) = index_error(&node.op, &ins) {
                                return Err(RunError {
                                    node: node.id,
                                    message: e,
                                });
                            }
                            execute_into(&node.op, &ins, out.operand());
                        }
                        Step::FreshRandom => {
                            execute_into(&fresh_random(&node.op), &[], out.operand())
                        }
                    }
                }
                for (u, target) in g.updates.iter().zip(&self.update_targets) {
                    let v = rt.value(u.value);
                    // A node that ran in place already wrote the target.
                    if !(v.shares_storage(target) && v.layout() == target.layout()) {
                        copy_into(target.operand(), v.operand());
                    }
                }
                for (k, go) in g.grads.iter().enumerate() {
                    let value = go.value.map(|v| match &rt.grad_copies[k] {
                        Some(copy) => {
                            copy_into(copy.operand(), rt.value(v).operand());
                            copy.clone()
                        }
                        None => rt.value(v).clone(),
                    });
                    match &go.target {
                        GradTarget::Leaf(leaf) => leaf.set_grad(value),
                        GradTarget::Arg(i) => args[*i].set_grad(value),
                    }
                }
                Ok(())
            })
        };
        if self.in_pool {
            kiln_core::cpu::threads::run_with_pool_awake(body)?;
        } else {
            body()?;
        }
        Ok(rt)
    }
}

impl Runtime {
    /// Allocates the planned buffers and makes every value's tensor over them.
    fn new(exe: &Executable) -> Runtime {
        let g = &exe.graph;
        let plan = &exe.plan;
        let buffers: Vec<Arc<Storage>> = plan
            .buffers
            .iter()
            .map(|b| Arc::new(Storage::cpu(CpuStorage::filled(b.dtype, b.len, 0.0))))
            .collect();
        let mut values: Vec<Option<Tensor>> = vec![None; g.id_bound()];
        let dense = |b: usize, shape: &[usize]| {
            Tensor::from_storage(buffers[b].clone(), Layout::contiguous(shape))
        };
        let bound = |id: ValueId| {
            g.input(id)
                .and_then(|i| i.tensor.clone())
                .expect("bound input has its tensor")
        };
        for i in &g.inputs {
            values[i.id as usize] = match &exe.plan.placement[i.id as usize] {
                Some(Placement::Buffer(b)) => Some(dense(*b, &i.shape)),
                Some(_) => Some(bound(i.id)),
                None => None,
            };
        }
        for node in &g.nodes {
            let t = match &plan.placement[node.id as usize] {
                Some(Placement::Buffer(b)) => dense(*b, &node.shape),
                Some(Placement::View { base, layout }) => {
                    let base = values[*base as usize].as_ref().expect("view base made");
                    Tensor::from_storage(base.storage().clone(), layout.clone())
                }
                Some(Placement::State(t)) => bound(*t),
                Some(Placement::Bound) | None => {
                    unreachable!("executor: node %{} has no placement", node.id)
                }
            };
            values[node.id as usize] = Some(t);
        }
        let grad_copies = g
            .grads
            .iter()
            .zip(&exe.grad_copy)
            .map(|(go, &copy)| {
                let v = go.value.filter(|_| copy)?;
                let t = values[v as usize].as_ref().expect("gradient value made");
                Some(no_grad(|| t.copy()))
            })
            .collect();
        let own_refs = buffers.iter().map(Arc::strong_count).collect();
        Runtime {
            buffers,
            values,
            grad_copies,
            own_refs,
        }
    }

    fn value(&self, id: ValueId) -> &Tensor {
        self.values[id as usize]
            .as_ref()
            .unwrap_or_else(|| panic!("executor: value %{id} is not available"))
    }

    /// True when a result handed out by an earlier call is still referenced beyond this
    /// runtime and its gradient slots (so the buffers must not be written again).
    fn escaped(&self, exe: &Executable) -> bool {
        let g = &exe.graph;
        let slots_of = |v: ValueId| {
            g.grads
                .iter()
                .zip(&self.grad_copies)
                .filter(|(go, copy)| go.value == Some(v) && copy.is_none())
                .count()
        };
        let held = |t: &Tensor, slots: usize| t.handle_count() > 1 + slots;
        for &v in g
            .outputs
            .iter()
            .chain(g.grads.iter().filter_map(|go| go.value.as_ref()))
        {
            if exe.plan.buffer_of(v).is_some() && held(self.value(v), slots_of(v)) {
                return true;
            }
        }
        if self.grad_copies.iter().flatten().any(|t| held(t, 1)) {
            return true;
        }
        self.buffers
            .iter()
            .zip(&self.own_refs)
            .any(|(b, &own)| Arc::strong_count(b) > own)
            || self
                .grad_copies
                .iter()
                .flatten()
                .any(|t| Arc::strong_count(t.storage()) > 1)
    }
}

/// A random node's op with counters drawn from the global generator now, as the eager op's.
fn fresh_random(op: &Op) -> Op {
    let Op::Random {
        dist, shape, dtype, ..
    } = op
    else {
        unreachable!("fresh_random on a non-random op")
    };
    let n = shape.iter().product();
    let (seed, offset) = kiln_core::random::with_global(|g| g.reserve(n));
    Op::Random {
        dist: *dist,
        shape: shape.clone(),
        dtype: *dtype,
        seed,
        offset,
    }
}
