//! Reductions over axes (given as an attribute before opset 18, as an input from it on) and
//! `ArgMax`/`ArgMin`.

use super::{axis, one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::{Dims, Op, UnaryOp};

const AXES: &[&str] = &["axes", "keepdims", "noop_with_empty_axes"];

pub(super) const OPS: &[OpDef] = &[
    def!("ReduceSum", |b, n| reduce(b, n, Kind::Sum), AXES),
    def!("ReduceMean", |b, n| reduce(b, n, Kind::Mean), AXES),
    def!("ReduceMax", |b, n| reduce(b, n, Kind::Max), AXES),
    def!("ReduceMin", |b, n| reduce(b, n, Kind::Min), AXES),
    def!("ReduceProd", |b, n| reduce(b, n, Kind::Prod), AXES),
    def!("ReduceL1", |b, n| reduce(b, n, Kind::L1), AXES),
    def!("ReduceL2", |b, n| reduce(b, n, Kind::L2), AXES),
    def!(
        "ReduceSumSquare",
        |b, n| reduce(b, n, Kind::SumSquare),
        AXES
    ),
    def!("ReduceLogSum", |b, n| reduce(b, n, Kind::LogSum), AXES),
    def!(
        "ReduceLogSumExp",
        |b, n| reduce(b, n, Kind::LogSumExp),
        AXES
    ),
    def!(
        "ArgMax",
        |b, n| arg(b, n, true),
        ["axis", "keepdims", "select_last_index"]
    ),
    def!(
        "ArgMin",
        |b, n| arg(b, n, false),
        ["axis", "keepdims", "select_last_index"]
    ),
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSum,
    LogSumExp,
}

fn reduce(b: &mut Builder, n: &NodeIn, kind: Kind) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let keepdim = n.attrs.int_or("keepdims", 1)? != 0;
    let axes = match (n.attrs.ints("axes")?, n.ints(1)?) {
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => return Err("axes given both as an attribute and an input".into()),
    };
    if axes.is_empty() && n.attrs.int_or("noop_with_empty_axes", 0)? != 0 {
        return one(x.clone());
    }
    let mut dims: Vec<usize> = if axes.is_empty() {
        (0..x.rank()).collect()
    } else {
        axes.iter().map(|&a| axis(a, x.rank())).collect::<R<_>>()?
    };
    dims.sort_unstable();
    dims.dedup();
    let dims: Dims = dims.into_iter().collect();
    if dims.iter().any(|&d| x.shape()[d] == 0) {
        return one(empty_reduction(b, x, &dims, keepdim, kind)?);
    }
    let sum = |b: &mut Builder, v: &Value| {
        b.op(
            Op::Sum {
                dims: dims.clone(),
                keepdim,
            },
            &[v],
        )
    };
    let y = match kind {
        Kind::Sum => sum(b, x)?,
        Kind::Mean => {
            // Divided by the count read when the graph runs, so a reduction over the batch
            // stays right at every batch size.
            let s = sum(b, x)?;
            let count = b.op(
                Op::Numel {
                    dims: dims.clone(),
                    dtype: x.dtype(),
                },
                &[x],
            )?;
            b.binary(Op::Div, &s, &count)?
        }
        Kind::Max => b.op(
            Op::Max {
                dims: dims.clone(),
                keepdim,
            },
            &[x],
        )?,
        Kind::Min => b.op(
            Op::Min {
                dims: dims.clone(),
                keepdim,
            },
            &[x],
        )?,
        Kind::Prod => b.op(
            Op::Prod {
                dims: dims.clone(),
                keepdim,
            },
            &[x],
        )?,
        Kind::L1 => {
            let a = b.unary(x, UnaryOp::Abs)?;
            sum(b, &a)?
        }
        Kind::SumSquare | Kind::L2 => {
            let sq = b.binary(Op::Mul, x, x)?;
            let s = sum(b, &sq)?;
            if kind == Kind::L2 {
                b.unary(&s, UnaryOp::PowScalar(0.5))?
            } else {
                s
            }
        }
        Kind::LogSum => {
            let s = sum(b, x)?;
            b.unary(&s, UnaryOp::Log)?
        }
        Kind::LogSumExp => {
            // log Σ exp(x − m) + m with m the max, so large inputs do not overflow.
            let m = b.op(
                Op::Max {
                    dims: dims.clone(),
                    keepdim: true,
                },
                &[x],
            )?;
            let shifted = b.binary(Op::Sub, x, &m)?;
            let e = b.unary(&shifted, UnaryOp::Exp)?;
            let s = b.op(
                Op::Sum {
                    dims: dims.clone(),
                    keepdim: true,
                },
                &[&e],
            )?;
            let l = b.unary(&s, UnaryOp::Log)?;
            let y = b.binary(Op::Add, &l, &m)?;
            if keepdim {
                y
            } else {
                let shape: Vec<usize> = (0..x.rank())
                    .filter(|d| !dims.contains(d))
                    .map(|d| x.shape()[d])
                    .collect();
                b.reshape(&y, &shape)?
            }
        }
    };
    one(y)
}

fn arg(b: &mut Builder, n: &NodeIn, max: bool) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let dim = axis(n.attrs.int_or("axis", 0)?, x.rank())?;
    let keepdim = n.attrs.int_or("keepdims", 1)? != 0;
    let op = if max {
        Op::ArgMax { dim, keepdim }
    } else {
        Op::ArgMin { dim, keepdim }
    };
    if n.attrs.int_or("select_last_index", 0)? == 0 {
        return one(b.op(op, &[x])?);
    }
    // The last occurrence: the first one of the reversed input, counted from the end.
    let reversed = super::rearrange::flip(b, x, dim)?;
    let i = b.op(op, &[&reversed])?;
    let last = x.shape()[dim] as f64 - 1.0;
    one(b.unary(
        &i,
        UnaryOp::Affine {
            mul: -1.0,
            add: last,
        },
    )?)
}

/// A reduction over an empty dim: its identity (0 for sums, 1 for a product, −∞ for a max,
/// +∞ for a min, NaN for a mean), as ONNX defines it, in the reduced shape.
fn empty_reduction(b: &mut Builder, x: &Value, dims: &Dims, keepdim: bool, kind: Kind) -> R<Value> {
    let value = match (kind, x.dtype()) {
        // Bools: the max of nothing is false, the min true.
        (Kind::Max, kiln_kernels::DType::Bool) => 0.0,
        (Kind::Min, kiln_kernels::DType::Bool) => 1.0,
        (Kind::Sum | Kind::L1 | Kind::L2 | Kind::SumSquare, _) => 0.0,
        (Kind::Prod, _) => 1.0,
        (Kind::Max | Kind::LogSum | Kind::LogSumExp, _) => f64::NEG_INFINITY,
        (Kind::Min, _) => f64::INFINITY,
        (Kind::Mean, _) => f64::NAN,
    };
    let shape: Vec<usize> = (0..x.rank())
        .filter_map(|d| match (dims.contains(&d), keepdim) {
            (false, _) => Some(x.shape()[d]),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    let fill = b.scalar(value, x.dtype());
    b.op(Op::Expand(shape.into_iter().collect()), &[&fill])
}
