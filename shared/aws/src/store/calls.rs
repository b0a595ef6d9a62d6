//! Calls in the Presence table (live state with a TTL, like connections): per call one item,
//! key `call#{callId}`, holding the call as frames show it (`call`), its `state` apart for
//! the conditions, and the two devices; per user in a call one mark, key `incall#{userId}`,
//! naming the call, the device they take part from and until when the mark holds. Small
//! items: each write is 1 write unit (2 in a transaction).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::builders::PutBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chat_domain::PortError;
use chat_domain::calls::{Call, CallState};
use chat_domain::model::{CallId, ConnectionId, UserId};
use chat_domain::ports::{CallRecord, CallStart, CallStore, InCall};

use super::{Item, StoreError, from_value, keys, to_value};
use crate::lazy::LazyClient;

/// How long an ended call's record stays (a late `endCall` is answered from it).
const ENDED_KEPT_S: i64 = 24 * 60 * 60;

#[derive(Clone)]
pub struct Calls {
    client: Arc<LazyClient<Client>>,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn state_name(state: CallState) -> &'static str {
    match state {
        CallState::Ringing => "ringing",
        CallState::Active => "active",
        CallState::Ended => "ended",
    }
}

impl Calls {
    pub fn new(client: Arc<LazyClient<Client>>, presence_table: impl Into<String>) -> Self {
        Self { client, table: presence_table.into() }
    }

    fn call_item(record: &CallRecord, keep_until_ms: i64) -> Result<Item, StoreError> {
        let call = &record.call;
        let mut item = HashMap::from([
            ("userId".to_owned(), s(keys::call_key(&call.call_id))),
            ("state".to_owned(), s(state_name(call.state))),
            ("call".to_owned(), to_value(call)?),
            ("callerConn".to_owned(), s(record.caller_connection.as_str())),
            ("ttl".to_owned(), n(keep_until_ms / 1000 + ENDED_KEPT_S)),
        ]);
        if let Some(callee) = &record.callee_connection {
            item.insert("calleeConn".to_owned(), s(callee.as_str()));
        }
        Ok(item)
    }

    fn mark_item(user: &UserId, call: &CallId, connection: Option<&ConnectionId>, until: i64) -> Item {
        let mut item = HashMap::from([
            ("userId".to_owned(), s(keys::in_call_key(user))),
            ("callId".to_owned(), s(call.as_str())),
            ("until".to_owned(), n(until)),
            ("ttl".to_owned(), n(until / 1000 + 1)),
        ]);
        if let Some(connection) = connection {
            item.insert("conn".to_owned(), s(connection.as_str()));
        }
        item
    }

    fn put(&self, item: Item) -> PutBuilder {
        Put::builder().table_name(&self.table).set_item(Some(item))
    }

    /// Puts of both users' marks as `record` names their devices.
    fn marks(&self, record: &CallRecord, until: i64) -> [PutBuilder; 2] {
        let call = &record.call;
        [
            self.put(Self::mark_item(&call.caller_id, &call.call_id, Some(&record.caller_connection), until)),
            self.put(Self::mark_item(&call.callee_id, &call.call_id, record.callee_connection.as_ref(), until)),
        ]
    }

    /// Runs a transaction; `Ok(None)` when it was cancelled, with the index of each item
    /// whose condition failed.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Option<Vec<usize>>, StoreError> {
        match self.client.get().transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(None),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Ok(Some(
                    cancelled
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                        .map(|(i, _)| i)
                        .collect(),
                )),
                _ => Err(StoreError::aws("TransactWriteItems", err)),
            },
        }
    }

    async fn get_item(&self, key: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get()
            .get_item()
            .table_name(&self.table)
            .key("userId", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        Ok(out.item)
    }
}

fn transaction(puts: [PutBuilder; 3]) -> Vec<TransactWriteItem> {
    puts.into_iter()
        .map(|put| TransactWriteItem::builder().put(put.build().expect("table and item are set")).build())
        .collect()
}

fn text(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    }
}

#[async_trait::async_trait]
impl CallStore for Calls {
    async fn start(&self, record: &CallRecord, now_ms: i64) -> Result<CallStart, PortError> {
        let call = Self::call_item(record, record.call.ring_until).map_err(PortError::from)?;
        let new_call = self.put(call).condition_expression("attribute_not_exists(userId)");
        // A mark of another call that still holds makes its user busy.
        let free = |put: PutBuilder| {
            put.condition_expression("attribute_not_exists(userId) OR #until <= :now OR callId = :call")
                .expression_attribute_names("#until", "until")
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":call", s(record.call.call_id.as_str()))
        };
        let [caller, callee] = self.marks(record, record.call.ring_until);
        let items = transaction([new_call, free(caller), free(callee)]);
        Ok(match self.transact(items).await? {
            None => CallStart::Started,
            Some(failed) if failed.contains(&1) => CallStart::CallerBusy,
            Some(failed) if failed.contains(&2) => CallStart::CalleeBusy,
            Some(_) => return Err(PortError::Contended(format!("call {} exists already", record.call.call_id))),
        })
    }

    async fn get(&self, call: &CallId) -> Result<Option<CallRecord>, PortError> {
        let Some(mut item) = self.get_item(keys::call_key(call)).await? else { return Ok(None) };
        let stored: Call = from_value(item.remove("call").unwrap_or(AttributeValue::Null(true)))?;
        let caller_connection = text(&item, "callerConn")
            .map(ConnectionId::new)
            .ok_or_else(|| PortError::Corrupt(format!("call {call} has no caller connection").into()))?;
        Ok(Some(CallRecord {
            call: stored,
            caller_connection,
            callee_connection: text(&item, "calleeConn").map(ConnectionId::new),
        }))
    }

    async fn advance(&self, next: &CallRecord, from: CallState, marks_until: i64) -> Result<bool, PortError> {
        let call = Self::call_item(next, marks_until).map_err(PortError::from)?;
        let changed = self
            .put(call)
            .condition_expression("#state = :from")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":from", s(state_name(from)));
        let [caller, callee] = self.marks(next, marks_until);
        let items = transaction([changed, caller, callee]);
        Ok(self.transact(items).await?.is_none())
    }

    async fn finish(&self, ended: &CallRecord, from: CallState) -> Result<bool, PortError> {
        let at = ended.call.ended_at.unwrap_or(ended.call.started_at);
        let item = Self::call_item(ended, at).map_err(PortError::from)?;
        let written = self
            .client
            .get()
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#state = :from")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":from", s(state_name(from)))
            .send()
            .await;
        match written {
            Ok(_) => {}
            Err(err) if err.as_service_error().is_some_and(PutItemError::is_conditional_check_failed_exception) => {
                return Ok(false);
            }
            Err(err) => return Err(StoreError::aws("PutItem", err).into()),
        }
        // Each user's mark goes unless it names another call by now.
        let leave = |user: &UserId| {
            self.client
                .get()
                .delete_item()
                .table_name(&self.table)
                .key("userId", s(keys::in_call_key(user)))
                .condition_expression("callId = :call")
                .expression_attribute_values(":call", s(ended.call.call_id.as_str()))
                .send()
        };
        let (caller, callee) = tokio::join!(leave(&ended.call.caller_id), leave(&ended.call.callee_id));
        for result in [caller, callee] {
            if let Err(err) = result
                && !err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception())
            {
                return Err(StoreError::aws("DeleteItem", err).into());
            }
        }
        Ok(true)
    }

    async fn in_call(&self, user: &UserId) -> Result<Option<InCall>, PortError> {
        let Some(item) = self.get_item(keys::in_call_key(user)).await? else { return Ok(None) };
        let call_id = text(&item, "callId").and_then(|id| CallId::parse(id).ok());
        let until = match item.get("until") {
            Some(AttributeValue::N(until)) => until.parse().ok(),
            _ => None,
        };
        let (Some(call_id), Some(until)) = (call_id, until) else {
            return Err(PortError::Corrupt(format!("the call mark of {user} is incomplete").into()));
        };
        Ok(Some(InCall { call_id, connection: text(&item, "conn").map(ConnectionId::new), until }))
    }
}
