//! How the protocol's values read in the CLI's text output (the types themselves are the
//! protocol crate's: `chat_protocol`).

use chat_protocol::calls::{CallEntry, CallOutcome, Media};
use chat_protocol::frames::{CustomStatus, PresenceView, Status};
use chat_protocol::model::{ChannelKind, MemberRole, Message, QUOTE_CHARS, Quote, ReactionCount, UserId};

use crate::term;

/// How much of the answered message a reply shows (the server sends up to
/// [`QUOTE_CHARS`]; a line has room for less).
const QUOTE_SHOWN: usize = 48;

/// The text of a message as a person reads it: deleted and edited marks, and the files.
pub fn display_text(message: &Message) -> String {
    if message.deleted {
        return "(deleted)".into();
    }
    if let Some(call) = &message.call {
        return call_entry(call);
    }
    let mut text = message.text.clone();
    for file in &message.attachments {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("[file {} ({} bytes)]", file.file_name, file.size));
    }
    if message.edited_at.is_some() {
        text.push_str(" (edited)");
    }
    text
}

/// `📞 missed voice call`, `📞 video call · 1:05`: what a call entry says.
pub fn call_entry(call: &CallEntry) -> String {
    let media = match call.media {
        Media::Audio => "voice call",
        Media::Video => "video call",
    };
    match (call.outcome, call.duration_ms) {
        (CallOutcome::Answered, Some(ms)) => {
            let seconds = ms.max(0) / 1000;
            format!("📞 {media} · {}:{:02}", seconds / 60, seconds % 60)
        }
        (CallOutcome::Answered, None) => format!("📞 {media}"),
        (CallOutcome::Missed, _) => format!("📞 missed {media}"),
        (CallOutcome::Declined, _) => format!("📞 declined {media}"),
        (CallOutcome::Busy, _) => format!("📞 missed {media} (busy)"),
    }
}

/// Whether `message` mentions `me` (a deleted one no longer does).
pub fn mentions_me(message: &Message, me: Option<&UserId>) -> bool {
    !message.deleted && me.is_some_and(|me| message.mentions.contains(me))
}

/// [`display_text`] with what the reader should see besides: `(mentions you)`, then the
/// reactions (`👍 2* ❤️ 1`, `*` marking the reader's own).
pub fn message_body(message: &Message, me: Option<&UserId>) -> String {
    let mut text = display_text(message);
    if mentions_me(message, me) {
        text.push_str(" (mentions you)");
    }
    let reactions = reaction_counts(&message.reactions);
    if !reactions.is_empty() {
        text.push_str("  ");
        text.push_str(&reactions);
    }
    text
}

/// `👍 2* ❤️ 1`: each emoji with its count, `*` after the reader's own.
pub fn reaction_counts(reactions: &[ReactionCount]) -> String {
    let shown: Vec<String> = reactions
        .iter()
        .filter(|r| r.count > 0)
        .map(|r| format!("{} {}{}", r.emoji, r.count, if r.me { "*" } else { "" }))
        .collect();
    shown.join(" ")
}

/// `↪ alice: first words…` (or `↪ (deleted message)`): what a reply shows of the message
/// it answers, on one line.
pub fn quote_line(quote: &Quote) -> String {
    if quote.deleted {
        return "↪ (deleted message)".into();
    }
    let flat = quote.text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return format!("↪ {} (no text)", quote.author_id);
    }
    // The server cut a long text at QUOTE_CHARS already: that is cut too.
    let mut cut = quote.text.chars().count() >= QUOTE_CHARS;
    let mut shown: String = flat.chars().take(QUOTE_SHOWN).collect();
    if flat.chars().count() > QUOTE_SHOWN {
        cut = true;
        // End on a whole word when one ends in the second half.
        if let Some(space) = shown.rfind(' ').filter(|&at| at >= shown.len() / 2) {
            shown.truncate(space);
        }
    }
    let ellipsis = if cut { "…" } else { "" };
    format!("↪ {}: {}{ellipsis}", quote.author_id, shown.trim_end())
}

/// A message as lines: `{prefix}#12 alice: text…`, after the quote of the message it answers
/// (indented under the `#`) when it is a reply.
pub fn message_lines(prefix: &str, message: &Message, me: Option<&UserId>) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(quote) = &message.reply_to {
        lines.push(format!("{:width$}{}", "", quote_line(quote), width = prefix.chars().count()));
    }
    lines.push(format!("{prefix}#{} {}: {}", message.seq, message.author_id, message_body(message, me)));
    lines
}

/// `2026-11-23 08:25  #42 alice: hi`: a message of `chat history` (a reply: two lines,
/// its quote first).
pub fn message_line(message: &Message, me: Option<&UserId>) -> String {
    let prefix = format!("{}  ", term::format_time(message.created_at));
    message_lines(&prefix, message, me).join("\n")
}

/// `direct` or `group`, as on the wire.
pub fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Direct => "direct",
        ChannelKind::Group => "group",
    }
}

/// `owner`, `admin` or `member`, as on the wire.
pub fn role_name(role: MemberRole) -> &'static str {
    match role {
        MemberRole::Owner => "owner",
        MemberRole::Admin => "admin",
        MemberRole::Member => "member",
    }
}

/// `online`, `idle`, `dnd` or `offline`, as on the wire.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Online => "online",
        Status::Idle => "idle",
        Status::Dnd => "dnd",
        Status::Offline => "offline",
    }
}

/// A status as a sentence goes on after "bob is": `online`, `dnd (do not disturb)`…
pub fn status_phrase(status: Status) -> &'static str {
    match status {
        Status::Dnd => "dnd (do not disturb)",
        other => status_name(other),
    }
}

/// The custom status of a presence if it still shows at `now_ms` (one that lapsed is
/// not shown, whatever the frame carries).
pub fn shown_custom_status(view: &PresenceView, now_ms: i64) -> Option<&CustomStatus> {
    view.custom_status.as_ref().filter(|c| c.shows_at(now_ms) && (c.text.is_some() || c.emoji.is_some()))
}

/// `📅 In a meeting (until 14:30 UTC)`: a custom status on one line (the date is given
/// when it lapses on another day than `now_ms`).
pub fn custom_status(status: &CustomStatus, now_ms: i64) -> String {
    let mut shown: Vec<String> = Vec::new();
    if let Some(emoji) = &status.emoji {
        shown.push(emoji.to_string());
    }
    if let Some(text) = &status.text {
        shown.push(text.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let mut line = shown.join(" ");
    if let Some(at) = status.expires_at {
        let (until, today) = (term::format_time(at), term::format_time(now_ms));
        let until = if until[..10] == today[..10] { &until[11..] } else { until.as_str() };
        line.push_str(&format!(" (until {until} UTC)"));
    }
    line
}

/// `bob is dnd (do not disturb) · 📅 In a meeting`, `bob is offline (last seen …)`: a
/// user's presence as one line (without the user: `is …`, to follow a name).
pub fn presence_line(view: &PresenceView, now_ms: i64) -> String {
    let mut line = format!("{} is {}", view.user_id, status_phrase(view.status));
    if view.status == Status::Offline
        && let Some(ms) = view.last_seen
    {
        line.push_str(&format!(" (last seen {} UTC)", term::format_time(ms)));
    }
    if let Some(custom) = shown_custom_status(view, now_ms) {
        line.push_str(" · ");
        line.push_str(&custom_status(custom, now_ms));
    }
    line
}

#[cfg(test)]
mod tests {
    use chat_protocol::ids::MessageId;
    use chat_protocol::model::{Attachment, ChannelId, ClientMsgId, Emoji};

    use super::*;

    fn message(text: &str) -> Message {
        Message {
            channel_id: ChannelId::parse("g-1").unwrap(),
            message_id: MessageId::from_u64(383_171_067_025_293_312),
            seq: 42,
            author_id: UserId::parse("alice").unwrap(),
            text: text.into(),
            client_msg_id: ClientMsgId::parse("7f3c9a").unwrap(),
            created_at: 1_795_422_301_353,
            attachments: Vec::new(),
            edited_at: None,
            deleted: false,
            change_seq: None,
            reply_to: None,
            mentions: Vec::new(),
            reactions: Vec::new(),
            call: None,
        }
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn call_entries_say_how_the_call_went() {
        let entry = |media, outcome, duration_ms| CallEntry {
            call_id: chat_protocol::model::CallId::parse("call-1").unwrap(),
            media,
            outcome,
            duration_ms,
        };
        let mut call = message("");
        call.call = Some(entry(Media::Video, CallOutcome::Answered, Some(65_400)));
        assert_eq!(display_text(&call), "📞 video call · 1:05");
        call.call = Some(entry(Media::Audio, CallOutcome::Missed, None));
        assert_eq!(display_text(&call), "📞 missed voice call");
        call.call = Some(entry(Media::Audio, CallOutcome::Declined, None));
        assert_eq!(display_text(&call), "📞 declined voice call");
    }

    #[test]
    fn messages_read_with_their_marks_and_files() {
        assert_eq!(message_line(&message("hi"), None), "2026-11-23 08:25  #42 alice: hi");
        let mut edited = message("hi all");
        edited.edited_at = Some(1_795_422_360_000);
        assert_eq!(display_text(&edited), "hi all (edited)");
        let mut deleted = message("");
        deleted.deleted = true;
        assert_eq!(display_text(&deleted), "(deleted)");
        let mut files = message("");
        let file = |name: &str, size| Attachment {
            key: format!("uploads/g-1/alice/1/{name}"),
            file_name: name.into(),
            content_type: "text/plain".into(),
            size,
            url: None,
        };
        files.attachments = vec![file("a.txt", 3), file("b.txt", 4)];
        assert_eq!(display_text(&files), "[file a.txt (3 bytes)] [file b.txt (4 bytes)]");
        files.text = "notes".into();
        assert_eq!(display_text(&files), "notes [file a.txt (3 bytes)] [file b.txt (4 bytes)]");
    }

    #[test]
    fn replies_quote_mentions_are_marked_and_reactions_follow() {
        let quote = |text: &str| Quote {
            message_id: MessageId::from_u64(383_171_067_025_293_000),
            author_id: user("bob"),
            text: text.into(),
            deleted: false,
        };
        let mut reply = message("sounds good @bob");
        reply.reply_to = Some(quote("first words of a long message\nthat goes on and on and on for a while"));
        reply.mentions = vec![user("bob")];
        reply.reactions = vec![
            ReactionCount { emoji: Emoji::parse("👍").unwrap(), count: 2, me: true },
            ReactionCount { emoji: Emoji::parse("❤️").unwrap(), count: 1, me: false },
        ];
        assert_eq!(
            message_line(&reply, Some(&user("bob"))),
            "                  ↪ bob: first words of a long message that goes on and…\n\
             2026-11-23 08:25  #42 alice: sounds good @bob (mentions you)  👍 2* ❤️ 1"
        );
        // Only the mentioned reader sees the mark.
        assert_eq!(message_body(&reply, Some(&user("carol"))), "sounds good @bob  👍 2* ❤️ 1");
        assert_eq!(
            message_lines("08:25 ", &reply, None)[0],
            "      ↪ bob: first words of a long message that goes on and…"
        );

        assert_eq!(quote_line(&quote("short")), "↪ bob: short");
        assert_eq!(quote_line(&quote(&"x".repeat(QUOTE_CHARS))), format!("↪ bob: {}…", "x".repeat(QUOTE_SHOWN)));
        assert_eq!(quote_line(&Quote { deleted: true, ..quote("") }), "↪ (deleted message)");
        assert_eq!(quote_line(&quote("")), "↪ bob (no text)");
        let mut deleted = message("");
        deleted.deleted = true;
        deleted.mentions = vec![user("bob")];
        assert!(!mentions_me(&deleted, Some(&user("bob"))));
    }

    #[test]
    fn kinds_and_roles_read_as_they_travel() {
        for kind in [ChannelKind::Direct, ChannelKind::Group] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind_name(kind));
        }
        for role in [MemberRole::Owner, MemberRole::Admin, MemberRole::Member] {
            assert_eq!(serde_json::to_value(role).unwrap(), role_name(role));
        }
        for status in [Status::Online, Status::Idle, Status::Dnd, Status::Offline] {
            assert_eq!(serde_json::to_value(status).unwrap(), status_name(status));
        }
    }

    #[test]
    fn presence_reads_with_its_custom_status() {
        // 2026-11-23 08:25 UTC.
        let now = 1_795_422_301_353;
        let hour = 3_600_000;
        let view =
            |status, custom_status| PresenceView { user_id: user("bob"), status, last_seen: None, custom_status };
        let meeting = |expires_at| CustomStatus {
            text: Some("In a\n meeting".into()),
            emoji: Some(Emoji::parse("📅").unwrap()),
            expires_at,
        };
        assert_eq!(presence_line(&view(Status::Online, None), now), "bob is online");
        assert_eq!(presence_line(&view(Status::Idle, None), now), "bob is idle");
        assert_eq!(
            presence_line(&view(Status::Dnd, Some(meeting(Some(now + hour)))), now),
            "bob is dnd (do not disturb) · 📅 In a meeting (until 09:25 UTC)"
        );
        // Another day: the date too. Lapsed: not shown.
        assert_eq!(custom_status(&meeting(Some(now + 24 * hour)), now), "📅 In a meeting (until 2026-11-24 08:25 UTC)");
        assert_eq!(presence_line(&view(Status::Online, Some(meeting(Some(now - 1)))), now), "bob is online");
        let emoji_only = CustomStatus { text: None, emoji: Some(Emoji::parse(":palm:").unwrap()), expires_at: None };
        assert_eq!(custom_status(&emoji_only, now), ":palm:");
        let text_only = CustomStatus { text: Some("lunch".into()), emoji: None, expires_at: None };
        assert_eq!(custom_status(&text_only, now), "lunch");
        let mut offline = view(Status::Offline, None);
        offline.last_seen = Some(now);
        assert_eq!(presence_line(&offline, now), "bob is offline (last seen 2026-11-23 08:25 UTC)");
    }
}
