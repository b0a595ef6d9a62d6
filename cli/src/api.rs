//! The HTTP API (docs/PROTOCOL.md): accounts, channels and history, with the session's
//! access token refreshed when it is about to expire.

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::net::HttpClient;
use crate::session::{Session, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server's answer: a stable `code` from the protocol and a human message
    /// (`status` 0: an `error` frame on the WebSocket). `rate_limited` says when to retry.
    #[error("{}", api_error_text(*status, code, message, *retry_after_ms))]
    Api { status: u16, code: String, message: String, retry_after_ms: Option<u64> },
    #[error("cannot reach {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("WebSocket: {0}")]
    WebSocket(String),
    #[error("not signed in: run `chat signin` (or `chat signup`) first")]
    NotSignedIn,
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// An `error` frame of the WebSocket (or API Gateway's own answer without a code).
    pub fn from_frame(frame: &Value) -> Self {
        let text = |key: &str, default: &str| frame.get(key).and_then(Value::as_str).unwrap_or(default).to_owned();
        Error::Api {
            status: 0,
            code: text("code", "refused"),
            message: text("message", "refused"),
            retry_after_ms: frame.get("retryAfterMs").and_then(Value::as_u64),
        }
    }
}

/// "retry in 4 s": whole seconds, rounded up, at least one.
pub fn retry_in(retry_after_ms: Option<u64>) -> String {
    match retry_after_ms {
        Some(ms) => format!("retry in {} s", ms.div_ceil(1000).max(1)),
        None => "retry in a moment".into(),
    }
}

fn api_error_text(status: u16, code: &str, message: &str, retry_after_ms: Option<u64>) -> String {
    let origin = if status == 0 { String::new() } else { format!(", HTTP {status}") };
    if code == "rate_limited" {
        format!("too fast; {} ({code}{origin})", retry_in(retry_after_ms))
    } else {
        format!("{message} ({code}{origin})")
    }
}

/// A message as the server sends it (ids are decimal strings).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub channel_id: String,
    pub message_id: String,
    pub seq: u64,
    pub author_id: String,
    pub text: String,
    #[serde(default)]
    pub client_msg_id: Option<String>,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub key: String,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    /// A download link valid for an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Message {
    /// The text as a person reads it: deleted and edited marks, and the files.
    pub fn display_text(&self) -> String {
        if self.deleted {
            return "(deleted)".into();
        }
        let mut text = self.text.clone();
        for file in &self.attachments {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&format!("[file {} ({} bytes)]", file.file_name, file.size));
        }
        if self.edited_at.is_some() {
            text.push_str(" (edited)");
        }
        text
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    #[serde(default)]
    pub next_before: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSummary {
    pub channel_id: String,
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub peer: Option<String>,
    #[serde(default)]
    pub member_count: u64,
    #[serde(default)]
    pub seq: u64,
    /// Messages after your read position.
    #[serde(default)]
    pub unread: u64,
}

impl ChannelSummary {
    /// What people call it: the group's name, or the other person of a direct channel.
    pub fn title(&self) -> &str {
        self.name.as_deref().or(self.peer.as_deref()).unwrap_or(&self.channel_id)
    }
}

/// An invitation to a channel, waiting for the user's answer (`GET /invitations`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub channel_id: String,
    /// `group` or `direct`.
    pub kind: String,
    /// Groups: the group's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub invited_by: String,
    /// The role on joining: `member` or `admin`.
    pub role: String,
    pub invited_at: i64,
}

impl Invitation {
    /// What it is an invitation to, as a person reads it.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(name) if self.kind == "group" => format!("{} invites you to the group \"{name}\"", self.invited_by),
            _ => format!("{} wants to chat with you (direct)", self.invited_by),
        }
    }
}

pub struct Api {
    pub base_url: String,
    http: HttpClient,
}

impl Api {
    pub fn new(base_url: &str, http: HttpClient) -> Self {
        Self { base_url: base_url.trim_end_matches('/').to_owned(), http }
    }

    /// `POST /auth/signup` or `/auth/signin`.
    pub async fn authenticate(&self, sign_up: bool, username: &str, password: &str) -> Result<Session, Error> {
        let path = if sign_up { "/auth/signup" } else { "/auth/signin" };
        let answer =
            self.call(Method::POST, path, None, Some(&json!({"username": username, "password": password}))).await?;
        Session::from_answer(answer)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, Error> {
        let answer =
            self.call(Method::POST, "/auth/refresh", None, Some(&json!({"refreshToken": refresh_token}))).await?;
        Session::from_answer(answer)
    }

    /// Any route, as the signed-in user: refreshes the access token first when it is about
    /// to expire, and once more when the authorizer refuses it.
    pub async fn authorized(
        &self,
        store: &mut Store,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        self.authorized_request(store, method, path, body).await.map(|(_, value)| value)
    }

    /// [`Api::authorized`], with the status of the answer.
    pub async fn authorized_request(
        &self,
        store: &mut Store,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Error> {
        let token = store.access_token(self).await?;
        match self.request(method.clone(), path, Some(&token), body).await {
            Err(Error::Api { status: 401 | 403, code, .. }) if code == "unauthorized" && store.can_refresh() => {
                store.refresh(self).await?;
                let token = store.access_token(self).await?;
                self.request(method, path, Some(&token), body).await
            }
            other => other,
        }
    }

    pub async fn channels(&self, store: &mut Store) -> Result<Vec<ChannelSummary>, Error> {
        let answer = self.authorized(store, Method::GET, "/channels", None).await?;
        parse(answer.get("channels").cloned().unwrap_or(Value::Null))
    }

    pub async fn history(
        &self,
        store: &mut Store,
        channel_id: &str,
        before: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<HistoryPage, Error> {
        let mut path = format!("/channels/{}/messages?limit={limit}", urlencoding::encode(channel_id));
        if let Some(before) = before {
            path.push_str(&format!("&before={before}"));
        }
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        parse(self.authorized(store, Method::GET, &path, None).await?)
    }

    /// Uploads a file for a message in `channel_id`: a grant from the HTTP API, then a
    /// multipart POST straight to storage (S3) with the grant's fields and the file last.
    /// Answers the attachment for `sendMessage`.
    pub async fn upload(
        &self,
        store: &mut Store,
        channel_id: &str,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Value, Error> {
        let path = format!("/channels/{}/uploads", urlencoding::encode(channel_id));
        let request = json!({"fileName": file_name, "contentType": content_type, "size": bytes.len()});
        let grant = self.authorized(store, Method::POST, &path, Some(&request)).await?;
        let url = grant["url"].as_str().ok_or_else(|| Error::Usage("the upload grant has no url".into()))?.to_owned();
        let fields: Vec<(String, String)> = grant["fields"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
            .collect();
        let body = crate::net::multipart(&fields, file_name, content_type, bytes);
        let reply = self
            .http
            .send(Method::POST, &url, &[], Some(body))
            .await
            .map_err(|reason| Error::Network { url, reason })?;
        if !(200..300).contains(&reply.status) {
            let detail = String::from_utf8_lossy(&reply.body).chars().take(300).collect::<String>();
            return Err(Error::Api {
                status: reply.status,
                code: "upload_refused".into(),
                message: detail,
                retry_after_ms: None,
            });
        }
        Ok(json!({"key": grant["key"], "fileName": file_name, "contentType": content_type, "size": bytes.len()}))
    }

    /// Pending invitations, oldest first.
    pub async fn invitations(&self, store: &mut Store) -> Result<Vec<Invitation>, Error> {
        let answer = self.authorized(store, Method::GET, "/invitations", None).await?;
        parse(answer.get("invitations").cloned().unwrap_or(Value::Null))
    }

    /// Finds a pending invitation by channel id, group name or (for a direct chat) the
    /// username of who sent it.
    pub async fn resolve_invitation(&self, store: &mut Store, reference: &str) -> Result<Invitation, Error> {
        let pending = self.invitations(store).await?;
        let by_id: Vec<&Invitation> = pending.iter().filter(|i| i.channel_id == reference).collect();
        let found: Vec<&Invitation> = if by_id.is_empty() {
            let named = |i: &&Invitation| match i.kind.as_str() {
                "direct" => i.invited_by == reference,
                _ => i.name.as_deref() == Some(reference),
            };
            pending.iter().filter(named).collect()
        } else {
            by_id
        };
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::Usage(format!("no pending invitation \"{reference}\" (see `chat invitations`)"))),
            many => Err(Error::Usage(format!(
                "\"{reference}\" names {} pending invitations; use a channel id: {}",
                many.len(),
                many.iter().map(|i| i.channel_id.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Finds a channel by id, group name or (for direct channels) the other user's name.
    pub async fn resolve(&self, store: &mut Store, reference: &str) -> Result<ChannelSummary, Error> {
        let channels = self.channels(store).await?;
        let matches = |c: &&ChannelSummary| {
            c.channel_id == reference || c.peer.as_deref() == Some(reference) || c.name.as_deref() == Some(reference)
        };
        let found: Vec<&ChannelSummary> = channels.iter().filter(matches).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                // Perhaps one they were invited to and have not accepted yet.
                if let Ok(invitation) = self.resolve_invitation(store, reference).await {
                    return Err(Error::Usage(format!(
                        "you are invited to \"{reference}\" but not in it yet: `chat invitations accept {}`",
                        invitation.channel_id
                    )));
                }
                Err(Error::Usage(format!(
                    "no channel \"{reference}\" among yours (see `chat channels`; `chat channels direct USER` opens one)"
                )))
            }
            many => Err(Error::Usage(format!(
                "\"{reference}\" names {} channels; use an id: {}",
                many.len(),
                many.iter().map(|c| c.channel_id.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// One request; a non-2xx answer becomes [`Error::Api`] with the body's code.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        self.request(method, path, token, body).await.map(|(_, value)| value)
    }

    /// [`Api::call`], with the status of the answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Error> {
        let url = format!("{}{path}", self.base_url);
        let headers: Vec<(http::HeaderName, String)> =
            token.map(|t| (http::header::AUTHORIZATION, format!("Bearer {t}"))).into_iter().collect();
        let json = body.map(|b| ("application/json".to_owned(), serde_json::to_vec(b).expect("JSON values serialise")));
        let reply =
            self.http.send(method, &url, &headers, json).await.map_err(|reason| Error::Network { url, reason })?;
        let status = reply.status;
        let value: Value = if reply.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&reply.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&reply.body).into_owned()))
        };
        if (200..300).contains(&status) {
            return Ok((status, value));
        }
        // The authorizer answers `{"message": "Unauthorized"|"Forbidden"}` without a code.
        let code = value.get("code").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| {
            match status {
                401 | 403 => "unauthorized",
                429 => "rate_limited",
                s if s >= 500 => "internal",
                _ => "invalid_request",
            }
            .to_owned()
        });
        let message =
            value.get("message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| format!("HTTP {status}"));
        // The body's `retryAfterMs`, else HTTP's `Retry-After` (seconds).
        let retry_after_ms =
            value.get("retryAfterMs").and_then(Value::as_u64).or(reply.retry_after_s.map(|s| s * 1000));
        Err(Error::Api { status, code, message, retry_after_ms })
    }
}

pub fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::Usage(format!("unexpected answer from the server: {e}")))
}
