//! Reactions: a member's emoji on a message. One of each emoji per member, at most
//! [`crate::settings::Settings::max_reactions_per_message`] distinct emoji per message.
//! A reaction is not a message: no seq of its own, no unread count, no push. Each one takes
//! the channel's next change position, so a device that was away catches up through
//! `sync`'s change cursors like it does for edits and deletions.

use crate::access::roster_for_member;
use crate::app::App;
use crate::chat::claim_change;
use crate::delivery::post_all;
use crate::error::{ChatError, PortError};
use crate::ids::MessageId;
use crate::model::{ChannelId, ConnectionId, Emoji, Message, UserId};
use crate::ports::{ReactionWrite, Reactions, Roster};
use crate::protocol::ServerFrame;
use crate::push;
use tracing::warn;

/// Add or take back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reacting {
    Add,
    Remove,
}

/// Adds or removes `user`'s `emoji` on a message; every member's live connections but
/// `origin` get the `reaction` event, `origin` gets it as the answer. When nothing changes
/// (the reaction was already there, or already gone) nothing is written and nobody is told.
pub async fn react(
    app: &App,
    user: &UserId,
    origin: &ConnectionId,
    channel_id: &ChannelId,
    message_id: MessageId,
    emoji: Emoji,
    how: Reacting,
) -> Result<ServerFrame, ChatError> {
    // One round trip: whether the user may, the message, and its reactions now. Nothing
    // read is used before membership is confirmed.
    let ids = [message_id];
    let (roster, message, current) = tokio::join!(
        roster_for_member(app, user, channel_id),
        app.messages().get(channel_id, message_id),
        app.reactions().of(channel_id, &ids)
    );
    let roster = roster?;
    let message =
        message?.ok_or_else(|| ChatError::NotFound(format!("no message {message_id} in channel {channel_id}")))?;
    if message.deleted {
        return Err(ChatError::Conflict(format!("message {message_id} was deleted")));
    }
    let current = current?.remove(&message_id).unwrap_or_default();
    let adding = how == Reacting::Add;
    if current.has(&emoji, user) == adding {
        return Ok(event(&message, user, &emoji, adding, &current, None));
    }
    let max_emoji = app.settings.max_reactions_per_message;
    if adding && !current.by_emoji.contains_key(&emoji) && current.by_emoji.len() >= max_emoji {
        return Err(too_many(max_emoji));
    }
    // A concurrent reaction to the same message that claimed later but wrote first makes
    // this one claim again: the message's reactions move to greater positions only.
    for _ in 0..MAX_CLAIMS {
        let change = claim_change(app, channel_id).await?;
        let now = app.now_ms();
        let written = match how {
            Reacting::Add => app.reactions().add(&message, user, &emoji, max_emoji, change, now).await?,
            Reacting::Remove => app.reactions().remove(&message, user, &emoji, change, now).await?,
        };
        return match written {
            ReactionWrite::Changed(reactions) => {
                let frame = event(&message, user, &emoji, adding, &reactions, Some(change));
                tell(app, &roster, origin, &message, &frame).await;
                Ok(frame)
            }
            // Another device of the user got there in between: its change is the news. The
            // position claimed here stays unused (sync steps over it).
            ReactionWrite::Unchanged(reactions) => Ok(event(&message, user, &emoji, adding, &reactions, None)),
            ReactionWrite::TooManyEmoji => Err(too_many(max_emoji)),
            ReactionWrite::Outdated => continue,
        };
    }
    Err(PortError::Contended(format!("the reactions to message {message_id} kept changing")).into())
}

/// Claims one reaction may make when concurrent ones keep writing first.
const MAX_CLAIMS: usize = 5;

/// Posts the `reaction` event to every live connection of the channel but `origin`; and,
/// when the deployment pushes reactions, pushes an added one to the message's author if
/// they have no live connection and have not muted the channel.
async fn tell(app: &App, roster: &Roster, origin: &ConnectionId, message: &Message, frame: &ServerFrame) {
    let ServerFrame::Reaction { user_id: reactor, emoji, added, .. } = frame else { return };
    let crate::connections::Reach { connections: live, do_not_disturb } =
        match crate::connections::reach(app, &roster.member_ids()).await {
            Ok(reach) => reach,
            Err(err) => return warn!(error = %err, "presence lookup failed; nobody gets the reaction event"),
        };
    let author = &message.author_id;
    let push_author = app.settings.push_reactions_to_author
        && *added
        && author != reactor
        && roster.member(author).is_some_and(|m| !m.muted)
        && !do_not_disturb.contains(author)
        && !live.iter().any(|(user, _)| user == author);
    let notification = push::reaction_notification(reactor, emoji, message, roster.meta.name.as_deref());
    let to_push = if push_author { vec![author.clone()] } else { Vec::new() };
    let frame = frame.to_json();
    tokio::join!(post_all(app, live, Some(origin), &frame), push::publish(app, &to_push, &notification));
}

fn event(
    message: &Message,
    user: &UserId,
    emoji: &Emoji,
    added: bool,
    reactions: &Reactions,
    change_seq: Option<u64>,
) -> ServerFrame {
    ServerFrame::Reaction {
        channel_id: message.channel_id.clone(),
        message_id: message.message_id,
        seq: message.seq,
        user_id: user.clone(),
        emoji: emoji.clone(),
        added,
        // The same frame goes to everyone: no `me`.
        reactions: reactions.counts(None),
        change_seq,
    }
}

fn too_many(max_emoji: usize) -> ChatError {
    ChatError::Conflict(format!("a message can have at most {max_emoji} different reactions"))
}
