//! Runs a graph: reads its inputs (arguments, captured state, gradients), applies each node's
//! primitive op with the eager CPU kernels in a fixed order, frees every intermediate after its
//! last use, then writes state updates and gradient slots back.

use crate::inplace::InPlace;
use kiln_core::ops::{dispatch, Op};
use kiln_core::trace::{GradTarget, Graph, InputKind, ValueId};
use kiln_core::{no_grad, Tensor};
use std::collections::HashSet;
use std::sync::Arc;

/// A graph prepared for repeated execution: operand lists and last uses computed once.
pub struct Executable {
    graph: Graph,
    /// For each node, the values that die right after it runs.
    frees: Vec<Vec<ValueId>>,
    /// Inputs the nodes or results actually read (unused inputs are never loaded).
    live_inputs: Vec<usize>,
    /// Per node: write the result into an existing buffer (see [`crate::inplace`]).
    in_place: Vec<Option<InPlace>>,
    /// The tensor each update writes back to, in `graph.updates` order.
    update_targets: Vec<Tensor>,
    /// Captured (state or constant) tensors by input id.
    bound: Vec<Option<Tensor>>,
    /// Where each value lives.
    plan: crate::memplan::MemoryPlan,
}

impl Executable {
    /// Prepares `graph` for execution.
    pub fn new(graph: Graph) -> Executable {
        let n = graph.id_bound();
        let mut last_use = vec![usize::MAX; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            for &a in &node.args {
                last_use[a as usize] = i;
            }
        }
        let roots: HashSet<ValueId> = graph.roots().into_iter().collect();
        let mut frees = vec![Vec::new(); graph.nodes.len()];
        for (id, &i) in last_use.iter().enumerate() {
            if i != usize::MAX && !roots.contains(&(id as ValueId)) {
                frees[i].push(id as ValueId);
            }
        }
        let live_inputs = graph
            .inputs
            .iter()
            .enumerate()
            .filter(|(_, inp)| last_use[inp.id as usize] != usize::MAX || roots.contains(&inp.id))
            .map(|(k, _)| k)
            .collect();
        let in_place = crate::inplace::plan(&graph, &last_use);
        let plan = crate::memplan::plan(&graph, in_place.clone());
        let mut bound = vec![None; n];
        for i in &graph.inputs {
            if matches!(i.kind, InputKind::State | InputKind::Const) {
                bound[i.id as usize] = i.tensor.clone();
            }
        }
        let update_targets = graph
            .updates
            .iter()
            .map(|u| {
                bound[u.input as usize]
                    .clone()
                    .expect("updated input is bound")
            })
            .collect();
        Executable {
            graph,
            frees,
            live_inputs,
            in_place,
            update_targets,
            bound,
            plan,
        }
    }

    /// The graph this runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The memory plan.
    pub fn plan(&self) -> &crate::memplan::MemoryPlan {
        &self.plan
    }

    /// Per node, the buffer it writes in place, if any.
    pub fn in_place(&self) -> &[Option<InPlace>] {
        &self.in_place
    }

    /// Runs the graph on `args` and returns its outputs. State updates and gradient slots are
    /// written before it returns.
    pub fn run(&self, args: &[Tensor]) -> Vec<Tensor> {
        let g = &self.graph;
        let mut values: Vec<Option<Tensor>> = vec![None; g.id_bound()];
        for &k in &self.live_inputs {
            let inp = &g.inputs[k];
            let t = match &inp.kind {
                InputKind::Arg(i) => args[*i].clone(),
                InputKind::State | InputKind::Const => {
                    inp.tensor.clone().expect("bound input has its tensor")
                }
                InputKind::Grad => {
                    let leaf = inp.tensor.as_ref().expect("grad input has its leaf");
                    leaf.grad().unwrap_or_else(|| {
                        panic!(
                            "compiled function: the gradient of a tensor of shape {:?} was set \
                             when the function was traced but is empty now; zero_grad inside the \
                             compiled function, or keep the gradients set between calls",
                            leaf.shape()
                        )
                    })
                }
            };
            values[inp.id as usize] = Some(t);
        }
        no_grad(|| {
            for ((node, dead), place) in g.nodes.iter().zip(&self.frees).zip(&self.in_place) {
                let out = if node.fresh_random {
                    fresh_random(&node.op)
                } else if let Some(out) = place.and_then(|p| self.run_in_place(node, p, &values)) {
                    out
                } else {
                    let ins: smallvec::SmallVec<[&Tensor; 3]> = node
                        .args
                        .iter()
                        .map(|a| {
                            values[*a as usize].as_ref().unwrap_or_else(|| {
                                panic!(
                                    "executor: operand %{a} of %{} ({}) is not available",
                                    node.id,
                                    node.op.name()
                                )
                            })
                        })
                        .collect();
                    dispatch(node.op.clone(), &ins)
                };
                values[node.id as usize] = Some(out);
                for d in dead {
                    values[*d as usize] = None;
                }
            }
            for (u, target) in g.updates.iter().zip(&self.update_targets) {
                let v = values[u.value as usize].as_ref().expect("update computed");
                // A node that ran in place already wrote the target.
                if !(v.shares_storage(target) && v.layout() == target.layout()) {
                    target.copy_(v);
                }
            }
        });
        let mut handed_out: HashSet<usize> = HashSet::new();
        for go in &g.grads {
            let value = go.value.map(|v| {
                let t = values[v as usize].clone().expect("gradient computed");
                // Two slots never share a buffer (in-place clipping of one must not change the
                // other), as in eager mode.
                if !handed_out.insert(Arc::as_ptr(t.storage()) as usize) {
                    no_grad(|| t.copy())
                } else {
                    t
                }
            });
            match &go.target {
                GradTarget::Leaf(leaf) => leaf.set_grad(value),
                GradTarget::Arg(i) => args[*i].set_grad(value),
            }
        }
        g.outputs
            .iter()
            .map(|o| values[*o as usize].clone().expect("output computed"))
            .collect()
    }
}

impl Executable {
    /// Runs a fused node into the buffer its plan names, if that buffer is a dense f32 tensor
    /// of the node's shape right now; `None` falls back to a fresh output.
    fn run_in_place(
        &self,
        node: &kiln_core::trace::Node,
        place: InPlace,
        values: &[Option<Tensor>],
    ) -> Option<Tensor> {
        let Op::Fused(program) = &node.op else {
            return None;
        };
        let target = match place {
            InPlace::Operand(v) => values[v as usize].clone()?,
            InPlace::State(v) => self.bound[v as usize].clone()?,
        };
        let dense = target.is_contiguous()
            && target.layout().offset == 0
            && target.storage().read().len() == target.numel()
            && target.shape() == &node.shape[..];
        if !dense {
            return None;
        }
        let ins: smallvec::SmallVec<[&Tensor; 3]> = node
            .args
            .iter()
            .map(|a| values[*a as usize].as_ref().expect("operand computed"))
            .collect();
        // Any other view of the buffer among the operands would be read at other positions.
        if ins
            .iter()
            .any(|t| t.shares_storage(&target) && t.layout() != target.layout())
        {
            return None;
        }
        let _scope = kiln_core::profile::scope(|| "fused(in place)".to_string());
        kiln_core::cpu::fused_into(program, &ins, &target);
        Some(target)
    }
}

/// A random node draws its counters from the global generator now, as the eager op would.
fn fresh_random(op: &Op) -> Tensor {
    let Op::Random {
        dist, shape, dtype, ..
    } = op
    else {
        unreachable!("fresh_random on a non-random op")
    };
    let n = shape.iter().product();
    let (seed, offset) = kiln_core::random::with_global(|g| g.reserve(n));
    dispatch(
        Op::Random {
            dist: *dist,
            shape: shape.clone(),
            dtype: *dtype,
            seed,
            offset,
        },
        &[],
    )
}
