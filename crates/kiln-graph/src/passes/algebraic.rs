//! Algebraic simplification: identities and chains of layout ops.

use super::{producers, replace_uses, Pass};
use kiln_core::ops::Op;
use kiln_core::trace::{Graph, InputKind, ValueId};
use std::collections::HashMap;

/// Rewrites `x·1`, `x+0`, `x−0`, `x/1`, `affine(1, 0)`, identity permutes, reshapes, expands
/// and casts to `x`; folds permute∘permute into one permute, reshape∘reshape into one reshape,
/// and drops `contiguous` of values a kernel produced densely.
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
        dense[i.id as usize] = i.tensor.as_ref().is_some_and(|t| t.is_contiguous());
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
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let x = n.args.first().copied();
        let same_type = |v: ValueId| {
            types[v as usize]
                .as_ref()
                .is_some_and(|(s, d)| s[..] == n.shape[..] && *d == n.dtype)
        };
        let identity_of = match &n.op {
            Op::Affine { mul, add } if *mul == 1.0 && *add == 0.0 => x,
            Op::PowScalar(p) if *p == 1.0 => x,
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

/// The value of every one-element constant input, indexed by id.
fn constant_scalars(g: &Graph) -> Vec<Option<f64>> {
    let mut c = vec![None; g.id_bound()];
    for i in &g.inputs {
        if let (InputKind::Const, Some(t)) = (&i.kind, &i.tensor) {
            if t.numel() == 1 {
                c[i.id as usize] = Some(t.to_f64_vec()[0]);
            }
        }
    }
    c
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
