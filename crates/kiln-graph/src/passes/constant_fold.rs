//! Constant folding: evaluates nodes whose operands are all constants at compile time.

use super::{replace_uses, Pass};
use kiln_core::ops::dispatch;
use kiln_core::trace::{Graph, Input, InputKind, ValueId};
use kiln_core::{no_grad, Tensor};
use std::collections::HashMap;

/// Runs nodes whose operands are all constants (literals created while tracing) once, at
/// compile time, and makes their results constants. Results above `max_elements` stay in the
/// graph (folding them would trade a cheap op for a large baked-in buffer).
pub struct ConstantFold {
    /// Largest result folded, in elements.
    pub max_elements: usize,
}

impl Default for ConstantFold {
    fn default() -> Self {
        ConstantFold {
            max_elements: 1 << 16,
        }
    }
}

impl Pass for ConstantFold {
    fn name(&self) -> &'static str {
        "constant_fold"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let mut consts: HashMap<ValueId, Tensor> = g
            .inputs
            .iter()
            .filter(|i| i.kind == InputKind::Const)
            .filter_map(|i| Some((i.id, Tensor::from_owned_operand(i.value.as_ref()?))))
            .collect();
        let updated: Vec<ValueId> = g.updates.iter().map(|u| u.input).collect();
        consts.retain(|id, _| !updated.contains(id));
        let mut new_inputs = Vec::new();
        for n in &g.nodes {
            let numel: usize = n.shape.iter().product();
            if n.fresh_random
                || numel > self.max_elements
                || n.args.is_empty()
                || !n.op.writes_args().is_empty()
            {
                continue;
            }
            let Some(args) = n
                .args
                .iter()
                .map(|a| consts.get(a))
                .collect::<Option<Vec<&Tensor>>>()
            else {
                continue;
            };
            let value = no_grad(|| dispatch(n.op.clone(), &args));
            consts.insert(n.id, value.clone());
            new_inputs.push((n.id, value));
        }
        if new_inputs.is_empty() {
            return false;
        }
        // A folded node becomes a constant input with a fresh id.
        let mut remap = HashMap::new();
        for (old, value) in new_inputs {
            let id = g.new_id();
            g.inputs.push(Input {
                id,
                kind: InputKind::Const,
                shape: value.shape().iter().copied().collect(),
                dtype: value.dtype(),
                value: Some(value.to_owned_operand()),
            });
            remap.insert(old, id);
        }
        g.nodes.retain(|n| !remap.contains_key(&n.id));
        replace_uses(g, &remap);
        true
    }
}
