//! Elementwise ops: arithmetic and comparisons with NumPy broadcasting (Kiln's own rule), the
//! activations (as Kiln's unary ops or their standard compositions), `Where` and `Clip`.

use super::{broadcast, one, NodeIn, OpDef};
use crate::import::builder::{known_f64s, Builder, Value, R};
use kiln_kernels::ops::{CmpOp, Op, UnaryOp};
use kiln_kernels::DType;

pub(super) const OPS: &[OpDef] = &[
    def!("Add", |b, n| binary(b, n, Op::Add)),
    def!("Sub", |b, n| binary(b, n, Op::Sub)),
    def!("Mul", |b, n| binary(b, n, Op::Mul)),
    def!("Pow", pow),
    def!("Equal", |b, n| compare(b, n, CmpOp::Eq)),
    def!("Less", |b, n| compare(b, n, CmpOp::Lt)),
    def!("LessOrEqual", |b, n| compare(b, n, CmpOp::Le)),
    def!("Greater", |b, n| compare(b, n, CmpOp::Gt)),
    def!("GreaterOrEqual", |b, n| compare(b, n, CmpOp::Ge)),
    def!("And", |b, n| logical(b, n, Op::Mul)),
    def!("Or", |b, n| logical(b, n, Op::Add)),
    def!("Xor", |b, n| logical(b, n, Op::Compare(CmpOp::Ne))),
    def!("Not", |b, n| unary(b, n, UnaryOp::LogicalNot)),
    def!("Where", where_),
    def!("IsNaN", is_nan),
    def!("IsInf", is_inf, ["detect_negative", "detect_positive"]),
    def!("Max", |b, n| variadic(b, n, Op::Maximum)),
    def!("Min", |b, n| variadic(b, n, Op::Minimum)),
    def!("Sum", |b, n| variadic(b, n, Op::Add)),
    def!("Mean", mean),
    def!("Relu", |b, n| unary(b, n, UnaryOp::Relu)),
    def!("Sigmoid", |b, n| unary(b, n, UnaryOp::Sigmoid)),
    def!("Tanh", |b, n| unary(b, n, UnaryOp::Tanh)),
    def!("Exp", |b, n| unary(b, n, UnaryOp::Exp)),
    def!("Log", |b, n| unary(b, n, UnaryOp::Log)),
    def!("Erf", |b, n| unary(b, n, UnaryOp::Erf)),
    def!("Abs", |b, n| unary(b, n, UnaryOp::Abs)),
    def!("Sign", |b, n| unary(b, n, UnaryOp::Sign)),
    def!("Sin", |b, n| unary(b, n, UnaryOp::Sin)),
    def!("Cos", |b, n| unary(b, n, UnaryOp::Cos)),
    def!("Neg", |b, n| unary(
        b,
        n,
        UnaryOp::Affine {
            mul: -1.0,
            add: 0.0
        }
    )),
    def!("Reciprocal", |b, n| unary(b, n, UnaryOp::PowScalar(-1.0))),
    def!("Sqrt", |b, n| unary(b, n, UnaryOp::PowScalar(0.5))),
    def!("Tan", |b, n| unary(b, n, UnaryOp::Tan)),
    def!("Asin", |b, n| unary(b, n, UnaryOp::Asin)),
    def!("Acos", |b, n| unary(b, n, UnaryOp::Acos)),
    def!("Atan", |b, n| unary(b, n, UnaryOp::Atan)),
    def!("Sinh", |b, n| unary(b, n, UnaryOp::Sinh)),
    def!("Cosh", |b, n| unary(b, n, UnaryOp::Cosh)),
    def!("Asinh", |b, n| unary(b, n, UnaryOp::Asinh)),
    def!("Acosh", |b, n| unary(b, n, UnaryOp::Acosh)),
    def!("Atanh", |b, n| unary(b, n, UnaryOp::Atanh)),
    def!("Floor", |b, n| unary(b, n, UnaryOp::Floor)),
    def!("Ceil", |b, n| unary(b, n, UnaryOp::Ceil)),
    def!("Round", |b, n| unary(b, n, UnaryOp::Round)),
    def!("Swish", swish, ["alpha"]),
    def!("Shrink", shrink, ["bias", "lambd"]),
    def!("Gelu", gelu, ["approximate"]),
    def!("Softplus", |b, n| one(softplus(b, n.input(0)?)?)),
    def!("Softsign", softsign),
    def!("Mish", mish),
    def!("HardSigmoid", hard_sigmoid, ["alpha", "beta"]),
    def!("HardSwish", hard_swish),
    def!("LeakyRelu", leaky_relu, ["alpha"]),
    def!("PRelu", prelu),
    def!("Elu", elu, ["alpha"]),
    def!("Selu", selu, ["alpha", "gamma"]),
    def!("Celu", celu, ["alpha"]),
    def!("ThresholdedRelu", thresholded_relu, ["alpha"]),
    def!("Clip", clip, ["min", "max"]),
];

/// Refuses operands of different element types (ONNX requires one; Kiln would promote).
pub(super) fn same_dtype(a: &Value, b: &Value) -> R<()> {
    if a.dtype() != b.dtype() {
        return Err(format!(
            "operands are {} and {}; ONNX requires one element type",
            a.dtype(),
            b.dtype()
        ));
    }
    Ok(())
}

pub(super) fn binary(b: &mut Builder, n: &NodeIn, op: Op) -> R<Vec<Value>> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    same_dtype(x, y)?;
    one(b.binary(op, x, y)?)
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

fn pow(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    if is_float(x.dtype()) {
        if let Some(p) = y.known().filter(|p| p.operand().numel() == 1) {
            let p = known_f64s(p)[0];
            let out = b.unary(x, UnaryOp::PowScalar(p))?;
            // A scalar exponent broadcasts x to its rank.
            let shape = broadcast(x.shape(), y.shape())?;
            return one(b.reshape(&out, &shape)?);
        }
        let y = b.cast(y, x.dtype())?;
        return one(b.binary(Op::Pow, x, &y)?);
    }
    Err(format!("Pow of {} values is not supported", x.dtype()))
}

fn compare(b: &mut Builder, n: &NodeIn, c: CmpOp) -> R<Vec<Value>> {
    binary(b, n, Op::Compare(c))
}

fn logical(b: &mut Builder, n: &NodeIn, op: Op) -> R<Vec<Value>> {
    let (x, y) = (n.input(0)?, n.input(1)?);
    if x.dtype() != DType::Bool || y.dtype() != DType::Bool {
        return Err(format!(
            "operands are {} and {}, not bool",
            x.dtype(),
            y.dtype()
        ));
    }
    one(b.binary(op, x, y)?)
}

fn unary(b: &mut Builder, n: &NodeIn, u: UnaryOp) -> R<Vec<Value>> {
    one(b.unary(n.input(0)?, u)?)
}

/// `x · sigmoid(alpha · x)`.
fn swish(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let alpha = n.attrs.float_or("alpha", 1.0)? as f64;
    let ax = b.scale(x, alpha)?;
    let s = b.unary(&ax, UnaryOp::Sigmoid)?;
    one(b.binary(Op::Mul, x, &s)?)
}

/// `x + bias` below `−lambd`, `x − bias` above `lambd`, 0 between.
fn shrink(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let bias = n.attrs.float_or("bias", 0.0)? as f64;
    let lambd = n.attrs.float_or("lambd", 0.5)? as f64;
    let d = x.dtype();
    let (lo, hi) = (b.scalar(-lambd, d), b.scalar(lambd, d));
    let below = b.binary(Op::Compare(CmpOp::Lt), x, &lo)?;
    let above = b.binary(Op::Compare(CmpOp::Gt), x, &hi)?;
    let (plus, minus) = (b.scalar(bias, d), b.scalar(-bias, d));
    let up = b.binary(Op::Add, x, &plus)?;
    let down = b.binary(Op::Add, x, &minus)?;
    let zero = b.scalar(0.0, d);
    let inner = b.op(Op::Where, &[&above, &down, &zero])?;
    one(b.op(Op::Where, &[&below, &up, &inner])?)
}

fn where_(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (c, x, y) = (n.input(0)?, n.input(1)?, n.input(2)?);
    same_dtype(x, y)?;
    one(b.op(Op::Where, &[c, x, y])?)
}

fn variadic(b: &mut Builder, n: &NodeIn, op: Op) -> R<Vec<Value>> {
    let mut acc = n.input(0)?.clone();
    for k in 1..n.inputs.len() {
        let x = n.input(k)?;
        same_dtype(&acc, x)?;
        acc = b.binary(op.clone(), &acc, x)?;
    }
    one(acc)
}

fn mean(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let sum = variadic(b, n, Op::Add)?.remove(0);
    one(b.scale(&sum, 1.0 / n.inputs.len() as f64)?)
}

/// `x < 0` as bool.
fn negative(b: &mut Builder, x: &Value) -> R<Value> {
    let zero = b.scalar(0.0, x.dtype());
    b.binary(Op::Compare(CmpOp::Lt), x, &zero)
}

/// `where(x < 0, neg, x)`.
fn where_negative(b: &mut Builder, x: &Value, neg: &Value) -> R<Value> {
    let c = negative(b, x)?;
    b.op(Op::Where, &[&c, neg, x])
}

fn gelu(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let tanh = match n.attrs.string("approximate")?.as_deref() {
        None | Some("none") => false,
        Some("tanh") => true,
        Some(a) => return Err(format!("approximate={a:?} (expected none or tanh)")),
    };
    unary(b, n, UnaryOp::Gelu { tanh })
}

/// `log(1 + exp(x))`, as `relu(x) + log1p(exp(−|x|))` so it never overflows.
fn softplus(b: &mut Builder, x: &Value) -> R<Value> {
    let r = b.unary(x, UnaryOp::Relu)?;
    let a = b.unary(x, UnaryOp::Abs)?;
    let e = b.unary(
        &a,
        UnaryOp::Affine {
            mul: -1.0,
            add: 0.0,
        },
    )?;
    let e = b.unary(&e, UnaryOp::Exp)?;
    let l = b.unary(&e, UnaryOp::Log1p)?;
    b.binary(Op::Add, &r, &l)
}

fn softsign(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let a = b.unary(x, UnaryOp::Abs)?;
    let d = b.unary(&a, UnaryOp::Affine { mul: 1.0, add: 1.0 })?;
    one(b.binary(Op::Div, x, &d)?)
}

fn mish(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let s = softplus(b, x)?;
    let t = b.unary(&s, UnaryOp::Tanh)?;
    one(b.binary(Op::Mul, x, &t)?)
}

fn hard_sigmoid_of(b: &mut Builder, x: &Value, alpha: f64, beta: f64) -> R<Value> {
    let y = b.unary(
        x,
        UnaryOp::Affine {
            mul: alpha,
            add: beta,
        },
    )?;
    b.unary(
        &y,
        UnaryOp::Clamp {
            min: Some(0.0),
            max: Some(1.0),
        },
    )
}

fn hard_sigmoid(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let alpha = n.attrs.float_or("alpha", 0.2)? as f64;
    let beta = n.attrs.float_or("beta", 0.5)? as f64;
    one(hard_sigmoid_of(b, n.input(0)?, alpha, beta)?)
}

fn hard_swish(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let s = hard_sigmoid_of(b, x, 1.0 / 6.0, 0.5)?;
    one(b.binary(Op::Mul, x, &s)?)
}

fn leaky_relu(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let alpha = n.attrs.float_or("alpha", 0.01)? as f64;
    let neg = b.scale(x, alpha)?;
    one(where_negative(b, x, &neg)?)
}

fn prelu(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, slope) = (n.input(0)?, n.input(1)?);
    same_dtype(x, slope)?;
    let neg = b.binary(Op::Mul, x, slope)?;
    one(where_negative(b, x, &neg)?)
}

/// `alpha · (exp(x) − 1)`.
fn exp_minus_one(b: &mut Builder, x: &Value, alpha: f64) -> R<Value> {
    let e = b.unary(x, UnaryOp::Exp)?;
    b.unary(
        &e,
        UnaryOp::Affine {
            mul: alpha,
            add: -alpha,
        },
    )
}

fn elu(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let neg = exp_minus_one(b, x, n.attrs.float_or("alpha", 1.0)? as f64)?;
    one(where_negative(b, x, &neg)?)
}

fn selu(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let alpha = n.attrs.float_or("alpha", 1.673_263_2)? as f64;
    let gamma = n.attrs.float_or("gamma", 1.050_701)? as f64;
    let neg = exp_minus_one(b, x, alpha)?;
    let y = where_negative(b, x, &neg)?;
    one(b.scale(&y, gamma)?)
}

fn celu(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let alpha = n.attrs.float_or("alpha", 1.0)? as f64;
    let scaled = b.scale(x, 1.0 / alpha)?;
    let neg = exp_minus_one(b, &scaled, alpha)?;
    one(where_negative(b, x, &neg)?)
}

fn thresholded_relu(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let alpha = b.scalar(n.attrs.float_or("alpha", 1.0)? as f64, x.dtype());
    let zero = b.scalar(0.0, x.dtype());
    let c = b.binary(Op::Compare(CmpOp::Gt), x, &alpha)?;
    one(b.op(Op::Where, &[&c, x, &zero])?)
}

fn clip(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    // Opset < 11 gives the bounds as attributes, later opsets as optional inputs.
    let attr = |name: &str, default: f32| -> R<Option<f64>> {
        Ok(if n.attrs.has(name) {
            Some(n.attrs.float_or(name, default)? as f64)
        } else {
            None
        })
    };
    let mut bounds = [attr("min", f32::MIN)?, attr("max", f32::MAX)?];
    let mut dynamic: [Option<&Value>; 2] = [None, None];
    for (k, slot) in bounds.iter_mut().enumerate() {
        if let Some(v) = n.opt(k + 1) {
            if v.rank() != 0 && v.shape().iter().product::<usize>() != 1 {
                return Err(format!(
                    "bound {k} has shape {:?}; it must be a scalar",
                    v.shape()
                ));
            }
            match v.known() {
                Some(c) => *slot = Some(known_f64s(c)[0]),
                None => dynamic[k] = Some(v),
            }
        }
    }
    let mut y = if is_float(x.dtype()) {
        b.unary(
            x,
            UnaryOp::Clamp {
                min: bounds[0],
                max: bounds[1],
            },
        )?
    } else {
        let mut y = x.clone();
        for (bound, op) in bounds.iter().zip([Op::Maximum, Op::Minimum]) {
            if let Some(v) = bound {
                let s = b.scalar(*v, x.dtype());
                y = b.binary(op, &y, &s)?;
            }
        }
        y
    };
    for (bound, op) in dynamic.iter().zip([Op::Maximum, Op::Minimum]) {
        if let Some(v) = bound {
            same_dtype(x, v)?;
            let s = b.reshape(v, &[])?;
            y = b.binary(op, &y, &s)?;
        }
    }
    one(y)
}

/// `x ≠ x`: true exactly for NaN.
fn is_nan(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    one(b.binary(Op::Compare(CmpOp::Ne), x, x)?)
}

fn is_inf(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let neg = n.attrs.int_or("detect_negative", 1)? != 0;
    let pos = n.attrs.int_or("detect_positive", 1)? != 0;
    let test = |b: &mut Builder, v: f64| -> R<Value> {
        let s = b.scalar(v, x.dtype());
        b.binary(Op::Compare(CmpOp::Eq), x, &s)
    };
    one(match (neg, pos) {
        (true, true) => {
            let a = test(b, f64::INFINITY)?;
            let c = test(b, f64::NEG_INFINITY)?;
            b.binary(Op::Add, &a, &c)?
        }
        (false, true) => test(b, f64::INFINITY)?,
        (true, false) => test(b, f64::NEG_INFINITY)?,
        (false, false) => {
            let f = b.scalar(0.0, kiln_kernels::DType::Bool);
            b.op(Op::Expand(x.shape().iter().copied().collect()), &[&f])?
        }
    })
}
