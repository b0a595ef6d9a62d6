//! The Messages table and the one write that appends a message to a channel.

use std::sync::Arc;

use crate::lazy::LazyClient;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use chat_domain::PortError;
use chat_domain::ids::{Bucket, MessageId};
use chat_domain::model::{Attachment, ChannelId, ClientMsgId, Message, UserId};
use chat_domain::ports::{AppendOutcome, ChangeRefused, DEDUPE_WINDOW_S, MessageLog as Log, Order};

use super::channels::meta_from_item;
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
        }
    }
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
/// writes the message and the channel's meta item together.
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
        let meta_update = Update::builder()
            .table_name(&self.channels_table)
            .key("pk", AttributeValue::S(message.channel_id.to_string()))
            .key("sk", AttributeValue::S(keys::CHANNEL_META_SK.into()))
            .update_expression("SET #seq = :seq, #last = :id ADD #buckets :bucket")
            .condition_expression("#seq = :previous")
            // On conflict the current meta comes back, saving a read before the retry.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_names("#last", "lastMessageId")
            .expression_attribute_names("#buckets", "buckets")
            .expression_attribute_values(":seq", number(message.seq))
            .expression_attribute_values(":previous", number(message.seq - 1))
            .expression_attribute_values(":id", number(message.message_id.as_u64()))
            .expression_attribute_values(":bucket", AttributeValue::Ns(vec![message.message_id.bucket().0.to_string()]))
            .build()
            .map_err(build_error)?;

        // Sending a message reads the channel up to it: the sender's unread count stays 0.
        let sender_read = Update::builder()
            .table_name(&self.channels_table)
            .key("pk", AttributeValue::S(message.channel_id.to_string()))
            .key("sk", AttributeValue::S(keys::member_sk(&message.author_id)))
            .update_expression("SET lastReadSeq = :seq, lastReadId = :id")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":seq", number(message.seq))
            .expression_attribute_values(":id", number(message.message_id.as_u64()))
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .get()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(dedupe_put).build())
            .transact_items(TransactWriteItem::builder().put(message_put).build())
            .transact_items(TransactWriteItem::builder().update(meta_update).build())
            .transact_items(TransactWriteItem::builder().update(sender_read).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(AppendOutcome::Stored),
            Err(err) => err,
        };
        let reasons = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                cancelled.cancellation_reasons().to_vec()
            }
            // A timeout, a dropped connection or a 500 says nothing about whether the
            // transaction committed: the dedupe row does.
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
            let earlier = reasons[0].item().and_then(|item| match item.get("messageId") {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            });
            let earlier = match earlier {
                Some(id) => MessageId::from_u64(id),
                None => self
                    .find_dedupe(&message.channel_id, &message.author_id, &message.client_msg_id)
                    .await?
                    .ok_or_else(|| StoreError::Contended("dedupe row vanished during a retried send".into()))?,
            };
            return Ok(own_or_earlier(message, earlier));
        }
        // The seq moved (or a concurrent transaction touched the same items): retryable.
        if failed(2) {
            let current = match reasons[2].item() {
                Some(item) => Some(meta_from_item(item.clone())?),
                None => None,
            };
            return Ok(AppendOutcome::SeqTaken(current));
        }
        if failed(3) {
            return Ok(AppendOutcome::NotAMember);
        }
        if reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
            return Ok(AppendOutcome::SeqTaken(None));
        }
        Err(StoreError::aws("TransactWriteItems", err).into())
    }

    async fn get(&self, channel: &ChannelId, id: MessageId) -> Result<Option<Message>, PortError> {
        Ok(self.item(channel, id).await?.map(MessageItem::into_message))
    }

    async fn edit(
        &self,
        channel: &ChannelId,
        id: MessageId,
        author: &UserId,
        text: &str,
        now_ms: i64,
    ) -> Result<Result<Message, ChangeRefused>, PortError> {
        let result = self
            .client
            .get()
            .update_item()
            .table_name(&self.messages_table)
            .key("pk", AttributeValue::S(keys::message_pk(channel, id.bucket())))
            .key("id", number(id.as_u64()))
            .update_expression("SET #text = :text, editedAt = :now")
            .condition_expression("attribute_exists(pk) AND authorId = :author AND attribute_not_exists(deleted)")
            .expression_attribute_names("#text", "text")
            .expression_attribute_values(":text", AttributeValue::S(text.to_owned()))
            .expression_attribute_values(":now", number(now_ms))
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
        now_ms: i64,
    ) -> Result<Result<Message, ChangeRefused>, PortError> {
        let mut condition = "attribute_exists(pk) AND attribute_not_exists(deleted)".to_owned();
        let mut update = Update::builder()
            .table_name(&self.messages_table)
            .key("pk", AttributeValue::S(keys::message_pk(&message.channel_id, message.message_id.bucket())))
            .key("id", number(message.message_id.as_u64()))
            // The file keys stay until the files are removed (`forget_files`), so a retry
            // after a crash in between still knows what to remove.
            .update_expression("SET deleted = :yes, deletedAt = :now REMOVE #text")
            .expression_attribute_names("#text", "text")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":now", number(now_ms))
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
        let mut found = Vec::new();
        let mut start_key = None;
        loop {
            let out = self
                .client
                .get()
                .query()
                .table_name(&self.messages_table)
                .key_condition_expression("pk = :pk AND id BETWEEN :low AND :high")
                .expression_attribute_values(":pk", AttributeValue::S(keys::message_pk(channel, bucket)))
                .expression_attribute_values(":low", number(low.as_u64()))
                .expression_attribute_values(":high", number(high.as_u64()))
                .scan_index_forward(order == Order::OldestFirst)
                .limit((limit - found.len()) as i32)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| StoreError::aws("Query", e))?;
            for item in out.items.unwrap_or_default() {
                found.push(super::from_item::<MessageItem>(item)?.into_message());
            }
            start_key = out.last_evaluated_key;
            if start_key.is_none() || found.len() >= limit {
                return Ok(found);
            }
        }
    }
}
