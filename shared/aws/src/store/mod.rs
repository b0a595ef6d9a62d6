//! The DynamoDB adapters of the domain's store ports: keys and attribute names built only
//! in [`keys`], items mapped with serde_dynamo.

pub mod calls;
pub mod channels;
pub mod consent;
pub mod keys;
pub mod messages;
pub mod presence;
pub mod rate_limits;
pub mod reactions;
pub mod sessions;
pub mod subscriptions;
pub mod users;

use aws_sdk_dynamodb::error::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use chat_domain::PortError;

pub use calls::Calls;
pub use channels::Channels;
pub use consent::{Blocks, Invitations};
pub use messages::MessageLog;
pub use presence::Presence;
pub use rate_limits::RateCounters;
pub use reactions::Reactions;
pub use sessions::Sessions;
pub use subscriptions::Subscriptions;
pub use users::Users;

/// A DynamoDB item as the SDK holds it.
pub(crate) type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// serde_dynamo, with its errors as [`StoreError`] (so that `?` reaches the port's error).
pub(crate) fn from_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    Ok(serde_dynamo::from_item(item)?)
}

pub(crate) fn to_item<T: serde::Serialize>(value: T) -> Result<Item, StoreError> {
    Ok(serde_dynamo::to_item(value)?)
}

pub(crate) fn to_value<T: serde::Serialize>(value: T) -> Result<aws_sdk_dynamodb::types::AttributeValue, StoreError> {
    Ok(serde_dynamo::to_attribute_value(value)?)
}

pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    value: aws_sdk_dynamodb::types::AttributeValue,
) -> Result<T, StoreError> {
    Ok(serde_dynamo::from_attribute_value(value)?)
}

/// An UpdateItem that failed its condition.
pub(crate) fn is_condition_failure<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>,
) -> bool {
    err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception())
}

/// What a conditional UpdateItem did: `true` when it wrote, `false` when its condition
/// failed (a normal outcome: the guarded change did not apply).
pub(crate) fn updated<O, R>(
    result: Result<O, SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>>,
) -> Result<bool, StoreError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if is_condition_failure(&err) => Ok(false),
        Err(err) => Err(StoreError::aws("UpdateItem", err)),
    }
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
            Err(err) if !is_condition_failure(&err) => return Err(StoreError::aws("UpdateItem", err)),
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
            Err(err) if !is_condition_failure(&err) => return Err(StoreError::aws("UpdateItem", err)),
            Err(_) => {}
        }
    }
    Err(StoreError::Contended(format!("could not set {map}.{key}: the item kept changing")))
}

/// Up to `limit` items a Query finds, page after page.
pub(crate) async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    limit: usize,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::new();
    let mut start_key = None;
    loop {
        let out = query
            .clone()
            .limit((limit - found.len()).max(1) as i32)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", e))?;
        found.extend(out.items.unwrap_or_default());
        start_key = out.last_evaluated_key;
        if start_key.is_none() || found.len() >= limit {
            found.truncate(limit);
            return Ok(found);
        }
    }
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
                return Err(StoreError::Contended("BatchGetItem kept returning unprocessed keys".into()));
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
                .map_err(|e| StoreError::aws("BatchGetItem", e))?;
            found.extend(out.responses.and_then(|mut r| r.remove(table)).unwrap_or_default());
            request = out.unprocessed_keys.unwrap_or_default();
        }
    }
    Ok(found)
}

/// What a DynamoDB call failed with. Converts into the domain's [`PortError`] at the port.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} failed: {}", DisplayErrorContext(source.as_ref()))]
    Aws { operation: &'static str, source: chat_domain::error::BoxError },
    #[error("stored item has an unexpected shape: {0}")]
    Item(#[from] serde_dynamo::Error),
    /// A conditional write kept losing to concurrent ones.
    #[error("{0}")]
    Contended(String),
    #[error("request could not be built: {0}")]
    Build(#[from] aws_sdk_dynamodb::error::BuildError),
}

impl StoreError {
    pub fn build(err: aws_sdk_dynamodb::error::BuildError) -> Self {
        StoreError::Build(err)
    }

    /// A service error taken out of its `SdkError` (the raw response is gone by then).
    pub fn aws_service<E>(operation: &'static str, err: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        StoreError::Aws { operation, source: Box::new(err) }
    }

    /// Keeps the SDK's error as the source: its Display alone says only "service error".
    pub fn aws<E, R>(operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        StoreError::Aws { operation, source: Box::new(err) }
    }
}

impl From<StoreError> for PortError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Contended(message) => PortError::Contended(message),
            StoreError::Item(err) => PortError::corrupt(err),
            other => PortError::backend("a DynamoDB request", other),
        }
    }
}

impl From<StoreError> for chat_domain::ports::JoinError {
    fn from(err: StoreError) -> Self {
        Self::Port(err.into())
    }
}

impl From<StoreError> for chat_domain::ports::CreateChannelError {
    fn from(err: StoreError) -> Self {
        Self::Port(err.into())
    }
}

impl From<StoreError> for chat_domain::ports::MembershipChangeError {
    fn from(err: StoreError) -> Self {
        Self::Port(err.into())
    }
}
