//! Ops that rearrange or scan along a dim, built from Kiln's layout ops: cumulative sums and
//! products, blocks moved between space and depth, centre crops and pads, one-hot and
//! identity-like tensors, and `Hardmax`.

use super::sequence::take;
use super::{axis, one, pad_dim, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::{CmpOp, Op};
use kiln_kernels::storage::CpuStorage;
use kiln_kernels::{DType, OwnedOperand};

pub(super) const OPS: &[OpDef] = &[
    def!(
        "CumSum",
        |b, n| cumulative(b, n, Op::Add),
        ["exclusive", "reverse"]
    ),
    def!(
        "CumProd",
        |b, n| cumulative(b, n, Op::Mul),
        ["exclusive", "reverse"]
    ),
    def!(
        "SpaceToDepth",
        |b, n| space_depth(b, n, true),
        ["blocksize", "mode"]
    ),
    def!(
        "DepthToSpace",
        |b, n| space_depth(b, n, false),
        ["blocksize", "mode"]
    ),
    def!("CenterCropPad", center_crop_pad, ["axes"]),
    def!("OneHot", one_hot, ["axis"]),
    def!("EyeLike", eye_like, ["dtype", "k"]),
    def!("Hardmax", hardmax, ["axis"]),
    def!("AffineGrid", affine_grid, ["align_corners"]),
];

/// `x` moved `k` places along `dim` (towards the end, or the start when `back`), the vacated
/// entries `fill`.
fn shift(b: &mut Builder, x: &Value, dim: usize, k: usize, back: bool, fill: f64) -> R<Value> {
    let n = x.shape()[dim];
    let k = k.min(n);
    if back {
        let kept = take(b, x, dim, k, n - k, 1)?;
        pad_dim(b, &kept, dim, 0, k, fill)
    } else {
        let kept = take(b, x, dim, 0, n - k, 1)?;
        pad_dim(b, &kept, dim, k, 0, fill)
    }
}

/// A running sum (or product) along the axis, by doubling steps: after step `j` each entry
/// holds the combination of the `2^j` entries ending at it (log₂ n ops, exact for integers).
fn cumulative(b: &mut Builder, n: &NodeIn, op: Op) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let a = n
        .ints(1)?
        .and_then(|v| v.first().copied())
        .ok_or("the axis input is missing")?;
    let dim = axis(a, x.rank())?;
    let exclusive = n.attrs.int_or("exclusive", 0)? != 0;
    let back = n.attrs.int_or("reverse", 0)? != 0;
    let identity = if op == Op::Add { 0.0 } else { 1.0 };
    let len = x.shape()[dim];
    let mut y = x.clone();
    let mut k = 1;
    while k < len {
        let s = shift(b, &y, dim, k, back, identity)?;
        y = b.binary(op.clone(), &y, &s)?;
        k *= 2;
    }
    if exclusive && len > 0 {
        y = shift(b, &y, dim, 1, back, identity)?;
    }
    one(y)
}

fn space_depth(b: &mut Builder, n: &NodeIn, to_depth: bool) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if x.rank() != 4 {
        return Err(format!(
            "input of shape {:?}; expected [N, C, H, W]",
            x.shape()
        ));
    }
    let bs = match n.attrs.int("blocksize")? {
        Some(v) if v > 0 => v as usize,
        _ => return Err("blocksize must be given and positive".into()),
    };
    let mode = n.attrs.string("mode")?.unwrap_or_else(|| "DCR".into());
    let crd = match mode.as_str() {
        "DCR" => false,
        "CRD" => true,
        m => return Err(format!("mode={m:?} (expected DCR or CRD)")),
    };
    let [nb, c, h, w] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
    let y = if to_depth {
        if h % bs != 0 || w % bs != 0 {
            return Err(format!(
                "H {h} and W {w} are not multiples of blocksize {bs}"
            ));
        }
        let t = b.reshape(x, &[nb, c, h / bs, bs, w / bs, bs])?;
        let perm = if crd {
            [0, 1, 3, 5, 2, 4]
        } else {
            [0, 3, 5, 1, 2, 4]
        };
        let t = b.permute(&t, &perm)?;
        b.reshape(&t, &[nb, c * bs * bs, h / bs, w / bs])?
    } else {
        if c % (bs * bs) != 0 {
            return Err(format!("C {c} is not a multiple of blocksize² {}", bs * bs));
        }
        let d = c / (bs * bs);
        let (t, perm) = if crd {
            (b.reshape(x, &[nb, d, bs, bs, h, w])?, [0, 1, 4, 2, 5, 3])
        } else {
            (b.reshape(x, &[nb, bs, bs, d, h, w])?, [0, 3, 4, 1, 5, 2])
        };
        let t = b.permute(&t, &perm)?;
        b.reshape(&t, &[nb, d, h * bs, w * bs])?
    };
    one(y)
}

/// Crops each listed axis to the target size around its centre, or pads it with zeros
/// around it (the extra entry of an odd difference goes to the end).
fn center_crop_pad(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let sizes = n.ints(1)?.ok_or("the shape input is missing")?;
    let axes: Vec<usize> = match n.attrs.ints("axes")? {
        Some(a) => a.iter().map(|&a| axis(a, x.rank())).collect::<R<_>>()?,
        None => (0..x.rank()).collect(),
    };
    if axes.len() != sizes.len() {
        return Err(format!("{} sizes for {} axes", sizes.len(), axes.len()));
    }
    let mut y = x.clone();
    for (&dim, &size) in axes.iter().zip(&sizes) {
        let size = usize::try_from(size).map_err(|_| format!("negative size {size}"))?;
        let have = y.shape()[dim];
        if size < have {
            y = take(b, &y, dim, (have - size) / 2, size, 1)?;
        } else if size > have {
            let extra = size - have;
            y = pad_dim(b, &y, dim, extra / 2, extra - extra / 2, 0.0)?;
        }
    }
    one(y)
}

/// The positions `0..len` along `dim` of a rank-`rank` value (1 elsewhere), as i64.
pub(super) fn iota(b: &Builder, len: usize, dim: usize, rank: usize) -> Value {
    let mut shape = vec![1; rank];
    shape[dim] = len;
    b.constant(OwnedOperand::dense(
        CpuStorage::I64((0..len as i64).collect()),
        &shape,
    ))
}

/// `values[1]` where the position along the new axis equals the index (negative indices
/// count from the end), `values[0]` elsewhere.
fn one_hot(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (idx, values) = (n.input(0)?, n.input(2)?);
    let depth = match n.ints(1)?.as_deref() {
        Some([d]) if *d > 0 => *d as usize,
        d => return Err(format!("depth {d:?} (expected one positive value)")),
    };
    if values.shape().iter().product::<usize>() != 2 {
        return Err(format!(
            "values of shape {:?}; expected two",
            values.shape()
        ));
    }
    let rank = idx.rank() + 1;
    let a = n.attrs.int_or("axis", -1)?;
    let dim = axis(a, rank)?;
    // Indices as i64 in [0, depth): negative ones wrap once.
    let i = b.cast(idx, DType::I64)?;
    let zero = b.scalar(0.0, DType::I64);
    let neg = b.binary(Op::Compare(CmpOp::Lt), &i, &zero)?;
    let d = b.scalar(depth as f64, DType::I64);
    let wrapped = b.binary(Op::Add, &i, &d)?;
    let i = b.op(Op::Where, &[&neg, &wrapped, &i])?;
    let mut shape = idx.shape().to_vec();
    shape.insert(dim, 1);
    let i = b.reshape(&i, &shape)?;
    let hot = b.binary(Op::Compare(CmpOp::Eq), &i, &iota(b, depth, dim, rank))?;
    let flat = b.reshape(values, &[2])?;
    let off = take(b, &flat, 0, 0, 1, 1)?;
    let on = take(b, &flat, 0, 1, 1, 1)?;
    let (off, on) = (b.reshape(&off, &[])?, b.reshape(&on, &[])?);
    one(b.op(Op::Where, &[&hot, &on, &off])?)
}

/// Ones on the `k`-th diagonal of a matrix shaped like the input.
fn eye_like(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if x.rank() != 2 {
        return Err(format!("input of shape {:?}; expected a matrix", x.shape()));
    }
    let dtype = match n.attrs.int("dtype")? {
        Some(t) => {
            crate::import::tensor::kiln_dtype(t as i32, "dtype").map_err(|e| e.to_string())?
        }
        None => x.dtype(),
    };
    let k = n.attrs.int_or("k", 0)?;
    let (rows, cols) = (x.shape()[0], x.shape()[1]);
    let v = (0..rows * cols).map(|p| ((p % cols) as i64 - (p / cols) as i64 == k) as u8 as f64);
    one(b.constant(OwnedOperand::dense(
        CpuStorage::from_f64s(dtype, v),
        &[rows, cols],
    )))
}

/// 1 at the first maximum along the axis, 0 elsewhere (opset 13; earlier opsets see the input
/// as a matrix split at the axis).
fn hardmax(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let rank = x.rank();
    let (m, dim) = if n.opset >= 13 {
        (x.clone(), axis(n.attrs.int_or("axis", -1)?, rank)?)
    } else {
        let a = axis(n.attrs.int_or("axis", 1)?, rank.max(1))?;
        let rows: usize = x.shape()[..a].iter().product();
        let cols: usize = x.shape()[a..].iter().product();
        (b.reshape(x, &[rows, cols])?, 1)
    };
    let len = m.shape()[dim];
    let arg = b.op(Op::ArgMax { dim, keepdim: true }, &[&m])?;
    let hot = b.binary(Op::Compare(CmpOp::Eq), &arg, &iota(b, len, dim, m.rank()))?;
    let y = b.cast(&hot, x.dtype())?;
    one(b.reshape(&y, x.shape())?)
}

/// `x` reversed along `dim`.
pub(super) fn flip(b: &mut Builder, x: &Value, dim: usize) -> R<Value> {
    let len = x.shape()[dim];
    let idx = b.constant(OwnedOperand::dense(
        CpuStorage::I64((0..len as i64).rev().collect()),
        &[len],
    ));
    b.op(Op::IndexSelect(dim), &[x, &idx])
}

/// `AffineGrid`: the normalized sampling grid of `theta` ([N, 2, 3] or [N, 3, 4]) over an
/// image of `size`: each position's (x, y[, z], 1) times θᵀ, x running along the last dim.
fn affine_grid(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let theta = n.input(0)?;
    let size = n.ints(1)?.ok_or("size is missing")?;
    let spatial: Vec<usize> = size
        .iter()
        .skip(2)
        .map(|&s| usize::try_from(s).map_err(|_| format!("size {size:?}")))
        .collect::<R<_>>()?;
    let d = spatial.len();
    if !(d == 2 || d == 3) || theta.shape() != [size[0] as usize, d, d + 1] {
        return Err(format!(
            "theta {:?} with size {size:?}; expected [N, 2, 3] and 2-D or [N, 3, 4] and 3-D",
            theta.shape()
        ));
    }
    let align = n.attrs.int_or("align_corners", 0)? != 0;
    let coord = |i: usize, len: usize| -> f64 {
        if align {
            if len == 1 {
                -1.0
            } else {
                -1.0 + 2.0 * i as f64 / (len - 1) as f64
            }
        } else {
            (2 * i + 1) as f64 / len as f64 - 1.0
        }
    };
    let points: usize = spatial.iter().product();
    let mut base = Vec::with_capacity(points * (d + 1));
    for p in 0..points {
        // Row-major position → per-dim index; the homogeneous point lists the last dim first.
        let mut rest = p;
        let mut idx = vec![0; d];
        for k in (0..d).rev() {
            idx[k] = rest % spatial[k];
            rest /= spatial[k];
        }
        for k in (0..d).rev() {
            base.push(coord(idx[k], spatial[k]));
        }
        base.push(1.0);
    }
    let base = b.constant(OwnedOperand::dense(
        CpuStorage::from_f64s(theta.dtype(), base.into_iter()),
        &[1, points, d + 1],
    ));
    let t = b.permute(theta, &[0, 2, 1])?;
    let grid = b.op(Op::Matmul, &[&base, &t])?;
    let mut shape = vec![size[0] as usize];
    shape.extend_from_slice(&spatial);
    shape.push(d);
    one(b.reshape(&grid, &shape)?)
}
