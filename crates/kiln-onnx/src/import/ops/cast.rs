//! `Cast` and `CastLike`, including to the narrow types Kiln holds widened (see
//! [`crate::import::narrow`]): a float8 or float4 target rounds to the format (saturating
//! as `saturate` says), E8M0 by `round_mode`, and a 4- or 2-bit integer target truncates
//! toward zero and gives 0 outside the type's range, as ONNX's reference casts do.

use super::{one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use crate::import::narrow::Narrow;
use crate::import::tensor::kiln_dtype;
use kiln_kernels::minifloat::{Minifloat, PowerRounding};
use kiln_kernels::ops::{CmpOp, Op, UnaryOp};
use kiln_kernels::DType;

pub(super) const OPS: &[OpDef] = &[
    def!("Cast", cast, ["to", "saturate", "round_mode"]),
    def!("CastLike", cast_like, ["saturate", "round_mode"]),
];

fn cast(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let to = n.attrs.int("to")?.ok_or("to is required")?;
    one(cast_to(b, n, n.input(0)?, to as i32)?)
}

fn cast_like(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let like = n.input(1)?;
    match n.narrow(1) {
        Some(_) => {
            let to = n.declared[1].expect("a declared narrow type");
            one(cast_to(b, n, n.input(0)?, to)?)
        }
        None => one(b.cast(n.input(0)?, like.dtype())?),
    }
}

/// `x` as ONNX type `to`.
fn cast_to(b: &mut Builder, n: &NodeIn, x: &Value, to: i32) -> R<Value> {
    let saturate = n.attrs.int_or("saturate", 1)? != 0;
    match Narrow::of(to) {
        None => {
            let dtype = kiln_dtype(to, "to").map_err(|e| e.to_string())?;
            b.cast(x, dtype)
        }
        Some(Narrow::Float(format)) => {
            let format = match format {
                Minifloat::E8M0(_) => Minifloat::E8M0(
                    match n.attrs.string("round_mode")?.as_deref().unwrap_or("up") {
                        "up" => PowerRounding::Up,
                        "down" => PowerRounding::Down,
                        "nearest" => PowerRounding::Nearest,
                        m => {
                            return Err(format!("round_mode={m:?} (expected up, down or nearest)"))
                        }
                    },
                ),
                f => f,
            };
            // Rounded from the source's own precision (f64 stays f64 until the end).
            let work = if x.dtype() == DType::F64 {
                DType::F64
            } else {
                DType::F32
            };
            let xf = b.cast(x, work)?;
            let y = b.unary(&xf, UnaryOp::Minifloat { format, saturate })?;
            b.cast(&y, DType::F32)
        }
        Some(narrow) => {
            let (lo, hi) = narrow.int_range().expect("an integer type");
            let xf = b.cast(x, DType::F64)?;
            let t = super::toward_zero(b, &xf)?;
            let zero = b.scalar(0.0, DType::F64);
            let (l, h) = (b.scalar(lo, DType::F64), b.scalar(hi, DType::F64));
            let ok_lo = b.binary(Op::Compare(CmpOp::Ge), &t, &l)?;
            let ok_hi = b.binary(Op::Compare(CmpOp::Le), &t, &h)?;
            let ok = b.binary(Op::Mul, &ok_lo, &ok_hi)?;
            let y = b.op(Op::Where, &[&ok, &t, &zero])?;
            b.cast(&y, narrow.holder())
        }
    }
}
