//! The domain error, and the one place it maps to the wire's stable error codes.

use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// Stable machine-readable codes of `error` frames and HTTP error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooLarge,
    RateLimited,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The thing exists already (a taken username, say).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("too many requests; retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// Details are logged, never sent: clients get a generic message.
    #[error("internal error")]
    Internal(#[from] StoreError),
}

impl ChatError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            ChatError::Unauthorized(_) => ErrorCode::Unauthorized,
            ChatError::Forbidden(_) => ErrorCode::Forbidden,
            ChatError::NotFound(_) => ErrorCode::NotFound,
            ChatError::Conflict(_) => ErrorCode::Conflict,
            ChatError::TooLarge(_) => ErrorCode::TooLarge,
            ChatError::RateLimited { .. } => ErrorCode::RateLimited,
            ChatError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn http_status(&self) -> u16 {
        match self.code() {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
        }
    }

    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ChatError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }
}
