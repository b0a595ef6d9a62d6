//! How the protocol's values read in the CLI's text output (the types themselves are the
//! protocol crate's: `chat_protocol`).

use chat_protocol::model::{ChannelKind, MemberRole, Message};

use crate::term;

/// The text of a message as a person reads it: deleted and edited marks, and the files.
pub fn display_text(message: &Message) -> String {
    if message.deleted {
        return "(deleted)".into();
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

/// `2026-11-23 08:25  alice: hi`: a line of `chat history`.
pub fn message_line(message: &Message) -> String {
    format!("{}  {}: {}", term::format_time(message.created_at), message.author_id, display_text(message))
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

#[cfg(test)]
mod tests {
    use chat_protocol::ids::MessageId;
    use chat_protocol::model::{Attachment, ChannelId, ClientMsgId, UserId};

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
        }
    }

    #[test]
    fn messages_read_with_their_marks_and_files() {
        assert_eq!(message_line(&message("hi")), "2026-11-23 08:25  alice: hi");
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
    fn kinds_and_roles_read_as_they_travel() {
        for kind in [ChannelKind::Direct, ChannelKind::Group] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind_name(kind));
        }
        for role in [MemberRole::Owner, MemberRole::Admin, MemberRole::Member] {
            assert_eq!(serde_json::to_value(role).unwrap(), role_name(role));
        }
    }
}
