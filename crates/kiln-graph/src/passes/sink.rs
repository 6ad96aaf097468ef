//! Memory-aware scheduling: a node whose result is much larger than what it reads runs just
//! before its first reader instead of where it was traced. A matmul VJP, for one, computes
//! `dX = dY·W` (8 MiB for a GPT MLP's hidden layer) and then `dW = Xᵀ·dY`, which needs the
//! rematerialized `X` (another 8 MiB): holding both at once set the step's peak. Moved after
//! `dW`, `dX` is made once `X` is gone.

use super::{is_view_like, Pass};
use kiln_core::ops::Op;
use kiln_core::trace::{Graph, InputKind, ValueId};

/// Moves nodes later, next to their first reader, when that lowers live memory (see the module
/// docs). Random draws keep their place (their order fixes the generator's stream), as do
/// nodes writing state in place.
pub struct SinkToUse;

impl Pass for SinkToUse {
    fn name(&self) -> &'static str {
        "sink"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let types = g.types();
        let bytes = |v: ValueId| {
            types[v as usize]
                .as_ref()
                .map_or(0, |(s, d)| s.iter().product::<usize>() * d.size_in_bytes())
        };
        let n = g.id_bound();
        // The value whose buffer each value's elements are in (itself unless a view), and
        // whether that buffer is a captured tensor or a result (alive throughout anyway).
        let mut owner: Vec<ValueId> = (0..n as ValueId).collect();
        for node in &g.nodes {
            if is_view_like(&node.op) {
                owner[node.id as usize] = owner[node.args[0] as usize];
            }
        }
        let mut pinned = vec![false; n];
        for i in &g.inputs {
            pinned[i.id as usize] = matches!(i.kind, InputKind::State | InputKind::Const);
        }
        for r in g.roots() {
            pinned[owner[r as usize] as usize] = true;
        }
        let mut changed = false;
        for i in (0..g.nodes.len()).rev() {
            let node = &g.nodes[i];
            let movable = !node.fresh_random
                && !is_view_like(&node.op)
                && !matches!(node.op, Op::Random { .. })
                && node.op.writes_args().is_empty();
            if !movable {
                continue;
            }
            let id = node.id;
            let Some(u) = (i + 1..g.nodes.len()).find(|&k| g.nodes[k].args.contains(&id)) else {
                continue;
            };
            if u == i + 1 {
                continue;
            }
            // Operand buffers this node would keep alive from here to `u`: those nothing
            // reads from `u` on.
            let mut cost = 0;
            let mut seen: Vec<ValueId> = Vec::new();
            for &a in &node.args {
                let o = owner[a as usize];
                if pinned[o as usize] || seen.contains(&o) {
                    continue;
                }
                seen.push(o);
                let read_from_u = g.nodes[u..]
                    .iter()
                    .any(|m| m.args.iter().any(|&x| owner[x as usize] == o));
                if !read_from_u {
                    cost += bytes(o);
                }
            }
            if bytes(id) > cost {
                let moved = g.nodes.remove(i);
                g.nodes.insert(u - 1, moved);
                changed = true;
            }
        }
        changed
    }
}
