//! Quantization ops: `QuantizeLinear` and `DequantizeLinear` (per tensor, per axis and per
//! block) — the QDQ form onnxruntime's `quantize_static` writes — `DynamicQuantizeLinear`,
//! and the integer operator forms `MatMulInteger`, `QLinearMatMul`, `ConvInteger` and
//! `QLinearConv`, built as the ONNX reference computes them: integer products exactly (in
//! i32, or f64 for convolutions, exact for 8-bit operands), rescaled in floats, rounded half
//! to even and saturated to the target's range.

use super::nn::conv_of;
use super::{axis, one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use crate::import::narrow::Narrow;
use crate::import::tensor::kiln_dtype;
use kiln_kernels::ops::{Op, UnaryOp};
use kiln_kernels::DType;

const CONV: &[&str] = &[
    "auto_pad",
    "dilations",
    "group",
    "kernel_shape",
    "pads",
    "strides",
];

pub(super) const OPS: &[OpDef] = &[
    def!(
        "QuantizeLinear",
        quantize_linear,
        [
            "axis",
            "block_size",
            "output_dtype",
            "saturate",
            "precision"
        ]
    ),
    def!(
        "DequantizeLinear",
        dequantize_linear,
        ["axis", "block_size", "output_dtype"]
    ),
    def!("DynamicQuantizeLinear", dynamic_quantize_linear),
    def!("MatMulInteger", matmul_integer),
    def!("QLinearMatMul", qlinear_matmul),
    def!("ConvInteger", conv_integer, CONV),
    def!("QLinearConv", qlinear_conv, CONV),
];

/// An integer type quantized to: a Kiln dtype, or a narrow type held in one.
#[derive(Clone, Copy)]
enum Target {
    Dtype(DType),
    Narrow(Narrow),
}

/// The range of an integer quantization type.
fn range(d: DType) -> R<(f64, f64)> {
    match d {
        DType::U8 | DType::I8 | DType::U16 | DType::I16 | DType::I32 => {
            Ok(super::int_limits(d).expect("an integer type"))
        }
        d => Err(format!("quantized type {d} (expected u8, i8, u16, i16)")),
    }
}

/// A scale or zero point shaped to broadcast against `shape`: a scalar as it is, a vector
/// along `dim` (per-axis), or a tensor of `shape`'s rank with `dim` cut in blocks of `block`
/// (each entry repeated over its block).
fn along(b: &mut Builder, v: &Value, shape: &[usize], dim: usize, block: usize) -> R<Value> {
    let r = shape.len();
    if v.shape().iter().product::<usize>() == 1 && block == 0 {
        return b.reshape(v, &[]);
    }
    if block == 0 {
        if v.rank() != 1 || v.shape()[0] != shape[dim] {
            return Err(format!(
                "scale or zero point {:?} for axis {dim} of {shape:?}",
                v.shape()
            ));
        }
        let mut s = vec![1; r];
        s[dim] = shape[dim];
        return b.reshape(v, &s);
    }
    let blocks = shape[dim].div_ceil(block);
    let mut want = shape.to_vec();
    want[dim] = blocks;
    if v.shape() != want.as_slice() {
        return Err(format!(
            "blocked scale or zero point {:?}; expected {want:?} for blocks of {block}",
            v.shape()
        ));
    }
    // [.., blocks, ..] → [.., blocks, block, ..] → [.., blocks·block, ..] → the first dims.
    let mut split = want.clone();
    split.insert(dim + 1, 1);
    let t = b.reshape(v, &split)?;
    let mut wide = split.clone();
    wide[dim + 1] = block;
    let t = b.op(Op::Expand(wide.iter().copied().collect()), &[&t])?;
    let mut merged = want;
    merged[dim] = blocks * block;
    let t = b.reshape(&t, &merged)?;
    b.op(
        Op::Slice {
            dim,
            start: 0,
            len: shape[dim],
            step: 1,
        },
        &[&t],
    )
}

/// The axis a per-axis or blocked scale runs along (unused for one scale).
fn quant_axis(n: &NodeIn, x: &Value, scale: &Value, block: usize) -> R<usize> {
    if block == 0 && scale.shape().iter().product::<usize>() == 1 {
        return Ok(0);
    }
    axis(n.attrs.int_or("axis", 1)?, x.rank().max(1))
}

/// `round(q) + zp` (or `round(q + zp)` when `shift_first`: the two differ at halves, as
/// rounding to even sees the zero point's parity), saturated to `target`'s range and stored
/// as `target`.
fn saturate(
    b: &mut Builder,
    q: &Value,
    zp: Option<&Value>,
    target: Target,
    shift_first: bool,
) -> R<Value> {
    let (lo, hi, target) = match target {
        Target::Dtype(d) => {
            let (lo, hi) = range(d)?;
            (lo, hi, d)
        }
        Target::Narrow(t) => {
            let (lo, hi) = t
                .int_range()
                .ok_or("a small float is not an integer target")?;
            (lo, hi, t.holder())
        }
    };
    let mut q = q.clone();
    if !shift_first {
        q = b.unary(&q, UnaryOp::Round)?;
    }
    if let Some(z) = zp {
        let z = b.cast(z, q.dtype())?;
        q = b.binary(Op::Add, &q, &z)?;
    }
    if shift_first {
        q = b.unary(&q, UnaryOp::Round)?;
    }
    let q = b.unary(
        &q,
        UnaryOp::Clamp {
            min: Some(lo),
            max: Some(hi),
        },
    )?;
    b.cast(&q, target)
}

fn quantize_linear(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, scale) = (n.input(0)?, n.input(1)?);
    let zp = n.opt(2);
    if !x.dtype().is_float() {
        return Err(format!("x is {}; expected floats", x.dtype()));
    }
    // The ONNX type quantized to: the zero point's, else output_dtype, else uint8.
    let out_attr = n
        .attrs
        .int("output_dtype")?
        .filter(|&t| t != 0)
        .map(|t| t as i32);
    let zp_type = zp.map(|z| n.declared[2].unwrap_or_else(|| crate::types::onnx_dtype(z.dtype())));
    let onnx_target = match (zp_type, out_attr) {
        (Some(z), Some(t)) if z != t => {
            return Err(format!(
                "output_dtype {t} differs from the zero point's type {z}"
            ))
        }
        (Some(z), _) => z,
        (None, Some(t)) => t,
        (None, None) => crate::proto::tensor_proto::DataType::Uint8 as i32,
    };
    let block = n.attrs.int_or("block_size", 0)?.max(0) as usize;
    let dim = quant_axis(n, x, scale, block)?;
    let s = along(b, scale, x.shape(), dim, block)?;
    let (xs, ss) = match n.attrs.int("precision")? {
        Some(p) if p != 0 => {
            let p = kiln_dtype(p as i32, "precision").map_err(|e| e.to_string())?;
            (b.cast(x, p)?, b.cast(&s, p)?)
        }
        _ => (x.clone(), b.cast(&s, x.dtype())?),
    };
    let q = b.binary(Op::Div, &xs, &ss)?;
    match Narrow::of(onnx_target) {
        // float8 and float4: the quotient rounded to the format (zero points are 0).
        Some(Narrow::Float(format)) => {
            let saturate = n.attrs.int_or("saturate", 1)? != 0;
            let qf = b.cast(&q, DType::F32)?;
            one(b.unary(&qf, UnaryOp::Minifloat { format, saturate })?)
        }
        narrow => {
            let z = match zp {
                Some(z) => Some(along(b, z, x.shape(), dim, block)?),
                None => None,
            };
            let target = match narrow {
                Some(t) => Target::Narrow(t),
                None => Target::Dtype(
                    kiln_dtype(onnx_target, "output_dtype").map_err(|e| e.to_string())?,
                ),
            };
            one(saturate(b, &q, z.as_ref(), target, false)?)
        }
    }
}

fn dequantize_linear(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, scale) = (n.input(0)?, n.input(1)?);
    let small_float = matches!(n.narrow(0), Some(Narrow::Float(_)));
    if x.dtype().is_float() && !small_float {
        return Err(format!(
            "x is {}; expected a quantized integer or small float type",
            x.dtype()
        ));
    }
    let out = match n.attrs.int("output_dtype")? {
        Some(t) if t != 0 => kiln_dtype(t as i32, "output_dtype").map_err(|e| e.to_string())?,
        _ => scale.dtype(),
    };
    let block = n.attrs.int_or("block_size", 0)?.max(0) as usize;
    let dim = quant_axis(n, x, scale, block)?;
    let mut dx = b.cast(x, DType::F32)?;
    // A small float's zero point is 0 by definition.
    if let Some(z) = n.opt(2).filter(|_| !small_float) {
        if z.dtype() != x.dtype() {
            return Err(format!("zero point is {}, x is {}", z.dtype(), x.dtype()));
        }
        let z = along(b, z, x.shape(), dim, block)?;
        let z = b.cast(&z, DType::F32)?;
        dx = b.binary(Op::Sub, &dx, &z)?;
    }
    let s = along(b, scale, x.shape(), dim, block)?;
    let s = b.cast(&s, DType::F32)?;
    let y = b.binary(Op::Mul, &dx, &s)?;
    one(b.cast(&y, out)?)
}

/// The max (or min) of every element.
fn extreme(b: &mut Builder, x: &Value, max: bool) -> R<Value> {
    let dims = (0..x.rank()).collect();
    let op = if max {
        Op::Max {
            dims,
            keepdim: false,
        }
    } else {
        Op::Min {
            dims,
            keepdim: false,
        }
    };
    b.op(op, &[x])
}

fn dynamic_quantize_linear(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if x.dtype() != DType::F32 {
        return Err(format!("x is {}; expected f32", x.dtype()));
    }
    let zero = b.scalar(0.0, DType::F32);
    let top = extreme(b, x, true)?;
    let top = b.binary(Op::Maximum, &top, &zero)?;
    let bottom = extreme(b, x, false)?;
    let bottom = b.binary(Op::Minimum, &bottom, &zero)?;
    // scale = (max − min) / 255, or 1/255 when they meet.
    let span = b.binary(Op::Sub, &top, &bottom)?;
    let flat = b.binary(Op::Compare(kiln_kernels::ops::CmpOp::Eq), &top, &bottom)?;
    let one_ = b.scalar(1.0, DType::F32);
    let span = b.op(Op::Where, &[&flat, &one_, &span])?;
    let k = b.scalar(255.0, DType::F32);
    let scale = b.binary(Op::Div, &span, &k)?;
    // zero point = round(clamp(0 − min / scale, 0, 255)).
    let m = b.binary(Op::Div, &bottom, &scale)?;
    let zp = b.unary(
        &m,
        UnaryOp::Affine {
            mul: -1.0,
            add: 0.0,
        },
    )?;
    let zp = b.unary(
        &zp,
        UnaryOp::Clamp {
            min: Some(0.0),
            max: Some(255.0),
        },
    )?;
    let zp = b.unary(&zp, UnaryOp::Round)?;
    let q = b.binary(Op::Div, x, &scale)?;
    let y = saturate(b, &q, Some(&zp), Target::Dtype(DType::U8), false)?;
    let zp = b.cast(&zp, DType::U8)?;
    Ok(vec![y, scale, zp])
}

/// `x − zero point` as i32 (the zero point per row when `rows` says so).
fn centered(b: &mut Builder, x: &Value, zp: Option<&Value>, per_row: bool) -> R<Value> {
    let xi = b.cast(x, DType::I32)?;
    let Some(z) = zp else {
        return Ok(xi);
    };
    let z = b.cast(z, DType::I32)?;
    let z = if per_row && z.rank() == 1 && z.shape()[0] > 1 {
        b.reshape(&z, &[z.shape()[0], 1])?
    } else {
        z
    };
    b.binary(Op::Sub, &xi, &z)
}

/// The integer product of two 8-bit operands, exactly, as i32.
fn int_matmul(b: &mut Builder, a: &Value, bm: &Value) -> R<Value> {
    if a.rank() < 2 || bm.rank() < 2 {
        return Err(format!(
            "operands {:?} and {:?}; expected matrices",
            a.shape(),
            bm.shape()
        ));
    }
    b.op(Op::Matmul, &[a, bm])
}

fn matmul_integer(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let a = centered(b, n.input(0)?, n.opt(2), true)?;
    let bm = centered(b, n.input(1)?, n.opt(3), false)?;
    one(int_matmul(b, &a, &bm)?)
}

/// `round(c · (sa · sb / sy) + zy)`, saturated to the output type: the requantization of an
/// integer product, in f64 as NumPy computes it.
fn requantize(
    b: &mut Builder,
    c: &Value,
    factor: &Value,
    zy: Option<&Value>,
    target: DType,
) -> R<Value> {
    let cf = b.cast(c, DType::F64)?;
    let f = b.cast(factor, DType::F64)?;
    let d = b.binary(Op::Mul, &cf, &f)?;
    saturate(b, &d, zy, Target::Dtype(target), true)
}

/// `sa · sb / sy` in the scales' own type.
fn scale_factor(b: &mut Builder, sa: &Value, sb: &Value, sy: &Value) -> R<Value> {
    let p = b.binary(Op::Mul, sa, sb)?;
    b.binary(Op::Div, &p, sy)
}

fn qlinear_matmul(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let a = n.input(0)?;
    let (sa, sb, sy) = (n.input(1)?, n.input(4)?, n.input(6)?);
    let ac = centered(b, a, n.opt(2), true)?;
    let bc = centered(b, n.input(3)?, n.opt(5), false)?;
    let c = int_matmul(b, &ac, &bc)?;
    let f = scale_factor(b, sa, sb, sy)?;
    let zy = n.opt(7);
    let target = zy.map_or(a.dtype(), |z| z.dtype());
    one(requantize(b, &c, &f, zy, target)?)
}

/// `x − zero point` in f64 (per output channel for a weight).
fn centered_f64(b: &mut Builder, x: &Value, zp: Option<&Value>, per_channel: bool) -> R<Value> {
    let xf = b.cast(x, DType::F64)?;
    let Some(z) = zp else {
        return Ok(xf);
    };
    let z = b.cast(z, DType::F64)?;
    let z = if per_channel && z.rank() == 1 && z.shape()[0] > 1 {
        let mut s = vec![1; x.rank()];
        s[0] = z.shape()[0];
        b.reshape(&z, &s)?
    } else {
        b.reshape(&z, &[])?
    };
    b.binary(Op::Sub, &xf, &z)
}

fn conv_integer(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = centered_f64(b, n.input(0)?, n.opt(2), false)?;
    let w = centered_f64(b, n.input(1)?, n.opt(3), true)?;
    let y = conv_of(b, n, &x, &w, None, None)?;
    one(b.cast(&y, DType::I32)?)
}

fn qlinear_conv(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let xq = n.input(0)?;
    let (sx, sw, sy) = (n.input(1)?, n.input(4)?, n.input(6)?);
    let x = centered_f64(b, xq, n.opt(2), false)?;
    let w = centered_f64(b, n.input(3)?, n.opt(5), true)?;
    let bias = match n.opt(8) {
        Some(v) => Some(b.cast(v, DType::F64)?),
        None => None,
    };
    let c = conv_of(b, n, &x, &w, bias.as_ref(), None)?;
    // A per-output-channel weight scale multiplies its channel.
    let sw = if sw.shape().iter().product::<usize>() > 1 {
        let mut s = vec![1; c.rank()];
        s[1] = sw.shape().iter().product();
        b.reshape(sw, &s)?
    } else {
        sw.clone()
    };
    let f = scale_factor(b, sx, &sw, sy)?;
    let zy = n.opt(7);
    let target = zy.map_or(xq.dtype(), |z| z.dtype());
    one(requantize(b, &c, &f, zy, target)?)
}
