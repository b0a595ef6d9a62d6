//! The Presence table: one item per user holding a map of their open connections. One item
//! per user (not per connection) is what lets a send find the connections of 100 members
//! with a single BatchGetItem.
//!
//! Each connection has two clocks: `until`, when API Gateway closes it at the latest (it
//! gets messages until then, or until a post answers 410), and `beat`, its last heartbeat
//! (the user is online while some connection beat within the presence window). The item's
//! `deadline` is when the user goes offline unless something beats again; `onlineShard` is
//! present while contacts have been told the user is online, and indexes the item in the
//! sparse `OnlineByDeadline` index the sweep reads.
//!
//! DynamoDB deletes TTL-expired items late (hours to days): every read checks the clocks.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

use super::{StoreError, is_condition_failure, keys};
use crate::model::{ConnectionId, UserId};

/// Partitions of the `OnlineByDeadline` index, so one busy key does not carry every user.
pub const ONLINE_SHARDS: u32 = 4;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectionClock {
    /// When API Gateway closes the connection at the latest (ms).
    pub until: i64,
    /// Last heartbeat (or connect) (ms).
    pub beat: i64,
    /// The session (signed-in device) the connection was opened with: signing it out
    /// closes the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

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

impl PresenceItem {
    fn has_beating_connection(&self, now_ms: i64, window_ms: i64) -> bool {
        self.conns.values().any(|c| c.until > now_ms && c.beat > now_ms - window_ms)
    }
}

/// What a read of a user's presence says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceState {
    pub user_id: UserId,
    pub online: bool,
    pub last_seen: Option<i64>,
}

/// What recording a beat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// Contacts had not been told the user is online.
    pub came_online: bool,
    /// The user's other connections that were open.
    pub live_others: usize,
}

pub fn shard_of(user: &UserId) -> u32 {
    // FNV-1a: stable across processes and releases (std's hasher is neither).
    let hash = user.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % ONLINE_SHARDS
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub struct Presence<'a> {
    client: &'a Client,
    table: &'a str,
}

impl<'a> Presence<'a> {
    pub fn new(client: &'a Client, table: &'a str) -> Self {
        Self { client, table }
    }

    /// Records that `connection` is alive now (a connect or a heartbeat): it gets messages
    /// until `until_ms` and keeps the user online for `window_ms`. Answers whether the user
    /// came online (contacts had not been told) and how many other connections are open. Expired entries found
    /// on the way are pruned, so the map cannot grow when `$disconnect` never comes.
    pub async fn beat(
        &self,
        user: &UserId,
        connection: &ConnectionId,
        session: Option<&str>,
        until_ms: i64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<Beat, StoreError> {
        let clock = ConnectionClock { until: until_ms, beat: now_ms, sid: session.map(str::to_owned) };
        let entry = serde_dynamo::to_attribute_value::<_, AttributeValue>(clock)?;
        let request = || {
            self.client
                .update_item()
                .table_name(self.table)
                .key("userId", AttributeValue::S(user.to_string()))
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":deadline", n(now_ms + window_ms))
                .expression_attribute_values(":shard", n(shard_of(user)))
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":ttl", n(until_ms / 1000 + 1))
                .return_values(ReturnValue::AllOld)
        };
        let also = ", deadline = :deadline, onlineShard = :shard, lastSeen = :now, #ttl = :ttl";
        let old = super::set_in_map(request, "conns", connection.as_str(), entry, also).await?;
        let old: Option<PresenceItem> = old.filter(|a| !a.is_empty()).map(serde_dynamo::from_item).transpose()?;
        let came_online = old.as_ref().is_none_or(|o| o.online_shard.is_none());
        let live_others = old.as_ref().map_or(0, |o| {
            o.conns.iter().filter(|(c, clock)| clock.until > now_ms && *c != connection.as_str()).count()
        });
        if let Some(old) = old {
            let expired: Vec<String> = old
                .conns
                .into_iter()
                .filter(|(c, clock)| clock.until <= now_ms && c != connection.as_str())
                .map(|(c, _)| c)
                .collect();
            if !expired.is_empty() {
                self.remove_entries(user, &expired).await?;
            }
        }
        Ok(Beat { came_online, live_others })
    }

    /// Forgets a connection ($disconnect, or a post that answered 410 Gone). When it was the
    /// user's last live one, the user goes offline after `grace_ms` (the sweep tells
    /// contacts), so a reconnect within the grace is not announced at all.
    pub async fn remove_connection(
        &self,
        user: &UserId,
        connection: &ConnectionId,
        now_ms: i64,
        window_ms: i64,
        grace_ms: i64,
    ) -> Result<(), StoreError> {
        let Some(remaining) = self.remove_entries(user, &[connection.to_string()]).await? else {
            return Ok(());
        };
        let grace_deadline = now_ms + grace_ms;
        match remaining.deadline {
            Some(deadline) if deadline > grace_deadline && !remaining.has_beating_connection(now_ms, window_ms) => {
                let result = self
                    .client
                    .update_item()
                    .table_name(self.table)
                    .key("userId", AttributeValue::S(user.to_string()))
                    .update_expression("SET deadline = :grace, lastSeen = :now")
                    .condition_expression("deadline = :seen")
                    .expression_attribute_values(":grace", n(grace_deadline))
                    .expression_attribute_values(":now", n(now_ms))
                    .expression_attribute_values(":seen", n(deadline))
                    .send()
                    .await;
                match result {
                    // A heartbeat moved the deadline meanwhile: the user is still online.
                    Err(err) if is_condition_failure(&err) => Ok(()),
                    Err(err) => Err(StoreError::aws("UpdateItem", &err)),
                    Ok(_) => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Removes map entries; answers the item as it is afterwards (None when there is none).
    async fn remove_entries(&self, user: &UserId, connections: &[String]) -> Result<Option<PresenceItem>, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(self.table)
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
            Ok(out) => Ok(out.attributes.map(serde_dynamo::from_item).transpose()?),
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(StoreError::aws("UpdateItem", &err)),
        }
    }

    async fn batch_get(&self, users: &[UserId], projection: &str) -> Result<Vec<PresenceItem>, StoreError> {
        let keys = users
            .iter()
            .map(|user| HashMap::from([("userId".to_owned(), AttributeValue::S(user.to_string()))]))
            .collect();
        super::batch_get(self.client, self.table, keys, Some(projection), false)
            .await?
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(StoreError::from))
            .collect()
    }

    /// The open connections of one user with the session each was opened with.
    pub async fn connections_of(
        &self,
        user: &UserId,
        now_ms: i64,
    ) -> Result<Vec<(ConnectionId, Option<String>)>, StoreError> {
        let mut found = Vec::new();
        for item in self.batch_get(std::slice::from_ref(user), "userId, conns").await? {
            for (connection, clock) in item.conns {
                if clock.until > now_ms {
                    found.push((ConnectionId::new(connection), clock.sid));
                }
            }
        }
        Ok(found)
    }

    /// The open connections of `users`: one BatchGetItem per 100 users (plus retries of
    /// keys DynamoDB left unprocessed), never a query per user.
    pub async fn live_connections(
        &self,
        users: &[UserId],
        now_ms: i64,
    ) -> Result<Vec<(UserId, ConnectionId)>, StoreError> {
        let mut live = Vec::new();
        for item in self.batch_get(users, "userId, conns").await? {
            for (connection, clock) in item.conns {
                if clock.until > now_ms {
                    live.push((item.user_id.clone(), ConnectionId::new(connection)));
                }
            }
        }
        Ok(live)
    }

    /// Online or not, and when last seen, for each of `users` (unknown users are offline).
    pub async fn states(&self, users: &[UserId], now_ms: i64) -> Result<Vec<PresenceState>, StoreError> {
        let items: HashMap<UserId, PresenceItem> = self
            .batch_get(users, "userId, deadline, lastSeen")
            .await?
            .into_iter()
            .map(|item| (item.user_id.clone(), item))
            .collect();
        Ok(users
            .iter()
            .map(|user| {
                let item = items.get(user);
                PresenceState {
                    user_id: user.clone(),
                    online: item.and_then(|i| i.deadline).is_some_and(|d| d > now_ms),
                    last_seen: item.and_then(|i| i.last_seen),
                }
            })
            .collect())
    }

    /// Users contacts believe online whose deadline has passed, with that deadline.
    pub async fn overdue(&self, shard: u32, now_ms: i64) -> Result<Vec<(UserId, i64)>, StoreError> {
        let mut pages = self.due_by(shard, now_ms).into_paginator().items().send();
        let mut overdue = Vec::new();
        while let Some(item) = pages.try_next().await.map_err(|e| StoreError::aws("Query", &e))? {
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

    /// Whether anyone contacts believe online has a deadline at or before `until_ms`
    /// (reads one key at most).
    pub async fn any_due_by(&self, shard: u32, until_ms: i64) -> Result<bool, StoreError> {
        let out = self.due_by(shard, until_ms).limit(1).send().await.map_err(|e| StoreError::aws("Query", &e))?;
        Ok(out.count > 0)
    }

    /// The Query of one `OnlineByDeadline` shard for deadlines at or before `until_ms`.
    fn due_by(&self, shard: u32, until_ms: i64) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(self.table)
            .index_name(keys::ONLINE_BY_DEADLINE_INDEX)
            .key_condition_expression("onlineShard = :shard AND deadline <= :until")
            .expression_attribute_values(":shard", n(shard))
            .expression_attribute_values(":until", n(until_ms))
    }

    /// Records that contacts are being told `user` is offline, unless something beat since
    /// the sweep read `deadline`. Answers `Some(last seen)` when this call made the change.
    pub async fn mark_offline(&self, user: &UserId, deadline: i64) -> Result<Option<Option<i64>>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table)
            .key("userId", AttributeValue::S(user.to_string()))
            .update_expression("REMOVE onlineShard")
            .condition_expression("attribute_exists(onlineShard) AND deadline = :seen")
            .expression_attribute_values(":seen", n(deadline))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item: Option<PresenceItem> = out.attributes.map(serde_dynamo::from_item).transpose()?;
                Ok(Some(item.and_then(|i| i.last_seen)))
            }
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(StoreError::aws("UpdateItem", &err)),
        }
    }
}
