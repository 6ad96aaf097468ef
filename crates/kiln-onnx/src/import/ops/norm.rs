//! Normalizations beyond the batch, instance and layer norms of `nn`: group norm, mean-variance
//! normalization, Lp normalization and local response normalization, each built from Kiln
//! ops as the ONNX function body (or reference) computes it.

use super::nn::moments;
use super::{axis, one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::{CmpOp, Dims, Op, UnaryOp};
use kiln_kernels::DType;

pub(super) const OPS: &[OpDef] = &[
    def!(
        "GroupNormalization",
        group_norm,
        ["epsilon", "num_groups", "stash_type"]
    ),
    def!("MeanVarianceNormalization", mean_variance_norm, ["axes"]),
    def!("LpNormalization", lp_norm, ["axis", "p"]),
    def!("LRN", lrn, ["alpha", "beta", "bias", "size"]),
];

/// The dtype statistics are computed in: f32 for halves (the ops' `stash_type` default).
fn stash(d: DType) -> DType {
    if d == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

fn group_norm(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, scale, bias) = (n.input(0)?, n.input(1)?, n.input(2)?);
    if x.rank() < 2 || !x.dtype().is_float() {
        return Err(format!(
            "input {:?} {}; expected [N, C, …] floats",
            x.shape(),
            x.dtype()
        ));
    }
    if n.attrs.int_or("stash_type", 1)? != 1 {
        return Err("stash_type other than 1 (float) is not supported".into());
    }
    let groups = match n.attrs.int("num_groups")? {
        Some(g) if g > 0 => g as usize,
        _ => return Err("num_groups must be given and positive".into()),
    };
    let (batch, channels) = (x.shape()[0], x.shape()[1]);
    if channels % groups != 0 {
        return Err(format!(
            "{channels} channels do not split into {groups} groups"
        ));
    }
    let eps = n.attrs.float_or("epsilon", 1e-5)? as f64;
    let dtype = x.dtype();
    let xf = b.cast(x, stash(dtype))?;
    let rest: usize = x.shape()[1..].iter().product::<usize>() / groups;
    let g = b.reshape(&xf, &[batch, groups, rest])?;
    let m = moments(b, &g, [2].into_iter().collect(), eps)?;
    let y = b.binary(Op::Mul, &m.centered, &m.inv_std)?;
    let y = b.reshape(&y, x.shape())?;
    let y = b.cast(&y, dtype)?;
    // Opset 21 scales each channel; opset 18 scaled each group (its values repeated over the
    // group's channels).
    let per_channel = |b: &mut Builder, v: &Value| -> R<Value> {
        let len: usize = v.shape().iter().product();
        let v = if len == channels {
            b.reshape(v, &[channels])?
        } else if len == groups && n.opset < 21 {
            let v = b.reshape(v, &[groups, 1])?;
            let v = b.op(
                Op::Expand([groups, channels / groups].into_iter().collect()),
                &[&v],
            )?;
            b.reshape(&v, &[channels])?
        } else {
            return Err(format!(
                "scale or bias of shape {:?} for {channels} channels",
                v.shape()
            ));
        };
        let mut shape = vec![channels];
        shape.resize(x.rank() - 1, 1);
        let v = b.reshape(&v, &shape)?;
        b.cast(&v, dtype)
    };
    let s = per_channel(b, scale)?;
    let t = per_channel(b, bias)?;
    let y = b.binary(Op::Mul, &y, &s)?;
    one(b.binary(Op::Add, &y, &t)?)
}

/// Sorted, deduplicated dims from ONNX axes.
fn dims_of(axes: &[i64], rank: usize) -> R<Dims> {
    let mut d: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<R<_>>()?;
    d.sort_unstable();
    d.dedup();
    Ok(d.into_iter().collect())
}

/// The mean of `x` over `dims`, kept as size 1.
fn mean(b: &mut Builder, x: &Value, dims: &Dims) -> R<Value> {
    let count: usize = dims.iter().map(|&d| x.shape()[d]).product();
    let s = b.op(
        Op::Sum {
            dims: dims.clone(),
            keepdim: true,
        },
        &[x],
    )?;
    b.scale(&s, 1.0 / count.max(1) as f64)
}

/// `(x − E[x]) / (sqrt(E[x²] − E[x]²) + 1e-9)` over `axes` (default N, H, W), the function
/// body's formula.
fn mean_variance_norm(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if !x.dtype().is_float() {
        return Err(format!("input is {}; expected floats", x.dtype()));
    }
    let axes = n.attrs.ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]);
    let dims = dims_of(&axes, x.rank())?;
    let m = mean(b, x, &dims)?;
    let sq = b.binary(Op::Mul, x, x)?;
    let msq = mean(b, &sq, &dims)?;
    let m2 = b.binary(Op::Mul, &m, &m)?;
    let var = b.binary(Op::Sub, &msq, &m2)?;
    let std = b.unary(&var, UnaryOp::PowScalar(0.5))?;
    let eps = 1e-9f32 as f64;
    let std = b.unary(&std, UnaryOp::Affine { mul: 1.0, add: eps })?;
    let c = b.binary(Op::Sub, x, &m)?;
    one(b.binary(Op::Div, &c, &std)?)
}

/// `x / ‖x‖_p` along `axis` (p is 1 or 2), 0 where the norm is 0.
fn lp_norm(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if !x.dtype().is_float() {
        return Err(format!("input is {}; expected floats", x.dtype()));
    }
    let dim = axis(n.attrs.int_or("axis", -1)?, x.rank())?;
    let p = n.attrs.int_or("p", 2)?;
    let dims: Dims = [dim].into_iter().collect();
    let sum = |b: &mut Builder, v: &Value| {
        b.op(
            Op::Sum {
                dims: dims.clone(),
                keepdim: true,
            },
            &[v],
        )
    };
    let norm = match p {
        1 => {
            let a = b.unary(x, UnaryOp::Abs)?;
            sum(b, &a)?
        }
        2 => {
            let sq = b.binary(Op::Mul, x, x)?;
            let s = sum(b, &sq)?;
            b.unary(&s, UnaryOp::PowScalar(0.5))?
        }
        p => return Err(format!("p={p} (expected 1 or 2)")),
    };
    let zero = b.scalar(0.0, x.dtype());
    let is_zero = b.binary(Op::Compare(CmpOp::Eq), &norm, &zero)?;
    let y = b.binary(Op::Div, x, &norm)?;
    one(b.op(Op::Where, &[&is_zero, &zero, &y])?)
}

/// `x / (bias + alpha/size · Σ x²)^beta`, the sum over a window of `size` channels around each
/// (zero-padded at the ends).
fn lrn(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if x.rank() < 3 || !x.dtype().is_float() {
        return Err(format!(
            "input {:?} {}; expected [N, C, …] floats",
            x.shape(),
            x.dtype()
        ));
    }
    let size = match n.attrs.int("size")? {
        Some(s) if s > 0 => s as usize,
        _ => return Err("size must be given and positive".into()),
    };
    let alpha = n.attrs.float_or("alpha", 1e-4)? as f64;
    let beta = n.attrs.float_or("beta", 0.75)? as f64;
    let bias = n.attrs.float_or("bias", 1.0)? as f64;
    let channels = x.shape()[1];
    let (before, after) = ((size - 1) / 2, size / 2);
    let sq = b.binary(Op::Mul, x, x)?;
    let padded = super::pad_dim(b, &sq, 1, before, after, 0.0)?;
    let mut acc: Option<Value> = None;
    for k in 0..size {
        let part = b.op(
            Op::Slice {
                dim: 1,
                start: k,
                len: channels,
                step: 1,
            },
            &[&padded],
        )?;
        acc = Some(match acc {
            None => part,
            Some(a) => b.binary(Op::Add, &a, &part)?,
        });
    }
    let sum = acc.expect("size ≥ 1");
    let d = b.unary(
        &sum,
        UnaryOp::Affine {
            mul: alpha / size as f64,
            add: bias,
        },
    )?;
    let d = b.unary(&d, UnaryOp::PowScalar(-beta))?;
    one(b.binary(Op::Mul, x, &d)?)
}
