//! The WebSocket API: handshake (authorizer, then `$connect`), route selection on the
//! `action` field, route responses, and `$disconnect`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::connections::{Connection, Outbound, new_connection_id};
use crate::events::{self, ConnectionContext, RequestParts, WebSocketEventKind};
use crate::invoke::InvokeError;
use crate::routes::{self, Function, WEBSOCKET_AUTHORIZER, WEBSOCKET_TOKEN_QUERY_PARAMETER};
use crate::{Gateway, now_ms};

/// tungstenite's read buffer, per socket, allocated (and zeroed) when the socket is first
/// read and held as long as it is open, idle or not: most of an idle socket's memory at
/// 8 KiB (its default is 128 KiB). A read takes at most this much from the socket; a frame
/// larger than this is read in several.
const READ_BUFFER_BYTES: usize = 1024;

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

    let connection = Arc::new(Connection::new(context, &authorizer, now));
    // Registered before the 101 goes out: a post made right after $connect is queued
    // until the socket is up, not lost.
    gateway.connections.insert(connection.clone());
    info!(connection = %connection.context.connection_id, "connected");
    let limits = &gateway.options.limits;
    let on_failure = {
        let gateway = gateway.clone();
        let connection = connection.clone();
        move |err: axum::Error| {
            warn!(error = %err, "WebSocket upgrade failed");
            gateway.connections.remove(&connection.context.connection_id);
        }
    };
    upgrade
        .max_frame_size(limits.max_frame_bytes)
        .max_message_size(limits.max_message_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        // Each frame goes to the socket as it is written (the default gathers up to 128 KiB
        // first, and keeps a buffer that large).
        .write_buffer_size(0)
        .on_failed_upgrade(on_failure)
        .on_upgrade(move |socket| run_connection(gateway, connection, socket))
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

/// Why the socket's task woke.
enum Woken {
    Frame(Option<Result<Message, axum::Error>>),
    Deadline,
}

/// One task per socket reads and writes it (no split halves, no second task, no channel):
/// an idle socket is this task's state and its [`Connection`], and no buffer but
/// tungstenite's read buffer. (One function: an `async fn` awaiting another holds its
/// arguments twice.)
async fn run_connection(gateway: Arc<Gateway>, connection: Arc<Connection>, mut socket: WebSocket) {
    let limits = &gateway.options.limits;
    let closes_at = tokio::time::Instant::now() + limits.max_connection_duration;
    let deadline = tokio::time::sleep_until((tokio::time::Instant::now() + limits.idle_timeout).min(closes_at));
    let mut deadline = std::pin::pin!(deadline);
    let mut writer = Writer::default();
    let (status_code, reason): (u16, &'static str) = loop {
        let woken = std::future::poll_fn(|cx| {
            writer.pump(&mut socket, &connection, cx);
            if let Poll::Ready(frame) = socket.poll_next_unpin(cx) {
                return Poll::Ready(Woken::Frame(frame));
            }
            deadline.as_mut().poll(cx).map(|()| Woken::Deadline)
        })
        .await;
        match woken {
            Woken::Deadline => {
                let reason = if tokio::time::Instant::now() >= closes_at {
                    "Connection max duration exceeded"
                } else {
                    "Connection idle timeout"
                };
                let _ = connection.send(Outbound::Close { code: 1001, reason: "Going away" });
                break (1001, reason);
            }
            Woken::Frame(None) => break (1006, "Connection closed abnormally"),
            Woken::Frame(Some(Err(err))) => {
                if is_too_big(err) {
                    let _ = connection.send(Outbound::Close { code: 1009, reason: "Message too big" });
                    break (1009, "Message too big");
                }
                break (1006, "Connection closed abnormally");
            }
            Woken::Frame(Some(Ok(message))) => {
                deadline.as_mut().reset((tokio::time::Instant::now() + limits.idle_timeout).min(closes_at));
                match message {
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
                }
            }
        }
    };
    let id = &connection.context.connection_id;
    // Counts as closing until `$disconnect` returns.
    let _closing = gateway.connections.close(id);
    // Writes what is queued, then a close frame (unless one went out already), then closes;
    // for at most 5 s.
    let _ = connection.send(Outbound::Close { code: 1000, reason: "" });
    deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(5));
    std::future::poll_fn(|cx| {
        writer.pump(&mut socket, &connection, cx);
        if writer.done() && socket.poll_close_unpin(cx).is_ready() {
            return Poll::Ready(());
        }
        deadline.as_mut().poll(cx)
    })
    .await;
    drop(socket);
    info!(connection = %id, status_code, reason, "disconnected");

    let event = events::websocket_event(
        &connection.context,
        "$disconnect",
        &connection.authorizer(),
        now_ms(),
        WebSocketEventKind::Disconnect { status_code, reason },
    );
    if let Err(err) = gateway.invoker.invoke(Function::Disconnect, event).await {
        warn!(connection = %id, error = %err, "$disconnect failed");
    }
}

/// The writing side of a socket: moves what is queued for it into the socket, as far as the
/// socket takes it without waiting.
#[derive(Default)]
struct Writer {
    /// Written into the socket, not flushed yet.
    unflushed: bool,
    /// A close frame went out, or the socket failed: nothing more is written.
    stopped: bool,
}

impl Writer {
    fn pump(&mut self, socket: &mut WebSocket, connection: &Connection, cx: &mut Context<'_>) {
        while !self.stopped && connection.poll_pending(cx).is_ready() {
            match socket.poll_ready_unpin(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(_)) => return self.fail(connection),
                Poll::Ready(Ok(())) => {}
            }
            let Some(out) = connection.next_outbound() else { break };
            let (message, last) = match out {
                Outbound::Text(text) => (Message::Text(text.into()), false),
                Outbound::Binary(bytes) => (Message::Binary(bytes.into()), false),
                Outbound::Close { code, reason } => {
                    (Message::Close(Some(CloseFrame { code, reason: reason.into() })), true)
                }
            };
            if socket.start_send_unpin(message).is_err() {
                return self.fail(connection);
            }
            self.unflushed = true;
            self.stopped = last;
        }
        if self.unflushed {
            match socket.poll_flush_unpin(cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => self.fail(connection),
            }
        }
    }

    fn fail(&mut self, connection: &Connection) {
        connection.stop_writing();
        self.stopped = true;
        self.unflushed = false;
    }

    /// Nothing more to write, and what was written is flushed.
    fn done(&self) -> bool {
        self.stopped && !self.unflushed
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
        let _ = connection.send(Outbound::Text(answer.to_string()));
        return;
    };
    let event = events::websocket_event(
        &connection.context,
        chosen.route_key,
        &connection.authorizer(),
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
        let _ = connection.send(Outbound::Text(answer.to_string()));
        return;
    };
    match answer {
        Ok(answer) if chosen.two_way => {
            if let Some(body) = answer.get("body").and_then(Value::as_str) {
                let _ = connection.send(Outbound::Text(body.to_owned()));
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
            let _ = connection.send(Outbound::Text(answer.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoke::{Invoke, InvokeFuture};
    use std::sync::Mutex;

    /// Functions that let everyone in, echo route bodies back, and keep the events of
    /// `$connect` and `$disconnect`.
    #[derive(Default)]
    struct Functions {
        connects: Mutex<Vec<Value>>,
        disconnects: Mutex<Vec<Value>>,
    }

    impl Invoke for Functions {
        fn invoke(&self, function: Function, event: Value) -> InvokeFuture<'_> {
            Box::pin(async move {
                Ok(match function {
                    Function::Authorizer => json!({
                        "principalId": "alice",
                        "policyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]},
                        "context": {"userId": "alice"},
                    }),
                    Function::Connect => {
                        self.connects.lock().unwrap().push(event);
                        json!({"statusCode": 200})
                    }
                    Function::Disconnect => {
                        self.disconnects.lock().unwrap().push(event);
                        json!({"statusCode": 200})
                    }
                    _ => json!({"statusCode": 200, "body": event["body"]}),
                })
            })
        }
    }

    type Socket = tungstenite::WebSocket<std::net::TcpStream>;

    /// A gateway with `limits` and one client of it, and the client's connection id.
    async fn connected(limits: crate::Limits) -> (crate::RunningGateway, Arc<Functions>, Socket, String) {
        let functions = Arc::new(Functions::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let options = crate::GatewayOptions { limits, ..Default::default() };
        let gateway = crate::serve(listener, options, functions.clone()).await.unwrap();
        let url = format!("{}?token=t", gateway.websocket_url("local"));
        let addr = gateway.addr;
        let socket = tokio::task::spawn_blocking(move || {
            let stream = std::net::TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            tungstenite::client(url, stream).map(|(socket, _)| socket).map_err(|e| e.to_string())
        })
        .await
        .unwrap()
        .expect("the handshake succeeds");
        let id = functions.connects.lock().unwrap()[0]["requestContext"]["connectionId"].as_str().unwrap().to_owned();
        (gateway, functions, socket, id)
    }

    /// The client reads until the server's close frame: what came before it, and its code
    /// and reason.
    async fn read_until_closed(mut socket: Socket) -> (Vec<String>, Option<(u16, String)>) {
        tokio::task::spawn_blocking(move || {
            let mut texts = Vec::new();
            loop {
                match socket.read() {
                    Ok(tungstenite::Message::Text(text)) => texts.push(text.to_string()),
                    Ok(tungstenite::Message::Close(frame)) => {
                        let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                        // Answers the close, as clients do.
                        while socket.read().is_ok() {}
                        return (texts, close);
                    }
                    Ok(_) => {}
                    Err(_) => return (texts, None),
                }
            }
        })
        .await
        .unwrap()
    }

    /// `$disconnect`'s status code and reason, once it has run.
    async fn disconnected(gateway: &crate::RunningGateway, functions: &Functions) -> (u64, String) {
        for _ in 0..500 {
            if let Some(event) = functions.disconnects.lock().unwrap().first() {
                let context = &event["requestContext"];
                assert_eq!(context["authorizer"]["userId"], "alice", "{event}");
                assert_eq!(context["authorizer"]["principalId"], "alice", "{event}");
                return (
                    context["disconnectStatusCode"].as_u64().unwrap(),
                    context["disconnectReason"].as_str().unwrap().to_owned(),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no $disconnect (open {}, closing {})", gateway.open_connections(), gateway.closing_connections());
    }

    fn management_url(gateway: &crate::RunningGateway, id: &str) -> String {
        format!("{}/local/@connections/{}", gateway.http_url(), urlencoding::encode(id))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_arrive_in_order_and_a_deleted_connection_closes_and_is_gone() {
        let (gateway, functions, mut socket, id) = connected(crate::Limits::default()).await;
        let http = reqwest::Client::new();
        let url = management_url(&gateway, &id);
        for n in 0..50 {
            let answer = http.post(&url).body(format!("post {n}")).send().await.unwrap();
            assert_eq!(answer.status(), 200);
        }
        let answer: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(answer["identity"]["sourceIp"], "127.0.0.1", "{answer}");
        // A route's answer comes back on the socket, after the posts made before it.
        let (socket, texts) = tokio::task::spawn_blocking(move || {
            socket.send(tungstenite::Message::text(r#"{"action":"typing","n":1}"#)).unwrap();
            let mut texts = Vec::new();
            while !texts.last().is_some_and(|t: &String| t.contains("typing")) {
                if let tungstenite::Message::Text(text) = socket.read().unwrap() {
                    texts.push(text.to_string());
                }
            }
            (socket, texts)
        })
        .await
        .unwrap();
        let mut expected: Vec<String> = (0..50).map(|n| format!("post {n}")).collect();
        expected.push(r#"{"action":"typing","n":1}"#.into());
        assert_eq!(texts, expected);

        assert_eq!(http.delete(&url).send().await.unwrap().status(), 204);
        let (texts, close) = read_until_closed(socket).await;
        assert!(texts.is_empty(), "{texts:?}");
        assert_eq!(close, Some((1000, "Goodbye".into())));
        assert_eq!(disconnected(&gateway, &functions).await, (1000, "Client closed connection".into()));
        assert_eq!(http.post(&url).body("late").send().await.unwrap().status(), 410);
        assert_eq!((gateway.open_connections(), gateway.closing_connections()), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_are_written_in_order_before_an_idle_timeout_closes_with_1001() {
        let limits = crate::Limits { idle_timeout: Duration::from_millis(300), ..Default::default() };
        let (gateway, functions, socket, id) = connected(limits).await;
        let http = reqwest::Client::new();
        for n in 0..20 {
            let answer = http.post(management_url(&gateway, &id)).body(format!("post {n}")).send().await.unwrap();
            assert_eq!(answer.status(), 200);
        }
        let (texts, close) = read_until_closed(socket).await;
        assert_eq!(texts, (0..20).map(|n| format!("post {n}")).collect::<Vec<_>>());
        assert_eq!(close, Some((1001, "Going away".into())));
        assert_eq!(disconnected(&gateway, &functions).await, (1001, "Connection idle timeout".into()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_past_its_lifetime_closes_with_1001_even_when_busy() {
        let limits = crate::Limits { max_connection_duration: Duration::from_millis(500), ..Default::default() };
        let (gateway, functions, mut socket, _) = connected(limits).await;
        let socket = tokio::task::spawn_blocking(move || {
            // Pings every 50 ms: never idle.
            socket.get_ref().set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let started = std::time::Instant::now();
            loop {
                let _ = socket.send(tungstenite::Message::Ping(Vec::new().into()));
                match socket.read() {
                    Ok(tungstenite::Message::Close(frame)) => {
                        let frame = frame.unwrap();
                        assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1001, "Going away"));
                        return socket;
                    }
                    _ => assert!(started.elapsed() < Duration::from_secs(5), "not closed"),
                }
            }
        })
        .await
        .unwrap();
        drop(socket);
        assert_eq!(disconnected(&gateway, &functions).await, (1001, "Connection max duration exceeded".into()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frame_over_the_limit_closes_with_1009() {
        let limits = crate::Limits { max_frame_bytes: 1024, ..Default::default() };
        let (gateway, functions, mut socket, _) = connected(limits).await;
        let socket = tokio::task::spawn_blocking(move || {
            socket.send(tungstenite::Message::text("x".repeat(2048))).unwrap();
            socket
        })
        .await
        .unwrap();
        let (_, close) = read_until_closed(socket).await;
        assert_eq!(close, Some((1009, "Message too big".into())));
        assert_eq!(disconnected(&gateway, &functions).await, (1009, "Message too big".into()));
    }

    #[test]
    fn an_authorizer_context_over_8_kb_or_with_objects_is_refused() {
        assert!(authorizer_context_fits(&json!({"userId": "alice", "n": 1, "ok": true}), true));
        assert!(!authorizer_context_fits(&json!({"userId": "a".repeat(9 * 1024)}), true));
        assert!(!authorizer_context_fits(&json!({"roles": ["admin"]}), true));
        assert!(authorizer_context_fits(&json!({"roles": ["admin"]}), false), "HTTP API simple responses allow it");
    }
}
