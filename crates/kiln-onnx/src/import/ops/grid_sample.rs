//! `GridSample` over 2-D and 3-D inputs: nearest, linear and cubic sampling with zero,
//! border and reflection padding, as ONNX's reference computes it. The grid is data (a graph
//! input or computed), so the sampling positions are computed in the graph: per spatial dim
//! the denormalized coordinate, its taps and their weights; each combination of taps is one
//! gather from the flattened input, weighted and summed.

use super::{one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::{CmpOp, Op, UnaryOp};
use kiln_kernels::DType;

pub(super) const OPS: &[OpDef] = &[def!(
    "GridSample",
    grid_sample,
    ["align_corners", "mode", "padding_mode"]
)];

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, PartialEq)]
enum Padding {
    Zeros,
    Border,
    Reflection,
}

/// `x·mul + add`.
fn affine(b: &mut Builder, x: &Value, mul: f64, add: f64) -> R<Value> {
    b.unary(x, UnaryOp::Affine { mul, add })
}

fn cmp(b: &mut Builder, x: &Value, c: CmpOp, v: f64) -> R<Value> {
    let s = b.scalar(v, x.dtype());
    b.binary(Op::Compare(c), x, &s)
}

/// `x` reflected between `lo` and `hi` until inside (the reference's `_gs_reflect`).
fn reflect(b: &mut Builder, x: &Value, lo: f64, hi: f64) -> R<Value> {
    let range = hi - lo;
    if range <= 0.0 {
        return Ok(x.clone());
    }
    // One side: d past the border, n whole ranges, r the rest; even n → border ∓ r.
    let side = |b: &mut Builder, d: &Value, near: f64, far: f64, sign: f64| -> R<Value> {
        let q = affine(b, d, 1.0 / range, 0.0)?;
        let n = b.unary(&q, UnaryOp::Floor)?;
        let nr = affine(b, &n, range, 0.0)?;
        let r = b.binary(Op::Sub, d, &nr)?;
        let half = affine(b, &n, 0.5, 0.0)?;
        let half = b.unary(&half, UnaryOp::Floor)?;
        let twice = affine(b, &half, 2.0, 0.0)?;
        let odd = b.binary(Op::Sub, &n, &twice)?;
        let even = cmp(b, &odd, CmpOp::Eq, 0.0)?;
        let at_near = affine(b, &r, sign, near)?;
        let at_far = affine(b, &r, -sign, far)?;
        b.op(Op::Where, &[&even, &at_near, &at_far])
    };
    let below_d = affine(b, x, -1.0, lo)?;
    let below = side(b, &below_d, lo, hi, 1.0)?;
    let above_d = affine(b, x, 1.0, -hi)?;
    let above = side(b, &above_d, hi, lo, -1.0)?;
    let is_below = cmp(b, x, CmpOp::Lt, lo)?;
    let is_above = cmp(b, x, CmpOp::Gt, hi)?;
    let y = b.op(Op::Where, &[&is_above, &above, x])?;
    b.op(Op::Where, &[&is_below, &below, &y])
}

/// One tap along a dim: its clamped index (i64) and weight (zero for a zero-padded tap
/// outside the input).
fn tap(
    b: &mut Builder,
    t: &Value,
    weight: Value,
    len: usize,
    pad: Padding,
    (lo, hi): (f64, f64),
) -> R<(Value, Value)> {
    let last = len as f64 - 1.0;
    let clamp = UnaryOp::Clamp {
        min: Some(0.0),
        max: Some(last),
    };
    let (idx, weight) = match pad {
        Padding::Zeros => {
            let ge = cmp(b, t, CmpOp::Ge, 0.0)?;
            let le = cmp(b, t, CmpOp::Le, last)?;
            let inside = b.binary(Op::Mul, &ge, &le)?;
            let zero = b.scalar(0.0, weight.dtype());
            let w = b.op(Op::Where, &[&inside, &weight, &zero])?;
            (b.unary(t, clamp)?, w)
        }
        Padding::Border => (b.unary(t, clamp)?, weight),
        Padding::Reflection => {
            let r = reflect(b, t, lo, hi)?;
            let r = super::toward_zero(b, &r)?;
            (b.unary(&r, clamp)?, weight)
        }
    };
    Ok((b.cast(&idx, DType::I64)?, weight))
}

/// Keys' cubic weights (A = −0.75) of the taps at −1, 0, 1, 2 from the floor, for the
/// fraction `f`.
fn cubic_weights(b: &mut Builder, f: &Value) -> R<[Value; 4]> {
    let a = -0.75;
    // Near taps (|d| ≤ 1): (a+2)|d|³ − (a+3)|d|² + 1; far ones (1 < |d| < 2):
    // a|d|³ − 5a|d|² + 8a|d| − 4a.
    let poly = |b: &mut Builder, d: &Value, c: [f64; 4]| -> R<Value> {
        // ((c0·d + c1)·d + c2)·d + c3
        let mut acc = affine(b, d, c[0], c[1])?;
        acc = b.binary(Op::Mul, &acc, d)?;
        acc = affine(b, &acc, 1.0, c[2])?;
        acc = b.binary(Op::Mul, &acc, d)?;
        affine(b, &acc, 1.0, c[3])
    };
    let near = [a + 2.0, -(a + 3.0), 0.0, 1.0];
    let far = [a, -5.0 * a, 8.0 * a, -4.0 * a];
    let d0 = affine(b, f, 1.0, 1.0)?; // distance to the tap at −1
    let d1 = f.clone();
    let d2 = affine(b, f, -1.0, 1.0)?;
    let d3 = affine(b, f, -1.0, 2.0)?;
    Ok([
        poly(b, &d0, far)?,
        poly(b, &d1, near)?,
        poly(b, &d2, near)?,
        poly(b, &d3, far)?,
    ])
}

fn grid_sample(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, grid) = (n.input(0)?, n.input(1)?);
    let k = x.rank().saturating_sub(2);
    if !(k == 2 || k == 3) || grid.rank() != k + 2 || grid.shape()[k + 1] != k {
        return Err(format!(
            "input {:?} and grid {:?}; expected [N, C, H, W] with [N, H', W', 2] (or 3-D)",
            x.shape(),
            grid.shape()
        ));
    }
    if !x.dtype().is_float() || !grid.dtype().is_float() {
        return Err("input and grid must be floats".into());
    }
    let mode = match n.attrs.string("mode")?.as_deref().unwrap_or("linear") {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" => Mode::Linear,
        "cubic" | "bicubic" => Mode::Cubic,
        m => return Err(format!("mode={m:?}")),
    };
    let pad = match n
        .attrs
        .string("padding_mode")?
        .as_deref()
        .unwrap_or("zeros")
    {
        "zeros" => Padding::Zeros,
        "border" => Padding::Border,
        "reflection" => Padding::Reflection,
        p => return Err(format!("padding_mode={p:?}")),
    };
    let align = n.attrs.int_or("align_corners", 0)? != 0;
    let (batch, channels) = (x.shape()[0], x.shape()[1]);
    let dims: Vec<usize> = x.shape()[2..].to_vec();
    let out_dims: Vec<usize> = grid.shape()[1..k + 1].to_vec();
    let points: usize = out_dims.iter().product();
    let work = DType::F32;
    let g = b.cast(grid, work)?;
    // Per spatial dim: its taps as (index, weight), each [N, points].
    let mut per_dim: Vec<Vec<(Value, Value)>> = Vec::new();
    for (i, &len) in dims.iter().enumerate() {
        let comp = b.op(
            Op::Slice {
                dim: k + 1,
                start: k - 1 - i,
                len: 1,
                step: 1,
            },
            &[&g],
        )?;
        let comp = b.reshape(&comp, &[batch, points])?;
        let l = len as f64;
        let mut c = if align {
            affine(b, &comp, (l - 1.0) / 2.0, (l - 1.0) / 2.0)?
        } else {
            affine(b, &comp, l / 2.0, (l - 1.0) / 2.0)?
        };
        if mode == Mode::Nearest {
            c = b.unary(&c, UnaryOp::Round)?;
        }
        let (lo, hi) = if align {
            (0.0, l - 1.0)
        } else {
            (-0.5, l - 0.5)
        };
        let outside = {
            let below = cmp(b, &c, CmpOp::Lt, lo)?;
            let above = cmp(b, &c, CmpOp::Gt, hi)?;
            b.binary(Op::Add, &below, &above)?
        };
        match pad {
            Padding::Border => {
                let clamped = b.unary(
                    &c,
                    UnaryOp::Clamp {
                        min: Some(0.0),
                        max: Some(l - 1.0),
                    },
                )?;
                c = b.op(Op::Where, &[&outside, &clamped, &c])?;
            }
            Padding::Reflection => {
                let r = reflect(b, &c, lo, hi)?;
                c = b.op(Op::Where, &[&outside, &r, &c])?;
            }
            Padding::Zeros => {}
        }
        let taps = match mode {
            Mode::Nearest => {
                let t = super::toward_zero(b, &c)?;
                let unit = b.scalar(1.0, work);
                let w = b.op(Op::Expand([batch, points].into_iter().collect()), &[&unit])?;
                vec![tap(b, &t, w, len, pad, (lo, hi))?]
            }
            Mode::Linear | Mode::Cubic => {
                let x0 = b.unary(&c, UnaryOp::Floor)?;
                let f = b.binary(Op::Sub, &c, &x0)?;
                let (offsets, weights): (Vec<f64>, Vec<Value>) = if mode == Mode::Linear {
                    let w0 = affine(b, &f, -1.0, 1.0)?;
                    (vec![0.0, 1.0], vec![w0, f.clone()])
                } else {
                    (vec![-1.0, 0.0, 1.0, 2.0], cubic_weights(b, &f)?.to_vec())
                };
                let mut v = Vec::new();
                for (o, w) in offsets.into_iter().zip(weights) {
                    let t = affine(b, &x0, 1.0, o)?;
                    v.push(tap(b, &t, w, len, pad, (lo, hi))?);
                }
                v
            }
        };
        per_dim.push(taps);
    }
    // Every combination of one tap per dim: a gather from the flattened input.
    let plane: usize = dims.iter().product();
    let flat = b.reshape(x, &[batch, channels, plane])?;
    let mut total: Option<Value> = None;
    let combos: usize = per_dim.iter().map(Vec::len).product();
    for combo in 0..combos {
        let mut rest = combo;
        let mut index: Option<Value> = None;
        let mut weight: Option<Value> = None;
        let mut stride = plane;
        for (i, taps) in per_dim.iter().enumerate() {
            let (idx, w) = &taps[rest % taps.len()];
            rest /= taps.len();
            stride /= dims[i];
            let term = b.scale(idx, stride as f64)?;
            index = Some(match index {
                None => term,
                Some(s) => b.binary(Op::Add, &s, &term)?,
            });
            weight = Some(match weight {
                None => w.clone(),
                Some(s) => b.binary(Op::Mul, &s, w)?,
            });
        }
        let (index, weight) = (index.expect("k ≥ 2"), weight.expect("k ≥ 2"));
        let index = b.reshape(&index, &[batch, 1, points])?;
        let index = b.op(
            Op::Expand([batch, channels, points].into_iter().collect()),
            &[&index],
        )?;
        let picked = b.op(Op::Gather(2), &[&flat, &index])?;
        let picked = b.cast(&picked, work)?;
        let weight = b.reshape(&weight, &[batch, 1, points])?;
        let part = b.binary(Op::Mul, &picked, &weight)?;
        total = Some(match total {
            None => part,
            Some(t) => b.binary(Op::Add, &t, &part)?,
        });
    }
    let y = total.expect("at least one tap");
    let mut shape = vec![batch, channels];
    shape.extend_from_slice(&out_dims);
    let y = b.reshape(&y, &shape)?;
    one(b.cast(&y, x.dtype())?)
}
