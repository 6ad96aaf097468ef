//! Rematerialization: an elementwise value read early (forward) and again much later
//! (backward) is recomputed next to its late reads, when its operands are still live there
//! anyway (or small), instead of being kept from forward to backward. GELU outputs and
//! layer-norm outputs of a transformer are the typical case: their inputs stay live for their
//! own backward, so recomputing costs one cheap pass and frees a full activation across the
//! whole backward.
//!
//! With [`Rematerialize::matmuls`], a large matmul result read again only far into the
//! backward is recomputed too, when the gap spans a third of the graph: in a GPT step, the
//! first two layers' MLP hidden layers. Their two extra matmuls free 8 MiB each across the
//! step's peak (planned arena 87.3 MiB recomputing only the first, 79.3 MiB with both) but
//! cost time: the compiled GPT step took 0.98–1.02× eager's with them and 0.88–0.94× without
//! (quiet; 0.97–1.03× against 0.94–0.97× beside a busy process), so the default pipeline
//! leaves them off — its planned memory stays below eager's peak either way.

use super::{is_view_like, producers, Pass};
use kiln_core::ops::Op;
use kiln_core::trace::{Graph, InputKind, Node, ValueId};
use std::collections::HashMap;

/// Recomputes large elementwise values next to reads far from their definition.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rematerialize {
    /// Also recompute large matmul results read again far into the backward: less memory,
    /// more time (see the module docs).
    pub matmuls: bool,
}

/// Values smaller than this are not worth recomputing.
const MIN_BYTES: usize = 256 * 1024;
/// Nodes between a value's early and late reads for the late ones to count as far.
const MIN_GAP: usize = 32;
/// An operand that would have to stay live longer is accepted up to this fraction of the
/// recomputed value's size.
const SMALL_OPERAND_DIVISOR: usize = 16;
/// A matmul result is recomputed only from this size up,
const MATMUL_MIN_BYTES: usize = 8 << 20;
/// and only when its late reads come at least this fraction of the graph's length after its
/// early ones (a forward activation read again deep in the backward; recomputing every matmul
/// read in the backward made a GPT step 4× slower).
const MATMUL_GAP_FRACTION: usize = 3;

impl Pass for Rematerialize {
    fn name(&self) -> &'static str {
        "remat"
    }

    fn run(&self, g: &mut Graph) -> bool {
        // Latest first: recomputing a value can add late reads of its operands, which may then
        // be recomputed in turn.
        let ids: Vec<ValueId> = g.nodes.iter().rev().map(|n| n.id).collect();
        let mut changed = false;
        let mut index = Index::of(g);
        for v in ids {
            if rematerialize(g, v, &index, self.matmuls) {
                index = Index::of(g);
                changed = true;
            }
        }
        changed
    }
}

/// Ops cheap enough to run twice: elementwise ones, and layer norm (one pass per row).
fn is_cheap(op: &Op) -> bool {
    op.is_unary()
        || op.is_binary()
        || matches!(op, Op::Where | Op::LayerNorm { .. })
        || matches!(op, Op::Fused(p) if p.reduce.is_none())
}

/// Who defines and who reads each value, by id (rebuilt after each change).
struct Index {
    producer: Vec<Option<usize>>,
    /// Indices of the nodes reading each value, each once, in order.
    users: Vec<Vec<usize>>,
}

impl Index {
    fn of(g: &Graph) -> Index {
        let mut users = vec![Vec::new(); g.id_bound()];
        for (i, n) in g.nodes.iter().enumerate() {
            for &a in &n.args {
                let u: &mut Vec<usize> = &mut users[a as usize];
                if u.last() != Some(&i) {
                    u.push(i);
                }
            }
        }
        Index {
            producer: producers(g),
            users,
        }
    }
}

/// A read of a value: the node reading it (index), and the views between them.
struct Use {
    at: usize,
    chain: Vec<ValueId>,
}

/// Every non-view read of `v`, directly or through views; `None` if `v` or a view of it is a
/// result.
fn uses_of(g: &Graph, v: ValueId, users: &[Vec<usize>], roots: &[ValueId]) -> Option<Vec<Use>> {
    let mut out = Vec::new();
    let mut stack = vec![(v, Vec::new())];
    while let Some((x, chain)) = stack.pop() {
        if roots.contains(&x) {
            return None;
        }
        for &u in &users[x as usize] {
            let node = &g.nodes[u];
            if is_view_like(&node.op) {
                let mut c = chain.clone();
                c.push(node.id);
                stack.push((node.id, c));
            } else {
                out.push(Use {
                    at: u,
                    chain: chain.clone(),
                });
            }
        }
    }
    out.sort_by_key(|u| u.at);
    Some(out)
}

/// Recomputes `v` before its late reads if that pays; true if the graph changed.
fn rematerialize(g: &mut Graph, v: ValueId, index: &Index, matmuls: bool) -> bool {
    let (producer, users) = (&index.producer, &index.users);
    let Some(k) = producer[v as usize] else {
        return false;
    };
    let node = &g.nodes[k];
    let bytes = |shape: &[usize], dtype: kiln_core::DType| {
        shape.iter().product::<usize>() * dtype.size_in_bytes()
    };
    let size = bytes(&node.shape, node.dtype);
    let matmul =
        matmuls && matches!(node.op, Op::Matmul | Op::MatmulAct(_)) && size >= MATMUL_MIN_BYTES;
    if !(is_cheap(&node.op) || matmul) || node.fresh_random || size < MIN_BYTES {
        return false;
    }
    let roots = g.roots();
    let Some(uses) = uses_of(g, v, users, &roots) else {
        return false;
    };
    // Split at the widest gap between consecutive reads (or the definition and the first).
    let Some((split, gap)) = (0..uses.len())
        .map(|s| {
            let prev = if s == 0 { k } else { uses[s - 1].at };
            (s, uses[s].at - prev)
        })
        .max_by_key(|&(s, gap)| (gap, std::cmp::Reverse(s)))
    else {
        return false;
    };
    if gap < MIN_GAP || (matmul && gap * MATMUL_GAP_FRACTION < g.nodes.len()) {
        return false;
    }
    let (first_late, last_late) = (uses[split].at, uses[uses.len() - 1].at);
    if !operands_available(g, &g.nodes[k], first_late, last_late, size, users, producer) {
        return false;
    }

    // The copy, the views late reads go through, and the late readers pointed at them.
    let original = g.nodes[k].clone();
    let copy_id = g.new_id();
    let mut inserted = vec![Node {
        id: copy_id,
        fresh_random: false,
        ..original
    }];
    let mut renamed: HashMap<ValueId, ValueId> = HashMap::from([(v, copy_id)]);
    let mut redirects: Vec<(usize, ValueId, ValueId)> = Vec::new();
    for u in &uses[split..] {
        let mut prev = v;
        for &view in &u.chain {
            if !renamed.contains_key(&view) {
                let mut n = g.nodes[producer[view as usize].expect("view has a producer")].clone();
                let id = g.new_id();
                n.id = id;
                n.args[0] = renamed[&prev];
                inserted.push(n);
                renamed.insert(view, id);
            }
            prev = view;
        }
        redirects.push((u.at, prev, renamed[&prev]));
    }
    for (at, from, to) in redirects {
        for a in g.nodes[at].args.iter_mut() {
            if *a == from {
                *a = to;
            }
        }
    }
    g.nodes.splice(first_late..first_late, inserted);
    true
}

/// True when every operand of `node` can be read again at nodes `first..=last`: a captured
/// tensor not updated in place before then, a value still read at or after `first` anyway,
/// or one small next to the recomputed value.
fn operands_available(
    g: &Graph,
    node: &Node,
    first: usize,
    last: usize,
    size: usize,
    users: &[Vec<usize>],
    producer: &[Option<usize>],
) -> bool {
    let roots = g.roots();
    let types = g.types();
    node.args.iter().all(|&a| {
        // The value owning the operand's elements (through views).
        let mut o = a;
        while let Some(p) = producer[o as usize] {
            if !is_view_like(&g.nodes[p].op) {
                break;
            }
            o = g.nodes[p].args[0];
        }
        let captured = g
            .input(o)
            .is_some_and(|i| matches!(i.kind, InputKind::State | InputKind::Const));
        if captured {
            // Alive throughout, but its update may be written in place at the updating node.
            return g
                .updates
                .iter()
                .all(|u| u.input != o || producer[u.value as usize].is_none_or(|p| p > last));
        }
        if roots.contains(&o) {
            return true;
        }
        let (shape, dtype) = types[o as usize].as_ref().expect("operand has a type");
        if shape.iter().product::<usize>() * dtype.size_in_bytes() * SMALL_OPERAND_DIVISOR <= size {
            return true;
        }
        last_read(g, o, users) >= first
    })
}

/// The last node reading `v` directly or through views.
fn last_read(g: &Graph, v: ValueId, users: &[Vec<usize>]) -> usize {
    let mut last = 0;
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        for &u in &users[x as usize] {
            last = last.max(u);
            if is_view_like(&g.nodes[u].op) {
                stack.push(g.nodes[u].id);
            }
        }
    }
    last
}
