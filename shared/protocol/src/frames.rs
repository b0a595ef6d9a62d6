//! The WebSocket wire protocol: client frames carry `action`, server frames carry `type`.
//! docs/PROTOCOL.md is the reference for client authors, docs/asyncapi.yaml the machine-readable
//! one; this module is the truth both are checked against.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::collections::BTreeMap;

use crate::calls::{Call, IceServer, Media, Signal};
use crate::error::{ErrorCode, ProtocolError};
use crate::ids::MessageId;
use crate::model::{Attachment, CallId, ChannelId, ClientMsgId, Emoji, Message, ReactionCount, UserId};

/// API Gateway's limit for one WebSocket message, in either direction (128 KB).
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// A frame a client sends. Unknown fields are ignored so that newer clients can talk to an
/// older backend. Clients (the CLI) serialise it: optional fields that are empty are left
/// out, as docs/PROTOCOL.md shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ClientFrame {
    SendMessage {
        channel_id: ChannelId,
        client_msg_id: ClientMsgId,
        #[serde(default)]
        text: String,
        /// Files uploaded with an upload grant of this channel (`key` from the grant).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
        /// The message of this channel the new one answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<MessageId>,
        /// Members of the channel the message mentions.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<UserId>,
    },
    /// The author replaces a message's text.
    EditMessage { channel_id: ChannelId, message_id: MessageId, text: String },
    /// The author (or a group's owner or admin) deletes a message.
    DeleteMessage { channel_id: ChannelId, message_id: MessageId },
    /// Adds the caller's reaction with `emoji` to a message (one of each emoji per member).
    AddReaction { channel_id: ChannelId, message_id: MessageId, emoji: Emoji },
    /// Takes the caller's reaction with `emoji` back.
    RemoveReaction { channel_id: ChannelId, message_id: MessageId, emoji: Emoji },
    /// "I am still here": every ~30 s, keeps the user online. `idle`: nobody has used this
    /// device for a while (the web client: 5 minutes); a user whose every device is idle is
    /// shown `idle`.
    Heartbeat {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        idle: bool,
    },
    /// The user's chosen state for all their devices, and who sees when they were last
    /// online. Either may be left out.
    SetPresence {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<ChosenState>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen: Option<LastSeenTo>,
    },
    /// A custom status shown with the user's presence; without `text` and `emoji` it is
    /// cleared.
    SetStatus {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<Emoji>,
        /// When it lapses (ms since the epoch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
    },
    /// Live presence of `userIds` (or of the members of `channelId`) on this connection:
    /// answered like `getPresence`, then a `presence` frame whenever one of them changes,
    /// for 10 minutes (subscribe again to renew) or until the connection ends.
    SubscribePresence {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        user_ids: Vec<UserId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel_id: Option<ChannelId>,
    },
    /// Ends this connection's subscriptions to `userIds`.
    UnsubscribePresence { user_ids: Vec<UserId> },
    /// Relayed to the channel's other members, never stored.
    Typing { channel_id: ChannelId, state: TypingState },
    /// "I have read up to this message" (only ever moves forward).
    MarkRead { channel_id: ChannelId, message_id: MessageId },
    /// Presence of the members of `channelId` (a channel the caller is in), or of
    /// `userIds` (answered for people the caller has a direct channel with; anyone else
    /// looks like an unknown user: offline, never seen).
    GetPresence {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        user_ids: Vec<UserId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel_id: Option<ChannelId>,
    },
    /// Catch up after being offline: every message newer than the cursors.
    Sync {
        /// Per channel: the newest message id the device has.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        channels: BTreeMap<ChannelId, MessageId>,
        /// One cursor for every channel not in `channels`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<MessageId>,
        /// At most this many messages in this answer (capped by the server's limit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        /// Per channel: the change position up to which the device has every edit and
        /// deletion (`upToChange` of the last sync, or the channel list's `changeSeq` when
        /// it loaded the channel). Messages changed since come in the `messages` frames as
        /// they now are, however old.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        changes: BTreeMap<ChannelId, u64>,
    },
    /// Calls the other member of a direct channel: every live device of theirs rings
    /// (`incomingCall`), the offline ones get a push.
    StartCall { channel_id: ChannelId, media: Media },
    /// The callee's device answers; the callee's other devices stop ringing.
    AcceptCall { call_id: CallId },
    /// The callee's device refuses a ringing call.
    DeclineCall { call_id: CallId },
    /// The caller cancels a ringing call (or its ring time passed), or either side hangs up.
    EndCall { call_id: CallId },
    /// WebRTC signalling for the other side of an answered call, relayed as it is (a JSON
    /// object, checked by [`Signal::parse`]).
    CallSignal { call_id: CallId, signal: Value },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypingState {
    Start,
    Stop,
}

impl ClientFrame {
    pub const ACTIONS: &'static [&'static str] = &[
        "sendMessage",
        "editMessage",
        "deleteMessage",
        "addReaction",
        "removeReaction",
        "heartbeat",
        "setPresence",
        "setStatus",
        "subscribePresence",
        "unsubscribePresence",
        "typing",
        "markRead",
        "getPresence",
        "sync",
        "startCall",
        "acceptCall",
        "declineCall",
        "endCall",
        "callSignal",
    ];

    /// Parses a frame body: once, when it is a well-formed frame. Anything else is read
    /// again as a JSON value, which tells apart "not JSON", "no such action" and "bad
    /// fields" (and, as before, lets a repeated key's last value win).
    pub fn parse(body: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(body).or_else(|_| Self::parse_value(body))
    }

    fn parse_value(body: &str) -> Result<Self, ProtocolError> {
        let value: Value =
            serde_json::from_str(body).map_err(|e| ProtocolError::invalid(format!("frame is not valid JSON: {e}")))?;
        let action = match value.get("action") {
            Some(Value::String(action)) => action.clone(),
            Some(_) => {
                return Err(ProtocolError::invalid("\"action\" must be a string"));
            }
            None if value.is_object() => {
                return Err(ProtocolError::invalid("frame has no \"action\" field"));
            }
            None => {
                return Err(ProtocolError::invalid("frame must be a JSON object"));
            }
        };
        if !Self::ACTIONS.contains(&action.as_str()) {
            return Err(ProtocolError::invalid(format!(
                "unknown action \"{action}\"; known actions: {}",
                Self::ACTIONS.join(", ")
            )));
        }
        serde_json::from_value(value).map_err(|e| ProtocolError::invalid(format!("invalid {action} frame: {e}")))
    }
}

/// What the server sends: answers to a client's frame and events pushed to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ServerFrame {
    /// The answer to `sendMessage`: the message as stored (same id for a retried send).
    Ack { client_msg_id: ClientMsgId, message: Message },
    /// A new message in one of the user's channels.
    Message { message: Message },
    /// A message was edited: the message as it now is (to members, and the answer to
    /// `editMessage`).
    MessageUpdated { message: Message },
    /// A message was deleted: it keeps its place, its content is gone.
    MessageDeleted {
        channel_id: ChannelId,
        message_id: MessageId,
        seq: u64,
        /// The deletion's change position in the channel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        change_seq: Option<u64>,
    },
    /// A member added or removed a reaction: to every member, and the answer to
    /// `addReaction` and `removeReaction`. `reactions`: the message's reactions now.
    Reaction {
        channel_id: ChannelId,
        message_id: MessageId,
        seq: u64,
        user_id: UserId,
        emoji: Emoji,
        added: bool,
        reactions: Vec<ReactionCount>,
        /// The reaction's change position in the channel (absent when nothing changed:
        /// the reaction was already there, or already gone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        change_seq: Option<u64>,
    },
    /// A user this connection subscribed to changed state or custom status (and the
    /// answer to `setPresence` and `setStatus`: the user as others now see them).
    Presence(PresenceView),
    /// The answer to `getPresence`.
    PresenceState { users: Vec<PresenceView> },
    /// Someone started or stopped typing in a channel (show it for ~5 s at most unless
    /// renewed: a `stop` can be lost).
    Typing { channel_id: ChannelId, user_id: UserId, state: TypingState },
    /// A member read a channel up to a message: to the other members, to the reader's other
    /// devices (their unread count for the channel drops to the messages after `seq`, less
    /// deleted ones), and as the answer to `markRead`.
    Receipt { channel_id: ChannelId, user_id: UserId, message_id: MessageId, seq: u64 },
    /// Part of a `sync` answer: missed messages of one channel, oldest first.
    Messages { channel_id: ChannelId, messages: Vec<Message> },
    /// The end of a `sync` answer.
    Synced { channels: Vec<SyncedChannel> },
    /// The answer to `startCall`: the callee's devices are ringing.
    CallStarted { call: Call, ice_servers: Vec<IceServer> },
    /// To every live device of the callee: ring until `call.ringUntil`.
    IncomingCall { call: Call, ice_servers: Vec<IceServer> },
    /// A device of the callee answered: to the caller's device, the callee's other devices
    /// (they stop ringing), and as the answer to `acceptCall` (with the ICE servers, for a
    /// device that answers from a push and never got `incomingCall`).
    CallAccepted {
        call: Call,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// The call is over (`call.outcome` says how): to every device taking part or ringing,
    /// and the answer to `declineCall` and `endCall` (and to `startCall` when the callee is
    /// busy).
    CallEnded { call: Call },
    /// Signalling from the other side of the call.
    CallSignal { call_id: CallId, signal: Signal },
    /// The answer to any frame that failed; nothing was stored.
    Error(ErrorBody),
}

/// What others see of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    /// Online, but every device has been idle for a while.
    Idle,
    /// Online and not to be disturbed: no pushes.
    Dnd,
    Offline,
}

/// The state a user chooses for all their devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChosenState {
    /// Online or idle, as the devices are used.
    Online,
    Dnd,
    /// Looks offline to everyone else; everything else works.
    Invisible,
}

/// Who sees when a user was last online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LastSeenTo {
    /// The people who may see the user's presence at all (they share a channel).
    Contacts,
    Nobody,
}

/// A short text and an emoji shown with a user's presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<Emoji>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl CustomStatus {
    /// Longest custom status text, in characters.
    pub const MAX_TEXT_CHARS: usize = 100;

    /// A status from its parts: `None` when it says nothing (it is cleared).
    pub fn parse(
        text: Option<String>,
        emoji: Option<Emoji>,
        expires_at: Option<i64>,
    ) -> Result<Option<Self>, ProtocolError> {
        let text = text.filter(|t| !t.trim().is_empty());
        if let Some(text) = &text {
            let chars = text.chars().count();
            if chars > Self::MAX_TEXT_CHARS {
                return Err(ProtocolError::too_large(format!(
                    "a custom status has {chars} characters; the limit is {}",
                    Self::MAX_TEXT_CHARS
                )));
            }
            if text.chars().any(char::is_control) {
                return Err(ProtocolError::invalid("a custom status is one line without control characters"));
            }
        }
        if text.is_none() && emoji.is_none() {
            return Ok(None);
        }
        Ok(Some(Self { text, emoji, expires_at }))
    }

    /// Whether it still shows at `now_ms`.
    pub fn shows_at(&self, now_ms: i64) -> bool {
        self.expires_at.is_none_or(|at| at > now_ms)
    }
}

/// One user's presence, as frames carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceView {
    pub user_id: UserId,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_status: Option<CustomStatus>,
}

/// How far a `sync` got in one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncedChannel {
    pub channel_id: ChannelId,
    /// Messages sent for this channel in `messages` frames.
    pub sent: usize,
    /// Everything up to this seq has been sent (or was already on the device).
    pub up_to_seq: u64,
    /// False when the limit was reached: sync again from `nextAfter`, or page history.
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<MessageId>,
    /// When the request named a change cursor for this channel: every edit and deletion up
    /// to this change position has been sent (or was already on the device); the next
    /// sync's cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_change: Option<u64>,
}

/// The body of an `error` frame, and of every HTTP error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// The action of the frame that failed, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Echoed so a client can match the error to the send it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        Self { code, message: message.into(), action: None, client_msg_id: None, retry_after_ms }
    }

    /// Adds what can be read of the failed frame, so the client can match the answer.
    pub fn about_frame(mut self, body: &str) -> Self {
        if let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(body) {
            self.action = frame.get("action").and_then(Value::as_str).map(str::to_owned);
            self.client_msg_id = frame.get("clientMsgId").and_then(Value::as_str).map(str::to_owned);
        }
        self
    }
}

impl ServerFrame {
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string.
        serde_json::to_string(self).expect("server frames serialise")
    }

    /// The length of [`ServerFrame::to_json`], measured without building the string.
    pub fn json_len(&self) -> usize {
        json_len(self)
    }
}

/// The length of `value`'s JSON, counted as it is written (nothing is allocated).
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing into a counter cannot fail, and neither can serialising these types.
    serde_json::to_writer(&mut count, value).expect("wire types serialise");
    count.0
}

/// A new message's two frames, from one serialisation of the message: the live `message`
/// event for the members' other devices and the `ack` for the sender. Byte for byte what
/// [`ServerFrame::Message`] and [`ServerFrame::Ack`] serialise to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFrames {
    pub live: String,
    pub ack: String,
}

const LIVE_HEAD: &str = r#"{"type":"message","message":"#;
const ACK_HEAD: &str = r#"{"type":"ack","clientMsgId":"#;
const ACK_MESSAGE: &str = r#","message":"#;

impl MessageFrames {
    pub fn new(client_msg_id: &ClientMsgId, message: &Message) -> Self {
        let message = serde_json::to_string(message).expect("messages serialise");
        let client_msg_id = serde_json::to_string(client_msg_id).expect("ids serialise");
        Self {
            live: format!("{LIVE_HEAD}{message}}}"),
            ack: format!("{ACK_HEAD}{client_msg_id}{ACK_MESSAGE}{message}}}"),
        }
    }

    /// The length of the ack of `message`, measured without building it: the larger of the
    /// two frames, so the one to check against [`MAX_FRAME_BYTES`].
    pub fn ack_len(client_msg_id: &ClientMsgId, message: &Message) -> usize {
        ACK_HEAD.len() + json_len(client_msg_id) + ACK_MESSAGE.len() + json_len(message) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_send_message() {
        let frame =
            ClientFrame::parse(r#"{"action":"sendMessage","channelId":"c1","clientMsgId":"m1","text":"hi","extra":1}"#)
                .unwrap();
        let ClientFrame::SendMessage { channel_id, text, .. } = frame else { panic!("{frame:?}") };
        assert_eq!(channel_id.as_str(), "c1");
        assert_eq!(text, "hi");
        assert_eq!(ClientFrame::parse(r#"{"action":"heartbeat"}"#).unwrap(), ClientFrame::Heartbeat { idle: false });
        assert_eq!(
            ClientFrame::parse(r#"{"action":"heartbeat","idle":true}"#).unwrap(),
            ClientFrame::Heartbeat { idle: true }
        );
        let sync = ClientFrame::parse(r#"{"action":"sync","channels":{"c1":"42"},"after":7}"#).unwrap();
        let ClientFrame::Sync { channels, after, limit, .. } = sync else { panic!() };
        assert_eq!(channels[&ChannelId::parse("c1").unwrap()].as_u64(), 42);
        assert_eq!(after.map(MessageId::as_u64), Some(7));
        assert_eq!(limit, None);
        assert!(ClientFrame::parse(r#"{"action":"typing","channelId":"c1","state":"dancing"}"#).is_err());
    }

    #[test]
    fn tells_bad_frames_apart() {
        let message = |body: &str| ClientFrame::parse(body).unwrap_err().to_string();
        assert!(message("{not json").contains("not valid JSON"));
        assert!(message("[1,2]").contains("JSON object"));
        assert!(message(r#"{"text":"x"}"#).contains("no \"action\""));
        assert!(message(r#"{"action":"dance"}"#).contains("unknown action \"dance\""));
        assert!(message(r#"{"action":"sendMessage","channelId":"c1"}"#).contains("clientMsgId"));
        assert!(
            message(r#"{"action":"sendMessage","channelId":"a#b","clientMsgId":"m","text":"x"}"#).contains("channelId")
        );
    }

    #[test]
    fn a_messages_frames_are_what_the_frame_types_serialise_to() {
        let message: Message = serde_json::from_str(
            r#"{"channelId":"c1","messageId":"42","seq":7,"authorId":"alice","text":"a \"quoted\" é","clientMsgId":"m1","createdAt":5,"attachments":[{"key":"k","fileName":"f","contentType":"text/plain","size":1}]}"#,
        )
        .unwrap();
        let id = ClientMsgId::parse("m1").unwrap();
        let frames = MessageFrames::new(&id, &message);
        let ack = ServerFrame::Ack { client_msg_id: id.clone(), message: message.clone() };
        assert_eq!(frames.live, ServerFrame::Message { message: message.clone() }.to_json());
        assert_eq!(frames.ack, ack.to_json());
        assert_eq!(MessageFrames::ack_len(&id, &message), frames.ack.len());
        assert_eq!(ack.json_len(), frames.ack.len());
    }

    #[test]
    fn error_frames_echo_the_failed_frame() {
        let body = ErrorBody::new(ErrorCode::Forbidden, "not a member", None)
            .about_frame(r#"{"action":"sendMessage","clientMsgId":"m7"}"#);
        let json = ServerFrame::Error(body).to_json();
        assert_eq!(
            json,
            r#"{"type":"error","code":"forbidden","message":"not a member","action":"sendMessage","clientMsgId":"m7"}"#
        );
    }
}
