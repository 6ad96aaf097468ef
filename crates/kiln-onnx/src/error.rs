//! What exporting and importing can fail with.

use thiserror::Error;

/// An ONNX export, import or file error.
#[derive(Debug, Error)]
pub enum OnnxError {
    /// The graph has an op (or an op parameter) with no ONNX lowering; names the op.
    #[error("ONNX export: {0}")]
    Unsupported(String),
    /// The graph is not an inference graph, or its shapes cannot be written.
    #[error("ONNX export: {0}")]
    Graph(String),
    /// Import: the bytes are not a valid ONNX model (a bad protobuf, a tensor whose data does
    /// not match its dims, a value used before it is defined, …).
    #[error("ONNX import: invalid model: {0}")]
    Invalid(String),
    /// Import: a model-level feature Kiln does not import (an element type, a tensor form).
    #[error("ONNX import: {0} is not supported")]
    NotSupported(String),
    /// Import: an op Kiln does not import, named with its domain and opset.
    #[error(
        "ONNX import: node {node:?}: op {op} of domain {domain:?} (opset {opset}) is not supported"
    )]
    UnsupportedOp {
        /// The node's name (or its first output's, when it has none).
        node: String,
        /// The op type.
        op: String,
        /// The op's domain (`""` is the default `ai.onnx`).
        domain: String,
        /// The model's opset of that domain.
        opset: i64,
    },
    /// Import: a node Kiln cannot import as written (an attribute value, an input that must be
    /// a constant, shapes or dtypes the op refuses).
    #[error("ONNX import: node {node:?} ({op}): {reason}")]
    Node {
        /// The node's name (or its first output's).
        node: String,
        /// The op type.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
