//! Ops of modern sequence models: rotary position embeddings, the causal depthwise
//! convolution with a carried state (Mamba-style blocks), and linear attention with its
//! recurrent state (the linear, gated, delta and gated-delta rules). Each is built from Kiln
//! ops; the recurrences are unrolled over the sequence, whose length is known while importing.

use super::attention::{repeat_heads, split_heads};
use super::{one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::{Conv2dParams, Op, UnaryOp};
use kiln_kernels::DType;

pub(super) const OPS: &[OpDef] = &[
    def!(
        "RotaryEmbedding",
        rotary_embedding,
        ["interleaved", "rotary_embedding_dim", "num_heads"]
    ),
    def!(
        "CausalConvWithState",
        causal_conv_with_state,
        ["activation"]
    ),
    def!(
        "LinearAttention",
        linear_attention,
        [
            "chunk_size",
            "kv_num_heads",
            "q_num_heads",
            "scale",
            "update_rule"
        ]
    ),
];

/// `len` entries of `x` from `start` along `dim`, every `step`-th.
pub(super) fn take(
    b: &mut Builder,
    x: &Value,
    dim: usize,
    start: usize,
    len: usize,
    step: usize,
) -> R<Value> {
    b.op(
        Op::Slice {
            dim,
            start,
            len,
            step,
        },
        &[x],
    )
}

fn rotary_embedding(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, cos, sin) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let dtype = x.dtype();
    if !dtype.is_float() || cos.dtype() != dtype || sin.dtype() != dtype {
        return Err(format!(
            "input, cos_cache and sin_cache are {dtype}, {} and {}; expected one float type",
            cos.dtype(),
            sin.dtype()
        ));
    }
    let original = x.shape().to_vec();
    // As [batch, seq, heads, head_size].
    let x4 = match x.rank() {
        4 => b.permute(x, &[0, 2, 1, 3])?,
        3 => {
            let heads = n.attrs.int_or("num_heads", 0)?;
            if heads <= 0 || original[2] % heads as usize != 0 {
                return Err(format!(
                    "a 3-D input of hidden size {} needs num_heads that divides it (got {heads})",
                    original[2]
                ));
            }
            let h = heads as usize;
            b.reshape(x, &[original[0], original[1], h, original[2] / h])?
        }
        r => {
            return Err(format!(
                "input of rank {r}; RotaryEmbedding takes 3-D or 4-D"
            ))
        }
    };
    let s = x4.shape().to_vec();
    let (batch, seq, head) = (s[0], s[1], s[3]);
    let rot = match n.attrs.int_or("rotary_embedding_dim", 0)? {
        0 => head,
        r if r > 0 && r as usize <= head && r % 2 == 0 => r as usize,
        r => {
            return Err(format!(
                "rotary_embedding_dim={r} for head size {head} (expected an even size ≤ it)"
            ))
        }
    };
    let half = rot / 2;
    // The caches at each position: [batch, seq, 1, rot/2].
    let at_positions = |b: &mut Builder, c: &Value| -> R<Value> {
        let c = match n.opt(3) {
            Some(pos) => {
                if c.rank() != 2 || pos.shape() != [batch, seq] {
                    return Err(format!(
                        "cache {:?} with position_ids {:?} (expected [max_position, {half}] and \
                         [{batch}, {seq}])",
                        c.shape(),
                        pos.shape()
                    ));
                }
                let p = b.cast(pos, DType::I64)?;
                let p = b.reshape(&p, &[batch * seq])?;
                b.op(Op::IndexSelect(0), &[c, &p])?
            }
            None => c.clone(),
        };
        if c.shape().iter().product::<usize>() != batch * seq * half
            || c.shape().last() != Some(&half)
        {
            return Err(format!(
                "cache of shape {:?}; expected [{batch}, {seq}, {half}] at the positions",
                c.shape()
            ));
        }
        b.reshape(&c, &[batch, seq, 1, half])
    };
    let (cos, sin) = (at_positions(b, cos)?, at_positions(b, sin)?);
    let x_rot = take(b, &x4, 3, 0, rot, 1)?;
    let interleaved = n.attrs.int_or("interleaved", 0)? != 0;
    let (x1, x2) = if interleaved {
        (
            take(b, &x_rot, 3, 0, half, 2)?,
            take(b, &x_rot, 3, 1, half, 2)?,
        )
    } else {
        (
            take(b, &x_rot, 3, 0, half, 1)?,
            take(b, &x_rot, 3, half, half, 1)?,
        )
    };
    let mul = |b: &mut Builder, p: &Value, q: &Value| b.binary(Op::Mul, p, q);
    let (c1, s2) = (mul(b, &cos, &x1)?, mul(b, &sin, &x2)?);
    let real = b.binary(Op::Sub, &c1, &s2)?;
    let (s1, c2) = (mul(b, &sin, &x1)?, mul(b, &cos, &x2)?);
    let imag = b.binary(Op::Add, &s1, &c2)?;
    let rotated = if interleaved {
        let shape = [batch, seq, s[2], half, 1];
        let r = b.reshape(&real, &shape)?;
        let i = b.reshape(&imag, &shape)?;
        let pairs = b.op(Op::Cat(4), &[&r, &i])?;
        b.reshape(&pairs, &[batch, seq, s[2], rot])?
    } else {
        b.op(Op::Cat(3), &[&real, &imag])?
    };
    let y = if rot < head {
        let rest = take(b, &x4, 3, rot, head - rot, 1)?;
        b.op(Op::Cat(3), &[&rotated, &rest])?
    } else {
        rotated
    };
    one(if original.len() == 3 {
        b.reshape(&y, &original)?
    } else {
        b.permute(&y, &[0, 2, 1, 3])?
    })
}

/// `x · sigmoid(x)`.
fn silu(b: &mut Builder, x: &Value) -> R<Value> {
    let s = b.unary(x, UnaryOp::Sigmoid)?;
    b.binary(Op::Mul, x, &s)
}

fn causal_conv_with_state(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, w) = (n.input(0)?, n.input(1)?);
    let dtype = x.dtype();
    if x.rank() != 3 || w.rank() != 3 {
        return Err(format!(
            "input {:?} and weight {:?}; expected [batch, channels, length] and \
             [channels, 1, kernel]",
            x.shape(),
            w.shape()
        ));
    }
    let (batch, channels, len) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let k = w.shape()[2];
    if w.shape()[..2] != [channels, 1] || k == 0 {
        return Err(format!(
            "weight {:?} for {channels} channels; expected [{channels}, 1, kernel]",
            w.shape()
        ));
    }
    let activation = n.attrs.string("activation")?;
    let act = match activation.as_deref() {
        None | Some("none") => false,
        Some("silu" | "swish") => true,
        Some(a) => return Err(format!("activation={a:?} (expected none, silu or swish)")),
    };
    // The left context: the carried state, else zeros.
    let padded = match n.opt(3) {
        Some(state) => {
            if state.shape() != [batch, channels, k - 1] || state.dtype() != dtype {
                return Err(format!(
                    "past_state {:?} {}; expected [{batch}, {channels}, {}] {dtype}",
                    state.shape(),
                    state.dtype(),
                    k - 1
                ));
            }
            if k > 1 {
                b.op(Op::Cat(2), &[state, x])?
            } else {
                x.clone()
            }
        }
        None => super::pad_dim(b, x, 2, k - 1, 0, 0.0)?,
    };
    // A depthwise valid convolution, as a 2-D one of height 1, computed in f32 for halves.
    let work = if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let xc = b.cast(&padded, work)?;
    let xc = b.reshape(&xc, &[batch, channels, 1, len + k - 1])?;
    let wc = b.cast(w, work)?;
    let wc = b.reshape(&wc, &[channels, 1, 1, k])?;
    let params = Conv2dParams {
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        groups: channels,
    };
    let bias = match n.opt(2) {
        Some(bias) => Some(b.cast(bias, work)?),
        None => None,
    };
    let mut args = vec![&xc, &wc];
    if let Some(bias) = &bias {
        args.push(bias);
    }
    let y = b.op(Op::Conv2d(params), &args)?;
    let y = b.reshape(&y, &[batch, channels, len])?;
    let y = b.cast(&y, dtype)?;
    let y = if act {
        let f = b.cast(&y, work)?;
        let f = silu(b, &f)?;
        b.cast(&f, dtype)?
    } else {
        y
    };
    let mut outs = vec![y];
    if n.outputs > 1 {
        let state = take(b, &padded, 2, len, k - 1, 1)?;
        outs.push(state);
    }
    Ok(outs)
}

/// `[batch, seq, k]` as `[batch, k, seq, 1]`: a per-head (or shared) scalar at each step.
fn per_step_scalar(b: &mut Builder, x: &Value) -> R<Value> {
    let s = x.shape();
    let x = b.reshape(x, &[s[0], s[1], s[2], 1])?;
    b.permute(&x, &[0, 2, 1, 3])
}

fn linear_attention(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    n.outputs_at_most(2)?;
    let (q, k, v) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let dtype = q.dtype();
    if !dtype.is_float() || k.dtype() != dtype || v.dtype() != dtype {
        return Err(format!(
            "query, key and value are {dtype}, {} and {}; expected one float type",
            k.dtype(),
            v.dtype()
        ));
    }
    if q.rank() != 3 || k.rank() != 3 || v.rank() != 3 {
        return Err("query, key and value must be [batch, seq, heads·size]".into());
    }
    let rule = n.attrs.string("update_rule")?;
    let (gated, delta) = match rule.as_deref().unwrap_or("gated_delta") {
        "linear" => (false, false),
        "gated" => (true, false),
        "delta" => (false, true),
        "gated_delta" => (true, true),
        r => return Err(format!("update_rule={r:?}")),
    };
    let heads = |name: &str| -> R<usize> {
        match n.attrs.int(name)? {
            Some(h) if h > 0 => Ok(h as usize),
            _ => Err(format!("{name} must be given and positive")),
        }
    };
    let (qh, kvh) = (heads("q_num_heads")?, heads("kv_num_heads")?);
    if qh % kvh != 0 {
        return Err(format!(
            "{qh} query heads are not a multiple of {kvh} key/value heads"
        ));
    }
    let (decay, beta) = (n.opt(4), n.opt(5));
    if decay.is_some() != gated || beta.is_some() != delta {
        return Err(format!(
            "update_rule {:?} needs decay {} and beta {}",
            rule.as_deref().unwrap_or("gated_delta"),
            if gated { "given" } else { "absent" },
            if delta { "given" } else { "absent" }
        ));
    }
    // Computed in f32 (f64 stays f64), as [batch, heads, seq, size].
    let work = if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let as_work = |b: &mut Builder, x: &Value, h: usize, what: &str| -> R<Value> {
        let x = b.cast(x, work)?;
        split_heads(b, &x, h, what)
    };
    let q4 = as_work(b, q, qh, "query")?;
    let k4 = as_work(b, k, kvh, "key")?;
    let v4 = as_work(b, v, kvh, "value")?;
    let (batch, steps, dk) = (q4.shape()[0], q4.shape()[2], q4.shape()[3]);
    let dv = v4.shape()[3];
    if k4.shape() != [batch, kvh, steps, dk] || v4.shape()[..3] != [batch, kvh, steps] {
        return Err(format!(
            "query {:?}, key {:?} and value {:?} do not agree",
            q.shape(),
            k.shape(),
            v.shape()
        ));
    }
    let decay4 = match decay {
        Some(d) if d.rank() == 3 && d.shape()[..2] == [batch, steps] => {
            let last = d.shape()[2];
            let d = b.cast(d, work)?;
            if last == kvh {
                Some(per_step_scalar(b, &d)?)
            } else if last == kvh * dk {
                Some(split_heads(b, &d, kvh, "decay")?)
            } else {
                return Err(format!(
                    "decay's last dim {last} must be {kvh} or {}",
                    kvh * dk
                ));
            }
        }
        Some(d) => return Err(format!("decay has shape {:?}", d.shape())),
        None => None,
    };
    let beta4 = match beta {
        Some(t)
            if t.rank() == 3
                && t.shape()[..2] == [batch, steps]
                && (t.shape()[2] == kvh || t.shape()[2] == 1) =>
        {
            let t = b.cast(t, work)?;
            Some(per_step_scalar(b, &t)?)
        }
        Some(t) => return Err(format!("beta has shape {:?}", t.shape())),
        None => None,
    };
    let (mut state, state_dtype) = match n.opt(3) {
        Some(p) => {
            if p.shape() != [batch, kvh, dk, dv] {
                return Err(format!(
                    "past_state {:?}; expected [{batch}, {kvh}, {dk}, {dv}]",
                    p.shape()
                ));
            }
            (b.cast(p, work)?, p.dtype())
        }
        None => {
            let z = b.scalar(0.0, work);
            (
                b.op(
                    Op::Expand([batch, kvh, dk, dv].into_iter().collect()),
                    &[&z],
                )?,
                dtype,
            )
        }
    };
    let scale = match n.attrs.float_or("scale", 0.0)? as f64 {
        0.0 => 1.0 / (dk as f64).sqrt(),
        s => s,
    };
    let mut outputs = Vec::with_capacity(steps);
    for t in 0..steps {
        let q_t = take(b, &q4, 2, t, 1, 1)?; // [b, qh, 1, dk]
        let k_t = take(b, &k4, 2, t, 1, 1)?; // [b, kvh, 1, dk]
        let mut v_t = take(b, &v4, 2, t, 1, 1)?; // [b, kvh, 1, dv]
        if let Some(d) = &decay4 {
            let g = take(b, d, 2, t, 1, 1)?;
            let g = b.permute(&g, &[0, 1, 3, 2])?; // [b, kvh, 1|dk, 1]
            let g = b.unary(&g, UnaryOp::Exp)?;
            state = b.binary(Op::Mul, &state, &g)?;
        }
        if let Some(beta) = &beta4 {
            let retrieved = b.op(Op::Matmul, &[&k_t, &state])?;
            let diff = b.binary(Op::Sub, &v_t, &retrieved)?;
            let beta_t = take(b, beta, 2, t, 1, 1)?;
            v_t = b.binary(Op::Mul, &beta_t, &diff)?;
        }
        let k_col = b.permute(&k_t, &[0, 1, 3, 2])?;
        let outer = b.op(Op::Matmul, &[&k_col, &v_t])?;
        state = b.binary(Op::Add, &state, &outer)?;
        let read = repeat_heads(b, &state, qh / kvh)?;
        let o = b.op(Op::Matmul, &[&q_t, &read])?;
        outputs.push(b.scale(&o, scale)?);
    }
    let refs: Vec<&Value> = outputs.iter().collect();
    let o = b.op(Op::Cat(2), &refs)?; // [b, qh, seq, dv]
    let o = b.permute(&o, &[0, 2, 1, 3])?;
    let o = b.reshape(&o, &[batch, steps, qh * dv])?;
    let mut outs = vec![b.cast(&o, dtype)?];
    if n.outputs > 1 {
        outs.push(b.cast(&state, state_dtype)?);
    }
    Ok(outs)
}
