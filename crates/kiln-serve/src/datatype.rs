//! The Open Inference Protocol's tensor datatypes (`FP32`, `INT64`, …) and Kiln's dtypes.

use kiln_kernels::DType;

/// The protocol's name of a Kiln dtype.
pub fn protocol_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "FP32",
        DType::F64 => "FP64",
        DType::F16 => "FP16",
        DType::BF16 => "BF16",
        DType::I64 => "INT64",
        DType::I32 => "INT32",
        DType::U8 => "UINT8",
        DType::Bool => "BOOL",
        DType::I8 => "INT8",
        DType::I16 => "INT16",
        DType::U16 => "UINT16",
        DType::U32 => "UINT32",
        DType::U64 => "UINT64",
    }
}

/// The Kiln dtype of a protocol datatype name; `None` for one Kiln has no counterpart of
/// (`BYTES`, `FP8`).
pub fn from_protocol_name(name: &str) -> Option<DType> {
    Some(match name {
        "FP32" => DType::F32,
        "FP64" => DType::F64,
        "FP16" => DType::F16,
        "BF16" => DType::BF16,
        "INT64" => DType::I64,
        "INT32" => DType::I32,
        "UINT8" => DType::U8,
        "BOOL" => DType::Bool,
        "INT8" => DType::I8,
        "INT16" => DType::I16,
        "UINT16" => DType::U16,
        "UINT32" => DType::U32,
        "UINT64" => DType::U64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_round_trips_through_its_protocol_name() {
        for d in DType::ALL {
            assert_eq!(from_protocol_name(protocol_name(d)), Some(d));
        }
        assert_eq!(from_protocol_name("BYTES"), None);
    }
}
