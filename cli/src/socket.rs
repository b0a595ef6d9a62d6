//! The WebSocket: connecting with the access token (a query parameter, as browsers must),
//! sending frames and reading the server's.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::api::Error;

pub struct Socket {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The code of the server's close frame, once it sent one.
    close_code: Option<u16>,
}

/// What the server sent: a JSON frame, or the end of the connection.
#[derive(Debug)]
pub enum Incoming {
    Frame(Value),
    Closed(String),
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
                    401 | 403 => "unauthorized",
                    429 => "rate_limited",
                    s if s >= 500 => "internal",
                    _ => "invalid_request",
                };
                Err(Error::Api {
                    status,
                    code: code.into(),
                    message: format!("the WebSocket handshake was refused (HTTP {status})"),
                    retry_after_ms: crate::net::retry_after(response.headers()).map(|s| s * 1000),
                })
            }
            Err(err) => Err(Error::WebSocket(format!("cannot connect to {ws_url}: {err}"))),
        }
    }

    pub async fn send(&mut self, frame: &Value) -> Result<(), Error> {
        self.inner.send(Message::Text(frame.to_string().into())).await.map_err(|e| Error::WebSocket(e.to_string()))
    }

    /// The next frame; pings are answered underneath. Cancel-safe (for `select!`).
    pub async fn next(&mut self) -> Incoming {
        loop {
            match self.inner.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Incoming::Frame(
                        serde_json::from_str(&text)
                            .unwrap_or_else(|_| json!({"type": "invalid", "raw": text.as_str()})),
                    );
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
pub fn new_client_msg_id() -> String {
    format!("c{:024x}", rand::random::<u128>() >> 32)
}

pub fn send_message_frame(channel_id: &str, client_msg_id: &str, text: &str) -> Value {
    json!({"action": "sendMessage", "channelId": channel_id, "clientMsgId": client_msg_id, "text": text})
}
