//! Constant folding: evaluates nodes whose operands are all constants at compile time.

use super::{replace_uses, Pass};
use kiln_core::operand::OwnedOperand;
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
        let updated: Vec<ValueId> = g.updates.iter().map(|u| u.input).collect();
        // Constant inputs are wrapped as tensors only when a node they feed is folded.
        let inputs: HashMap<ValueId, &OwnedOperand> = g
            .inputs
            .iter()
            .filter(|i| i.kind == InputKind::Const && !updated.contains(&i.id))
            .filter_map(|i| Some((i.id, i.value.as_ref()?)))
            .collect();
        let mut folded: HashMap<ValueId, Tensor> = HashMap::new();
        let mut new_inputs = Vec::new();
        for n in &g.nodes {
            let numel: usize = n.shape.iter().product();
            if n.fresh_random
                || numel > self.max_elements
                || n.args.is_empty()
                || !n.op.writes_args().is_empty()
                || !n
                    .args
                    .iter()
                    .all(|a| inputs.contains_key(a) || folded.contains_key(a))
            {
                continue;
            }
            let args: Vec<Tensor> = n
                .args
                .iter()
                .map(|a| match folded.get(a) {
                    Some(t) => t.clone(),
                    None => Tensor::from_owned_operand(inputs[a]),
                })
                .collect();
            let refs: Vec<&Tensor> = args.iter().collect();
            let value = no_grad(|| dispatch(n.op.clone(), &refs));
            folded.insert(n.id, value.clone());
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
