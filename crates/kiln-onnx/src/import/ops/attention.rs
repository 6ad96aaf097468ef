//! ONNX `Attention` (opsets 23–25): scaled dot-product attention over 3-D or 4-D queries, keys
//! and values, with an optional mask, a key/value cache (`past_key`/`past_value`, or the
//! external cache's `nonpad_kv_seqlen`), causal and sliding-window masking, grouped-query
//! heads, soft-capping, a chosen softmax precision and the `qk_matmul_output` of any stage.
//!
//! It is built from Kiln ops as the ONNX function body builds it: every mask becomes an
//! additive bias of 0 and −∞ (a select, never a multiply, so no `0 · −∞`), the biases are
//! summed with broadcasting, and a query row whose bias is −∞ everywhere gets zero weights
//! (the spec's fully-masked rule) instead of a softmax of NaN. Biases that depend only on
//! shapes (causal, windows) are constants while importing.

use super::{NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use crate::import::tensor::kiln_dtype;
use kiln_kernels::ops::{CmpOp, Op, UnaryOp};
use kiln_kernels::storage::CpuStorage;
use kiln_kernels::{DType, OwnedOperand};

pub(super) const OPS: &[OpDef] = &[def!(
    "Attention",
    attention,
    [
        "is_causal",
        "kv_num_heads",
        "q_num_heads",
        "qk_matmul_output_mode",
        "scale",
        "softcap",
        "softmax_precision",
        "left_window_size",
        "right_window_size"
    ]
)];

/// `[batch, seq, heads·size]` as `[batch, heads, seq, size]`.
pub(super) fn split_heads(b: &mut Builder, x: &Value, heads: usize, what: &str) -> R<Value> {
    let s = x.shape();
    if heads == 0 || !s[2].is_multiple_of(heads) {
        return Err(format!(
            "{what} has hidden size {} which {heads} heads do not divide",
            s[2]
        ));
    }
    let x = b.reshape(x, &[s[0], s[1], heads, s[2] / heads])?;
    b.permute(&x, &[0, 2, 1, 3])
}

/// `[batch, heads, seq, size]` with each head repeated `times` times in place (`h0 h0 h1 h1
/// …`): the key/value heads of grouped-query attention, one per query head.
pub(super) fn repeat_heads(b: &mut Builder, x: &Value, times: usize) -> R<Value> {
    if times == 1 {
        return Ok(x.clone());
    }
    let s = x.shape().to_vec();
    let x = b.reshape(x, &[s[0], s[1], 1, s[2], s[3]])?;
    let x = b.op(
        Op::Expand([s[0], s[1], times, s[2], s[3]].into_iter().collect()),
        &[&x],
    )?;
    b.reshape(&x, &[s[0], s[1] * times, s[2], s[3]])
}

/// A constant of `f(i, j)` over a `[rows, cols]` grid: the masks that depend only on positions.
fn grid(b: &Builder, rows: usize, cols: usize, f: impl Fn(i64, i64) -> i64) -> Value {
    let v = (0..rows * cols)
        .map(|p| f((p / cols) as i64, (p % cols) as i64))
        .collect();
    b.constant(OwnedOperand::dense(CpuStorage::I64(v), &[rows, cols]))
}

/// `where(allowed, 0, −∞)` in `dtype`.
fn bias_of(b: &mut Builder, allowed: &Value, dtype: DType) -> R<Value> {
    let zero = b.scalar(0.0, dtype);
    let neg = b.scalar(f64::NEG_INFINITY, dtype);
    b.op(Op::Where, &[allowed, &zero, &neg])
}

/// `a + b`, where either may be absent.
fn add_bias(b: &mut Builder, acc: Option<Value>, x: Value) -> R<Option<Value>> {
    Ok(Some(match acc {
        None => x,
        Some(a) => b.binary(Op::Add, &a, &x)?,
    }))
}

/// The bias that keeps key `j` for query `i` when `i + offset − j` lies in `[lo, hi]`
/// (`None` leaves a side open): the causal mask is `[0, ∞)`, a window `[−right, left]`.
/// `offset` is the number of keys before the query block: known, or per batch from
/// `nonpad_kv_seqlen − q_len` (then the bias is `[batch, 1, q, kv]`).
fn band(
    b: &mut Builder,
    (q, kv): (usize, usize),
    offset: &Offset,
    (lo, hi): (Option<i64>, Option<i64>),
    dtype: DType,
) -> R<Value> {
    let allowed = match offset {
        Offset::Known(o) => {
            let o = *o;
            let keep = (0..q * kv).map(|p| {
                let d = (p / kv) as i64 + o - (p % kv) as i64;
                lo.is_none_or(|l| d >= l) && hi.is_none_or(|h| d <= h)
            });
            b.constant(OwnedOperand::dense(
                CpuStorage::Bool(keep.collect()),
                &[q, kv],
            ))
        }
        Offset::PerBatch(off) => {
            // d = (i − j) + offset[b], compared as i64 per batch.
            let ij = grid(b, q, kv, |i, j| i - j);
            let n = off.shape()[0];
            let off = b.reshape(off, &[n, 1, 1, 1])?;
            let d = b.binary(Op::Add, &ij, &off)?;
            let mut keep: Option<Value> = None;
            for (bound, cmp) in [(lo, CmpOp::Ge), (hi, CmpOp::Le)] {
                if let Some(v) = bound {
                    let s = b.scalar(v as f64, DType::I64);
                    let c = b.binary(Op::Compare(cmp), &d, &s)?;
                    keep = Some(match keep {
                        None => c,
                        Some(k) => b.binary(Op::Mul, &k, &c)?,
                    });
                }
            }
            match keep {
                Some(k) => k,
                None => return Ok(b.scalar(0.0, dtype)),
            }
        }
    };
    bias_of(b, &allowed, dtype)
}

/// Where the query block starts among the keys.
enum Offset {
    /// The same for every batch entry (the past cache's length, or 0).
    Known(i64),
    /// Per batch entry, computed by the graph: `[batch]` i64.
    PerBatch(Value),
}

fn attention(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    n.outputs_at_most(4)?;
    let (q, k, v) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let dtype = q.dtype();
    if !dtype.is_float() {
        return Err(format!("Q is {dtype}; Attention takes floats"));
    }
    if k.dtype() != dtype || v.dtype() != dtype {
        return Err(format!(
            "Q, K and V are {dtype}, {} and {}; ONNX requires one element type",
            k.dtype(),
            v.dtype()
        ));
    }
    let rank = q.rank();
    if !(rank == 3 || rank == 4) || k.rank() != rank || v.rank() != rank {
        return Err(format!(
            "Q, K and V have ranks {}, {} and {}; Attention takes all 3-D or all 4-D",
            q.rank(),
            k.rank(),
            v.rank()
        ));
    }
    let heads_attr = |name: &str| n.attrs.int(name);
    let (q_heads_attr, kv_heads_attr) = (heads_attr("q_num_heads")?, heads_attr("kv_num_heads")?);
    let (q, k, v) = if rank == 3 {
        let (Some(qh), Some(kvh)) = (q_heads_attr, kv_heads_attr) else {
            return Err("3-D inputs need q_num_heads and kv_num_heads".into());
        };
        let (qh, kvh) = (qh.max(0) as usize, kvh.max(0) as usize);
        (
            split_heads(b, q, qh, "Q")?,
            split_heads(b, k, kvh, "K")?,
            split_heads(b, v, kvh, "V")?,
        )
    } else {
        if n.opset >= 25 && (q_heads_attr.is_some() || kv_heads_attr.is_some()) {
            return Err("q_num_heads and kv_num_heads must not be given for 4-D inputs".into());
        }
        (q.clone(), k.clone(), v.clone())
    };
    let (batch, q_heads, q_len, head_size) =
        (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
    let kv_heads = k.shape()[1];
    if k.shape()[0] != batch || v.shape()[0] != batch || v.shape()[1] != kv_heads {
        return Err(format!(
            "Q {:?}, K {:?} and V {:?} (as [batch, heads, seq, size]) do not agree",
            q.shape(),
            k.shape(),
            v.shape()
        ));
    }
    if k.shape()[3] != head_size || v.shape()[2] != k.shape()[2] {
        return Err(format!(
            "K {:?} does not match Q {:?} or V {:?} (as [batch, heads, seq, size])",
            k.shape(),
            q.shape(),
            v.shape()
        ));
    }
    if kv_heads == 0 || q_heads % kv_heads != 0 {
        return Err(format!(
            "{q_heads} query heads are not a multiple of {kv_heads} key/value heads"
        ));
    }

    // The cache: the past entries come before the new keys and values.
    let (past_k, past_v) = (n.opt(4), n.opt(5));
    if past_k.is_some() != past_v.is_some() {
        return Err("past_key and past_value must be given together".into());
    }
    let nonpad = n.opt(6);
    if nonpad.is_some() && past_k.is_some() {
        return Err("nonpad_kv_seqlen cannot be combined with past_key and past_value".into());
    }
    let (k, v, past_len) = match (past_k, past_v) {
        (Some(pk), Some(pv)) => {
            if pk.dtype() != dtype || pv.dtype() != dtype {
                return Err(format!("past_key and past_value must be {dtype}"));
            }
            let past_len = pk.shape().get(2).copied().unwrap_or(0) as i64;
            (
                b.op(Op::Cat(2), &[pk, &k])?,
                b.op(Op::Cat(2), &[pv, &v])?,
                past_len,
            )
        }
        _ => (k, v, 0),
    };
    let kv_len = k.shape()[2];
    let offset = match nonpad {
        Some(s) => {
            if s.shape() != [batch] {
                return Err(format!(
                    "nonpad_kv_seqlen has shape {:?}; expected [{batch}]",
                    s.shape()
                ));
            }
            let s = b.cast(s, DType::I64)?;
            let ql = b.scalar(q_len as f64, DType::I64);
            Offset::PerBatch(b.binary(Op::Sub, &s, &ql)?)
        }
        None => Offset::Known(past_len),
    };

    // The additive bias: mask, causal, window and padding, summed with broadcasting.
    let mut bias: Option<Value> = None;
    if let Some(mask) = n.opt(3) {
        if mask.rank() == 0 || mask.shape()[mask.rank() - 1] > kv_len {
            return Err(format!(
                "attn_mask has shape {:?}; its last dim must be at most the {kv_len} keys",
                mask.shape()
            ));
        }
        let mask = if mask.dtype() == DType::Bool {
            let m = super::pad_dim(
                b,
                mask,
                mask.rank() - 1,
                0,
                kv_len - mask.shape()[mask.rank() - 1],
                0.0,
            )?;
            bias_of(b, &m, dtype)?
        } else if mask.dtype().is_float() {
            let m = b.cast(mask, dtype)?;
            super::pad_dim(
                b,
                &m,
                m.rank() - 1,
                0,
                kv_len - m.shape()[m.rank() - 1],
                f64::NEG_INFINITY,
            )?
        } else {
            return Err(format!(
                "attn_mask is {}; expected bool or float",
                mask.dtype()
            ));
        };
        bias = Some(mask);
    }
    if n.attrs.int_or("is_causal", 0)? != 0 {
        let c = band(b, (q_len, kv_len), &offset, (Some(0), None), dtype)?;
        bias = add_bias(b, bias, c)?;
    }
    let window = |name: &str| -> R<Option<i64>> {
        match n.attrs.int_or(name, -1)? {
            -1 => Ok(None),
            w if w >= 0 => Ok(Some(w)),
            w => Err(format!("{name}={w}: expected -1 or a size")),
        }
    };
    let (left, right) = (window("left_window_size")?, window("right_window_size")?);
    if left.is_some() || right.is_some() {
        let w = band(
            b,
            (q_len, kv_len),
            &offset,
            (right.map(|r| -r), left),
            dtype,
        )?;
        bias = add_bias(b, bias, w)?;
    }
    if let Some(s) = nonpad {
        let s = b.cast(s, DType::I64)?;
        let s = b.reshape(&s, &[batch, 1, 1, 1])?;
        let j = grid(b, 1, kv_len, |_, j| j);
        let keep = b.binary(Op::Compare(CmpOp::Lt), &j, &s)?;
        let p = bias_of(b, &keep, dtype)?;
        bias = add_bias(b, bias, p)?;
    }

    // Grouped-query attention: each key/value head serves q_heads / kv_heads query heads.
    let r = q_heads / kv_heads;
    let (k_rep, v_rep) = (repeat_heads(b, &k, r)?, repeat_heads(b, &v, r)?);

    // Scores: (Q·√s)(K·√s)ᵀ, the scale split between both sides as the function body does.
    let scale = match n.attrs.has("scale") {
        true => n.attrs.float_or("scale", 1.0)? as f64,
        false => 1.0 / (head_size as f64).sqrt(),
    };
    let root = scale.sqrt();
    let root = if dtype == DType::F64 {
        root
    } else {
        root as f32 as f64
    };
    let qs = b.scale(&q, root)?;
    let ks = b.scale(&k_rep, root)?;
    let kt = b.permute(&ks, &[0, 1, 3, 2])?;
    let mut scores = b.op(Op::Matmul, &[&qs, &kt])?;
    let softcap = n.attrs.float_or("softcap", 0.0)? as f64;
    if softcap > 0.0 {
        let t = b.scale(&scores, 1.0 / softcap)?;
        let t = b.unary(&t, UnaryOp::Tanh)?;
        scores = b.scale(&t, softcap)?;
    }
    let with_bias = match &bias {
        Some(bias) => b.binary(Op::Add, &scores, bias)?,
        None => scores.clone(),
    };
    let precision = match n.attrs.int("softmax_precision")? {
        Some(t) => kiln_dtype(t as i32, "softmax_precision").map_err(|e| e.to_string())?,
        None => dtype,
    };
    let logits = b.cast(&with_bias, precision)?;
    let mut probs = b.op(Op::Softmax { dim: 3, log: false }, &[&logits])?;
    if let Some(bias) = &bias {
        // A row with no key to attend: zero weights (its softmax is 0/0).
        let top = b.op(
            Op::Max {
                dims: [bias.rank() - 1].into_iter().collect(),
                keepdim: true,
            },
            &[bias],
        )?;
        let neg = b.scalar(f64::NEG_INFINITY, dtype);
        let dead = b.binary(Op::Compare(CmpOp::Eq), &top, &neg)?;
        let zero = b.scalar(0.0, precision);
        probs = b.op(Op::Where, &[&dead, &zero, &probs])?;
    }
    let probs = b.cast(&probs, dtype)?;
    let mut y = b.op(Op::Matmul, &[&probs, &v_rep])?;
    if rank == 3 {
        let s = y.shape().to_vec();
        y = b.permute(&y, &[0, 2, 1, 3])?;
        y = b.reshape(&y, &[s[0], s[2], s[1] * s[3]])?;
    }
    let mut outs = vec![y];
    if n.outputs > 1 {
        outs.push(k.clone());
        outs.push(v.clone());
    }
    if n.outputs > 3 {
        let stage = match n.attrs.int_or("qk_matmul_output_mode", 0)? {
            0 | 1 => scores,
            2 => with_bias,
            3 => probs,
            m => return Err(format!("qk_matmul_output_mode={m} (expected 0 to 3)")),
        };
        outs.push(b.cast(&stage, dtype)?);
    }
    outs.truncate(n.outputs.max(1));
    Ok(outs)
}
