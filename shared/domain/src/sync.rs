//! Catching up: a device that was offline sends the newest message id it has (per
//! channel, or one for all) and gets every newer message of its channels, oldest first,
//! in `messages` frames posted to it, then a `synced` answer saying how far it got.

use std::collections::{BTreeMap, HashMap};

use crate::app::App;
use crate::error::{ChatError, PortError};
use crate::ids::MessageId;
use crate::model::{ChannelId, ConnectionId, Message, UserId};
use crate::ports::{Change, Changed, ChannelMeta, Order, PostOutcome, Reactions};
use crate::protocol::{MAX_FRAME_BYTES, ServerFrame, SyncedChannel};

/// Room left in a `messages` frame for its envelope.
const BATCH_BYTES: usize = MAX_FRAME_BYTES - 1024;

pub struct SyncRequest {
    pub channels: BTreeMap<ChannelId, MessageId>,
    pub after: Option<MessageId>,
    pub limit: Option<usize>,
    /// Per channel: the change position up to which the device has every edit and deletion.
    pub changes: BTreeMap<ChannelId, u64>,
}

/// A change position left unused (its write was refused, or the Lambda died between the
/// claim and the write) or replaced (the message changed again) leaves a gap in what
/// `changed_since` finds. A gap is stepped over once a change after it is older than this:
/// the missing one was claimed before that one, and no write lasts this long (the
/// functions' timeout is 10 s).
pub const CHANGE_SETTLE_MS: i64 = 60_000;

pub async fn sync(
    app: &App,
    user: &UserId,
    origin: &ConnectionId,
    request: SyncRequest,
) -> Result<Vec<SyncedChannel>, ChatError> {
    if request.channels.is_empty() && request.after.is_none() && request.changes.is_empty() {
        return Err(ChatError::InvalidRequest("sync needs `channels`, `after` or `changes` cursors".into()));
    }
    let memberships = app.channels().memberships(user).await?;
    let mine: Vec<ChannelId> = memberships.into_iter().map(|m| m.channel_id).collect();
    if let Some(foreign) = request.channels.keys().chain(request.changes.keys()).find(|c| !mine.contains(c)) {
        return Err(crate::access::not_a_member(foreign));
    }
    let cursors: BTreeMap<ChannelId, Option<MessageId>> = mine
        .iter()
        .filter_map(|channel| {
            let cursor = request.channels.get(channel).copied().or(request.after);
            (cursor.is_some() || request.changes.contains_key(channel)).then(|| (channel.clone(), cursor))
        })
        .collect();
    let ids: Vec<ChannelId> = cursors.keys().cloned().collect();
    let metas = app.channels().metas(&ids).await?;

    let mut budget = request.limit.unwrap_or(app.settings.sync_max_messages).clamp(1, app.settings.sync_max_messages);
    let mut report = Vec::new();
    for meta in metas {
        let mut done = SyncedChannel {
            channel_id: meta.id.clone(),
            sent: 0,
            up_to_seq: meta.seq,
            complete: true,
            next_after: None,
            up_to_change: None,
        };
        if let Some(after) = cursors[&meta.id] {
            new_messages(app, user, origin, &meta, after, &mut budget, &mut done).await?;
        }
        if let Some(&after) = request.changes.get(&meta.id) {
            changed_messages(app, user, origin, &meta, after, &mut budget, &mut done).await?;
        }
        report.push(done);
    }
    report.sort_by(|a, b| a.channel_id.cmp(&b.channel_id));
    Ok(report)
}

/// The channel's messages after `after`, within the budget. Their reactions come through
/// the change cursor (a reaction to a message the device has not had yet is a change after
/// its cursor), so none are read here.
async fn new_messages(
    app: &App,
    user: &UserId,
    origin: &ConnectionId,
    meta: &ChannelMeta,
    after: MessageId,
    budget: &mut usize,
    done: &mut SyncedChannel,
) -> Result<(), ChatError> {
    if meta.last_message_id <= after {
        // Nothing new: the meta item says so without reading messages.
        return Ok(());
    }
    if *budget == 0 {
        // The limit is spent: say where to go on without reading, so that the work of
        // one sync follows its limit, not the number of channels with news.
        done.up_to_seq = 0;
        done.complete = false;
        done.next_after = Some(after);
        return Ok(());
    }
    let messages = read_after(app, &meta.id, &meta.buckets, after, *budget + 1).await?;
    let complete = messages.len() <= *budget;
    let mut messages: Vec<Message> = messages.into_iter().take(*budget).collect();
    crate::reading::show(app, user, &meta.id, &mut messages, &HashMap::new()).await?;
    *budget -= messages.len();
    crate::metrics::count(crate::metrics::SYNC_MESSAGES, messages.len() as u64);
    let last = messages.last().map(|m| (m.seq, m.message_id));
    done.sent += messages.len();
    post_batches(app, origin, &meta.id, messages).await?;
    if !complete {
        done.up_to_seq = last.map(|(seq, _)| seq).unwrap_or(0);
        done.complete = false;
        done.next_after = last.map(|(_, id)| id).or(Some(after));
    }
    Ok(())
}

/// The messages edited, deleted or reacted to after change position `after`, as they now
/// are (reactions included), within the budget; `upToChange` is how far the device may
/// move its change cursor.
async fn changed_messages(
    app: &App,
    user: &UserId,
    origin: &ConnectionId,
    meta: &ChannelMeta,
    after: u64,
    budget: &mut usize,
    done: &mut SyncedChannel,
) -> Result<(), ChatError> {
    if meta.change_seq <= after {
        done.up_to_change = Some(meta.change_seq.min(after));
        return Ok(());
    }
    if *budget == 0 {
        done.up_to_change = Some(after);
        done.complete = false;
        return Ok(());
    }
    let mut changes = app.messages().changed_since(&meta.id, after, *budget + 1).await?;
    let complete = changes.len() <= *budget;
    changes.truncate(*budget);
    *budget -= changes.len();
    let settled_before = app.now_ms() - CHANGE_SETTLE_MS;
    let mut up_to = after;
    for change in &changes {
        if change.change_seq == up_to + 1 || change.changed_at < settled_before {
            up_to = change.change_seq;
        } else {
            break;
        }
    }
    let last_found = changes.last().map(|c| c.change_seq).unwrap_or(after);
    if complete && up_to == last_found && meta.last_change_at < settled_before {
        // Positions after the last change found were refused, lost or changed again.
        up_to = meta.change_seq;
    }
    done.up_to_change = Some(up_to);
    done.complete &= complete;
    let messages = as_they_are(app, user, &meta.id, changes).await?;
    done.sent += messages.len();
    post_batches(app, origin, &meta.id, messages).await
}

/// The changed messages as they now are, each once, in change order: a message whose
/// reactions changed is read (one batched read for all of them), and so are the reactions
/// of a message that was edited.
async fn as_they_are(
    app: &App,
    reader: &UserId,
    channel: &ChannelId,
    changes: Vec<Change>,
) -> Result<Vec<Message>, ChatError> {
    let mut latest: HashMap<MessageId, u64> = HashMap::new();
    let mut messages: HashMap<MessageId, Message> = HashMap::new();
    let mut reactions: HashMap<MessageId, Reactions> = HashMap::new();
    for change in changes {
        let id = change.message_id();
        let position = latest.entry(id).or_default();
        *position = (*position).max(change.change_seq);
        match change.what {
            Changed::Message(message) => {
                messages.insert(id, *message);
            }
            Changed::Reactions { reactions: now, .. } => {
                reactions.insert(id, now);
            }
        }
    }
    let mut unread: Vec<MessageId> = latest.keys().filter(|id| !messages.contains_key(id)).copied().collect();
    unread.sort_unstable();
    for ids in unread.chunks(crate::reading::BATCH_KEYS) {
        messages.extend(app.messages().get_many(channel, ids).await?.into_iter().map(|m| (m.message_id, m)));
    }
    let mut no_reactions_read: Vec<MessageId> = messages
        .values()
        .filter(|m| !m.deleted && !reactions.contains_key(&m.message_id))
        .map(|m| m.message_id)
        .collect();
    no_reactions_read.sort_unstable();
    for ids in no_reactions_read.chunks(crate::reading::BATCH_KEYS) {
        reactions.extend(app.reactions().of(channel, ids).await?);
    }
    let mut ordered: Vec<Message> = messages
        .into_values()
        .map(|mut message| {
            message.change_seq = latest.get(&message.message_id).copied().max(message.change_seq);
            message
        })
        .collect();
    ordered.sort_by_key(|m| m.change_seq);
    crate::reading::show(app, reader, channel, &mut ordered, &reactions).await?;
    Ok(ordered)
}

/// Up to `limit` messages newer than `after`, oldest first, reading only non-empty buckets.
async fn read_after(
    app: &App,
    channel: &ChannelId,
    buckets: &[crate::ids::Bucket],
    after: MessageId,
    limit: usize,
) -> Result<Vec<Message>, ChatError> {
    let low = MessageId::from_u64(after.as_u64().saturating_add(1));
    let mut found = Vec::new();
    for bucket in buckets.iter().copied().filter(|b| *b >= low.bucket()) {
        let range = (low.max(bucket.first_id()), bucket.last_id());
        found.extend(app.messages().in_bucket(channel, bucket, range, limit - found.len(), Order::OldestFirst).await?);
        if found.len() >= limit {
            break;
        }
    }
    Ok(found)
}

/// Posts messages to the syncing connection in frames that fit API Gateway's limit.
async fn post_batches(
    app: &App,
    origin: &ConnectionId,
    channel: &ChannelId,
    messages: Vec<Message>,
) -> Result<(), ChatError> {
    let mut batch: Vec<Message> = Vec::new();
    let mut batch_bytes = 0;
    for message in messages {
        let size = serde_json::to_vec(&message).map(|v| v.len()).unwrap_or(0) + 1;
        if !batch.is_empty() && batch_bytes + size > BATCH_BYTES {
            post(app, origin, channel, std::mem::take(&mut batch)).await?;
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(message);
    }
    if !batch.is_empty() {
        post(app, origin, channel, batch).await?;
    }
    Ok(())
}

async fn post(app: &App, origin: &ConnectionId, channel: &ChannelId, messages: Vec<Message>) -> Result<(), ChatError> {
    let mut with_urls = Vec::with_capacity(messages.len());
    for message in messages {
        with_urls.push(crate::media::with_download_urls(app, message).await);
    }
    let frame = ServerFrame::Messages { channel_id: channel.clone(), messages: with_urls }.to_json();
    match app.poster().post(origin, &frame).await {
        PostOutcome::Delivered => Ok(()),
        PostOutcome::Gone => Err(ChatError::InvalidRequest("the connection closed during sync".into())),
        PostOutcome::Failed(detail) | PostOutcome::Throttled(detail) => {
            Err(PortError::backend("posting a sync batch", detail).into())
        }
    }
}
