//! Elementwise fusion: chains of elementwise ops become one `fused` node whose kernel runs the
//! whole chain tile by tile in cache (no full-size intermediates).

use super::{use_counts, Pass};
use kiln_core::ops::fused::{FusedProgram, FusedReduce, FusedStep};
use kiln_core::ops::{Op, UnaryOp};
use kiln_core::trace::{Graph, ValueId};
use kiln_core::DType;
use std::collections::HashMap;

/// Groups f32 elementwise nodes (unary, binary, compare, where, casts to f32) along
/// single-use edges between values of the same shape, and replaces each group of two or more
/// by one [`Op::Fused`] node. Values used outside their group stay materialized. A group whose
/// result only a sum reads (reducing it at least 8×) takes the sum in as its reduction
/// epilogue, so the elementwise result is never written out (a group of one node too).
pub struct ElementwiseFusion;

fn fusible(types: &HashMap<ValueId, DType>, n: &kiln_core::trace::Node) -> bool {
    let arg = |k: usize| types.get(&n.args[k]).copied();
    let f32_args = n.args.iter().all(|a| types.get(a) == Some(&DType::F32));
    match &n.op {
        Op::Unary(UnaryOp::LogicalNot) => false,
        op if op.is_unary() => n.dtype == DType::F32 && f32_args,
        Op::Compare(_) => n.dtype == DType::Bool && f32_args,
        op if op.is_binary() => n.dtype == DType::F32 && f32_args,
        // Two same-shape operands like a binary op: a fused GELU backward can then write in
        // place into its dying gradient operand.
        Op::GeluBackward => n.dtype == DType::F32 && f32_args,
        Op::Where => {
            n.dtype == DType::F32
                && arg(0) == Some(DType::Bool)
                && arg(1) == Some(DType::F32)
                && arg(2) == Some(DType::F32)
        }
        Op::Cast(DType::F32) => matches!(arg(0), Some(DType::F32 | DType::Bool)),
        _ => false,
    }
}

impl Pass for ElementwiseFusion {
    fn name(&self) -> &'static str {
        "fusion"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let mut types: HashMap<ValueId, DType> = g.inputs.iter().map(|i| (i.id, i.dtype)).collect();
        types.extend(g.nodes.iter().map(|n| (n.id, n.dtype)));
        let uses = use_counts(g);
        // group id per node index; groups as member lists (in node order).
        let mut group_of: Vec<Option<usize>> = vec![None; g.nodes.len()];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let index_of: HashMap<ValueId, usize> =
            g.nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        for i in 0..g.nodes.len() {
            let n = &g.nodes[i];
            if !fusible(&types, n) {
                continue;
            }
            let mut joined: Option<usize> = None;
            for a in n.args.clone() {
                let Some(&p) = index_of.get(&a) else { continue };
                let Some(pg) = group_of[p] else { continue };
                if uses[a as usize] != 1 || g.nodes[p].shape != g.nodes[i].shape {
                    continue;
                }
                match joined {
                    None => joined = Some(pg),
                    Some(j) if j != pg => {
                        // Two chains meet here: merge the later group into the first.
                        let moved = std::mem::take(&mut groups[pg]);
                        for &m in &moved {
                            group_of[m] = Some(j);
                        }
                        groups[j].extend(moved);
                        groups[j].sort_unstable();
                    }
                    _ => {}
                }
            }
            let gid = joined.unwrap_or_else(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[gid].push(i);
            group_of[i] = Some(gid);
        }
        let mut reader: HashMap<ValueId, usize> = HashMap::new();
        for (i, n) in g.nodes.iter().enumerate() {
            for &a in &n.args {
                reader.insert(a, i);
            }
        }
        // The sum node that reads only the group's result `root`, as its reduction epilogue.
        let epilogue = |root: usize| -> Option<(usize, FusedReduce)> {
            let v = g.nodes[root].id;
            let s = *reader.get(&v).filter(|_| uses[v as usize] == 1)?;
            let (n, numel) = (&g.nodes[s], |sh: &[usize]| sh.iter().product::<usize>());
            match &n.op {
                Op::Sum { dims, keepdim }
                    if n.dtype == DType::F32
                        && !dims.is_empty()
                        && numel(&n.shape) > 0
                        && numel(&n.shape) * 8 <= numel(&g.nodes[root].shape) =>
                {
                    Some((
                        s,
                        FusedReduce {
                            dims: dims.clone(),
                            keepdim: *keepdim,
                        },
                    ))
                }
                _ => None,
            }
        };
        let mut replaced: HashMap<usize, kiln_core::trace::Node> = HashMap::new();
        let mut removed = vec![false; g.nodes.len()];
        // Chains of two or more; a lone GELU backward too, so that it may run in place; and
        // anything with a reduction epilogue.
        let worth_fusing = |m: &&Vec<usize>| {
            if m.is_empty() {
                return false; // merged into another group
            }
            let lone_gelu_backward = m.len() == 1 && matches!(g.nodes[m[0]].op, Op::GeluBackward);
            m.len() >= 2 || lone_gelu_backward || epilogue(m[m.len() - 1]).is_some()
        };
        for members in groups.iter().filter(worth_fusing) {
            let root = *members.last().expect("non-empty");
            if g.nodes[root].dtype != DType::F32 {
                continue;
            }
            let reduce = epilogue(root);
            let member_ids: HashMap<ValueId, usize> = members
                .iter()
                .enumerate()
                .map(|(k, &m)| (g.nodes[m].id, k))
                .collect();
            let mut inputs: Vec<ValueId> = Vec::new();
            for &m in members {
                for &a in &g.nodes[m].args {
                    if !member_ids.contains_key(&a) && !inputs.contains(&a) {
                        inputs.push(a);
                    }
                }
            }
            let n_in = inputs.len();
            let reg = |v: ValueId| -> u16 {
                match member_ids.get(&v) {
                    Some(&k) => (n_in + k) as u16,
                    None => inputs.iter().position(|&x| x == v).expect("input") as u16,
                }
            };
            let steps = members
                .iter()
                .map(|&m| {
                    let n = &g.nodes[m];
                    match &n.op {
                        Op::Where => FusedStep::Where {
                            c: reg(n.args[0]),
                            a: reg(n.args[1]),
                            b: reg(n.args[2]),
                        },
                        Op::Cast(_) => FusedStep::Copy { x: reg(n.args[0]) },
                        Op::Unary(op) => FusedStep::Unary {
                            op: *op,
                            x: reg(n.args[0]),
                        },
                        op => FusedStep::Binary {
                            op: op.clone(),
                            a: reg(n.args[0]),
                            b: reg(n.args[1]),
                        },
                    }
                })
                .collect();
            // With an epilogue the fused node takes the sum's place and value.
            let (at, reduce) = match reduce {
                Some((s, r)) => (s, Some(r)),
                None => (root, None),
            };
            let program = FusedProgram {
                n_inputs: n_in as u16,
                steps,
                stores: Vec::new(),
                reduce,
            };
            let mut node = g.nodes[at].clone();
            node.op = Op::Fused(Box::new(program));
            node.args = inputs.into_iter().collect();
            replaced.insert(at, node);
            for &m in members {
                removed[m] = m != at;
            }
        }
        if replaced.is_empty() {
            return false;
        }
        let old = std::mem::take(&mut g.nodes);
        g.nodes = old
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !removed[*i])
            .map(|(i, n)| replaced.remove(&i).unwrap_or(n))
            .collect();
        true
    }
}
