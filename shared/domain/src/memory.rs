//! In-memory implementations of every port, for tests: the rules' unit tests
//! (`shared/domain/tests/rules`) and any other crate's tests that want the rules without
//! AWS.
//!
//! Each store keeps what its DynamoDB table keeps and answers as `chat-aws`'s adapter does:
//! the same conditions (a seq that must still be the previous one, a member row that must
//! exist, an author who must still be the author), the same caps (inbox, block list), the
//! same answers on conflict ([`AppendOutcome`], [`ChangeRefused`], [`JoinError`]…), and
//! the same refusals of malformed requests (a BatchGetItem naming a key twice, a Query
//! with `Limit` 0). Every call takes one lock, so what is one transaction in DynamoDB is
//! atomic here too. The Channels and Messages tables are one [`ChannelTable`] behind one
//! lock, shared by [`Channels`], [`Messages`] and [`Invitations`], because their
//! transactions span them. Records are never expired by time (DynamoDB's TTL deletes
//! late too): the rules check the clocks themselves. Only a send's dedupe row is
//! forgotten after [`DEDUPE_WINDOW_S`], as the port promises.
//!
//! The outside services record what they were asked: [`RecordingPoster`] every post and
//! close (and answers Gone or fails for the connections it is told to), [`RecordingPush`]
//! every publish (in the [`PushMode`] it is given; endpoints can be disabled), [`Media`]
//! holds uploaded objects. [`PlainTokens`] issues readable tokens checked against the
//! clock.
//!
//! [`World`] builds all of it around a [`ManualClock`]:
//!
//! ```
//! # async fn demo() {
//! use chat_domain::memory::World;
//! let world = World::new().generous();
//! let app = world.app();
//! // call chat_domain::chat::send_message(&app, …), then look at world.poster.posts(),
//! // world.messages.all(&channel), world.clock.advance(…)…
//! # let _ = app;
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::app::{App, Ports};
use crate::calls::CallState;
use crate::clock::{Clock, ManualClock};
use crate::error::PortError;
use crate::http::{Invitation, Platform};
use crate::ids::{Bucket, MessageId};
use crate::model::{
    Attachment, CallId, ChannelId, ChannelKind, ClientMsgId, ConnectionId, Emoji, MemberRole, Message, UserId,
};
use crate::ports::{
    AppendOutcome, BlockStore, CallRecord, CallStart, CallStore, Change, ChangeRefused, Changed, ChannelMeta,
    ChannelStore, ChoiceChange, Claim, ConnectQuota, ConnectionClock, CreateChannelError, DEDUPE_WINDOW_S,
    DeviceRecord, InCall, InvitationStore, JoinError, MediaStore, Member, Membership, MembershipChangeError,
    MessageLog, Notification, Order, PostOutcome, PresenceRecord, PresenceStore, Published, PushMode, PushService,
    RateCounter, ReactionStore, ReactionWrite, Reactions, Recorded, Refresh, RefreshQuota, Roster, Seat,
    SessionRefreshes, SessionStore, StoredObject, SubscriptionStore, TokenError, Tokens, UploadForm, UserRecord,
    UserStore, Verified, Watcher,
};
use crate::settings::{RateLimit, RateLimits, Settings};

/// Locks, ignoring poisoning: a test that panicked while holding a lock has failed anyway.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// DynamoDB refuses a BatchGetItem that names one key twice.
fn refuse_duplicate_keys<T: Eq + Hash>(keys: impl IntoIterator<Item = T>) -> Result<(), PortError> {
    let mut seen = HashSet::new();
    if keys.into_iter().all(|key| seen.insert(key)) {
        Ok(())
    } else {
        Err(PortError::backend("DynamoDB BatchGetItem", "Provided list of item keys contains duplicates"))
    }
}

/// What DynamoDB refuses of a BatchGetItem: no keys, more than 100, or one key twice.
fn refuse_batch(ids: &[MessageId]) -> Result<(), PortError> {
    if ids.is_empty() || ids.len() > 100 {
        return Err(PortError::backend("DynamoDB BatchGetItem", "1 to 100 keys per request"));
    }
    refuse_duplicate_keys(ids.iter())
}

/// A failed condition that the adapter does not turn into an answer: an error.
fn condition_failed(what: &'static str) -> PortError {
    PortError::backend(what, "ConditionalCheckFailedException: the conditional request failed")
}

// ---- the Channels and Messages tables ---------------------------------------------------

/// The Channels table (channel meta, members, dedupe rows, invitation inboxes) and the
/// Messages table, behind the one lock [`Channels`], [`Messages`] and [`Invitations`] share.
#[derive(Debug, Default)]
pub struct ChannelTable {
    channels: BTreeMap<ChannelId, StoredChannel>,
    /// (channel, author, clientMsgId) -> (message id, forgotten after this second).
    dedupe: HashMap<(ChannelId, UserId, ClientMsgId), (MessageId, i64)>,
    messages: BTreeMap<(ChannelId, MessageId), StoredMessage>,
    /// Each message's reactions, once it had any: (reactions, change position, changed at).
    reactions: BTreeMap<(ChannelId, MessageId), (Reactions, u64, i64)>,
    /// Each user's inbox of pending invitations; present once one was ever offered.
    inboxes: HashMap<UserId, BTreeMap<ChannelId, Invitation>>,
}

#[derive(Debug, Clone)]
struct StoredChannel {
    meta: ChannelMeta,
    /// Sorted by user id, as the `member#{userId}` sort keys are.
    members: BTreeMap<UserId, StoredMember>,
}

impl StoredChannel {
    /// The channel's clock: the time of its newest claimed seq (a claim never sets it back).
    fn clock(&self) -> i64 {
        if self.meta.seq == 0 {
            return i64::MIN;
        }
        self.meta.last_message_id.timestamp_ms() - (self.meta.seq >> crate::ids::COUNTER_BITS) as i64
    }

    fn add_bucket(&mut self, bucket: crate::ids::Bucket) {
        if let Err(at) = self.meta.buckets.binary_search(&bucket) {
            self.meta.buckets.insert(at, bucket);
        }
    }
}

impl ChannelTable {
    /// What a send of an earlier-sent clientMsgId answers, while its dedupe row lives.
    fn earlier_send(&self, message: &Message, now_ms: i64) -> Option<AppendOutcome> {
        let key = (message.channel_id.clone(), message.author_id.clone(), message.client_msg_id.clone());
        let (earlier, expires_s) = self.dedupe.get(&key).copied()?;
        (expires_s > now_ms / 1000).then(|| {
            if earlier == message.message_id { AppendOutcome::Stored } else { AppendOutcome::Duplicate(earlier) }
        })
    }

    /// The message and its dedupe row; the message's id must be new.
    fn insert_message(&mut self, message: &Message, now_ms: i64) -> Result<(), PortError> {
        let key = (message.channel_id.clone(), message.message_id);
        if self.messages.contains_key(&key) {
            return Err(condition_failed("DynamoDB TransactWriteItems"));
        }
        let dedupe_key = (message.channel_id.clone(), message.author_id.clone(), message.client_msg_id.clone());
        self.dedupe.insert(dedupe_key, (message.message_id, now_ms / 1000 + DEDUPE_WINDOW_S));
        let stored = Message {
            attachments: message.attachments.iter().map(|a| Attachment { url: None, ..a.clone() }).collect(),
            ..message.clone()
        };
        self.messages.insert(key, StoredMessage { message: stored, changed_at: 0 });
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct StoredMember {
    role: MemberRole,
    joined_at: i64,
    last_read_seq: u64,
    last_read_id: MessageId,
    muted: bool,
}

impl StoredMember {
    fn new(role: MemberRole, now_ms: i64) -> Self {
        Self { role, joined_at: now_ms, last_read_seq: 0, last_read_id: MessageId::ZERO, muted: false }
    }
}

/// A message as the Messages table holds it: a deleted one keeps its file keys until
/// [`MessageLog::forget_files`], but readers never see them.
#[derive(Debug, Clone)]
struct StoredMessage {
    message: Message,
    /// When its latest change (edit, deletion) was made (ms; 0 for none).
    changed_at: i64,
}

impl StoredMessage {
    fn as_read(&self) -> Message {
        let mut message = self.message.clone();
        if message.deleted {
            message.attachments.clear();
            message.reply_to = None;
            message.mentions.clear();
        }
        message
    }
}

/// The one lock over the Channels and Messages tables.
pub type SharedTable = Arc<Mutex<ChannelTable>>;

/// [`ChannelStore`] over the shared [`ChannelTable`].
#[derive(Debug, Clone)]
pub struct Channels {
    table: SharedTable,
}

impl Channels {
    pub fn new(table: SharedTable) -> Self {
        Self { table }
    }

    /// Every channel id, for assertions.
    pub fn ids(&self) -> Vec<ChannelId> {
        lock(&self.table).channels.keys().cloned().collect()
    }
}

fn new_meta(id: &ChannelId, kind: ChannelKind, name: Option<&str>, member_count: u64, now_ms: i64) -> ChannelMeta {
    let mut meta = ChannelMeta::new(id.clone(), kind, name.map(str::to_owned), now_ms);
    meta.member_count = member_count;
    meta
}

fn member_view(user: &UserId, member: &StoredMember) -> Member {
    Member {
        user_id: user.clone(),
        role: member.role,
        joined_at: member.joined_at,
        last_read_seq: member.last_read_seq,
        muted: member.muted,
    }
}

#[async_trait]
impl ChannelStore for Channels {
    async fn create(
        &self,
        id: &ChannelId,
        kind: ChannelKind,
        name: Option<&str>,
        members: &[(UserId, MemberRole)],
        now_ms: i64,
    ) -> Result<(), CreateChannelError> {
        let mut table = lock(&self.table);
        if table.channels.contains_key(id) {
            return Err(CreateChannelError::AlreadyExists);
        }
        let mut meta = new_meta(id, kind, name, members.len() as u64, now_ms);
        if kind == ChannelKind::Direct {
            meta.pair = members.iter().map(|(user, _)| user.clone()).collect();
        }
        let members = members.iter().map(|(user, role)| (user.clone(), StoredMember::new(*role, now_ms))).collect();
        table.channels.insert(id.clone(), StoredChannel { meta, members });
        Ok(())
    }

    async fn open_direct(
        &self,
        id: &ChannelId,
        pair: [&UserId; 2],
        opener: &UserId,
        now_ms: i64,
    ) -> Result<bool, PortError> {
        let mut table = lock(&self.table);
        if table.channels.contains_key(id) {
            return Ok(false);
        }
        let mut meta = new_meta(id, ChannelKind::Direct, None, 1, now_ms);
        meta.pair = pair.iter().map(|user| (*user).clone()).collect();
        let members = BTreeMap::from([(opener.clone(), StoredMember::new(MemberRole::Member, now_ms))]);
        table.channels.insert(id.clone(), StoredChannel { meta, members });
        Ok(true)
    }

    async fn join(
        &self,
        id: &ChannelId,
        user: &UserId,
        seat: Seat,
        taking_invitation: bool,
        now_ms: i64,
    ) -> Result<(), JoinError> {
        let mut table = lock(&self.table);
        // The transaction's conditions, in the order the adapter reads their failures.
        let room =
            table.channels.get(id).is_some_and(|c| c.meta.kind == seat.kind && c.meta.member_count < seat.max_members);
        if !room {
            return Err(JoinError::Full);
        }
        if table.channels[id].members.contains_key(user) {
            return Err(JoinError::AlreadyMember);
        }
        if taking_invitation {
            let invited = table.inboxes.get(user).is_some_and(|inbox| inbox.contains_key(id));
            if !invited {
                return Err(JoinError::NotInvited);
            }
            if let Some(inbox) = table.inboxes.get_mut(user) {
                inbox.remove(id);
            }
        }
        let channel = table.channels.get_mut(id).expect("checked above");
        channel.meta.member_count += 1;
        channel.members.insert(user.clone(), StoredMember::new(seat.role, now_ms));
        Ok(())
    }

    async fn remove_member(
        &self,
        id: &ChannelId,
        user: &UserId,
        new_owner: Option<&UserId>,
    ) -> Result<(), MembershipChangeError> {
        if new_owner == Some(user) {
            return Err(PortError::backend(
                "DynamoDB TransactWriteItems",
                "Transaction request cannot include multiple operations on one item",
            )
            .into());
        }
        let mut table = lock(&self.table);
        let Some(channel) = table.channels.get_mut(id) else { return Err(MembershipChangeError::Raced) };
        let owner_there = new_owner.is_none_or(|owner| channel.members.contains_key(owner));
        if !channel.members.contains_key(user) || !owner_there {
            return Err(MembershipChangeError::Raced);
        }
        channel.members.remove(user);
        channel.meta.member_count = channel.meta.member_count.saturating_sub(1);
        if let Some(owner) = new_owner.and_then(|owner| channel.members.get_mut(owner)) {
            owner.role = MemberRole::Owner;
        }
        Ok(())
    }

    async fn roster(&self, id: &ChannelId) -> Result<Option<Roster>, PortError> {
        let table = lock(&self.table);
        Ok(table.channels.get(id).map(|channel| Roster {
            meta: channel.meta.clone(),
            members: channel.members.iter().map(|(user, m)| member_view(user, m)).collect(),
        }))
    }

    async fn meta_for_member(&self, id: &ChannelId, user: &UserId) -> Result<(Option<ChannelMeta>, bool), PortError> {
        let table = lock(&self.table);
        let channel = table.channels.get(id);
        Ok((channel.map(|c| c.meta.clone()), channel.is_some_and(|c| c.members.contains_key(user))))
    }

    async fn metas(&self, ids: &[ChannelId]) -> Result<Vec<ChannelMeta>, PortError> {
        refuse_duplicate_keys(ids)?;
        let table = lock(&self.table);
        Ok(ids.iter().filter_map(|id| table.channels.get(id)).map(|c| c.meta.clone()).collect())
    }

    async fn meta(&self, id: &ChannelId) -> Result<Option<ChannelMeta>, PortError> {
        Ok(lock(&self.table).channels.get(id).map(|c| c.meta.clone()))
    }

    async fn advance_read(
        &self,
        id: &ChannelId,
        user: &UserId,
        seq: u64,
        message: MessageId,
    ) -> Result<bool, PortError> {
        let mut table = lock(&self.table);
        let Some(member) = table.channels.get_mut(id).and_then(|c| c.members.get_mut(user)) else {
            return Ok(false);
        };
        if member.last_read_seq >= seq {
            return Ok(false);
        }
        member.last_read_seq = seq;
        member.last_read_id = message;
        Ok(true)
    }

    async fn set_muted(&self, id: &ChannelId, user: &UserId, muted: bool) -> Result<(), PortError> {
        let mut table = lock(&self.table);
        let member = table
            .channels
            .get_mut(id)
            .and_then(|c| c.members.get_mut(user))
            .ok_or_else(|| condition_failed("DynamoDB UpdateItem"))?;
        member.muted = muted;
        Ok(())
    }

    async fn prune_deleted_seqs(&self, id: &ChannelId, seqs: &[u64]) -> Result<(), PortError> {
        if let Some(channel) = lock(&self.table).channels.get_mut(id) {
            channel.meta.deleted_seqs.retain(|seq| !seqs.contains(seq));
        }
        Ok(())
    }

    async fn membership_count(&self, user: &UserId) -> Result<usize, PortError> {
        Ok(lock(&self.table).channels.values().filter(|c| c.members.contains_key(user)).count())
    }

    async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, PortError> {
        let table = lock(&self.table);
        Ok(table
            .channels
            .iter()
            .filter_map(|(id, channel)| {
                channel.members.get(user).map(|m| Membership {
                    channel_id: id.clone(),
                    role: m.role,
                    joined_at: m.joined_at,
                    last_read_seq: m.last_read_seq,
                    last_read_id: m.last_read_id,
                    muted: m.muted,
                })
            })
            .collect())
    }

    async fn direct_contacts(&self, me: &UserId, pairs: &[(UserId, ChannelId)]) -> Result<HashSet<UserId>, PortError> {
        let pairs: Vec<&(UserId, ChannelId)> = pairs.iter().filter(|(user, _)| user != me).collect();
        refuse_duplicate_keys(pairs.iter().flat_map(|(user, channel)| [(channel, me), (channel, user)]))?;
        let table = lock(&self.table);
        Ok(pairs
            .into_iter()
            .filter(|(user, channel)| {
                table.channels.get(channel).is_some_and(|c| c.members.contains_key(me) && c.members.contains_key(user))
            })
            .map(|(user, _)| user.clone())
            .collect())
    }
}

/// [`MessageLog`] over the shared [`ChannelTable`].
#[derive(Debug, Clone)]
pub struct Messages {
    table: SharedTable,
}

impl Messages {
    pub fn new(table: SharedTable) -> Self {
        Self { table }
    }

    /// Every message of `channel` as stored (deleted ones too, with the file keys they still
    /// hold), in id order.
    pub fn all(&self, channel: &ChannelId) -> Vec<Message> {
        let table = lock(&self.table);
        table.messages.iter().filter(|((c, _), _)| c == channel).map(|(_, m)| m.message.clone()).collect()
    }

    /// How many messages every channel holds together.
    pub fn count(&self) -> usize {
        lock(&self.table).messages.len()
    }
}

#[async_trait]
impl MessageLog for Messages {
    async fn append(&self, message: &Message, now_ms: i64) -> Result<AppendOutcome, PortError> {
        let mut table = lock(&self.table);
        // 1. The dedupe row, only if new (a row past its window is forgotten).
        if let Some(outcome) = table.earlier_send(message, now_ms) {
            return Ok(outcome);
        }
        // 2. The channel's counter, only if its seq is still the one before this message's
        //    and its clock not after this message's time.
        let Some(channel) = table.channels.get(&message.channel_id) else {
            return Ok(AppendOutcome::SeqTaken);
        };
        if message.seq == 0 || channel.meta.seq != message.seq - 1 || channel.clock() > message.created_at {
            return Ok(AppendOutcome::SeqTaken);
        }
        table.insert_message(message, now_ms)?;
        let channel = table.channels.get_mut(&message.channel_id).expect("checked above");
        channel.meta.seq = message.seq;
        channel.meta.last_message_id = message.message_id;
        channel.add_bucket(message.message_id.bucket());
        Ok(AppendOutcome::Stored)
    }

    async fn claim(&self, channel: &ChannelId, now_ms: i64) -> Result<Option<Claim>, PortError> {
        let mut table = lock(&self.table);
        let Some(channel) = table.channels.get_mut(channel) else { return Ok(None) };
        let at_ms = now_ms.max(channel.clock());
        let seq = channel.meta.seq + 1;
        channel.meta.seq = seq;
        channel.meta.last_message_id = MessageId::claimed(at_ms, seq);
        channel.add_bucket(channel.meta.last_message_id.bucket());
        Ok(Some(Claim { seq, at_ms }))
    }

    async fn store_claimed(&self, message: &Message, now_ms: i64) -> Result<AppendOutcome, PortError> {
        let mut table = lock(&self.table);
        if let Some(outcome) = table.earlier_send(message, now_ms) {
            return Ok(outcome);
        }
        table.insert_message(message, now_ms)?;
        Ok(AppendOutcome::Stored)
    }

    async fn fill_claimed(&self, message: &Message, _now_ms: i64) -> Result<(), PortError> {
        let mut table = lock(&self.table);
        let key = (message.channel_id.clone(), message.message_id);
        if table.messages.contains_key(&key) {
            return Ok(());
        }
        let filler = Message { text: String::new(), attachments: Vec::new(), deleted: true, ..message.clone() };
        table.messages.insert(key, StoredMessage { message: filler, changed_at: 0 });
        if let Some(channel) = table.channels.get_mut(&message.channel_id)
            && let Err(at) = channel.meta.deleted_seqs.binary_search(&message.seq)
        {
            channel.meta.deleted_seqs.insert(at, message.seq);
        }
        Ok(())
    }

    async fn get(&self, channel: &ChannelId, id: MessageId) -> Result<Option<Message>, PortError> {
        Ok(lock(&self.table).messages.get(&(channel.clone(), id)).map(StoredMessage::as_read))
    }

    async fn claim_change(&self, channel: &ChannelId, now_ms: i64) -> Result<Option<u64>, PortError> {
        let mut table = lock(&self.table);
        let Some(channel) = table.channels.get_mut(channel) else { return Ok(None) };
        channel.meta.change_seq += 1;
        channel.meta.last_change_at = now_ms;
        Ok(Some(channel.meta.change_seq))
    }

    async fn changed_since(&self, channel: &ChannelId, after: u64, limit: usize) -> Result<Vec<Change>, PortError> {
        let table = lock(&self.table);
        let messages = table
            .messages
            .iter()
            .filter(|((c, _), stored)| c == channel && stored.message.change_seq.is_some_and(|s| s > after))
            .map(|(_, stored)| Change {
                change_seq: stored.message.change_seq.unwrap_or_default(),
                changed_at: stored.changed_at,
                what: Changed::Message(Box::new(stored.as_read())),
            });
        let reactions = table.reactions.iter().filter(|((c, _), (_, seq, _))| c == channel && *seq > after).map(
            |((_, id), (reactions, seq, at))| Change {
                change_seq: *seq,
                changed_at: *at,
                what: Changed::Reactions { message_id: *id, reactions: reactions.clone() },
            },
        );
        let mut changed: Vec<Change> = messages.chain(reactions).collect();
        changed.sort_by_key(|c| c.change_seq);
        changed.truncate(limit);
        Ok(changed)
    }

    async fn scan(
        &self,
        segment: u32,
        segments: u32,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<crate::ports::ScanPage, PortError> {
        let table = lock(&self.table);
        let start = cursor.map(|c| c.parse::<usize>().unwrap_or(usize::MAX)).unwrap_or(0);
        let mine: Vec<Message> = table
            .messages
            .values()
            .filter(|m| m.message.message_id.as_u64() % u64::from(segments.max(1)) == u64::from(segment))
            .map(StoredMessage::as_read)
            .collect();
        let end = start.saturating_add(limit).min(mine.len());
        let messages = mine.get(start..end).map(<[Message]>::to_vec).unwrap_or_default();
        Ok(crate::ports::ScanPage { messages, cursor: (end < mine.len()).then(|| end.to_string()) })
    }

    async fn get_many(&self, channel: &ChannelId, ids: &[MessageId]) -> Result<Vec<Message>, PortError> {
        refuse_batch(ids)?;
        let table = lock(&self.table);
        Ok(ids
            .iter()
            .filter_map(|id| table.messages.get(&(channel.clone(), *id)))
            .map(StoredMessage::as_read)
            .collect())
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
        let mut table = lock(&self.table);
        let Some(stored) = table.messages.get_mut(&(channel.clone(), id)) else {
            return Ok(Err(ChangeRefused::NotFound));
        };
        if stored.message.deleted {
            return Ok(Err(ChangeRefused::Deleted));
        }
        if &stored.message.author_id != author {
            return Ok(Err(ChangeRefused::NotAuthor));
        }
        stored.message.text = text.to_owned();
        stored.message.edited_at = Some(now_ms);
        stored.message.change_seq = Some(change);
        stored.changed_at = now_ms;
        Ok(Ok(stored.as_read()))
    }

    async fn soft_delete(
        &self,
        message: &Message,
        author: Option<&UserId>,
        change: u64,
        now_ms: i64,
    ) -> Result<Result<Message, ChangeRefused>, PortError> {
        let mut table = lock(&self.table);
        let Some(stored) = table.messages.get_mut(&(message.channel_id.clone(), message.message_id)) else {
            return Ok(Err(ChangeRefused::NotFound));
        };
        if stored.message.deleted {
            return Ok(Err(ChangeRefused::Deleted));
        }
        if author.is_some_and(|author| author != &stored.message.author_id) {
            return Ok(Err(ChangeRefused::NotAuthor));
        }
        let before = stored.message.clone();
        stored.message.deleted = true;
        stored.message.text.clear();
        stored.message.change_seq = Some(change);
        stored.changed_at = now_ms;
        if let Some(channel) = table.channels.get_mut(&message.channel_id)
            && let Err(at) = channel.meta.deleted_seqs.binary_search(&before.seq)
        {
            channel.meta.deleted_seqs.insert(at, before.seq);
        }
        Ok(Ok(before))
    }

    async fn files_left(&self, channel: &ChannelId, id: MessageId) -> Result<Vec<Attachment>, PortError> {
        let table = lock(&self.table);
        Ok(table
            .messages
            .get(&(channel.clone(), id))
            .filter(|stored| stored.message.deleted)
            .map(|stored| stored.message.attachments.clone())
            .unwrap_or_default())
    }

    async fn forget_files(&self, channel: &ChannelId, id: MessageId) -> Result<(), PortError> {
        let mut table = lock(&self.table);
        let stored = table
            .messages
            .get_mut(&(channel.clone(), id))
            .filter(|stored| stored.message.deleted)
            .ok_or_else(|| condition_failed("DynamoDB UpdateItem"))?;
        stored.message.attachments.clear();
        Ok(())
    }

    async fn in_bucket(
        &self,
        channel: &ChannelId,
        bucket: Bucket,
        (low, high): (MessageId, MessageId),
        limit: usize,
        order: Order,
    ) -> Result<Vec<Message>, PortError> {
        if limit == 0 {
            return Err(PortError::backend("DynamoDB Query", "Limit must be greater than or equal to 1"));
        }
        if low > high {
            return Err(PortError::backend("DynamoDB Query", "BETWEEN bounds are in the wrong order"));
        }
        let table = lock(&self.table);
        let range = table
            .messages
            .range((channel.clone(), low)..=(channel.clone(), high))
            .filter(|((_, id), _)| id.bucket() == bucket)
            .map(|(_, stored)| stored.as_read());
        Ok(match order {
            Order::OldestFirst => range.take(limit).collect(),
            Order::NewestFirst => range.rev().take(limit).collect(),
        })
    }
}

/// [`InvitationStore`] over the shared [`ChannelTable`] (accepting takes an invitation in
/// the same step as joining).
#[derive(Debug, Clone)]
pub struct Invitations {
    table: SharedTable,
}

impl Invitations {
    pub fn new(table: SharedTable) -> Self {
        Self { table }
    }
}

#[async_trait]
impl InvitationStore for Invitations {
    async fn offer(&self, invitee: &UserId, invitation: &Invitation, cap: usize) -> Result<bool, PortError> {
        let mut table = lock(&self.table);
        // An existing inbox takes it while it has room or holds this channel already; a
        // new inbox is created holding just this one.
        let room = match table.inboxes.get(invitee) {
            Some(inbox) => inbox.len() < cap || inbox.contains_key(&invitation.channel_id),
            None => true,
        };
        if room {
            table.inboxes.entry(invitee.clone()).or_default().insert(invitation.channel_id.clone(), invitation.clone());
        }
        Ok(room)
    }

    async fn pending(&self, user: &UserId) -> Result<Vec<Invitation>, PortError> {
        let table = lock(&self.table);
        let mut pending: Vec<Invitation> =
            table.inboxes.get(user).map(|i| i.values().cloned().collect()).unwrap_or_default();
        pending.sort_by(|a, b| a.invited_at.cmp(&b.invited_at).then(a.channel_id.cmp(&b.channel_id)));
        Ok(pending)
    }

    async fn withdraw(&self, user: &UserId, channels: &[ChannelId]) -> Result<(), PortError> {
        if let Some(inbox) = lock(&self.table).inboxes.get_mut(user) {
            inbox.retain(|channel, _| !channels.contains(channel));
        }
        Ok(())
    }
}

// ---- blocks ------------------------------------------------------------------------------

/// [`BlockStore`]: each user's capped block list.
#[derive(Debug, Default)]
pub struct Blocks {
    lists: Mutex<HashMap<UserId, BTreeSet<UserId>>>,
}

#[async_trait]
impl BlockStore for Blocks {
    async fn block(&self, user: &UserId, target: &UserId, cap: usize) -> Result<bool, PortError> {
        let mut lists = lock(&self.lists);
        let list = lists.entry(user.clone()).or_default();
        // A string set is never empty in DynamoDB: an empty list is no list.
        let room = list.is_empty() || list.len() < cap || list.contains(target);
        if room {
            list.insert(target.clone());
        }
        Ok(room)
    }

    async fn unblock(&self, user: &UserId, target: &UserId) -> Result<(), PortError> {
        if let Some(list) = lock(&self.lists).get_mut(user) {
            list.remove(target);
        }
        Ok(())
    }

    async fn of(&self, user: &UserId) -> Result<Vec<UserId>, PortError> {
        Ok(lock(&self.lists).get(user).map(|list| list.iter().cloned().collect()).unwrap_or_default())
    }

    async fn blocking(&self, users: &[UserId], actor: &UserId) -> Result<HashSet<UserId>, PortError> {
        let lists = lock(&self.lists);
        Ok(users.iter().filter(|user| lists.get(*user).is_some_and(|list| list.contains(actor))).cloned().collect())
    }
}

// ---- presence ----------------------------------------------------------------------------

/// [`PresenceStore`]: one record per user with their connections' clocks.
#[derive(Debug, Default)]
pub struct Presence {
    /// The record and, beside it, the connects counted in it: (window, count).
    records: Mutex<HashMap<UserId, PresenceRecord>>,
    connects: Mutex<HashMap<UserId, (i64, u32)>>,
}

impl Presence {
    /// A user's whole record, for assertions.
    pub fn record(&self, user: &UserId) -> Option<PresenceRecord> {
        lock(&self.records).get(user).cloned()
    }
}

#[async_trait]
impl PresenceStore for Presence {
    async fn record_beat(
        &self,
        user: &UserId,
        connection: &ConnectionId,
        clock: &ConnectionClock,
        deadline: i64,
        shard: u32,
        _ttl_s: i64,
        quota: Option<ConnectQuota>,
    ) -> Result<Recorded, PortError> {
        let mut records = lock(&self.records);
        if let Some(quota) = quota {
            // Counted in the same write as the record, as the DynamoDB item does.
            let mut connects = lock(&self.connects);
            let count = connects.entry(user.clone()).or_insert((quota.window, 0));
            if count.0 != quota.window {
                *count = (quota.window, 0);
            }
            if count.1 >= quota.limit {
                return Ok(Recorded::OverQuota);
            }
            count.1 += 1;
        }
        let before = records.get(user).cloned();
        let record = records
            .entry(user.clone())
            .or_insert_with(|| PresenceRecord { user_id: Some(user.clone()), ..PresenceRecord::default() });
        record.conns.insert(connection.to_string(), clock.clone());
        record.deadline = Some(deadline);
        record.online_shard = Some(shard);
        record.last_seen = Some(clock.beat);
        Ok(Recorded::Beat(before))
    }

    async fn remove_connections(
        &self,
        user: &UserId,
        connections: &[String],
    ) -> Result<Option<PresenceRecord>, PortError> {
        if connections.is_empty() {
            return Err(PortError::backend("DynamoDB UpdateItem", "Invalid UpdateExpression: REMOVE needs a path"));
        }
        let mut records = lock(&self.records);
        Ok(records.get_mut(user).map(|record| {
            record.conns.retain(|connection, _| !connections.contains(connection));
            record.clone()
        }))
    }

    async fn move_deadline(&self, user: &UserId, deadline: i64, now_ms: i64, seen: i64) -> Result<bool, PortError> {
        let mut records = lock(&self.records);
        match records.get_mut(user) {
            Some(record) if record.deadline == Some(seen) => {
                record.deadline = Some(deadline);
                record.last_seen = Some(now_ms);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn connections(&self, users: &[UserId]) -> Result<Vec<PresenceRecord>, PortError> {
        refuse_duplicate_keys(users)?;
        let records = lock(&self.records);
        // Projected as the adapter reads them: the user, the connections and the choice.
        Ok(users
            .iter()
            .filter_map(|user| records.get(user))
            .map(|r| PresenceRecord {
                user_id: r.user_id.clone(),
                conns: r.conns.clone(),
                choice: r.choice.clone(),
                ..PresenceRecord::default()
            })
            .collect())
    }

    async fn statuses(&self, users: &[UserId]) -> Result<Vec<PresenceRecord>, PortError> {
        refuse_duplicate_keys(users)?;
        let records = lock(&self.records);
        // Everything but the connections' sessions.
        Ok(users
            .iter()
            .filter_map(|user| records.get(user))
            .map(|r| {
                let mut r = r.clone();
                r.conns.values_mut().for_each(|c| c.sid = None);
                r
            })
            .collect())
    }

    async fn choose(
        &self,
        user: &UserId,
        change: &ChoiceChange,
        _keep_until_s: i64,
    ) -> Result<Option<PresenceRecord>, PortError> {
        let mut records = lock(&self.records);
        let Some(record) = records.get_mut(user) else { return Ok(None) };
        let before = record.clone();
        record.choice.apply(change);
        Ok(Some(before))
    }

    async fn overdue(&self, shard: u32, until_ms: i64) -> Result<Vec<(UserId, i64)>, PortError> {
        let records = lock(&self.records);
        let mut due: Vec<(UserId, i64)> = records
            .iter()
            .filter(|(_, r)| r.online_shard == Some(shard))
            .filter_map(|(user, r)| r.deadline.filter(|d| *d <= until_ms).map(|d| (user.clone(), d)))
            .collect();
        due.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        Ok(due)
    }

    async fn any_due_by(&self, shard: u32, until_ms: i64) -> Result<bool, PortError> {
        Ok(!self.overdue(shard, until_ms).await?.is_empty())
    }

    async fn mark_offline(&self, user: &UserId, deadline: i64) -> Result<Option<PresenceRecord>, PortError> {
        let mut records = lock(&self.records);
        match records.get_mut(user) {
            Some(record) if record.online_shard.is_some() && record.deadline == Some(deadline) => {
                record.online_shard = None;
                Ok(Some(record.clone()))
            }
            _ => Ok(None),
        }
    }
}

/// [`SubscriptionStore`]: per watched user, the subscribed connections.
#[derive(Debug, Default)]
pub struct Subscriptions {
    watchers: Mutex<HashMap<UserId, BTreeMap<String, Watcher>>>,
}

impl Subscriptions {
    /// The connections subscribed to `watched`, sorted (tests).
    pub fn watchers_of(&self, watched: &UserId) -> Vec<String> {
        lock(&self.watchers).get(watched).map(|w| w.keys().cloned().collect()).unwrap_or_default()
    }
}

#[async_trait]
impl SubscriptionStore for Subscriptions {
    async fn subscribe(&self, watched: &UserId, watcher: &Watcher, cap: usize) -> Result<bool, PortError> {
        let mut all = lock(&self.watchers);
        let watchers = all.entry(watched.clone()).or_default();
        let key = watcher.connection.to_string();
        if !watchers.contains_key(&key) && watchers.len() >= cap {
            return Ok(false);
        }
        watchers.insert(key, watcher.clone());
        Ok(true)
    }

    async fn unsubscribe(&self, watched: &UserId, connections: &[ConnectionId]) -> Result<(), PortError> {
        if let Some(watchers) = lock(&self.watchers).get_mut(watched) {
            for connection in connections {
                watchers.remove(connection.as_str());
            }
        }
        Ok(())
    }

    async fn watchers(&self, watched: &UserId) -> Result<Vec<Watcher>, PortError> {
        Ok(lock(&self.watchers).get(watched).map(|w| w.values().cloned().collect()).unwrap_or_default())
    }
}

// ---- calls ---------------------------------------------------------------------------------

/// [`CallStore`]: calls and each user's mark of the call they are in.
#[derive(Debug, Default)]
pub struct Calls {
    state: Mutex<CallsState>,
}

#[derive(Debug, Default)]
struct CallsState {
    calls: HashMap<CallId, CallRecord>,
    marks: HashMap<UserId, InCall>,
}

impl Calls {
    /// Every call stored, for tests.
    pub fn all(&self) -> Vec<CallRecord> {
        lock(&self.state).calls.values().cloned().collect()
    }

    /// `user`'s mark, for tests.
    pub fn mark(&self, user: &UserId) -> Option<InCall> {
        lock(&self.state).marks.get(user).cloned()
    }
}

impl CallsState {
    fn busy(&self, user: &UserId, call: &CallId, now_ms: i64) -> bool {
        self.marks.get(user).is_some_and(|m| m.call_id != *call && m.until > now_ms)
    }

    fn mark(&mut self, record: &CallRecord, until: i64) {
        let call = &record.call;
        for (user, connection) in [
            (&call.caller_id, Some(record.caller_connection.clone())),
            (&call.callee_id, record.callee_connection.clone()),
        ] {
            self.marks.insert(user.clone(), InCall { call_id: call.call_id.clone(), connection, until });
        }
    }
}

#[async_trait]
impl CallStore for Calls {
    async fn start(&self, record: &CallRecord, now_ms: i64) -> Result<CallStart, PortError> {
        let mut state = lock(&self.state);
        let call = &record.call;
        if state.busy(&call.caller_id, &call.call_id, now_ms) {
            return Ok(CallStart::CallerBusy);
        }
        if state.busy(&call.callee_id, &call.call_id, now_ms) {
            return Ok(CallStart::CalleeBusy);
        }
        state.calls.insert(call.call_id.clone(), record.clone());
        state.mark(record, call.ring_until);
        Ok(CallStart::Started)
    }

    async fn get(&self, call: &CallId) -> Result<Option<CallRecord>, PortError> {
        Ok(lock(&self.state).calls.get(call).cloned())
    }

    async fn advance(&self, next: &CallRecord, from: CallState, marks_until: i64) -> Result<bool, PortError> {
        let mut state = lock(&self.state);
        match state.calls.get_mut(&next.call.call_id) {
            Some(stored) if stored.call.state == from => *stored = next.clone(),
            _ => return Ok(false),
        }
        state.mark(next, marks_until);
        Ok(true)
    }

    async fn finish(&self, ended: &CallRecord, from: CallState) -> Result<bool, PortError> {
        let mut state = lock(&self.state);
        match state.calls.get_mut(&ended.call.call_id) {
            Some(stored) if stored.call.state == from => *stored = ended.clone(),
            _ => return Ok(false),
        }
        for user in [&ended.call.caller_id, &ended.call.callee_id] {
            if state.marks.get(user).is_some_and(|m| m.call_id == ended.call.call_id) {
                state.marks.remove(user);
            }
        }
        Ok(true)
    }

    async fn in_call(&self, user: &UserId) -> Result<Option<InCall>, PortError> {
        Ok(lock(&self.state).marks.get(user).cloned())
    }
}

// ---- accounts and devices ----------------------------------------------------------------

/// [`UserStore`]: accounts and each user's push devices.
#[derive(Debug, Default)]
pub struct Users {
    state: Mutex<UsersState>,
}

#[derive(Debug, Default)]
struct UsersState {
    accounts: HashMap<UserId, UserRecord>,
    /// A user's devices item, present once a device was ever put.
    devices: HashMap<UserId, BTreeMap<String, DeviceRecord>>,
}

#[async_trait]
impl UserStore for Users {
    async fn create(&self, record: &UserRecord) -> Result<bool, PortError> {
        let mut state = lock(&self.state);
        if state.accounts.contains_key(&record.user_id) {
            return Ok(false);
        }
        state.accounts.insert(record.user_id.clone(), record.clone());
        Ok(true)
    }

    async fn get(&self, user: &UserId) -> Result<Option<UserRecord>, PortError> {
        Ok(lock(&self.state).accounts.get(user).cloned())
    }

    async fn existing(&self, users: &[UserId]) -> Result<HashSet<UserId>, PortError> {
        refuse_duplicate_keys(users)?;
        let state = lock(&self.state);
        Ok(users.iter().filter(|user| state.accounts.contains_key(*user)).cloned().collect())
    }

    async fn put_device(&self, user: &UserId, id: &str, device: &DeviceRecord) -> Result<(), PortError> {
        lock(&self.state).devices.entry(user.clone()).or_default().insert(id.to_owned(), device.clone());
        Ok(())
    }

    async fn remove_device(&self, user: &UserId, id: &str) -> Result<Option<DeviceRecord>, PortError> {
        Ok(lock(&self.state).devices.get_mut(user).and_then(|devices| devices.remove(id)))
    }

    async fn disable_device(&self, user: &UserId, id: &str) -> Result<(), PortError> {
        if let Some(device) = lock(&self.state).devices.get_mut(user).and_then(|devices| devices.get_mut(id)) {
            device.enabled = false;
        }
        Ok(())
    }

    async fn devices(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<(String, DeviceRecord)>>, PortError> {
        refuse_duplicate_keys(users)?;
        let state = lock(&self.state);
        Ok(users
            .iter()
            .filter_map(|user| {
                let devices = state.devices.get(user)?;
                Some((user.clone(), devices.iter().map(|(id, d)| (id.clone(), d.clone())).collect()))
            })
            .collect())
    }
}

/// [`SessionStore`]: live sessions per user and refresh tokens (by hash).
#[derive(Debug, Default)]
pub struct Sessions {
    state: Mutex<SessionsState>,
}

#[derive(Debug, Default)]
struct SessionsState {
    /// User -> session id -> when it started.
    live: HashMap<UserId, BTreeMap<String, i64>>,
    refresh: HashMap<String, RefreshToken>,
}

#[derive(Debug, Clone)]
struct RefreshToken {
    user: UserId,
    sid: Option<String>,
    expires_ms: i64,
    used_at: Option<i64>,
    refreshes: SessionRefreshes,
}

impl Sessions {
    /// The live session ids of `user`, sorted.
    pub fn live(&self, user: &UserId) -> Vec<String> {
        lock(&self.state).live.get(user).map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }

    /// Stores a refresh token issued before sessions existed (it belongs to none).
    pub fn put_sessionless_refresh(&self, token_hash: &str, user: &UserId, expires_ms: i64) {
        let token = RefreshToken {
            user: user.clone(),
            sid: None,
            expires_ms,
            used_at: None,
            refreshes: SessionRefreshes::default(),
        };
        lock(&self.state).refresh.insert(token_hash.to_owned(), token);
    }
}

#[async_trait]
impl SessionStore for Sessions {
    async fn start(&self, user: &UserId, sid: &str, now_ms: i64) -> Result<Vec<(i64, String)>, PortError> {
        let mut state = lock(&self.state);
        let live = state.live.entry(user.clone()).or_default();
        live.insert(sid.to_owned(), now_ms);
        Ok(live.iter().map(|(sid, at)| (*at, sid.clone())).collect())
    }

    async fn is_live(&self, user: &UserId, sid: &str) -> Result<bool, PortError> {
        Ok(lock(&self.state).live.get(user).is_some_and(|live| live.contains_key(sid)))
    }

    async fn end(&self, user: &UserId, sid: Option<&str>) -> Result<(), PortError> {
        let mut state = lock(&self.state);
        match sid {
            Some(sid) => {
                if let Some(live) = state.live.get_mut(user) {
                    live.remove(sid);
                }
            }
            None => {
                state.live.remove(user);
            }
        }
        Ok(())
    }

    async fn put_refresh(
        &self,
        token_hash: &str,
        user: &UserId,
        sid: &str,
        expires_ms: i64,
        refreshes: SessionRefreshes,
    ) -> Result<(), PortError> {
        let token =
            RefreshToken { user: user.clone(), sid: Some(sid.to_owned()), expires_ms, used_at: None, refreshes };
        lock(&self.state).refresh.insert(token_hash.to_owned(), token);
        Ok(())
    }

    async fn take_refresh(&self, token_hash: &str, now_ms: i64, quota: RefreshQuota) -> Result<Refresh, PortError> {
        let mut state = lock(&self.state);
        let Some(token) = state.refresh.get_mut(token_hash) else { return Ok(Refresh::Invalid) };
        if token.expires_ms <= now_ms {
            return Ok(Refresh::Invalid);
        }
        if token.used_at.is_some() {
            return Ok(Refresh::Reused { user: token.user.clone(), sid: token.sid.clone() });
        }
        let before = token.refreshes;
        let count = if before.window == quota.window { before.count } else { 0 };
        if count >= quota.limit {
            return Ok(Refresh::OverQuota);
        }
        token.used_at = Some(now_ms);
        let refreshes = SessionRefreshes { window: quota.window, count: count + 1 };
        Ok(Refresh::Fresh { user: token.user.clone(), sid: token.sid.clone(), refreshes })
    }
}

// ---- rate limits -------------------------------------------------------------------------

/// [`RateCounter`]: the shared fixed-window counters.
#[derive(Debug, Default)]
pub struct Counters {
    counts: Mutex<HashMap<(String, String, i64), u64>>,
}

impl Counters {
    /// The count of (`kind`, `who`) in `window` (0 when never counted).
    pub fn count(&self, kind: &str, who: &str, window: i64) -> u64 {
        lock(&self.counts).get(&(kind.to_owned(), who.to_owned(), window)).copied().unwrap_or(0)
    }

    /// How many counted requests every counter holds together.
    pub fn total(&self) -> u64 {
        lock(&self.counts).values().sum()
    }
}

#[async_trait]
impl RateCounter for Counters {
    async fn increment(&self, kind: &str, who: &str, window: i64, _expires_at_s: i64) -> Result<u64, PortError> {
        let mut counts = lock(&self.counts);
        let count = counts.entry((kind.to_owned(), who.to_owned(), window)).or_default();
        *count += 1;
        Ok(*count)
    }

    async fn peek(&self, kind: &str, who: &str, window: i64) -> Result<u64, PortError> {
        Ok(self.count(kind, who, window))
    }
}

// ---- the Management API ------------------------------------------------------------------

/// One post the poster was asked for, with its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub connection: ConnectionId,
    pub frame: String,
    pub outcome: PostOutcome,
}

impl Post {
    /// The frame as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.frame).expect("posted frames are JSON")
    }
}

/// [`Poster`](crate::ports::Poster) that records every post and close. Connections can be
/// declared gone (answer 410, as a closed socket does) or failing (any other error); a
/// closed connection is gone afterwards.
#[derive(Debug, Default)]
pub struct RecordingPoster {
    state: Mutex<PosterState>,
}

#[derive(Debug, Default)]
struct PosterState {
    posts: Vec<Post>,
    closes: Vec<(ConnectionId, PostOutcome)>,
    gone: HashSet<ConnectionId>,
    failing: HashSet<ConnectionId>,
}

impl PosterState {
    fn outcome(&self, connection: &ConnectionId) -> PostOutcome {
        if self.gone.contains(connection) {
            PostOutcome::Gone
        } else if self.failing.contains(connection) {
            PostOutcome::Failed(format!("connection {connection} is failing"))
        } else {
            PostOutcome::Delivered
        }
    }
}

impl RecordingPoster {
    /// From now on, posts to `connection` answer Gone (the socket closed).
    pub fn set_gone(&self, connection: &ConnectionId) {
        lock(&self.state).gone.insert(connection.clone());
    }

    /// From now on, posts to `connection` fail (or, with `false`, work again).
    pub fn set_failing(&self, connection: &ConnectionId, failing: bool) {
        let mut state = lock(&self.state);
        if failing {
            state.failing.insert(connection.clone());
        } else {
            state.failing.remove(connection);
        }
    }

    /// Every post so far, in order, whatever its answer.
    pub fn posts(&self) -> Vec<Post> {
        lock(&self.state).posts.clone()
    }

    /// The frames delivered to `connection`, as JSON, in order.
    pub fn delivered_to(&self, connection: &ConnectionId) -> Vec<serde_json::Value> {
        lock(&self.state)
            .posts
            .iter()
            .filter(|p| &p.connection == connection && p.outcome == PostOutcome::Delivered)
            .map(Post::json)
            .collect()
    }

    /// The connections closed (successfully), in order.
    pub fn closed(&self) -> Vec<ConnectionId> {
        lock(&self.state).closes.iter().filter(|(_, o)| *o == PostOutcome::Delivered).map(|(c, _)| c.clone()).collect()
    }

    /// Forgets what was recorded (not which connections are gone or failing).
    pub fn clear(&self) {
        let mut state = lock(&self.state);
        state.posts.clear();
        state.closes.clear();
    }
}

#[async_trait]
impl crate::ports::Poster for RecordingPoster {
    async fn post(&self, connection: &ConnectionId, frame: &str) -> PostOutcome {
        let mut state = lock(&self.state);
        let outcome = state.outcome(connection);
        state.posts.push(Post { connection: connection.clone(), frame: frame.to_owned(), outcome: outcome.clone() });
        outcome
    }

    async fn close(&self, connection: &ConnectionId) -> PostOutcome {
        let mut state = lock(&self.state);
        let outcome = state.outcome(connection);
        state.closes.push((connection.clone(), outcome.clone()));
        if outcome == PostOutcome::Delivered {
            state.gone.insert(connection.clone());
        }
        outcome
    }
}

// ---- push ----------------------------------------------------------------------------------

/// One publish the push service was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    Topic { user: UserId, notification: Notification },
    Device { endpoint: String, platform: Platform, notification: Notification, outcome: Published },
}

impl Publish {
    pub fn notification(&self) -> &Notification {
        match self {
            Publish::Topic { notification, .. } | Publish::Device { notification, .. } => notification,
        }
    }
}

/// [`PushService`] that records every publish. In [`PushMode::Devices`] a token's endpoint is
/// `endpoint/{platform}/{token}`; endpoints can be disabled (a dead token).
#[derive(Debug)]
pub struct RecordingPush {
    state: Mutex<PushState>,
}

#[derive(Debug)]
struct PushState {
    mode: PushMode,
    publishes: Vec<Publish>,
    disabled: HashSet<String>,
    deleted: Vec<String>,
}

impl Default for RecordingPush {
    fn default() -> Self {
        Self::new(PushMode::Devices)
    }
}

impl RecordingPush {
    pub fn new(mode: PushMode) -> Self {
        Self {
            state: Mutex::new(PushState { mode, publishes: Vec::new(), disabled: HashSet::new(), deleted: Vec::new() }),
        }
    }

    pub fn set_mode(&self, mode: PushMode) {
        lock(&self.state).mode = mode;
    }

    /// The endpoint answers "disabled" from now on (until its token registers again).
    pub fn disable_endpoint(&self, endpoint: &str) {
        lock(&self.state).disabled.insert(endpoint.to_owned());
    }

    /// Every publish so far, in order.
    pub fn publishes(&self) -> Vec<Publish> {
        lock(&self.state).publishes.clone()
    }

    /// The endpoints deleted so far.
    pub fn deleted_endpoints(&self) -> Vec<String> {
        lock(&self.state).deleted.clone()
    }

    pub fn clear(&self) {
        lock(&self.state).publishes.clear();
    }
}

#[async_trait]
impl PushService for RecordingPush {
    fn mode(&self) -> PushMode {
        lock(&self.state).mode
    }

    async fn endpoint_for(&self, platform: Platform, token: &str, _user: &UserId) -> Result<Option<String>, PortError> {
        let mut state = lock(&self.state);
        if state.mode != PushMode::Devices {
            return Ok(None);
        }
        let endpoint = format!("endpoint/{}/{token}", platform.as_str());
        state.disabled.remove(&endpoint);
        Ok(Some(endpoint))
    }

    async fn delete_endpoint(&self, endpoint: &str) -> Result<(), PortError> {
        lock(&self.state).deleted.push(endpoint.to_owned());
        Ok(())
    }

    async fn publish_to_topic(&self, user: &UserId, notification: &Notification) -> Result<(), PortError> {
        let publish = Publish::Topic { user: user.clone(), notification: notification.clone() };
        lock(&self.state).publishes.push(publish);
        Ok(())
    }

    async fn publish_to_device(
        &self,
        endpoint: &str,
        platform: Platform,
        notification: &Notification,
    ) -> Result<Published, PortError> {
        let mut state = lock(&self.state);
        let outcome = if state.disabled.contains(endpoint) { Published::EndpointDisabled } else { Published::Sent };
        state.publishes.push(Publish::Device {
            endpoint: endpoint.to_owned(),
            platform,
            notification: notification.clone(),
            outcome: outcome.clone(),
        });
        Ok(outcome)
    }
}

// ---- files ---------------------------------------------------------------------------------

/// An object in the file store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaObject {
    pub size: u64,
    pub content_type: String,
    /// Kept: named by a stored message (uploads never attached are cleaned up by S3).
    pub attached: bool,
}

/// [`MediaStore`]: objects by key. Clients' uploads are [`Media::upload`].
pub struct Media {
    clock: Arc<dyn Clock>,
    objects: Mutex<BTreeMap<String, MediaObject>>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media").field("objects", &*lock(&self.objects)).finish()
    }
}

impl Media {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, objects: Mutex::new(BTreeMap::new()) }
    }

    /// What a client's upload does: puts `size` bytes of `content_type` at `key`, not attached.
    pub fn upload(&self, key: &str, size: u64, content_type: &str) {
        let object = MediaObject { size, content_type: content_type.to_owned(), attached: false };
        lock(&self.objects).insert(key.to_owned(), object);
    }

    pub fn object(&self, key: &str) -> Option<MediaObject> {
        lock(&self.objects).get(key).cloned()
    }

    pub fn keys(&self) -> Vec<String> {
        lock(&self.objects).keys().cloned().collect()
    }
}

#[async_trait]
impl MediaStore for Media {
    async fn upload_form(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        valid_for: std::time::Duration,
    ) -> Result<UploadForm, PortError> {
        let fields = BTreeMap::from([
            ("key".to_owned(), key.to_owned()),
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("content-length".to_owned(), size.to_string()),
            ("tagging".to_owned(), "attached=false".to_owned()),
        ]);
        let expires_at_ms = self.clock.now_ms() + valid_for.as_millis() as i64;
        Ok(UploadForm { url: "memory://uploads".to_owned(), fields, expires_at_ms })
    }

    async fn download_url(&self, key: &str) -> Result<String, PortError> {
        Ok(format!("memory://{key}"))
    }

    async fn head(&self, key: &str) -> Result<Option<StoredObject>, PortError> {
        Ok(self.object(key).map(|o| StoredObject { size: o.size, content_type: o.content_type }))
    }

    async fn mark_attached(&self, key: &str) -> Result<(), PortError> {
        let mut objects = lock(&self.objects);
        let object = objects
            .get_mut(key)
            .ok_or_else(|| PortError::backend("S3 PutObjectTagging", format!("NoSuchKey: {key}")))?;
        object.attached = true;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        lock(&self.objects).remove(key);
        Ok(())
    }
}

// ---- tokens --------------------------------------------------------------------------------

/// [`Tokens`] in a readable, unsigned format, `mem:{user}:{session or -}:{expiry s}`,
/// checked against the clock. For tests only: anyone can forge one.
pub struct PlainTokens {
    clock: Arc<dyn Clock>,
}

impl PlainTokens {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }
}

impl Tokens for PlainTokens {
    fn issue_access(&self, user: &UserId, sid: Option<&str>, now_s: i64, ttl_s: i64) -> String {
        format!("mem:{user}:{}:{}", sid.unwrap_or("-"), now_s + ttl_s)
    }

    fn check(&self, token: &str) -> Result<Verified, TokenError> {
        let parts: Vec<&str> = token.split(':').collect();
        let ["mem", user, sid, expires] = parts[..] else { return Err(TokenError::Invalid) };
        let user = UserId::parse(user).map_err(|_| TokenError::Invalid)?;
        let expires: i64 = expires.parse().map_err(|_| TokenError::Invalid)?;
        if sid.is_empty() {
            return Err(TokenError::Invalid);
        }
        if self.clock.now_ms() / 1000 >= expires {
            return Err(TokenError::Expired);
        }
        Ok(Verified { user, session: (sid != "-").then(|| sid.to_owned()) })
    }
}

/// [`ReactionStore`] over the shared [`ChannelTable`] (reactions sit in the Messages table,
/// beside the messages, in their own items).
#[derive(Debug, Clone)]
pub struct MessageReactions {
    table: SharedTable,
}

impl MessageReactions {
    pub fn new(table: SharedTable) -> Self {
        Self { table }
    }

    fn write(
        &self,
        message: &Message,
        change: u64,
        now_ms: i64,
        apply: impl FnOnce(&mut Reactions) -> ReactionWrite,
    ) -> ReactionWrite {
        let mut table = lock(&self.table);
        let key = (message.channel_id.clone(), message.message_id);
        if table.reactions.get(&key).is_some_and(|(_, position, _)| *position >= change) {
            return ReactionWrite::Outdated;
        }
        let mut current = table.reactions.get(&key).map(|(r, _, _)| r.clone()).unwrap_or_default();
        let written = apply(&mut current);
        match written {
            ReactionWrite::Changed(_) => {
                current.by_emoji.retain(|_, users| !users.is_empty());
                current.change_seq = change;
                table.reactions.insert(key, (current.clone(), change, now_ms));
                ReactionWrite::Changed(current)
            }
            other => other,
        }
    }
}

#[async_trait]
impl ReactionStore for MessageReactions {
    async fn of(&self, channel: &ChannelId, ids: &[MessageId]) -> Result<HashMap<MessageId, Reactions>, PortError> {
        refuse_batch(ids)?;
        let table = lock(&self.table);
        Ok(ids
            .iter()
            .filter_map(|id| table.reactions.get(&(channel.clone(), *id)).map(|(r, _, _)| (*id, r.clone())))
            .collect())
    }

    async fn in_range(
        &self,
        channel: &ChannelId,
        bucket: Bucket,
        (low, high): (MessageId, MessageId),
    ) -> Result<HashMap<MessageId, Reactions>, PortError> {
        if low > high {
            return Err(PortError::backend("DynamoDB Query", "BETWEEN bounds are in the wrong order"));
        }
        let table = lock(&self.table);
        Ok(table
            .reactions
            .range((channel.clone(), low)..=(channel.clone(), high))
            .filter(|((_, id), _)| id.bucket() == bucket)
            .map(|((_, id), (r, _, _))| (*id, r.clone()))
            .collect())
    }

    async fn add(
        &self,
        message: &Message,
        user: &UserId,
        emoji: &Emoji,
        max_emoji: usize,
        change: u64,
        now_ms: i64,
    ) -> Result<ReactionWrite, PortError> {
        Ok(self.write(message, change, now_ms, |reactions| {
            if reactions.has(emoji, user) {
                return ReactionWrite::Unchanged(reactions.clone());
            }
            if !reactions.by_emoji.contains_key(emoji) && reactions.by_emoji.len() >= max_emoji {
                return ReactionWrite::TooManyEmoji;
            }
            reactions.by_emoji.entry(emoji.clone()).or_default().insert(user.clone());
            ReactionWrite::Changed(reactions.clone())
        }))
    }

    async fn remove(
        &self,
        message: &Message,
        user: &UserId,
        emoji: &Emoji,
        change: u64,
        now_ms: i64,
    ) -> Result<ReactionWrite, PortError> {
        Ok(self.write(message, change, now_ms, |reactions| {
            if !reactions.has(emoji, user) {
                return ReactionWrite::Unchanged(reactions.clone());
            }
            if let Some(users) = reactions.by_emoji.get_mut(emoji) {
                users.remove(user);
                if users.is_empty() {
                    reactions.by_emoji.remove(emoji);
                }
            }
            ReactionWrite::Changed(reactions.clone())
        }))
    }
}

// ---- the world -----------------------------------------------------------------------------

/// Every port in memory around one [`ManualClock`], and the settings apps are built with.
/// `app()` gives an [`App`] over them; tests call the rules with it and then look at the
/// stores and at what was posted, pushed and uploaded.
pub struct World {
    pub clock: ManualClock,
    /// What [`World::app`] builds apps with: [`Settings::default`], with a `limit_scope` of
    /// this world's own (so worlds in one process do not share frame counts) and one pass
    /// per presence sweep.
    pub settings: Settings,
    pub table: SharedTable,
    pub channels: Arc<Channels>,
    pub messages: Arc<Messages>,
    pub reactions: Arc<MessageReactions>,
    pub invitations: Arc<Invitations>,
    pub blocks: Arc<Blocks>,
    pub presence: Arc<Presence>,
    pub subscriptions: Arc<Subscriptions>,
    pub calls: Arc<Calls>,
    pub users: Arc<Users>,
    pub sessions: Arc<Sessions>,
    pub counters: Arc<Counters>,
    pub poster: Arc<RecordingPoster>,
    pub push: Arc<RecordingPush>,
    pub media: Arc<Media>,
    pub tokens: Arc<PlainTokens>,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// Makes each world's (and each instance's) local limit scope unique in the process.
fn next_scope(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("memory-{what}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl World {
    /// Where every world's clock starts (2027-01-15T08:00:00Z): a round number of every
    /// rate-limit window.
    pub const START_MS: i64 = 1_800_000_000_000;

    pub fn new() -> Self {
        let clock = ManualClock::starting_at(Self::START_MS);
        let shared_clock: Arc<dyn Clock> = Arc::new(clock.clone());
        let table: SharedTable = Arc::default();
        let mut settings = Settings { limit_scope: next_scope("world"), ..Settings::default() };
        // A sweep of more passes sleeps (real time) between them.
        settings.presence.sweep_passes = 1;
        Self {
            clock,
            settings,
            channels: Arc::new(Channels::new(table.clone())),
            messages: Arc::new(Messages::new(table.clone())),
            reactions: Arc::new(MessageReactions::new(table.clone())),
            invitations: Arc::new(Invitations::new(table.clone())),
            table,
            blocks: Arc::default(),
            presence: Arc::default(),
            subscriptions: Arc::default(),
            calls: Arc::default(),
            users: Arc::default(),
            sessions: Arc::default(),
            counters: Arc::default(),
            poster: Arc::default(),
            push: Arc::default(),
            media: Arc::new(Media::new(shared_clock.clone())),
            tokens: Arc::new(PlainTokens::new(shared_clock)),
        }
    }

    /// Limits no test reaches by accident (100 000 of everything per minute).
    pub fn generous(self) -> Self {
        self.with_settings(|s| s.rate_limits = RateLimits::uniform(RateLimit { count: 100_000, window_ms: 60_000 }))
    }

    /// Changes the settings apps are built with.
    pub fn with_settings(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(&mut self.settings);
        self
    }

    pub fn ports(&self) -> Ports {
        Ports {
            channels: self.channels.clone(),
            messages: self.messages.clone(),
            reactions: self.reactions.clone(),
            presence: self.presence.clone(),
            subscriptions: self.subscriptions.clone(),
            calls: self.calls.clone(),
            invitations: self.invitations.clone(),
            blocks: self.blocks.clone(),
            users: self.users.clone(),
            sessions: self.sessions.clone(),
            counters: self.counters.clone(),
            poster: self.poster.clone(),
            push: self.push.clone(),
            media: self.media.clone(),
            tokens: Some(self.tokens.clone()),
            index_files: None,
            search: None,
        }
    }

    /// The application over this world's ports, clock and settings.
    pub fn app(&self) -> App {
        App::new(self.settings.clone(), Arc::new(self.clock.clone()), self.ports())
    }

    /// Another warm instance of the same deployment: the same stores, its own memory (its
    /// local frame and read counts start from zero).
    pub fn instance(&self) -> App {
        let settings = Settings { limit_scope: next_scope("instance"), ..self.settings.clone() };
        App::new(settings, Arc::new(self.clock.clone()), self.ports())
    }
}
