//! DynamoDB repositories: one per table, keys built only in [`keys`], items mapped
//! with serde_dynamo.

pub mod channels;
pub mod consent;
pub mod keys;
pub mod messages;
pub mod presence;
pub mod rate_limits;
pub mod sessions;
pub mod users;

use aws_sdk_dynamodb::error::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;

pub use channels::{
    ChannelMeta, Channels, CreateChannelError, JoinError, Member, Membership, MembershipChangeError, Roster, Seat,
};
pub use consent::{Blocks, Invitation, Invitations};
pub use messages::{AppendOutcome, ChangeRefused, MessageLog, Order};
pub use presence::Presence;
pub use rate_limits::RateLimiter;
pub use sessions::{Refresh, Sessions};
pub use users::{UserRecord, Users};

/// A DynamoDB item as the SDK holds it.
pub(crate) type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// An UpdateItem that failed its condition.
pub(crate) fn is_condition_failure<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>,
) -> bool {
    err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception())
}

/// Sets `map.key = value` in one item, creating the map when the item has none. A nested
/// SET needs the map to exist, and creating the map would overwrite it, so: try the nested
/// SET; with no map, create it; if someone created it in between, the nested SET works on
/// the next round. `request` makes the UpdateItem (table, key, the values `also` uses,
/// return values); `also` is more of the same SET (`", a = :a"`). Answers the attributes
/// the update returned.
pub(crate) async fn set_in_map(
    request: impl Fn() -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    map: &str,
    key: &str,
    value: aws_sdk_dynamodb::types::AttributeValue,
    also: &str,
) -> Result<Option<Item>, StoreError> {
    use aws_sdk_dynamodb::types::AttributeValue;
    for _ in 0..3 {
        let nested = request()
            .update_expression(format!("SET #map.#key = :value{also}"))
            .condition_expression("attribute_exists(#map)")
            .expression_attribute_names("#map", map)
            .expression_attribute_names("#key", key)
            .expression_attribute_values(":value", value.clone())
            .send()
            .await;
        match nested {
            Ok(out) => return Ok(out.attributes),
            Err(err) if !is_condition_failure(&err) => return Err(StoreError::aws("UpdateItem", &err)),
            Err(_) => {}
        }
        let created = request()
            .update_expression(format!("SET #map = :map{also}"))
            .condition_expression("attribute_not_exists(#map)")
            .expression_attribute_names("#map", map)
            .expression_attribute_values(":map", AttributeValue::M(Item::from([(key.to_owned(), value.clone())])))
            .send()
            .await;
        match created {
            Ok(out) => return Ok(out.attributes),
            Err(err) if !is_condition_failure(&err) => return Err(StoreError::aws("UpdateItem", &err)),
            Err(_) => {}
        }
    }
    Err(StoreError::Conflict(format!("could not set {map}.{key}: the item kept changing")))
}

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
    /// The function lacks a setting this code path needs (its template environment).
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
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
