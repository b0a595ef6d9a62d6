//! The Presence table: the domain's [`PresenceStore`] port. One item per user; one item per
//! user (not per connection) is what lets a send find the connections of 100 members with a
//! single BatchGetItem. Each open connection is a top-level attribute `c#{connectionId}`
//! (not an entry of a map: a nested SET needs the map to exist, which made a user's first
//! connect cost a failed write and a second one). `connects` counts the user's connects of
//! the current limit window, in the same write as the connection. `onlineShard` is present
//! while contacts have been told the user is online, and indexes the item in the sparse
//! `OnlineByDeadline` index the sweep reads. The rules that read these records are in
//! `chat_domain::connections` and `chat_domain::presence`.

use std::sync::Arc;

use crate::lazy::LazyClient;
use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chat_domain::PortError;
use chat_domain::model::{ConnectionId, UserId};
use chat_domain::ports::{
    ChoiceChange, ConnectQuota, ConnectionClock, PresenceChoice, PresenceRecord, PresenceStore, Recorded,
};
use chat_domain::protocol::{ChosenState, CustomStatus, LastSeenTo};
use serde::Deserialize;

use super::{Item, StoreError, is_condition_failure, keys};

/// The item's own attributes; its connections are the `c#…` attributes beside them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PresenceItem {
    user_id: UserId,
    #[serde(default)]
    deadline: Option<i64>,
    #[serde(default)]
    online_shard: Option<u32>,
    #[serde(default)]
    last_seen: Option<i64>,
    #[serde(default)]
    connects: Option<ConnectCount>,
    /// What the user chose (absent: the defaults).
    #[serde(default)]
    state: Option<ChosenState>,
    #[serde(default)]
    last_seen_to: Option<LastSeenTo>,
    #[serde(default)]
    hidden_since: Option<i64>,
    #[serde(default)]
    custom: Option<CustomStatus>,
}

/// The connects of one limit window.
#[derive(Debug, Deserialize)]
struct ConnectCount {
    w: i64,
    n: u32,
}

/// A stored item as the domain's record (its connections gathered from their attributes).
fn record_of(item: Item) -> Result<PresenceRecord, StoreError> {
    let mut conns = HashMap::new();
    let mut own = Item::new();
    for (name, value) in item {
        match name.strip_prefix(keys::CONNECTION_ATTRIBUTE_PREFIX) {
            Some(connection) => {
                conns.insert(connection.to_owned(), super::from_value::<ConnectionClock>(value)?);
            }
            None => {
                own.insert(name, value);
            }
        }
    }
    let item: PresenceItem = super::from_item(own)?;
    Ok(PresenceRecord {
        user_id: Some(item.user_id),
        conns,
        deadline: item.deadline,
        online_shard: item.online_shard,
        last_seen: item.last_seen,
        choice: PresenceChoice {
            state: item.state,
            last_seen_to: item.last_seen_to,
            hidden_since: item.hidden_since,
            custom: item.custom,
        },
    })
}

/// The connection's attribute name.
fn connection_attribute(connection: &str) -> String {
    format!("{}{connection}", keys::CONNECTION_ATTRIBUTE_PREFIX)
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[derive(Clone)]
pub struct Presence {
    client: Arc<LazyClient<Client>>,
    table: String,
}

impl Presence {
    pub fn new(client: Arc<LazyClient<Client>>, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Removes connections; answers the item as it is afterwards (None when there is none).
    async fn remove_entries(
        &self,
        user: &UserId,
        connections: &[String],
    ) -> Result<Option<PresenceRecord>, StoreError> {
        let mut request = self
            .update_of(user)
            // Without the condition, REMOVE on a missing item would create an empty one.
            .condition_expression("attribute_exists(userId)")
            .return_values(ReturnValue::AllNew);
        let mut removals = Vec::with_capacity(connections.len());
        for (i, connection) in connections.iter().enumerate() {
            let name = format!("#c{i}");
            removals.push(name.clone());
            request = request.expression_attribute_names(name, connection_attribute(connection));
        }
        match request.update_expression(format!("REMOVE {}", removals.join(", "))).send().await {
            Ok(out) => out.attributes.map(record_of).transpose(),
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(StoreError::aws("UpdateItem", err)),
        }
    }

    /// The items of `users` (`projection`: `None` for whole items, which hold the
    /// connections).
    async fn batch_get(&self, users: &[UserId], projection: Option<&str>) -> Result<Vec<PresenceRecord>, StoreError> {
        let keys = users
            .iter()
            .map(|user| HashMap::from([("userId".to_owned(), AttributeValue::S(user.to_string()))]))
            .collect();
        super::batch_get(self.client.get(), &self.table, keys, projection, false)
            .await?
            .into_iter()
            .map(record_of)
            .collect()
    }

    /// An UpdateItem of `user`'s item.
    fn update_of(&self, user: &UserId) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client.get().update_item().table_name(&self.table).key("userId", AttributeValue::S(user.to_string()))
    }

    /// The Query of one `OnlineByDeadline` shard for deadlines at or before `until_ms`.
    fn due_by(&self, shard: u32, until_ms: i64) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .get()
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
        quota: Option<ConnectQuota>,
    ) -> Result<Recorded, PortError> {
        let entry = super::to_value(clock)?;
        let request = || {
            self.update_of(user)
                .expression_attribute_names("#conn", connection_attribute(connection.as_str()))
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":clock", entry.clone())
                .expression_attribute_values(":deadline", n(deadline))
                .expression_attribute_values(":shard", n(shard))
                .expression_attribute_values(":now", n(clock.beat))
                .expression_attribute_values(":ttl", n(ttl_s))
                .expression_attribute_values(":zero", n(0))
                .return_values(ReturnValue::AllOld)
        };
        // The item lives as long as its last connection may, and `keepFor` longer once it
        // holds choices (`choose`).
        const SET: &str = "SET #conn = :clock, deadline = :deadline, onlineShard = :shard, lastSeen = :now, \
                           #ttl = if_not_exists(keepFor, :zero) + :ttl";
        let before = |attributes: Option<Item>| -> Result<Recorded, PortError> {
            let old = attributes.filter(|a| !a.is_empty()).map(record_of).transpose()?;
            Ok(Recorded::Beat(old))
        };
        let Some(quota) = quota else {
            let out = request().update_expression(SET).send().await.map_err(|e| StoreError::aws("UpdateItem", e))?;
            return before(out.attributes);
        };
        let window = n(quota.window);
        for _ in 0..3 {
            // The first connect of a window starts its count (the usual case: one write).
            let first = request()
                .update_expression(format!("{SET}, connects = :first"))
                .condition_expression("attribute_not_exists(connects) OR connects.w <> :window")
                .expression_attribute_values(
                    ":first",
                    AttributeValue::M(HashMap::from([("w".to_owned(), window.clone()), ("n".to_owned(), n(1))])),
                )
                .expression_attribute_values(":window", window.clone())
                .send()
                .await;
            match first {
                Ok(out) => return before(out.attributes),
                Err(err) if is_condition_failure(&err) => {}
                Err(err) => return Err(StoreError::aws("UpdateItem", err).into()),
            }
            // Another connect of the same window: counted while under the limit.
            let more = request()
                .update_expression(format!("{SET}, connects.n = connects.n + :one"))
                .condition_expression("connects.w = :window AND connects.n < :limit")
                .expression_attribute_values(":window", window.clone())
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":limit", n(quota.limit))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let refused = match more {
                Ok(out) => return before(out.attributes),
                Err(err) => match err.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                    other => return Err(StoreError::aws_service("UpdateItem", other).into()),
                },
            };
            let count = refused.map(|item| super::from_item::<PresenceItem>(own_attributes(item))).transpose()?;
            if count.and_then(|c| c.connects).is_some_and(|c| c.w == quota.window && c.n >= quota.limit) {
                return Ok(Recorded::OverQuota);
            }
            // The window moved on between the two writes: start again.
        }
        Err(PortError::Contended("the connect count kept changing".into()))
    }

    async fn remove_connections(
        &self,
        user: &UserId,
        connections: &[String],
    ) -> Result<Option<PresenceRecord>, PortError> {
        Ok(self.remove_entries(user, connections).await?)
    }

    async fn move_deadline(&self, user: &UserId, deadline: i64, now_ms: i64, seen: i64) -> Result<bool, PortError> {
        let result = self
            .update_of(user)
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
        Ok(self.batch_get(users, None).await?)
    }

    async fn statuses(&self, users: &[UserId]) -> Result<Vec<PresenceRecord>, PortError> {
        // Whole items: whether the user is idle is in their connections' attributes, whose
        // names a projection cannot list.
        let mut records = self.batch_get(users, None).await?;
        records.iter_mut().flat_map(|r| r.conns.values_mut()).for_each(|c| c.sid = None);
        Ok(records)
    }

    async fn choose(
        &self,
        user: &UserId,
        change: &ChoiceChange,
        keep_until_s: i64,
    ) -> Result<Option<PresenceRecord>, PortError> {
        // The item outlives its connections while it holds choices: it expires
        // `keepFor` after the latest choice or beat (`record_beat` adds it to the TTL).
        let mut sets = vec!["keepFor = :keepFor".to_owned(), "#ttl = :keep".to_owned()];
        let mut removes = Vec::new();
        let mut request = self
            .update_of(user)
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":keep", n(keep_until_s))
            .expression_attribute_values(":keepFor", n(chat_domain::presence::CHOICES_KEPT_S));
        // Placeholders for every name: `state` is one of DynamoDB's reserved words.
        let mut put = |name: &str, value: Option<AttributeValue>| {
            request = request.clone().expression_attribute_names(format!("#{name}"), name);
            match value {
                Some(value) => {
                    sets.push(format!("#{name} = :{name}"));
                    request = request.clone().expression_attribute_values(format!(":{name}"), value);
                }
                None => removes.push(format!("#{name}")),
            }
        };
        if let Some(state) = change.state {
            put("state", state.map(super::to_value).transpose()?);
        }
        if let Some(to) = change.last_seen_to {
            put("lastSeenTo", to.map(super::to_value).transpose()?);
        }
        if let Some(since) = change.hidden_since {
            put("hiddenSince", since.map(n));
        }
        if let Some(custom) = &change.custom {
            put("custom", custom.as_ref().map(super::to_value).transpose()?);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let result = request.update_expression(expression.trim()).return_values(ReturnValue::AllOld).send().await;
        match result {
            Ok(out) => Ok(out.attributes.map(record_of).transpose()?),
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(StoreError::aws("UpdateItem", err).into()),
        }
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

    async fn mark_offline(&self, user: &UserId, deadline: i64) -> Result<Option<PresenceRecord>, PortError> {
        let result = self
            .update_of(user)
            .update_expression("REMOVE onlineShard")
            .condition_expression("attribute_exists(onlineShard) AND deadline = :seen")
            .expression_attribute_values(":seen", n(deadline))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.attributes.map(record_of).transpose()?),
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(StoreError::aws("UpdateItem", err).into()),
        }
    }
}

/// An item without its connection attributes.
fn own_attributes(mut item: Item) -> Item {
    item.retain(|name, _| !name.starts_with(keys::CONNECTION_ATTRIBUTE_PREFIX));
    item
}
