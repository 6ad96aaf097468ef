//! The mapping from Kiln's element types to ONNX's, shared by export and import.

use crate::proto::tensor_proto::DataType;
use kiln_kernels::minifloat::{Minifloat, PowerRounding};
use kiln_kernels::DType;

/// ONNX's element type of a Kiln dtype.
pub(crate) fn onnx_dtype(d: DType) -> i32 {
    (match d {
        DType::F32 => DataType::Float,
        DType::F64 => DataType::Double,
        DType::F16 => DataType::Float16,
        DType::BF16 => DataType::Bfloat16,
        DType::I64 => DataType::Int64,
        DType::I32 => DataType::Int32,
        DType::U8 => DataType::Uint8,
        DType::Bool => DataType::Bool,
        DType::I8 => DataType::Int8,
        DType::I16 => DataType::Int16,
        DType::U16 => DataType::Uint16,
        DType::U32 => DataType::Uint32,
        DType::U64 => DataType::Uint64,
    }) as i32
}

/// The ONNX type of a small float format, and its `round_mode` for E8M0.
pub(crate) fn onnx_minifloat(f: Minifloat) -> (DataType, &'static str) {
    match f {
        Minifloat::E4M3Fn => (DataType::Float8e4m3fn, ""),
        Minifloat::E4M3Fnuz => (DataType::Float8e4m3fnuz, ""),
        Minifloat::E5M2 => (DataType::Float8e5m2, ""),
        Minifloat::E5M2Fnuz => (DataType::Float8e5m2fnuz, ""),
        Minifloat::E2M1 => (DataType::Float4e2m1, ""),
        Minifloat::E8M0(PowerRounding::Up) => (DataType::Float8e8m0, "up"),
        Minifloat::E8M0(PowerRounding::Down) => (DataType::Float8e8m0, "down"),
        Minifloat::E8M0(PowerRounding::Nearest) => (DataType::Float8e8m0, "nearest"),
    }
}
