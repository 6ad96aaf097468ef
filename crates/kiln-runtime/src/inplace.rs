//! In-place planning for the executor: which fused nodes may write their result straight
//! into the buffer of a value that dies at that node, or into the state tensor their result
//! is written back to (an optimizer update), instead of a fresh buffer plus a copy; and
//! `matmul_gelu_backward`, which may write over its GELU input.

use crate::ir::is_view_like;
use crate::ir::{Graph, InputKind, ValueId};
use kiln_kernels::ops::Op;
use kiln_kernels::DType;

/// Where a node writes its result when it runs in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlace {
    /// Into the buffer of operand value `v`, which dies at this node.
    Operand(ValueId),
    /// Into the captured state tensor of input `v`, which this node's result updates.
    State(ValueId),
}

/// For each node, whether and where its result may be written in place (only fused nodes,
/// whose kernel reads each tile before writing it). A buffer is reused only when nothing
/// reads it — directly or through a view — after this node, and no view of it is read by
/// this node (a view's elements sit at other positions).
pub fn plan(g: &Graph, last_use: &[usize]) -> Vec<Option<InPlace>> {
    let n = g.id_bound();
    let producer: Vec<Option<usize>> = {
        let mut p = vec![None; n];
        for (i, node) in g.nodes.iter().enumerate() {
            p[node.id as usize] = Some(i);
        }
        p
    };
    // The value whose buffer each value's elements live in (views share their base's).
    let mut base: Vec<ValueId> = (0..n as ValueId).collect();
    for node in &g.nodes {
        if is_view_like(&node.op) {
            base[node.id as usize] = base[node.args[0] as usize];
        }
    }
    // Per base buffer: the last node reading a view of it (not the base value itself).
    let mut view_last_use = vec![None::<usize>; n];
    for (v, &b) in base.iter().enumerate() {
        if b as usize != v && last_use[v] != usize::MAX {
            let e = &mut view_last_use[b as usize];
            *e = Some(e.map_or(last_use[v], |x: usize| x.max(last_use[v])));
        }
    }
    // How often each value is a result (output, update or gradient), and which input each
    // update value is written back to.
    let mut root_count = vec![0usize; n];
    for r in g.roots() {
        root_count[r as usize] += 1;
    }
    let mut updates_input = vec![None::<ValueId>; n];
    let mut updated = vec![false; n];
    for u in &g.updates {
        updates_input[u.value as usize] = Some(u.input);
        updated[u.input as usize] = true;
    }
    let types = g.types();
    let positions = g.input_positions();
    let fresh = |v: ValueId| producer[v as usize].is_some_and(|p| !is_view_like(&g.nodes[p].op));
    let views_done_before = |b: ValueId, i: usize| view_last_use[b as usize].is_none_or(|l| l < i);

    g.nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            // A reduction epilogue's output is not of its iteration shape: never in place.
            // An optimizer update (f32 or f64) may run in the state it updates, and only there:
            // its kernel updates a parameter in place.
            let fused =
                matches!(&node.op, Op::Fused(p) if p.reduce.is_none()) && node.dtype == DType::F32;
            let optimizer = matches!(node.op, Op::AdamStep(_));
            let gelu_grad = node.op == Op::MatmulGeluBackward;
            if !fused && !optimizer && !gelu_grad {
                return None;
            }
            let same_type = |v: ValueId| {
                types[v as usize]
                    .as_ref()
                    .is_some_and(|(s, d)| s[..] == node.shape[..] && *d == node.dtype)
            };
            // A state this node's value is written back to, and nothing else.
            if root_count[node.id as usize] == 1 {
                if let Some(t) = updates_input[node.id as usize] {
                    let is_state = positions[t as usize].is_some_and(|k| {
                        let inp = &g.inputs[k];
                        inp.kind == InputKind::State || inp.kind == InputKind::Const
                    });
                    let read_later = last_use[t as usize] != usize::MAX && last_use[t as usize] > i;
                    if is_state
                        && same_type(t)
                        && !read_later
                        && root_count[t as usize] == 0
                        && views_done_before(t, i)
                    {
                        return Some(InPlace::State(t));
                    }
                }
            }
            if optimizer {
                return None;
            }
            // An operand that dies here (for matmul_gelu_backward only the GELU input, which
            // its kernel reads a block at a time before writing it).
            let candidates = if gelu_grad {
                &node.args[2..]
            } else {
                &node.args[..]
            };
            candidates.iter().copied().find_map(|a| {
                let ok = fresh(a)
                    && last_use[a as usize] == i
                    && root_count[a as usize] == 0
                    && !updated[a as usize]
                    && same_type(a)
                    && views_done_before(a, i);
                ok.then_some(InPlace::Operand(a))
            })
        })
        .collect()
}
