//! Consent: nobody becomes a member of a channel they did not agree to, and anyone can
//! stop someone from reaching them.
//!
//! Adding someone to a group, or opening a direct channel with them, sends an invitation;
//! they join when they accept it (or, for a direct channel, open it themselves). Until
//! then nothing from that channel reaches them: no messages, pushes or presence. An
//! invitation to someone who does not exist, who blocks the inviter, or whose inbox is
//! full is dropped without a word, so the inviter learns nothing either way (user names
//! cannot be enumerated through invitations).
//!
//! There is no address book, so nobody may add anyone directly; that is the rule a
//! stranger cannot get around.

use std::collections::HashSet;

use tracing::info;

use crate::app::App;
use crate::error::ChatError;
use crate::http::Invitation;
use crate::model::{ChannelId, ChannelKind, MAX_CHANNEL_MEMBERS, MemberRole, UserId};
use crate::ports::{JoinError, Seat};

/// Pending invitations one user can hold; more are dropped until they answer some.
pub const MAX_PENDING_INVITATIONS: usize = 100;
/// An invitation nobody answered lapses after this long.
pub const INVITATION_TTL_MS: i64 = 14 * 24 * 60 * 60 * 1000;
/// Users one user can block.
pub const MAX_BLOCKED_USERS: usize = 1000;
/// Channels one user can be in; joining or starting one more is refused.
pub const MAX_CHANNELS_PER_USER: usize = 1000;

/// Refuses when `user` is in as many channels as allowed. Only joining and creating ask
/// (one COUNT Query); nothing that runs per message does.
pub async fn require_room_for_a_channel(app: &App, user: &UserId) -> Result<(), ChatError> {
    if app.channels().membership_count(user).await? >= MAX_CHANNELS_PER_USER {
        return Err(ChatError::Conflict(format!(
            "you are in {MAX_CHANNELS_PER_USER} channels, the most allowed; leave one first"
        )));
    }
    Ok(())
}
/// Invitations written at once (one UpdateItem each).
const OFFER_CONCURRENCY: usize = 16;

/// Invites `invitees` to `channel` on behalf of `inviter`, silently leaving out whoever
/// does not exist, blocks the inviter, or has a full inbox. Work: one BatchGetItem of
/// accounts and one of block lists per 100 invitees, then one UpdateItem per invitation.
pub async fn invite(
    app: &App,
    inviter: &UserId,
    channel: &ChannelId,
    kind: ChannelKind,
    name: Option<&str>,
    role: MemberRole,
    invitees: &[UserId],
) -> Result<(), ChatError> {
    if invitees.is_empty() {
        return Ok(());
    }
    let (users, blocks) = (app.users(), app.blocks());
    let (existing, blocking) = futures::try_join!(users.existing(invitees), blocks.blocking(invitees, inviter))?;
    let invitation = Invitation {
        channel_id: channel.clone(),
        kind,
        name: name.map(str::to_owned),
        invited_by: inviter.clone(),
        role,
        invited_at: app.now_ms(),
    };
    let reachable: Vec<&UserId> =
        invitees.iter().filter(|u| existing.contains(*u) && !blocking.contains(*u) && *u != inviter).collect();
    use futures::StreamExt;
    let inbox = app.invitations();
    let offers: Vec<_> =
        reachable.into_iter().map(|invitee| inbox.offer(invitee, &invitation, MAX_PENDING_INVITATIONS)).collect();
    let offered: Vec<Result<bool, _>> =
        futures::stream::iter(offers).buffer_unordered(OFFER_CONCURRENCY).collect().await;
    let mut sent = 0;
    for result in offered {
        sent += usize::from(result?);
    }
    info!(%inviter, %channel, asked = invitees.len(), sent, "invitations");
    Ok(())
}

/// The user's pending invitations, oldest first. Lapsed ones are removed on the way.
pub async fn pending(app: &App, user: &UserId) -> Result<Vec<Invitation>, ChatError> {
    let now = app.now_ms();
    let (live, lapsed): (Vec<Invitation>, Vec<Invitation>) =
        app.invitations().pending(user).await?.into_iter().partition(|i| i.invited_at + INVITATION_TTL_MS > now);
    let lapsed: Vec<ChannelId> = lapsed.into_iter().map(|i| i.channel_id).collect();
    app.invitations().withdraw(user, &lapsed).await?;
    Ok(live)
}

/// Accepts an invitation: the user joins with the role they were invited with.
pub async fn accept(app: &App, user: &UserId, channel: &ChannelId) -> Result<(), ChatError> {
    let not_invited = || ChatError::NotFound(format!("no pending invitation to channel {channel}"));
    let invitation =
        pending(app, user).await?.into_iter().find(|i| &i.channel_id == channel).ok_or_else(not_invited)?;
    require_room_for_a_channel(app, user).await?;
    let max_members = match invitation.kind {
        ChannelKind::Group => MAX_CHANNEL_MEMBERS as u64,
        ChannelKind::Direct => 2,
    };
    let seat = Seat { role: invitation.role, kind: invitation.kind, max_members };
    let joined = app.channels().join(channel, user, seat, true, app.now_ms()).await;
    match joined {
        Ok(()) => {}
        Err(JoinError::AlreadyMember) => app.invitations().withdraw(user, std::slice::from_ref(channel)).await?,
        Err(JoinError::NotInvited) => return Err(not_invited()),
        Err(JoinError::Full) => {
            return Err(ChatError::Conflict(format!("channel {channel} is full or gone; the invitation stays")));
        }
        Err(JoinError::Raced) => {
            return Err(ChatError::Conflict("the channel changed at the same time; try again".into()));
        }
        Err(JoinError::Port(e)) => return Err(e.into()),
    }
    info!(%user, %channel, "invitation accepted");
    Ok(())
}

pub async fn decline(app: &App, user: &UserId, channel: &ChannelId) -> Result<(), ChatError> {
    app.invitations().withdraw(user, std::slice::from_ref(channel)).await?;
    info!(%user, %channel, "invitation declined");
    Ok(())
}

/// Blocks `target`: they can no longer invite `user`, open a direct channel with them, or
/// see their presence. Pending invitations from `target` go. Nothing tells `target`.
pub async fn block(app: &App, user: &UserId, target: &UserId) -> Result<(), ChatError> {
    if user == target {
        return Err(ChatError::InvalidRequest("you cannot block yourself".into()));
    }
    if !app.blocks().block(user, target, MAX_BLOCKED_USERS).await? {
        return Err(ChatError::InvalidRequest(format!("you can block at most {MAX_BLOCKED_USERS} users")));
    }
    let from_target: Vec<ChannelId> = app
        .invitations()
        .pending(user)
        .await?
        .into_iter()
        .filter(|i| &i.invited_by == target)
        .map(|i| i.channel_id)
        .collect();
    app.invitations().withdraw(user, &from_target).await?;
    Ok(())
}

pub async fn unblock(app: &App, user: &UserId, target: &UserId) -> Result<(), ChatError> {
    app.blocks().unblock(user, target).await?;
    Ok(())
}

pub async fn blocked(app: &App, user: &UserId) -> Result<Vec<UserId>, ChatError> {
    Ok(app.blocks().of(user).await?)
}

/// `users` without repeats, in their first order: linear time, whatever the list.
pub fn distinct(users: Vec<UserId>) -> Vec<UserId> {
    let mut seen = HashSet::with_capacity(users.len());
    users.into_iter().filter(|u| seen.insert(u.clone())).collect()
}
