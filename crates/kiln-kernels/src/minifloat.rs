//! The 8- and 4-bit float formats of low-precision inference (OCP float8 E4M3 and E5M2, the
//! "FNUZ" variants without negative zero, float4 E2M1 and the exponent-only E8M0 scales):
//! rounding a value to the nearest one a format holds, and decoding a format's bits. Kiln
//! keeps such values exactly in f32 (every one of them is an f32), so a format is a rounding
//! rule ([`crate::ops::UnaryOp::Minifloat`]) rather than a storage type.

/// A small float format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Minifloat {
    /// float8 E4M3 "FN": no infinities, one NaN pattern per sign, max 448.
    E4M3Fn,
    /// float8 E4M3 "FNUZ": no infinities, no negative zero (0x80 is NaN), max 240.
    E4M3Fnuz,
    /// float8 E5M2: IEEE-like with infinities, max 57344.
    E5M2,
    /// float8 E5M2 "FNUZ": no infinities, no negative zero, max 57344.
    E5M2Fnuz,
    /// float4 E2M1: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}; no infinities or NaN.
    E2M1,
    /// E8M0: powers of two 2⁻¹²⁷…2¹²⁷ (no sign, no zero; 0xFF is NaN), rounded as given.
    E8M0(PowerRounding),
}

/// How a value between two powers of two becomes one (E8M0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PowerRounding {
    /// The larger power.
    Up,
    /// The smaller power.
    Down,
    /// The nearer power (halfway goes up).
    Nearest,
}

/// The layout of a sign-exponent-mantissa format.
struct Layout {
    mantissa: i32,
    bias: i32,
    exponent: i32,
    /// Largest finite value.
    max: f64,
    infinities: bool,
    nan: bool,
    negative_zero: bool,
}

impl Minifloat {
    fn layout(self) -> Layout {
        let l = |exponent, mantissa, bias, max, infinities, nan, negative_zero| Layout {
            mantissa,
            bias,
            exponent,
            max,
            infinities,
            nan,
            negative_zero,
        };
        match self {
            Minifloat::E4M3Fn => l(4, 3, 7, 448.0, false, true, true),
            Minifloat::E4M3Fnuz => l(4, 3, 8, 240.0, false, true, false),
            Minifloat::E5M2 => l(5, 2, 15, 57344.0, true, true, true),
            Minifloat::E5M2Fnuz => l(5, 2, 16, 57344.0, false, true, false),
            Minifloat::E2M1 => l(2, 1, 1, 6.0, false, false, true),
            Minifloat::E8M0(_) => l(8, 0, 127, 2f64.powi(127), false, true, false),
        }
    }

    /// Bits per value.
    pub fn bits(self) -> u32 {
        match self {
            Minifloat::E2M1 => 4,
            _ => 8,
        }
    }

    /// `v` rounded to the nearest value of the format (ties to even), as the ONNX `Cast`
    /// to it computes: out of range it saturates to the largest finite value (infinities
    /// too) when `saturate`, else it becomes infinity where the format has one, NaN where
    /// not. Float4 always saturates and maps NaN to −0 (it has no NaN).
    pub fn round(self, v: f64, saturate: bool) -> f64 {
        if let Minifloat::E8M0(mode) = self {
            return round_power(v, mode, saturate);
        }
        let f = self.layout();
        let saturate = saturate || self == Minifloat::E2M1;
        if v.is_nan() {
            return if f.nan { f64::NAN } else { -0.0 };
        }
        let a = v.abs();
        let overflow = |a: f64| -> f64 {
            if saturate {
                f.max
            } else if f.infinities {
                f64::INFINITY
            } else if a.is_infinite() || f.nan {
                f64::NAN
            } else {
                f.max
            }
        };
        let r = if a.is_infinite() {
            overflow(a)
        } else if a == 0.0 {
            0.0
        } else {
            // The quantum at a's exponent (no finer than the subnormals'): a / quantum is
            // exact in f64, and rounding it to an integer is the format's rounding.
            let e = exponent_of(a).max(1 - f.bias);
            let quantum = 2f64.powi(e - f.mantissa);
            let r = (a / quantum).round_ties_even() * quantum;
            if r > f.max {
                overflow(r)
            } else {
                r
            }
        };
        if r.is_nan() {
            return r;
        }
        if v.is_sign_negative() && (r != 0.0 || f.negative_zero) {
            -r
        } else {
            r
        }
    }

    /// The value of one element's bits (the low `bits()` bits of `b`).
    pub fn decode(self, b: u8) -> f64 {
        if let Minifloat::E8M0(_) = self {
            return if b == 0xFF {
                f64::NAN
            } else {
                2f64.powi(b as i32 - 127)
            };
        }
        let f = self.layout();
        let width = 1 + f.exponent + f.mantissa;
        let b = b as u32 & ((1 << width) - 1);
        let sign = b >> (width - 1) & 1;
        let exp = (b >> f.mantissa) as i32 & ((1 << f.exponent) - 1);
        let man = (b & ((1 << f.mantissa) - 1)) as i32;
        if !f.negative_zero && sign == 1 && exp == 0 && man == 0 {
            return f64::NAN; // FNUZ: 0x80 is NaN
        }
        let top = (1 << f.exponent) - 1;
        if exp == top {
            match self {
                Minifloat::E5M2 if man == 0 => return signed(sign, f64::INFINITY),
                Minifloat::E5M2 => return f64::NAN,
                Minifloat::E4M3Fn if man == (1 << f.mantissa) - 1 => return f64::NAN,
                _ => {}
            }
        }
        let scale = 2f64.powi(-f.mantissa);
        let v = if exp == 0 {
            man as f64 * scale * 2f64.powi(1 - f.bias)
        } else {
            (1.0 + man as f64 * scale) * 2f64.powi(exp - f.bias)
        };
        signed(sign, v)
    }
}

fn signed(sign: u32, v: f64) -> f64 {
    if sign == 1 {
        -v
    } else {
        v
    }
}

/// The exponent of a positive finite `a`: `⌊log₂ a⌋`, exactly (from the bits).
fn exponent_of(a: f64) -> i32 {
    let bits = a.to_bits();
    let biased = ((bits >> 52) & 0x7FF) as i32;
    if biased == 0 {
        // Subnormal f64: far below any small format's range.
        -1075
    } else {
        biased - 1023
    }
}

/// E8M0: the power of two `v` rounds to (its magnitude; NaN and negatives have none).
fn round_power(v: f64, mode: PowerRounding, saturate: bool) -> f64 {
    if v.is_nan() || v < 0.0 {
        return f64::NAN;
    }
    if v.is_infinite() {
        return if saturate { 2f64.powi(127) } else { f64::NAN };
    }
    if v == 0.0 {
        return 2f64.powi(-127);
    }
    let e = exponent_of(v);
    let low = 2f64.powi(e);
    let e = if v == low {
        e
    } else {
        match mode {
            PowerRounding::Up => e + 1,
            PowerRounding::Down => e,
            PowerRounding::Nearest if v >= 1.5 * low => e + 1,
            PowerRounding::Nearest => e,
        }
    };
    if e > 127 {
        return if saturate { 2f64.powi(127) } else { f64::NAN };
    }
    2f64.powi(e.max(-127))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_decodes_to_a_value_that_rounds_to_itself() {
        for f in [
            Minifloat::E4M3Fn,
            Minifloat::E4M3Fnuz,
            Minifloat::E5M2,
            Minifloat::E5M2Fnuz,
            Minifloat::E2M1,
        ] {
            for b in 0..(1u32 << f.bits()) {
                let v = f.decode(b as u8);
                if v.is_nan() || v.is_infinite() {
                    continue;
                }
                assert_eq!(f.round(v, true), v, "{f:?} {b:#x}");
            }
        }
    }

    #[test]
    fn known_values_round_as_the_ocp_formats_define() {
        let fn8 = Minifloat::E4M3Fn;
        assert_eq!(fn8.round(0.478_925_466_537_475_6, true), 0.46875);
        assert_eq!(fn8.round(1e6, true), 448.0);
        assert!(fn8.round(1e6, false).is_nan());
        assert_eq!(fn8.round(f64::INFINITY, true), 448.0);
        assert!(fn8.round(-1e-7, true).is_sign_negative());
        assert_eq!(fn8.decode(0x7E), 448.0);
        assert!(fn8.decode(0x7F).is_nan());
        assert_eq!(Minifloat::E5M2.round(1e6, false), f64::INFINITY);
        assert_eq!(Minifloat::E5M2Fnuz.round(0.4789, true), 0.5);
        assert!(!Minifloat::E5M2Fnuz.round(-1e-7, true).is_sign_negative());
        assert!(Minifloat::E4M3Fnuz.decode(0x80).is_nan());
        let f4 = Minifloat::E2M1;
        assert_eq!(f4.round(0.25, true), 0.0);
        assert_eq!(f4.round(-3.5, true), -4.0);
        assert_eq!(f4.round(9.0, true), 6.0);
        let up = Minifloat::E8M0(PowerRounding::Up);
        assert_eq!(up.round(1.1, true), 2.0);
        assert_eq!(up.round(0.124, true), 0.125);
        assert_eq!(up.round(0.0, true), 2f64.powi(-127));
    }
}
