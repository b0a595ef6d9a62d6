//! The domain's errors: [`ChatError`] is what an operation answers (and maps to the wire's
//! stable codes in one place, [`ChatError::code`]); [`PortError`] is what a port (a store,
//! the poster, push, media, tokens) fails with, keeping the adapter's own error as source.

pub use chat_protocol::ErrorCode;
use chat_protocol::ProtocolError;
use chat_protocol::frames::ErrorBody;

/// Any error, boxed: what an adapter's failure carries as its source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The backing service failed (a DynamoDB, S3, SNS or Management API error, a
    /// timeout). `what` names the call (`DynamoDB TransactWriteItems`).
    #[error("{what} failed: {}", chain(source.as_ref()))]
    Backend { what: &'static str, source: BoxError },
    /// What the backend holds has an unexpected shape.
    #[error("stored data has an unexpected shape: {0}")]
    Corrupt(#[source] BoxError),
    /// The data kept changing under a retried conditional write.
    #[error("{0}")]
    Contended(String),
    /// This function was not given what the code path needs (its template environment).
    #[error("this function has no {0}")]
    Unconfigured(&'static str),
}

impl PortError {
    pub fn backend(what: &'static str, source: impl Into<BoxError>) -> Self {
        PortError::Backend { what, source: source.into() }
    }

    pub fn corrupt(source: impl Into<BoxError>) -> Self {
        PortError::Corrupt(source.into())
    }
}

/// An error and its sources in one line: SDK errors say only "service error" at the top.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
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
    Internal(#[from] PortError),
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

    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ChatError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }

    /// The body of the `error` frame or HTTP error answer that says this.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string(), self.retry_after_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_keep_their_source_but_tell_clients_nothing() {
        let io = std::io::Error::other("connection reset");
        let err = ChatError::from(PortError::backend("DynamoDB Query", io));
        assert_eq!(err.to_string(), "internal error");
        assert_eq!(err.code(), ErrorCode::Internal);
        let ChatError::Internal(port) = &err else { panic!() };
        assert!(port.to_string().contains("DynamoDB Query failed: connection reset"), "{port}");
        assert!(std::error::Error::source(port).is_some());
    }

    #[test]
    fn protocol_errors_keep_their_code() {
        let err = ChatError::from(ProtocolError::too_large("big"));
        assert_eq!((err.code(), err.http_status()), (ErrorCode::TooLarge, 413));
        assert_eq!(ChatError::RateLimited { retry_after_ms: 7 }.body().retry_after_ms, Some(7));
    }
}
