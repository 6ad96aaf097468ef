//! Common-subexpression elimination: one node per distinct (op, operands).

use super::{replace_uses, Pass};
use kiln_core::trace::{Graph, ValueId};
use std::collections::HashMap;

/// Merges nodes that apply the same op with the same parameters to the same operands (the
/// backward pass recomputes many forward expressions, e.g. transposes of weights). Random draws
/// are never merged.
pub struct CommonSubexpressions;

impl Pass for CommonSubexpressions {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let mut seen: HashMap<(String, Vec<ValueId>), ValueId> = HashMap::new();
        let mut map: HashMap<ValueId, ValueId> = HashMap::new();
        for n in &mut g.nodes {
            // Operands may refer to nodes merged earlier in this sweep.
            for a in n.args.iter_mut() {
                if let Some(&m) = map.get(a) {
                    *a = m;
                }
            }
            // Random draws differ per node; writes to state happen once per node.
            if n.fresh_random || !n.op.writes_args().is_empty() {
                continue;
            }
            // Op parameters include f64s (no Hash); their Debug text is an exact key.
            let key = (format!("{:?}", n.op), n.args.to_vec());
            match seen.get(&key) {
                Some(&first) => {
                    map.insert(n.id, first);
                }
                None => {
                    seen.insert(key, n.id);
                }
            }
        }
        replace_uses(g, &map);
        let changed = !map.is_empty();
        if changed {
            g.nodes.retain(|n| !map.contains_key(&n.id));
        }
        changed
    }
}
