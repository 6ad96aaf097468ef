//! Elementwise math: unary functions, binary ops with broadcasting, scalar forms,
//! comparisons and logical ops.

use super::Tensor;
use crate::dtype::DType;
use crate::ops::{dispatch, CmpOp, IntOp, Op, UnaryOp};

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {$(
        $(#[$doc])*
        #[track_caller]
        pub fn $name(&self) -> Tensor {
            dispatch($op, &[self])
        }
    )*};
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {$(
        $(#[$doc])*
        #[track_caller]
        pub fn $name(&self, other: &Tensor) -> Tensor {
            dispatch($op, &[self, other])
        }
    )*};
}

macro_rules! compare_methods {
    ($($(#[$doc:meta])* $name:ident, $scalar:ident => $c:expr;)*) => {$(
        $(#[$doc])*
        #[track_caller]
        pub fn $name(&self, other: &Tensor) -> Tensor {
            dispatch(Op::Compare($c), &[self, other])
        }
        /// Comparison with a scalar (bool result).
        #[track_caller]
        pub fn $scalar(&self, v: f64) -> Tensor {
            dispatch(Op::Compare($c), &[self, &self.scalar_like(v)])
        }
    )*};
}

impl Tensor {
    unary_methods! {
        /// e^x
        exp => Op::Unary(UnaryOp::Exp);
        /// Natural logarithm.
        log => Op::Unary(UnaryOp::Log);
        /// Sine.
        sin => Op::Unary(UnaryOp::Sin);
        /// Cosine.
        cos => Op::Unary(UnaryOp::Cos);
        /// Hyperbolic tangent.
        tanh => Op::Unary(UnaryOp::Tanh);
        /// Logistic sigmoid 1 / (1 + e^−x).
        sigmoid => Op::Unary(UnaryOp::Sigmoid);
        /// Gauss error function.
        erf => Op::Unary(UnaryOp::Erf);
        /// max(x, 0).
        relu => Op::Unary(UnaryOp::Relu);
        /// GELU with the exact erf form.
        gelu => Op::Unary(UnaryOp::Gelu { tanh: false });
        /// GELU with the tanh approximation.
        gelu_tanh => Op::Unary(UnaryOp::Gelu { tanh: true });
        /// Absolute value.
        abs => Op::Unary(UnaryOp::Abs);
        /// −1, 0 or 1 by sign.
        sign => Op::Unary(UnaryOp::Sign);
        /// Logical not (bool result; non-bool inputs test `== 0`).
        logical_not => Op::Unary(UnaryOp::LogicalNot);
        /// Tangent.
        tan => Op::Unary(UnaryOp::Tan);
        /// Arcsine.
        asin => Op::Unary(UnaryOp::Asin);
        /// Arccosine.
        acos => Op::Unary(UnaryOp::Acos);
        /// Arctangent.
        atan => Op::Unary(UnaryOp::Atan);
        /// Hyperbolic sine.
        sinh => Op::Unary(UnaryOp::Sinh);
        /// Hyperbolic cosine.
        cosh => Op::Unary(UnaryOp::Cosh);
        /// Inverse hyperbolic sine.
        asinh => Op::Unary(UnaryOp::Asinh);
        /// Inverse hyperbolic cosine.
        acosh => Op::Unary(UnaryOp::Acosh);
        /// Inverse hyperbolic tangent.
        atanh => Op::Unary(UnaryOp::Atanh);
        /// Largest integer ≤ x (integer tensors unchanged).
        floor => Op::Unary(UnaryOp::Floor);
        /// Smallest integer ≥ x (integer tensors unchanged).
        ceil => Op::Unary(UnaryOp::Ceil);
        /// Nearest integer, halves to even as `torch.round` (integer tensors unchanged).
        round => Op::Unary(UnaryOp::Round);
    }

    binary_methods! {
        /// Elementwise sum with broadcasting.
        add => Op::Add;
        /// Elementwise difference with broadcasting.
        sub => Op::Sub;
        /// Elementwise product with broadcasting.
        mul => Op::Mul;
        /// Elementwise true division with broadcasting.
        div => Op::Div;
        /// Elementwise power with broadcasting.
        pow => Op::Pow;
        /// Elementwise maximum (NaN propagates).
        maximum => Op::Maximum;
        /// Elementwise minimum (NaN propagates).
        minimum => Op::Minimum;
        /// Integer quotient rounded toward zero (`torch.div(.., rounding_mode="trunc")` of
        /// integers); a zero divisor gives 0.
        div_trunc => Op::IntBinary(IntOp::Div);
        /// Integer remainder with the dividend's sign (`torch.fmod` of integers).
        fmod => Op::IntBinary(IntOp::Rem);
        /// Integer remainder with the divisor's sign (`torch.remainder` of integers).
        remainder => Op::IntBinary(IntOp::Mod);
        /// Bitwise and of integers.
        bitwise_and => Op::IntBinary(IntOp::And);
        /// Bitwise or of integers.
        bitwise_or => Op::IntBinary(IntOp::Or);
        /// Bitwise exclusive or of integers.
        bitwise_xor => Op::IntBinary(IntOp::Xor);
        /// Integers shifted left (0 once the shift reaches the type's width).
        bitwise_left_shift => Op::IntBinary(IntOp::Shl);
        /// Integers shifted right (arithmetically for signed types).
        bitwise_right_shift => Op::IntBinary(IntOp::Shr);
    }

    compare_methods! {
        /// Elementwise `==` (bool result).
        eq, eq_scalar => CmpOp::Eq;
        /// Elementwise `!=` (bool result).
        ne, ne_scalar => CmpOp::Ne;
        /// Elementwise `<` (bool result).
        lt, lt_scalar => CmpOp::Lt;
        /// Elementwise `<=` (bool result).
        le, le_scalar => CmpOp::Le;
        /// Elementwise `>` (bool result).
        gt, gt_scalar => CmpOp::Gt;
        /// Elementwise `>=` (bool result).
        ge, ge_scalar => CmpOp::Ge;
    }

    /// A 0-d tensor holding `v` in a dtype that combines with `self` without surprise:
    /// self's dtype when it can hold `v` exactly, else f32.
    #[track_caller]
    pub(crate) fn scalar_like(&self, v: f64) -> Tensor {
        let d = self.dtype();
        // Whole numbers outside an integer dtype's range would saturate (u8: −1 → 0).
        let int_fits = v.fract() == 0.0
            && match d {
                DType::U8 => (0.0..=255.0).contains(&v),
                DType::I32 => (i32::MIN as f64..=i32::MAX as f64).contains(&v),
                DType::I64 => (i64::MIN as f64..i64::MAX as f64).contains(&v),
                _ => false,
            };
        let dtype = if d.is_float() || int_fits || (d == DType::Bool && (v == 0.0 || v == 1.0)) {
            d
        } else {
            DType::F32
        };
        Tensor::scalar(v, dtype)
    }

    /// `self · mul + add` in one pass.
    #[track_caller]
    pub fn affine(&self, mul: f64, add: f64) -> Tensor {
        dispatch(Op::Unary(UnaryOp::Affine { mul, add }), &[self])
    }

    /// Adds a scalar.
    #[track_caller]
    pub fn add_scalar(&self, v: f64) -> Tensor {
        self.affine(1.0, v)
    }

    /// Subtracts a scalar.
    #[track_caller]
    pub fn sub_scalar(&self, v: f64) -> Tensor {
        self.affine(1.0, -v)
    }

    /// Multiplies by a scalar.
    #[track_caller]
    pub fn mul_scalar(&self, v: f64) -> Tensor {
        self.affine(v, 0.0)
    }

    /// Divides by a scalar.
    #[track_caller]
    pub fn div_scalar(&self, v: f64) -> Tensor {
        // x · (1/v) equals x / v only when 1/v is exact (v a power of two); otherwise divide,
        // so `x / 10.0` rounds like true division (0.6, not 0.6000000000000001).
        let r = 1.0 / v;
        if self.dtype().is_float() && r.is_finite() && r.abs().log2().fract() == 0.0 {
            self.affine(r, 0.0)
        } else {
            self.div(&self.scalar_like(v))
        }
    }

    /// Negation.
    #[track_caller]
    pub fn neg(&self) -> Tensor {
        self.affine(-1.0, 0.0)
    }

    /// `self` raised to a scalar power.
    #[track_caller]
    pub fn pow_scalar(&self, p: f64) -> Tensor {
        dispatch(Op::Unary(UnaryOp::PowScalar(p)), &[self])
    }

    /// Square root.
    #[track_caller]
    pub fn sqrt(&self) -> Tensor {
        self.pow_scalar(0.5)
    }

    /// 1 / sqrt(x).
    #[track_caller]
    pub fn rsqrt(&self) -> Tensor {
        self.pow_scalar(-0.5)
    }

    /// x².
    #[track_caller]
    pub fn square(&self) -> Tensor {
        self.pow_scalar(2.0)
    }

    /// 1 / x.
    #[track_caller]
    pub fn recip(&self) -> Tensor {
        self.pow_scalar(-1.0)
    }

    /// x · sigmoid(x).
    #[track_caller]
    pub fn silu(&self) -> Tensor {
        self * &self.sigmoid()
    }

    /// log(1 + eˣ), computed stably as relu(x) + log(1 + e^−|x|).
    #[track_caller]
    pub fn softplus(&self) -> Tensor {
        &self.relu() + &self.abs().neg().exp().add_scalar(1.0).log()
    }

    /// Applies an elementwise unary op: every [`UnaryOp`], including those without a named
    /// method (`x.unary(UnaryOp::Exp)` is `x.exp()`).
    #[track_caller]
    pub fn unary(&self, op: UnaryOp) -> Tensor {
        dispatch(Op::Unary(op), &[self])
    }

    /// Clamps to `[min, max]`.
    #[track_caller]
    pub fn clamp(&self, min: f64, max: f64) -> Tensor {
        if min > max {
            panic!("clamp: min {min} is greater than max {max}");
        }
        self.unary(UnaryOp::Clamp {
            min: Some(min),
            max: Some(max),
        })
    }

    /// Clamps from below.
    #[track_caller]
    pub fn clamp_min(&self, min: f64) -> Tensor {
        self.unary(UnaryOp::Clamp {
            min: Some(min),
            max: None,
        })
    }

    /// Clamps from above.
    #[track_caller]
    pub fn clamp_max(&self, max: f64) -> Tensor {
        self.unary(UnaryOp::Clamp {
            min: None,
            max: Some(max),
        })
    }

    /// Elementwise and of truthiness (bool result).
    #[track_caller]
    pub fn logical_and(&self, other: &Tensor) -> Tensor {
        self.to_dtype(DType::Bool).mul(&other.to_dtype(DType::Bool))
    }

    /// Elementwise or of truthiness (bool result).
    #[track_caller]
    pub fn logical_or(&self, other: &Tensor) -> Tensor {
        self.to_dtype(DType::Bool)
            .maximum(&other.to_dtype(DType::Bool))
    }

    /// Elementwise exclusive or of truthiness (bool result).
    #[track_caller]
    pub fn logical_xor(&self, other: &Tensor) -> Tensor {
        self.to_dtype(DType::Bool).ne(&other.to_dtype(DType::Bool))
    }

    /// Converts to another dtype (`self` if already that dtype).
    #[track_caller]
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        dispatch(Op::Cast(dtype), &[self])
    }

    /// `a` where `cond` is true, else `b`, with broadcasting (like `torch.where`).
    #[track_caller]
    pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
        dispatch(Op::Where, &[cond, a, b])
    }

    /// `value` where `mask` is true, else `self`.
    #[track_caller]
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Tensor {
        Tensor::where_(mask, &Tensor::scalar(value, self.dtype()), self)
    }
}
