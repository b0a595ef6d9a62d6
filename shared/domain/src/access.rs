//! Who may read, write and manage: every "may this user…" of the product, answered here
//! and nowhere else. Refusals read the same whether a channel does not exist or the user
//! is not in it, so channel ids cannot be probed.

use crate::app::App;
use crate::error::ChatError;
use crate::model::{ChannelId, ChannelKind, MemberRole, Message, UserId};
use crate::ports::{ChannelMeta, Roster};

/// The refusal for anyone who is not a member of `channel` (or asks for one that does not
/// exist).
pub fn not_a_member(channel: &ChannelId) -> ChatError {
    ChatError::Forbidden(format!("you are not a member of channel {channel}"))
}

/// The roster of a channel `user` belongs to: members may read it, send to it, and see
/// who is in it.
pub async fn roster_for_member(app: &App, user: &UserId, channel: &ChannelId) -> Result<Roster, ChatError> {
    app.channels().roster(channel).await?.filter(|roster| roster.is_member(user)).ok_or_else(|| not_a_member(channel))
}

/// The meta record of a channel `user` belongs to (one read of two records, for history).
pub async fn meta_for_member(app: &App, user: &UserId, channel: &ChannelId) -> Result<ChannelMeta, ChatError> {
    let (meta, is_member) = app.channels().meta_for_member(channel, user).await?;
    meta.filter(|_| is_member).ok_or_else(|| not_a_member(channel))
}

/// Owners and admins manage a group: they add and remove members.
pub fn may_manage(role: MemberRole) -> bool {
    matches!(role, MemberRole::Owner | MemberRole::Admin)
}

/// Who may add members with `role`: owners and admins; only the owner makes admins, and a
/// group has one owner.
pub fn may_add(actor: MemberRole, role: MemberRole) -> Result<(), ChatError> {
    if !may_manage(actor) {
        return Err(ChatError::Forbidden("only the owner or an admin can add members".into()));
    }
    if role == MemberRole::Owner || (role == MemberRole::Admin && actor != MemberRole::Owner) {
        return Err(ChatError::Forbidden("only the owner can make admins, and a group has one owner".into()));
    }
    Ok(())
}

/// Who may remove `target` from a group: anyone themselves (leaving); the owner anyone;
/// an admin plain members only.
pub fn may_remove(actor: &UserId, actor_role: MemberRole, target: &UserId, target_role: MemberRole) -> bool {
    actor == target
        || match actor_role {
            MemberRole::Owner => true,
            MemberRole::Admin => target_role == MemberRole::Member,
            MemberRole::Member => false,
        }
}

/// Who may delete `message`: its author, or a group's owner or admins. Answers the author
/// the store must still find on the message (`Some(user)`: only their own may go), or
/// `None` for a moderator (anyone's).
pub fn may_delete<'a>(roster: &Roster, user: &'a UserId, message: &Message) -> Result<Option<&'a UserId>, ChatError> {
    if message.author_id == *user {
        return Ok(Some(user));
    }
    let moderator = roster.meta.kind == ChannelKind::Group && roster.member(user).is_some_and(|m| may_manage(m.role));
    if moderator {
        Ok(None)
    } else {
        Err(ChatError::Forbidden("only the author (or a group's owner or admins) can delete a message".into()))
    }
}

/// The members a message may mention: each at most once, every one a member of the
/// channel (a mention pushes through a mute, so it is only for people in the channel).
pub fn mentionable(roster: &Roster, mut mentions: Vec<UserId>) -> Result<Vec<UserId>, ChatError> {
    mentions.sort();
    mentions.dedup();
    if let Some(stranger) = mentions.iter().find(|m| roster.member(m).is_none()) {
        return Err(ChatError::InvalidRequest(format!(
            "{stranger} is not a member of channel {}; only members can be mentioned",
            roster.meta.id
        )));
    }
    Ok(mentions)
}

/// Keys of uploads are `uploads/{channelId}/{userId}/{random}/{file name}`: the channel
/// and uploader are in the key, which is what makes these checks free.
pub fn upload_prefix(channel: &ChannelId, user: &UserId) -> String {
    format!("uploads/{channel}/{user}/")
}

/// A message may name only its sender's own uploads into its channel.
pub fn may_attach(key: &str, channel: &ChannelId, sender: &UserId) -> bool {
    key.starts_with(&upload_prefix(channel, sender)) && !key.contains("..")
}

/// A member may download any file of the channel.
pub fn is_channel_file(key: &str, channel: &ChannelId) -> bool {
    key.starts_with(&format!("uploads/{channel}/")) && !key.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn only_the_owner_makes_admins_and_nobody_makes_owners() {
        assert!(may_add(MemberRole::Owner, MemberRole::Admin).is_ok());
        assert!(may_add(MemberRole::Admin, MemberRole::Member).is_ok());
        assert!(may_add(MemberRole::Admin, MemberRole::Admin).is_err());
        assert!(may_add(MemberRole::Owner, MemberRole::Owner).is_err());
        assert!(may_add(MemberRole::Member, MemberRole::Member).is_err());
    }

    #[test]
    fn admins_remove_members_only_and_anyone_may_leave() {
        let (a, b) = (user("a"), user("b"));
        assert!(may_remove(&a, MemberRole::Admin, &b, MemberRole::Member));
        assert!(!may_remove(&a, MemberRole::Admin, &b, MemberRole::Admin));
        assert!(!may_remove(&a, MemberRole::Admin, &b, MemberRole::Owner));
        assert!(may_remove(&a, MemberRole::Owner, &b, MemberRole::Admin));
        assert!(!may_remove(&a, MemberRole::Member, &b, MemberRole::Member));
        assert!(may_remove(&a, MemberRole::Member, &a, MemberRole::Member));
    }

    #[test]
    fn attachments_must_be_the_senders_own_uploads_in_the_channel() {
        let (c, alice) = (ChannelId::parse("c1").unwrap(), user("alice"));
        assert!(may_attach("uploads/c1/alice/abc/photo.jpg", &c, &alice));
        assert!(!may_attach("uploads/c1/bob/abc/photo.jpg", &c, &alice));
        assert!(!may_attach("uploads/c2/alice/abc/photo.jpg", &c, &alice));
        assert!(!may_attach("uploads/c1/alice/../bob/x", &c, &alice));
        assert!(is_channel_file("uploads/c1/bob/abc/photo.jpg", &c));
        assert!(!is_channel_file("uploads/c10/bob/abc/photo.jpg", &c));
    }
}
