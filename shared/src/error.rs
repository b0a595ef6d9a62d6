//! The domain error, and the one place it maps to the wire's stable error codes.

pub use chat_protocol::ErrorCode;
use chat_protocol::ProtocolError;
use chat_protocol::frames::ErrorBody;

use crate::store::StoreError;

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

impl From<ProtocolError> for ChatError {
    fn from(err: ProtocolError) -> Self {
        match err.code {
            ErrorCode::TooLarge => ChatError::TooLarge(err.message),
            _ => ChatError::InvalidRequest(err.message),
        }
    }
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
        self.code().http_status()
    }

    /// The body of the `error` frame or HTTP error answer that says this.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string(), self.retry_after_ms())
    }

    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ChatError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }
}
