//! Fixed-window request counters in DynamoDB, so that every Lambda instance sees the same
//! count: the domain's [`RateCounter`] port. One UpdateItem per counted request (a GetItem
//! where a count is only looked at); windows expire through TTL.

use std::sync::Arc;

use crate::lazy::LazyClient;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chat_domain::PortError;
use chat_domain::ports::RateCounter;

use super::{StoreError, keys};

#[derive(Clone)]
pub struct RateCounters {
    client: Arc<LazyClient<Client>>,
    table: String,
}

impl RateCounters {
    pub fn new(client: Arc<LazyClient<Client>>, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

#[async_trait::async_trait]
impl RateCounter for RateCounters {
    async fn increment(&self, kind: &str, who: &str, window: i64, expires_at_s: i64) -> Result<u64, PortError> {
        let out = self
            .client
            .get()
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::rate_limit_pk(kind, who, window)))
            .update_expression("ADD #count :one SET #ttl = if_not_exists(#ttl, :ttl)")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":ttl", AttributeValue::N(expires_at_s.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        // An answer without the count counts as over any limit.
        Ok(count_in(out.attributes.as_ref()).unwrap_or(u64::MAX))
    }

    async fn peek(&self, kind: &str, who: &str, window: i64) -> Result<u64, PortError> {
        // Eventually consistent (half the read units): a count a moment old is good enough
        // to refuse a flood.
        let out = self
            .client
            .get()
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::rate_limit_pk(kind, who, window)))
            .projection_expression("#count")
            .expression_attribute_names("#count", "count")
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        // No item: nothing counted in this window yet.
        Ok(count_in(out.item.as_ref()).unwrap_or(0))
    }
}

/// The `count` of a counter item, if it has one; a count that does not parse counts as over
/// any limit.
fn count_in(item: Option<&std::collections::HashMap<String, AttributeValue>>) -> Option<u64> {
    match item?.get("count")? {
        AttributeValue::N(n) => Some(n.parse::<u64>().unwrap_or(u64::MAX)),
        _ => None,
    }
}
