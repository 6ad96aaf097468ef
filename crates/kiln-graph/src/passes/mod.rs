//! Graph-to-graph optimizations, each a small struct behind the [`Pass`] trait, and the
//! default pipeline [`compile`](crate::compile()) runs.

mod algebraic;
mod constant_fold;
mod cse;
mod dce;
mod fusion;
mod matmul_epilogue;
mod remat;
mod reshape_sink;
mod sink;
mod store_fusion;

pub use algebraic::AlgebraicSimplify;
pub use constant_fold::ConstantFold;
pub use cse::CommonSubexpressions;
pub use dce::DeadCode;
pub use fusion::ElementwiseFusion;
pub use matmul_epilogue::MatmulEpilogue;
pub use remat::Rematerialize;
pub use reshape_sink::SinkReshapes;
pub use sink::SinkToUse;
pub use store_fusion::StoreFusion;

use kiln_core::trace::{Graph, InputKind, ValueId};
use std::collections::HashMap;

/// One optimization over a graph.
pub trait Pass: Send + Sync {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// Rewrites `g`; returns true if anything changed.
    fn run(&self, g: &mut Graph) -> bool;
}

/// The passes `compile` runs, in order.
pub fn default_pipeline() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(DeadCode),
        Box::new(ConstantFold::default()),
        Box::new(AlgebraicSimplify),
        Box::new(CommonSubexpressions),
        Box::new(SinkReshapes),
        Box::new(DeadCode),
        Box::new(MatmulEpilogue),
        Box::new(ElementwiseFusion),
        Box::new(Rematerialize::default()),
        // Again: recomputed GELUs feeding a weight gradient fuse into it.
        Box::new(MatmulEpilogue),
        Box::new(SinkToUse),
        Box::new(StoreFusion),
        Box::new(DeadCode),
    ]
}

/// Runs the default pipeline over `g` (what an importer runs on a graph it built, as
/// `compile` runs it on a trace).
pub fn run_default_pipeline(g: &mut Graph) {
    for pass in default_pipeline() {
        pass.run(g);
    }
}

/// Points every use of a key of `map` (operands, outputs, updates, gradients) at its value,
/// following chains (a → b → c).
pub fn replace_uses(g: &mut Graph, map: &HashMap<ValueId, ValueId>) {
    if map.is_empty() {
        return;
    }
    let resolve = |mut v: ValueId| {
        while let Some(&n) = map.get(&v) {
            v = n;
        }
        v
    };
    for n in &mut g.nodes {
        for a in n.args.iter_mut() {
            *a = resolve(*a);
        }
    }
    for o in &mut g.outputs {
        *o = resolve(*o);
    }
    for u in &mut g.updates {
        u.value = resolve(u.value);
    }
    for gr in &mut g.grads {
        if let Some(v) = gr.value.as_mut() {
            *v = resolve(*v);
        }
    }
}

/// Views, and reshapes, which the memory plan makes views where the layout allows.
pub(crate) use kiln_runtime::ir::is_view_like;

/// How often each value is read, by id: as a node operand (once per occurrence) or as a
/// result (output, state update, gradient).
pub(crate) fn use_counts(g: &Graph) -> Vec<usize> {
    let mut uses = vec![0usize; g.id_bound()];
    for n in &g.nodes {
        for &a in &n.args {
            uses[a as usize] += 1;
        }
    }
    for r in g.roots() {
        uses[r as usize] += 1;
    }
    uses
}

/// Index of the node defining each value (`None` for inputs), by id.
pub(crate) fn producers(g: &Graph) -> Vec<Option<usize>> {
    let mut p = vec![None; g.id_bound()];
    for (i, n) in g.nodes.iter().enumerate() {
        p[n.id as usize] = Some(i);
    }
    p
}

/// The value of every one-element constant input, indexed by id.
pub(crate) fn constant_scalars(g: &Graph) -> Vec<Option<f64>> {
    let mut c = vec![None; g.id_bound()];
    for i in &g.inputs {
        if let (InputKind::Const, Some(v)) = (&i.kind, &i.value) {
            let v = v.operand();
            if v.numel() == 1 {
                c[i.id as usize] = Some(v.storage().read().get_f64(v.layout().offset));
            }
        }
    }
    c
}
