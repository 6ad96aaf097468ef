//! Runs a graph over preallocated buffers: a fixed schedule of kernels writing into the
//! buffers of the [memory plan](crate::memplan), with every view made once. [`Buffers`] are
//! allocated once ([`Executable::buffers`]); each [`Executable::run`] on them allocates
//! nothing: arguments and the gradient slots the graph reads are copied into their planned
//! buffers, kernels write into existing ones, state updates are written in place or copied
//! into the state.
//!
//! Values are storages seen through layouts ([`OwnedOperand`]); what a caller outside the
//! graph provides at each call comes through [`Feeds`]. The caller decides what it hands out:
//! a result it lends (a view of a buffer) raises that buffer's reference count, which
//! [`Buffers::escaped`] reports, so the next call can move to fresh buffers instead of
//! writing under the holder.

use crate::inplace::InPlace;
use crate::ir::{Graph, InputKind, Leaf, Node, ValueId};
use crate::memplan::{MemoryPlan, Placement};
use kiln_kernels::cpu::{copy_into, execute_into, index_error};
use kiln_kernels::dtype::DType;
use kiln_kernels::layout::Layout;
use kiln_kernels::ops::Op;
use kiln_kernels::shape::Shape;
use kiln_kernels::storage::{CpuStorage, Storage};
use kiln_kernels::{Operand, OwnedOperand};
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

/// What a call reads from outside the graph: its arguments and the gradient slots it reads.
pub trait Feeds: Sync {
    /// The value of argument `k`, or `None` when the caller gave fewer.
    fn arg(&self, k: usize) -> Option<Operand<'_>>;
    /// Calls `f` with the gradient now in `leaf`'s slot (a [`InputKind::Grad`] input).
    fn grad(&self, leaf: &Leaf, f: &mut dyn FnMut(Operand<'_>));
}

/// Plain arguments: a graph that reads no gradient slot (every inference graph).
impl Feeds for [Operand<'_>] {
    fn arg(&self, k: usize) -> Option<Operand<'_>> {
        self.get(k).copied()
    }

    fn grad(&self, leaf: &Leaf, _: &mut dyn FnMut(Operand<'_>)) {
        panic!("the graph reads the gradient slot of {leaf:?}; run it with Feeds that provide it")
    }
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
    grad_inputs: Vec<(ValueId, Leaf)>,
    /// The state each update writes back to, in `graph.updates` order.
    update_targets: Vec<OwnedOperand>,
    /// Per gradient slot: whether it gets its own copy of the value (a value another slot
    /// also gets, or one not in a planned buffer, e.g. a captured tensor).
    grad_copy: Vec<bool>,
    /// Whether the schedule runs on a pool thread. With a kernel writing a value large
    /// enough to split across threads, yes: each parallel loop then starts with a cheap
    /// in-pool fork instead of a hand-off from outside the pool (~3 µs, a dozen times per
    /// train step). So does a graph with a product the matmul kernel splits, even with a small
    /// output (a batch-1 or batch-8 layer over a large weight). A graph of small
    /// values and small products stays on the caller's thread and pays no hand-off at all.
    in_pool: bool,
}

/// Whether `node` is a single product that the matmul kernel splits across the pool (a large
/// product, or a batch-1 layer over a large weight, which it splits only on a pool thread).
fn splits_in_pool(node: &Node, types: &[Option<(Shape, DType)>]) -> bool {
    if !matches!(node.op, Op::Matmul | Op::MatmulAct(_)) || node.args.len() < 2 {
        return false;
    }
    let shape = |id: ValueId| types[id as usize].as_ref().map(|t| &t.0[..]);
    match (shape(node.args[0]), shape(node.args[1])) {
        (Some(&[m, k]), Some(&[_, n])) => kiln_kernels::cpu::splits_inside_pool(m, k, n),
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

/// The buffers of one executable and every value's view over them.
pub struct Buffers {
    buffers: Vec<Arc<Storage>>,
    /// Every value's storage and layout, by id.
    values: Vec<Option<OwnedOperand>>,
    /// Per gradient slot that gets a copy: its own buffer.
    grad_copies: Vec<Option<OwnedOperand>>,
    /// Per buffer, then per gradient copy: the storage references counted as the owner's
    /// (see [`Buffers::mark_held`]); more means a result was kept elsewhere.
    held: Vec<usize>,
}

impl Executable {
    /// Prepares `graph` for execution: plans its memory (buffers are allocated by
    /// [`Executable::buffers`]).
    pub fn new(graph: Graph) -> Executable {
        let last_use = crate::memplan::last_uses(&graph);
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
        let roots = graph.roots();
        let used = |id: ValueId| last_use[id as usize] != usize::MAX || roots.contains(&id);
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
            .filter_map(|i| match &i.kind {
                InputKind::Grad(leaf) if used(i.id) => Some((i.id, leaf.clone())),
                _ => None,
            })
            .collect();
        let update_targets = graph
            .updates
            .iter()
            .map(|u| {
                graph
                    .input(u.input)
                    .and_then(|i| i.value.clone())
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
        let grain = kiln_kernels::cpu::threads::GRAIN;
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

    /// Per gradient slot: whether it gets its own copy of its value rather than the value.
    pub fn grad_copy(&self) -> &[bool] {
        &self.grad_copy
    }

    /// Runs the graph on `bufs` (made by [`Executable::buffers`] of this executable), reading
    /// arguments and gradient slots from `feeds`. Outputs and gradient values are then in
    /// [`Buffers::value`] and [`Buffers::grad_value`]; state updates are written. Panics when
    /// `feeds` lacks an argument the graph reads.
    ///
    /// An op that refuses its data (an index out of range) stops the run at that node with
    /// a [`RunError`]: state copied back at the end is not written (an inference graph
    /// changes nothing).
    pub fn run<F: Feeds + ?Sized>(&self, bufs: &Buffers, feeds: &F) -> Result<(), RunError> {
        let g = &self.graph;
        let body = || {
            for &(id, k) in &self.args {
                let arg = feeds
                    .arg(k)
                    .unwrap_or_else(|| panic!("compiled function: argument {k} missing"));
                copy_into(bufs.value(id).operand(), arg);
            }
            for (id, leaf) in &self.grad_inputs {
                let dst = bufs.value(*id).operand();
                feeds.grad(leaf, &mut |grad| copy_into(dst, grad));
            }
            for (node, step) in g.nodes.iter().zip(&self.steps) {
                let out = bufs.value(node.id).operand();
                match step {
                    Step::View => {}
                    Step::Kernel => {
                        let ins: SmallVec<[Operand<'_>; 16]> =
                            node.args.iter().map(|a| bufs.value(*a).operand()).collect();
                        let _scope = kiln_kernels::profile::scope(|| {
                            kiln_kernels::profile::op_row(
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
                        execute_into(&node.op, &ins, out);
                    }
                    Step::FreshRandom => execute_into(&fresh_random(&node.op), &[], out),
                }
            }
            for (u, target) in g.updates.iter().zip(&self.update_targets) {
                let v = bufs.value(u.value).operand();
                let t = target.operand();
                // A node that ran in place already wrote the target.
                if !(v.shares_storage(t) && v.layout() == t.layout()) {
                    copy_into(t, v);
                }
            }
            for (go, copy) in g.grads.iter().zip(&bufs.grad_copies) {
                if let (Some(v), Some(copy)) = (go.value, copy) {
                    copy_into(copy.operand(), bufs.value(v).operand());
                }
            }
            Ok(())
        };
        if self.in_pool {
            kiln_kernels::cpu::threads::run_with_pool_awake(body)
        } else {
            body()
        }
    }

    /// Allocates the planned buffers and makes every value's view over them.
    pub fn buffers(&self) -> Buffers {
        let g = &self.graph;
        let plan = &self.plan;
        let buffers: Vec<Arc<Storage>> = plan
            .buffers
            .iter()
            .map(|b| Arc::new(Storage::cpu(CpuStorage::filled(b.dtype, b.len, 0.0))))
            .collect();
        let mut values: Vec<Option<OwnedOperand>> = vec![None; g.id_bound()];
        let dense = |b: usize, shape: &[usize], dtype: DType| {
            OwnedOperand::new(buffers[b].clone(), Layout::contiguous(shape), dtype)
        };
        let bound = |id: ValueId| {
            g.input(id)
                .and_then(|i| i.value.clone())
                .expect("bound input has its value")
        };
        for i in &g.inputs {
            values[i.id as usize] = match &plan.placement[i.id as usize] {
                Some(Placement::Buffer(b)) => Some(dense(*b, &i.shape, i.dtype)),
                Some(_) => Some(bound(i.id)),
                None => None,
            };
        }
        for node in &g.nodes {
            let v = match &plan.placement[node.id as usize] {
                Some(Placement::Buffer(b)) => dense(*b, &node.shape, node.dtype),
                Some(Placement::View { base, layout }) => {
                    let base = values[*base as usize].as_ref().expect("view base made");
                    let base = base.operand();
                    OwnedOperand::new(base.storage().clone(), layout.clone(), base.dtype())
                }
                Some(Placement::State(t)) => bound(*t),
                Some(Placement::Bound) | None => {
                    unreachable!("executor: node %{} has no placement", node.id)
                }
            };
            values[node.id as usize] = Some(v);
        }
        let grad_copies = g
            .grads
            .iter()
            .zip(&self.grad_copy)
            .map(|(go, &copy)| {
                let v = go.value.filter(|_| copy)?;
                let v = values[v as usize].as_ref().expect("gradient value made");
                let shape = v.operand().shape();
                let dtype = v.operand().dtype();
                Some(OwnedOperand::dense(
                    CpuStorage::filled(dtype, shape.iter().product(), 0.0),
                    shape,
                ))
            })
            .collect();
        let mut bufs = Buffers {
            buffers,
            values,
            grad_copies,
            held: Vec::new(),
        };
        bufs.mark_held();
        bufs
    }
}

impl Buffers {
    /// Value `id`'s storage and layout (a planned buffer, a view of one, or bound state).
    /// Panics for an id the graph does not compute.
    pub fn value(&self, id: ValueId) -> &OwnedOperand {
        self.values
            .get(id as usize)
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("executor: value %{id} is not available"))
    }

    /// What gradient slot `k` receives: its own copy when the executable makes one (see
    /// [`Executable::grad_copy`]), else its value; `None` for a slot left empty.
    pub fn grad_value(&self, exe: &Executable, k: usize) -> Option<&OwnedOperand> {
        let v = exe.graph.grads[k].value?;
        Some(
            self.grad_copies[k]
                .as_ref()
                .unwrap_or_else(|| self.value(v)),
        )
    }

    /// Counts the storage references that exist now as the owner's: views the owner keeps
    /// over the buffers (the tensors it hands out) do not count as escaped.
    pub fn mark_held(&mut self) {
        self.held = self.ref_counts().collect();
    }

    /// True when a storage reference beyond those counted by [`Buffers::mark_held`] exists:
    /// a result handed out by an earlier call is still held or viewed elsewhere, so the
    /// buffers must not be written again.
    pub fn escaped(&self) -> bool {
        self.ref_counts()
            .zip(&self.held)
            .any(|(now, &held)| now > held)
    }

    fn ref_counts(&self) -> impl Iterator<Item = usize> + '_ {
        self.buffers.iter().map(Arc::strong_count).chain(
            self.grad_copies
                .iter()
                .flatten()
                .map(|c| Arc::strong_count(c.operand().storage())),
        )
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
    let (seed, offset) = kiln_kernels::random::with_global(|g| g.reserve(n));
    Op::Random {
        dist: *dist,
        shape: shape.clone(),
        dtype: *dtype,
        seed,
        offset,
    }
}
