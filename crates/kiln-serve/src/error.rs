//! What a request can fail with, and the HTTP status each maps to.

use thiserror::Error;

/// A request's failure. The message names the field or the model, for the client.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ServeError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such model or version (404).
    #[error("{0}")]
    NotFound(String),
    /// The model cannot take the request now: queue full, not ready, shutting down (503).
    #[error("{0}")]
    Unavailable(String),
    /// The request's deadline passed before its batch ran (504).
    #[error("{0}")]
    Timeout(String),
    /// The model failed while running (500); the server keeps serving.
    #[error("{0}")]
    Internal(String),
}

impl ServeError {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ServeError::BadRequest(_) => 400,
            ServeError::NotFound(_) => 404,
            ServeError::Unavailable(_) => 503,
            ServeError::Timeout(_) => 504,
            ServeError::Internal(_) => 500,
        }
    }
}
