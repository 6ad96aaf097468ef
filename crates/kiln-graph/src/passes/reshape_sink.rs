//! Reshape sinking: an elementwise op whose operands are all reshapes of values of one shape
//! runs on those values, and its result is reshaped instead (`f(reshape a, reshape b)` equals
//! `reshape f(a, b)` for same-shape operands). The op then reads kernel outputs directly, so
//! fusion and in-place planning see the producers' own buffers (a Linear's `[B·T, N]` product
//! reaching GELU's backward through a `[B, T, N]` view, for example).

use super::{producers, Pass};
use kiln_core::ops::Op;
use kiln_core::shape::Shape;
use kiln_core::trace::{Graph, Node, ValueId};
use smallvec::SmallVec;

/// Moves reshapes from the operands of elementwise ops to their results.
pub struct SinkReshapes;

fn is_elementwise(op: &Op) -> bool {
    op.is_unary() || op.is_binary() || matches!(op, Op::Where | Op::GeluBackward)
}

/// The reshapes' sources and their common shape, when every operand of `n` is a reshape (to
/// `n`'s own shape) of a value of one other shape.
fn sources(g: &Graph, prod: &[Option<usize>], n: &Node) -> Option<(SmallVec<[ValueId; 3]>, Shape)> {
    if !is_elementwise(&n.op) || n.args.is_empty() {
        return None;
    }
    let types = |v: ValueId| {
        let p = prod[v as usize]?;
        Some(&g.nodes[p])
    };
    let mut srcs = SmallVec::new();
    let mut common: Option<Shape> = None;
    for &a in &n.args {
        let r = types(a)?;
        if !matches!(r.op, Op::Reshape(_)) || r.shape[..] != n.shape[..] {
            return None;
        }
        let s = r.args[0];
        let src_shape = match prod[s as usize] {
            Some(p) => g.nodes[p].shape.clone(),
            None => g.inputs.iter().find(|i| i.id == s)?.shape.clone(),
        };
        match &common {
            Some(c) if c[..] != src_shape[..] => return None,
            _ => common = Some(src_shape),
        }
        srcs.push(s);
    }
    common.filter(|c| c[..] != n.shape[..]).map(|c| (srcs, c))
}

impl Pass for SinkReshapes {
    fn name(&self) -> &'static str {
        "reshape-sink"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let prod = producers(g);
        let rewrites: Vec<_> = g.nodes.iter().map(|n| sources(g, &prod, n)).collect();
        if rewrites.iter().all(Option::is_none) {
            return false;
        }
        let nodes = std::mem::take(&mut g.nodes);
        let mut out = Vec::with_capacity(nodes.len() + 8);
        for (n, rewrite) in nodes.into_iter().zip(rewrites) {
            let Some((args, shape)) = rewrite else {
                out.push(n);
                continue;
            };
            let id = g.new_id();
            out.push(Node {
                id,
                op: n.op.clone(),
                args,
                shape,
                dtype: n.dtype,
                fresh_random: false,
            });
            out.push(Node {
                id: n.id,
                op: Op::Reshape(n.shape.clone()),
                args: smallvec::smallvec![id],
                shape: n.shape,
                dtype: n.dtype,
                fresh_random: false,
            });
        }
        g.nodes = out;
        true
    }
}
