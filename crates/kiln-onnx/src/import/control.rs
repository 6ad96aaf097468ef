//! Control flow whose path is known while importing: `If` with a known condition imports the
//! branch taken, and `Scan` is unrolled over its sequence (whose length is a shape): each
//! step imports the body again with that step's states and slices bound to the body's
//! inputs, so the result is straight-line Kiln ops. A condition computed by the graph is
//! refused (or, as a small model input, imported per value).

use super::attrs::Attrs;
use super::builder::{known_i64s, Builder, Value, R};
use crate::proto::{GraphProto, NodeProto};
use kiln_kernels::ops::Op;
use std::collections::HashMap;

/// Imports the nodes of a body graph into `values` (which holds the outer scope and the
/// body's inputs), given by the importer so that this module does not name it.
pub(super) type ImportGraph<'f> =
    dyn FnMut(&mut Builder, &mut HashMap<String, Value>, &GraphProto) -> R<()> + 'f;

/// Whether `op` is a control-flow op handled here.
pub(super) fn handles(op: &str) -> bool {
    matches!(op, "If" | "Scan")
}

/// The outputs of a control-flow node.
pub(super) fn import(
    b: &mut Builder,
    node: &NodeProto,
    inputs: &[Option<Value>],
    values: &HashMap<String, Value>,
    opset: i64,
    import_graph: &mut ImportGraph,
) -> R<Vec<Value>> {
    let attrs = Attrs::of(node);
    match node.op_type() {
        "If" => {
            attrs.only(&["then_branch", "else_branch"])?;
            let cond = inputs
                .first()
                .cloned()
                .flatten()
                .ok_or("the condition is missing")?;
            let Some(c) = cond.known() else {
                return Err("the condition must be known while importing".into());
            };
            let taken = known_i64s(c).first().copied().unwrap_or(0) != 0;
            let branch = attrs
                .graph(if taken { "then_branch" } else { "else_branch" })?
                .ok_or("a branch is missing")?;
            let mut scope = values.clone();
            import_graph(b, &mut scope, branch)?;
            branch
                .output
                .iter()
                .map(|o| {
                    scope
                        .get(o.name())
                        .cloned()
                        .ok_or_else(|| format!("branch output {:?} is not computed", o.name()))
                })
                .collect()
        }
        "Scan" if opset >= 9 => scan(b, inputs, values, &attrs, import_graph),
        "Scan" => Err("Scan before opset 9 (with a batch dim) is not supported".into()),
        op => Err(format!("{op} is not a control-flow op")),
    }
}

fn scan(
    b: &mut Builder,
    inputs: &[Option<Value>],
    values: &HashMap<String, Value>,
    attrs: &Attrs,
    import_graph: &mut ImportGraph,
) -> R<Vec<Value>> {
    attrs.only(&[
        "body",
        "num_scan_inputs",
        "scan_input_axes",
        "scan_input_directions",
        "scan_output_axes",
        "scan_output_directions",
    ])?;
    let body = attrs.graph("body")?.ok_or("body is missing")?;
    let m = attrs
        .int("num_scan_inputs")?
        .ok_or("num_scan_inputs is missing")? as usize;
    let all: Vec<Value> = inputs
        .iter()
        .map(|v| v.clone().ok_or_else(|| "an input is missing".to_string()))
        .collect::<R<_>>()?;
    if m == 0 || m > all.len() || body.input.len() != all.len() {
        return Err(format!(
            "{} inputs with {m} scanned for a body of {} inputs",
            all.len(),
            body.input.len()
        ));
    }
    let n_states = all.len() - m;
    let k_outputs = body
        .output
        .len()
        .checked_sub(n_states)
        .ok_or("the body returns fewer values than there are states")?;
    let list = |name: &str, len: usize| -> R<Vec<i64>> {
        Ok(attrs.ints(name)?.unwrap_or_else(|| vec![0; len]))
    };
    let in_axes = list("scan_input_axes", m)?;
    let in_dirs = list("scan_input_directions", m)?;
    let out_axes = list("scan_output_axes", k_outputs)?;
    let out_dirs = list("scan_output_directions", k_outputs)?;
    if in_axes.len() != m
        || in_dirs.len() != m
        || out_axes.len() != k_outputs
        || out_dirs.len() != k_outputs
    {
        return Err("scan axes and directions do not match the scanned values".into());
    }
    let scanned = &all[n_states..];
    let mut axes = Vec::with_capacity(m);
    let mut steps = None;
    for (x, &a) in scanned.iter().zip(&in_axes) {
        let a = super::ops::axis(a, x.rank())?;
        let len = x.shape()[a];
        if steps.is_some_and(|s| s != len) {
            return Err("scanned inputs differ in length".into());
        }
        steps = Some(len);
        axes.push(a);
    }
    let steps = steps.expect("m ≥ 1");
    if steps == 0 {
        return Err("an empty sequence".into());
    }
    let mut states: Vec<Value> = all[..n_states].to_vec();
    let mut collected: Vec<Vec<Value>> = vec![Vec::with_capacity(steps); k_outputs];
    for t in 0..steps {
        let mut scope = values.clone();
        for (i, s) in states.iter().enumerate() {
            scope.insert(body.input[i].name().to_string(), s.clone());
        }
        for (j, x) in scanned.iter().enumerate() {
            let at = if in_dirs[j] != 0 { steps - 1 - t } else { t };
            let slice = b.op(
                Op::Slice {
                    dim: axes[j],
                    start: at,
                    len: 1,
                    step: 1,
                },
                &[x],
            )?;
            let mut shape = x.shape().to_vec();
            shape.remove(axes[j]);
            let element = b.reshape(&slice, &shape)?;
            scope.insert(body.input[n_states + j].name().to_string(), element);
        }
        import_graph(b, &mut scope, body)?;
        let out = |i: usize| -> R<Value> {
            let name = body.output[i].name();
            scope
                .get(name)
                .cloned()
                .ok_or_else(|| format!("body output {name:?} is not computed"))
        };
        states = (0..n_states).map(out).collect::<R<_>>()?;
        for (k, c) in collected.iter_mut().enumerate() {
            c.push(out(n_states + k)?);
        }
    }
    let mut results = states;
    for (k, mut elements) in collected.into_iter().enumerate() {
        if out_dirs[k] != 0 {
            elements.reverse();
        }
        let rank = elements[0].rank() + 1;
        let a = super::ops::axis(out_axes[k], rank)?;
        let parts: Vec<Value> = elements
            .iter()
            .map(|e| {
                let mut s = e.shape().to_vec();
                s.insert(a, 1);
                b.reshape(e, &s)
            })
            .collect::<R<_>>()?;
        let refs: Vec<&Value> = parts.iter().collect();
        results.push(b.op(Op::Cat(a), &refs)?);
    }
    Ok(results)
}
