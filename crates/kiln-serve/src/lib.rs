//! kiln-serve: serves Kiln graph files (`.kgraph`) and ONNX models (`.onnx`, imported by
//! `kiln-onnx`) from a model repository over the Open
//! Inference Protocol v2 — the protocol of KServe and NVIDIA Triton, so `tritonclient` and
//! other clients work unchanged — over HTTP and gRPC, and TF Serving's REST API, with dynamic
//! batching and Prometheus metrics.
//!
//! Layering: built on `kiln-runtime` and `kiln-kernels` (and `kiln-onnx`, which builds runtime
//! graphs) alone: a served graph needs no tensor, autograd, layers or trainer; plus axum and
//! tokio for HTTP and tonic for gRPC.
//!
//! Guide: *Serving* (`docs/src/serving.md`).

#![deny(missing_docs)]

pub mod batcher;
pub mod config;
pub mod datatype;
pub mod error;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod model;
pub mod names;
pub mod registry;
pub mod repository;
pub mod server;
pub mod tensor;
pub mod tf_serving;

pub use config::ModelConfig;
pub use error::ServeError;
pub use registry::Registry;
pub use server::{serve, serve_until, Bound, ServeOptions};
