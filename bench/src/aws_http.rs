//! The AWS SDK's HTTP layer, seen and stood in for: [`Tap`] wraps the real client to time
//! every AWS call (and, while recording, keep what it answered); [`Replay`] answers calls
//! from such a recording without any I/O, so handler CPU can be measured alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Service {
    /// DynamoDB: moto locally, the emulator whose time we subtract.
    DynamoDb,
    /// The API Gateway Management API: served by the local gateway (our code).
    Management,
    Other,
}

/// What kind of call a request is: the service and the operation name.
pub fn classify(request: &HttpRequest) -> (Service, String) {
    if let Some(target) = request.headers().get("x-amz-target") {
        if let Some(operation) = target.strip_prefix("DynamoDB_20120810.") {
            return (Service::DynamoDb, operation.to_owned());
        }
        return (Service::Other, target.to_owned());
    }
    if request.uri().contains("/@connections/") {
        let operation = match request.method() {
            "POST" => "PostToConnection",
            "GET" => "GetConnection",
            "DELETE" => "DeleteConnection",
            other => other,
        };
        return (Service::Management, operation.to_owned());
    }
    (Service::Other, format!("{} {}", request.method(), request.uri()))
}

/// One AWS call as the SDK made it.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: Service,
    pub operation: String,
    pub start: Instant,
    pub end: Instant,
}

/// One answer, as recorded for [`Replay`].
#[derive(Debug, Clone)]
pub struct Exchange {
    pub operation: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Times every call made through the clients built from [`Tap::sdk_config`], records
/// the answers while [`Tap::start_recording`] is on, and meters DynamoDB's capacity units
/// while [`Tap::meter`] is on.
#[derive(Debug, Clone, Default)]
pub struct Tap {
    calls: Arc<Mutex<Vec<Call>>>,
    recording: Arc<Mutex<Option<Vec<Exchange>>>>,
    metering: Arc<std::sync::atomic::AtomicBool>,
    meter: Arc<crate::metering::Meter>,
}

impl Tap {
    /// `base` with its HTTP client wrapped by this tap.
    pub fn sdk_config(&self, base: &SdkConfig) -> SdkConfig {
        let inner = base.http_client().unwrap_or_else(default_http_client);
        base.to_builder().http_client(SharedHttpClient::new(TapClient { tap: self.clone(), inner })).build()
    }

    /// Meters write and read units from now on (or stops): every DynamoDB write is then
    /// surrounded by reads of the items it writes, so timings taken meanwhile mean nothing.
    pub fn meter(&self, on: bool) {
        self.metering.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Capacity units metered so far.
    pub fn units(&self) -> crate::metering::Units {
        self.meter.total()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }

    pub fn start_recording(&self) {
        *self.recording.lock().unwrap() = Some(Vec::new());
    }

    pub fn stop_recording(&self) -> Vec<Exchange> {
        self.recording.lock().unwrap().take().unwrap_or_default()
    }

    /// How long, within `[from, to]`, at least one call to `service` was in flight.
    pub fn busy(&self, service: Service, from: Instant, to: Instant) -> Duration {
        let mut spans: Vec<(Instant, Instant)> = self
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.service == service && c.end > from && c.start < to)
            .map(|c| (c.start.max(from), c.end.min(to)))
            .collect();
        spans.sort();
        let mut total = Duration::ZERO;
        let mut current: Option<(Instant, Instant)> = None;
        for (start, end) in spans {
            current = match current {
                Some((s, e)) if start <= e => Some((s, e.max(end))),
                Some((s, e)) => {
                    total += e - s;
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some((s, e)) = current {
            total += e - s;
        }
        total
    }
}

/// The SDK's own hyper 1.x client (what it uses when a config names none), without TLS:
/// every endpoint here is plain HTTP on 127.0.0.1.
fn default_http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_http()
}

#[derive(Debug)]
struct TapClient {
    tap: Tap,
    inner: SharedHttpClient,
}

impl HttpClient for TapClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(TapConnector {
            tap: self.tap.clone(),
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct TapConnector {
    tap: Tap,
    inner: SharedHttpConnector,
}

impl HttpConnector for TapConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (service, operation) = classify(&request);
        let tap = self.tap.clone();
        let metered = (service == Service::DynamoDb && tap.metering.load(std::sync::atomic::Ordering::SeqCst))
            .then(|| crate::metering::Metered::of(&request, &operation))
            .flatten();
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            let before = match &metered {
                Some(metered) => Some(tap.meter.before(&inner, metered).await),
                None => None,
            };
            let start = Instant::now();
            let response = inner.call(request).await?;
            // The whole body is part of the wait (moto sends it at once anyway).
            let status = response.status();
            let headers: Vec<(String, String)> =
                response.headers().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            let body = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|e| aws_smithy_runtime_api::client::result::ConnectorError::io(e.into()))?
                .into_bytes()
                .to_vec();
            let end = Instant::now();
            if let (Some(metered), Some(before)) = (&metered, before) {
                tap.meter.after(&inner, metered, before, &body).await;
            }
            tap.calls.lock().unwrap().push(Call { service, operation: operation.clone(), start, end });
            if let Some(recording) = tap.recording.lock().unwrap().as_mut() {
                recording.push(Exchange {
                    operation,
                    status: status.as_u16(),
                    headers: headers.clone(),
                    body: body.clone(),
                });
            }
            Ok(response_of(status.as_u16(), &headers, body))
        })
    }
}

fn response_of(status: u16, headers: &[(String, String)], body: Vec<u8>) -> HttpResponse {
    let mut response =
        HttpResponse::new(StatusCode::try_from(status).expect("a valid HTTP status"), SdkBody::from(body));
    for (name, value) in headers {
        // The body is no longer streamed or compressed: its length is what it is.
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("transfer-encoding") {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

/// Answers AWS calls from a recording, in order per operation (cycling), with no I/O;
/// an operation it has no recording of gets `200 {}`. [`Replay::rewind`] starts over.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    script: Arc<HashMap<String, Vec<Exchange>>>,
    cursors: Arc<Mutex<HashMap<String, usize>>>,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

impl Replay {
    pub fn new(recording: Vec<Exchange>) -> Self {
        let mut script: HashMap<String, Vec<Exchange>> = HashMap::new();
        for exchange in recording {
            script.entry(exchange.operation.clone()).or_default().push(exchange);
        }
        Self { script: Arc::new(script), ..Default::default() }
    }

    pub fn rewind(&self) {
        self.cursors.lock().unwrap().clear();
    }

    /// Calls answered so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An SDK config whose every client is answered by this replay (region, fake
    /// credentials and an endpoint that is never connected to).
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new("bench", "bench", None, None, "replay"),
            ))
            .http_client(SharedHttpClient::new(self.clone()))
            .build()
    }
}

impl HttpClient for Replay {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Replay {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (_, operation) = classify(&request);
        let exchange = self.script.get(&operation).and_then(|answers| {
            let mut cursors = self.cursors.lock().unwrap();
            let cursor = cursors.entry(operation.clone()).or_default();
            let answer = answers.get(*cursor % answers.len()).cloned();
            *cursor += 1;
            answer
        });
        let response = match exchange {
            Some(e) => response_of(e.status, &e.headers, e.body),
            None => response_of(200, &[("content-type".into(), "application/x-amz-json-1.0".into())], b"{}".to_vec()),
        };
        HttpConnectorFuture::ready(Ok(response))
    }
}
