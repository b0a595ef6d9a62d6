//! Presence subscriptions in the Presence table: per watched user one item, key
//! `watchers#{userId}`, with one attribute per subscribed connection (`w#{connectionId}`:
//! the watcher's user id and when the subscription lapses) and the string set `conns` of
//! those connections, whose size bounds them in the write's condition. A presence change
//! reads the one item (GetItem), whatever the user's number of contacts.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_domain::PortError;
use chat_domain::model::{ConnectionId, UserId};
use chat_domain::ports::{SubscriptionStore, Watcher};

use super::{StoreError, is_condition_failure, keys};
use crate::lazy::LazyClient;

const WATCHER_PREFIX: &str = "w#";

/// Attributes one UpdateItem removes at most (expressions are limited to 4 KB).
const REMOVALS_PER_WRITE: usize = 50;

#[derive(Clone)]
pub struct Subscriptions {
    client: Arc<LazyClient<Client>>,
    table: String,
}

impl Subscriptions {
    pub fn new(client: Arc<LazyClient<Client>>, presence_table: impl Into<String>) -> Self {
        Self { client, table: presence_table.into() }
    }

    fn update_of(
        &self,
        watched: &UserId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .get()
            .update_item()
            .table_name(&self.table)
            .key("userId", AttributeValue::S(keys::watchers_key(watched)))
    }
}

fn watcher_of(connection: &str, value: &AttributeValue) -> Option<Watcher> {
    let AttributeValue::M(entry) = value else { return None };
    let user = match entry.get("u") {
        Some(AttributeValue::S(user)) => UserId::parse(user.as_str()).ok()?,
        _ => return None,
    };
    let until = match entry.get("x") {
        Some(AttributeValue::N(until)) => until.parse().ok()?,
        _ => return None,
    };
    Some(Watcher { user, connection: ConnectionId::new(connection), until })
}

#[async_trait::async_trait]
impl SubscriptionStore for Subscriptions {
    async fn subscribe(&self, watched: &UserId, watcher: &Watcher, cap: usize) -> Result<bool, PortError> {
        let connection = watcher.connection.as_str();
        let entry = AttributeValue::M(HashMap::from([
            ("u".to_owned(), AttributeValue::S(watcher.user.to_string())),
            ("x".to_owned(), AttributeValue::N(watcher.until.to_string())),
        ]));
        let result = self
            .update_of(watched)
            .update_expression("SET #w = :entry ADD conns :conns")
            .condition_expression("attribute_not_exists(conns) OR size(conns) < :cap OR contains(conns, :conn)")
            .expression_attribute_names("#w", format!("{WATCHER_PREFIX}{connection}"))
            .expression_attribute_values(":entry", entry)
            .expression_attribute_values(":conns", AttributeValue::Ss(vec![connection.to_owned()]))
            .expression_attribute_values(":conn", AttributeValue::S(connection.to_owned()))
            .expression_attribute_values(":cap", AttributeValue::N(cap.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(StoreError::aws("UpdateItem", err).into()),
        }
    }

    async fn unsubscribe(&self, watched: &UserId, connections: &[ConnectionId]) -> Result<(), PortError> {
        for chunk in connections.chunks(REMOVALS_PER_WRITE) {
            let mut request = self.update_of(watched).condition_expression("attribute_exists(userId)");
            let mut names = Vec::with_capacity(chunk.len());
            for (i, connection) in chunk.iter().enumerate() {
                names.push(format!("#w{i}"));
                request = request.expression_attribute_names(format!("#w{i}"), format!("{WATCHER_PREFIX}{connection}"));
            }
            let conns = chunk.iter().map(|c| c.to_string()).collect();
            let result = request
                .update_expression(format!("REMOVE {} DELETE conns :conns", names.join(", ")))
                .expression_attribute_values(":conns", AttributeValue::Ss(conns))
                .send()
                .await;
            match result {
                Ok(_) => {}
                // Nobody ever subscribed: nothing to end.
                Err(err) if is_condition_failure(&err) => return Ok(()),
                Err(err) => return Err(StoreError::aws("UpdateItem", err).into()),
            }
        }
        Ok(())
    }

    async fn watchers(&self, watched: &UserId) -> Result<Vec<Watcher>, PortError> {
        let out = self
            .client
            .get()
            .get_item()
            .table_name(&self.table)
            .key("userId", AttributeValue::S(keys::watchers_key(watched)))
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        Ok(out
            .item
            .unwrap_or_default()
            .iter()
            .filter_map(|(name, value)| watcher_of(name.strip_prefix(WATCHER_PREFIX)?, value))
            .collect())
    }
}
