//! A WebSocket client as an app would use it: connect with a token, send frames, read
//! what the server pushes.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// How long a test waits for a frame that should come.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum ConnectError {
    /// The handshake was refused with this HTTP status.
    Refused(u16),
    Other(String),
}

pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Presence announcements come whenever someone connects; tests about other things
    /// do not see them unless they ask (`receiving_presence`).
    skip_presence: bool,
}

/// How the server ended a connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: Option<u16>,
}

impl Client {
    pub async fn connect(websocket_url: &str, query: &str) -> Result<Self, ConnectError> {
        let url = if query.is_empty() { websocket_url.to_owned() } else { format!("{websocket_url}?{query}") };
        match connect_async(url).await {
            Ok((socket, _)) => Ok(Self { socket, skip_presence: true }),
            Err(tungstenite::Error::Http(response)) => Err(ConnectError::Refused(response.status().as_u16())),
            Err(err) => Err(ConnectError::Other(err.to_string())),
        }
    }

    /// This client's `recv` returns `presence` frames too.
    pub fn receiving_presence(mut self) -> Self {
        self.skip_presence = false;
        self
    }

    pub async fn send_json(&mut self, frame: &Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::Text(text.into())).await.expect("frame sent");
    }

    /// Sends one message split into frames of at most `frame_bytes`, as API Gateway
    /// requires for messages over 32 KB.
    pub async fn send_fragmented(&mut self, text: &str, frame_bytes: usize) {
        let bytes = text.as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(frame_bytes).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
            let frame = Frame::message(chunk.to_vec(), opcode, i + 1 == chunks.len());
            self.socket.send(Message::Frame(frame)).await.expect("frame sent");
        }
    }

    /// `sendMessage`, without waiting for the answer.
    pub async fn send_message(&mut self, channel: &str, client_msg_id: &str, text: &str) {
        self.send_json(&json!({
            "action": "sendMessage",
            "channelId": channel,
            "clientMsgId": client_msg_id,
            "text": text,
        }))
        .await;
    }

    /// The next data frame from the server, as JSON. Panics after [`FRAME_TIMEOUT`].
    pub async fn recv(&mut self) -> Value {
        match self.try_recv(FRAME_TIMEOUT).await {
            Some(frame) => frame,
            None => panic!("no frame within {FRAME_TIMEOUT:?}"),
        }
    }

    /// The next frame of `kind` (`type` field); frames of other kinds are returned to
    /// nobody, so use this only where they do not matter.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next()).await.ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value =
                        serde_json::from_str(&text).unwrap_or_else(|_| panic!("server sent non-JSON: {text}"));
                    if self.skip_presence && frame["type"] == "presence" {
                        continue;
                    }
                    return Some(frame);
                }
                Some(Ok(Message::Close(frame))) => panic!("connection closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("connection failed: {err}"),
                None => panic!("connection ended"),
            }
        }
    }

    /// Asserts that nothing arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(frame) = self.try_recv(wait).await {
            panic!("expected no frame, got {frame}");
        }
    }

    /// Waits for the server to close the connection and says how.
    pub async fn closed(&mut self) -> Closed {
        loop {
            match tokio::time::timeout(FRAME_TIMEOUT, self.socket.next()).await {
                Err(_) => panic!("connection still open after {FRAME_TIMEOUT:?}"),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Closed { code: frame.map(|f| u16::from(f.code)) };
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return Closed { code: None },
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
