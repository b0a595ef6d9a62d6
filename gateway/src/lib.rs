//! A local stand-in for API Gateway: a WebSocket API and an HTTP API that invoke the
//! project's Lambda handlers with the events AWS would send, and the Management API
//! (`/@connections/{id}`) those handlers post back through.
//!
//! Where a client or a function could tell the difference, it behaves as API Gateway
//! does: the authorizer runs before `$connect` and a refusal fails the handshake with
//! 401/403; routes are chosen by the `action` field, else `$default`; frames over 32 KB
//! and messages over 128 KB close the socket with 1009; posts to a closed or unknown
//! connection answer 410 `GoneException`; idle (10 min) and maximum (2 h) durations.

pub mod connections;
pub mod events;
pub mod http_api;
pub mod invoke;
pub mod local;
pub mod management;
pub mod routes;
pub mod template;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            idle_timeout: Duration::from_secs(10 * 60),
            max_connection_duration: Duration::from_secs(2 * 60 * 60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The WebSocket API's stage: clients connect to `/{stage}`, functions post to
    /// `/{stage}/@connections/{id}`.
    pub stage: String,
    pub limits: Limits,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self { stage: "local".into(), limits: Limits::default() }
    }
}

pub(crate) struct Gateway {
    pub options: GatewayOptions,
    pub invoker: Arc<dyn Invoke>,
    pub connections: Registry,
}

pub(crate) fn now_ms() -> i64 {
    use chat_shared::clock::{Clock, SystemClock};
    SystemClock.now_ms()
}

/// A gateway serving on a socket; stops when dropped or on [`RunningGateway::shutdown`].
pub struct RunningGateway {
    pub addr: SocketAddr,
    connections: Registry,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningGateway {
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
    let mut router = Router::new().route("/{stage}", get(websocket::connect)).route(
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

/// Serves on `listener` until shut down.
pub async fn serve(
    listener: TcpListener,
    options: GatewayOptions,
    invoker: Arc<dyn Invoke>,
) -> std::io::Result<RunningGateway> {
    let addr = listener.local_addr()?;
    let (router, connections) = router(options, invoker);
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
    Ok(RunningGateway { addr, connections, shutdown: Some(tx), task: Some(task) })
}
