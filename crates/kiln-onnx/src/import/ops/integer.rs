//! Division, remainders and bit operations: `Div` (floats divide, integers truncate toward
//! zero), `Mod` (both of its sign rules, for integers and floats), `BitShift` and the
//! `Bitwise*` ops, on Kiln's integer ops ([`Op::IntBinary`]).

use super::elementwise::{binary, same_dtype};
use super::{one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::{CmpOp, IntOp, Op, UnaryOp};

pub(super) const OPS: &[OpDef] = &[
    def!("Div", div),
    def!("Mod", modulo, ["fmod"]),
    def!("BitShift", bit_shift, ["direction"]),
    def!("BitwiseAnd", |b, n| int_binary(b, n, IntOp::And)),
    def!("BitwiseOr", |b, n| int_binary(b, n, IntOp::Or)),
    def!("BitwiseXor", |b, n| int_binary(b, n, IntOp::Xor)),
    def!("BitwiseNot", bitwise_not),
];

fn int_binary(b: &mut Builder, n: &NodeIn, op: IntOp) -> R<Vec<Value>> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    same_dtype(x, y)?;
    one(b.binary(Op::IntBinary(op), x, y)?)
}

fn div(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    if n.input(0)?.dtype().is_float() {
        return binary(b, n, Op::Div);
    }
    int_binary(b, n, IntOp::Div)
}

fn modulo(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let fmod = n.attrs.int_or("fmod", 0)? != 0;
    let (x, y) = (n.input(0)?, n.input(1)?);
    if !x.dtype().is_float() {
        return int_binary(b, n, if fmod { IntOp::Rem } else { IntOp::Mod });
    }
    same_dtype(x, y)?;
    // x − y·q with q = x / y rounded toward zero (fmod) or down (Python's %), computed in
    // f64 so the quotient's rounding cannot move q across an integer.
    let d = x.dtype();
    let xf = b.cast(x, kiln_kernels::DType::F64)?;
    let yf = b.cast(y, kiln_kernels::DType::F64)?;
    let q = b.binary(Op::Div, &xf, &yf)?;
    let q = if fmod {
        super::toward_zero(b, &q)?
    } else {
        b.unary(&q, UnaryOp::Floor)?
    };
    let yq = b.binary(Op::Mul, &yf, &q)?;
    let r = b.binary(Op::Sub, &xf, &yq)?;
    // A finite x over an infinite y (where y·q is ∞·0): x itself, or for Python's rule y
    // when their signs differ, as NumPy's fmod and mod give.
    let inf = b.scalar(f64::INFINITY, xf.dtype());
    let ay = b.unary(&yf, UnaryOp::Abs)?;
    let ax = b.unary(&xf, UnaryOp::Abs)?;
    let y_inf = b.binary(Op::Compare(CmpOp::Eq), &ay, &inf)?;
    let x_fin = b.binary(Op::Compare(CmpOp::Lt), &ax, &inf)?;
    let special = b.binary(Op::Mul, &y_inf, &x_fin)?;
    let kept = if fmod {
        xf.clone()
    } else {
        let zero = b.scalar(0.0, xf.dtype());
        let xy = b.binary(Op::Mul, &xf, &yf)?;
        let differ = b.binary(Op::Compare(CmpOp::Lt), &xy, &zero)?;
        b.op(Op::Where, &[&differ, &yf, &xf])?
    };
    let r = b.op(Op::Where, &[&special, &kept, &r])?;
    one(b.cast(&r, d)?)
}

fn bit_shift(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let op = match n.attrs.string("direction")?.as_deref() {
        Some("LEFT") => IntOp::Shl,
        Some("RIGHT") => IntOp::Shr,
        d => return Err(format!("direction {d:?} (expected LEFT or RIGHT)")),
    };
    int_binary(b, n, op)
}

/// `x ^ !0`: every bit flipped.
fn bitwise_not(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let d = x.dtype();
    if !d.is_int() {
        return Err(format!("input is {d}; expected integers"));
    }
    // All ones: −1 for signed types, the maximum (f64 saturates to it) for unsigned ones.
    let ones = b.scalar(if d.is_unsigned() { f64::MAX } else { -1.0 }, d);
    one(b.binary(Op::IntBinary(IntOp::Xor), x, &ones)?)
}
