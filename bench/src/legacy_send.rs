//! The send path before claimed seqs (up to commit d645d3a), kept here to be measured
//! beside the current one in the same run: one transaction of four items (dedupe row,
//! message, the channel's counter on the condition that it is still where the roster read
//! it, the sender's read position), retried with jittered backoff for up to 8 s while
//! other sends take the seq, then refused `rate_limited`. Everything around it is ours
//! (rate limit, roster, presence lookup beside the write, fan-out, ack), so a difference
//! in the bench is the append alone. Text messages only.

use std::sync::{Arc, OnceLock};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use chat_aws::apigw;
use chat_domain::ids::MessageId;
use chat_domain::model::{ChannelId, ClientMsgId, ConnectionId, Message, MessageText, UserId};
use chat_domain::ports::{ChannelMeta, DEDUPE_WINDOW_S};
use chat_domain::protocol::{ClientFrame, MessageFrames, ServerFrame};
use chat_domain::{App, ChatError};
use local_gateway::invoke::{InProcess, Invoke, InvokeError, InvokeFuture};
use local_gateway::routes::Function;
use serde_json::{Value, json};

/// How long a send kept retrying while others took the next seq.
const APPEND_BUDGET_MS: u64 = 8_000;

/// Where the legacy append writes: set once the stack is up.
pub struct Tables {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub channels: String,
    pub messages: String,
}

pub struct LegacySend {
    app: Arc<App>,
    ours: InProcess,
    tables: Arc<OnceLock<Tables>>,
}

enum Outcome {
    Stored,
    Duplicate(MessageId),
    SeqTaken(Option<u64>),
}

impl LegacySend {
    pub fn new(app: Arc<App>, tables: Arc<OnceLock<Tables>>) -> Self {
        Self { ours: InProcess::new(app.clone()), app, tables }
    }

    async fn send(&self, event: Value) -> Result<Value, InvokeError> {
        let body = event["body"].as_str().unwrap_or_default().to_owned();
        let frame = match ClientFrame::parse(&body) {
            Ok(ClientFrame::SendMessage { channel_id, client_msg_id, text, .. }) => {
                let event: ApiGatewayWebsocketProxyRequest =
                    serde_json::from_value(event).map_err(|e| InvokeError::BadEvent(e.to_string()))?;
                let (user, connection) = apigw::ws_caller(&event).map_err(|e| InvokeError::BadEvent(e.to_string()))?;
                match self.send_message(&user, &connection, &channel_id, &client_msg_id, text).await {
                    Ok(ack) => return Ok(json!({"statusCode": 200, "body": ack})),
                    Err(err) => ServerFrame::Error(err.body().about_frame(&body)),
                }
            }
            _ => return self.ours.invoke(Function::Send, event).await,
        };
        Ok(json!({"statusCode": 200, "body": frame.to_json()}))
    }

    /// `chat::send_message` as it was, for text.
    async fn send_message(
        &self,
        sender: &UserId,
        origin: &ConnectionId,
        channel_id: &ChannelId,
        client_msg_id: &ClientMsgId,
        text: String,
    ) -> Result<String, ChatError> {
        let app = &*self.app;
        let text = MessageText::parse(text)?;
        let (within_limit, roster) = tokio::join!(
            chat_domain::limits::check(app, chat_domain::limits::Action::Send, sender.as_str()),
            chat_domain::access::roster_for_member(app, sender, channel_id)
        );
        within_limit?;
        let roster = roster?;
        let message: Message = serde_json::from_value(json!({
            "channelId": channel_id,
            "messageId": MessageId::ZERO,
            "seq": 0,
            "authorId": sender,
            "text": text.as_str(),
            "clientMsgId": client_msg_id,
            "createdAt": 0,
        }))
        .map_err(|e| ChatError::InvalidRequest(format!("legacy message: {e}")))?;
        let members = roster.member_ids();
        let (appended, live) = tokio::join!(
            self.append_with_retries(message, roster.meta.clone()),
            chat_domain::connections::reach(app, &members)
        );
        let message = match appended? {
            Ok(message) => message,
            Err(earlier) => {
                let stored = app.messages().get(channel_id, earlier).await?.ok_or_else(|| {
                    ChatError::InvalidRequest(format!("the retried send's message {earlier} is missing"))
                })?;
                return Ok(MessageFrames::new(client_msg_id, &stored).ack);
            }
        };
        let frames = MessageFrames::new(client_msg_id, &message);
        chat_domain::delivery::deliver(app, &roster, origin, &message, &frames.live, None, live.ok()).await;
        Ok(frames.ack)
    }

    /// `ordering::append_next` as it was: `Ok(Err(id))` for a duplicate.
    async fn append_with_retries(
        &self,
        mut message: Message,
        meta: ChannelMeta,
    ) -> Result<Result<Message, MessageId>, ChatError> {
        let started = std::time::Instant::now();
        let (mut seq, mut last_id) = (meta.seq, meta.last_message_id);
        for attempt in 0u32.. {
            if started.elapsed().as_millis() as u64 > APPEND_BUDGET_MS {
                break;
            }
            let now = self.app.now_ms();
            message.message_id = MessageId::next_after(now, last_id);
            message.seq = seq + 1;
            message.created_at = now;
            match self.append(&message, now).await? {
                Outcome::Stored => return Ok(Ok(message)),
                Outcome::Duplicate(earlier) => return Ok(Err(earlier)),
                Outcome::SeqTaken(current) => {
                    let current = match current {
                        Some(current) => current,
                        None => {
                            let meta = self.app.channels().meta(&message.channel_id).await?;
                            meta.map(|m| m.seq).unwrap_or(seq)
                        }
                    };
                    // The id only needs to pass the channel's last: a fresh read of the
                    // meta is what the old path did on conflict.
                    if let Some(meta) = self.app.channels().meta(&message.channel_id).await? {
                        last_id = meta.last_message_id;
                    }
                    seq = current;
                    let ceiling_ms = 1u64 << attempt.min(5);
                    tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(0..=ceiling_ms))).await;
                }
            }
        }
        Err(ChatError::RateLimited { retry_after_ms: 500 })
    }

    /// The old transaction: dedupe row, message, counter (on condition), read position.
    async fn append(&self, message: &Message, now_ms: i64) -> Result<Outcome, ChatError> {
        let tables = self.tables.get().ok_or_else(|| ChatError::InvalidRequest("legacy tables not set".into()))?;
        let n = |v: u64| AttributeValue::N(v.to_string());
        let s = |v: String| AttributeValue::S(v);
        let channel = message.channel_id.to_string();
        let dedupe = Put::builder()
            .table_name(&tables.channels)
            .item("pk", s(channel.clone()))
            .item("sk", s(format!("dedupe#{}#{}", message.author_id, message.client_msg_id)))
            .item("messageId", n(message.message_id.as_u64()))
            .item("ttl", n((now_ms / 1000 + DEDUPE_WINDOW_S) as u64))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(internal)?;
        let item: std::collections::HashMap<String, AttributeValue> = serde_dynamo::to_item(json!({
            "pk": format!("{}#{}", message.channel_id, message.message_id.bucket().0),
            "id": message.message_id.as_u64(),
            "channelId": message.channel_id,
            "seq": message.seq,
            "authorId": message.author_id,
            "text": message.text,
            "clientMsgId": message.client_msg_id,
            "createdAt": message.created_at,
        }))
        .map_err(internal)?;
        let message_put = Put::builder()
            .table_name(&tables.messages)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(internal)?;
        let meta = Update::builder()
            .table_name(&tables.channels)
            .key("pk", s(channel.clone()))
            .key("sk", s("meta".into()))
            .update_expression("SET #seq = :seq, #last = :id ADD #buckets :bucket")
            .condition_expression("#seq = :previous")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_names("#last", "lastMessageId")
            .expression_attribute_names("#buckets", "buckets")
            .expression_attribute_values(":seq", n(message.seq))
            .expression_attribute_values(":previous", n(message.seq - 1))
            .expression_attribute_values(":id", n(message.message_id.as_u64()))
            .expression_attribute_values(":bucket", AttributeValue::Ns(vec![message.message_id.bucket().0.to_string()]))
            .build()
            .map_err(internal)?;
        let sender_read = Update::builder()
            .table_name(&tables.channels)
            .key("pk", s(channel))
            .key("sk", s(format!("member#{}", message.author_id)))
            .update_expression("SET lastReadSeq = :seq, lastReadId = :id")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":seq", n(message.seq))
            .expression_attribute_values(":id", n(message.message_id.as_u64()))
            .build()
            .map_err(internal)?;
        let result = tables
            .dynamo
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(dedupe).build())
            .transact_items(TransactWriteItem::builder().put(message_put).build())
            .transact_items(TransactWriteItem::builder().update(meta).build())
            .transact_items(TransactWriteItem::builder().update(sender_read).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Outcome::Stored),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() else {
            return Err(internal(err));
        };
        let reasons = cancelled.cancellation_reasons();
        let failed = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        let number = |item: Option<&std::collections::HashMap<String, AttributeValue>>, name: &str| {
            item.and_then(|i| i.get(name)).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok())
        };
        if failed(0) {
            let earlier = number(reasons[0].item(), "messageId").unwrap_or_default();
            return Ok(Outcome::Duplicate(MessageId::from_u64(earlier)));
        }
        if failed(2) {
            return Ok(Outcome::SeqTaken(number(reasons[2].item(), "seq")));
        }
        if reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
            return Ok(Outcome::SeqTaken(None));
        }
        Err(internal(err))
    }
}

fn internal(err: impl std::fmt::Debug) -> ChatError {
    ChatError::InvalidRequest(format!("legacy append: {err:?}"))
}

impl Invoke for LegacySend {
    fn invoke(&self, function: Function, event: Value) -> InvokeFuture<'_> {
        Box::pin(async move {
            match function {
                Function::Send => self.send(event).await,
                other => self.ours.invoke(other, event).await,
            }
        })
    }
}
