//! ONNX's narrow element types — float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ), float4 E2M1,
//! E8M0 scales, and the 4- and 2-bit integers — which Kiln holds widened: each value exactly,
//! the floats in f32, the signed integers in i8 and the unsigned in u8. A model input or
//! output of such a type is a value of the wider dtype; `Cast`, `CastLike` and
//! `QuantizeLinear` to one round and saturate as the narrow type does, so every value stays
//! one the type can hold.

use crate::proto::tensor_proto::DataType;
use kiln_kernels::minifloat::{Minifloat, PowerRounding};
use kiln_kernels::DType;

/// A narrow ONNX type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Narrow {
    /// A small float format.
    Float(Minifloat),
    /// An integer of `bits` bits, signed or not.
    Int { bits: u32, signed: bool },
}

impl Narrow {
    /// The narrow type of an ONNX element type, if it is one.
    pub fn of(onnx: i32) -> Option<Narrow> {
        let t = DataType::try_from(onnx).ok()?;
        Some(match t {
            DataType::Float8e4m3fn => Narrow::Float(Minifloat::E4M3Fn),
            DataType::Float8e4m3fnuz => Narrow::Float(Minifloat::E4M3Fnuz),
            DataType::Float8e5m2 => Narrow::Float(Minifloat::E5M2),
            DataType::Float8e5m2fnuz => Narrow::Float(Minifloat::E5M2Fnuz),
            DataType::Float4e2m1 => Narrow::Float(Minifloat::E2M1),
            DataType::Float8e8m0 => Narrow::Float(Minifloat::E8M0(PowerRounding::Up)),
            DataType::Int4 => Narrow::Int {
                bits: 4,
                signed: true,
            },
            DataType::Uint4 => Narrow::Int {
                bits: 4,
                signed: false,
            },
            DataType::Int2 => Narrow::Int {
                bits: 2,
                signed: true,
            },
            DataType::Uint2 => Narrow::Int {
                bits: 2,
                signed: false,
            },
            _ => return None,
        })
    }

    /// The Kiln dtype that holds its values.
    pub fn holder(self) -> DType {
        match self {
            Narrow::Float(_) => DType::F32,
            Narrow::Int { signed: true, .. } => DType::I8,
            Narrow::Int { signed: false, .. } => DType::U8,
        }
    }

    /// Bits per element in a packed tensor.
    pub fn bits(self) -> u32 {
        match self {
            Narrow::Float(f) => f.bits(),
            Narrow::Int { bits, .. } => bits,
        }
    }

    /// The smallest and largest integer (integers only).
    pub fn int_range(self) -> Option<(f64, f64)> {
        match self {
            Narrow::Int { bits, signed: true } => {
                let h = (1i64 << (bits - 1)) as f64;
                Some((-h, h - 1.0))
            }
            Narrow::Int {
                bits,
                signed: false,
            } => Some((0.0, ((1i64 << bits) - 1) as f64)),
            Narrow::Float(_) => None,
        }
    }

    /// One element's value from its bits.
    pub fn decode(self, b: u8) -> f64 {
        match self {
            Narrow::Float(f) => f.decode(b),
            Narrow::Int { bits, signed } => {
                let v = (b as u32 & ((1 << bits) - 1)) as i64;
                if signed && v >= 1 << (bits - 1) {
                    (v - (1 << bits)) as f64
                } else {
                    v as f64
                }
            }
        }
    }

    /// `n` elements from packed bytes (sub-byte types low bits first).
    pub fn unpack(self, bytes: &[u8], n: usize) -> Option<Vec<f64>> {
        let bits = self.bits() as usize;
        let per = 8 / bits;
        if bytes.len() != n.div_ceil(per) {
            return None;
        }
        Some(
            (0..n)
                .map(|i| self.decode(bytes[i / per] >> ((i % per) * bits)))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_byte_integers_unpack_low_bits_first_and_sign_extend() {
        let i4 = Narrow::of(DataType::Int4 as i32).unwrap();
        // 0x8F: low nibble 0xF = −1, high nibble 0x8 = −8; 0x07: 7 (and a padding nibble).
        assert_eq!(i4.unpack(&[0x8F, 0x07], 3), Some(vec![-1.0, -8.0, 7.0]));
        let u2 = Narrow::of(DataType::Uint2 as i32).unwrap();
        assert_eq!(
            u2.unpack(&[0b11_10_01_00], 4),
            Some(vec![0.0, 1.0, 2.0, 3.0])
        );
        assert_eq!(u2.unpack(&[0, 0], 4), None);
        assert_eq!(i4.int_range(), Some((-8.0, 7.0)));
    }
}
