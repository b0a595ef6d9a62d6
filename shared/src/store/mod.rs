//! DynamoDB repositories: one per table, keys built only in [`keys`], items mapped
//! with serde_dynamo.

pub mod channels;
pub mod keys;
pub mod messages;
pub mod presence;
pub mod rate_limits;
pub mod users;

use aws_sdk_dynamodb::error::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;

pub use channels::{ChannelMeta, Channels, CreateChannelError, Member, Membership, MembershipChangeError, Roster};
pub use messages::{AppendOutcome, ChangeRefused, MessageLog, Order};
pub use presence::Presence;
pub use rate_limits::RateLimiter;
pub use users::{UserRecord, Users};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} failed: {detail}")]
    Aws { operation: &'static str, detail: String },
    #[error("stored item has an unexpected shape: {0}")]
    Item(#[from] serde_dynamo::Error),
    #[error("{0}")]
    Conflict(String),
    #[error("request could not be built: {0}")]
    Build(String),
}

impl StoreError {
    pub fn build(err: aws_sdk_dynamodb::error::BuildError) -> Self {
        StoreError::Build(err.to_string())
    }

    /// SdkError's Display says only "service error"; keep the whole chain for the logs.
    pub fn aws<E, R>(operation: &'static str, err: &SdkError<E, R>) -> Self
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        StoreError::Aws { operation, detail: DisplayErrorContext(err).to_string() }
    }
}
