//! A local stand-in for API Gateway: a WebSocket API and an HTTP API that invoke the
//! project's Lambda handlers with the events AWS would send, and the Management API
//! (`/@connections/{id}`) those handlers post back through.
//!
//! Where a client or a function could tell the difference, it behaves as API Gateway
//! does: the authorizer runs before `$connect` and a refusal fails the handshake with
//! 401/403; routes are chosen by the `action` field, else `$default`; frames over 32 KB
//! and messages over 128 KB close the socket with 1009; posts to a closed or unknown
//! connection answer 410 `GoneException`; idle (10 min) and maximum (2 h) durations.

pub mod aws_proxy;
pub mod connections;
pub mod events;
pub mod http_api;
pub mod iam;
pub mod invoke;
pub mod local;
pub mod management;
pub mod observe;
pub mod routes;
pub mod streams;
pub mod template;
pub mod web_client;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, on};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::connections::Registry;
use crate::invoke::Invoke;

/// API Gateway's WebSocket limits (AWS docs), overridable for tests.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub max_connection_duration: Duration,
    /// How long API Gateway waits for a function: 29 s for WebSocket routes, 30 s for the
    /// HTTP API. A function still running then is answered for, whatever it does later.
    pub websocket_integration_timeout: Duration,
    pub http_integration_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            idle_timeout: Duration::from_secs(10 * 60),
            max_connection_duration: Duration::from_secs(2 * 60 * 60),
            websocket_integration_timeout: Duration::from_secs(29),
            http_integration_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The WebSocket API's stage: clients connect to `/{stage}`, functions post to
    /// `/{stage}/@connections/{id}`.
    pub stage: String,
    pub limits: Limits,
    /// Errors the Management API answers on purpose (reliability tests); off by default.
    pub faults: ManagementFaults,
    /// The stack's IAM: Management API calls are checked against the signing function's
    /// policy. `None` checks nothing.
    pub iam: Option<iam::Iam>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self { stage: "local".into(), limits: Limits::default(), faults: ManagementFaults::default(), iam: None }
    }
}

/// Fault injection for `POST /@connections/{id}` (reliability tests; none by default): each
/// post to a live connection is answered, instead of being delivered, with 410 (and the
/// connection is dropped, as if it had just gone away), 429 `LimitExceededException` or 500,
/// with the probabilities of [`FaultShares`]. The errors carry `x-amzn-ErrorType` as the real
/// API's do, so the SDK types (and retries) them. A handle: clones share the settings and the
/// counts, so a test can turn faults on after its setup.
#[derive(Debug, Clone, Default)]
pub struct ManagementFaults(Arc<FaultState>);

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultShares {
    pub gone: f64,
    pub throttled: f64,
    pub internal_error: f64,
}

#[derive(Debug, Default)]
struct FaultState {
    shares: std::sync::Mutex<FaultShares>,
    /// Injected so far: gone, throttled, internal error.
    injected: [std::sync::atomic::AtomicU64; 3],
}

impl ManagementFaults {
    pub fn set(&self, shares: FaultShares) {
        *self.0.shares.lock().expect("fault settings lock") = shares;
    }

    pub fn shares(&self) -> FaultShares {
        *self.0.shares.lock().expect("fault settings lock")
    }

    /// (gone, throttled, internal error) injected so far.
    pub fn injected(&self) -> (u64, u64, u64) {
        let [gone, throttled, internal] = &self.0.injected;
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        (load(gone), load(throttled), load(internal))
    }

    pub(crate) fn count(&self, kind: usize) {
        self.0.injected[kind].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

pub(crate) struct Gateway {
    pub options: GatewayOptions,
    pub invoker: Arc<dyn Invoke>,
    pub connections: Registry,
}

pub(crate) fn now_ms() -> i64 {
    use chat_domain::clock::{Clock, SystemClock};
    SystemClock.now_ms()
}

/// A gateway serving on a socket; stops when dropped or on [`RunningGateway::shutdown`].
pub struct RunningGateway {
    pub addr: SocketAddr,
    connections: Registry,
    invoker: Arc<dyn Invoke>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningGateway {
    /// What the functions behind this gateway counted and timed (in-process invokers).
    pub fn observed(&self) -> Option<&observe::Observed> {
        self.invoker.observed()
    }

    /// `ws://…/{stage}`: where WebSocket clients connect.
    pub fn websocket_url(&self, stage: &str) -> String {
        format!("ws://{}/{stage}", self.addr)
    }

    /// Base URL of the HTTP API.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Closed sockets whose `$disconnect` has not returned yet.
    pub fn closing_connections(&self) -> usize {
        self.connections.closing()
    }

    /// Runs every scheduled function once (what EventBridge does on each tick), with the
    /// event a scheduled rule sends: its `Input` when it has one.
    pub async fn run_schedules(&self) {
        for schedule in routes::SCHEDULES {
            let event = match schedule.input {
                Some(input) => serde_json::from_str(input).expect("schedule inputs are JSON"),
                None => events::scheduled_event(schedule.function.logical_id(), now_ms()),
            };
            if let Err(err) = self.invoker.invoke(schedule.function, event).await {
                tracing::warn!(function = schedule.function.logical_id(), error = %err, "scheduled run failed");
            }
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The management endpoint handlers must be configured with for a gateway on `addr`.
pub fn management_endpoint(addr: SocketAddr, stage: &str) -> String {
    format!("http://{addr}/{stage}")
}

pub fn router(options: GatewayOptions, invoker: Arc<dyn Invoke>) -> (Router, Registry) {
    let connections = Registry::default();
    let gateway = Arc::new(Gateway { options, invoker, connections: connections.clone() });
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/{stage}", get(websocket::connect))
        .route(
            "/{stage}/@connections/{connection_id}",
            axum::routing::post(management::post_to_connection)
                .get(management::get_connection)
                .delete(management::delete_connection),
        );
    for route in routes::HTTP_ROUTES {
        let method = route.method.parse::<axum::http::Method>().expect("route methods are valid");
        let filter = axum::routing::MethodFilter::try_from(method).expect("route methods are standard");
        router = router.route(route.path, on(filter, move |state, request| http_api::handle(state, route, request)));
    }
    let router = router.fallback(http_api::not_found).with_state(gateway);
    (router, connections)
}

/// `/metrics`: Prometheus text of every invocation's figures and the open connections.
async fn metrics(State(gateway): State<Arc<Gateway>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let open = gateway.connections.len();
    let text = match gateway.invoker.observed() {
        Some(observed) => observed.render(open),
        None => observe::Observed::default().render(open),
    };
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `/health`: 200 while DynamoDB answers, 503 with what failed otherwise.
async fn health(State(gateway): State<Arc<Gateway>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let checked = match gateway.invoker.observed() {
        Some(observed) => observed.health().await,
        None => Ok(Default::default()),
    };
    match checked {
        Ok(checks) => (axum::http::StatusCode::OK, axum::Json(serde_json::json!({"status": "ok", "checks": checks}))),
        Err(checks) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unavailable", "checks": checks})),
        ),
    }
    .into_response()
}

/// Serves on `listener` until shut down.
pub async fn serve(
    listener: TcpListener,
    options: GatewayOptions,
    invoker: Arc<dyn Invoke>,
) -> std::io::Result<RunningGateway> {
    serve_with_web_client(listener, options, invoker, None).await
}

/// [`serve`], plus a web client's static files from `web_dir` at [`web_client::MOUNT`].
pub async fn serve_with_web_client(
    listener: TcpListener,
    options: GatewayOptions,
    invoker: Arc<dyn Invoke>,
    web_dir: Option<std::path::PathBuf>,
) -> std::io::Result<RunningGateway> {
    let addr = listener.local_addr()?;
    let (mut router, connections) = router(options, invoker.clone());
    if let Some(dir) = web_dir {
        router = router.merge(web_client::router(dir));
    }
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(err) = axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
        {
            tracing::error!(error = %err, "gateway stopped");
        }
    });
    Ok(RunningGateway { addr, connections, invoker, shutdown: Some(tx), task: Some(task) })
}
