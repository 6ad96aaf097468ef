//! The elementwise unary ops, each declared once here: its variant, name, ONNX form, dtype
//! rule, element arithmetic (shared by the eager kernels and the graph compiler's fused
//! kernel), what its gradient reads, and its vector-Jacobian product. Adding a float unary op is a variant and
//! one line in each `match` below, plus its test.

use super::grad::{
    affine, cast, compare_scalar, div, mul, neg, select, unary, zeros_like, Differentiable,
};
use super::infer::{float_dtype, is_integral};
use super::value::{fail, InferResult, OpError};
use super::{CmpOp, Op};
use crate::dtype::DType;
use std::f64::consts::PI;

/// An elementwise op with one operand ([`Op::Unary`]); float dtypes unless noted.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum UnaryOp {
    /// e^x
    Exp,
    /// natural log
    Log,
    /// ln(1 + x), accurate for x near 0
    Log1p,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// hyperbolic tangent
    Tanh,
    /// logistic sigmoid
    Sigmoid,
    /// Gauss error function
    Erf,
    /// max(x, 0); any numeric dtype
    Relu,
    /// GELU, exact (erf) or with the tanh approximation
    Gelu {
        /// use the tanh approximation
        tanh: bool,
    },
    /// |x|; any numeric dtype
    Abs,
    /// -1, 0 or 1; any numeric dtype
    Sign,
    /// x·mul + add: scalar add/sub/mul/div and negation; any numeric dtype
    Affine {
        /// multiplier
        mul: f64,
        /// addend
        add: f64,
    },
    /// x^p for a scalar p (covers sqrt, rsqrt, square, reciprocal)
    PowScalar(f64),
    /// clamp to [min, max]; any numeric dtype
    Clamp {
        /// lower bound
        min: Option<f64>,
        /// upper bound
        max: Option<f64>,
    },
    /// logical not of a bool tensor (or `x == 0`)
    LogicalNot,
    /// tangent
    Tan,
    /// arcsine
    Asin,
    /// arccosine
    Acos,
    /// arctangent
    Atan,
    /// hyperbolic sine
    Sinh,
    /// hyperbolic cosine
    Cosh,
    /// inverse hyperbolic sine
    Asinh,
    /// inverse hyperbolic cosine
    Acosh,
    /// inverse hyperbolic tangent
    Atanh,
    /// largest integer ≤ x; integers pass through
    Floor,
    /// smallest integer ≥ x; integers pass through
    Ceil,
    /// nearest integer, halves to even (NumPy's and ONNX's rounding); integers pass through
    Round,
    /// the nearest value of a small float format (float8, float4, E8M0), kept in the input's
    /// float type; its gradient passes straight through (quantization-aware training's rule)
    Minifloat {
        /// the format
        format: crate::minifloat::Minifloat,
        /// out-of-range values saturate to the format's largest (else ∞ or NaN)
        saturate: bool,
    },
}

/// How ONNX writes a unary op: the export column of its declaration (`kiln-onnx` turns it
/// into nodes of the default domain).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OnnxUnary {
    /// The standard op of this name, one node.
    Op(&'static str),
    /// `Log(Add(x, 1))`.
    Log1p,
    /// `Gelu` (opset 20 and later), or its erf formula before.
    Gelu {
        /// the tanh approximation
        tanh: bool,
    },
    /// `Add(Mul(x, mul), add)`, each skipped when it is the identity.
    Affine {
        /// multiplier
        mul: f64,
        /// addend
        add: f64,
    },
    /// `Sqrt`, `Reciprocal` or `Mul(x, x)` for those exponents, else `Pow(x, p)`.
    Pow(f64),
    /// `Clip(x, min, max)`, a missing bound left empty.
    Clip {
        /// lower bound
        min: Option<f64>,
        /// upper bound
        max: Option<f64>,
    },
    /// `Not` of the operand as bool.
    Not,
    /// `Cast` to the small float format and back: the format, `saturate`.
    Minifloat(crate::minifloat::Minifloat, bool),
}

impl UnaryOp {
    /// The op in ONNX (see [`OnnxUnary`]).
    pub fn onnx(&self) -> OnnxUnary {
        match *self {
            UnaryOp::Exp => OnnxUnary::Op("Exp"),
            UnaryOp::Log => OnnxUnary::Op("Log"),
            UnaryOp::Log1p => OnnxUnary::Log1p,
            UnaryOp::Sin => OnnxUnary::Op("Sin"),
            UnaryOp::Cos => OnnxUnary::Op("Cos"),
            UnaryOp::Tanh => OnnxUnary::Op("Tanh"),
            UnaryOp::Sigmoid => OnnxUnary::Op("Sigmoid"),
            UnaryOp::Erf => OnnxUnary::Op("Erf"),
            UnaryOp::Relu => OnnxUnary::Op("Relu"),
            UnaryOp::Gelu { tanh } => OnnxUnary::Gelu { tanh },
            UnaryOp::Abs => OnnxUnary::Op("Abs"),
            UnaryOp::Sign => OnnxUnary::Op("Sign"),
            UnaryOp::Affine { mul, add } => OnnxUnary::Affine { mul, add },
            UnaryOp::PowScalar(p) => OnnxUnary::Pow(p),
            UnaryOp::Clamp { min, max } => OnnxUnary::Clip { min, max },
            UnaryOp::LogicalNot => OnnxUnary::Not,
            UnaryOp::Tan => OnnxUnary::Op("Tan"),
            UnaryOp::Asin => OnnxUnary::Op("Asin"),
            UnaryOp::Acos => OnnxUnary::Op("Acos"),
            UnaryOp::Atan => OnnxUnary::Op("Atan"),
            UnaryOp::Sinh => OnnxUnary::Op("Sinh"),
            UnaryOp::Cosh => OnnxUnary::Op("Cosh"),
            UnaryOp::Asinh => OnnxUnary::Op("Asinh"),
            UnaryOp::Acosh => OnnxUnary::Op("Acosh"),
            UnaryOp::Atanh => OnnxUnary::Op("Atanh"),
            UnaryOp::Floor => OnnxUnary::Op("Floor"),
            UnaryOp::Ceil => OnnxUnary::Op("Ceil"),
            UnaryOp::Round => OnnxUnary::Op("Round"),
            UnaryOp::Minifloat { format, saturate } => OnnxUnary::Minifloat(format, saturate),
        }
    }

    /// Short lowercase name used in error messages, profiles and printed graphs.
    pub fn name(&self) -> &'static str {
        match self {
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Erf => "erf",
            UnaryOp::Relu => "relu",
            UnaryOp::Gelu { .. } => "gelu",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Affine { .. } => "affine",
            UnaryOp::PowScalar(_) => "pow_scalar",
            UnaryOp::Clamp { .. } => "clamp",
            UnaryOp::LogicalNot => "logical_not",
            UnaryOp::Tan => "tan",
            UnaryOp::Asin => "asin",
            UnaryOp::Acos => "acos",
            UnaryOp::Atan => "atan",
            UnaryOp::Sinh => "sinh",
            UnaryOp::Cosh => "cosh",
            UnaryOp::Asinh => "asinh",
            UnaryOp::Acosh => "acosh",
            UnaryOp::Atanh => "atanh",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
            UnaryOp::Minifloat { .. } => "minifloat",
        }
    }

    /// The output dtype for an operand of dtype `d` and `shape`, or why the op refuses it.
    pub fn infer(&self, d: DType, shape: &[usize]) -> InferResult<DType> {
        Ok(match self {
            UnaryOp::Relu
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Clamp { .. }
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round => {
                if d == DType::Bool {
                    fail!(
                        "{}: not supported for bool tensors (shape {shape:?})",
                        self.name()
                    );
                }
                d
            }
            UnaryOp::Affine { mul, add } => {
                if d.is_float() {
                    d
                } else if is_integral(*mul) && is_integral(*add) {
                    if d == DType::Bool {
                        DType::I64
                    } else {
                        d
                    }
                } else {
                    DType::F32
                }
            }
            UnaryOp::LogicalNot => DType::Bool,
            _ => float_dtype(d),
        })
    }

    /// What the VJP reads: (the input's data, the output's data).
    pub fn saves(&self) -> (bool, bool) {
        match self {
            // Output-based VJPs also keep the input: under create_graph the output is
            // recomputed (see `recomputes_output`).
            UnaryOp::Exp | UnaryOp::Tanh | UnaryOp::Sigmoid => (true, true),
            // ReLU's mask is read off its output (like PyTorch's threshold_backward), so its
            // input (often a conv output read by nothing else) is freed after the forward.
            // The mask is piecewise constant: nothing to recompute under create_graph.
            UnaryOp::Relu => (false, true),
            UnaryOp::Sign
            | UnaryOp::Affine { .. }
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::Minifloat { .. } => (false, false),
            UnaryOp::LogicalNot => (true, true),
            _ => (true, false),
        }
    }

    /// True when the VJP reads the output and, for a gradient that is itself differentiated
    /// (create_graph), the output must be recomputed from the input (the saved one is
    /// detached).
    pub fn recomputes_output(&self) -> bool {
        matches!(self, UnaryOp::Exp | UnaryOp::Tanh | UnaryOp::Sigmoid)
    }

    /// The gradient of the input given input `x`, output `y` and output gradient `g`, or
    /// `None` when the op is not differentiable (bool output).
    pub fn vjp<T: Differentiable>(&self, x: &T, y: &T, g: &T) -> Option<T> {
        Some(match self {
            UnaryOp::Exp => mul(g, y),
            UnaryOp::Log => div(g, x),
            UnaryOp::Log1p => div(g, &affine(x, 1.0, 1.0)),
            UnaryOp::Sin => mul(g, &unary(UnaryOp::Cos, x)),
            UnaryOp::Cos => neg(&mul(g, &unary(UnaryOp::Sin, x))),
            UnaryOp::Tanh => mul(g, &affine(&mul(y, y), -1.0, 1.0)),
            UnaryOp::Sigmoid => mul(g, &mul(y, &affine(y, -1.0, 1.0))),
            UnaryOp::Erf => {
                let e = unary(UnaryOp::Exp, &affine(&mul(x, x), -1.0, 0.0));
                mul(g, &affine(&e, 2.0 / PI.sqrt(), 0.0))
            }
            // A select, not a cast mask times g: two passes instead of three. y > 0 ⇔ x > 0.
            UnaryOp::Relu => select(
                &compare_scalar(y, CmpOp::Gt, 0.0),
                g,
                &T::full(0.0, &[], g.dtype()),
            ),
            UnaryOp::Gelu { tanh: false } => T::apply(Op::GeluBackward, &[x, g]),
            UnaryOp::Gelu { tanh: true } => {
                let c = (2.0 / PI).sqrt();
                let x2 = mul(x, x);
                let u = affine(&mul(x, &affine(&x2, 0.044715, 1.0)), c, 0.0);
                let t = unary(UnaryOp::Tanh, &u);
                let du = affine(&x2, 3.0 * 0.044715 * c, c);
                let left = affine(&t, 0.5, 0.5);
                let right = mul(&mul(x, &affine(&mul(&t, &t), -0.5, 0.5)), &du);
                mul(g, &super::grad::add(&left, &right))
            }
            UnaryOp::Abs => mul(g, &unary(UnaryOp::Sign, x)),
            UnaryOp::Sign => zeros_like(g),
            UnaryOp::Affine { mul: m, .. } => affine(g, *m, 0.0),
            UnaryOp::PowScalar(p) => {
                mul(g, &affine(&unary(UnaryOp::PowScalar(p - 1.0), x), *p, 0.0))
            }
            UnaryOp::Clamp { min, max } => {
                let lo = min.unwrap_or(f64::NEG_INFINITY);
                let mut m = compare_scalar(x, CmpOp::Ge, lo);
                if let Some(hi) = max {
                    m = mul(&m, &compare_scalar(x, CmpOp::Le, *hi));
                }
                mul(g, &cast(&m, g.dtype()))
            }
            UnaryOp::LogicalNot => return None,
            UnaryOp::Tan => {
                let t = unary(UnaryOp::Tan, x);
                mul(g, &affine(&mul(&t, &t), 1.0, 1.0))
            }
            // 1/sqrt(1 − x²), negated for acos.
            UnaryOp::Asin | UnaryOp::Acos => {
                let r = unary(UnaryOp::PowScalar(-0.5), &affine(&mul(x, x), -1.0, 1.0));
                let s = if *self == UnaryOp::Asin { 1.0 } else { -1.0 };
                mul(g, &affine(&r, s, 0.0))
            }
            UnaryOp::Atan => div(g, &affine(&mul(x, x), 1.0, 1.0)),
            UnaryOp::Sinh => mul(g, &unary(UnaryOp::Cosh, x)),
            UnaryOp::Cosh => mul(g, &unary(UnaryOp::Sinh, x)),
            UnaryOp::Asinh => mul(
                g,
                &unary(UnaryOp::PowScalar(-0.5), &affine(&mul(x, x), 1.0, 1.0)),
            ),
            UnaryOp::Acosh => mul(
                g,
                &unary(UnaryOp::PowScalar(-0.5), &affine(&mul(x, x), 1.0, -1.0)),
            ),
            UnaryOp::Atanh => div(g, &affine(&mul(x, x), -1.0, 1.0)),
            // Piecewise constant: zero gradient almost everywhere (PyTorch's convention).
            UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => zeros_like(g),
            // The straight-through estimator: rounding is treated as the identity.
            UnaryOp::Minifloat { .. } => affine(g, 1.0, 0.0),
        })
    }
}

/// Float types with the special functions the unary ops need.
pub(crate) trait UnaryFloat: num_traits::Float {
    /// The Gauss error function.
    fn erf(self) -> Self;
    /// Rounds to the nearest integer, halves to even.
    fn round_even(self) -> Self;
}

impl UnaryFloat for f32 {
    fn erf(self) -> f32 {
        libm::erff(self)
    }
    fn round_even(self) -> f32 {
        self.round_ties_even()
    }
}

impl UnaryFloat for f64 {
    fn erf(self) -> f64 {
        libm::erf(self)
    }
    fn round_even(self) -> f64 {
        self.round_ties_even()
    }
}

/// Expands `$body` once per float unary op with `$f` bound to the op's element function on
/// `$T` (a [`UnaryFloat`]) — the one definition of each op's arithmetic, shared by the eager
/// kernels (`cpu/unary.rs`) and the graph compiler's fused kernel (`cpu/fused`), each
/// instantiated with its own tight loop. The functions capture their constants by value
/// (`move`): a captured reference is loaded in the loop through a pointer that may alias the
/// output, which kept ReLU's loop scalar (0.47 vs 0.1 ns per element).
macro_rules! with_float_unary {
    ($op:expr, $T:ty, |$f:ident| $body:expr) => {{
        use $crate::ops::UnaryOp;
        #[allow(unused_macros)]
        macro_rules! run {
            ($g:expr) => {{
                let $f = $g;
                $body
            }};
        }
        let c = |v: f64| -> $T { <$T as num_traits::NumCast>::from(v).unwrap() };
        let (zero, one, half): ($T, $T, $T) = (c(0.0), c(1.0), c(0.5));
        let op: &UnaryOp = $op;
        match op {
            UnaryOp::Exp => run!(|v: $T| v.exp()),
            UnaryOp::Log => run!(|v: $T| v.ln()),
            UnaryOp::Log1p => run!(|v: $T| v.ln_1p()),
            UnaryOp::Sin => run!(|v: $T| v.sin()),
            UnaryOp::Cos => run!(|v: $T| v.cos()),
            UnaryOp::Tanh => run!(|v: $T| v.tanh()),
            UnaryOp::Sigmoid => run!(move |v: $T| one / (one + (-v).exp())),
            UnaryOp::Erf => run!(|v: $T| $crate::ops::unary::UnaryFloat::erf(v)),
            // `!(v <= 0)` keeps NaN, as `v > 0 || isnan(v)`, in one compare that vectorizes.
            UnaryOp::Relu => run!(move |v: $T| if v <= zero { zero } else { v }),
            UnaryOp::Gelu { tanh: false } => {
                let r = c(std::f64::consts::FRAC_1_SQRT_2);
                run!(move |v: $T| half * v * (one + $crate::ops::unary::UnaryFloat::erf(v * r)))
            }
            UnaryOp::Gelu { tanh: true } => {
                let k = c((2.0 / std::f64::consts::PI).sqrt());
                let a = c(0.044715);
                run!(move |v: $T| { half * v * (one + (k * (v + a * v * v * v)).tanh()) })
            }
            UnaryOp::Abs => run!(|v: $T| v.abs()),
            UnaryOp::Sign => run!(move |v: $T| {
                if v > zero {
                    one
                } else if v < zero {
                    -one
                } else {
                    v
                }
            }),
            UnaryOp::Affine { mul, add } => {
                let (m, a) = (c(*mul), c(*add));
                run!(move |v: $T| v * m + a)
            }
            UnaryOp::PowScalar(p) => {
                let p = *p;
                if p == 2.0 {
                    run!(|v: $T| v * v)
                } else if p == 0.5 {
                    run!(|v: $T| v.sqrt())
                } else if p == -0.5 {
                    run!(|v: $T| one / v.sqrt())
                } else if p == -1.0 {
                    run!(|v: $T| one / v)
                } else if p == 1.0 {
                    run!(|v: $T| v)
                } else {
                    let pt = c(p);
                    run!(move |v: $T| v.powf(pt))
                }
            }
            UnaryOp::Clamp { min, max } => {
                let (lo, hi) = (min.map(c), max.map(c));
                run!(move |mut v: $T| {
                    if let Some(lo) = lo {
                        if v < lo {
                            v = lo
                        }
                    }
                    if let Some(hi) = hi {
                        if v > hi {
                            v = hi
                        }
                    }
                    v
                })
            }
            UnaryOp::LogicalNot => unreachable!("unary: logical_not is not a float op"),
            UnaryOp::Tan => run!(|v: $T| v.tan()),
            UnaryOp::Asin => run!(|v: $T| v.asin()),
            UnaryOp::Acos => run!(|v: $T| v.acos()),
            UnaryOp::Atan => run!(|v: $T| v.atan()),
            UnaryOp::Sinh => run!(|v: $T| v.sinh()),
            UnaryOp::Cosh => run!(|v: $T| v.cosh()),
            UnaryOp::Asinh => run!(|v: $T| v.asinh()),
            UnaryOp::Acosh => run!(|v: $T| v.acosh()),
            UnaryOp::Atanh => run!(|v: $T| v.atanh()),
            UnaryOp::Floor => run!(|v: $T| v.floor()),
            UnaryOp::Ceil => run!(|v: $T| v.ceil()),
            UnaryOp::Round => run!(|v: $T| $crate::ops::unary::UnaryFloat::round_even(v)),
            UnaryOp::Minifloat { format, saturate } => {
                let (f, s) = (*format, *saturate);
                run!(move |v: $T| c(f.round(num_traits::ToPrimitive::to_f64(&v).unwrap(), s)))
            }
        }
    }};
}

pub(crate) use with_float_unary;
