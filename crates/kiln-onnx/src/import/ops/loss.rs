//! The loss ops: `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss` (class weights,
//! an ignored class, and the three reductions), as gathers and reductions.

use super::{NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::{CmpOp, Dims, Op};
use kiln_kernels::DType;

pub(super) const OPS: &[OpDef] = &[
    def!(
        "NegativeLogLikelihoodLoss",
        |b, n| {
            let loss = nll(b, n, n.input(0)?)?;
            Ok(vec![loss])
        },
        ["reduction", "ignore_index"]
    ),
    def!(
        "SoftmaxCrossEntropyLoss",
        softmax_cross_entropy,
        ["reduction", "ignore_index"]
    ),
];

fn softmax_cross_entropy(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let scores = n.input(0)?;
    if scores.rank() < 2 {
        return Err(format!("scores of rank {}", scores.rank()));
    }
    let log_prob = b.op(Op::Softmax { dim: 1, log: true }, &[scores])?;
    let loss = nll(b, n, &log_prob)?;
    Ok(vec![loss, log_prob])
}

/// The negative log-likelihood of `log_prob` `[N, C, d…]` at the labels (input 1, `[N, d…]`),
/// weighted by input 2 (`[C]`) when given, reduced as the `reduction` attribute says.
fn nll(b: &mut Builder, n: &NodeIn, log_prob: &Value) -> R<Value> {
    let labels = n.input(1)?;
    let (x_shape, l_shape) = (log_prob.shape().to_vec(), labels.shape().to_vec());
    if x_shape.len() < 2
        || l_shape.len() + 1 != x_shape.len()
        || l_shape[0] != x_shape[0]
        || l_shape[1..] != x_shape[2..]
    {
        return Err(format!("input {x_shape:?} and labels {l_shape:?}"));
    }
    let reduction = n
        .attrs
        .string("reduction")?
        .unwrap_or_else(|| "mean".into());
    let ignore = n.attrs.int("ignore_index")?;
    let float = log_prob.dtype();
    let t = b.cast(labels, DType::I64)?;
    // Ignored labels read class 0 and are weighted 0.
    let (t, keep) = match ignore {
        Some(i) => {
            let ii = b.scalar(i as f64, DType::I64);
            let keep = b.binary(Op::Compare(CmpOp::Ne), &t, &ii)?;
            let zero = b.scalar(0.0, DType::I64);
            let safe = b.op(Op::Where, &[&keep, &t, &zero])?;
            (safe, Some(keep))
        }
        None => (t, None),
    };
    let mut index_shape = l_shape.clone();
    index_shape.insert(1, 1);
    let index = b.reshape(&t, &index_shape)?;
    let picked = b.op(Op::Gather(1), &[log_prob, &index])?;
    let picked = b.reshape(&picked, &l_shape)?;
    // Per element: its class weight (1 without weights), 0 where ignored.
    let mut weight = match n.opt(2) {
        Some(w) => {
            if w.shape() != [x_shape[1]] {
                return Err(format!(
                    "weights {:?} for {} classes",
                    w.shape(),
                    x_shape[1]
                ));
            }
            let count: usize = l_shape.iter().product();
            let flat = b.reshape(&t, &[count])?;
            let picked_w = b.op(Op::IndexSelect(0), &[w, &flat])?;
            Some(b.reshape(&picked_w, &l_shape)?)
        }
        None => None,
    };
    if let Some(keep) = &keep {
        let k = b.cast(keep, float)?;
        weight = Some(match weight {
            Some(w) => b.binary(Op::Mul, &w, &k)?,
            None => k,
        });
    }
    let loss = match &weight {
        Some(w) => b.binary(Op::Mul, &picked, w)?,
        None => picked,
    };
    let loss = b.unary(
        &loss,
        kiln_kernels::ops::UnaryOp::Affine {
            mul: -1.0,
            add: 0.0,
        },
    )?;
    let all: Dims = (0..loss.rank()).collect();
    match reduction.as_str() {
        "none" => Ok(loss),
        "sum" => b.op(
            Op::Sum {
                dims: all,
                keepdim: false,
            },
            &[&loss],
        ),
        "mean" => {
            let total = b.op(
                Op::Sum {
                    dims: all.clone(),
                    keepdim: false,
                },
                &[&loss],
            )?;
            let denominator = match &weight {
                Some(w) => b.op(
                    Op::Sum {
                        dims: all,
                        keepdim: false,
                    },
                    &[w],
                )?,
                None => b.op(
                    Op::Numel {
                        dims: all,
                        dtype: float,
                    },
                    &[&loss],
                )?,
            };
            b.binary(Op::Div, &total, &denominator)
        }
        r => Err(format!("reduction {r:?} (none, sum or mean)")),
    }
}
