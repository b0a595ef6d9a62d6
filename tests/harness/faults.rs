//! Faults on purpose, for the reliability tests and benchmarks: a proxy in front of the
//! local DynamoDB that throttles a share of requests, and an invoker that delivers every
//! Lambda event twice. (The Management API's faults are the gateway's own option,
//! `local_gateway::ManagementFaults`.)

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use local_gateway::invoke::{Invoke, InvokeError, InvokeFuture};
use local_gateway::routes::Function;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What DynamoDB answers a throttled request: HTTP 400 with this error type. The SDK
/// retries it (standard retry mode, 3 attempts) before the caller sees it.
const THROTTLED: &str = concat!(
    r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","#,
    r#""message":"The level of configured provisioned throughput for the table was exceeded. "#,
    r#"Consider increasing your provisioning level with the UpdateTable API."}"#
);

/// What the caller of a request whose answer was lost gets.
const LOST: &str =
    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#;

/// An HTTP/1.1 proxy on 127.0.0.1 in front of a DynamoDB endpoint that answers a share of
/// requests (of all operations, or of the chosen ones) with `ProvisionedThroughputExceededException`
/// without forwarding them, as DynamoDB does: a throttled request changes nothing. It can
/// also lose the answers of requests it did forward. Starts with no faults;
/// [`DynamoFaultProxy::set_share`] and [`DynamoFaultProxy::set_lost_answers`] turn them on.
pub struct DynamoFaultProxy {
    url: String,
    state: Arc<ProxyState>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    /// Share of throttled requests, in millionths.
    share_ppm: AtomicU32,
    /// Share of requests forwarded whose answer is then lost (replaced by a 500), in millionths.
    lost_ppm: AtomicU32,
    /// Only these operations (`x-amz-target` suffix) are throttled; all when empty.
    operations: Mutex<Vec<String>>,
    throttled: AtomicU64,
    forwarded: AtomicU64,
    lost: AtomicU64,
}

impl DynamoFaultProxy {
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds a free port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(ProxyState::default());
        let upstream = upstream.trim_end_matches('/').to_owned();
        let http = reqwest::Client::new();
        let accept = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(serve(socket, upstream.clone(), http.clone(), state.clone()));
                }
            }
        });
        Self { url, state, accept }
    }

    /// The endpoint to give the functions' SDK config.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Throttles `share` (0..=1) of the requests from now on.
    pub fn set_share(&self, share: f64) {
        self.state.share_ppm.store((share.clamp(0.0, 1.0) * 1e6) as u32, Ordering::SeqCst);
    }

    /// From now on, `share` (0..=1) of the requests are carried out but their answer is lost
    /// on the way back: the caller gets a 500 `InternalServerError` (a timeout or a dropped
    /// connection looks the same to it).
    pub fn set_lost_answers(&self, share: f64) {
        self.state.lost_ppm.store((share.clamp(0.0, 1.0) * 1e6) as u32, Ordering::SeqCst);
    }

    /// Faults only these operations (`TransactWriteItems`, `BatchGetItem`, …); all when empty.
    pub fn only(&self, operations: &[&str]) {
        *self.state.operations.lock().unwrap() = operations.iter().map(|s| s.to_string()).collect();
    }

    /// (throttled, forwarded) requests so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.state.throttled.load(Ordering::SeqCst), self.state.forwarded.load(Ordering::SeqCst))
    }

    /// Forwarded requests whose answer was lost so far.
    pub fn lost_answers(&self) -> u64 {
        self.state.lost.load(Ordering::SeqCst)
    }
}

impl Drop for DynamoFaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

/// One keep-alive connection: requests in order, each throttled or forwarded.
async fn serve(socket: TcpStream, upstream: String, http: reqwest::Client, state: Arc<ProxyState>) {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    loop {
        let Some((head, body)) = read_request(&mut read).await else {
            return;
        };
        let operation = head
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
            .and_then(|(_, v)| v.rsplit('.').next())
            .unwrap_or_default()
            .to_owned();
        let (status, headers, body) = if chosen(&state, &state.share_ppm, &operation) {
            state.throttled.fetch_add(1, Ordering::SeqCst);
            let headers = vec![
                ("content-type".to_owned(), "application/x-amz-json-1.0".to_owned()),
                ("x-amzn-requestid".to_owned(), format!("throttled-{}", rand::random::<u64>())),
            ];
            (400, headers, THROTTLED.as_bytes().to_vec())
        } else {
            state.forwarded.fetch_add(1, Ordering::SeqCst);
            let answer = match forward(&http, &upstream, &head, body).await {
                Ok(answer) => answer,
                Err(err) => (502, vec![], err.into_bytes()),
            };
            if chosen(&state, &state.lost_ppm, &operation) {
                state.lost.fetch_add(1, Ordering::SeqCst);
                let headers = vec![("content-type".to_owned(), "application/x-amz-json-1.0".to_owned())];
                (500, headers, LOST.as_bytes().to_vec())
            } else {
                answer
            }
        };
        let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (name, value) in &headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&body);
        if write.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

fn chosen(state: &ProxyState, share: &AtomicU32, operation: &str) -> bool {
    let share = share.load(Ordering::SeqCst);
    if share == 0 {
        return false;
    }
    let operations = state.operations.lock().unwrap();
    if !operations.is_empty() && !operations.iter().any(|op| op == operation) {
        return false;
    }
    rand::random_range(0..1_000_000) < share
}

async fn read_request(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<(Head, Vec<u8>)> {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    if read.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    read.read_exact(&mut body).await.ok()?;
    Some((Head { method, target, headers }, body))
}

async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    head: &Head,
    body: Vec<u8>,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    let method = reqwest::Method::from_bytes(head.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = http.request(method, format!("{upstream}{}", head.target)).body(body);
    for (name, value) in &head.headers {
        let skip = ["host", "content-length", "connection", "transfer-encoding"];
        if !skip.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| !["content-length", "connection", "transfer-encoding"].contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let body = response.bytes().await.map_err(|e| e.to_string())?.to_vec();
    Ok((status, headers, body))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Unknown",
    }
}

/// One call through [`Twice`]: the function, and both answers.
#[derive(Debug, Clone)]
pub struct DoubleDelivery {
    pub function: Function,
    pub event: Value,
    pub answers: [Result<Value, String>; 2],
}

/// Delivers every event twice, at the same time, as Lambda's at-least-once delivery may;
/// the gateway gets the first answer. Both answers are kept for the test to compare.
pub struct Twice {
    inner: Arc<dyn Invoke>,
    pub deliveries: Arc<Mutex<Vec<DoubleDelivery>>>,
}

impl Twice {
    pub fn new(inner: Arc<dyn Invoke>) -> Self {
        Self { inner, deliveries: Arc::default() }
    }
}

impl Invoke for Twice {
    fn invoke(&self, function: Function, event: Value) -> InvokeFuture<'_> {
        Box::pin(async move {
            let (first, second) =
                tokio::join!(self.inner.invoke(function, event.clone()), self.inner.invoke(function, event.clone()));
            let as_text = |r: &Result<Value, InvokeError>| match r {
                Ok(value) => Ok(value.clone()),
                Err(err) => Err(err.to_string()),
            };
            self.deliveries.lock().unwrap().push(DoubleDelivery {
                function,
                event,
                answers: [as_text(&first), as_text(&second)],
            });
            first
        })
    }
}
