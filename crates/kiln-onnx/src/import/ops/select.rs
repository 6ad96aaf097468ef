//! Selection and scatter ops: `TopK` (k rounds of arg-max with the chosen entries masked,
//! ties to the lower index as ONNX requires), `ScatterElements` (and the older `Scatter`)
//! and `ScatterND`, with no reduction or an added one, on Kiln's scatter-add.

use super::rearrange::iota;
use super::shape::wrap_at_run;
use super::{axis, one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::{CmpOp, Op};
use kiln_kernels::DType;

pub(super) const OPS: &[OpDef] = &[
    def!("TopK", top_k, ["axis", "largest", "sorted"]),
    def!("ScatterElements", scatter_elements, ["axis", "reduction"]),
    def!("Scatter", scatter_elements, ["axis"]),
    def!("ScatterND", scatter_nd, ["reduction"]),
];

fn top_k(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let k = match n.ints(1)?.as_deref() {
        Some([k]) if *k >= 0 => *k as usize,
        k => return Err(format!("k {k:?} (expected one non-negative value)")),
    };
    let dim = axis(n.attrs.int_or("axis", -1)?, x.rank())?;
    let largest = n.attrs.int_or("largest", 1)? != 0;
    let len = x.shape()[dim];
    if k > len {
        return Err(format!("k {k} exceeds the axis's {len} entries"));
    }
    if k == 0 {
        return Err("k = 0 (an empty result)".into());
    }
    // Ranked in f64 with ±∞ marking the entries already taken (exact for every value below
    // 2⁵³; the values returned are gathered from x itself).
    let mut work = b.cast(x, DType::F64)?;
    let taken = b.scalar(
        if largest {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        },
        DType::F64,
    );
    let positions = iota(b, len, dim, x.rank());
    let mut picks = Vec::with_capacity(k);
    for _ in 0..k {
        let op = if largest {
            Op::ArgMax { dim, keepdim: true }
        } else {
            Op::ArgMin { dim, keepdim: true }
        };
        let i = b.op(op, &[&work])?;
        let hit = b.binary(Op::Compare(CmpOp::Eq), &positions, &i)?;
        work = b.op(Op::Where, &[&hit, &taken, &work])?;
        picks.push(i);
    }
    let refs: Vec<&Value> = picks.iter().collect();
    let idx = b.op(Op::Cat(dim), &refs)?;
    let values = b.op(Op::Gather(dim), &[x, &idx])?;
    Ok(vec![values, idx])
}

/// Whether the scatter adds (`reduction="add"`) or replaces (none).
fn adds(n: &NodeIn) -> R<bool> {
    match n.attrs.string("reduction")?.as_deref() {
        None | Some("none") => Ok(false),
        Some("add") => Ok(true),
        Some(r) => Err(format!("reduction={r:?} (Kiln imports none and add)")),
    }
}

/// `base` with `src` written (or added) where `scatter` puts it: `scatter(base, src)` adds
/// `src` in; replacing takes the added values where a ones-scatter marked a position.
fn replace_or_add(
    b: &mut Builder,
    data: &Value,
    updates: &Value,
    add: bool,
    scatter: impl Fn(&mut Builder, &Value, &Value) -> R<Value>,
) -> R<Value> {
    if add {
        return scatter(b, data, updates);
    }
    // ONNX leaves duplicate indices undefined without a reduction: each position is written
    // by one update.
    let zero = b.scalar(0.0, data.dtype());
    let zeros = b.op(Op::Expand(data.shape().iter().copied().collect()), &[&zero])?;
    let written = scatter(b, &zeros, updates)?;
    let one_ = b.scalar(1.0, DType::F32);
    let ones = b.op(
        Op::Expand(updates.shape().iter().copied().collect()),
        &[&one_],
    )?;
    let fzero = b.scalar(0.0, DType::F32);
    let fzeros = b.op(
        Op::Expand(data.shape().iter().copied().collect()),
        &[&fzero],
    )?;
    let marks = scatter(b, &fzeros, &ones)?;
    let hit = b.binary(Op::Compare(CmpOp::Gt), &marks, &fzero)?;
    b.op(Op::Where, &[&hit, &written, data])
}

fn scatter_elements(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (data, idx, updates) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let dim = axis(n.attrs.int_or("axis", 0)?, data.rank())?;
    if idx.shape() != updates.shape() {
        return Err(format!(
            "indices {:?} and updates {:?} differ in shape",
            idx.shape(),
            updates.shape()
        ));
    }
    let add = adds(n)?;
    let idx = wrap_at_run(b, idx, data.shape()[dim])?;
    let updates = b.cast(updates, data.dtype())?;
    one(replace_or_add(b, data, &updates, add, |b, base, src| {
        let src = if src.dtype() == base.dtype() {
            src.clone()
        } else {
            b.cast(src, base.dtype())?
        };
        b.op(Op::ScatterAdd(dim), &[base, &idx, &src])
    })?)
}

/// `ScatterND`: index tuples (the last dim of the indices, `k` long) pick rows of the data
/// flattened over its first `k` dims, and one `IndexAdd` writes the updates there.
fn scatter_nd(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (data, idx, updates) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let Some(&k) = idx.shape().last() else {
        return Err("indices of rank 0".into());
    };
    if k == 0 || k > data.rank() {
        return Err(format!(
            "index tuples of {k} for data of rank {}",
            data.rank()
        ));
    }
    let lead = &data.shape()[..k];
    let rows: usize = lead.iter().product();
    let tail = &data.shape()[k..];
    let count: usize = idx.shape()[..idx.rank() - 1].iter().product();
    let mut want = idx.shape()[..idx.rank() - 1].to_vec();
    want.extend_from_slice(tail);
    if updates.shape() != want.as_slice() {
        return Err(format!(
            "updates {:?}; expected {want:?} for indices {:?} into {:?}",
            updates.shape(),
            idx.shape(),
            data.shape()
        ));
    }
    // Row numbers: Σ wrap(index_j) · stride_j over the k leading dims.
    let mut row: Option<Value> = None;
    let mut stride = rows;
    for (j, &size) in lead.iter().enumerate() {
        stride /= size.max(1);
        let col = b.op(
            Op::Slice {
                dim: idx.rank() - 1,
                start: j,
                len: 1,
                step: 1,
            },
            &[idx],
        )?;
        let col = wrap_at_run(b, &col, size)?;
        let col = b.reshape(&col, &[count])?;
        let term = b.scale(&col, stride as f64)?;
        row = Some(match row {
            None => term,
            Some(r) => b.binary(Op::Add, &r, &term)?,
        });
    }
    let row = row.expect("k ≥ 1");
    let mut flat = vec![rows];
    flat.extend_from_slice(tail);
    let base = b.reshape(data, &flat)?;
    let mut src_shape = vec![count];
    src_shape.extend_from_slice(tail);
    let src = b.reshape(updates, &src_shape)?;
    let src = b.cast(&src, data.dtype())?;
    let add = adds(n)?;
    let y = replace_or_add(b, &base, &src, add, |b, base, src| {
        let src = if src.dtype() == base.dtype() {
            src.clone()
        } else {
            b.cast(src, base.dtype())?
        };
        b.op(Op::IndexAdd(0), &[base, &row, &src])
    })?;
    one(b.reshape(&y, data.shape())?)
}
