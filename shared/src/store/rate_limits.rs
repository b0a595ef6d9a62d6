//! Fixed-window request counters per user, in DynamoDB so that every Lambda instance sees
//! the same count. One UpdateItem per counted request; windows expire through TTL.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::StoreError;
use crate::config::RateLimit;

pub struct RateLimiter<'a> {
    client: &'a Client,
    table: &'a str,
}

impl<'a> RateLimiter<'a> {
    pub fn new(client: &'a Client, table: &'a str) -> Self {
        Self { client, table }
    }

    /// Counts one request of `kind` by `who` (a user, or a source address). `Ok(None)` when
    /// it is within `limit`, `Ok(Some(ms))` with the time until the window ends when over.
    pub async fn hit(&self, kind: &str, who: &str, limit: RateLimit, now_ms: i64) -> Result<Option<u64>, StoreError> {
        let window = now_ms.div_euclid(limit.window_ms);
        let window_ends = (window + 1) * limit.window_ms;
        let out = self
            .client
            .update_item()
            .table_name(self.table)
            .key("pk", AttributeValue::S(format!("{kind}#{who}#{window}")))
            .update_expression("ADD #count :one SET #ttl = if_not_exists(#ttl, :ttl)")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":ttl", AttributeValue::N((window_ends / 1000 + 60).to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", &e))?;
        let count = match out.attributes.as_ref().and_then(|a| a.get("count")) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().unwrap_or(u64::MAX),
            _ => u64::MAX,
        };
        if count <= u64::from(limit.count) { Ok(None) } else { Ok(Some((window_ends - now_ms).max(1) as u64)) }
    }
}
