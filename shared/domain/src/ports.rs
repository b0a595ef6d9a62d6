//! The ports: what the rules need from the outside world, one small trait per store or
//! service, in the domain's own types. `chat-aws` implements them over DynamoDB, the
//! Management API, SNS and S3; [`crate::memory`] implements them in memory for the unit
//! tests. Conditions that must hold atomically (a seq that must still be the last one, an
//! author who must still be the author) are parameters of the port's call, because only
//! the store can check them in the same write.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;

use crate::calls::CallState;
use crate::error::PortError;
use crate::http::{Invitation, Platform};
use crate::ids::{Bucket, MessageId};
use crate::model::{
    Attachment, CallId, ChannelId, ChannelKind, ConnectionId, Emoji, MemberRole, Message, ReactionCount, UserId,
};
use crate::protocol::{ChosenState, CustomStatus, LastSeenTo};

// ---- channels ----------------------------------------------------------------------------

/// A channel's own record: its kind, its message counter, and the buckets that hold
/// messages (so history never asks an empty bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMeta {
    pub id: ChannelId,
    pub kind: ChannelKind,
    pub name: Option<String>,
    /// Number of messages so far; the next message gets `seq + 1`.
    pub seq: u64,
    pub last_message_id: MessageId,
    /// Buckets holding at least one message, ascending.
    pub buckets: Vec<Bucket>,
    pub member_count: u64,
    /// Direct channels: the two users, so a channel list can name the other one.
    pub pair: Vec<UserId>,
    /// Seqs of deleted messages someone may not have read yet (unread counts skip them).
    pub deleted_seqs: Vec<u64>,
    pub created_at: i64,
    /// Changes (edits, deletions) claimed so far; the next gets `change_seq + 1`.
    pub change_seq: u64,
    /// When the newest change was claimed (ms; 0 before the first).
    pub last_change_at: i64,
}

impl ChannelMeta {
    /// A channel with no messages yet.
    pub fn new(id: ChannelId, kind: ChannelKind, name: Option<String>, created_at: i64) -> Self {
        Self {
            id,
            kind,
            name,
            seq: 0,
            last_message_id: MessageId::ZERO,
            buckets: Vec::new(),
            member_count: 0,
            pair: Vec::new(),
            deleted_seqs: Vec::new(),
            created_at,
            change_seq: 0,
            last_change_at: 0,
        }
    }

    /// Messages after `last_read_seq` that still exist: what a member has not read.
    pub fn unread_after(&self, last_read_seq: u64) -> u64 {
        let deleted = self.deleted_seqs.iter().filter(|s| **s > last_read_seq).count() as u64;
        self.seq.saturating_sub(last_read_seq).saturating_sub(deleted)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: UserId,
    pub role: MemberRole,
    pub joined_at: i64,
    /// The seq of the newest message the member has read.
    pub last_read_seq: u64,
    /// No pushes for this channel.
    pub muted: bool,
}

/// A channel's meta record and its members.
#[derive(Debug, Clone)]
pub struct Roster {
    pub meta: ChannelMeta,
    pub members: Vec<Member>,
}

impl Roster {
    pub fn member(&self, user: &UserId) -> Option<&Member> {
        self.members.iter().find(|m| &m.user_id == user)
    }

    pub fn is_member(&self, user: &UserId) -> bool {
        self.member(user).is_some()
    }

    pub fn member_ids(&self) -> Vec<UserId> {
        self.members.iter().map(|m| m.user_id.clone()).collect()
    }
}

/// One membership of a user, as "which channels am I in" answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub channel_id: ChannelId,
    pub role: MemberRole,
    pub joined_at: i64,
    pub last_read_seq: u64,
    pub last_read_id: MessageId,
    pub muted: bool,
}

/// What joining takes: the role, the kind of channel expected, and its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    pub role: MemberRole,
    pub kind: ChannelKind,
    pub max_members: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateChannelError {
    #[error("channel already exists")]
    AlreadyExists,
    #[error(transparent)]
    Port(#[from] PortError),
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipChangeError {
    /// Someone else changed the members at the same moment; read and try again.
    #[error("membership changed concurrently")]
    Raced,
    #[error(transparent)]
    Port(#[from] PortError),
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The channel does not exist, is not of the kind, or has no room.
    #[error("the channel cannot take another member")]
    Full,
    #[error("already a member")]
    AlreadyMember,
    /// The invitation is not (or no longer) in the inbox.
    #[error("no such invitation")]
    NotInvited,
    #[error("the channel changed at the same moment")]
    Raced,
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Channels, their members and read positions.
#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// Creates a channel with its members; a direct channel records them as its pair.
    async fn create(
        &self,
        id: &ChannelId,
        kind: ChannelKind,
        name: Option<&str>,
        members: &[(UserId, MemberRole)],
        now_ms: i64,
    ) -> Result<(), CreateChannelError>;
    /// Opens the direct channel of `pair` with only `opener` in it. `Ok(false)`: it exists.
    async fn open_direct(
        &self,
        id: &ChannelId,
        pair: [&UserId; 2],
        opener: &UserId,
        now_ms: i64,
    ) -> Result<bool, PortError>;
    /// `user` takes `seat` in a channel of its kind that has room for one more, in one
    /// atomic step; with `taking_invitation`, only while the user's invitation to it is
    /// pending, and the invitation goes in the same step.
    async fn join(
        &self,
        id: &ChannelId,
        user: &UserId,
        seat: Seat,
        taking_invitation: bool,
        now_ms: i64,
    ) -> Result<(), JoinError>;
    /// Removes a member (and, when given, makes another one the owner) in one step.
    async fn remove_member(
        &self,
        id: &ChannelId,
        user: &UserId,
        new_owner: Option<&UserId>,
    ) -> Result<(), MembershipChangeError>;
    /// The meta record and every member (a consistent read). `None`: no such channel.
    async fn roster(&self, id: &ChannelId) -> Result<Option<Roster>, PortError>;
    /// The meta record and whether `user` is a member, in one read.
    async fn meta_for_member(&self, id: &ChannelId, user: &UserId) -> Result<(Option<ChannelMeta>, bool), PortError>;
    /// The meta records of `ids` that exist.
    async fn metas(&self, ids: &[ChannelId]) -> Result<Vec<ChannelMeta>, PortError>;
    /// The meta record alone (a consistent read).
    async fn meta(&self, id: &ChannelId) -> Result<Option<ChannelMeta>, PortError>;
    /// Moves `user`'s read position forward to (`seq`, `message`), never backwards.
    /// Answers whether it moved.
    async fn advance_read(
        &self,
        id: &ChannelId,
        user: &UserId,
        seq: u64,
        message: MessageId,
    ) -> Result<bool, PortError>;
    async fn set_muted(&self, id: &ChannelId, user: &UserId, muted: bool) -> Result<(), PortError>;
    /// Forgets deleted seqs (they no longer change any unread count).
    async fn prune_deleted_seqs(&self, id: &ChannelId, seqs: &[u64]) -> Result<(), PortError>;
    /// How many channels `user` is in.
    async fn membership_count(&self, user: &UserId) -> Result<usize, PortError>;
    /// Every channel `user` is in.
    async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, PortError>;
    /// Which of the `(user, direct channel with me)` pairs have both `me` and the user
    /// as members.
    async fn direct_contacts(&self, me: &UserId, pairs: &[(UserId, ChannelId)]) -> Result<HashSet<UserId>, PortError>;
}

// ---- the message log ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    Stored,
    /// The sender already sent this clientMsgId: this is the id it got.
    Duplicate(MessageId),
    /// Another message took the seq this one expected: claim one instead.
    SeqTaken,
}

/// A seq taken from a channel's counter, and the time the channel's clock was set to
/// (never earlier than the previous claim's): the message's id is
/// [`MessageId::claimed`]`(at_ms, seq)`. The seq is this send's whatever happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub seq: u64,
    pub at_ms: i64,
}

/// Why an edit or delete did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeRefused {
    NotFound,
    Deleted,
    NotAuthor,
}

/// One row of a channel's change feed: a message as it now is after an edit or a
/// deletion, or a message's reactions as they now are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub what: Changed,
    /// The channel's change position of the latest change to this row.
    pub change_seq: u64,
    /// When that change was made.
    pub changed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Message(Box<Message>),
    Reactions { message_id: MessageId, reactions: Reactions },
}

impl Change {
    pub fn message_id(&self) -> MessageId {
        match &self.what {
            Changed::Message(message) => message.message_id,
            Changed::Reactions { message_id, .. } => *message_id,
        }
    }
}

/// How long a send's clientMsgId is remembered for retries.
pub const DEDUPE_WINDOW_S: i64 = 24 * 60 * 60;

/// A page of [`MessageLog::scan`]: `cursor` is where the next page starts, `None` at the end.
#[derive(Debug, Clone, Default)]
pub struct ScanPage {
    pub messages: Vec<Message>,
    pub cursor: Option<String>,
}

/// Each channel's messages, appended in seq order.
#[async_trait]
pub trait MessageLog: Send + Sync {
    /// Stores `message` as its channel's next one, all or nothing: only if its
    /// clientMsgId is new for its author (remembered [`DEDUPE_WINDOW_S`]) and only if the
    /// channel's seq is still `message.seq - 1` and its clock not after
    /// `message.created_at` (which makes ids and seqs grow in commit order); the channel's
    /// seq, clock and buckets move with it. The cheap path when nobody else is sending.
    async fn append(&self, message: &Message, now_ms: i64) -> Result<AppendOutcome, PortError>;
    /// Takes the channel's next seq with one atomic increment: never refused because
    /// others send at the same time. `None`: no such channel.
    async fn claim(&self, channel: &ChannelId, now_ms: i64) -> Result<Option<Claim>, PortError>;
    /// Stores a message whose seq and id come from [`MessageLog::claim`], with its dedupe
    /// row, both or neither. Never [`AppendOutcome::SeqTaken`].
    async fn store_claimed(&self, message: &Message, now_ms: i64) -> Result<AppendOutcome, PortError>;
    /// Puts a deleted message of the author in a claimed seq that will hold none (the send
    /// turned out to be a retry, or its write failed), so that no gap stays open; unread
    /// counts skip it. A seq that holds a message already is left as it is (`Ok`).
    async fn fill_claimed(&self, message: &Message, now_ms: i64) -> Result<(), PortError>;
    async fn get(&self, channel: &ChannelId, id: MessageId) -> Result<Option<Message>, PortError>;
    /// Takes the channel's next change position (one atomic increment) and notes when.
    /// `None`: no such channel.
    async fn claim_change(&self, channel: &ChannelId, now_ms: i64) -> Result<Option<u64>, PortError>;
    /// Replaces the text of `author`'s message unless it was deleted; the message takes the
    /// change position `change`.
    async fn edit(
        &self,
        channel: &ChannelId,
        id: MessageId,
        author: &UserId,
        text: &str,
        change: u64,
        now_ms: i64,
    ) -> Result<Result<Message, ChangeRefused>, PortError>;
    /// Soft-deletes: keeps id and seq, removes the text, records the seq among the
    /// channel's deleted ones; the message takes the change position `change`. `author`:
    /// when given, only that user's message may go. The file keys stay until
    /// [`MessageLog::forget_files`]. Answers the message as it was.
    async fn soft_delete(
        &self,
        message: &Message,
        author: Option<&UserId>,
        change: u64,
        now_ms: i64,
    ) -> Result<Result<Message, ChangeRefused>, PortError>;
    /// What changed in the channel after change position `after` (messages edited or
    /// deleted, and messages' reactions), in change order, at most `limit`, as it now is.
    async fn changed_since(&self, channel: &ChannelId, after: u64, limit: usize) -> Result<Vec<Change>, PortError>;
    /// The messages of the channel among `ids` (at most 100; those that exist), in one read.
    async fn get_many(&self, channel: &ChannelId, ids: &[MessageId]) -> Result<Vec<Message>, PortError>;
    /// One page of every stored message of every channel, in no useful order (rebuilding the
    /// search index): part `segment` of `segments` of a parallel scan, from `cursor` (the
    /// previous page's), at most `limit` items read.
    async fn scan(
        &self,
        segment: u32,
        segments: u32,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, PortError>;
    /// The files a deleted message still names.
    async fn files_left(&self, channel: &ChannelId, id: MessageId) -> Result<Vec<Attachment>, PortError>;
    /// Drops a deleted message's file keys once its files are removed.
    async fn forget_files(&self, channel: &ChannelId, id: MessageId) -> Result<(), PortError>;
    /// Messages of one bucket with ids in `[low, high]`, at most `limit`, in `order`.
    async fn in_bucket(
        &self,
        channel: &ChannelId,
        bucket: Bucket,
        range: (MessageId, MessageId),
        limit: usize,
        order: Order,
    ) -> Result<Vec<Message>, PortError>;
}

// ---- reactions ---------------------------------------------------------------------------

/// Who reacted to one message with which emoji. Kept apart from the message, so that a
/// reaction writes units for the reactions, not for the message's text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reactions {
    pub by_emoji: BTreeMap<Emoji, BTreeSet<UserId>>,
    /// The change position of the latest reaction (0: none yet).
    pub change_seq: u64,
}

impl Reactions {
    pub fn has(&self, emoji: &Emoji, user: &UserId) -> bool {
        self.by_emoji.get(emoji).is_some_and(|users| users.contains(user))
    }

    /// Counts per emoji, with `me` set for `reader`'s own (none: a frame for everyone).
    pub fn counts(&self, reader: Option<&UserId>) -> Vec<ReactionCount> {
        self.by_emoji
            .iter()
            .filter(|(_, users)| !users.is_empty())
            .map(|(emoji, users)| ReactionCount {
                emoji: emoji.clone(),
                count: users.len() as u64,
                me: reader.is_some_and(|reader| users.contains(reader)),
            })
            .collect()
    }
}

/// What a reaction write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReactionWrite {
    /// Done; the message's reactions now.
    Changed(Reactions),
    /// Already so (the reaction was there, or was not): nothing written.
    Unchanged(Reactions),
    /// A new emoji, and the message has the most distinct emoji it may have.
    TooManyEmoji,
    /// The message's reactions already carry a later change position (a concurrent
    /// reaction claimed after this one but wrote first): nothing written; claim again.
    /// So a message's reactions only ever move to a greater position, and the greater
    /// position always has the newer reactions.
    Outdated,
}

/// The reactions to each channel's messages.
#[async_trait]
pub trait ReactionStore: Send + Sync {
    /// The reactions to each of `ids` that has any (at most 100 ids), in one read.
    async fn of(&self, channel: &ChannelId, ids: &[MessageId]) -> Result<HashMap<MessageId, Reactions>, PortError>;
    /// The reactions to the messages of one bucket with ids in `[low, high]` (a history
    /// page's range), in one read of only the messages that have any.
    async fn in_range(
        &self,
        channel: &ChannelId,
        bucket: Bucket,
        range: (MessageId, MessageId),
    ) -> Result<HashMap<MessageId, Reactions>, PortError>;
    /// Adds `user`'s `emoji` to `message` unless there already, taking change position
    /// `change` (only past the position the reactions have); a new emoji only while the
    /// message has fewer than `max_emoji`.
    async fn add(
        &self,
        message: &Message,
        user: &UserId,
        emoji: &Emoji,
        max_emoji: usize,
        change: u64,
        now_ms: i64,
    ) -> Result<ReactionWrite, PortError>;
    /// Removes `user`'s `emoji` from `message` if there, taking change position `change`
    /// (only past the position the reactions have).
    async fn remove(
        &self,
        message: &Message,
        user: &UserId,
        emoji: &Emoji,
        change: u64,
        now_ms: i64,
    ) -> Result<ReactionWrite, PortError>;
}

// ---- presence ----------------------------------------------------------------------------

/// One open connection's clocks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionClock {
    /// When API Gateway closes the connection at the latest (ms).
    pub until: i64,
    /// Last heartbeat (or connect) (ms).
    pub beat: i64,
    /// The session (signed-in device) the connection was opened with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Its last heartbeat said nobody had used the device for a while.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idle: bool,
}

/// What a user chose about their presence, kept in their presence record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceChoice {
    /// `None`: automatic (online or idle).
    pub state: Option<ChosenState>,
    pub last_seen_to: Option<LastSeenTo>,
    /// While invisible: the last-seen time others are shown (when they went invisible).
    pub hidden_since: Option<i64>,
    pub custom: Option<CustomStatus>,
}

impl PresenceChoice {
    pub fn apply(&mut self, change: &ChoiceChange) {
        if let Some(state) = change.state {
            self.state = state;
        }
        if let Some(to) = change.last_seen_to {
            self.last_seen_to = to;
        }
        if let Some(since) = change.hidden_since {
            self.hidden_since = since;
        }
        if let Some(custom) = &change.custom {
            self.custom = custom.clone();
        }
    }
}

/// A change to a [`PresenceChoice`]: each `Some` replaces the stored value (`Some(None)`
/// removes it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChoiceChange {
    pub state: Option<Option<ChosenState>>,
    pub last_seen_to: Option<Option<LastSeenTo>>,
    pub hidden_since: Option<Option<i64>>,
    pub custom: Option<Option<CustomStatus>>,
}

/// A user's presence record: their open connections and what contacts were told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceRecord {
    pub user_id: Option<UserId>,
    /// Connection id -> its clocks.
    pub conns: HashMap<String, ConnectionClock>,
    /// When the user goes offline unless something beats again.
    pub deadline: Option<i64>,
    /// Present while contacts have been told the user is online.
    pub online_shard: Option<u32>,
    pub last_seen: Option<i64>,
    pub choice: PresenceChoice,
}

/// A user's connects counted in their presence record, by the connect's own write: at most
/// `limit` in fixed window number `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectQuota {
    pub window: i64,
    pub limit: u32,
}

/// What recording a beat did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Written; the record as it was before (`None`: there was none).
    Beat(Option<PresenceRecord>),
    /// Not written: the connect quota of this window is used up.
    OverQuota,
}

/// Users' presence records. The rules that read them are in [`crate::presence`].
#[async_trait]
pub trait PresenceStore: Send + Sync {
    /// Records `clock` for `connection`, sets the user's `deadline`, marks them announced
    /// online in `shard`, last seen at `clock.beat`, expiring at `ttl_s`; with a `quota` (a
    /// connect), only while the user's connects in its window are under its limit, counting
    /// this one, in the same write.
    #[allow(clippy::too_many_arguments)]
    async fn record_beat(
        &self,
        user: &UserId,
        connection: &ConnectionId,
        clock: &ConnectionClock,
        deadline: i64,
        shard: u32,
        ttl_s: i64,
        quota: Option<ConnectQuota>,
    ) -> Result<Recorded, PortError>;
    /// Removes connections; answers the record as it is afterwards (`None`: no record).
    async fn remove_connections(
        &self,
        user: &UserId,
        connections: &[String],
    ) -> Result<Option<PresenceRecord>, PortError>;
    /// Moves the deadline to `deadline` (and last seen to `now_ms`) only if it is still
    /// `seen` (a heartbeat in between wins). Answers whether it moved.
    async fn move_deadline(&self, user: &UserId, deadline: i64, now_ms: i64, seen: i64) -> Result<bool, PortError>;
    /// The records of `users` that exist, with their connections.
    async fn connections(&self, users: &[UserId]) -> Result<Vec<PresenceRecord>, PortError>;
    /// The records of `users` that exist, with deadline, last seen and choice, and their
    /// connections' beats (not their sessions).
    async fn statuses(&self, users: &[UserId]) -> Result<Vec<PresenceRecord>, PortError>;
    /// Changes what the user chose, in their record if they have one (they are connected),
    /// and keeps the record until `keep_until_s` at least, and from then on
    /// [`crate::presence::CHOICES_KEPT_S`] past each beat, whatever its connections'
    /// expiry; answers the record as it was (`None`: no record, nothing written).
    async fn choose(
        &self,
        user: &UserId,
        change: &ChoiceChange,
        keep_until_s: i64,
    ) -> Result<Option<PresenceRecord>, PortError>;
    /// Users announced online in `shard` whose deadline is at or before `until_ms`.
    async fn overdue(&self, shard: u32, until_ms: i64) -> Result<Vec<(UserId, i64)>, PortError>;
    /// Whether any user announced online in `shard` has a deadline at or before `until_ms`.
    async fn any_due_by(&self, shard: u32, until_ms: i64) -> Result<bool, PortError>;
    /// Records that subscribers are told `user` is offline, unless the deadline moved since
    /// it was `deadline`. Answers the record as it now is when this call made the change.
    async fn mark_offline(&self, user: &UserId, deadline: i64) -> Result<Option<PresenceRecord>, PortError>;
}

/// A connection subscribed to a user's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    pub user: UserId,
    pub connection: ConnectionId,
    /// When the subscription lapses unless renewed (ms).
    pub until: i64,
}

/// Who watches whose presence: per watched user, the connections subscribed to them, so a
/// change finds its audience with one keyed read, whatever the user's number of contacts.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Subscribes `watcher`'s `connection` to `watched` until `until_ms`, unless `watched`
    /// already has `cap` subscribed connections (lapsed ones do not count once pruned).
    /// Answers whether it is subscribed.
    async fn subscribe(&self, watched: &UserId, watcher: &Watcher, cap: usize) -> Result<bool, PortError>;
    /// Ends the subscriptions of `connections` to `watched`.
    async fn unsubscribe(&self, watched: &UserId, connections: &[ConnectionId]) -> Result<(), PortError>;
    /// The connections subscribed to `watched` (lapsed ones included: the caller checks).
    async fn watchers(&self, watched: &UserId) -> Result<Vec<Watcher>, PortError>;
}

// ---- calls -------------------------------------------------------------------------------

/// A call as stored: what frames show, and the two devices taking part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub call: crate::calls::Call,
    /// The device the caller called from: the only one of theirs in the call.
    pub caller_connection: ConnectionId,
    /// The callee's device that accepted.
    pub callee_connection: Option<ConnectionId>,
}

/// What starting a call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStart {
    Started,
    /// The caller is in another call: nothing was written.
    CallerBusy,
    /// The callee is in another call: nothing was written.
    CalleeBusy,
}

/// A user's place in a call: which one, the device they take part from (none while it
/// rings), and until when the mark holds unless renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InCall {
    pub call_id: CallId,
    pub connection: Option<ConnectionId>,
    pub until: i64,
}

/// Calls, and who is in one: each change of a call is conditional on the state it leaves,
/// so two devices answering at once cannot both win, and a user is in one call at a time.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Stores a ringing call and marks both users as in it until it stops ringing, all or
    /// nothing: a user whose mark of another call holds at `now_ms` refuses it.
    async fn start(&self, record: &CallRecord, now_ms: i64) -> Result<CallStart, PortError>;
    async fn get(&self, call: &CallId) -> Result<Option<CallRecord>, PortError>;
    /// Replaces a call still in state `from` by `next`, and marks both users as in it, from
    /// the devices `next` names, until `marks_until`. `false`: it was not in `from` any more.
    async fn advance(&self, next: &CallRecord, from: CallState, marks_until: i64) -> Result<bool, PortError>;
    /// Replaces a call still in state `from` by `ended`, and takes both users out of it.
    /// `false`: it was not in `from` any more.
    async fn finish(&self, ended: &CallRecord, from: CallState) -> Result<bool, PortError>;
    /// The call `user` is marked as in (the caller checks `until`).
    async fn in_call(&self, user: &UserId) -> Result<Option<InCall>, PortError>;
}

// ---- consent -----------------------------------------------------------------------------

/// Each user's inbox of pending invitations.
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Puts an invitation in the invitee's inbox unless it holds `cap` others (one to the
    /// same channel is replaced). Answers whether it is there now.
    async fn offer(&self, invitee: &UserId, invitation: &Invitation, cap: usize) -> Result<bool, PortError>;
    /// The pending invitations, oldest first.
    async fn pending(&self, user: &UserId) -> Result<Vec<Invitation>, PortError>;
    async fn withdraw(&self, user: &UserId, channels: &[ChannelId]) -> Result<(), PortError>;
}

/// Each user's block list.
#[async_trait]
pub trait BlockStore: Send + Sync {
    /// Adds `target` unless the list holds `cap` users already. Answers whether `target`
    /// is blocked now.
    async fn block(&self, user: &UserId, target: &UserId, cap: usize) -> Result<bool, PortError>;
    async fn unblock(&self, user: &UserId, target: &UserId) -> Result<(), PortError>;
    /// The users `user` blocks, sorted.
    async fn of(&self, user: &UserId) -> Result<Vec<UserId>, PortError>;
    /// Which of `users` block `actor`.
    async fn blocking(&self, users: &[UserId], actor: &UserId) -> Result<HashSet<UserId>, PortError>;
}

// ---- accounts ----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub user_id: UserId,
    /// PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`); never the password.
    pub password_hash: String,
    pub created_at: i64,
}

/// A device that gets pushes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRecord {
    pub platform: Platform,
    /// The push endpoint; none when no platform application is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_arn: Option<String>,
    /// False once the push service said the endpoint is disabled (a dead token).
    pub enabled: bool,
    pub created_at: i64,
}

/// Accounts and their push devices.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the account; `Ok(false)` when the user id is taken.
    async fn create(&self, record: &UserRecord) -> Result<bool, PortError>;
    async fn get(&self, user: &UserId) -> Result<Option<UserRecord>, PortError>;
    /// Which of `users` have accounts.
    async fn existing(&self, users: &[UserId]) -> Result<HashSet<UserId>, PortError>;
    /// Adds or replaces one device.
    async fn put_device(&self, user: &UserId, id: &str, device: &DeviceRecord) -> Result<(), PortError>;
    /// Removes one device; answers it when it existed.
    async fn remove_device(&self, user: &UserId, id: &str) -> Result<Option<DeviceRecord>, PortError>;
    async fn disable_device(&self, user: &UserId, id: &str) -> Result<(), PortError>;
    /// The devices of `users`.
    async fn devices(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<(String, DeviceRecord)>>, PortError>;
}

/// What taking a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// Unused and unexpired: its user and session, and the session's refreshes in the
    /// quota's window counting this one (for the next token). Now marked used.
    Fresh { user: UserId, sid: Option<String>, refreshes: SessionRefreshes },
    /// Unused and unexpired, but its session used up the quota's window: not marked used.
    OverQuota,
    /// Used before (and unexpired): someone replays it. Its session must end.
    Reused { user: UserId, sid: Option<String> },
    /// Unknown or expired.
    Invalid,
}

/// How many refreshes a session made in one window: carried from each refresh token to the
/// next (a session's tokens are used one after another), so counting costs no request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionRefreshes {
    pub window: i64,
    pub count: u32,
}

/// The window of this moment and how many refreshes a session may make in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshQuota {
    pub window: i64,
    pub limit: u32,
}

/// Sessions (signed-in devices) and their refresh tokens, stored hashed.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Adds session `sid` started at `now_ms`; answers every live session with its start.
    async fn start(&self, user: &UserId, sid: &str, now_ms: i64) -> Result<Vec<(i64, String)>, PortError>;
    async fn is_live(&self, user: &UserId, sid: &str) -> Result<bool, PortError>;
    /// Ends one session, or every session of the user (`None`).
    async fn end(&self, user: &UserId, sid: Option<&str>) -> Result<(), PortError>;
    /// Stores a token of session `sid`, with the session's refreshes so far.
    async fn put_refresh(
        &self,
        token_hash: &str,
        user: &UserId,
        sid: &str,
        expires_ms: i64,
        refreshes: SessionRefreshes,
    ) -> Result<(), PortError>;
    /// Marks a refresh token used, atomically (of two racing uses one sees a reuse), unless
    /// its session already made `quota.limit` refreshes in `quota.window`.
    async fn take_refresh(&self, token_hash: &str, now_ms: i64, quota: RefreshQuota) -> Result<Refresh, PortError>;
}

// ---- rate limits -------------------------------------------------------------------------

/// Counters every function instance shares.
#[async_trait]
pub trait RateCounter: Send + Sync {
    /// Adds one to the counter of (`kind`, `who`, `window`) and answers the new count. The
    /// counter may be forgotten after `expires_at_s`.
    async fn increment(&self, kind: &str, who: &str, window: i64, expires_at_s: i64) -> Result<u64, PortError>;
    /// The count of (`kind`, `who`, `window`) without adding to it (0 when never counted).
    async fn peek(&self, kind: &str, who: &str, window: i64) -> Result<u64, PortError>;
}

// ---- delivery ----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Delivered,
    /// The connection is closed (410 Gone): forget it. Not a failure of the send.
    Gone,
    /// The API refused for its rate (429): retried already, logged, not returned.
    Throttled(String),
    /// Logged, not returned: the message is stored and devices catch up.
    Failed(String),
}

/// Posts frames to open connections.
#[async_trait]
pub trait Poster: Send + Sync {
    async fn post(&self, connection: &ConnectionId, frame: &str) -> PostOutcome;
    /// Closes a connection: the client sees the socket close.
    async fn close(&self, connection: &ConnectionId) -> PostOutcome;
}

/// What a push says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub title: String,
    pub body: String,
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    /// An incoming call: sent at high priority, with the call for the app to ring with
    /// (`message_id` is then the channel's latest message, for opening the conversation).
    pub call: Option<crate::calls::Call>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMode {
    /// To each registered device's own endpoint.
    Devices,
    /// To one topic, the user id as an attribute (a deployment without mobile apps).
    Topic,
    /// Nowhere: no platform application and no topic.
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    Sent,
    /// The endpoint is disabled (a dead token): stop using this device.
    EndpointDisabled,
}

/// The push service.
#[async_trait]
pub trait PushService: Send + Sync {
    fn mode(&self) -> PushMode;
    /// The endpoint for a device token, created or found and re-enabled; `None` when no
    /// platform application is configured for `platform`.
    async fn endpoint_for(&self, platform: Platform, token: &str, user: &UserId) -> Result<Option<String>, PortError>;
    async fn delete_endpoint(&self, endpoint: &str) -> Result<(), PortError>;
    async fn publish_to_topic(&self, user: &UserId, notification: &Notification) -> Result<(), PortError>;
    async fn publish_to_device(
        &self,
        endpoint: &str,
        platform: Platform,
        notification: &Notification,
    ) -> Result<Published, PortError>;
}

// ---- files -------------------------------------------------------------------------------

/// An uploaded object as the file store describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    pub content_type: String,
}

/// A signed upload form: POST `fields` and then the file to `url`, before `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadForm {
    pub url: String,
    pub fields: BTreeMap<String, String>,
    pub expires_at_ms: i64,
}

/// The file store (S3): uploads go straight to it with a signed form.
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// A form that uploads exactly `size` bytes of `content_type` to `key` for `valid_for`
    /// (signed with the real time: the file store checks it), tagged as not yet attached.
    async fn upload_form(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        valid_for: std::time::Duration,
    ) -> Result<UploadForm, PortError>;
    /// A short-lived download URL (made locally: no request).
    async fn download_url(&self, key: &str) -> Result<String, PortError>;
    /// `None` when nothing was uploaded to `key`.
    async fn head(&self, key: &str) -> Result<Option<StoredObject>, PortError>;
    /// Keeps the file: it is attached to a stored message.
    async fn mark_attached(&self, key: &str) -> Result<(), PortError>;
    /// Deletes a file (a key that is gone already is not an error).
    async fn delete(&self, key: &str) -> Result<(), PortError>;
}

// ---- tokens ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is expired")]
    Expired,
    #[error("token is invalid")]
    Invalid,
}

/// What a valid access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user: UserId,
    pub session: Option<String>,
}

/// Signs and checks access tokens.
pub trait Tokens: Send + Sync {
    /// A token for `user`'s session `sid` (or of no session), valid from `now_s` for `ttl_s`.
    fn issue_access(&self, user: &UserId, sid: Option<&str>, now_s: i64, ttl_s: i64) -> String;
    /// The user and session a valid, unexpired token speaks for.
    fn check(&self, token: &str) -> Result<Verified, TokenError>;
}

// ---- search ------------------------------------------------------------------------------

/// A message as the search index holds it: what a query can match and filter on, and the
/// version that orders the changes of one message (0 when sent, then its `changeSeq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedMessage {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub version: u64,
    pub author_id: UserId,
    /// Empty for a deleted message: the index keeps only that it was deleted, at which
    /// version, so that a replayed older record cannot bring it back.
    pub text: String,
    pub has_file: bool,
    pub deleted: bool,
}

/// What a search asks the index: the caller's text, only in `channels` (the ones the
/// caller is a member of, checked by the rules before every query), within the filters.
#[derive(Debug, Clone)]
pub struct IndexQuery {
    pub text: String,
    pub channels: Vec<ChannelId>,
    pub author: Option<UserId>,
    /// Inclusive id bounds.
    pub low: MessageId,
    pub high: MessageId,
    pub has_file: Option<bool>,
    pub order: crate::search::SearchOrder,
    /// Hits to skip (relevance paging).
    pub offset: usize,
    pub limit: usize,
}

impl IndexQuery {
    /// `text` in `channels`, any time, any author, newest first, one page.
    pub fn over(text: impl Into<String>, channels: Vec<ChannelId>) -> Self {
        Self {
            text: text.into(),
            channels,
            author: None,
            low: MessageId::ZERO,
            high: MessageId::from_u64(u64::MAX),
            has_file: None,
            order: crate::search::SearchOrder::Newest,
            offset: 0,
            limit: crate::search::DEFAULT_SEARCH_LIMIT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexHit {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
}

/// What applying a batch of changes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changes newer than what the index held: written.
    pub written: usize,
    /// Replays and changes older than what the index held: skipped.
    pub stale: usize,
    /// Index shards whose new version was published.
    pub shards: usize,
}

/// The full-text index of messages.
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Applies `changes` (any order, replays included): for each message the highest version
    /// wins, whatever order the changes arrive in. All or nothing per shard.
    async fn apply(&self, changes: Vec<IndexedMessage>) -> Result<Applied, PortError>;

    /// The hits of `query`, in its order.
    async fn search(&self, query: &IndexQuery) -> Result<Vec<IndexHit>, PortError>;

    /// `text` in pieces with the words `query_text` matches highlighted, around the first
    /// match; `None` when `text` does not (or no longer) match it.
    fn snippet(&self, query_text: &str, text: &str) -> Option<Vec<crate::search::SnippetFragment>>;
}

/// The published state of one index shard: which files make it and where each is, under a
/// version that only grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexManifest {
    pub version: u64,
    /// The index's own description of its segments (tantivy's `meta.json`).
    pub meta: String,
    pub files: Vec<IndexFile>,
}

/// One file of the index, stored at `offset..offset + len` of a bundle: the files one
/// commit adds travel as one object (one write, one read).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexFile {
    pub name: String,
    pub bundle: String,
    pub offset: u64,
    pub len: u64,
}

/// Where index shards live: immutable bundles of files, and one manifest per shard that
/// names them, replaced only by a writer that read the version it replaces.
#[async_trait]
pub trait IndexFiles: Send + Sync {
    /// The shards' manifests (a strongly consistent read); absent ones are not in the map.
    async fn manifests(&self, shards: &[u32]) -> Result<HashMap<u32, IndexManifest>, PortError>;
    /// Publishes `next` if the shard is still at `previous` (`None`: no manifest yet);
    /// `false` when another writer published first.
    async fn publish(&self, shard: u32, previous: Option<u64>, next: &IndexManifest) -> Result<bool, PortError>;
    async fn read(&self, shard: u32, bundle: &str) -> Result<Option<Vec<u8>>, PortError>;
    async fn write(&self, shard: u32, bundle: &str, bytes: Vec<u8>) -> Result<(), PortError>;
    async fn remove(&self, shard: u32, bundles: &[String]) -> Result<(), PortError>;
}
