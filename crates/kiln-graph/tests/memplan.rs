//! The memory planner on small traced graphs (buffer reuse, views, results, in-place state
//! updates) and a lifetime check of every buffer of compiled train steps.

mod common;

use common::train_step;
use kiln_core::trace::{trace, ArgSpec, Graph, ValueId};
use kiln_core::{DType, Tensor};
use kiln_graph::compile;
use kiln_graph::memplan::{plan, MemoryPlan, Placement};
use kiln_nn::layers::{Linear, ReLU, Sequential};
use kiln_nn::optim::{Adam, Sgd};
use kiln_nn::ModuleBase;

fn spec(shape: &[usize]) -> ArgSpec {
    ArgSpec {
        shape: shape.to_vec(),
        dtype: DType::F32,
        requires_grad: false,
    }
}

/// Plans `g` without in-place writes.
fn plain(g: &Graph) -> MemoryPlan {
    plan(g, vec![None; g.nodes.len()])
}

/// Node ids in order.
fn ids(g: &Graph) -> Vec<ValueId> {
    g.nodes.iter().map(|n| n.id).collect()
}

#[test]
fn values_with_disjoint_lifetimes_share_a_buffer() {
    // a = exp(x); b = exp(a); c = exp(b): a dies when b is computed, so c reuses a's buffer,
    // while b (read by c) needs its own.
    let g = trace(&[spec(&[64])], |x| {
        let a = x[0].exp();
        let b = a.exp();
        vec![b.exp()]
    });
    let p = plain(&g);
    let [a, b, c] = ids(&g)[..] else {
        panic!("{g}")
    };
    assert_eq!(p.buffer_of(c), p.buffer_of(a));
    assert_ne!(p.buffer_of(b), p.buffer_of(a));
    // x (copied argument) is read only by a's node: b takes x's buffer.
    assert_eq!(p.buffer_of(b), p.buffer_of(g.inputs[0].id));
    assert_eq!(p.buffers.len(), 2);
}

#[test]
fn a_value_live_across_another_never_shares_its_buffer() {
    let g = trace(&[spec(&[64])], |x| {
        let a = x[0].exp();
        let b = x[0].sin();
        let c = b.cos();
        vec![&a + &c]
    });
    let p = plain(&g);
    let [a, b, c, _] = ids(&g)[..] else {
        panic!("{g}")
    };
    for v in [b, c] {
        assert_ne!(p.buffer_of(a), p.buffer_of(v));
    }
}

#[test]
fn views_alias_their_base_and_keep_it_alive() {
    let g = trace(&[spec(&[8, 8])], |x| {
        let a = x[0].exp();
        let t = a.t();
        let b = x[0].sin();
        vec![&t + &b]
    });
    let p = plain(&g);
    let [a, t, b, _] = ids(&g)[..] else {
        panic!("{g}")
    };
    assert!(matches!(p.placement[t as usize], Some(Placement::View { base, .. }) if base == a));
    assert_eq!(p.buffer_of(t), p.buffer_of(a));
    // a's last direct read is the transpose, but the view is read after b is made.
    assert_ne!(p.buffer_of(b), p.buffer_of(a));
}

#[test]
fn reshapes_the_layout_allows_are_views_others_copy() {
    let g = trace(&[spec(&[4, 6])], |x| {
        let a = x[0].exp();
        let flat = a.reshape([24]);
        let t = a.t().reshape([24]);
        vec![&flat + &t]
    });
    let p = plain(&g);
    let n = &g.nodes;
    assert!(matches!(
        p.placement[n[1].id as usize],
        Some(Placement::View { .. })
    ));
    // A transposed tensor cannot be flattened without copying.
    assert!(matches!(
        p.placement[n[3].id as usize],
        Some(Placement::Buffer(_))
    ));
}

#[test]
fn results_are_never_reused_by_later_values() {
    let g = trace(&[spec(&[64])], |x| {
        let a = x[0].exp();
        let b = a.exp();
        let c = b.exp();
        vec![a, c.exp()]
    });
    let p = plain(&g);
    let v = ids(&g);
    for later in &v[1..] {
        assert_ne!(p.buffer_of(v[0]), p.buffer_of(*later));
    }
}

/// The nodes (first, last) during which each buffer-holding value's elements are needed,
/// recomputed here from the graph: from the node defining it (inputs: -1) to its last read
/// through any view, or the end for results.
fn lifetimes(g: &Graph, p: &MemoryPlan) -> Vec<(ValueId, usize, i64, i64)> {
    let end = g.nodes.len() as i64;
    let mut out = Vec::new();
    let mut def = vec![-1i64; g.id_bound()];
    for (k, n) in g.nodes.iter().enumerate() {
        def[n.id as usize] = k as i64;
    }
    let roots = g.roots();
    for (v, pl) in p.placement.iter().enumerate() {
        let Some(Placement::Buffer(b)) = pl else {
            continue;
        };
        // Every value whose buffer is v's: v and its views (transitively).
        let aliases: Vec<ValueId> = (0..g.id_bound() as ValueId)
            .filter(|&w| {
                p.placement[w as usize].is_some()
                    && p.buffer_of(w) == Some(*b)
                    && alias_of(p, w) == v as ValueId
            })
            .collect();
        let mut last = def[v];
        for (k, n) in g.nodes.iter().enumerate() {
            if n.args.iter().any(|a| aliases.contains(a)) {
                last = last.max(k as i64);
            }
        }
        if aliases.iter().any(|a| roots.contains(a)) {
            last = end;
        }
        out.push((v as ValueId, *b, def[v], last));
    }
    out
}

fn alias_of(p: &MemoryPlan, mut v: ValueId) -> ValueId {
    while let Some(Placement::View { base, .. }) = &p.placement[v as usize] {
        v = *base;
    }
    v
}

/// No two values in one buffer are needed at once, except a value written in place over an
/// operand that dies at that node.
fn check_no_overlap(g: &Graph, p: &MemoryPlan) {
    let live = lifetimes(g, p);
    let in_place_over: Vec<(ValueId, ValueId)> = g
        .nodes
        .iter()
        .zip(&p.in_place)
        .filter_map(|(n, ip)| match ip {
            Some(kiln_graph::inplace::InPlace::Operand(a)) => Some((n.id, *a)),
            _ => None,
        })
        .collect();
    for (i, &(v, b, s, e)) in live.iter().enumerate() {
        for &(w, c, s2, e2) in &live[i + 1..] {
            if b != c || e < s2 || e2 < s {
                continue;
            }
            let handover = in_place_over.contains(&(v, w)) && s == e2
                || in_place_over.contains(&(w, v)) && s2 == e;
            assert!(
                handover,
                "%{v} [{s}, {e}] and %{w} [{s2}, {e2}] overlap in buffer {b}"
            );
        }
    }
}

fn mlp() -> Sequential {
    Sequential::new()
        .append(Linear::new(12, 16))
        .append(ReLU::new())
        .append(Linear::new(16, 4))
}

#[test]
fn compiled_train_steps_plan_disjoint_lifetimes_and_state_updates_in_place() {
    let xs = Tensor::randn([6, 12], DType::F32);
    let ys = Tensor::randint(0, 4, [6]);
    let batch = [xs, ys];
    let model = mlp();
    let mut sgd = Sgd::new(model.parameters(), 0.1);
    let mut step = compile(|b: &[Tensor]| vec![train_step(&model, &mut sgd, &b[0], &b[1])]);
    let g = step.graph(&batch);
    let exe = kiln_graph::executor::Executable::new(g.clone());
    let p = exe.plan();
    check_no_overlap(&g, p);
    let states = p
        .placement
        .iter()
        .filter(|x| matches!(x, Some(Placement::State(_))))
        .count();
    assert_eq!(states, 4, "each parameter's SGD update is written in place");
    // Reuse happened: fewer buffer bytes than one buffer per value.
    let (sum, _) = kiln_graph::compile::memory_profile(&g);
    assert!(p.arena_bytes() < sum, "{} vs {sum}", p.arena_bytes());

    let model = mlp();
    let mut adam = Adam::new(model.parameters(), 1e-3);
    let mut step = compile(|b: &[Tensor]| vec![train_step(&model, &mut adam, &b[0], &b[1])]);
    let g = step.graph(&batch);
    let exe = kiln_graph::executor::Executable::new(g.clone());
    check_no_overlap(&g, exe.plan());
}
