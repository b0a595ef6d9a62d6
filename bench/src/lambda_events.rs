//! Lambda events as API Gateway sends them, built by the local gateway's own event code,
//! for invoking handlers directly (CPU benchmarks, cold starts, property tests).

use chat_domain::clock::{Clock, SystemClock};
use local_gateway::events::{self, ConnectionContext, HttpRequest, RequestParts, WebSocketEventKind};
use serde_json::{Value, json};

pub fn now_ms() -> i64 {
    SystemClock.now_ms()
}

pub fn connection(connection_id: &str) -> ConnectionContext {
    ConnectionContext {
        connection_id: connection_id.to_owned(),
        connected_at_ms: now_ms(),
        source_ip: "127.0.0.1".into(),
        user_agent: Some("bench".into()),
        stage: e2e::STAGE.into(),
        domain_name: "127.0.0.1".into(),
    }
}

/// The authorizer context every route of a connection gets.
pub fn authorizer(user: &str) -> Value {
    json!({ "principalId": user, "userId": user })
}

/// A WebSocket frame from `user` on `connection_id`, routed as the gateway routes it.
pub fn frame_event(user: &str, connection_id: &str, route_key: &str, body: &str) -> Value {
    events::websocket_event(
        &connection(connection_id),
        route_key,
        &authorizer(user),
        now_ms(),
        WebSocketEventKind::Message(body),
    )
}

/// sendMessage from `user` on a connection that is not in Presence (so the fan-out reaches
/// every other member's device and no device of the sender).
pub fn send_event(user: &str, channel: &str, client_msg_id: &str) -> Value {
    let body =
        json!({"action": "sendMessage", "channelId": channel, "clientMsgId": client_msg_id, "text": "hello there"});
    frame_event(user, "BenchS3nder0=", "sendMessage", &body.to_string())
}

pub fn connect_event(user: &str, connection_id: &str) -> Value {
    let parts = RequestParts {
        headers: vec![("Host".into(), "127.0.0.1".into())],
        query: vec![("token".into(), "redacted".into())],
        raw_query: "token=redacted".into(),
    };
    events::websocket_event(
        &connection(connection_id),
        "$connect",
        &authorizer(user),
        now_ms(),
        WebSocketEventKind::Connect(&parts),
    )
}

pub fn disconnect_event(user: &str, connection_id: &str) -> Value {
    events::websocket_event(
        &connection(connection_id),
        "$disconnect",
        &authorizer(user),
        now_ms(),
        WebSocketEventKind::Disconnect { status_code: 1000, reason: "Client closed connection" },
    )
}

/// The `$connect` authorizer's event for a handshake carrying `token`.
pub fn authorizer_event(token: &str) -> Value {
    let parts = RequestParts {
        headers: vec![("Host".into(), "127.0.0.1".into())],
        query: vec![("token".into(), token.into())],
        raw_query: format!("token={token}"),
    };
    events::websocket_authorizer_event(&connection("BenchAuth0riz="), &parts, now_ms())
}

/// An HTTP API (payload 2.0) request; `user` is the authorizer's verdict (None: a route
/// without authorizer).
pub fn http_event(
    method: &str,
    route_key: &str,
    path_parameters: &[(&str, &str)],
    query: &[(&str, &str)],
    body: Option<&str>,
    user: Option<&str>,
) -> Value {
    // rawPath as API Gateway passes it: as the client sent it, so percent-encoded.
    let mut path = route_key.split_once(' ').map_or(route_key, |(_, p)| p).to_owned();
    for (name, value) in path_parameters {
        path = path.replace(&format!("{{{name}}}"), &percent_encode(value));
    }
    let parts = RequestParts {
        headers: vec![("content-type".into(), "application/json".into())],
        query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        raw_query: query
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&"),
    };
    let path_parameters: Vec<(String, String)> =
        path_parameters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let request = HttpRequest {
        method,
        path: &path,
        route_key: route_key.to_owned(),
        parts: &parts,
        path_parameters: &path_parameters,
        body,
        source_ip: "127.0.0.1",
        domain_name: "127.0.0.1",
    };
    events::http_event(&request, user.map(|u| json!({ "userId": u })).as_ref(), now_ms())
}

pub fn history_event(user: &str, channel: &str, limit: &str) -> Value {
    http_event(
        "GET",
        "GET /channels/{channelId}/messages",
        &[("channelId", channel)],
        &[("limit", limit)],
        None,
        Some(user),
    )
}

/// An EventBridge scheduled event (the presence sweep's trigger).
pub fn scheduled_event(rule: &str) -> Value {
    events::scheduled_event(rule, now_ms())
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
