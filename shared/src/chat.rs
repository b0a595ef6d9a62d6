//! The chat operations every entry point shares: connect, disconnect, send with fan-out,
//! and history. Handlers call these; these call the stores and the notifier.

use futures::StreamExt;
pub use crate::http::HistoryPage;
use tracing::{info, warn};

use crate::app::App;
use crate::error::ChatError;
use crate::ids::{Bucket, MessageId};
use crate::model::{
    Attachment, ChannelId, ChannelKind, ClientMsgId, ConnectionId, MemberRole, Message, MessageText, UserId,
};
use crate::notify::PostOutcome;
use crate::presence;
use crate::protocol::TypingState;
use crate::protocol::{MAX_FRAME_BYTES, ServerFrame};
use crate::store::{AppendOutcome, ChannelMeta, Order};

/// API Gateway closes a connection after 2 hours; a record older than that is stale.
pub const CONNECTION_TTL_MS: i64 = (2 * 60 + 5) * 60 * 1000;
/// Concurrent posts per send: enough to reach 100 members' devices in a few round trips.
const FAN_OUT_CONCURRENCY: usize = 32;
/// How long a send keeps retrying while other senders take the next seq first. Each
/// round one of the contenders wins, so N simultaneous sends need N rounds.
const APPEND_BUDGET_MS: u64 = 8_000;

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 100;
/// A history page stops before this many bytes: Lambda answers at most 6 MB, and the page
/// travels as JSON inside the JSON of the HTTP API response (escaped twice), plus headers.
pub const MAX_PAGE_BYTES: usize = 5 * 1024 * 1024;
/// Deleted messages a channel keeps track of for unread counts, at most.
pub const MAX_TRACKED_DELETIONS: usize = 500;

/// `$connect`: counts the attempt against the user's connect limit, records the
/// connection, and tells contacts when the user comes online.
pub async fn connect(app: &App, user: &UserId, device: &presence::Device<'_>) -> Result<(), ChatError> {
    let limit = app.config.rate_limits.connects;
    if let Some(retry_after_ms) = app.rate_limiter().hit("connect", user.as_str(), limit, app.now_ms()).await? {
        return Err(ChatError::RateLimited { retry_after_ms });
    }
    presence::connected(app, user, device).await?;
    info!(%user, connection = %device.connection, "connected");
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
    /// True when this clientMsgId had been sent before: nothing new was stored.
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
    attachments: Vec<Attachment>,
) -> Result<Sent, ChatError> {
    // A message with files may have no text.
    let text = if text.trim().is_empty() && !attachments.is_empty() {
        String::new()
    } else {
        MessageText::parse(text)?.into_string()
    };
    // The limit and the roster need nothing from each other: one round trip for both.
    let limit = app.config.rate_limits.sends;
    let limiter = app.rate_limiter();
    let (over, roster) = tokio::join!(
        limiter.hit("send", sender.as_str(), limit, app.now_ms()),
        // The same answer whether the channel exists or not: no probing for channel ids.
        crate::membership::roster_for_member(app, sender, channel_id)
    );
    if let Some(retry_after_ms) = over? {
        return Err(ChatError::RateLimited { retry_after_ms });
    }
    let roster = roster?;
    let attachments = crate::media::check_attachments(app, sender, channel_id, attachments).await?;

    let mut message = Message {
        channel_id: channel_id.clone(),
        message_id: MessageId::ZERO,
        seq: 0,
        author_id: sender.clone(),
        text,
        client_msg_id: client_msg_id.clone(),
        created_at: 0,
        attachments,
        edited_at: None,
        deleted: false,
    };
    // The live event must fit API Gateway's 128 KB message limit; the widest id and seq
    // make this check conservative before anything is stored.
    message.message_id = MessageId::from_u64(u64::MAX);
    message.seq = u64::MAX;
    check_frame_size(&ServerFrame::Ack { client_msg_id: client_msg_id.clone(), message: message.clone() }, &message)?;

    // Whose devices are live is read while the message is written: the posts start one
    // round trip after the write, not two (a connection that opens in between catches up
    // through sync, as with any live event it misses).
    let members = roster.member_ids();
    let presence = app.presence();
    let (appended, live) =
        tokio::join!(append_next(app, message, roster.meta.clone()), presence.live_connections(&members, app.now_ms()));
    let live = live.map_err(|err| warn!(error = %err, "presence lookup failed; nobody gets the live event")).ok();
    match appended? {
        Appended::Stored(message) => {
            let message = crate::media::with_download_urls(app, message).await;
            deliver(app, &roster, origin, &message, live).await;
            Ok(Sent { message, duplicate: false })
        }
        Appended::Duplicate(earlier) => {
            let stored = app.messages().get(channel_id, earlier).await?.ok_or_else(|| {
                ChatError::Internal(crate::store::StoreError::Conflict(format!(
                    "dedupe row points at missing message {earlier}"
                )))
            })?;
            // The first attempt may have stopped between its commit and its fan-out (a
            // crash, a timeout, a lost answer): deliver again. Delivery is at least once;
            // devices drop a seq they already hold (docs/PROTOCOL.md).
            info!(message_id = %earlier, "retried send; acking and delivering the stored message again");
            let stored = crate::media::with_download_urls(app, stored).await;
            deliver(app, &roster, origin, &stored, live).await;
            Ok(Sent { message: stored, duplicate: true })
        }
    }
}

/// What [`append_next`] did.
#[derive(Debug)]
pub enum Appended {
    /// Stored as the channel's next message, with its id, seq and time.
    Stored(Message),
    /// The author had sent this clientMsgId before: the id it got then.
    Duplicate(MessageId),
}

/// Appends `message` as the next message of its channel: gives it the next id and seq
/// after `meta` and retries (with jittered backoff, for a bounded time) while other
/// messages take that seq first.
pub async fn append_next(app: &App, mut message: Message, mut meta: ChannelMeta) -> Result<Appended, ChatError> {
    let channel_id = message.channel_id.clone();
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
                return Ok(Appended::Stored(message));
            }
            AppendOutcome::Duplicate(earlier) => return Ok(Appended::Duplicate(earlier)),
            AppendOutcome::NotAMember => {
                return Err(ChatError::Forbidden(format!("you are not a member of channel {channel_id}")));
            }
            AppendOutcome::SeqTaken(current) => {
                meta =
                    match current {
                        Some(current) => current,
                        None => app.channels().meta(&channel_id).await?.ok_or_else(|| {
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

/// Room a download URL takes in a frame (they are ~600 bytes with a session token).
const URL_ALLOWANCE: usize = 1024;

/// The frames carrying `message` must fit API Gateway's 128 KB message limit.
fn check_frame_size(frame: &ServerFrame, message: &Message) -> Result<(), ChatError> {
    let size = frame.to_json().len() + URL_ALLOWANCE * message.attachments.len();
    if size > MAX_FRAME_BYTES {
        return Err(ChatError::TooLarge(format!(
            "the message would be {size} bytes on the wire; the limit is {MAX_FRAME_BYTES}"
        )));
    }
    Ok(())
}

/// Posts a new message to every live connection of the channel but the sender's, and,
/// at the same time, pushes it to members with no live connection who have not muted it.
/// `live`: the members' open connections, read beside the write (`None`: the read failed).
async fn deliver(
    app: &App,
    roster: &crate::store::Roster,
    origin: &ConnectionId,
    message: &Message,
    live: Option<Vec<(UserId, ConnectionId)>>,
) {
    let Some(connections) = live else { return };
    let offline: Vec<UserId> = roster
        .members
        .iter()
        .filter(|m| m.user_id != message.author_id && !m.muted)
        .filter(|m| !connections.iter().any(|(user, _)| *user == m.user_id))
        .map(|m| m.user_id.clone())
        .collect();
    let frame = ServerFrame::Message { message: message.clone() }.to_json();
    let channel_name = roster.meta.name.as_deref();
    let (posted, pushed) = tokio::join!(
        post_all(app, connections, Some(origin), &frame),
        crate::push::notify(app, &offline, message, channel_name)
    );
    info!(delivered = posted.delivered, gone = posted.gone, pushed = pushed.published, "delivered");
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
    match app.presence().live_connections(members, now).await {
        Ok(connections) => post_all(app, connections, skip, frame).await,
        Err(err) => {
            warn!(error = %err, "presence lookup failed; nobody gets the live event");
            FanOutReport::default()
        }
    }
}

async fn post_all(
    app: &App,
    connections: Vec<(UserId, ConnectionId)>,
    skip: Option<&ConnectionId>,
    frame: &str,
) -> FanOutReport {
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
    let more = messages.len() > limit;
    messages.truncate(limit);
    let mut page = Vec::with_capacity(messages.len());
    let mut page_bytes = 0;
    for message in messages {
        let message = crate::media::with_download_urls(app, message).await;
        let size = bytes_in_http_answer(&message);
        if !page.is_empty() && page_bytes + size > MAX_PAGE_BYTES {
            // The rest is the next page: `nextBefore` says where it starts.
            let next_before = page.last().map(|m: &Message| m.message_id);
            return Ok(HistoryPage { messages: page, next_before });
        }
        page_bytes += size;
        page.push(message);
    }
    let next_before = if more { page.last().map(|m| m.message_id) } else { None };
    Ok(HistoryPage { messages: page, next_before })
}

/// What `message` adds to an HTTP API answer: its JSON, escaped again as the response's body
/// string (a quote becomes four bytes, a control character seven).
fn bytes_in_http_answer(message: &Message) -> usize {
    let json = serde_json::to_string(message).unwrap_or_default();
    serde_json::to_string(&json).map(|s| s.len()).unwrap_or(json.len()) + 1
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
/// members and the user's other devices. Answers the receipt of `message_id` (an older
/// message than the one already read changes nothing and tells nobody).
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

/// The author replaces a message's text; members see `messageUpdated`.
pub async fn edit_message(
    app: &App,
    user: &UserId,
    origin: &ConnectionId,
    channel_id: &ChannelId,
    message_id: MessageId,
    text: String,
) -> Result<ServerFrame, ChatError> {
    let text = MessageText::parse(text)?;
    let roster = crate::membership::roster_for_member(app, user, channel_id).await?;
    // The edited message must still fit a frame: check before anything is written.
    if let Some(mut current) = app.messages().get(channel_id, message_id).await? {
        current.text = text.as_str().to_owned();
        current.edited_at = Some(i64::MAX);
        check_frame_size(&ServerFrame::MessageUpdated { message: current.clone() }, &current)?;
    }
    let edited = match app.messages().edit(channel_id, message_id, user, text.as_str(), app.now_ms()).await? {
        Ok(message) => message,
        Err(refused) => return Err(refused_change(refused, channel_id, message_id, "edit")),
    };
    let edited = crate::media::with_download_urls(app, edited).await;
    let frame = ServerFrame::MessageUpdated { message: edited.clone() };
    fan_out(app, &roster.member_ids(), Some(origin), &frame.to_json()).await;
    Ok(frame)
}

/// Deletes a message (the author's own; any, for a group's owner or admins): it keeps its
/// id and place, its text and files go, and members see `messageDeleted`.
pub async fn delete_message(
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
    let frame = ServerFrame::MessageDeleted { channel_id: channel_id.clone(), message_id, seq: message.seq };
    let moderator = roster.meta.kind == ChannelKind::Group
        && roster.member(user).is_some_and(|m| matches!(m.role, MemberRole::Owner | MemberRole::Admin));
    let only_author = if message.author_id == *user {
        Some(user)
    } else if moderator {
        None
    } else {
        return Err(ChatError::Forbidden("only the author (or a group's owner or admins) can delete a message".into()));
    };
    if message.deleted {
        // A retry: finish what an attempt that died after the write left (its files).
        remove_files(app, channel_id, message_id, None).await;
        return Ok(frame);
    }
    let deleted = match app.messages().soft_delete(&message, only_author, app.now_ms()).await? {
        Ok(deleted) => deleted,
        Err(crate::store::ChangeRefused::Deleted) => {
            remove_files(app, channel_id, message_id, None).await;
            return Ok(frame);
        }
        Err(refused) => return Err(refused_change(refused, channel_id, message_id, "delete")),
    };
    info!(%user, %channel_id, %message_id, "message deleted");
    remove_files(app, channel_id, message_id, Some(deleted.attachments)).await;
    let prunable = prunable_deletions(&roster, message.seq);
    if let Err(err) = app.channels().prune_deleted_seqs(channel_id, &prunable).await {
        warn!(%channel_id, error = %err, "could not prune deleted seqs");
    }
    fan_out(app, &roster.member_ids(), Some(origin), &frame.to_json()).await;
    Ok(frame)
}

/// Deleted seqs the channel need not track any more: those everyone has read past (they
/// change no unread count), and the oldest beyond [`MAX_TRACKED_DELETIONS`] (whoever has
/// not read for that long may see a slightly high unread count; the item stays bounded).
fn prunable_deletions(roster: &crate::store::Roster, just_deleted: u64) -> Vec<u64> {
    let lowest_read = roster.members.iter().map(|m| m.last_read_seq).min().unwrap_or(0);
    let mut tracked: Vec<u64> = roster.meta.deleted_seqs.iter().copied().chain([just_deleted]).collect();
    tracked.sort_unstable();
    tracked.dedup();
    let over = tracked.len().saturating_sub(MAX_TRACKED_DELETIONS);
    tracked.into_iter().enumerate().filter(|(i, s)| *i < over || *s <= lowest_read).map(|(_, s)| s).collect()
}

/// Removes a deleted message's files, then its record of them. `files`: known already
/// (fresh delete), else read back (a retry). Best effort; a retry tries again.
async fn remove_files(app: &App, channel: &ChannelId, id: MessageId, files: Option<Vec<crate::model::Attachment>>) {
    let files = match files {
        Some(files) => files,
        None => match app.messages().files_left(channel, id).await {
            Ok(files) => files,
            Err(err) => return warn!(%channel, %id, error = %err, "could not read a deleted message's files"),
        },
    };
    if files.is_empty() {
        return;
    }
    if crate::media::delete_files(app, &files).await
        && let Err(err) = app.messages().forget_files(channel, id).await
    {
        warn!(%channel, %id, error = %err, "files removed but still recorded");
    }
}

fn refused_change(refused: crate::store::ChangeRefused, channel: &ChannelId, id: MessageId, what: &str) -> ChatError {
    match refused {
        crate::store::ChangeRefused::NotFound => ChatError::NotFound(format!("no message {id} in channel {channel}")),
        crate::store::ChangeRefused::Deleted => ChatError::Conflict(format!("message {id} was deleted")),
        crate::store::ChangeRefused::NotAuthor => {
            ChatError::Forbidden(format!("only the author can {what} this message"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChannelKind, MemberRole};
    use crate::store::{ChannelMeta, Member, Roster};

    fn roster(deleted: Vec<u64>, reads: &[u64]) -> Roster {
        let meta = ChannelMeta {
            id: ChannelId::parse("c").unwrap(),
            kind: ChannelKind::Group,
            name: None,
            seq: 10_000,
            last_message_id: MessageId::ZERO,
            buckets: vec![],
            member_count: reads.len() as u64,
            pair: vec![],
            deleted_seqs: deleted,
            created_at: 0,
        };
        let members = reads
            .iter()
            .enumerate()
            .map(|(i, read)| Member {
                user_id: UserId::parse(format!("u{i}")).unwrap(),
                role: MemberRole::Member,
                joined_at: 0,
                last_read_seq: *read,
                muted: false,
            })
            .collect();
        Roster { meta, members }
    }

    #[test]
    fn deletions_everyone_read_past_are_pruned() {
        assert_eq!(prunable_deletions(&roster(vec![3, 7, 9], &[8, 20]), 12), vec![3, 7]);
    }

    #[test]
    fn a_member_who_never_reads_cannot_make_the_deletion_record_grow_past_its_cap() {
        let tracked: Vec<u64> = (1..=MAX_TRACKED_DELETIONS as u64).collect();
        let prunable = prunable_deletions(&roster(tracked, &[0, 5_000]), 9_999);
        assert_eq!(prunable, vec![1], "the oldest goes to make room for the new one");
    }
}
