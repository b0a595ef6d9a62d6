//! The chat operations every entry point shares: connect, disconnect, send with fan-out,
//! and history. Handlers call these; these call the stores and the notifier.

use futures::StreamExt;
use serde::Serialize;
use tracing::{info, warn};

use crate::app::App;
use crate::error::ChatError;
use crate::ids::{Bucket, MessageId};
use crate::model::{ChannelId, ClientMsgId, ConnectionId, Message, MessageText, UserId};
use crate::notify::PostOutcome;
use crate::presence;
use crate::protocol::TypingState;
use crate::protocol::{MAX_FRAME_BYTES, ServerFrame};
use crate::store::{AppendOutcome, Order};

/// API Gateway closes a connection after 2 hours; a record older than that is stale.
pub const CONNECTION_TTL_MS: i64 = (2 * 60 + 5) * 60 * 1000;
/// Concurrent posts per send: enough to reach 100 members' devices in a few round trips.
const FAN_OUT_CONCURRENCY: usize = 32;
/// How long a send keeps retrying while other senders take the next seq first. Each
/// round one of the contenders wins, so N simultaneous sends need N rounds.
const APPEND_BUDGET_MS: u64 = 8_000;

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 100;

/// `$connect`: counts the attempt against the user's connect limit, records the
/// connection, and tells contacts when the user comes online.
pub async fn connect(
    app: &App,
    user: &UserId,
    connection: &ConnectionId,
    lifetime_left_ms: i64,
) -> Result<(), ChatError> {
    let limit = app.config.rate_limits.connects;
    if let Some(retry_after_ms) = app.rate_limiter().hit("connect", user, limit, app.now_ms()).await? {
        return Err(ChatError::RateLimited { retry_after_ms });
    }
    presence::connected(app, user, connection, lifetime_left_ms).await?;
    info!(%user, %connection, "connected");
    Ok(())
}

pub async fn disconnect(app: &App, user: &UserId, connection: &ConnectionId) -> Result<(), ChatError> {
    presence::disconnected(app, user, connection).await?;
    info!(%user, %connection, "disconnected");
    Ok(())
}

/// What a send produced, for the ack.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message: Message,
    /// True when this clientMsgId had been sent before: nothing new was stored or delivered.
    pub duplicate: bool,
}

/// Stores a message and delivers it to every live connection of every member, except
/// `origin` (the sending connection, which gets the ack instead).
#[tracing::instrument(skip(app, text), fields(%sender, %channel_id, %client_msg_id))]
pub async fn send_message(
    app: &App,
    sender: &UserId,
    origin: &ConnectionId,
    channel_id: &ChannelId,
    client_msg_id: &ClientMsgId,
    text: String,
) -> Result<Sent, ChatError> {
    let text = MessageText::parse(text)?;
    let limit = app.config.rate_limits.sends;
    if let Some(retry_after_ms) = app.rate_limiter().hit("send", sender, limit, app.now_ms()).await? {
        return Err(ChatError::RateLimited { retry_after_ms });
    }
    // The same answer whether the channel exists or not: no probing for channel ids.
    let roster = crate::membership::roster_for_member(app, sender, channel_id).await?;

    let mut meta = roster.meta.clone();
    let mut message = Message {
        channel_id: channel_id.clone(),
        message_id: MessageId::ZERO,
        seq: 0,
        author_id: sender.clone(),
        text: text.as_str().to_owned(),
        client_msg_id: client_msg_id.clone(),
        created_at: 0,
    };
    // The live event must fit API Gateway's 128 KB message limit; the widest id and seq
    // make this check conservative before anything is stored.
    message.message_id = MessageId::from_u64(u64::MAX);
    message.seq = u64::MAX;
    let widest = ServerFrame::Ack { client_msg_id: client_msg_id.clone(), message: message.clone() }.to_json();
    if widest.len() > MAX_FRAME_BYTES {
        return Err(ChatError::TooLarge(format!(
            "the message would be {} bytes on the wire; the limit is {MAX_FRAME_BYTES}",
            widest.len()
        )));
    }

    let started = std::time::Instant::now();
    for attempt in 0u32.. {
        if started.elapsed().as_millis() as u64 > APPEND_BUDGET_MS {
            break;
        }
        let now = app.now_ms();
        message.message_id = MessageId::next_after(now, meta.last_message_id);
        message.seq = meta.seq + 1;
        message.created_at = now;
        match app.messages().append(&message, now).await? {
            AppendOutcome::Stored => {
                info!(message_id = %message.message_id, seq = message.seq, "stored");
                let frame = ServerFrame::Message { message: message.clone() }.to_json();
                fan_out(app, &roster.member_ids(), Some(origin), &frame).await;
                return Ok(Sent { message, duplicate: false });
            }
            AppendOutcome::Duplicate(earlier) => {
                let stored = app.messages().get(channel_id, earlier).await?.ok_or_else(|| {
                    ChatError::Internal(crate::store::StoreError::Conflict(format!(
                        "dedupe row points at missing message {earlier}"
                    )))
                })?;
                info!(message_id = %earlier, "retried send; acking the stored message");
                return Ok(Sent { message: stored, duplicate: true });
            }
            AppendOutcome::NotAMember => {
                return Err(ChatError::Forbidden(format!("you are not a member of channel {channel_id}")));
            }
            AppendOutcome::SeqTaken(current) => {
                meta =
                    match current {
                        Some(current) => current,
                        None => app.channels().meta(channel_id).await?.ok_or_else(|| {
                            ChatError::Forbidden(format!("you are not a member of channel {channel_id}"))
                        })?,
                    };
                // Jittered backoff so that contenders spread out instead of colliding again.
                let ceiling_ms = 1u64 << attempt.min(5);
                tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(0..=ceiling_ms))).await;
            }
        }
    }
    // The channel is busier than one counter can serialise: tell the client to retry.
    Err(ChatError::RateLimited { retry_after_ms: 500 })
}

/// What a fan-out did, for logs and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FanOutReport {
    pub delivered: usize,
    pub gone: usize,
    pub failed: usize,
}

/// Posts `frame` to every live connection of `members` (one batched presence lookup),
/// and forgets connections that answer 410 Gone. Delivery failures are logged, not
/// returned: the message is stored and devices catch up through history.
pub async fn fan_out(app: &App, members: &[UserId], skip: Option<&ConnectionId>, frame: &str) -> FanOutReport {
    let now = app.now_ms();
    let connections = match app.presence().live_connections(members, now).await {
        Ok(connections) => connections,
        Err(err) => {
            warn!(error = %err, "presence lookup failed; nobody gets the live event");
            return FanOutReport::default();
        }
    };
    let targets = connections.into_iter().filter(|(_, conn)| Some(conn) != skip);
    let outcomes: Vec<(UserId, ConnectionId, PostOutcome)> = futures::stream::iter(targets)
        .map(|(user, conn)| async move {
            let outcome = app.notifier.post(&conn, frame).await;
            (user, conn, outcome)
        })
        .buffer_unordered(FAN_OUT_CONCURRENCY)
        .collect()
        .await;

    let mut report = FanOutReport::default();
    for (user, conn, outcome) in outcomes {
        match outcome {
            PostOutcome::Delivered => report.delivered += 1,
            PostOutcome::Gone => {
                report.gone += 1;
                let settings = app.config.presence;
                let presence = app.presence();
                let forgotten = presence.remove_connection(
                    &user,
                    &conn,
                    app.now_ms(),
                    settings.window_ms,
                    settings.offline_grace_ms,
                );
                if let Err(err) = forgotten.await {
                    warn!(%user, connection = %conn, error = %err, "could not forget a gone connection");
                }
            }
            PostOutcome::Failed(error) => {
                report.failed += 1;
                warn!(%user, connection = %conn, %error, "post to connection failed");
            }
        }
    }
    report
}

/// A page of history query: ids strictly between `after` and `before`, newest first.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// Newest first.
    pub messages: Vec<Message>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<MessageId>,
}

/// Reads a page of a channel's history, walking only the buckets that hold messages:
/// one BatchGetItem (meta + membership), then one Query per non-empty bucket visited.
#[tracing::instrument(skip(app), fields(%user, %channel_id))]
pub async fn history(
    app: &App,
    user: &UserId,
    channel_id: &ChannelId,
    query: HistoryQuery,
) -> Result<HistoryPage, ChatError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(ChatError::InvalidRequest(format!("limit must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let (meta, is_member) = app.channels().meta_for_member(channel_id, user).await?;
    let meta = meta
        .filter(|_| is_member)
        .ok_or_else(|| ChatError::Forbidden(format!("you are not a member of channel {channel_id}")))?;

    // Exclusive bounds become inclusive id ranges.
    let high = match query.before {
        Some(before) if before.as_u64() == 0 => {
            return Ok(HistoryPage { messages: vec![], next_before: None });
        }
        Some(before) => MessageId::from_u64(before.as_u64() - 1),
        None => MessageId::from_u64(u64::MAX),
    };
    let low = query.after.map(|a| MessageId::from_u64(a.as_u64().saturating_add(1))).unwrap_or(MessageId::ZERO);

    // One more than asked for tells whether another page exists.
    let want = limit + 1;
    let mut messages = Vec::with_capacity(want);
    let buckets: Vec<Bucket> =
        meta.buckets.iter().rev().copied().filter(|b| *b <= high.bucket() && *b >= low.bucket()).collect();
    for bucket in buckets {
        let from = low.max(bucket.first_id());
        let to = high.min(bucket.last_id());
        if from > to {
            continue;
        }
        let found =
            app.messages().in_bucket(channel_id, bucket, (from, to), want - messages.len(), Order::NewestFirst).await?;
        messages.extend(found);
        if messages.len() >= want {
            break;
        }
    }
    let next_before = if messages.len() > limit {
        messages.truncate(limit);
        messages.last().map(|m| m.message_id)
    } else {
        None
    };
    Ok(HistoryPage { messages, next_before })
}

/// Tells the channel's other members that `user` started or stopped typing. Nothing is
/// stored; clients let an indicator lapse after a few seconds without a renewal.
pub async fn typing(app: &App, user: &UserId, channel_id: &ChannelId, state: TypingState) -> Result<(), ChatError> {
    let roster = crate::membership::roster_for_member(app, user, channel_id).await?;
    let others: Vec<UserId> = roster.member_ids().into_iter().filter(|m| m != user).collect();
    let frame = ServerFrame::Typing { channel_id: channel_id.clone(), user_id: user.clone(), state }.to_json();
    fan_out(app, &others, None, &frame).await;
    Ok(())
}

/// Moves `user`'s read position in a channel forward to `message_id`, and tells the other
/// members and the user's other devices. Answers the receipt (the position as it now is).
pub async fn mark_read(
    app: &App,
    user: &UserId,
    origin: &ConnectionId,
    channel_id: &ChannelId,
    message_id: MessageId,
) -> Result<ServerFrame, ChatError> {
    let roster = crate::membership::roster_for_member(app, user, channel_id).await?;
    let message = app
        .messages()
        .get(channel_id, message_id)
        .await?
        .ok_or_else(|| ChatError::NotFound(format!("no message {message_id} in channel {channel_id}")))?;
    let already = roster.member(user).map(|m| m.last_read_seq).unwrap_or(0);
    let receipt = ServerFrame::Receipt {
        channel_id: channel_id.clone(),
        user_id: user.clone(),
        message_id: message.message_id,
        seq: message.seq,
    };
    // Reading an older message than the newest read is not news.
    if message.seq > already && app.channels().advance_read(channel_id, user, message.seq, message.message_id).await? {
        fan_out(app, &roster.member_ids(), Some(origin), &receipt.to_json()).await;
    }
    Ok(receipt)
}
