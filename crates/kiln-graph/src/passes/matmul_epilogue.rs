//! Matmul epilogue fusion: an activation whose operand is a matmul read by nothing else
//! becomes one `matmul_act` node, whose kernel applies the activation to the product while it
//! is still in cache, into the same buffer (no second pass over memory, no second buffer).
//! The bias is already part of the matmul primitive.

use super::{producers, use_counts, Pass};
use kiln_core::ops::{Activation, Op};
use kiln_core::trace::Graph;

/// Rewrites `act(matmul(a, b[, bias]))` into `matmul_act(a, b[, bias])` (ReLU and GELU) when
/// the product has no other use (a training graph's GELU keeps its input for the backward,
/// so there only ReLU, whose backward reads its output, fuses).
pub struct MatmulEpilogue;

impl Pass for MatmulEpilogue {
    fn name(&self) -> &'static str {
        "matmul-epilogue"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let uses = use_counts(g);
        let producer = producers(g);
        let mut absorbed = vec![false; g.nodes.len()];
        for i in 0..g.nodes.len() {
            let Some(act) = Activation::of(&g.nodes[i].op) else {
                continue;
            };
            let product = g.nodes[i].args[0];
            let Some(p) = producer[product as usize] else {
                continue;
            };
            if g.nodes[p].op != Op::Matmul || uses[product as usize] != 1 {
                continue;
            }
            let args = g.nodes[p].args.clone();
            let node = &mut g.nodes[i];
            node.op = Op::MatmulAct(act);
            node.args = args;
            absorbed[p] = true;
        }
        let mut k = 0;
        g.nodes.retain(|_| {
            k += 1;
            !absorbed[k - 1]
        });
        absorbed.contains(&true)
    }
}
