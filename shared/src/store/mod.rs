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

/// A DynamoDB item as the SDK holds it.
pub(crate) type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// Reads items by key: one BatchGetItem per 100 keys (its limit), retrying with backoff the
/// keys DynamoDB leaves unprocessed under load.
pub(crate) async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    projection: Option<&str>,
    consistent: bool,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::new();
    for chunk in keys.chunks(100) {
        let batch = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .set_keys(Some(chunk.to_vec()))
            .set_projection_expression(projection.map(str::to_owned))
            .consistent_read(consistent)
            .build()
            .map_err(StoreError::build)?;
        let mut request = std::collections::HashMap::from([(table.to_owned(), batch)]);
        let mut attempt = 0u32;
        while !request.is_empty() {
            if attempt == 8 {
                return Err(StoreError::Conflict("BatchGetItem kept returning unprocessed keys".into()));
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
            }
            attempt += 1;
            let out = client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(|e| StoreError::aws("BatchGetItem", &e))?;
            found.extend(out.responses.and_then(|mut r| r.remove(table)).unwrap_or_default());
            request = out.unprocessed_keys.unwrap_or_default();
        }
    }
    Ok(found)
}

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
