//! What exporting can fail with.

use thiserror::Error;

/// An ONNX export or file error.
#[derive(Debug, Error)]
pub enum OnnxError {
    /// The graph has an op (or an op parameter) with no ONNX lowering; names the op.
    #[error("ONNX export: {0}")]
    Unsupported(String),
    /// The graph is not an inference graph, or its shapes cannot be written.
    #[error("ONNX export: {0}")]
    Graph(String),
    /// Writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
