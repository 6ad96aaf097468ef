//! Algebraic simplification: identities and chains of layout ops.

use super::{constant_scalars, producers, replace_uses, use_counts, Pass};
use kiln_core::ops::{Op, UnaryOp};
use kiln_core::shape::Shape;
use kiln_core::trace::{Graph, ValueId};
use kiln_core::DType;
use std::collections::HashMap;

/// Rewrites `x·1`, `x+0`, `x−0`, `x/1`, `affine(1, 0)`, identity permutes, reshapes, expands
/// and casts to `x`; folds permute∘permute into one permute, reshape∘reshape into one reshape,
/// and drops `contiguous` of values a kernel produced densely; a sum of `slice_scatter`s that
/// tile their output (the gradient of a q/k/v split) becomes one `cat`.
pub struct AlgebraicSimplify;

impl Pass for AlgebraicSimplify {
    fn name(&self) -> &'static str {
        "algebraic"
    }

    fn run(&self, g: &mut Graph) -> bool {
        // A rewrite can expose another (permute∘permute → identity permute): sweep to a
        // fixed point (bounded; each sweep only shortens chains).
        let mut any = false;
        for _ in 0..8 {
            if !sweep(g) {
                break;
            }
            any = true;
        }
        any
    }
}

/// Values known to be dense row-major buffers: results of non-view kernels, reshapes of dense
/// values, and contiguous captured tensors. Arguments may arrive strided, so they are not.
fn dense_values(g: &Graph) -> Vec<bool> {
    let mut dense = vec![false; g.id_bound()];
    for i in &g.inputs {
        dense[i.id as usize] = i
            .value
            .as_ref()
            .is_some_and(|v| v.operand().is_contiguous());
    }
    for n in &g.nodes {
        dense[n.id as usize] = match &n.op {
            Op::Reshape(_) => dense[n.args[0] as usize],
            op => !op.is_view(),
        };
    }
    dense
}

/// One pass over the nodes; true if anything changed.
fn sweep(g: &mut Graph) -> bool {
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let mut changed = false;
    let prod = producers(g);
    let dense = dense_values(g);
    let types = g.types();
    let scalars = constant_scalars(g);
    let uses = use_counts(g);
    for i in 0..g.nodes.len() {
        if let Some((dim, parts)) = scatter_sum_as_cat(g, i, &prod, &uses, &types) {
            let n = &mut g.nodes[i];
            n.op = Op::Cat(dim);
            n.args = parts.into_iter().collect();
            changed = true;
            continue;
        }
        let n = &g.nodes[i];
        let x = n.args.first().copied();
        let same_type = |v: ValueId| {
            types[v as usize]
                .as_ref()
                .is_some_and(|(s, d)| s[..] == n.shape[..] && *d == n.dtype)
        };
        let identity_of = match &n.op {
            Op::Unary(UnaryOp::Affine { mul, add }) if *mul == 1.0 && *add == 0.0 => x,
            Op::Unary(UnaryOp::PowScalar(p)) if *p == 1.0 => x,
            Op::Permute(p) if p.iter().enumerate().all(|(k, &d)| k == d) => x,
            Op::Reshape(_) | Op::Expand(_) | Op::Cast(_) if same_type(x.unwrap()) => x,
            Op::Contiguous => x.filter(|&v| dense[v as usize]),
            Op::Mul => scalar_identity(&scalars, n.args[0], n.args[1], 1.0, true),
            Op::Div => scalar_identity(&scalars, n.args[0], n.args[1], 1.0, false),
            Op::Add => scalar_identity(&scalars, n.args[0], n.args[1], 0.0, true),
            Op::Sub => scalar_identity(&scalars, n.args[0], n.args[1], 0.0, false),
            _ => None,
        };
        if let Some(v) = identity_of.filter(|&v| same_type(v)) {
            map.insert(n.id, v);
            continue;
        }
        // Chains: the op applied to the result of the same kind of layout op.
        let inner = x.and_then(|v| prod[v as usize]).map(|p| g.nodes[p].clone());
        let rewritten = match (&n.op, inner) {
            (Op::Permute(outer), Some(inner)) => match &inner.op {
                Op::Permute(first) => Some((
                    Op::Permute(outer.iter().map(|&d| first[d]).collect()),
                    inner.args[0],
                )),
                _ => None,
            },
            (Op::Reshape(shape), Some(inner)) => match &inner.op {
                Op::Reshape(_) => Some((Op::Reshape(shape.clone()), inner.args[0])),
                _ => None,
            },
            _ => None,
        };
        if let Some((op, arg)) = rewritten {
            let n = &mut g.nodes[i];
            n.op = op;
            n.args[0] = arg;
            changed = true;
        }
    }
    replace_uses(g, &map);
    changed || !map.is_empty()
}

/// For an `add` tree at node `i` whose leaves are `slice_scatter`s (step 1, read only there)
/// along one dim that together tile the output exactly once: that dim and the scattered
/// values in order, to concatenate. The sum zero-fills a full-size tensor per slice and adds
/// them all; the `cat` writes each element once.
fn scatter_sum_as_cat(
    g: &Graph,
    i: usize,
    prod: &[Option<usize>],
    uses: &[usize],
    types: &[Option<(Shape, DType)>],
) -> Option<(usize, Vec<ValueId>)> {
    if g.nodes[i].op != Op::Add {
        return None;
    }
    // (start, value, len) of each leaf.
    let mut leaves: Vec<(usize, ValueId, usize)> = Vec::new();
    let (mut dim, mut size) = (None, 0);
    let mut stack: Vec<ValueId> = g.nodes[i].args.to_vec();
    while let Some(v) = stack.pop() {
        let p = prod[v as usize].filter(|_| uses[v as usize] == 1)?;
        let n = &g.nodes[p];
        match n.op {
            Op::Add if n.shape == g.nodes[i].shape => stack.extend(&n.args),
            Op::SliceScatter {
                dim: d,
                start,
                step: 1,
                size: s,
            } if dim.is_none_or(|x| x == d) && n.shape == g.nodes[i].shape => {
                dim = Some(d);
                size = s;
                let len = types[n.args[0] as usize].as_ref()?.0[d];
                leaves.push((start, n.args[0], len));
            }
            _ => return None,
        }
    }
    leaves.sort_unstable();
    let mut next = 0;
    for &(start, _, len) in &leaves {
        if start != next {
            return None;
        }
        next += len;
    }
    (next == size).then(|| {
        (
            dim.expect("an add has leaves"),
            leaves.iter().map(|l| l.1).collect(),
        )
    })
}

/// For `x ∘ c` with `c` a constant scalar equal to `neutral`: `Some(x)`. With `commutes`, the
/// constant may be on either side.
fn scalar_identity(
    scalars: &[Option<f64>],
    a: ValueId,
    b: ValueId,
    neutral: f64,
    commutes: bool,
) -> Option<ValueId> {
    let is_neutral = |v: ValueId| scalars[v as usize] == Some(neutral);
    if is_neutral(b) {
        Some(a)
    } else if commutes && is_neutral(a) {
        Some(b)
    } else {
        None
    }
}
