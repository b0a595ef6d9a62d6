//! The Presence table: the domain's [`PresenceStore`] port. One item per user holding a
//! map of their open connections; one item per user (not per connection) is what lets a
//! send find the connections of 100 members with a single BatchGetItem. `onlineShard` is
//! present while contacts have been told the user is online, and indexes the item in the
//! sparse `OnlineByDeadline` index the sweep reads. The rules that read these records are
//! in `chat_domain::connections` and `chat_domain::presence`.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chat_domain::PortError;
use chat_domain::model::{ConnectionId, UserId};
use chat_domain::ports::{ConnectionClock, PresenceRecord, PresenceStore};
use serde::Deserialize;

use super::{StoreError, is_condition_failure, keys};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PresenceItem {
    user_id: UserId,
    #[serde(default)]
    conns: HashMap<String, ConnectionClock>,
    #[serde(default)]
    deadline: Option<i64>,
    #[serde(default)]
    online_shard: Option<u32>,
    #[serde(default)]
    last_seen: Option<i64>,
}

impl From<PresenceItem> for PresenceRecord {
    fn from(item: PresenceItem) -> Self {
        PresenceRecord {
            user_id: Some(item.user_id),
            conns: item.conns,
            deadline: item.deadline,
            online_shard: item.online_shard,
            last_seen: item.last_seen,
        }
    }
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[derive(Clone)]
pub struct Presence {
    client: Client,
    table: String,
}

impl Presence {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Removes map entries; answers the item as it is afterwards (None when there is none).
    async fn remove_entries(&self, user: &UserId, connections: &[String]) -> Result<Option<PresenceItem>, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("userId", AttributeValue::S(user.to_string()))
            // Without the condition, REMOVE on a missing item would create an empty one.
            .condition_expression("attribute_exists(userId)")
            .return_values(ReturnValue::AllNew);
        let mut removals = Vec::with_capacity(connections.len());
        for (i, connection) in connections.iter().enumerate() {
            let name = format!("#c{i}");
            removals.push(format!("conns.{name}"));
            request = request.expression_attribute_names(name, connection);
        }
        match request.update_expression(format!("REMOVE {}", removals.join(", "))).send().await {
            Ok(out) => Ok(out.attributes.map(super::from_item).transpose()?),
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(StoreError::aws("UpdateItem", err)),
        }
    }

    async fn batch_get(&self, users: &[UserId], projection: &str) -> Result<Vec<PresenceItem>, StoreError> {
        let keys = users
            .iter()
            .map(|user| HashMap::from([("userId".to_owned(), AttributeValue::S(user.to_string()))]))
            .collect();
        super::batch_get(&self.client, &self.table, keys, Some(projection), false)
            .await?
            .into_iter()
            .map(super::from_item)
            .collect()
    }

    /// The Query of one `OnlineByDeadline` shard for deadlines at or before `until_ms`.
    fn due_by(&self, shard: u32, until_ms: i64) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(keys::ONLINE_BY_DEADLINE_INDEX)
            .key_condition_expression("onlineShard = :shard AND deadline <= :until")
            .expression_attribute_values(":shard", n(shard))
            .expression_attribute_values(":until", n(until_ms))
    }
}

#[async_trait::async_trait]
impl PresenceStore for Presence {
    async fn record_beat(
        &self,
        user: &UserId,
        connection: &ConnectionId,
        clock: &ConnectionClock,
        deadline: i64,
        shard: u32,
        ttl_s: i64,
    ) -> Result<Option<PresenceRecord>, PortError> {
        let entry = super::to_value(clock)?;
        let request = || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("userId", AttributeValue::S(user.to_string()))
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":deadline", n(deadline))
                .expression_attribute_values(":shard", n(shard))
                .expression_attribute_values(":now", n(clock.beat))
                .expression_attribute_values(":ttl", n(ttl_s))
                .return_values(ReturnValue::AllOld)
        };
        let also = ", deadline = :deadline, onlineShard = :shard, lastSeen = :now, #ttl = :ttl";
        let old = super::set_in_map(request, "conns", connection.as_str(), entry, also).await?;
        let old: Option<PresenceItem> = old.filter(|a| !a.is_empty()).map(super::from_item).transpose()?;
        Ok(old.map(PresenceRecord::from))
    }

    async fn remove_connections(
        &self,
        user: &UserId,
        connections: &[String],
    ) -> Result<Option<PresenceRecord>, PortError> {
        Ok(self.remove_entries(user, connections).await?.map(PresenceRecord::from))
    }

    async fn move_deadline(&self, user: &UserId, deadline: i64, now_ms: i64, seen: i64) -> Result<bool, PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("userId", AttributeValue::S(user.to_string()))
            .update_expression("SET deadline = :grace, lastSeen = :now")
            .condition_expression("deadline = :seen")
            .expression_attribute_values(":grace", n(deadline))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":seen", n(seen))
            .send()
            .await;
        Ok(super::updated(result)?)
    }

    async fn connections(&self, users: &[UserId]) -> Result<Vec<PresenceRecord>, PortError> {
        Ok(self.batch_get(users, "userId, conns").await?.into_iter().map(PresenceRecord::from).collect())
    }

    async fn statuses(&self, users: &[UserId]) -> Result<Vec<PresenceRecord>, PortError> {
        Ok(self.batch_get(users, "userId, deadline, lastSeen").await?.into_iter().map(PresenceRecord::from).collect())
    }

    async fn overdue(&self, shard: u32, until_ms: i64) -> Result<Vec<(UserId, i64)>, PortError> {
        let mut pages = self.due_by(shard, until_ms).into_paginator().items().send();
        let mut overdue = Vec::new();
        while let Some(item) = pages.try_next().await.map_err(|e| StoreError::aws("Query", e))? {
            let user = match item.get("userId") {
                Some(AttributeValue::S(user)) => UserId::parse(user.as_str()).ok(),
                _ => None,
            };
            let deadline = match item.get("deadline") {
                Some(AttributeValue::N(d)) => d.parse().ok(),
                _ => None,
            };
            if let (Some(user), Some(deadline)) = (user, deadline) {
                overdue.push((user, deadline));
            }
        }
        Ok(overdue)
    }

    async fn any_due_by(&self, shard: u32, until_ms: i64) -> Result<bool, PortError> {
        let out = self.due_by(shard, until_ms).limit(1).send().await.map_err(|e| StoreError::aws("Query", e))?;
        Ok(out.count > 0)
    }

    async fn mark_offline(&self, user: &UserId, deadline: i64) -> Result<Option<Option<i64>>, PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("userId", AttributeValue::S(user.to_string()))
            .update_expression("REMOVE onlineShard")
            .condition_expression("attribute_exists(onlineShard) AND deadline = :seen")
            .expression_attribute_values(":seen", n(deadline))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item: Option<PresenceItem> = out.attributes.map(super::from_item).transpose()?;
                Ok(Some(item.and_then(|i| i.last_seen)))
            }
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(StoreError::aws("UpdateItem", err).into()),
        }
    }
}
