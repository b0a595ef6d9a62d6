//! Channel management: groups (up to 100 members, owner and admins manage them) and
//! direct channels (one per pair of users, the same whoever opens it).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::app::App;
use crate::error::ChatError;
use crate::ids::MessageId;
use crate::model::{ChannelId, ChannelKind, MAX_CHANNEL_MEMBERS, MemberRole, UserId};
use crate::store::{ChannelMeta, CreateChannelError, MembershipChangeError, Roster};

pub const MAX_GROUP_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: UserId,
    pub role: MemberRole,
}

/// A channel with its members, as the channel routes answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub members: Vec<MemberView>,
    pub created_at: i64,
}

impl ChannelView {
    fn from_roster(roster: Roster) -> Self {
        let mut members: Vec<MemberView> =
            roster.members.into_iter().map(|m| MemberView { user_id: m.user_id, role: m.role }).collect();
        members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        Self {
            channel_id: roster.meta.id,
            kind: roster.meta.kind,
            name: roster.meta.name,
            members,
            created_at: roster.meta.created_at,
        }
    }
}

/// One entry of the caller's channel list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSummary {
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Direct channels: the other user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<UserId>,
    pub role: MemberRole,
    pub member_count: u64,
    /// Messages in the channel so far (the newest message's `seq`).
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message_id: Option<MessageId>,
    /// Messages after the caller's read position (their own messages count as read).
    pub unread: u64,
    /// The caller's read position (seq of the newest message they have read).
    pub last_read_seq: u64,
    /// No pushes for this channel.
    pub muted: bool,
}

fn not_a_member(channel: &ChannelId) -> ChatError {
    ChatError::Forbidden(format!("you are not a member of channel {channel}"))
}

/// The roster of a channel `user` belongs to; the same refusal whether the channel does
/// not exist or the user is not in it.
pub async fn roster_for_member(app: &App, user: &UserId, channel: &ChannelId) -> Result<Roster, ChatError> {
    app.channels().roster(channel).await?.filter(|roster| roster.is_member(user)).ok_or_else(|| not_a_member(channel))
}

async fn require_users_exist(app: &App, users: &[UserId]) -> Result<(), ChatError> {
    let existing = app.users().existing(users).await?;
    let mut unknown: Vec<&str> = users.iter().filter(|u| !existing.contains(u)).map(UserId::as_str).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    Err(ChatError::NotFound(format!("no such users: {}", unknown.join(", "))))
}

fn too_many() -> ChatError {
    ChatError::InvalidRequest(format!("a group has at most {MAX_CHANNEL_MEMBERS} members"))
}

/// Creates a group owned by `creator` with `members` (the creator is added if missing).
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
    let mut everyone = vec![creator.clone()];
    for member in members {
        if !everyone.contains(&member) {
            everyone.push(member);
        }
    }
    if everyone.len() > MAX_CHANNEL_MEMBERS {
        return Err(too_many());
    }
    require_users_exist(app, &everyone[1..]).await?;
    let id = ChannelId::parse(format!("g-{}", hex::encode(rand::random::<[u8; 12]>())))?;
    let roles: Vec<(UserId, MemberRole)> = everyone
        .iter()
        .map(|u| (u.clone(), if u == creator { MemberRole::Owner } else { MemberRole::Member }))
        .collect();
    app.channels().create(&id, ChannelKind::Group, Some(name), &roles, app.now_ms()).await.map_err(|e| match e {
        CreateChannelError::AlreadyExists => ChatError::Conflict("channel id collision; try again".into()),
        CreateChannelError::Store(e) => e.into(),
    })?;
    info!(%creator, channel = %id, members = everyone.len(), "group created");
    channel_details(app, creator, &id).await
}

/// The direct channel of two users: a pure function of the pair, so both sides get the
/// same channel however often they open it.
pub fn direct_channel_id(a: &UserId, b: &UserId) -> ChannelId {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::digest(format!("{first}\n{second}").as_bytes());
    ChannelId::parse(format!("d-{}", &hex::encode(digest)[..40])).expect("hex ids are valid channel ids")
}

pub async fn open_direct(app: &App, me: &UserId, other: &UserId) -> Result<ChannelView, ChatError> {
    if me == other {
        return Err(ChatError::InvalidRequest("a direct channel needs another user".into()));
    }
    require_users_exist(app, std::slice::from_ref(other)).await?;
    let id = direct_channel_id(me, other);
    let members = [(me.clone(), MemberRole::Member), (other.clone(), MemberRole::Member)];
    match app.channels().create(&id, ChannelKind::Direct, None, &members, app.now_ms()).await {
        Ok(()) => info!(%me, %other, channel = %id, "direct channel opened"),
        Err(CreateChannelError::AlreadyExists) => {}
        Err(CreateChannelError::Store(e)) => return Err(e.into()),
    }
    channel_details(app, me, &id).await
}

pub async fn channel_details(app: &App, user: &UserId, channel: &ChannelId) -> Result<ChannelView, ChatError> {
    Ok(ChannelView::from_roster(roster_for_member(app, user, channel).await?))
}

fn may_manage(role: MemberRole) -> bool {
    matches!(role, MemberRole::Owner | MemberRole::Admin)
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
    if !may_manage(actor_role) {
        return Err(ChatError::Forbidden("only the owner or an admin can add members".into()));
    }
    if role == MemberRole::Owner || (role == MemberRole::Admin && actor_role != MemberRole::Owner) {
        return Err(ChatError::Forbidden("only the owner can make admins, and a group has one owner".into()));
    }
    let mut new: Vec<UserId> = Vec::new();
    for user in users {
        if !roster.is_member(&user) && !new.contains(&user) {
            new.push(user);
        }
    }
    if roster.members.len() + new.len() > MAX_CHANNEL_MEMBERS {
        return Err(too_many());
    }
    require_users_exist(app, &new).await?;
    let entries: Vec<(UserId, MemberRole)> = new.iter().map(|u| (u.clone(), role)).collect();
    match app.channels().add_members(channel, &entries, MAX_CHANNEL_MEMBERS as u64, app.now_ms()).await {
        Ok(()) => {}
        Err(MembershipChangeError::Refused) => return Err(too_many()),
        Err(MembershipChangeError::Raced) => {
            return Err(ChatError::Conflict("the members changed at the same time; try again".into()));
        }
        Err(MembershipChangeError::Store(e)) => return Err(e.into()),
    }
    info!(%actor, %channel, added = new.len(), "members added");
    channel_details(app, actor, channel).await
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
    if actor != user {
        let allowed = match actor_role {
            MemberRole::Owner => true,
            MemberRole::Admin => target.role == MemberRole::Member,
            MemberRole::Member => false,
        };
        if !allowed {
            return Err(ChatError::Forbidden("you cannot remove this member".into()));
        }
    }
    let successor = if target.role == MemberRole::Owner {
        let mut others: Vec<_> = roster.members.iter().filter(|m| &m.user_id != user).collect();
        others.sort_by_key(|m| (m.role != MemberRole::Admin, m.joined_at, m.user_id.clone()));
        others.first().map(|m| m.user_id.clone())
    } else {
        None
    };
    match app.channels().remove_member(channel, user, successor.as_ref()).await {
        Ok(()) => {}
        Err(MembershipChangeError::Refused | MembershipChangeError::Raced) => {
            return Err(ChatError::Conflict("the members changed at the same time; try again".into()));
        }
        Err(MembershipChangeError::Store(e)) => return Err(e.into()),
    }
    info!(%actor, %channel, removed = %user, "member removed");
    Ok(())
}

/// Mutes (no pushes) or unmutes a channel for the caller.
pub async fn set_muted(app: &App, user: &UserId, channel: &ChannelId, muted: bool) -> Result<(), ChatError> {
    roster_for_member(app, user, channel).await?;
    app.channels().set_muted(channel, user, muted).await?;
    Ok(())
}

/// The caller's channels, most recently active first.
pub async fn list_channels(app: &App, user: &UserId) -> Result<Vec<ChannelSummary>, ChatError> {
    let memberships = app.channels().memberships(user).await?;
    let ids: Vec<ChannelId> = memberships.iter().map(|m| m.channel_id.clone()).collect();
    let metas: std::collections::HashMap<ChannelId, ChannelMeta> =
        app.channels().metas(&ids).await?.into_iter().map(|m| (m.id.clone(), m)).collect();
    let mut summaries: Vec<ChannelSummary> = memberships
        .into_iter()
        .filter_map(|membership| {
            let meta = metas.get(&membership.channel_id)?;
            Some(ChannelSummary {
                channel_id: meta.id.clone(),
                kind: meta.kind,
                name: meta.name.clone(),
                peer: meta.pair.iter().find(|u| *u != user).cloned(),
                role: membership.role,
                member_count: meta.member_count,
                seq: meta.seq,
                last_message_id: (meta.seq > 0).then_some(meta.last_message_id),
                unread: meta.unread_after(membership.last_read_seq),
                muted: membership.muted,
                last_read_seq: membership.last_read_seq,
            })
        })
        .collect();
    summaries.sort_by(|a, b| b.last_message_id.cmp(&a.last_message_id).then(a.channel_id.cmp(&b.channel_id)));
    Ok(summaries)
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
