//! Wire values that can only hold valid data ("parse, don't validate"): ids, message text,
//! the message object and its attachments.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ids::MessageId;

/// Longest message text, in characters. The frame that carries it must also fit API Gateway's
/// 128 KB message limit, which [`crate::frames::MAX_FRAME_BYTES`] checks.
pub const MAX_TEXT_CHARS: usize = 100_000;
/// Largest channel (API Gateway-independent product limit; also BatchGetItem's key limit,
/// which keeps the fan-out lookup to one request).
pub const MAX_CHANNEL_MEMBERS: usize = 100;

macro_rules! key_safe_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// 1 to
            #[doc = stringify!($max)]
            /// characters of `A-Z a-z 0-9 _ - .`: safe inside composite DynamoDB keys.
            pub fn parse(raw: impl Into<String>) -> Result<Self, ProtocolError> {
                let raw = raw.into();
                let valid = !raw.is_empty()
                    && raw.len() <= $max
                    && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if valid {
                    Ok(Self(raw))
                } else {
                    Err(ProtocolError::invalid(format!(
                        concat!($what, " must be 1-{} characters of letters, digits, '_', '-' or '.'"),
                        $max
                    )))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

key_safe_id!(
    /// A user, as named by the token's `sub` claim.
    UserId, "userId", 64
);
key_safe_id!(
    /// A channel (direct or group).
    ChannelId, "channelId", 64
);
key_safe_id!(
    /// The client's own id for a send, so a retried send is recognised.
    ClientMsgId, "clientMsgId", 64
);
key_safe_id!(
    /// A voice or video call (made by the server when it starts).
    CallId, "callId", 64
);

/// An API Gateway connection id. Opaque: AWS makes them (base64, so `=`, `/`, `+` occur).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(String);

impl ConnectionId {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Message text: not blank, at most [`MAX_TEXT_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(raw: String) -> Result<Self, ProtocolError> {
        if raw.trim().is_empty() {
            return Err(ProtocolError::invalid("text must not be empty"));
        }
        let chars = raw.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(ProtocolError::too_large(format!(
                "text has {chars} characters; the limit is {MAX_TEXT_CHARS}"
            )));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Direct,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Owner,
    Admin,
    Member,
}

/// A stored message as clients see it (live events, acks and history share this shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    /// Position in the channel: 1, 2, 3... with no gaps, in id order. Lets a client see that
    /// it missed something and put live events that overtook each other back in order.
    pub seq: u64,
    pub author_id: UserId,
    /// Empty once deleted.
    pub text: String,
    pub client_msg_id: ClientMsgId,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// A deleted message keeps its id and place; its text and attachments are gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The channel's change position of this message's latest edit or deletion (changes
    /// are numbered 1, 2, 3… per channel): what `sync` with `changes` cursors is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_seq: Option<u64>,
    /// The message this one answers, as it was when the reply was sent (history and sync
    /// show it as it now is: deleted, or edited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Quote>,
    /// Members the message mentions: they are pushed even when they muted the channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    /// Reactions, one entry per emoji, in history and sync (never stored with the message:
    /// a reaction writes only its own small item).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionCount>,
    /// A call entry: the channel's record of a call that ended (then `text` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<crate::calls::CallEntry>,
}

/// Longest quote of the answered message a reply carries, in characters.
pub const QUOTE_CHARS: usize = 100;

/// What a reply shows of the message it answers, so a reader needs no second read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    pub message_id: MessageId,
    pub author_id: UserId,
    /// The first [`QUOTE_CHARS`] characters of its text; empty once it is deleted.
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl Quote {
    pub fn of(message: &Message) -> Self {
        Self {
            message_id: message.message_id,
            author_id: message.author_id.clone(),
            text: if message.deleted { String::new() } else { message.text.chars().take(QUOTE_CHARS).collect() },
            deleted: message.deleted,
        }
    }
}

/// An emoji reaction: 1 to 32 bytes, no spaces or control characters (a single emoji,
/// with its modifiers and joiners, or a short code such as `:party:`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Emoji(String);

impl Emoji {
    pub const MAX_BYTES: usize = 32;

    pub fn parse(raw: impl Into<String>) -> Result<Self, ProtocolError> {
        let raw = raw.into();
        if raw.is_empty() || raw.len() > Self::MAX_BYTES || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ProtocolError::invalid(format!(
                "emoji must be 1-{} bytes without spaces or control characters",
                Self::MAX_BYTES
            )));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Emoji {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Emoji {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// How many members reacted to a message with one emoji, and whether the reader did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionCount {
    pub emoji: Emoji,
    pub count: u64,
    /// The reader is among them (absent in the `reaction` event, which goes to everyone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub me: bool,
}

/// A file uploaded to the channel and attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The S3 key the upload grant named.
    pub key: String,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    /// A short-lived download URL, in what clients receive (never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_key_separators_and_empty() {
        assert!(UserId::parse("alice_1.x-y").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(ChannelId::parse("a#b").is_err());
        assert!(ChannelId::parse("x".repeat(65)).is_err());
        assert!(serde_json::from_str::<ClientMsgId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<ClientMsgId>("\"no spaces\"").is_err());
    }

    #[test]
    fn emoji_are_short_and_without_spaces() {
        assert!(Emoji::parse("👍").is_ok());
        assert!(Emoji::parse("👨‍👩‍👧‍👦").is_ok());
        assert!(Emoji::parse(":party:").is_ok());
        assert!(Emoji::parse("").is_err());
        assert!(Emoji::parse("a b").is_err());
        assert!(Emoji::parse("x".repeat(33)).is_err());
    }

    #[test]
    fn a_quote_keeps_the_first_characters_and_nothing_of_a_deleted_message() {
        let message: Message = serde_json::from_str(
            r#"{"channelId":"c","messageId":"7","seq":1,"authorId":"a","text":"TEXT","clientMsgId":"m","createdAt":1}"#,
        )
        .unwrap();
        let long = Message { text: "é".repeat(150), ..message.clone() };
        assert_eq!(Quote::of(&long).text.chars().count(), QUOTE_CHARS);
        let deleted = Quote::of(&Message { deleted: true, ..message });
        assert!(deleted.deleted && deleted.text.is_empty());
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        assert!(MessageText::parse("é".repeat(MAX_TEXT_CHARS)).is_ok());
        let too_long = MessageText::parse("a".repeat(MAX_TEXT_CHARS + 1)).unwrap_err();
        assert_eq!(too_long.code, crate::ErrorCode::TooLarge);
        assert!(MessageText::parse("  \n".into()).is_err());
    }
}
