//! The WebSocket: connecting with the access token (a query parameter, as browsers must),
//! sending frames and reading the server's.

use std::sync::Arc;

use chat_protocol::ErrorCode;
use chat_protocol::frames::{ClientFrame, ErrorBody, ServerFrame};
use chat_protocol::model::ClientMsgId;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::api::Error;
use crate::session::{self, PresenceChoices};

pub struct Socket {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The code of the server's close frame, once it sent one.
    close_code: Option<u16>,
}

/// What the server sent: a frame, or the end of the connection.
#[derive(Debug)]
pub enum Incoming {
    Frame(Box<Received>),
    Closed(String),
}

/// One frame from the server.
#[derive(Debug)]
pub struct Received {
    /// The JSON as it came (text that is not JSON: `{"type": "invalid", "raw": …}`), for
    /// printing as it is (`chat script`, `--json`).
    pub raw: Value,
    /// The frame as the protocol reads it; `None` for anything else, such as API Gateway's
    /// own answers (`{"message": "Internal server error"}`) or a frame type newer than
    /// this client (skipped, as the protocol allows).
    pub frame: Option<ServerFrame>,
}

impl Received {
    fn new(raw: Value) -> Self {
        let frame = ServerFrame::deserialize(&raw).ok();
        Self { raw, frame }
    }

    /// The frame's `type`, as it came ("" when it has none).
    pub fn kind(&self) -> &str {
        self.raw.get("type").and_then(Value::as_str).unwrap_or_default()
    }

    /// API Gateway's own answer (`{"message": "Internal server error"}`, no `type`): an
    /// error of the backend, as an `error` frame's body.
    pub fn gateway_error(&self) -> Option<ErrorBody> {
        if self.raw.get("type").is_some() {
            return None;
        }
        let message = self.raw.get("message")?;
        Some(ErrorBody::new(ErrorCode::Internal, message.as_str().unwrap_or("refused"), None))
    }
}

impl Socket {
    pub async fn connect(ws_url: &str, token: &str, tls: &Arc<rustls::ClientConfig>) -> Result<Self, Error> {
        let separator = if ws_url.contains('?') { '&' } else { '?' };
        let url = format!("{ws_url}{separator}token={}", urlencoding::encode(token));
        let connector = Connector::Rustls(tls.clone());
        match tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector)).await {
            Ok((inner, _)) => Ok(Self { inner, close_code: None }),
            // A refused handshake is API Gateway's answer: 401/403 from the authorizer,
            // 429 or 500 from $connect.
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let code = match status {
                    401 | 403 => ErrorCode::Unauthorized,
                    429 => ErrorCode::RateLimited,
                    s if s >= 500 => ErrorCode::Internal,
                    _ => ErrorCode::InvalidRequest,
                };
                let message = format!("the WebSocket handshake was refused (HTTP {status})");
                let retry_after_ms = crate::net::retry_after(response.headers()).map(|s| s * 1000);
                Err(Error::Api { status, body: ErrorBody::new(code, message, retry_after_ms) })
            }
            Err(err) => Err(Error::WebSocket(format!("cannot connect to {ws_url}: {err}"))),
        }
    }

    /// Sends a frame of the protocol.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        self.send_text(serde_json::to_string(frame).expect("client frames serialise")).await
    }

    /// Tells the server again the presence choices kept on this device (it forgets them
    /// about 2 hours after the user was last connected): the first thing a connection
    /// sends. Their answers, `presence` frames about the user, are for the caller to skip.
    pub async fn restore_presence(&mut self, choices: &PresenceChoices) -> Result<(), Error> {
        for frame in choices.frames(session::now_ms()) {
            self.send(&frame).await?;
        }
        Ok(())
    }

    /// Sends any JSON as a frame, as it is (`chat script`).
    pub async fn send_raw(&mut self, frame: &Value) -> Result<(), Error> {
        self.send_text(frame.to_string()).await
    }

    async fn send_text(&mut self, text: String) -> Result<(), Error> {
        self.inner.send(Message::Text(text.into())).await.map_err(|e| Error::WebSocket(e.to_string()))
    }

    /// The next frame; pings are answered underneath. Cancel-safe (for `select!`).
    pub async fn next(&mut self) -> Incoming {
        loop {
            match self.inner.next().await {
                Some(Ok(Message::Text(text))) => {
                    let raw = serde_json::from_str(&text)
                        .unwrap_or_else(|_| json!({"type": "invalid", "raw": text.as_str()}));
                    return Incoming::Frame(Box::new(Received::new(raw)));
                }
                Some(Ok(Message::Close(frame))) => {
                    self.close_code = frame.as_ref().map(|f| u16::from(f.code));
                    let why = frame.map(|f| format!("closed by the server ({} {})", u16::from(f.code), f.reason));
                    return Incoming::Closed(why.unwrap_or_else(|| "closed by the server".into()));
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Incoming::Closed(err.to_string()),
                None => return Incoming::Closed("connection ended".into()),
            }
        }
    }

    /// The code the server closed the connection with (1000: on purpose, as when the
    /// session was signed out; 1001: the gateway's idle or duration limit).
    pub fn close_code(&self) -> Option<u16> {
        self.close_code
    }

    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}

/// A fresh `clientMsgId` (1-64 of `A-Z a-z 0-9 _ - .`).
pub fn new_client_msg_id() -> ClientMsgId {
    ClientMsgId::parse(format!("c{:024x}", rand::random::<u128>() >> 32)).expect("25 hex digits are a clientMsgId")
}

#[cfg(test)]
mod tests {
    use chat_protocol::frames::{ChosenState, LastSeenTo, Status};
    use chat_protocol::ids::MessageId;
    use chat_protocol::model::{Attachment, ChannelId, Emoji, UserId};

    use super::*;

    const CHANNEL: &str = "g-3f9a1c0e7b2d4a6f8e1c5b7d";
    const MESSAGE: u64 = 383_171_067_025_293_312;

    fn channel() -> ChannelId {
        ChannelId::parse(CHANNEL).unwrap()
    }

    /// The frames the CLI sends are docs/PROTOCOL.md's examples, and read back as they were.
    #[test]
    fn client_frames_are_sent_as_the_protocol_documents_them() {
        let send = ClientFrame::SendMessage {
            channel_id: channel(),
            client_msg_id: ClientMsgId::parse("7f3c9a").unwrap(),
            text: "hi".into(),
            attachments: Vec::new(),
            reply_to: None,
            mentions: Vec::new(),
        };
        let with_file = ClientFrame::SendMessage {
            channel_id: channel(),
            client_msg_id: ClientMsgId::parse("7f3c9b").unwrap(),
            text: String::new(),
            attachments: vec![Attachment {
                key: format!("uploads/{CHANNEL}/alice/9f2c4e1a7b3d5c60/cat_photo.png"),
                file_name: "cat photo.png".into(),
                content_type: "image/png".into(),
                size: 70000,
                url: None,
            }],
            reply_to: None,
            mentions: Vec::new(),
        };
        let reply = ClientFrame::SendMessage {
            channel_id: channel(),
            client_msg_id: ClientMsgId::parse("7f3c9c").unwrap(),
            text: "yes @bob".into(),
            attachments: Vec::new(),
            reply_to: Some(MessageId::from_u64(MESSAGE)),
            mentions: vec![UserId::parse("bob").unwrap()],
        };
        let message_id = MessageId::from_u64(MESSAGE);
        let cases = [
            (send, r#"{"action":"sendMessage","channelId":"g-3f9a1c0e7b2d4a6f8e1c5b7d","clientMsgId":"7f3c9a","text":"hi"}"#.to_owned()),
            (
                with_file,
                format!(
                    r#"{{"action":"sendMessage","channelId":"{CHANNEL}","clientMsgId":"7f3c9b","text":"","attachments":[{{"key":"uploads/{CHANNEL}/alice/9f2c4e1a7b3d5c60/cat_photo.png","fileName":"cat photo.png","contentType":"image/png","size":70000}}]}}"#
                ),
            ),
            (
                reply,
                format!(
                    r#"{{"action":"sendMessage","channelId":"{CHANNEL}","clientMsgId":"7f3c9c","text":"yes @bob","replyTo":"{MESSAGE}","mentions":["bob"]}}"#
                ),
            ),
            (
                ClientFrame::AddReaction { channel_id: channel(), message_id, emoji: Emoji::parse("👍").unwrap() },
                format!(r#"{{"action":"addReaction","channelId":"{CHANNEL}","messageId":"{MESSAGE}","emoji":"👍"}}"#),
            ),
            (
                ClientFrame::RemoveReaction { channel_id: channel(), message_id, emoji: Emoji::parse(":party:").unwrap() },
                format!(
                    r#"{{"action":"removeReaction","channelId":"{CHANNEL}","messageId":"{MESSAGE}","emoji":":party:"}}"#
                ),
            ),
            (
                ClientFrame::EditMessage { channel_id: channel(), message_id, text: "hi all".into() },
                format!(r#"{{"action":"editMessage","channelId":"{CHANNEL}","messageId":"{MESSAGE}","text":"hi all"}}"#),
            ),
            (
                ClientFrame::DeleteMessage { channel_id: channel(), message_id },
                format!(r#"{{"action":"deleteMessage","channelId":"{CHANNEL}","messageId":"{MESSAGE}"}}"#),
            ),
            (ClientFrame::Heartbeat { idle: false }, r#"{"action":"heartbeat"}"#.to_owned()),
            (ClientFrame::Heartbeat { idle: true }, r#"{"action":"heartbeat","idle":true}"#.to_owned()),
            (
                ClientFrame::SetPresence { state: Some(ChosenState::Dnd), last_seen: None },
                r#"{"action":"setPresence","state":"dnd"}"#.to_owned(),
            ),
            (
                ClientFrame::SetPresence { state: Some(ChosenState::Invisible), last_seen: Some(LastSeenTo::Nobody) },
                r#"{"action":"setPresence","state":"invisible","lastSeen":"nobody"}"#.to_owned(),
            ),
            (
                ClientFrame::SetStatus {
                    text: Some("In a meeting".into()),
                    emoji: Some(Emoji::parse("📅").unwrap()),
                    expires_at: Some(1_795_425_901_353),
                },
                r#"{"action":"setStatus","text":"In a meeting","emoji":"📅","expiresAt":1795425901353}"#.to_owned(),
            ),
            (ClientFrame::SetStatus { text: None, emoji: None, expires_at: None }, r#"{"action":"setStatus"}"#.to_owned()),
            (
                ClientFrame::SubscribePresence { user_ids: Vec::new(), channel_id: Some(channel()) },
                format!(r#"{{"action":"subscribePresence","channelId":"{CHANNEL}"}}"#),
            ),
            (
                ClientFrame::SubscribePresence { user_ids: vec![UserId::parse("bob").unwrap()], channel_id: None },
                r#"{"action":"subscribePresence","userIds":["bob"]}"#.to_owned(),
            ),
            (
                ClientFrame::MarkRead { channel_id: channel(), message_id },
                format!(r#"{{"action":"markRead","channelId":"{CHANNEL}","messageId":"{MESSAGE}"}}"#),
            ),
            (
                ClientFrame::GetPresence { user_ids: Vec::new(), channel_id: Some(channel()) },
                format!(r#"{{"action":"getPresence","channelId":"{CHANNEL}"}}"#),
            ),
            (
                ClientFrame::GetPresence {
                    user_ids: vec![UserId::parse("bob").unwrap(), UserId::parse("carol").unwrap()],
                    channel_id: None,
                },
                r#"{"action":"getPresence","userIds":["bob","carol"]}"#.to_owned(),
            ),
        ];
        for (frame, expected) in cases {
            let json = serde_json::to_string(&frame).unwrap();
            assert_eq!(json, expected);
            assert_eq!(ClientFrame::parse(&json).unwrap(), frame, "{json}");
        }
    }

    #[test]
    fn server_frames_are_read_and_kept_as_they_came() {
        let ack = Received::new(json!({
            "type": "ack", "clientMsgId": "7f3c9a",
            "message": {"channelId": CHANNEL, "messageId": MESSAGE.to_string(), "seq": 42, "authorId": "alice",
                        "text": "hi", "clientMsgId": "7f3c9a", "createdAt": 1_795_422_301_353_i64},
        }));
        let Some(ServerFrame::Ack { client_msg_id, message }) = &ack.frame else { panic!("{ack:?}") };
        assert_eq!((client_msg_id.as_str(), message.message_id.as_u64(), message.seq), ("7f3c9a", MESSAGE, 42));
        assert_eq!(ack.kind(), "ack");
        assert!(ack.gateway_error().is_none());

        // API Gateway's own answer is an internal error of the backend.
        let gateway = Received::new(json!({"message": "Internal server error"}));
        assert!(gateway.frame.is_none());
        let error = gateway.gateway_error().unwrap();
        assert_eq!((error.code, error.message.as_str()), (ErrorCode::Internal, "Internal server error"));
        assert_eq!(gateway.kind(), "");

        // A type newer than this client is kept, not understood.
        let newer = Received::new(json!({"type": "poll", "question": "tea?"}));
        assert!(newer.frame.is_none() && newer.gateway_error().is_none());
        assert_eq!(newer.kind(), "poll");
        assert_eq!(newer.raw.to_string(), r#"{"question":"tea?","type":"poll"}"#);

        // A reaction: counts only (`me` is absent from the event).
        let reaction = Received::new(json!({
            "type": "reaction", "channelId": CHANNEL, "messageId": MESSAGE.to_string(), "seq": 42,
            "userId": "bob", "emoji": "👍", "added": true, "changeSeq": 7,
            "reactions": [{"emoji": "👍", "count": 2}, {"emoji": "❤️", "count": 1}],
        }));
        let Some(ServerFrame::Reaction { seq, added, reactions, change_seq, .. }) = &reaction.frame else {
            panic!("{reaction:?}")
        };
        assert_eq!((*seq, *added, *change_seq), (42, true, Some(7)));
        assert_eq!(crate::show::reaction_counts(reactions), "👍 2 ❤️ 1");

        // Presence: the four states, and a custom status.
        let presence = Received::new(json!({
            "type": "presence", "userId": "bob", "status": "dnd", "lastSeen": 1_795_422_301_353_i64,
            "customStatus": {"text": "In a meeting", "emoji": "📅", "expiresAt": 1_795_425_901_353_i64},
        }));
        let Some(ServerFrame::Presence(view)) = &presence.frame else { panic!("{presence:?}") };
        assert_eq!(view.status, Status::Dnd);
        let custom = view.custom_status.as_ref().unwrap();
        assert_eq!((custom.text.as_deref(), custom.expires_at), (Some("In a meeting"), Some(1_795_425_901_353)));
        let state = Received::new(json!({"type": "presenceState", "users": [
            {"userId": "bob", "status": "idle"}, {"userId": "carol", "status": "offline"},
        ]}));
        let Some(ServerFrame::PresenceState { users }) = &state.frame else { panic!("{state:?}") };
        assert_eq!(users.iter().map(|u| u.status).collect::<Vec<_>>(), [Status::Idle, Status::Offline]);
    }
}
