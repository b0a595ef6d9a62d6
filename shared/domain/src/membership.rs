//! Channel management: groups (up to 100 members, owner and admins manage them) and
//! direct channels (one per pair of users, the same whoever opens it).

use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::access::{self, roster_for_member};
use crate::app::App;
use crate::consent;
use crate::error::ChatError;
pub use crate::http::{ChannelSummary, ChannelView, MemberView};
use crate::model::{ChannelId, ChannelKind, MAX_CHANNEL_MEMBERS, MemberRole, UserId};
use crate::ports::{ChannelMeta, CreateChannelError, JoinError, MembershipChangeError, Roster, Seat};

pub const MAX_GROUP_NAME_CHARS: usize = 100;

/// The channel routes' view of a roster: members sorted by id.
fn view_of(roster: Roster) -> ChannelView {
    let mut members: Vec<MemberView> =
        roster.members.into_iter().map(|m| MemberView { user_id: m.user_id, role: m.role }).collect();
    members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    ChannelView {
        channel_id: roster.meta.id,
        kind: roster.meta.kind,
        name: roster.meta.name,
        members,
        invited: Vec::new(),
        created_at: roster.meta.created_at,
    }
}

fn too_many() -> ChatError {
    ChatError::InvalidRequest(format!("a group has at most {MAX_CHANNEL_MEMBERS} members"))
}

/// Creates a group owned by `creator` and invites `members` (see [`crate::consent`]).
pub async fn create_group(
    app: &App,
    creator: &UserId,
    name: &str,
    members: Vec<UserId>,
) -> Result<ChannelView, ChatError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_GROUP_NAME_CHARS {
        return Err(ChatError::InvalidRequest(format!("name must be 1-{MAX_GROUP_NAME_CHARS} characters")));
    }
    if members.len() > 2 * MAX_CHANNEL_MEMBERS {
        return Err(too_many());
    }
    let invited: Vec<UserId> = consent::distinct(members).into_iter().filter(|u| u != creator).collect();
    if invited.len() >= MAX_CHANNEL_MEMBERS {
        return Err(too_many());
    }
    consent::require_room_for_a_channel(app, creator).await?;
    let id = ChannelId::parse(format!("g-{}", hex::encode(rand::random::<[u8; 12]>())))?;
    let owner = [(creator.clone(), MemberRole::Owner)];
    app.channels().create(&id, ChannelKind::Group, Some(name), &owner, app.now_ms()).await.map_err(|e| match e {
        CreateChannelError::AlreadyExists => ChatError::Conflict("channel id collision; try again".into()),
        CreateChannelError::Port(e) => e.into(),
    })?;
    consent::invite(app, creator, &id, ChannelKind::Group, Some(name), MemberRole::Member, &invited).await?;
    info!(%creator, channel = %id, invited = invited.len(), "group created");
    let mut view = channel_details(app, creator, &id).await?;
    view.invited = invited;
    Ok(view)
}

/// The direct channel of two users: a pure function of the pair, so both sides get the
/// same channel however often they open it.
pub fn direct_channel_id(a: &UserId, b: &UserId) -> ChannelId {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::digest(format!("{first}\n{second}").as_bytes());
    ChannelId::parse(format!("d-{}", &hex::encode(digest)[..40])).expect("hex ids are valid channel ids")
}

/// Opens the direct channel with `other`. Opening is consent: the caller is in it at once;
/// `other` is invited and joins on accepting (or by opening it too). Whether `other`
/// exists or blocks the caller, the answer is the same.
pub async fn open_direct(app: &App, me: &UserId, other: &UserId) -> Result<ChannelView, ChatError> {
    if me == other {
        return Err(ChatError::InvalidRequest("a direct channel needs another user".into()));
    }
    let id = direct_channel_id(me, other);
    let now = app.now_ms();
    match app.channels().roster(&id).await? {
        Some(roster) if roster.is_member(me) => {}
        Some(_) => {
            consent::require_room_for_a_channel(app, me).await?;
            // `other` opened it first; opening it is my consent (an invitation, if any, is used up).
            let seat = Seat { role: MemberRole::Member, kind: ChannelKind::Direct, max_members: 2 };
            match app.channels().join(&id, me, seat, false, now).await {
                Ok(()) | Err(JoinError::AlreadyMember) => {}
                Err(JoinError::Port(e)) => return Err(e.into()),
                Err(err) => return Err(ChatError::Conflict(format!("could not join the direct channel: {err}"))),
            }
            app.invitations().withdraw(me, std::slice::from_ref(&id)).await?;
        }
        None => {
            consent::require_room_for_a_channel(app, me).await?;
            if app.channels().open_direct(&id, [me, other], me, now).await? {
                info!(%me, channel = %id, "direct channel opened");
                consent::invite(
                    app,
                    me,
                    &id,
                    ChannelKind::Direct,
                    None,
                    MemberRole::Member,
                    std::slice::from_ref(other),
                )
                .await?;
            }
        }
    }
    let mut view = channel_details(app, me, &id).await?;
    if !view.members.iter().any(|m| &m.user_id == other) {
        view.invited = vec![other.clone()];
    }
    Ok(view)
}

pub async fn channel_details(app: &App, user: &UserId, channel: &ChannelId) -> Result<ChannelView, ChatError> {
    Ok(view_of(roster_for_member(app, user, channel).await?))
}

/// Adds members to a group. Owners and admins only; only the owner makes admins.
pub async fn add_members(
    app: &App,
    actor: &UserId,
    channel: &ChannelId,
    users: Vec<UserId>,
    role: MemberRole,
) -> Result<ChannelView, ChatError> {
    let roster = roster_for_member(app, actor, channel).await?;
    let actor_role = roster.member(actor).map(|m| m.role).unwrap_or(MemberRole::Member);
    if roster.meta.kind != ChannelKind::Group {
        return Err(ChatError::InvalidRequest("members can be added to groups only".into()));
    }
    access::may_add(actor_role, role)?;
    if users.len() > 2 * MAX_CHANNEL_MEMBERS {
        return Err(too_many());
    }
    let new: Vec<UserId> = consent::distinct(users).into_iter().filter(|u| !roster.is_member(u)).collect();
    if roster.members.len() + new.len() > MAX_CHANNEL_MEMBERS {
        return Err(too_many());
    }
    let name = roster.meta.name.clone();
    consent::invite(app, actor, channel, ChannelKind::Group, name.as_deref(), role, &new).await?;
    info!(%actor, %channel, invited = new.len(), "members invited");
    let mut view = view_of(roster);
    view.invited = new;
    Ok(view)
}

/// Removes `user` from a group: themselves (leaving), or someone else by the owner or an
/// admin (an admin removes members only). An owner who leaves hands the group to an admin,
/// else to the longest-standing member.
pub async fn remove_member(app: &App, actor: &UserId, channel: &ChannelId, user: &UserId) -> Result<(), ChatError> {
    let roster = roster_for_member(app, actor, channel).await?;
    if roster.meta.kind != ChannelKind::Group {
        return Err(ChatError::InvalidRequest("nobody can leave or be removed from a direct channel".into()));
    }
    let actor_role = roster.member(actor).map(|m| m.role).unwrap_or(MemberRole::Member);
    let target = roster
        .member(user)
        .ok_or_else(|| ChatError::NotFound(format!("{user} is not a member of channel {channel}")))?;
    if !access::may_remove(actor, actor_role, user, target.role) {
        return Err(ChatError::Forbidden("you cannot remove this member".into()));
    }
    let successor = if target.role == MemberRole::Owner { successor_of(&roster, user) } else { None };
    match app.channels().remove_member(channel, user, successor.as_ref()).await {
        Ok(()) => {}
        Err(MembershipChangeError::Raced) => {
            return Err(ChatError::Conflict("the members changed at the same time; try again".into()));
        }
        Err(MembershipChangeError::Port(e)) => return Err(e.into()),
    }
    info!(%actor, %channel, removed = %user, "member removed");
    Ok(())
}

/// Who owns a group after its owner leaves: an admin, else the longest-standing member
/// (ties by user id, so every reader of the roster agrees).
pub fn successor_of(roster: &Roster, leaving: &UserId) -> Option<UserId> {
    let mut others: Vec<_> = roster.members.iter().filter(|m| &m.user_id != leaving).collect();
    others.sort_by_key(|m| (m.role != MemberRole::Admin, m.joined_at, m.user_id.clone()));
    others.first().map(|m| m.user_id.clone())
}

/// Mutes (no pushes) or unmutes a channel for the caller.
pub async fn set_muted(app: &App, user: &UserId, channel: &ChannelId, muted: bool) -> Result<(), ChatError> {
    roster_for_member(app, user, channel).await?;
    app.channels().set_muted(channel, user, muted).await?;
    Ok(())
}

/// Channels whose unread count is read from their messages at once, at most.
const UNREAD_READS_AT_ONCE: usize = 8;

/// The caller's channels, most recently active first.
pub async fn list_channels(app: &App, user: &UserId) -> Result<Vec<ChannelSummary>, ChatError> {
    let memberships = app.channels().memberships(user).await?;
    let ids: Vec<ChannelId> = memberships.iter().map(|m| m.channel_id.clone()).collect();
    let metas: std::collections::HashMap<ChannelId, ChannelMeta> =
        app.channels().metas(&ids).await?.into_iter().map(|m| (m.id.clone(), m)).collect();
    let mut reads = Vec::new();
    for membership in &memberships {
        if let Some(meta) = metas.get(&membership.channel_id) {
            let read = membership.last_read_seq;
            reads.push(async move { read_position(app, user, meta, read).await.map(|p| (meta.id.clone(), p)) });
        }
    }
    let positions: Vec<(ChannelId, ReadPosition)> =
        futures::stream::iter(reads).buffer_unordered(UNREAD_READS_AT_ONCE).try_collect().await?;
    let positions: std::collections::HashMap<ChannelId, ReadPosition> = positions.into_iter().collect();
    let mut summaries: Vec<ChannelSummary> = memberships
        .into_iter()
        .filter_map(|membership| {
            let meta = metas.get(&membership.channel_id)?;
            let position = positions.get(&membership.channel_id)?;
            Some(ChannelSummary {
                channel_id: meta.id.clone(),
                kind: meta.kind,
                name: meta.name.clone(),
                peer: meta.pair.iter().find(|u| *u != user).cloned(),
                role: membership.role,
                member_count: meta.member_count,
                seq: meta.seq,
                last_message_id: (meta.seq > 0).then_some(meta.last_message_id),
                unread: position.unread,
                mentions: position.mentions,
                muted: membership.muted,
                last_read_seq: position.read_seq,
                change_seq: meta.change_seq,
            })
        })
        .collect();
    summaries.sort_by(|a, b| b.last_message_id.cmp(&a.last_message_id).then(a.channel_id.cmp(&b.channel_id)));
    Ok(summaries)
}

/// Where a member has read up to, and what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadPosition {
    read_seq: u64,
    unread: u64,
    /// Of the unread messages, those that mention the member.
    mentions: u64,
}

/// Messages a channel's unread count is read from, at most; beyond that the meta's count
/// stands (it also counts the caller's own messages).
pub const UNREAD_SCAN: usize = 100;

/// Sending reads a channel up to one's own message. Rather than a write per send, the
/// member's newest message counts as read here: the newest messages after the stored read
/// position are read (only for a channel with any), and those after the member's newest
/// own one that still exist are unread; those of them that mention the member are counted
/// apart (only within the messages read: past [`UNREAD_SCAN`] the count is a floor).
async fn read_position(app: &App, user: &UserId, meta: &ChannelMeta, read_seq: u64) -> Result<ReadPosition, ChatError> {
    let stored = ReadPosition { read_seq, unread: meta.unread_after(read_seq), mentions: 0 };
    if stored.unread == 0 {
        return Ok(stored);
    }
    let want = (meta.seq.saturating_sub(read_seq) as usize).min(UNREAD_SCAN);
    let newest = crate::history::newest(app, meta, want).await?;
    let mut unread = 0;
    let mut mentions = 0;
    // Whether every message after the read position was seen (some seqs may still be on
    // their way): then the count is exact.
    let mut seen_all = newest.len() < want;
    for message in &newest {
        if message.seq <= read_seq {
            seen_all = true;
            break;
        }
        if &message.author_id == user {
            return Ok(ReadPosition { read_seq: message.seq, unread, mentions });
        }
        if !message.deleted {
            unread += 1;
            mentions += u64::from(message.mentions.contains(user));
        }
        seen_all |= message.seq == read_seq + 1;
    }
    // Otherwise the member's own newest message is further back than a channel list
    // should read: the meta's count stands.
    Ok(if seen_all { ReadPosition { read_seq, unread, mentions } } else { ReadPosition { mentions, ..stored } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_has_one_direct_channel_whoever_opens_it() {
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let carol = UserId::parse("carol").unwrap();
        assert_eq!(direct_channel_id(&alice, &bob), direct_channel_id(&bob, &alice));
        assert_ne!(direct_channel_id(&alice, &bob), direct_channel_id(&alice, &carol));
        assert!(direct_channel_id(&alice, &bob).as_str().starts_with("d-"));
    }
}
