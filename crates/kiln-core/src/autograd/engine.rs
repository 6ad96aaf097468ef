//! The backward pass: walks the recorded graph from a root in dependency order and applies
//! each op's VJP.

use super::grad_mode::{set_grad_enabled, NoGradGuard};
use super::node::{Edge, Node};
use crate::ops::vjp::vjp;
use crate::ops::Op;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::Arc;

/// Options of [`Tensor::backward_opts`].
#[derive(Clone, Copy, Debug, Default)]
pub struct BackwardOptions {
    /// Keep saved tensors so backward can run through the graph again (implied by
    /// `create_graph`).
    pub retain_graph: bool,
    /// Record the backward computation itself (for higher-order gradients).
    pub create_graph: bool,
}

fn key(n: &Arc<Node>) -> *const Node {
    Arc::as_ptr(n)
}

impl Tensor {
    /// Backpropagates from a one-element tensor (the loss), accumulating into leaves' `.grad`.
    pub fn backward(&self) {
        if self.numel() != 1 {
            panic!(
                "backward: grad can be implicitly created only for one-element outputs, got shape {:?}; use backward_with",
                self.shape()
            );
        }
        let one = Tensor::ones_like(self);
        self.backward_opts(&one, BackwardOptions::default());
    }

    /// Backpropagates `grad` (the gradient of some scalar with respect to `self`).
    pub fn backward_with(&self, grad: &Tensor) {
        self.backward_opts(grad, BackwardOptions::default());
    }

    /// Backpropagates `grad` with explicit options.
    pub fn backward_opts(&self, grad: &Tensor, opts: BackwardOptions) {
        if grad.shape() != self.shape() {
            panic!(
                "backward: gradient shape {:?} does not match output shape {:?}",
                grad.shape(),
                self.shape()
            );
        }
        if grad.dtype() != self.dtype() {
            panic!(
                "backward: gradient dtype {} does not match output dtype {} (shape {:?})",
                grad.dtype(),
                self.dtype(),
                self.shape()
            );
        }
        let root = match self.grad_fn() {
            Some(f) => f.clone(),
            None => {
                if self.requires_grad() {
                    self.accumulate_grad(grad.detach());
                    return;
                }
                panic!(
                    "backward: tensor of shape {:?} does not require grad and has no grad_fn",
                    self.shape()
                );
            }
        };
        run_backward(root, grad.clone(), opts);
    }
}

/// Counts, for every node reachable from `root`, how many reachable nodes feed it a gradient.
fn dependencies(root: &Arc<Node>) -> HashMap<*const Node, usize> {
    let mut deps: HashMap<*const Node, usize> = HashMap::new();
    deps.insert(key(root), 0);
    let mut stack = vec![root.clone()];
    while let Some(n) = stack.pop() {
        for e in n.edges.iter() {
            if let Edge::Node(child) = e {
                let c = deps.entry(key(child)).or_insert(0);
                *c += 1;
                if *c == 1 {
                    stack.push(child.clone());
                }
            }
        }
    }
    deps
}

fn run_backward(root: Arc<Node>, grad: Tensor, opts: BackwardOptions) {
    let prev_mode = set_grad_enabled(opts.create_graph);
    let _restore = RestoreMode(prev_mode);
    let mut deps = dependencies(&root);
    let mut grads: HashMap<*const Node, Tensor> = HashMap::new();
    grads.insert(key(&root), grad);
    let mut ready = vec![root];
    while let Some(node) = ready.pop() {
        let g = grads
            .remove(&key(&node))
            .expect("backward: ready node without a gradient");
        let saved = {
            let mut slot = node.saved.lock();
            // Like PyTorch, create_graph implies retain_graph: the recorded backward still
            // references the forward graph.
            if opts.retain_graph || opts.create_graph {
                slot.as_ref().map(|s| (s.inputs.clone(), s.output.clone()))
            } else {
                slot.take().map(|s| (s.inputs, s.output))
            }
        };
        let Some((inputs, output)) = saved else {
            panic!(
                "backward: trying to backward through the graph a second time (op {}); its saved tensors were freed \
                 after the first backward. Pass retain_graph: true to the first backward if you need to.",
                node.op.name()
            );
        };
        check_versions(&node, &inputs, &output);
        let needs: SmallVec<[bool; 3]> = node
            .edges
            .iter()
            .map(|e| !matches!(e, Edge::None))
            .collect();
        if let Some(child) = add_slice_into_accumulator(&node, &g, &grads, opts) {
            drop(g);
            release(child, &mut deps, &mut ready);
            continue;
        }
        let input_refs: SmallVec<[&Tensor; 3]> = inputs.iter().collect();
        let input_grads = {
            let _scope = crate::profile::scope(|| format!("backward:{}", node.op.name()));
            vjp(&node.op, &input_refs, &output, &g, &needs)
        };
        drop(g);
        // Move the gradients out (no clones) so a leaf can tell whether it owns its buffer.
        let mut input_grads = input_grads.into_iter();
        for (i, edge) in node.edges.iter().enumerate() {
            let Some(gi) = input_grads.next().flatten() else {
                if needs[i] {
                    panic!(
                        "backward: op {} returned no gradient for input {i}",
                        node.op.name()
                    );
                }
                continue;
            };
            debug_assert_eq!(
                gi.shape(),
                inputs[i].shape(),
                "vjp of {} gave a wrong shape",
                node.op.name()
            );
            // Inputs promoted by the op (f32 · f64) get their gradient in their own dtype.
            // (Moved, not cloned, when the dtype already matches: a leftover handle would make
            // the buffer look shared to `accumulate_grad`.)
            let want = inputs[i].dtype();
            let gi = if gi.dtype() == want {
                gi
            } else {
                gi.to_dtype(want)
            };
            match edge {
                Edge::None => {}
                Edge::Leaf(t) => {
                    // A gradient without history that nothing else holds becomes `.grad` as
                    // is. Otherwise hand over a detached handle: while another handle (say the
                    // same gradient going to the other operand of an `add`) is alive, the
                    // buffer counts as shared and `accumulate_grad` copies it.
                    let owned = gi.grad_fn().is_none() && Arc::strong_count(&gi.0) == 1;
                    let gi = if opts.create_graph || owned {
                        gi
                    } else {
                        gi.detach()
                    };
                    t.accumulate_grad(gi);
                }
                Edge::Node(child) => {
                    let k = key(child);
                    let acc = match grads.remove(&k) {
                        Some(prev) => &prev + &gi,
                        None => gi,
                    };
                    grads.insert(k, acc);
                    release(child, &mut deps, &mut ready);
                }
            }
        }
    }
}

/// Counts one gradient delivered to `child`; it is ready once all have arrived.
fn release(child: &Arc<Node>, deps: &mut HashMap<*const Node, usize>, ready: &mut Vec<Arc<Node>>) {
    let d = deps.get_mut(&key(child)).expect("backward: unknown node");
    *d -= 1;
    if *d == 0 {
        ready.push(child.clone());
    }
}

/// The gradient of a slice (`narrow`, `chunk`, a q/k/v split) whose input already has an
/// accumulated gradient that nothing else holds: `g` is added into that buffer's slice in
/// place, instead of scattering `g` into a full-size zero tensor and adding the two full
/// tensors (which, for a transformer's q/k/v split, wrote and re-read three full-size
/// buffers per block). Returns the input's node when it did.
fn add_slice_into_accumulator<'a>(
    node: &'a Node,
    g: &Tensor,
    grads: &HashMap<*const Node, Tensor>,
    opts: BackwardOptions,
) -> Option<&'a Arc<Node>> {
    let Op::Slice {
        dim,
        start,
        len,
        step,
    } = node.op
    else {
        return None;
    };
    let [Edge::Node(child)] = &node.edges[..] else {
        return None;
    };
    if opts.create_graph || crate::trace::is_tracing() {
        return None;
    }
    let acc = grads.get(&key(child))?;
    // Owned: no other handle of the tensor or of its storage (a leaf's `.grad`, a view, the
    // same gradient delivered elsewhere) could see the write.
    let owned = Arc::strong_count(&acc.0) == 1
        && Arc::strong_count(acc.storage()) == 1
        && acc.grad_fn().is_none()
        && acc.is_contiguous();
    if !owned || acc.dtype() != g.dtype() {
        return None;
    }
    acc.slice_step(dim, start, len, step).add_(g);
    Some(child)
}

struct RestoreMode(bool);
impl Drop for RestoreMode {
    fn drop(&mut self) {
        set_grad_enabled(self.0);
    }
}

fn check_versions(node: &Node, inputs: &[Tensor], output: &Tensor) {
    let _ng = NoGradGuard::new();
    for (i, t) in inputs.iter().chain(std::iter::once(output)).enumerate() {
        if t.version() != node.versions[i] {
            let what = if i < inputs.len() {
                format!("input {i}")
            } else {
                "its output".to_string()
            };
            panic!(
                "backward: a tensor needed for the gradient of {} ({what}, shape {:?}, {}) was modified by an in-place \
                 operation: it is at version {} but was saved at version {}. Use an out-of-place op or clone() first.",
                node.op.name(),
                t.shape(),
                t.dtype(),
                t.version(),
                node.versions[i]
            );
        }
    }
}
