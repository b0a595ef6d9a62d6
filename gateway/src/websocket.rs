//! The WebSocket API: handshake (authorizer, then `$connect`), route selection on the
//! `action` field, route responses, and `$disconnect`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::connections::{Connection, Outbound, new_connection_id};
use crate::events::{self, ConnectionContext, RequestParts, WebSocketEventKind};
use crate::invoke::InvokeError;
use crate::routes::{self, Function, WEBSOCKET_AUTHORIZER, WEBSOCKET_TOKEN_QUERY_PARAMETER};
use crate::{Gateway, now_ms};

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn connect(
    State(gateway): State<Arc<Gateway>>,
    Path(stage): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<Vec<(String, String)>>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if stage != gateway.options.stage {
        return refuse(StatusCode::FORBIDDEN, "Forbidden");
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let parts = RequestParts {
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        query,
        raw_query: raw_query.unwrap_or_default(),
    };
    let now = now_ms();
    let context = ConnectionContext {
        connection_id: new_connection_id(),
        connected_at_ms: now,
        source_ip: peer.ip().to_string(),
        user_agent: parts.header("user-agent").map(str::to_owned),
        stage: stage.clone(),
        domain_name: parts.header("host").map(str::to_owned).unwrap_or_else(|| peer.to_string()),
    };

    // Identity source `route.request.querystring.token`: without it API Gateway answers 401
    // and never calls the authorizer.
    if parts.query_param(WEBSOCKET_TOKEN_QUERY_PARAMETER).is_none_or(str::is_empty) {
        return refuse(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let authorizer = match authorize(&gateway, &context, &parts, now).await {
        Ok(context) => context,
        Err(response) => return response,
    };

    let event = events::websocket_event(&context, "$connect", &authorizer, now, WebSocketEventKind::Connect(&parts));
    match gateway.invoker.invoke(Function::Connect, event).await {
        Ok(answer) => {
            let status = answer.get("statusCode").and_then(Value::as_u64).unwrap_or(200);
            if !(200..300).contains(&status) {
                let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return refuse(status, status.canonical_reason().unwrap_or("Forbidden"));
            }
        }
        Err(err) => {
            warn!(error = %err, "$connect failed");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
    }

    let (outbound, queue) = mpsc::unbounded_channel();
    let connection = Arc::new(Connection { context, authorizer, last_active_ms: AtomicI64::new(now), outbound });
    // Registered before the 101 goes out: a post made right after $connect is queued
    // until the socket is up, not lost.
    gateway.connections.insert(connection.clone());
    info!(connection = %connection.context.connection_id, "connected");
    let limits = &gateway.options.limits;
    let on_failure = {
        let gateway = gateway.clone();
        let id = connection.context.connection_id.clone();
        move |err: axum::Error| {
            warn!(error = %err, "WebSocket upgrade failed");
            gateway.connections.remove(&id);
        }
    };
    upgrade
        .max_frame_size(limits.max_frame_bytes)
        .max_message_size(limits.max_message_bytes)
        // tungstenite's default read buffer is 128 KiB per socket; 8 KiB lets one process
        // hold thousands of connections.
        .read_buffer_size(8 * 1024)
        .on_failed_upgrade(on_failure)
        .on_upgrade(move |socket| run_connection(gateway, connection, socket, queue))
}

/// Runs the WebSocket authorizer; its context (plus `principalId`) goes with every event of
/// the connection. A refusal is the handshake's answer.
async fn authorize(
    gateway: &Gateway,
    context: &ConnectionContext,
    parts: &RequestParts,
    now: i64,
) -> Result<Value, Response> {
    let event = events::websocket_authorizer_event(context, parts, now);
    let started = std::time::Instant::now();
    let answer = match gateway.invoker.invoke(WEBSOCKET_AUTHORIZER, event).await {
        Ok(answer) => answer,
        Err(InvokeError::Failed { message, .. }) if message == "Unauthorized" => {
            return Err(refuse(StatusCode::UNAUTHORIZED, "Unauthorized"));
        }
        Err(err) => {
            warn!(error = %err, "authorizer failed");
            return Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"));
        }
    };
    if !policy_allows(&answer) {
        return Err(refuse(StatusCode::FORBIDDEN, "Forbidden"));
    }
    let mut authorizer = answer.get("context").cloned().unwrap_or_else(|| json!({}));
    if !authorizer_context_fits(&authorizer, true) {
        warn!("the authorizer's context is over 8 KB or holds objects or arrays: API Gateway answers 500");
        return Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"));
    }
    if let Value::Object(map) = &mut authorizer {
        map.insert("principalId".into(), answer.get("principalId").cloned().unwrap_or(Value::Null));
        map.insert("integrationLatency".into(), json!(started.elapsed().as_millis() as u64));
    }
    Ok(authorizer)
}

/// API Gateway's rules for an authorizer's `context`: at most 8 KB, and (for WebSocket
/// and REST authorizers) only string, number and boolean values.
pub(crate) fn authorizer_context_fits(context: &Value, scalars_only: bool) -> bool {
    const MAX_CONTEXT_BYTES: usize = 8 * 1024;
    let scalars =
        !scalars_only || context.as_object().is_none_or(|m| m.values().all(|v| !v.is_object() && !v.is_array()));
    scalars && context.to_string().len() <= MAX_CONTEXT_BYTES
}

/// An IAM policy allows the call when some statement allows it and none denies it.
fn policy_allows(answer: &Value) -> bool {
    let statements = answer.pointer("/policyDocument/Statement").and_then(Value::as_array).cloned().unwrap_or_default();
    let effects: Vec<&str> = statements.iter().filter_map(|s| s.get("Effect")?.as_str()).collect();
    effects.contains(&"Allow") && !effects.contains(&"Deny")
}

async fn run_connection(
    gateway: Arc<Gateway>,
    connection: Arc<Connection>,
    socket: WebSocket,
    mut queue: mpsc::UnboundedReceiver<Outbound>,
) {
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(out) = queue.recv().await {
            let (message, last) = match out {
                Outbound::Text(text) => (Message::Text(text.into()), false),
                Outbound::Binary(bytes) => (Message::Binary(bytes.into()), false),
                Outbound::Close { code, reason } => {
                    (Message::Close(Some(CloseFrame { code, reason: reason.into() })), true)
                }
            };
            if sink.send(message).await.is_err() || last {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let limits = gateway.options.limits.clone();
    let closes_at = tokio::time::Instant::now() + limits.max_connection_duration;
    let (status_code, reason): (u16, &'static str) = loop {
        let idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
        let next = tokio::time::timeout_at(idle_deadline.min(closes_at), stream.next()).await;
        match next {
            Err(_) => {
                let reason = if tokio::time::Instant::now() >= closes_at {
                    "Connection max duration exceeded"
                } else {
                    "Connection idle timeout"
                };
                let _ = connection.outbound.send(Outbound::Close { code: 1001, reason: "Going away" });
                break (1001, reason);
            }
            Ok(None) => break (1006, "Connection closed abnormally"),
            Ok(Some(Err(err))) => {
                if is_too_big(err) {
                    let _ = connection.outbound.send(Outbound::Close { code: 1009, reason: "Message too big" });
                    break (1009, "Message too big");
                }
                break (1006, "Connection closed abnormally");
            }
            Ok(Some(Ok(message))) => match message {
                Message::Text(text) => {
                    connection.touch(now_ms());
                    tokio::spawn(route(gateway.clone(), connection.clone(), text.to_string()));
                }
                Message::Binary(bytes) => {
                    connection.touch(now_ms());
                    let body = String::from_utf8_lossy(&bytes).into_owned();
                    tokio::spawn(route(gateway.clone(), connection.clone(), body));
                }
                Message::Close(frame) => {
                    break (frame.map(|f| f.code).unwrap_or(1005), "Client closed connection");
                }
                Message::Ping(_) | Message::Pong(_) => connection.touch(now_ms()),
            },
        }
    };
    let id = connection.context.connection_id.clone();
    let _closing = gateway.connections.close(&id);
    // Lets the writer finish what is queued and stop.
    let _ = connection.outbound.send(Outbound::Close { code: 1000, reason: "" });
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    info!(connection = %id, status_code, reason, "disconnected");

    let event = events::websocket_event(
        &connection.context,
        "$disconnect",
        &connection.authorizer,
        now_ms(),
        WebSocketEventKind::Disconnect { status_code, reason },
    );
    if let Err(err) = gateway.invoker.invoke(Function::Disconnect, event).await {
        warn!(connection = %id, error = %err, "$disconnect failed");
    }
}

fn is_too_big(err: axum::Error) -> bool {
    let inner = err.into_inner();
    matches!(inner.downcast_ref::<tungstenite::Error>(), Some(tungstenite::Error::Capacity(_)))
}

/// Chooses the route by the body's `action` (the selection expression
/// `$request.body.action`), else `$default`, and invokes its function.
async fn route(gateway: Arc<Gateway>, connection: Arc<Connection>, body: String) {
    let action = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_owned));
    let chosen = action
        .as_deref()
        .filter(|a| !a.starts_with('$'))
        .and_then(routes::websocket_route)
        .or_else(|| routes::websocket_route("$default"));
    let connection_id = &connection.context.connection_id;
    let Some(chosen) = chosen else {
        let answer =
            json!({ "message": "Forbidden", "connectionId": connection_id, "requestId": events::request_id() });
        let _ = connection.outbound.send(Outbound::Text(answer.to_string()));
        return;
    };
    let event = events::websocket_event(
        &connection.context,
        chosen.route_key,
        &connection.authorizer,
        now_ms(),
        WebSocketEventKind::Message(&body),
    );
    let waited = gateway.options.limits.websocket_integration_timeout;
    let Ok(answer) = tokio::time::timeout(waited, gateway.invoker.invoke(chosen.function, event)).await else {
        // API Gateway stops waiting at 29 s; the client hears so, whatever the function does later.
        warn!(route = chosen.route_key, "integration timed out");
        let answer = json!({
            "message": "Endpoint request timed out",
            "connectionId": connection_id,
            "requestId": events::request_id(),
        });
        let _ = connection.outbound.send(Outbound::Text(answer.to_string()));
        return;
    };
    match answer {
        Ok(answer) if chosen.two_way => {
            if let Some(body) = answer.get("body").and_then(Value::as_str) {
                let _ = connection.outbound.send(Outbound::Text(body.to_owned()));
            }
        }
        Ok(_) => debug!(route = chosen.route_key, "one-way route answered"),
        Err(err) => {
            warn!(route = chosen.route_key, error = %err, "route failed");
            let answer = json!({
                "message": "Internal server error",
                "connectionId": connection_id,
                "requestId": events::request_id(),
            });
            let _ = connection.outbound.send(Outbound::Text(answer.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authorizer_context_over_8_kb_or_with_objects_is_refused() {
        assert!(authorizer_context_fits(&json!({"userId": "alice", "n": 1, "ok": true}), true));
        assert!(!authorizer_context_fits(&json!({"userId": "a".repeat(9 * 1024)}), true));
        assert!(!authorizer_context_fits(&json!({"roles": ["admin"]}), true));
        assert!(authorizer_context_fits(&json!({"roles": ["admin"]}), false), "HTTP API simple responses allow it");
    }
}
