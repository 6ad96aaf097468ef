//! Tensors as the protocol carries them: a dtype, a shape and the elements' little-endian
//! bytes — the layout of the binary tensor data extension, of graph weights and of batches
//! (joining requests along dim 0 is joining their bytes).

use half::{bf16, f16};
use kiln_kernels::{DType, Operand, OwnedOperand};
use serde_json::Value;

/// A dense row-major tensor held as little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Element type.
    pub dtype: DType,
    /// Dims, outermost first.
    pub shape: Vec<usize>,
    /// `shape`'s element count × the dtype's size, little-endian.
    pub bytes: Vec<u8>,
}

/// The most dims a request's tensor may have (no served graph takes more).
pub const MAX_RANK: usize = 16;

/// Nesting deeper than this in a JSON `data` array is refused (no tensor has that many dims).
pub(crate) const MAX_JSON_DEPTH: usize = 32;

impl HostTensor {
    /// Elements in `shape` of `dtype`, or why there cannot be that many: the kernel layer's
    /// one size check (element count and bytes bounded), so a request is refused where a
    /// tensor would be.
    fn element_count(dtype: DType, shape: &[usize]) -> Result<usize, String> {
        if shape.len() > MAX_RANK {
            return Err(format!(
                "`shape` has {} dims (at most {MAX_RANK})",
                shape.len()
            ));
        }
        kiln_kernels::shape::checked_numel(shape, dtype.size_in_bytes())
            .map_err(|e| format!("shape {shape:?}: {e}"))
    }

    /// The tensor of `dtype` and `shape` whose elements are `data`, a JSON array flat or nested
    /// in row-major order (the protocol allows both). The message of an error names what is
    /// wrong, for the caller to prefix with the input's name.
    pub fn from_json(dtype: DType, shape: &[usize], data: &Value) -> Result<HostTensor, String> {
        let want = HostTensor::element_count(dtype, shape)?;
        let mut bytes = Vec::with_capacity(want.saturating_mul(dtype.size_in_bytes()).min(1 << 26));
        let mut count = 0usize;
        // Depth-first over nested arrays without recursion: a hostile body cannot overflow
        // the stack.
        let mut stack: Vec<std::slice::Iter<'_, Value>> = Vec::new();
        match data {
            Value::Array(items) => stack.push(items.iter()),
            scalar => {
                push_element(dtype, scalar, &mut bytes)?;
                count = 1;
            }
        }
        while let Some(top) = stack.last_mut() {
            match top.next() {
                None => {
                    stack.pop();
                }
                Some(Value::Array(inner)) => {
                    if stack.len() >= MAX_JSON_DEPTH {
                        return Err(format!("`data` nests deeper than {MAX_JSON_DEPTH} levels"));
                    }
                    stack.push(inner.iter());
                }
                Some(v) => {
                    count += 1;
                    if count > want {
                        return Err(format!(
                            "`data` has more than the {want} elements of shape {shape:?}"
                        ));
                    }
                    push_element(dtype, v, &mut bytes)
                        .map_err(|e| format!("element {}: {e}", count - 1))?;
                }
            }
        }
        if count != want {
            return Err(format!(
                "`data` has {count} elements but shape {shape:?} has {want}"
            ));
        }
        Ok(HostTensor {
            dtype,
            shape: shape.to_vec(),
            bytes,
        })
    }

    /// The tensor of `dtype` and `shape` with these little-endian bytes (the binary tensor
    /// extension); an error when their length does not match.
    pub fn from_bytes(dtype: DType, shape: &[usize], bytes: Vec<u8>) -> Result<HostTensor, String> {
        let want = HostTensor::element_count(dtype, shape)? * dtype.size_in_bytes();
        if bytes.len() != want {
            return Err(format!(
                "{} bytes of binary data, but shape {shape:?} of {} needs {want}",
                bytes.len(),
                crate::datatype::protocol_name(dtype)
            ));
        }
        Ok(HostTensor {
            dtype,
            shape: shape.to_vec(),
            bytes,
        })
    }

    /// The elements as a flat JSON array (row-major), as the protocol answers.
    pub fn to_json(&self) -> Value {
        fn each<const N: usize>(b: &[u8], f: impl Fn([u8; N]) -> Value) -> Value {
            Value::Array(
                b.chunks_exact(N)
                    .map(|c| f(c.try_into().expect("chunk of N bytes")))
                    .collect(),
            )
        }
        let float = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
        match self.dtype {
            DType::F32 => each(&self.bytes, |c| float(f32::from_le_bytes(c) as f64)),
            DType::F64 => each(&self.bytes, |c| float(f64::from_le_bytes(c))),
            DType::F16 => each(&self.bytes, |c| {
                float(f16::from_bits(u16::from_le_bytes(c)).to_f64())
            }),
            DType::BF16 => each(&self.bytes, |c| {
                float(bf16::from_bits(u16::from_le_bytes(c)).to_f64())
            }),
            DType::I64 => each(&self.bytes, |c| Value::from(i64::from_le_bytes(c))),
            DType::I32 => each(&self.bytes, |c| Value::from(i32::from_le_bytes(c))),
            DType::U8 => each(&self.bytes, |[b]: [u8; 1]| Value::from(b)),
            DType::Bool => each(&self.bytes, |[b]: [u8; 1]| Value::from(b != 0)),
            DType::I8 => each(&self.bytes, |c| Value::from(i8::from_le_bytes(c))),
            DType::I16 => each(&self.bytes, |c| Value::from(i16::from_le_bytes(c))),
            DType::U16 => each(&self.bytes, |c| Value::from(u16::from_le_bytes(c))),
            DType::U32 => each(&self.bytes, |c| Value::from(u32::from_le_bytes(c))),
            DType::U64 => each(&self.bytes, |c| Value::from(u64::from_le_bytes(c))),
        }
    }

    /// The tensor as a kernel operand (a copy into a buffer of the dtype).
    pub fn to_operand(&self) -> OwnedOperand {
        kiln_runtime::weights::operand_from_le_bytes(self.dtype, &self.shape, &self.bytes)
            .expect("a HostTensor's bytes match its shape and dtype")
    }

    /// A kernel operand's elements as a host tensor.
    pub fn from_operand(o: Operand<'_>) -> HostTensor {
        HostTensor {
            dtype: o.dtype(),
            shape: o.shape().to_vec(),
            bytes: kiln_runtime::weights::operand_bytes(o),
        }
    }
}

/// Appends one JSON element as `dtype`'s little-endian bytes.
fn push_element(dtype: DType, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let float = || v.as_f64().ok_or_else(|| format!("`{v}` is not a number"));
    let int = |lo: i64, hi: i64| -> Result<i64, String> {
        match v.as_i64() {
            Some(i) if (lo..=hi).contains(&i) => Ok(i),
            Some(i) => Err(format!(
                "{i} is out of range for {}",
                crate::datatype::protocol_name(dtype)
            )),
            None => Err(format!("`{v}` is not an integer")),
        }
    };
    match dtype {
        DType::F32 => out.extend((float()? as f32).to_le_bytes()),
        DType::F64 => out.extend(float()?.to_le_bytes()),
        DType::F16 => out.extend(f16::from_f64(float()?).to_bits().to_le_bytes()),
        DType::BF16 => out.extend(bf16::from_f64(float()?).to_bits().to_le_bytes()),
        DType::I64 => out.extend(int(i64::MIN, i64::MAX)?.to_le_bytes()),
        DType::I32 => out.extend((int(i32::MIN as i64, i32::MAX as i64)? as i32).to_le_bytes()),
        DType::U8 => out.push(int(0, 255)? as u8),
        DType::I8 => out.extend((int(i8::MIN as i64, i8::MAX as i64)? as i8).to_le_bytes()),
        DType::I16 => out.extend((int(i16::MIN as i64, i16::MAX as i64)? as i16).to_le_bytes()),
        DType::U16 => out.extend((int(0, u16::MAX as i64)? as u16).to_le_bytes()),
        DType::U32 => out.extend((int(0, u32::MAX as i64)? as u32).to_le_bytes()),
        DType::U64 => match v.as_u64() {
            Some(u) => out.extend(u.to_le_bytes()),
            None => return Err(format!("`{v}` is not an integer in range for UINT64")),
        },
        DType::Bool => match v {
            Value::Bool(b) => out.push(*b as u8),
            _ => return Err(format!("`{v}` is not true or false")),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_flat_data_give_the_same_bytes() {
        let flat = HostTensor::from_json(DType::F32, &[2, 2], &json!([1, 2.5, -3, 4])).unwrap();
        let nested =
            HostTensor::from_json(DType::F32, &[2, 2], &json!([[1, 2.5], [-3, 4]])).unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.to_json(), json!([1.0, 2.5, -3.0, 4.0]));
    }

    #[test]
    fn counts_types_and_ranges_are_checked() {
        let err = |d, s: &[usize], v| HostTensor::from_json(d, s, &v).unwrap_err();
        assert!(err(DType::F32, &[3], json!([1, 2])).contains("has 2 elements but shape [3] has 3"));
        assert!(err(DType::F32, &[1], json!([1, 2])).contains("more than the 1 elements"));
        assert!(err(DType::F32, &[1], json!(["a"])).contains("is not a number"));
        assert!(err(DType::I64, &[1], json!([1.5])).contains("is not an integer"));
        assert!(err(DType::U8, &[1], json!([256])).contains("out of range for UINT8"));
        assert!(err(DType::Bool, &[1], json!([1])).contains("not true or false"));
        // The narrow and unsigned integer types check their ranges too.
        assert!(err(DType::I8, &[1], json!([128])).contains("out of range for INT8"));
        assert!(err(DType::U16, &[1], json!([-1])).contains("out of range for UINT16"));
        assert!(err(DType::U64, &[1], json!([-1])).contains("UINT64"));
        let ok = HostTensor::from_json(DType::I16, &[2], &json!([-32768, 32767])).unwrap();
        assert_eq!(ok.to_json(), json!([-32768, 32767]));
        let deep = (0..40).fold(json!(1), |v, _| json!([v]));
        assert!(err(DType::F32, &[1], deep).contains("nests deeper"));
        assert!(HostTensor::from_bytes(DType::F32, &[2], vec![0; 7])
            .unwrap_err()
            .contains("7 bytes"));
    }

    #[test]
    fn an_operand_round_trips() {
        let t = HostTensor::from_json(DType::I64, &[3], &json!([1, -2, 3])).unwrap();
        let back = HostTensor::from_operand(t.to_operand().operand());
        assert_eq!(back, t);
    }
}
