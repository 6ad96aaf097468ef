//! A recorded op in the autograd graph: the op, where each input's gradient goes, and the
//! tensors its VJP needs.

use crate::ops::Op;
use crate::tensor::Tensor;
use parking_lot::Mutex;
use smallvec::SmallVec;
use std::sync::Arc;

/// Where the gradient of one input of a node flows.
pub enum Edge {
    /// The input needs no gradient.
    None,
    /// The input is a leaf that accumulates into `.grad`.
    Leaf(Tensor),
    /// The input was produced by another tracked op.
    Node(Arc<Node>),
}

/// Tensors kept for the backward pass; dropped after backward unless `retain_graph`.
pub(crate) struct Saved {
    pub(crate) inputs: SmallVec<[Tensor; 3]>,
    pub(crate) output: Tensor,
}

/// One tracked op application.
pub struct Node {
    pub(crate) op: Op,
    pub(crate) edges: SmallVec<[Edge; 3]>,
    pub(crate) saved: Mutex<Option<Saved>>,
    /// Storage versions of the saved inputs and output when recorded.
    pub(crate) versions: SmallVec<[u64; 4]>,
}

impl Node {
    /// The op this node applies.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// The gradient edges, one per input.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    pub(crate) fn record(op: Op, inputs: &[&Tensor], output: &Tensor) -> Arc<Node> {
        let edges = inputs
            .iter()
            .map(|t| {
                if !t.requires_grad() {
                    Edge::None
                } else if let Some(f) = t.grad_fn() {
                    Edge::Node(f.clone())
                } else {
                    Edge::Leaf((*t).clone())
                }
            })
            .collect();
        // Keep only the data the VJP reads; other tensors are saved as shape-only stand-ins so
        // temporaries (e.g. both operands of every `add`) are freed as soon as the forward pass
        // is done with them.
        let keep = crate::ops::vjp::saves(&op);
        let saved_inputs: SmallVec<[Tensor; 3]> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if keep.input(i) {
                    (*t).clone()
                } else {
                    t.shape_only()
                }
            })
            .collect();
        // The output is saved detached: a strong link back to its own node would cycle.
        let saved_output = if keep.output {
            output.detach()
        } else {
            output.shape_only()
        };
        let mut versions: SmallVec<[u64; 4]> = saved_inputs.iter().map(|t| t.version()).collect();
        versions.push(saved_output.version());
        Arc::new(Node {
            op,
            edges,
            saved: Mutex::new(Some(Saved {
                inputs: saved_inputs,
                output: saved_output,
            })),
            versions,
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Free deep graphs (long unrolled loops) iteratively: the default drop recurses once
        // per node through edges and saved tensors and overflows the stack on long chains.
        let mut pending: Vec<Arc<Node>> = Vec::new();
        release(self, &mut pending);
        while let Some(n) = pending.pop() {
            if let Ok(mut node) = Arc::try_unwrap(n) {
                release(&mut node, &mut pending);
            }
        }
    }
}

/// Moves the nodes `node` holds (through edges and saved tensors) into `pending`.
fn release(node: &mut Node, pending: &mut Vec<Arc<Node>>) {
    for e in std::mem::take(&mut node.edges) {
        if let Edge::Node(n) = e {
            pending.push(n);
        }
    }
    if let Some(saved) = node.saved.get_mut().take() {
        for t in saved.inputs.into_iter().chain([saved.output]) {
            if let Ok(mut imp) = Arc::try_unwrap(t.0) {
                pending.extend(imp.grad_fn.take());
            }
        }
    }
}
