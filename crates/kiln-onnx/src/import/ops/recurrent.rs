//! The recurrent layers `RNN`, `GRU` and `LSTM`, unrolled over the sequence (its length is
//! known while importing): the input projection of every step is one product, then each
//! step adds the recurrent product and applies the gates, forward, reverse or both ways, in
//! either layout, with initial states, biases, peepholes, clipping and the gate activations
//! ONNX names (Sigmoid, Tanh, Relu).

use super::{one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::{Op, UnaryOp};

pub(super) const OPS: &[OpDef] = &[
    def!("RNN", |b, n| recurrent(b, n, Cell::Rnn), RNN),
    def!("GRU", |b, n| recurrent(b, n, Cell::Gru), GRU),
    def!("LSTM", |b, n| recurrent(b, n, Cell::Lstm), LSTM),
];

const RNN: &[&str] = &[
    "activations",
    "activation_alpha",
    "activation_beta",
    "clip",
    "direction",
    "hidden_size",
    "layout",
];
const GRU: &[&str] = &[
    "activations",
    "activation_alpha",
    "activation_beta",
    "clip",
    "direction",
    "hidden_size",
    "layout",
    "linear_before_reset",
];
const LSTM: &[&str] = &[
    "activations",
    "activation_alpha",
    "activation_beta",
    "clip",
    "direction",
    "hidden_size",
    "layout",
    "input_forget",
];

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Rnn,
    Gru,
    Lstm,
}

impl Cell {
    /// Gates per step (the blocks of W and R).
    fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }

    /// Activations per direction, and their defaults.
    fn defaults(self) -> &'static [&'static str] {
        match self {
            Cell::Rnn => &["Tanh"],
            Cell::Gru => &["Sigmoid", "Tanh"],
            Cell::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        }
    }
}

/// A gate activation.
fn activate(b: &mut Builder, x: &Value, name: &str) -> R<Value> {
    let u = match name.to_ascii_lowercase().as_str() {
        "sigmoid" => UnaryOp::Sigmoid,
        "tanh" => UnaryOp::Tanh,
        "relu" => UnaryOp::Relu,
        _ => {
            return Err(format!(
                "activation {name:?} (Kiln imports Sigmoid, Tanh, Relu)"
            ))
        }
    };
    b.unary(x, u)
}

/// Columns `[k·h, (k+1)·h)` of a `[rows, g·h]` value.
fn block(b: &mut Builder, x: &Value, k: usize, h: usize) -> R<Value> {
    b.op(
        Op::Slice {
            dim: x.rank() - 1,
            start: k * h,
            len: h,
            step: 1,
        },
        &[x],
    )
}

/// Entry `d` of dim 0, that dim dropped.
fn entry(b: &mut Builder, x: &Value, d: usize) -> R<Value> {
    let s = b.op(
        Op::Slice {
            dim: 0,
            start: d,
            len: 1,
            step: 1,
        },
        &[x],
    )?;
    b.reshape(&s, &x.shape()[1..])
}

fn recurrent(b: &mut Builder, n: &NodeIn, cell: Cell) -> R<Vec<Value>> {
    n.outputs_at_most(if cell == Cell::Lstm { 3 } else { 2 })?;
    let (x, w, r) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let hidden = match n.attrs.int("hidden_size")? {
        Some(h) if h > 0 => h as usize,
        _ => return Err("hidden_size must be given and positive".into()),
    };
    let layout = n.attrs.int_or("layout", 0)?;
    let direction = n
        .attrs
        .string("direction")?
        .unwrap_or_else(|| "forward".into());
    let dirs: Vec<bool> = match direction.as_str() {
        "forward" => vec![false],
        "reverse" => vec![true],
        "bidirectional" => vec![false, true],
        d => return Err(format!("direction {d:?}")),
    };
    if x.rank() != 3 || !x.dtype().is_float() {
        return Err(format!(
            "X {:?} {}; expected a 3-D float input",
            x.shape(),
            x.dtype()
        ));
    }
    // As [seq, batch, input].
    let x = if layout == 1 {
        b.permute(x, &[1, 0, 2])?
    } else {
        x.clone()
    };
    let (seq, batch, inputs) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let g = cell.gates();
    let nd = dirs.len();
    if w.shape() != [nd, g * hidden, inputs] || r.shape() != [nd, g * hidden, hidden] {
        return Err(format!(
            "W {:?} and R {:?}; expected [{nd}, {}, {inputs}] and [{nd}, {}, {hidden}]",
            w.shape(),
            r.shape(),
            g * hidden,
            g * hidden
        ));
    }
    if let Some(lens) = n.ints(4)? {
        if lens.iter().any(|&l| l != seq as i64) {
            return Err(format!(
                "sequence_lens {lens:?}: Kiln imports sequences of the full length {seq}"
            ));
        }
    }
    let clip = n.attrs.float_or("clip", 0.0)? as f64;
    let names: Vec<String> = match n.attrs.string_list("activations")? {
        Some(v) => v,
        None => dirs
            .iter()
            .flat_map(|_| cell.defaults().iter().map(|s| s.to_string()))
            .collect(),
    };
    if names.len() != cell.defaults().len() * nd {
        return Err(format!("activations {names:?} for {nd} direction(s)"));
    }
    if n.attrs.has("activation_alpha") || n.attrs.has("activation_beta") {
        return Err("activation_alpha and activation_beta are not supported".into());
    }
    let linear_before_reset = n.attrs.int_or("linear_before_reset", 0)? != 0;
    let input_forget = n.attrs.int_or("input_forget", 0)? != 0;
    // Initial states as [dirs, batch, hidden].
    let state = |b: &mut Builder, k: usize| -> R<Option<Value>> {
        match n.opt(k) {
            Some(v) if layout == 1 => Ok(Some(b.permute(v, &[1, 0, 2])?)),
            Some(v) => Ok(Some(v.clone())),
            None => Ok(None),
        }
    };
    let (h0, c0) = (state(b, 5)?, state(b, 6)?);
    let dtype = x.dtype();
    let zeros = |b: &mut Builder| -> R<Value> {
        let z = b.scalar(0.0, dtype);
        b.op(Op::Expand([batch, hidden].into_iter().collect()), &[&z])
    };
    let mut ys = Vec::new();
    let mut last_h = Vec::new();
    let mut last_c = Vec::new();
    for (d, &reverse) in dirs.iter().enumerate() {
        let act: Vec<&str> = names[d * cell.defaults().len()..(d + 1) * cell.defaults().len()]
            .iter()
            .map(String::as_str)
            .collect();
        let wd = entry(b, w, d)?;
        let wt = b.permute(&wd, &[1, 0])?;
        let rd = entry(b, r, d)?;
        let rt = b.permute(&rd, &[1, 0])?;
        // Input projections of every step at once: [seq, batch, g·h].
        let x2 = b.reshape(&x, &[seq * batch, inputs])?;
        let mut xw = b.op(Op::Matmul, &[&x2, &wt])?;
        let mut rb = None;
        if let Some(bias) = n.opt(3) {
            let bd = entry(b, bias, d)?;
            let wb = block(b, &bd, 0, g * hidden)?;
            xw = b.binary(Op::Add, &xw, &wb)?;
            rb = Some(block(b, &bd, 1, g * hidden)?);
        }
        let xw = b.reshape(&xw, &[seq, batch, g * hidden])?;
        let peep = match n.opt(7) {
            Some(p) if cell == Cell::Lstm => Some(entry(b, p, d)?),
            _ => None,
        };
        let mut h = match &h0 {
            Some(v) => entry(b, v, d)?,
            None => zeros(b)?,
        };
        let mut c = match &c0 {
            Some(v) => entry(b, v, d)?,
            None => zeros(b)?,
        };
        let mut outs = vec![None; seq];
        let order: Vec<usize> = if reverse {
            (0..seq).rev().collect()
        } else {
            (0..seq).collect()
        };
        for t in order {
            let xt = entry(b, &xw, t)?;
            let mut hr = b.op(Op::Matmul, &[&h, &rt])?;
            if let Some(rb) = &rb {
                hr = b.binary(Op::Add, &hr, rb)?;
            }
            let clip_to = |b: &mut Builder, v: Value| -> R<Value> {
                if clip > 0.0 {
                    b.unary(
                        &v,
                        UnaryOp::Clamp {
                            min: Some(-clip),
                            max: Some(clip),
                        },
                    )
                } else {
                    Ok(v)
                }
            };
            match cell {
                Cell::Rnn => {
                    let s = b.binary(Op::Add, &xt, &hr)?;
                    let s = clip_to(b, s)?;
                    h = activate(b, &s, act[0])?;
                }
                Cell::Gru => {
                    // Gates z, r, h.
                    let gate = |b: &mut Builder, k: usize| -> R<Value> {
                        let a = block(b, &xt, k, hidden)?;
                        let r_ = block(b, &hr, k, hidden)?;
                        b.binary(Op::Add, &a, &r_)
                    };
                    let z = gate(b, 0)?;
                    let z = clip_to(b, z)?;
                    let z = activate(b, &z, act[0])?;
                    let rg = gate(b, 1)?;
                    let rg = clip_to(b, rg)?;
                    let rg = activate(b, &rg, act[0])?;
                    let xh = block(b, &xt, 2, hidden)?;
                    let pre = if linear_before_reset {
                        let hh = block(b, &hr, 2, hidden)?;
                        let gated = b.binary(Op::Mul, &rg, &hh)?;
                        b.binary(Op::Add, &xh, &gated)?
                    } else {
                        let rh = b.binary(Op::Mul, &rg, &h)?;
                        let rth = block(b, &rt, 2, hidden)?;
                        let mut p = b.op(Op::Matmul, &[&rh, &rth])?;
                        if let Some(rb) = &rb {
                            let rbh = block(b, rb, 2, hidden)?;
                            p = b.binary(Op::Add, &p, &rbh)?;
                        }
                        b.binary(Op::Add, &xh, &p)?
                    };
                    let pre = clip_to(b, pre)?;
                    let cand = activate(b, &pre, act[1])?;
                    // h = (1 − z)·cand + z·h = cand + z·(h − cand)
                    let diff = b.binary(Op::Sub, &h, &cand)?;
                    let zd = b.binary(Op::Mul, &z, &diff)?;
                    h = b.binary(Op::Add, &cand, &zd)?;
                }
                Cell::Lstm => {
                    // Gates i, o, f, c; peepholes P = [Pi, Po, Pf].
                    let s = b.binary(Op::Add, &xt, &hr)?;
                    let pre = |b: &mut Builder, k: usize, peep_k: Option<(usize, &Value)>| {
                        let mut v = block(b, &s, k, hidden)?;
                        if let (Some(p), Some((pk, cv))) = (&peep, peep_k) {
                            let pv = block(b, p, pk, hidden)?;
                            let pc = b.binary(Op::Mul, &pv, cv)?;
                            v = b.binary(Op::Add, &v, &pc)?;
                        }
                        clip_to(b, v)
                    };
                    let i = pre(b, 0, Some((0, &c)))?;
                    let i = activate(b, &i, act[0])?;
                    let f = if input_forget {
                        b.unary(
                            &i,
                            UnaryOp::Affine {
                                mul: -1.0,
                                add: 1.0,
                            },
                        )?
                    } else {
                        let f = pre(b, 2, Some((2, &c)))?;
                        activate(b, &f, act[0])?
                    };
                    let cc = pre(b, 3, None)?;
                    let cc = activate(b, &cc, act[1])?;
                    let fc = b.binary(Op::Mul, &f, &c)?;
                    let ic = b.binary(Op::Mul, &i, &cc)?;
                    c = b.binary(Op::Add, &fc, &ic)?;
                    let o = pre(b, 1, Some((1, &c)))?;
                    let o = activate(b, &o, act[0])?;
                    let hc = activate(b, &c, act[2])?;
                    h = b.binary(Op::Mul, &o, &hc)?;
                }
            }
            outs[t] = Some(b.reshape(&h, &[1, 1, batch, hidden])?);
        }
        let steps: Vec<Value> = outs.into_iter().map(|v| v.expect("every step")).collect();
        let refs: Vec<&Value> = steps.iter().collect();
        ys.push(b.op(Op::Cat(0), &refs)?); // [seq, 1, batch, h]
        last_h.push(b.reshape(&h, &[1, batch, hidden])?);
        last_c.push(b.reshape(&c, &[1, batch, hidden])?);
    }
    let cat = |b: &mut Builder, v: &[Value], dim: usize| -> R<Value> {
        let refs: Vec<&Value> = v.iter().collect();
        b.op(Op::Cat(dim), &refs)
    };
    let mut y = cat(b, &ys, 1)?; // [seq, dirs, batch, h]
    let mut yh = cat(b, &last_h, 0)?; // [dirs, batch, h]
    let mut yc = cat(b, &last_c, 0)?;
    if layout == 1 {
        y = b.permute(&y, &[2, 0, 1, 3])?;
        yh = b.permute(&yh, &[1, 0, 2])?;
        yc = b.permute(&yc, &[1, 0, 2])?;
    }
    let mut results = vec![y, yh];
    if cell == Cell::Lstm {
        results.push(yc);
    }
    results.truncate(n.outputs.max(1));
    if results.len() == 1 {
        return one(results.remove(0));
    }
    Ok(results)
}
