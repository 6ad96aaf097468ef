//! Multi-output fusion for state updates: a fused node whose value is read by one later fused
//! node and is otherwise only written back to a state (an optimizer's moment `m' = β·m + …`,
//! read by the parameter update `p' = p − lr·m'/…`) is merged into that reader, and the merged
//! kernel stores the value into the state tensor in place as it goes. An Adam step per
//! parameter then reads p, g, m, v and writes p, m, v once each, in one loop, instead of three
//! loops that also write and re-read m' and v'.

use super::{is_view_like, Pass};
use kiln_core::ops::fused::{FusedProgram, FusedStep, FusedStore};
use kiln_core::ops::Op;
use kiln_core::trace::{Graph, InputKind, ValueId};
use kiln_core::DType;

/// Merges fused nodes into their single fused reader, storing their value into the state it
/// updates (see the module docs).
pub struct StoreFusion;

impl Pass for StoreFusion {
    fn name(&self) -> &'static str {
        "store-fusion"
    }

    fn run(&self, g: &mut Graph) -> bool {
        // One scan in node order over tables kept up to date as nodes merge (merged-away
        // nodes are dropped at the end, so indices stay put). B comes after A, so a merged B
        // is itself a candidate when the scan reaches it.
        let n = g.id_bound();
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, node) in g.nodes.iter().enumerate() {
            for &a in &node.args {
                if users[a as usize].last() != Some(&i) {
                    users[a as usize].push(i);
                }
            }
        }
        let mut root_count = vec![0usize; n];
        for r in g.roots() {
            root_count[r as usize] += 1;
        }
        let mut update_of = vec![None::<usize>; n];
        for (k, u) in g.updates.iter().enumerate() {
            update_of[u.value as usize] = Some(k);
        }
        // Per state input: the node that stores into it, if any (the optimizer updates the
        // trace recorded write their moments already).
        let mut stored_at = vec![None::<usize>; n];
        for (i, node) in g.nodes.iter().enumerate() {
            for k in node.op.writes_args() {
                stored_at[node.args[k] as usize] = Some(i);
            }
        }
        let positions = g.input_positions();
        let mut merged: Vec<usize> = Vec::new();
        for ia in 0..g.nodes.len() {
            let a = &g.nodes[ia];
            if !matches!(&a.op, Op::Fused(p) if p.reduce.is_none()) || a.dtype != DType::F32 {
                continue;
            }
            let v = a.id as usize;
            // Read by exactly one node, and a result only as one state update.
            let [ib] = users[v][..] else { continue };
            let b = &g.nodes[ib];
            if !matches!(&b.op, Op::Fused(p) if p.reduce.is_none())
                || b.shape != a.shape
                || root_count[v] != 1
            {
                continue;
            }
            let Some(ui) = update_of[v] else { continue };
            let x = g.updates[ui].input;
            let Some(input) = positions[x as usize].map(|k| &g.inputs[k]) else {
                continue;
            };
            let dense_state = input.kind == InputKind::State
                && input.dtype == DType::F32
                && input.shape == a.shape
                && input
                    .value
                    .as_ref()
                    .map(|v| v.operand())
                    .is_some_and(|t| t.is_contiguous() && t.layout().offset == 0);
            // The state changes at B now: nothing may read it later, and nothing else
            // writes it.
            if !dense_state
                || last_read(g, &users, x).is_some_and(|l| l > ib)
                || stored_at[x as usize].is_some()
                || root_count[x as usize] != 0
            {
                continue;
            }
            // A's operands are read at B now: none may be a state stored between A and B.
            let moved_ok = a
                .args
                .iter()
                .all(|&y| stored_at[y as usize].is_none_or(|s| s < ia || s > ib));
            if !moved_ok {
                continue;
            }
            let moved_args: Vec<ValueId> = a.args.iter().copied().chain([x]).collect();
            merge(g, ia, ib, ui);
            for y in moved_args {
                let u = &mut users[y as usize];
                u.retain(|&k| k != ia);
                if !u.contains(&ib) {
                    u.push(ib);
                }
            }
            users[v].clear();
            root_count[v] -= 1;
            root_count[x as usize] += 1;
            update_of[v] = None;
            update_of[x as usize] = Some(ui);
            stored_at[x as usize] = Some(ib);
            merged.push(ia);
        }
        if merged.is_empty() {
            return false;
        }
        let mut removed = vec![false; g.nodes.len()];
        for ia in merged {
            removed[ia] = true;
        }
        let mut k = 0;
        g.nodes.retain(|_| {
            k += 1;
            !removed[k - 1]
        });
        true
    }
}

/// The last node reading `v` directly or through views.
fn last_read(g: &Graph, users: &[Vec<usize>], v: ValueId) -> Option<usize> {
    let mut last = None::<usize>;
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        for &u in &users[x as usize] {
            last = Some(last.map_or(u, |l: usize| l.max(u)));
            if is_view_like(&g.nodes[u].op) {
                stack.push(g.nodes[u].id);
            }
        }
    }
    last
}

/// Replaces B by A's program followed by B's, storing A's result into the updated state (the
/// caller drops A); the update then writes the state to itself (nothing to copy).
fn merge(g: &mut Graph, ia: usize, ib: usize, update: usize) {
    let x = g.updates[update].input;
    let a = g.nodes[ia].clone();
    let b = &g.nodes[ib];
    let (Op::Fused(pa), Op::Fused(pb)) = (&a.op, &b.op) else {
        unreachable!("store fusion merges fused nodes")
    };
    // Inputs: B's (except A's value), then A's and the state not yet among them.
    let mut args: Vec<ValueId> = b.args.iter().copied().filter(|&v| v != a.id).collect();
    for &v in a.args.iter().chain([&x]) {
        if !args.contains(&v) {
            args.push(v);
        }
    }
    let n_in = args.len();
    let input_reg = |v: ValueId| args.iter().position(|&w| w == v).expect("input") as u16;
    let a_steps = pa.steps.len();
    let a_result = (n_in + a_steps - 1) as u16;
    let map_a = |r: u16| -> u16 {
        if r < pa.n_inputs {
            input_reg(a.args[r as usize])
        } else {
            r - pa.n_inputs + n_in as u16
        }
    };
    let map_b = |r: u16| -> u16 {
        if r < pb.n_inputs {
            let v = b.args[r as usize];
            if v == a.id {
                a_result
            } else {
                input_reg(v)
            }
        } else {
            r - pb.n_inputs + (n_in + a_steps) as u16
        }
    };
    let mut steps: Vec<FusedStep> = pa.steps.iter().map(|s| remap(s, &map_a)).collect();
    steps.extend(pb.steps.iter().map(|s| remap(s, &map_b)));
    let mut stores: Vec<FusedStore> = pa
        .stores
        .iter()
        .map(|s| FusedStore {
            reg: map_a(s.reg),
            input: input_reg(a.args[s.input as usize]),
        })
        .collect();
    stores.push(FusedStore {
        reg: a_result,
        input: input_reg(x),
    });
    stores.extend(pb.stores.iter().map(|s| FusedStore {
        reg: map_b(s.reg),
        input: input_reg(b.args[s.input as usize]),
    }));
    let program = FusedProgram {
        n_inputs: n_in as u16,
        steps,
        stores,
        reduce: None,
    };
    debug_assert_eq!(program.validate(), Ok(()));
    let node = &mut g.nodes[ib];
    node.op = Op::Fused(Box::new(program));
    node.args = args.into();
    g.updates[update].value = x;
}

fn remap(s: &FusedStep, f: &impl Fn(u16) -> u16) -> FusedStep {
    match s {
        FusedStep::Unary { op, x } => FusedStep::Unary { op: *op, x: f(*x) },
        FusedStep::Binary { op, a, b } => FusedStep::Binary {
            op: op.clone(),
            a: f(*a),
            b: f(*b),
        },
        FusedStep::Where { c, a, b } => FusedStep::Where {
            c: f(*c),
            a: f(*a),
            b: f(*b),
        },
        FusedStep::Copy { x } => FusedStep::Copy { x: f(*x) },
    }
}
