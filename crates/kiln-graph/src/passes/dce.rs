//! Dead-code elimination: drops nodes nothing needed reads, and captured inputs nothing reads.

use super::Pass;
use kiln_core::trace::{Graph, InputKind};

/// Removes nodes whose values reach no output, state update or gradient, and unused inputs
/// other than arguments (the function's signature: a saved or imported graph still takes an
/// argument it only read for its shape). Random draws are kept: skipping one would shift
/// every later draw of the generator.
pub struct DeadCode;

impl Pass for DeadCode {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let mut live = vec![false; g.id_bound()];
        for r in g.roots() {
            live[r as usize] = true;
        }
        for u in &g.updates {
            live[u.input as usize] = true;
        }
        for n in g.nodes.iter().rev() {
            if n.fresh_random {
                live[n.id as usize] = true;
            }
            if live[n.id as usize] {
                for &a in &n.args {
                    live[a as usize] = true;
                }
            }
        }
        let before = g.nodes.len() + g.inputs.len();
        g.nodes.retain(|n| live[n.id as usize]);
        g.inputs
            .retain(|i| live[i.id as usize] || matches!(i.kind, InputKind::Arg(_)));
        before != g.nodes.len() + g.inputs.len()
    }
}
