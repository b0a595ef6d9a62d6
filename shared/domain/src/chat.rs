//! The chat operations of an open connection: connect, disconnect, send, edit, delete,
//! typing and read receipts. Each reads what it needs, asks [`crate::access`], writes
//! through the ports, and hands the event to [`crate::delivery`].

use tracing::{info, warn};

use crate::access::{self, roster_for_member};
use crate::app::App;
use crate::delivery::{check_frame_size, deliver, fan_out};
use crate::error::{ChatError, PortError};
use crate::ids::MessageId;
use crate::limits::{self, Action};
use crate::metrics;
use crate::model::{Attachment, ChannelId, ClientMsgId, ConnectionId, Message, MessageText, Quote, UserId};
use crate::ordering::{Appended, append_next};
use crate::ports::{ChangeRefused, Roster};
use crate::presence;
use crate::protocol::{MessageFrames, ServerFrame, TypingState};

/// API Gateway closes a connection after 2 hours; a record older than that is stale.
pub const CONNECTION_TTL_MS: i64 = (2 * 60 + 5) * 60 * 1000;

/// Deleted messages a channel keeps track of for unread counts, at most.
pub const MAX_TRACKED_DELETIONS: usize = 500;

/// `$connect`: records the connection (counting it against the user's connect limit in
/// the same write), and tells contacts when the user comes online.
pub async fn connect(app: &App, user: &UserId, device: &presence::Device<'_>) -> Result<(), ChatError> {
    presence::connected(app, user, device).await?;
    info!(%user, connection = %device.connection, "connected");
    Ok(())
}

/// `$disconnect`: forgets the connection, and ends the call it took part in.
pub async fn disconnect(app: &App, user: &UserId, connection: &ConnectionId) -> Result<(), ChatError> {
    let (forgotten, call) = tokio::join!(
        presence::disconnected(app, user, connection),
        crate::calling::connection_closed(app, user, connection)
    );
    if let Err(err) = call {
        warn!(%user, %connection, error = %err, "could not end the connection's call");
    }
    forgotten?;
    info!(%user, %connection, "disconnected");
    Ok(())
}

/// What a send produced, for the ack.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message: Message,
    /// True when this clientMsgId had been sent before: nothing new was stored.
    pub duplicate: bool,
    /// The `ack` frame for the sender, serialised with the live event from one
    /// serialisation of the message.
    pub ack: String,
    /// The ack was posted to the sending connection already (the send pushed to someone
    /// and the sender was not kept waiting for it): the route answers nothing.
    pub ack_posted: bool,
}

/// What a sender asks to store.
#[derive(Debug, Clone)]
pub struct Draft {
    pub client_msg_id: ClientMsgId,
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// The message of the channel this one answers.
    pub reply_to: Option<MessageId>,
    /// Members the message mentions.
    pub mentions: Vec<UserId>,
}

impl Draft {
    /// A plain text message.
    pub fn text(client_msg_id: ClientMsgId, text: impl Into<String>) -> Self {
        Self { client_msg_id, text: text.into(), attachments: Vec::new(), reply_to: None, mentions: Vec::new() }
    }
}

/// Stores a message and delivers it to every live connection of every member, except
/// `origin` (the sending connection, which gets the ack instead).
#[tracing::instrument(skip(app, draft), fields(%sender, %channel_id, client_msg_id = %draft.client_msg_id))]
pub async fn send_message(
    app: &App,
    sender: &UserId,
    origin: &ConnectionId,
    channel_id: &ChannelId,
    draft: Draft,
) -> Result<Sent, ChatError> {
    let started = std::time::Instant::now();
    let Draft { client_msg_id, text, attachments, reply_to, mentions } = draft;
    let client_msg_id = &client_msg_id;
    // A message with files may have no text.
    let text = if text.trim().is_empty() && !attachments.is_empty() {
        String::new()
    } else {
        MessageText::parse(text)?.into_string()
    };
    // The limit, the roster and the answered message need nothing from each other: one
    // round trip for all three.
    let (within_limit, roster, answered) = tokio::join!(
        limits::check(app, Action::Send, sender.as_str()),
        // The same answer whether the channel exists or not: no probing for channel ids.
        roster_for_member(app, sender, channel_id),
        async {
            match reply_to {
                Some(id) => app.messages().get(channel_id, id).await.map(|found| Some((id, found))),
                None => Ok(None),
            }
        }
    );
    within_limit?;
    let roster = roster?;
    let reply_to = match answered? {
        None => None,
        Some((id, None)) => {
            return Err(ChatError::NotFound(format!("no message {id} in channel {channel_id} to reply to")));
        }
        Some((id, Some(answered))) if answered.deleted => {
            return Err(ChatError::Conflict(format!("message {id} was deleted; it cannot be replied to")));
        }
        Some((_, Some(answered))) => Some(Quote::of(&answered)),
    };
    let mentions = access::mentionable(&roster, mentions)?;
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
        change_seq: None,
        reply_to,
        mentions,
        reactions: Vec::new(),
        call: None,
    };
    // The ack (the larger frame) must fit API Gateway's 128 KB message limit; the widest id
    // and seq make this check conservative before anything is stored. Measured, not built.
    message.message_id = MessageId::from_u64(u64::MAX);
    message.seq = u64::MAX;
    check_frame_size(MessageFrames::ack_len(client_msg_id, &message), &message)?;
    // Only a message that will be stored keeps its files.
    crate::media::keep_attachments(app, &message.attachments).await?;

    // Whose devices are live is read while the message is written: the posts start one
    // round trip after the write, not two (a connection that opens in between catches up
    // through sync, as with any live event it misses).
    let members = roster.member_ids();
    let storing = std::time::Instant::now();
    let (appended, live) =
        tokio::join!(append_next(app, message, roster.meta.clone()), crate::connections::reach(app, &members));
    metrics::duration(metrics::SEND_STORE_MS, storing);
    let live = live.map_err(|err| warn!(error = %err, "presence lookup failed; nobody gets the live event")).ok();
    match appended? {
        Appended::Stored(message) => {
            let message = crate::media::with_download_urls(app, *message).await;
            metrics::count(metrics::MESSAGES_STORED, 1);
            let frames = MessageFrames::new(client_msg_id, &message);
            let delivering = std::time::Instant::now();
            let ack_posted = deliver(app, &roster, origin, &message, &frames.live, Some(&frames.ack), live).await;
            metrics::duration(metrics::SEND_DELIVER_MS, delivering);
            metrics::duration(metrics::SEND_TOTAL_MS, started);
            Ok(Sent { message, duplicate: false, ack: frames.ack, ack_posted })
        }
        Appended::Duplicate(earlier) => {
            let stored = app
                .messages()
                .get(channel_id, earlier)
                .await?
                .ok_or_else(|| PortError::Contended(format!("the retried send's message {earlier} is missing")))?;
            // The first attempt may have stopped between its commit and its fan-out (a
            // crash, a timeout, a lost answer): deliver again. Delivery is at least once;
            // devices drop a seq they already hold (docs/PROTOCOL.md).
            info!(message_id = %earlier, "retried send; acking and delivering the stored message again");
            let stored = crate::media::with_download_urls(app, stored).await;
            let frames = MessageFrames::new(client_msg_id, &stored);
            let ack_posted = deliver(app, &roster, origin, &stored, &frames.live, Some(&frames.ack), live).await;
            Ok(Sent { message: stored, duplicate: true, ack: frames.ack, ack_posted })
        }
    }
}

/// Tells the channel's other members that `user` started or stopped typing. Nothing is
/// stored; clients let an indicator lapse after a few seconds without a renewal.
pub async fn typing(app: &App, user: &UserId, channel_id: &ChannelId, state: TypingState) -> Result<(), ChatError> {
    let roster = roster_for_member(app, user, channel_id).await?;
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
    let roster = roster_for_member(app, user, channel_id).await?;
    let message = stored_message(app, channel_id, message_id).await?;
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
    let roster = roster_for_member(app, user, channel_id).await?;
    // Refused before a change position is spent on it (the write checks again: a deletion
    // can come in between); and the edited message must still fit a frame.
    let mut current = stored_message(app, channel_id, message_id).await?;
    let refused = if current.deleted {
        Some(ChangeRefused::Deleted)
    } else if &current.author_id != user {
        Some(ChangeRefused::NotAuthor)
    } else {
        None
    };
    if let Some(refused) = refused {
        return Err(refused_change(refused, channel_id, message_id, "edit"));
    }
    current.text = text.as_str().to_owned();
    current.edited_at = Some(i64::MAX);
    current.change_seq = Some(u64::MAX);
    check_frame_size(ServerFrame::MessageUpdated { message: current.clone() }.json_len(), &current)?;
    let change = claim_change(app, channel_id).await?;
    let edited = match app.messages().edit(channel_id, message_id, user, text.as_str(), change, app.now_ms()).await? {
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
    let roster = roster_for_member(app, user, channel_id).await?;
    let message = stored_message(app, channel_id, message_id).await?;
    let only_author = access::may_delete(&roster, user, &message)?;
    if message.deleted {
        // A retry: finish what an attempt that died after the write left (its files).
        remove_files(app, channel_id, message_id, None).await;
        return Ok(deleted_frame(&message, message.change_seq));
    }
    let change = claim_change(app, channel_id).await?;
    let frame = deleted_frame(&message, Some(change));
    let deleted = match app.messages().soft_delete(&message, only_author, change, app.now_ms()).await? {
        Ok(deleted) => deleted,
        Err(ChangeRefused::Deleted) => {
            remove_files(app, channel_id, message_id, None).await;
            return Ok(frame);
        }
        Err(refused) => return Err(refused_change(refused, channel_id, message_id, "delete")),
    };
    info!(%user, %channel_id, %message_id, "message deleted");
    remove_files(app, channel_id, message_id, Some(deleted.attachments)).await;
    let prunable = prunable_deletions(&roster, user, &message);
    if let Err(err) = app.channels().prune_deleted_seqs(channel_id, &prunable).await {
        warn!(%channel_id, error = %err, "could not prune deleted seqs");
    }
    fan_out(app, &roster.member_ids(), Some(origin), &frame.to_json()).await;
    Ok(frame)
}

/// The channel's next change position, for an edit or a deletion about to be written. A
/// change whose write is then refused leaves its position unused: `sync` steps over such
/// a gap once it is older than any write can take ([`crate::sync::CHANGE_SETTLE_MS`]).
pub(crate) async fn claim_change(app: &App, channel: &ChannelId) -> Result<u64, ChatError> {
    app.messages()
        .claim_change(channel, app.now_ms())
        .await?
        .ok_or_else(|| ChatError::NotFound(format!("no channel {channel}")))
}

fn deleted_frame(message: &Message, change_seq: Option<u64>) -> ServerFrame {
    ServerFrame::MessageDeleted {
        channel_id: message.channel_id.clone(),
        message_id: message.message_id,
        seq: message.seq,
        change_seq,
    }
}

/// A message of the channel, or `not_found`.
pub(crate) async fn stored_message(app: &App, channel: &ChannelId, id: MessageId) -> Result<Message, ChatError> {
    app.messages()
        .get(channel, id)
        .await?
        .ok_or_else(|| ChatError::NotFound(format!("no message {id} in channel {channel}")))
}

/// Deleted seqs the channel need not track any more: those everyone has read past (they
/// change no unread count), and the oldest beyond [`MAX_TRACKED_DELETIONS`] (whoever has
/// not read for that long may see a slightly high unread count; the item stays bounded).
/// A send writes no read position, but its author has read up to it: an author deleting
/// their own message has read past it.
fn prunable_deletions(roster: &Roster, deleter: &UserId, deleted: &Message) -> Vec<u64> {
    let read_by = |m: &crate::ports::Member| {
        if &m.user_id == deleter && &deleted.author_id == deleter {
            m.last_read_seq.max(deleted.seq)
        } else {
            m.last_read_seq
        }
    };
    let lowest_read = roster.members.iter().map(read_by).min().unwrap_or(0);
    let just_deleted = deleted.seq;
    let mut tracked: Vec<u64> = roster.meta.deleted_seqs.iter().copied().chain([just_deleted]).collect();
    tracked.sort_unstable();
    tracked.dedup();
    let over = tracked.len().saturating_sub(MAX_TRACKED_DELETIONS);
    tracked.into_iter().enumerate().filter(|(i, s)| *i < over || *s <= lowest_read).map(|(_, s)| s).collect()
}

/// Removes a deleted message's files, then its record of them. `files`: known already
/// (fresh delete), else read back (a retry). Best effort; a retry tries again.
async fn remove_files(app: &App, channel: &ChannelId, id: MessageId, files: Option<Vec<Attachment>>) {
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

fn refused_change(refused: ChangeRefused, channel: &ChannelId, id: MessageId, what: &str) -> ChatError {
    match refused {
        ChangeRefused::NotFound => ChatError::NotFound(format!("no message {id} in channel {channel}")),
        ChangeRefused::Deleted => ChatError::Conflict(format!("message {id} was deleted")),
        ChangeRefused::NotAuthor => ChatError::Forbidden(format!("only the author can {what} this message")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MessageId;
    use crate::model::{ChannelKind, MemberRole};
    use crate::ports::{ChannelMeta, Member, Roster};

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
            change_seq: 0,
            last_change_at: 0,
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

    fn deleted(seq: u64) -> Message {
        Message {
            channel_id: ChannelId::parse("c").unwrap(),
            message_id: MessageId::from_u64(seq),
            seq,
            author_id: UserId::parse("u0").unwrap(),
            text: String::new(),
            client_msg_id: ClientMsgId::parse("m").unwrap(),
            created_at: 0,
            attachments: vec![],
            edited_at: None,
            deleted: true,
            change_seq: None,
            reply_to: None,
            mentions: vec![],
            reactions: vec![],
            call: None,
        }
    }

    #[test]
    fn an_author_deleting_their_own_message_has_read_past_it() {
        let author = UserId::parse("u0").unwrap();
        assert_eq!(prunable_deletions(&roster(vec![], &[0, 20]), &author, &deleted(12)), vec![12]);
        let admin = UserId::parse("u1").unwrap();
        assert!(prunable_deletions(&roster(vec![], &[0, 20]), &admin, &deleted(12)).is_empty());
    }

    #[test]
    fn deletions_everyone_read_past_are_pruned() {
        assert_eq!(
            prunable_deletions(&roster(vec![3, 7, 9], &[8, 20]), &UserId::parse("u9").unwrap(), &deleted(12)),
            vec![3, 7]
        );
    }

    #[test]
    fn a_member_who_never_reads_cannot_make_the_deletion_record_grow_past_its_cap() {
        let tracked: Vec<u64> = (1..=MAX_TRACKED_DELETIONS as u64).collect();
        let prunable =
            prunable_deletions(&roster(tracked, &[0, 5_000]), &UserId::parse("u9").unwrap(), &deleted(9_999));
        assert_eq!(prunable, vec![1], "the oldest goes to make room for the new one");
    }
}
