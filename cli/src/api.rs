//! The HTTP API (docs/PROTOCOL.md): accounts, channels and history, with the session's
//! access token refreshed when it is about to expire.

use chat_protocol::ErrorCode;
use chat_protocol::frames::ErrorBody;
use chat_protocol::http::{
    ChannelList, ChannelSummary, ChannelView, Credentials, HistoryPage, Invitation, InvitationList, RefreshRequest,
    UploadGrant, UploadRequest,
};
use chat_protocol::ids::MessageId;
use chat_protocol::model::{Attachment, ChannelId, ChannelKind, Message, UserId};
use http::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::net::HttpClient;
use crate::session::{Session, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server's answer: a stable `code` from the protocol and a human message
    /// (`status` 0: an `error` frame on the WebSocket). `rate_limited` says when to retry.
    #[error("{}", api_error_text(*status, body))]
    Api { status: u16, body: ErrorBody },
    /// Storage refused an upload (its answer is XML, not the API's error body).
    #[error("{detail} (upload_refused, HTTP {status})")]
    UploadRefused { status: u16, detail: String },
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
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { body, .. } => Some(body.code),
            _ => None,
        }
    }

    /// An `error` frame of the WebSocket.
    pub fn from_frame(body: &ErrorBody) -> Self {
        Error::Api { status: 0, body: body.clone() }
    }
}

/// "retry in 4 s": whole seconds, rounded up, at least one.
pub fn retry_in(retry_after_ms: Option<u64>) -> String {
    match retry_after_ms {
        Some(ms) => format!("retry in {} s", ms.div_ceil(1000).max(1)),
        None => "retry in a moment".into(),
    }
}

fn api_error_text(status: u16, body: &ErrorBody) -> String {
    let origin = if status == 0 { String::new() } else { format!(", HTTP {status}") };
    let code = body.code.as_str();
    if body.code == ErrorCode::RateLimited {
        format!("too fast; {} ({code}{origin})", retry_in(body.retry_after_ms))
    } else {
        format!("{} ({code}{origin})", body.message)
    }
}

/// A request body, as the JSON the server reads.
fn json_body(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("request bodies serialise")
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
        let credentials = Credentials { username: username.to_owned(), password: password.to_owned() };
        let answer = self.call(Method::POST, path, None, Some(&json_body(&credentials))).await?;
        Ok(Session::from_answer(parse(answer)?))
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, Error> {
        let request = RefreshRequest { refresh_token: refresh_token.to_owned() };
        let answer = self.call(Method::POST, "/auth/refresh", None, Some(&json_body(&request))).await?;
        Ok(Session::from_answer(parse(answer)?))
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
            Err(Error::Api { status: 401 | 403, body: refused })
                if refused.code == ErrorCode::Unauthorized && store.can_refresh() =>
            {
                store.refresh(self).await?;
                let token = store.access_token(self).await?;
                self.request(method, path, Some(&token), body).await
            }
            other => other,
        }
    }

    /// A typed route: `request` (if any) as its JSON body, the answer read as `T`.
    pub async fn authorized_as<T: DeserializeOwned>(
        &self,
        store: &mut Store,
        method: Method,
        path: &str,
        request: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        let request = request.map(json_body);
        parse(self.authorized(store, method, path, request.as_ref()).await?)
    }

    /// `GET path`, the answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, store: &mut Store, path: &str) -> Result<T, Error> {
        parse(self.authorized(store, Method::GET, path, None).await?)
    }

    pub async fn channels(&self, store: &mut Store) -> Result<Vec<ChannelSummary>, Error> {
        let list: ChannelList = self.get(store, "/channels").await?;
        Ok(list.channels)
    }

    pub async fn history(
        &self,
        store: &mut Store,
        channel_id: &ChannelId,
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<HistoryPage, Error> {
        let mut path = format!("/channels/{}/messages?limit={limit}", urlencoding::encode(channel_id.as_str()));
        if let Some(before) = before {
            path.push_str(&format!("&before={before}"));
        }
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        self.get(store, &path).await
    }

    /// The message of `channel_id` at `seq`, found by paging its history back from the
    /// newest (seqs have no gaps, so the pages say when it is not there).
    pub async fn message_at(
        &self,
        store: &mut Store,
        channel_id: &ChannelId,
        seq: u64,
    ) -> Result<Option<Message>, Error> {
        let mut before = None;
        loop {
            let page = self.history(store, channel_id, before, None, 100).await?;
            if let Some(message) = page.messages.iter().find(|m| m.seq == seq) {
                return Ok(Some(message.clone()));
            }
            // Newest first: past the seq once the oldest of the page is older.
            let passed = page.messages.last().is_none_or(|oldest| oldest.seq < seq);
            if passed || page.next_before.is_none() {
                return Ok(None);
            }
            before = page.next_before;
        }
    }

    /// The members of a channel (`GET /channels/{id}`).
    pub async fn members(&self, store: &mut Store, channel_id: &ChannelId) -> Result<Vec<UserId>, Error> {
        let path = format!("/channels/{}", urlencoding::encode(channel_id.as_str()));
        let view: ChannelView = self.get(store, &path).await?;
        Ok(view.members.into_iter().map(|m| m.user_id).collect())
    }

    /// Uploads a file for a message in `channel_id`: a grant from the HTTP API, then a
    /// multipart POST straight to storage (S3) with the grant's fields and the file last.
    /// Answers the attachment for `sendMessage`.
    pub async fn upload(
        &self,
        store: &mut Store,
        channel_id: &ChannelId,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Attachment, Error> {
        let path = format!("/channels/{}/uploads", urlencoding::encode(channel_id.as_str()));
        let request = UploadRequest {
            file_name: file_name.to_owned(),
            content_type: content_type.to_owned(),
            size: bytes.len() as u64,
        };
        let grant: UploadGrant = self.authorized_as(store, Method::POST, &path, Some(&request)).await?;
        // The grant's fields (sorted by name), then the file last.
        let fields: Vec<(String, String)> = grant.fields.into_iter().collect();
        let body = crate::net::multipart(&fields, file_name, content_type, bytes);
        let url = grant.url;
        let reply = self
            .http
            .send(Method::POST, &url, &[], Some(body))
            .await
            .map_err(|reason| Error::Network { url, reason })?;
        if !(200..300).contains(&reply.status) {
            let detail = String::from_utf8_lossy(&reply.body).chars().take(300).collect::<String>();
            return Err(Error::UploadRefused { status: reply.status, detail });
        }
        Ok(Attachment {
            key: grant.key,
            file_name: request.file_name,
            content_type: request.content_type,
            size: request.size,
            url: None,
        })
    }

    /// Pending invitations, oldest first.
    pub async fn invitations(&self, store: &mut Store) -> Result<Vec<Invitation>, Error> {
        let list: InvitationList = self.get(store, "/invitations").await?;
        Ok(list.invitations)
    }

    /// Finds a pending invitation by channel id, group name or (for a direct chat) the
    /// username of who sent it.
    pub async fn resolve_invitation(&self, store: &mut Store, reference: &str) -> Result<Invitation, Error> {
        let pending = self.invitations(store).await?;
        let by_id: Vec<&Invitation> = pending.iter().filter(|i| i.channel_id.as_str() == reference).collect();
        let found: Vec<&Invitation> = if by_id.is_empty() {
            let named = |i: &&Invitation| match i.kind {
                ChannelKind::Direct => i.invited_by.as_str() == reference,
                ChannelKind::Group => i.name.as_deref() == Some(reference),
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
            c.channel_id.as_str() == reference
                || c.peer.as_ref().map(|p| p.as_str()) == Some(reference)
                || c.name.as_deref() == Some(reference)
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
        // The body's `retryAfterMs`, else HTTP's `Retry-After` (seconds).
        let retry_after_ms =
            value.get("retryAfterMs").and_then(Value::as_u64).or(reply.retry_after_s.map(|s| s * 1000));
        let body = match ErrorBody::deserialize(&value) {
            Ok(body) => ErrorBody { retry_after_ms, ..body },
            // The authorizer answers `{"message": "Unauthorized"|"Forbidden"}` without a code.
            Err(_) => {
                let code = match status {
                    401 | 403 => ErrorCode::Unauthorized,
                    429 => ErrorCode::RateLimited,
                    s if s >= 500 => ErrorCode::Internal,
                    _ => ErrorCode::InvalidRequest,
                };
                let message = value
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("HTTP {status}"));
                ErrorBody::new(code, message, retry_after_ms)
            }
        };
        Err(Error::Api { status, body })
    }
}

pub fn parse<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::Usage(format!("unexpected answer from the server: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_before() {
        let refused = |status, code, retry| Error::Api { status, body: ErrorBody::new(code, "not a member", retry) };
        assert_eq!(refused(403, ErrorCode::Forbidden, None).to_string(), "not a member (forbidden, HTTP 403)");
        assert_eq!(refused(0, ErrorCode::Forbidden, None).to_string(), "not a member (forbidden)");
        assert_eq!(
            refused(0, ErrorCode::RateLimited, Some(3_500_001)).to_string(),
            "too fast; retry in 3501 s (rate_limited)"
        );
        assert_eq!(
            refused(429, ErrorCode::RateLimited, None).to_string(),
            "too fast; retry in a moment (rate_limited, HTTP 429)"
        );
        let upload = Error::UploadRefused { status: 403, detail: "<Error>Policy</Error>".into() };
        assert_eq!(upload.to_string(), "<Error>Policy</Error> (upload_refused, HTTP 403)");
    }
}
