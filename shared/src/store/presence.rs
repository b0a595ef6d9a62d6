//! The Presence table: one item per user holding a map of their live connections, each
//! with its own expiry. One item per user (not per connection) is what lets a send find
//! the connections of 100 members with a single BatchGetItem.
//!
//! DynamoDB deletes expired items late (hours to days): every read filters on expiry.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use serde::Deserialize;

use super::StoreError;
use crate::model::{ConnectionId, UserId};

/// BatchGetItem's limit, and the largest channel.
const BATCH_GET_LIMIT: usize = 100;

#[derive(Debug, Deserialize)]
struct PresenceItem {
    #[serde(rename = "userId")]
    user_id: UserId,
    /// connection id -> expiry, in ms since the epoch.
    #[serde(default)]
    conns: HashMap<String, i64>,
}

pub struct Presence<'a> {
    client: &'a Client,
    table: &'a str,
}

impl<'a> Presence<'a> {
    pub fn new(client: &'a Client, table: &'a str) -> Self {
        Self { client, table }
    }

    /// Records a live connection until `expires_ms`, and pushes the item's TTL out to it.
    /// Expired entries found on the way are pruned, so the map cannot grow without bound
    /// when `$disconnect` never comes.
    pub async fn add_connection(
        &self,
        user: &UserId,
        connection: &ConnectionId,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let ttl = AttributeValue::N((expires_ms / 1000 + 1).to_string());
        let expiry = AttributeValue::N(expires_ms.to_string());
        // A nested SET needs the map to exist, and creating the map would overwrite it,
        // so: try the nested SET; if the item has no map yet, create it; if someone else
        // created it in between, the nested SET works on the next round.
        for _ in 0..3 {
            let nested = self
                .client
                .update_item()
                .table_name(self.table)
                .key("userId", AttributeValue::S(user.to_string()))
                .update_expression("SET conns.#conn = :expiry, #ttl = :ttl, lastSeen = :now")
                .condition_expression("attribute_exists(conns)")
                .expression_attribute_names("#conn", connection.as_str())
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":expiry", expiry.clone())
                .expression_attribute_values(":ttl", ttl.clone())
                .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match nested {
                Ok(out) => {
                    let item: Option<PresenceItem> = out.attributes.map(serde_dynamo::from_item).transpose()?;
                    if let Some(item) = item {
                        let expired: Vec<String> =
                            item.conns.into_iter().filter(|(_, exp)| *exp <= now_ms).map(|(c, _)| c).collect();
                        if !expired.is_empty() {
                            self.remove_entries(user, &expired).await?;
                        }
                    }
                    return Ok(());
                }
                Err(err) if !is_condition_failure(&err) => {
                    return Err(StoreError::aws("UpdateItem", &err));
                }
                Err(_) => {}
            }
            let created = self
                .client
                .update_item()
                .table_name(self.table)
                .key("userId", AttributeValue::S(user.to_string()))
                .update_expression("SET conns = :conns, #ttl = :ttl, lastSeen = :now")
                .condition_expression("attribute_not_exists(conns)")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(
                    ":conns",
                    AttributeValue::M(HashMap::from([(connection.to_string(), expiry.clone())])),
                )
                .expression_attribute_values(":ttl", ttl.clone())
                .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                .send()
                .await;
            match created {
                Ok(_) => return Ok(()),
                Err(err) if !is_condition_failure(&err) => {
                    return Err(StoreError::aws("UpdateItem", &err));
                }
                Err(_) => {}
            }
        }
        Err(StoreError::Conflict(format!("could not record connection of {user}")))
    }

    /// Forgets a connection ($disconnect, or a post that answered 410 Gone).
    pub async fn remove_connection(&self, user: &UserId, connection: &ConnectionId) -> Result<(), StoreError> {
        self.remove_entries(user, &[connection.to_string()]).await
    }

    async fn remove_entries(&self, user: &UserId, connections: &[String]) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(self.table)
            .key("userId", AttributeValue::S(user.to_string()))
            // Without the condition, REMOVE on a missing item would create an empty one.
            .condition_expression("attribute_exists(userId)");
        let mut removals = Vec::with_capacity(connections.len());
        for (i, connection) in connections.iter().enumerate() {
            let name = format!("#c{i}");
            removals.push(format!("conns.{name}"));
            request = request.expression_attribute_names(name, connection);
        }
        match request.update_expression(format!("REMOVE {}", removals.join(", "))).send().await {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(StoreError::aws("UpdateItem", &err)),
        }
    }

    /// The unexpired connections of `users`: one BatchGetItem per 100 users (plus retries of
    /// keys DynamoDB left unprocessed), never a query per user.
    pub async fn live_connections(
        &self,
        users: &[UserId],
        now_ms: i64,
    ) -> Result<Vec<(UserId, ConnectionId)>, StoreError> {
        let mut live = Vec::new();
        for chunk in users.chunks(BATCH_GET_LIMIT) {
            let mut keys = KeysAndAttributes::builder().projection_expression("userId, conns");
            for user in chunk {
                keys = keys.keys(HashMap::from([("userId".to_owned(), AttributeValue::S(user.to_string()))]));
            }
            let keys = keys.build().map_err(StoreError::build)?;
            let mut request = HashMap::from([(self.table.to_owned(), keys)]);
            let mut attempt = 0u32;
            while !request.is_empty() {
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt.min(6))).await;
                }
                if attempt == 8 {
                    return Err(StoreError::Conflict("BatchGetItem kept returning unprocessed keys".into()));
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("BatchGetItem", &e))?;
                for item in out.responses.and_then(|mut r| r.remove(self.table)).unwrap_or_default() {
                    let item: PresenceItem = serde_dynamo::from_item(item)?;
                    for (connection, expires) in item.conns {
                        if expires > now_ms {
                            live.push((item.user_id.clone(), ConnectionId::new(connection)));
                        }
                    }
                }
                request = out.unprocessed_keys.unwrap_or_default();
            }
        }
        Ok(live)
    }
}

fn is_condition_failure<R>(
    err: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>,
) -> bool {
    err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception())
}
