//! ONNX tensors (initializers, `Constant` values, test data) as Kiln values: the element
//! types Kiln has, every storage form the format allows (raw little-endian bytes, the typed
//! repeated fields, external data files beside the model), each size checked before anything
//! is allocated.

use crate::error::OnnxError;
use crate::proto::tensor_proto::{DataLocation, DataType};
use crate::proto::TensorProto;
use kiln_kernels::shape::checked_numel;
use kiln_kernels::storage::{CpuStorage, StorageElement};
use kiln_kernels::{DType, OwnedOperand};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The Kiln dtype of an ONNX element type, or an error naming the type.
pub fn kiln_dtype(onnx: i32, what: &str) -> Result<DType, OnnxError> {
    let t = DataType::try_from(onnx).unwrap_or(DataType::Undefined);
    Ok(match t {
        DataType::Float => DType::F32,
        DataType::Double => DType::F64,
        DataType::Float16 => DType::F16,
        DataType::Bfloat16 => DType::BF16,
        DataType::Int64 => DType::I64,
        DataType::Int32 => DType::I32,
        DataType::Uint8 => DType::U8,
        DataType::Bool => DType::Bool,
        DataType::Int8 => DType::I8,
        DataType::Int16 => DType::I16,
        DataType::Uint16 => DType::U16,
        DataType::Uint32 => DType::U32,
        DataType::Uint64 => DType::U64,
        _ => {
            return Err(OnnxError::NotSupported(format!(
                "{what}: element type {} ({onnx}), which has no Kiln dtype (Kiln has f32, \
                 f64, f16, bf16, i64, i32, i16, i8, u64, u32, u16, u8 and bool),",
                t.as_str_name()
            )))
        }
    })
}

/// The Kiln dtype of an ONNX element type, the narrow types (float8, float4, 4- and 2-bit
/// integers) as the wider dtype that holds their values (see [`super::narrow`]).
pub fn holder_dtype(onnx: i32, what: &str) -> Result<DType, OnnxError> {
    match super::narrow::Narrow::of(onnx) {
        Some(n) => Ok(n.holder()),
        None => kiln_dtype(onnx, what),
    }
}

/// Dims of a tensor, each checked to be a size.
fn dims(t: &TensorProto, what: &str) -> Result<Vec<usize>, OnnxError> {
    t.dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                OnnxError::Invalid(format!("{what}: negative dim {d} in {:?}", t.dims))
            })
        })
        .collect()
}

/// Decodes `t`; `dir` is the model's folder, where external data files live (`None`: data
/// outside the model is refused).
pub fn decode(t: &TensorProto, dir: Option<&Path>, what: &str) -> Result<OwnedOperand, OnnxError> {
    if let Some(narrow) = super::narrow::Narrow::of(t.data_type()) {
        return decode_narrow(t, narrow, dir, what);
    }
    let dtype = kiln_dtype(t.data_type(), what)?;
    let shape = dims(t, what)?;
    let n = checked_numel(&shape, dtype.size_in_bytes())
        .map_err(|e| OnnxError::Invalid(format!("{what}: {e}")))?;
    if t.segment.is_some() {
        return Err(OnnxError::NotSupported(format!(
            "{what}: segmented tensors"
        )));
    }
    let bad = |found: usize| {
        OnnxError::Invalid(format!(
            "{what}: {dtype}{shape:?} needs {n} elements, the tensor holds {found}"
        ))
    };
    if t.data_location() == DataLocation::External {
        let bytes = external(t, dir, n * dtype.size_in_bytes(), what)?;
        return kiln_runtime::weights::operand_from_le_bytes(dtype, &shape, &bytes)
            .ok_or_else(|| bad(bytes.len() / dtype.size_in_bytes().max(1)));
    }
    if let Some(raw) = &t.raw_data {
        return kiln_runtime::weights::operand_from_le_bytes(dtype, &shape, raw)
            .ok_or_else(|| bad(raw.len() / dtype.size_in_bytes().max(1)));
    }
    let storage = match dtype {
        DType::F32 => typed(&t.float_data, n, |&v| v).map_err(bad)?,
        DType::F64 => typed(&t.double_data, n, |&v| v).map_err(bad)?,
        DType::I64 => typed(&t.int64_data, n, |&v| v).map_err(bad)?,
        DType::I32 => typed(&t.int32_data, n, |&v| v).map_err(bad)?,
        // The narrow types are stored widened in int32_data (f16 and bf16 as their bits).
        DType::U8 => typed(&t.int32_data, n, |&v| v as u8).map_err(bad)?,
        DType::I8 => typed(&t.int32_data, n, |&v| v as i8).map_err(bad)?,
        DType::I16 => typed(&t.int32_data, n, |&v| v as i16).map_err(bad)?,
        DType::U16 => typed(&t.int32_data, n, |&v| v as u16).map_err(bad)?,
        // The wide unsigned types are stored in uint64_data.
        DType::U32 => typed(&t.uint64_data, n, |&v| v as u32).map_err(bad)?,
        DType::U64 => typed(&t.uint64_data, n, |&v| v).map_err(bad)?,
        DType::Bool => typed(&t.int32_data, n, |&v| v != 0).map_err(bad)?,
        DType::F16 => typed(&t.int32_data, n, |&v| {
            kiln_kernels::f16::from_bits(v as u16)
        })
        .map_err(bad)?,
        DType::BF16 => typed(&t.int32_data, n, |&v| {
            kiln_kernels::bf16::from_bits(v as u16)
        })
        .map_err(bad)?,
    };
    Ok(OwnedOperand::dense(storage, &shape))
}

/// A tensor of a narrow type, widened: packed bytes (raw or external), or `int32_data` with
/// one element, or one packed byte, per entry.
fn decode_narrow(
    t: &TensorProto,
    narrow: super::narrow::Narrow,
    dir: Option<&Path>,
    what: &str,
) -> Result<OwnedOperand, OnnxError> {
    let shape = dims(t, what)?;
    let n = checked_numel(&shape, 1).map_err(|e| OnnxError::Invalid(format!("{what}: {e}")))?;
    let per = (8 / narrow.bits()) as usize;
    let bad = || {
        OnnxError::Invalid(format!(
            "{what}: {:?}{shape:?} does not match the data it holds",
            narrow
        ))
    };
    let values = if t.data_location() == DataLocation::External {
        let bytes = external(t, dir, n.div_ceil(per), what)?;
        narrow.unpack(&bytes, n).ok_or_else(bad)?
    } else if let Some(raw) = &t.raw_data {
        narrow.unpack(raw, n).ok_or_else(bad)?
    } else if t.int32_data.len() == n {
        t.int32_data
            .iter()
            .map(|&v| narrow.decode(v as u8))
            .collect()
    } else {
        let bytes: Vec<u8> = t.int32_data.iter().map(|&v| v as u8).collect();
        narrow.unpack(&bytes, n).ok_or_else(bad)?
    };
    Ok(OwnedOperand::dense(
        CpuStorage::from_f64s(narrow.holder(), values.into_iter()),
        &shape,
    ))
}

/// Elements from one of the typed repeated fields, which must hold exactly `n`.
fn typed<S, T: StorageElement>(
    field: &[S],
    n: usize,
    f: impl Fn(&S) -> T,
) -> Result<CpuStorage, usize> {
    if field.len() != n {
        return Err(field.len());
    }
    Ok(T::wrap(field.iter().map(f).collect()))
}

/// The bytes of a tensor stored in a file beside the model (`location`, `offset`, `length`
/// keys). The location must name a file inside the model's folder.
fn external(
    t: &TensorProto,
    dir: Option<&Path>,
    bytes: usize,
    what: &str,
) -> Result<Vec<u8>, OnnxError> {
    let invalid = |m: String| OnnxError::Invalid(format!("{what}: external data: {m}"));
    let dir = dir.ok_or_else(|| invalid("the model was not read from a file".into()))?;
    let (mut location, mut offset, mut length) = (None, 0u64, None);
    for e in &t.external_data {
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| invalid(format!("{} is not a number: {v:?}", e.key())))
        };
        match e.key() {
            "location" => location = Some(e.value().to_string()),
            "offset" => offset = number(e.value())?,
            "length" => length = Some(number(e.value())?),
            _ => {}
        }
    }
    let location = location.ok_or_else(|| invalid("no location".into()))?;
    let relative = Path::new(&location);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(invalid(format!(
            "location {location:?} is not a file inside the model's folder"
        )));
    }
    if let Some(l) = length {
        if l != bytes as u64 {
            return Err(invalid(format!(
                "length {l}, the tensor needs {bytes} bytes"
            )));
        }
    }
    let path = dir.join(relative);
    let io = |source| OnnxError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if offset
        .checked_add(bytes as u64)
        .is_none_or(|end| end > size)
    {
        return Err(invalid(format!(
            "{location}: {bytes} bytes at offset {offset} pass the end of the file ({size} bytes)"
        )));
    }
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut data = vec![0u8; bytes];
    file.read_exact(&mut data).map_err(io)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tensor_proto::DataType;

    fn narrow(t: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: Some(t as i32),
            raw_data: Some(raw),
            ..Default::default()
        }
    }

    #[test]
    fn packed_narrow_tensors_decode_widened_and_short_data_is_an_error() {
        // int4: 0x8F = −1 (low nibble), −8 (high); held in i8.
        let v = decode(&narrow(DataType::Int4, &[2], vec![0x8F]), None, "t").unwrap();
        assert_eq!(v.operand().dtype(), DType::I8);
        assert_eq!(
            kiln_kernels::cpu::to_contiguous_vec::<i8>(v.operand()),
            [-1, -8]
        );
        // float8 E4M3FN: 0x38 is 1.0, 0x7E is 448; held in f32.
        let f = decode(
            &narrow(DataType::Float8e4m3fn, &[2], vec![0x38, 0x7E]),
            None,
            "t",
        )
        .unwrap();
        assert_eq!(
            kiln_kernels::cpu::to_contiguous_vec::<f32>(f.operand()),
            [1.0, 448.0]
        );
        // Three int4 values need two bytes; one is a typed error, not a panic.
        let e = decode(&narrow(DataType::Int4, &[3], vec![0x11]), None, "t").unwrap_err();
        assert!(matches!(e, OnnxError::Invalid(_)), "{e}");
        let e = decode(&narrow(DataType::Float8e5m2, &[4], vec![0; 3]), None, "t").unwrap_err();
        assert!(matches!(e, OnnxError::Invalid(_)), "{e}");
    }
}
