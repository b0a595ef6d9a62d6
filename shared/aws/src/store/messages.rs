//! The Messages table and the one write that appends a message to a channel.

use std::sync::Arc;

use crate::lazy::LazyClient;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use chat_domain::PortError;
use chat_domain::calls::CallEntry;
use chat_domain::ids::{Bucket, MessageId};
use chat_domain::model::{Attachment, ChannelId, ClientMsgId, Message, Quote, UserId};
use chat_domain::ports::{
    AppendOutcome, Change, ChangeRefused, Changed, Claim, DEDUPE_WINDOW_S, MessageLog as Log, Order, ScanPage,
};

use super::{StoreError, keys};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageItem {
    pk: String,
    id: u64,
    channel_id: ChannelId,
    seq: u64,
    author_id: UserId,
    /// Removed by a delete.
    #[serde(default)]
    text: String,
    client_msg_id: ClientMsgId,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edited_at: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    /// The latest change's position in the channel (`changeSeq`, the sort key of the
    /// sparse `ChannelChanges` index) and when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changed_at: Option<i64>,
    /// A reply's quote of the message it answers, as it was when the reply was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<Quote>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mentions: Vec<UserId>,
    /// A call entry's record of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call: Option<CallEntry>,
}

impl MessageItem {
    fn from_message(message: &Message) -> Self {
        Self {
            pk: keys::message_pk(&message.channel_id, message.message_id.bucket()),
            id: message.message_id.as_u64(),
            channel_id: message.channel_id.clone(),
            seq: message.seq,
            author_id: message.author_id.clone(),
            text: message.text.clone(),
            client_msg_id: message.client_msg_id.clone(),
            created_at: message.created_at,
            // Download URLs are made per reader, never stored.
            attachments: message.attachments.iter().map(|a| Attachment { url: None, ..a.clone() }).collect(),
            edited_at: message.edited_at,
            deleted: message.deleted,
            change_seq: message.change_seq,
            changed_at: None,
            reply_to: message.reply_to.clone(),
            mentions: message.mentions.clone(),
            call: message.call.clone(),
        }
    }

    fn into_message(self) -> Message {
        Message {
            channel_id: self.channel_id,
            message_id: MessageId::from_u64(self.id),
            seq: self.seq,
            author_id: self.author_id,
            text: self.text,
            client_msg_id: self.client_msg_id,
            created_at: self.created_at,
            // A deleted message keeps its file keys only until the files are gone.
            attachments: if self.deleted { Vec::new() } else { self.attachments },
            edited_at: self.edited_at,
            deleted: self.deleted,
            change_seq: self.change_seq,
            // A deleted message keeps nothing of what it said, nor of what it quoted.
            reply_to: if self.deleted { None } else { self.reply_to },
            mentions: if self.deleted { Vec::new() } else { self.mentions },
            // Kept in their own item (`store::reactions`).
            reactions: Vec::new(),
            call: self.call,
        }
    }
}

/// Where a scan of the Messages table stopped (its key).
#[derive(Debug, Serialize, Deserialize)]
struct ScanKey {
    pk: String,
    id: u64,
}

/// A Messages item (a stream record's image) as the message it holds.
pub fn message_of_item(item: super::Item) -> Result<Message, StoreError> {
    Ok(super::from_item::<MessageItem>(item)?.into_message())
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DedupeItem {
    pk: String,
    sk: String,
    message_id: u64,
    ttl: i64,
}

/// A dedupe row holding `message`'s own id means this very append committed (the SDK
/// retried a transaction whose first answer was lost); any other id is an earlier send.
fn own_or_earlier(message: &Message, stored: MessageId) -> AppendOutcome {
    if stored == message.message_id { AppendOutcome::Stored } else { AppendOutcome::Duplicate(stored) }
}

/// Appends to a channel's log and reads it back. Knows both tables because one append
/// writes the message and the channel's counter (on its meta item) together.
#[derive(Clone)]
pub struct MessageLog {
    client: Arc<LazyClient<Client>>,
    messages_table: String,
    channels_table: String,
}

impl MessageLog {
    pub fn new(
        client: Arc<LazyClient<Client>>,
        messages_table: impl Into<String>,
        channels_table: impl Into<String>,
    ) -> Self {
        Self { client, messages_table: messages_table.into(), channels_table: channels_table.into() }
    }

    /// The message id stored for this clientMsgId, if any (a consistent read).
    async fn find_dedupe(
        &self,
        channel: &ChannelId,
        author: &UserId,
        client_msg_id: &ClientMsgId,
    ) -> Result<Option<MessageId>, StoreError> {
        let out = self
            .client
            .get()
            .get_item()
            .table_name(&self.channels_table)
            .key("pk", AttributeValue::S(channel.to_string()))
            .key("sk", AttributeValue::S(keys::dedupe_sk(author, client_msg_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        let item: Option<DedupeItem> = out.item.map(super::from_item).transpose()?;
        Ok(item.map(|item| MessageId::from_u64(item.message_id)))
    }

    /// The two items every stored message writes: its dedupe row (only if new) and the
    /// message (only if its id is new).
    fn message_puts(&self, message: &Message, now_ms: i64) -> Result<[TransactWriteItem; 2], StoreError> {
        let dedupe = DedupeItem {
            pk: message.channel_id.to_string(),
            sk: keys::dedupe_sk(&message.author_id, &message.client_msg_id),
            message_id: message.message_id.as_u64(),
            ttl: now_ms / 1000 + DEDUPE_WINDOW_S,
        };
        let dedupe_put = Put::builder()
            .table_name(&self.channels_table)
            .set_item(Some(super::to_item(&dedupe)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let message_put = Put::builder()
            .table_name(&self.messages_table)
            .set_item(Some(super::to_item(MessageItem::from_message(message))?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        Ok([
            TransactWriteItem::builder().put(dedupe_put).build(),
            TransactWriteItem::builder().put(message_put).build(),
        ])
    }

    /// What a refused append or store means: a retried clientMsgId (the dedupe row, item 0,
    /// names the earlier message), a seq taken (the counter, item 2 when present), or an
    /// error. A timeout or a 500 says nothing about whether the transaction committed:
    /// the dedupe row does.
    async fn refused_append(
        &self,
        message: &Message,
        err: aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
    ) -> Result<AppendOutcome, PortError> {
        let reasons = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                cancelled.cancellation_reasons().to_vec()
            }
            _ => {
                return match self.find_dedupe(&message.channel_id, &message.author_id, &message.client_msg_id).await {
                    Ok(Some(id)) => Ok(own_or_earlier(message, id)),
                    Ok(None) | Err(_) => Err(StoreError::aws("TransactWriteItems", err).into()),
                };
            }
        };
        let failed = |index: usize| {
            reasons.get(index).and_then(|r| r.code()).is_some_and(|code| code == "ConditionalCheckFailed")
        };
        if failed(0) {
            let earlier = reasons[0].item().and_then(|item| item.get("messageId")).and_then(as_u64);
            let earlier = match earlier {
                Some(id) => MessageId::from_u64(id),
                None => self
                    .find_dedupe(&message.channel_id, &message.author_id, &message.client_msg_id)
                    .await?
                    .ok_or_else(|| StoreError::Contended("dedupe row vanished during a retried send".into()))?,
            };
            return Ok(own_or_earlier(message, earlier));
        }
        // The counter moved, or a concurrent transaction touched the same items.
        if reasons.len() > 2 && (failed(2) || reasons.iter().any(|r| r.code() == Some("TransactionConflict"))) {
            return Ok(AppendOutcome::SeqTaken);
        }
        Err(StoreError::aws("TransactWriteItems", err).into())
    }

    /// An UpdateItem of the channel's meta item, where its counters live.
    fn meta_update(
        &self,
        channel: &ChannelId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .get()
            .update_item()
            .table_name(&self.channels_table)
            .key("pk", AttributeValue::S(channel.to_string()))
            .key("sk", AttributeValue::S(keys::CHANNEL_META_SK.into()))
    }

    /// Records a bucket that holds messages on the channel's meta item.
    async fn add_bucket(&self, channel: &ChannelId, bucket: Bucket) -> Result<(), StoreError> {
        self.meta_update(channel)
            .update_expression("ADD buckets :bucket")
            .expression_attribute_values(":bucket", AttributeValue::Ns(vec![bucket.0.to_string()]))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(())
    }

    /// Up to `limit` message items a Query finds, page after page.
    async fn query_items(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        limit: usize,
    ) -> Result<Vec<MessageItem>, StoreError> {
        super::query_all(query, limit).await?.into_iter().map(super::from_item::<MessageItem>).collect()
    }

    /// One message's item as stored (a consistent read).
    async fn item(&self, channel: &ChannelId, id: MessageId) -> Result<Option<MessageItem>, StoreError> {
        let out = self
            .client
            .get()
            .get_item()
            .table_name(&self.messages_table)
            .key("pk", AttributeValue::S(keys::message_pk(channel, id.bucket())))
            .key("id", number(id.as_u64()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        out.item.map(super::from_item::<MessageItem>).transpose()
    }
}

/// The meta item's attribute holding the time of the channel's newest claimed seq.
pub const CLOCK: &str = "lastAt";

fn as_u64(value: &AttributeValue) -> Option<u64> {
    match value {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

fn number(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::build(e)
}

/// Why a conditional change of a message failed, from the item DynamoDB returned with it.
fn refusal(
    item: Option<std::collections::HashMap<String, AttributeValue>>,
    author: &UserId,
) -> Result<ChangeRefused, StoreError> {
    let Some(item) = item else { return Ok(ChangeRefused::NotFound) };
    let item: MessageItem = super::from_item(item)?;
    Ok(if item.deleted {
        ChangeRefused::Deleted
    } else if &item.author_id != author {
        ChangeRefused::NotAuthor
    } else {
        ChangeRefused::NotFound
    })
}

/// The port, over the table's own calls above.
#[async_trait::async_trait]
impl Log for MessageLog {
    async fn append(&self, message: &Message, now_ms: i64) -> Result<AppendOutcome, PortError> {
        let meta_update = Update::builder()
            .table_name(&self.channels_table)
            .key("pk", AttributeValue::S(message.channel_id.to_string()))
            .key("sk", AttributeValue::S(keys::CHANNEL_META_SK.into()))
            .update_expression("SET #seq = :seq, #clock = :at ADD #buckets :bucket")
            .condition_expression("#seq = :previous AND (attribute_not_exists(#clock) OR #clock <= :at)")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_names("#clock", CLOCK)
            .expression_attribute_names("#buckets", "buckets")
            .expression_attribute_values(":seq", number(message.seq))
            .expression_attribute_values(":previous", number(message.seq - 1))
            .expression_attribute_values(":at", number(message.created_at))
            .expression_attribute_values(":bucket", AttributeValue::Ns(vec![message.message_id.bucket().0.to_string()]))
            .build()
            .map_err(build_error)?;
        let [dedupe_put, message_put] = self.message_puts(message, now_ms)?;
        let result = self
            .client
            .get()
            .transact_write_items()
            .transact_items(dedupe_put)
            .transact_items(message_put)
            .transact_items(TransactWriteItem::builder().update(meta_update).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(AppendOutcome::Stored),
            Err(err) => self.refused_append(message, err).await,
        }
    }

    async fn claim(&self, channel: &ChannelId, now_ms: i64) -> Result<Option<Claim>, PortError> {
        let mut at_ms = now_ms;
        // A Lambda whose clock is behind the channel's continues from the channel's time;
        // the second attempt uses the time the refusal returned, so two are enough unless
        // another claim moves the clock again in between.
        for _ in 0..5 {
            let result = self
                .meta_update(channel)
                .update_expression("SET #clock = :at ADD #seq :one, #buckets :bucket")
                .condition_expression("attribute_exists(pk) AND (attribute_not_exists(#clock) OR #clock <= :at)")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_names("#clock", CLOCK)
                .expression_attribute_names("#buckets", "buckets")
                .expression_attribute_values(":one", number(1))
                .expression_attribute_values(":at", number(at_ms))
                .expression_attribute_values(
                    ":bucket",
                    AttributeValue::Ns(vec![Bucket::containing(at_ms).0.to_string()]),
                )
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match result {
                Ok(out) => {
                    let seq = out.attributes.as_ref().and_then(|a| a.get("seq")).and_then(as_u64);
                    let seq = seq.ok_or_else(|| StoreError::Contended("a claim answered no seq".into()))?;
                    let claim = Claim { seq, at_ms };
                    // The seq's high bits move the id's time forward by a millisecond per
                    // 4 million messages: once in a long while that crosses into a new bucket.
                    let bucket = MessageId::claimed(at_ms, seq).bucket();
                    if bucket != Bucket::containing(at_ms) {
                        self.add_bucket(channel, bucket).await?;
                    }
                    return Ok(Some(claim));
                }
                Err(err) => match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                        let Some(item) = refused.item() else { return Ok(None) };
                        let clock = item.get(CLOCK).and_then(as_u64).unwrap_or(0) as i64;
                        at_ms = at_ms.max(clock);
                    }
                    _ => return Err(StoreError::aws("UpdateItem", err).into()),
                },
            }
        }
        Err(StoreError::Contended(format!("the clock of channel {channel} kept moving ahead")).into())
    }

    async fn store_claimed(&self, message: &Message, now_ms: i64) -> Result<AppendOutcome, PortError> {
        let [dedupe_put, message_put] = self.message_puts(message, now_ms)?;
        let result = self
            .client
            .get()
            .transact_write_items()
            .transact_items(dedupe_put)
            .transact_items(message_put)
            .send()
            .await;
        match result {
            Ok(_) => Ok(AppendOutcome::Stored),
            Err(err) => self.refused_append(message, err).await,
        }
    }

    async fn fill_claimed(&self, message: &Message, now_ms: i64) -> Result<(), PortError> {
        let filler = Message { text: String::new(), attachments: Vec::new(), deleted: true, ..message.clone() };
        let mut item = super::to_item(MessageItem::from_message(&filler))?;
        item.insert("deletedAt".into(), number(now_ms));
        let put = self
            .client
            .get()
            .put_item()
            .table_name(&self.messages_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => {}
            // The seq holds a message after all (a write whose answer was lost): leave it.
            Err(err) if matches!(err.as_service_error(), Some(PutItemError::ConditionalCheckFailedException(_))) => {
                return Ok(());
            }
            Err(err) => return Err(StoreError::aws("PutItem", err).into()),
        }
        self.meta_update(&message.channel_id)
            .update_expression("ADD deletedSeqs :seq")
            .expression_attribute_values(":seq", AttributeValue::Ns(vec![message.seq.to_string()]))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(())
    }

    async fn get(&self, channel: &ChannelId, id: MessageId) -> Result<Option<Message>, PortError> {
        Ok(self.item(channel, id).await?.map(MessageItem::into_message))
    }

    async fn claim_change(&self, channel: &ChannelId, now_ms: i64) -> Result<Option<u64>, PortError> {
        let result = self
            .meta_update(channel)
            .update_expression("SET lastChangeAt = :now ADD changeSeq :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":now", number(now_ms))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.attributes.as_ref().and_then(|a| a.get("changeSeq")).and_then(as_u64)),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(None),
                _ => Err(StoreError::aws("UpdateItem", err).into()),
            },
        }
    }

    async fn changed_since(&self, channel: &ChannelId, after: u64, limit: usize) -> Result<Vec<Change>, PortError> {
        let query = self
            .client
            .get()
            .query()
            .table_name(&self.messages_table)
            .index_name(keys::CHANNEL_CHANGES_INDEX)
            .key_condition_expression("channelId = :channel AND changeSeq > :after")
            .expression_attribute_values(":channel", AttributeValue::S(channel.to_string()))
            .expression_attribute_values(":after", number(after));
        // The index holds changed messages and messages' reactions items.
        let mut changes = Vec::new();
        for item in super::query_all(query, limit).await? {
            if super::reactions::is_reactions_item(&item) {
                changes.push(super::reactions::change_from_item(item)?);
                continue;
            }
            let item: MessageItem = super::from_item(item)?;
            let (change_seq, changed_at) = (item.change_seq.unwrap_or(0), item.changed_at.unwrap_or(0));
            changes.push(Change { what: Changed::Message(Box::new(item.into_message())), change_seq, changed_at });
        }
        Ok(changes)
    }

    async fn scan(
        &self,
        segment: u32,
        segments: u32,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, PortError> {
        let start: Option<super::Item> = match cursor {
            Some(cursor) => {
                let key: ScanKey =
                    serde_json::from_str(cursor).map_err(|e| StoreError::Contended(format!("scan cursor: {e}")))?;
                Some(super::to_item(key)?)
            }
            None => None,
        };
        let out = self
            .client
            .get()
            .scan()
            .table_name(&self.messages_table)
            .segment(segment as i32)
            .total_segments(segments as i32)
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Scan", e))?;
        let mut messages = Vec::new();
        for item in out.items.unwrap_or_default() {
            // Reactions items share the table.
            let is_message =
                item.get("pk").and_then(|pk| pk.as_s().ok()).and_then(|pk| keys::channel_of_message_pk(pk)).is_some();
            if is_message {
                messages.push(message_of_item(item)?);
            }
        }
        let cursor = match out.last_evaluated_key {
            Some(key) => {
                let key: ScanKey = super::from_item(key)?;
                Some(serde_json::to_string(&key).map_err(|e| StoreError::Contended(format!("scan cursor: {e}")))?)
            }
            None => None,
        };
        Ok(ScanPage { messages, cursor })
    }

    async fn get_many(&self, channel: &ChannelId, ids: &[MessageId]) -> Result<Vec<Message>, PortError> {
        let keys = ids
            .iter()
            .map(|id| {
                std::collections::HashMap::from([
                    ("pk".to_owned(), AttributeValue::S(keys::message_pk(channel, id.bucket()))),
                    ("id".to_owned(), number(id.as_u64())),
                ])
            })
            .collect();
        let items = super::batch_get(self.client.get(), &self.messages_table, keys, None, false).await?;
        Ok(items
            .into_iter()
            .map(|item| super::from_item::<MessageItem>(item).map(MessageItem::into_message))
            .collect::<Result<_, _>>()?)
    }

    async fn edit(
        &self,
        channel: &ChannelId,
        id: MessageId,
        author: &UserId,
        text: &str,
        change: u64,
        now_ms: i64,
    ) -> Result<Result<Message, ChangeRefused>, PortError> {
        let result = self
            .client
            .get()
            .update_item()
            .table_name(&self.messages_table)
            .key("pk", AttributeValue::S(keys::message_pk(channel, id.bucket())))
            .key("id", number(id.as_u64()))
            .update_expression("SET #text = :text, editedAt = :now, changeSeq = :change, changedAt = :now")
            .condition_expression("attribute_exists(pk) AND authorId = :author AND attribute_not_exists(deleted)")
            .expression_attribute_names("#text", "text")
            .expression_attribute_values(":text", AttributeValue::S(text.to_owned()))
            .expression_attribute_values(":now", number(now_ms))
            .expression_attribute_values(":change", number(change))
            .expression_attribute_values(":author", AttributeValue::S(author.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item: MessageItem = super::from_item(out.attributes.unwrap_or_default())?;
                Ok(Ok(item.into_message()))
            }
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e)) => {
                    Ok(Err(refusal(e.item().cloned(), author)?))
                }
                _ => Err(StoreError::aws("UpdateItem", err).into()),
            },
        }
    }

    async fn soft_delete(
        &self,
        message: &Message,
        author: Option<&UserId>,
        change: u64,
        now_ms: i64,
    ) -> Result<Result<Message, ChangeRefused>, PortError> {
        let mut condition = "attribute_exists(pk) AND attribute_not_exists(deleted)".to_owned();
        let mut update = Update::builder()
            .table_name(&self.messages_table)
            .key("pk", AttributeValue::S(keys::message_pk(&message.channel_id, message.message_id.bucket())))
            .key("id", number(message.message_id.as_u64()))
            // The file keys stay until the files are removed (`forget_files`), so a retry
            // after a crash in between still knows what to remove.
            .update_expression(
                "SET deleted = :yes, deletedAt = :now, changeSeq = :change, changedAt = :now REMOVE #text, replyTo, mentions",
            )
            .expression_attribute_names("#text", "text")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":now", number(now_ms))
            .expression_attribute_values(":change", number(change))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(author) = author {
            condition.push_str(" AND authorId = :author");
            update = update.expression_attribute_values(":author", AttributeValue::S(author.to_string()));
        }
        let update = update.condition_expression(condition).build().map_err(build_error)?;
        let meta = Update::builder()
            .table_name(&self.channels_table)
            .key("pk", AttributeValue::S(message.channel_id.to_string()))
            .key("sk", AttributeValue::S(keys::CHANNEL_META_SK.into()))
            .update_expression("ADD deletedSeqs :seq")
            .expression_attribute_values(":seq", AttributeValue::Ns(vec![message.seq.to_string()]))
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .get()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().update(meta).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(message.clone())),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    let item = cancelled.cancellation_reasons().first().and_then(|r| r.item()).cloned();
                    match author {
                        Some(author) => Ok(Err(refusal(item, author)?)),
                        None => Ok(Err(if item.is_some() { ChangeRefused::Deleted } else { ChangeRefused::NotFound })),
                    }
                }
                _ => Err(StoreError::aws("TransactWriteItems", err).into()),
            },
        }
    }

    async fn files_left(&self, channel: &ChannelId, id: MessageId) -> Result<Vec<Attachment>, PortError> {
        Ok(self.item(channel, id).await?.filter(|item| item.deleted).map(|item| item.attachments).unwrap_or_default())
    }

    async fn forget_files(&self, channel: &ChannelId, id: MessageId) -> Result<(), PortError> {
        self.client
            .get()
            .update_item()
            .table_name(&self.messages_table)
            .key("pk", AttributeValue::S(keys::message_pk(channel, id.bucket())))
            .key("id", number(id.as_u64()))
            .update_expression("REMOVE attachments")
            .condition_expression("deleted = :yes")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(())
    }

    async fn in_bucket(
        &self,
        channel: &ChannelId,
        bucket: Bucket,
        range: (MessageId, MessageId),
        limit: usize,
        order: Order,
    ) -> Result<Vec<Message>, PortError> {
        let (low, high) = range;
        let query = self
            .client
            .get()
            .query()
            .table_name(&self.messages_table)
            .key_condition_expression("pk = :pk AND id BETWEEN :low AND :high")
            .expression_attribute_values(":pk", AttributeValue::S(keys::message_pk(channel, bucket)))
            .expression_attribute_values(":low", number(low.as_u64()))
            .expression_attribute_values(":high", number(high.as_u64()))
            .scan_index_forward(order == Order::OldestFirst);
        Ok(self.query_items(query, limit).await?.into_iter().map(MessageItem::into_message).collect())
    }
}
