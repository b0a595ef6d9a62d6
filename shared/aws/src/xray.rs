//! X-Ray subsegments, one per AWS call attempt, through an SDK interceptor. With active
//! tracing Lambda records the invocation's segment and hands its trace header to the
//! function (`lambda_runtime` puts it in `_X_AMZN_TRACE_ID`); each DynamoDB, Management API,
//! SNS and S3 call then becomes a subsegment sent as UDP to the X-Ray daemon Lambda runs
//! beside the function (`AWS_XRAY_DAEMON_ADDRESS`). Nothing is sent when either is missing
//! (the local stack, tests) or when the trace is not sampled.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::SystemTime;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde_json::json;

/// Where the trace header comes from: `_X_AMZN_TRACE_ID` in Lambda.
type TraceSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Sends a subsegment per AWS call attempt to the X-Ray daemon.
#[derive(Clone)]
pub struct XrayCalls {
    daemon: SocketAddr,
    socket: Arc<UdpSocket>,
    trace: TraceSource,
}

impl std::fmt::Debug for XrayCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XrayCalls").field("daemon", &self.daemon).finish()
    }
}

/// When an attempt started, kept between the interceptor's two hooks.
#[derive(Debug, Clone, Copy)]
struct AttemptStarted(SystemTime);

impl Storable for AttemptStarted {
    type Storer = StoreReplace<Self>;
}

/// The parts of a trace header (`Root=1-…;Parent=…;Sampled=1`) a subsegment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    pub parent: String,
}

impl TraceHeader {
    /// `None` for a header without a root or parent, or of a trace that is not sampled.
    pub fn parse(header: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", value)) => root = Some(value.to_owned()),
                Some(("Parent", value)) => parent = Some(value.to_owned()),
                Some(("Sampled", value)) => sampled = value == "1",
                _ => {}
            }
        }
        sampled.then_some(Self { root: root?, parent: parent? })
    }
}

impl XrayCalls {
    /// In Lambda with active tracing: the daemon from `AWS_XRAY_DAEMON_ADDRESS`.
    pub fn from_env() -> Option<Self> {
        let address = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?;
        // The variable is `host:port`, or `tcp:host:port udp:host:port`.
        let udp = address.split_whitespace().find_map(|a| a.strip_prefix("udp:")).unwrap_or(&address);
        let daemon = udp.parse().ok()?;
        let trace: TraceSource = Arc::new(|| std::env::var("_X_AMZN_TRACE_ID").ok());
        Self::to(daemon, trace).ok()
    }

    /// Subsegments to `daemon`, under the traces `trace` names.
    pub fn to(daemon: SocketAddr, trace: TraceSource) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(if daemon.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        socket.set_nonblocking(true)?;
        Ok(Self { daemon, socket: Arc::new(socket), trace })
    }
}

/// A random id of 16 hex digits.
fn segment_id() -> String {
    hex::encode(rand_bytes())
}

fn rand_bytes() -> [u8; 8] {
    // Not for secrets: a clock-and-counter mix is enough to tell subsegments apart.
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    (nanos ^ NEXT.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).rotate_left(17)).to_be_bytes()
}

fn seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Intercept for XrayCalls {
    fn name(&self) -> &'static str {
        "XrayCalls"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(AttemptStarted(SystemTime::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(trace) = (self.trace)().as_deref().and_then(TraceHeader::parse) else { return Ok(()) };
        let started = cfg.load::<AttemptStarted>().map(|s| s.0).unwrap_or_else(SystemTime::now);
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(meta) => (meta.service().to_owned(), meta.name().to_owned()),
            None => ("AWS".to_owned(), "unknown".to_owned()),
        };
        let status = context.response().map(|r| r.status().as_u16());
        let mut document = json!({
            "name": service,
            "id": segment_id(),
            "trace_id": trace.root,
            "parent_id": trace.parent,
            "start_time": seconds(started),
            "end_time": seconds(SystemTime::now()),
            "type": "subsegment",
            "namespace": "aws",
            "aws": { "operation": operation },
        });
        match status {
            Some(status) => {
                document["http"] = json!({ "response": { "status": status } });
                document["error"] = json!((400..500).contains(&status));
                document["fault"] = json!(status >= 500);
                document["throttle"] = json!(status == 429);
            }
            // No answer at all (a timeout, a refused connection): the call faulted.
            None => document["fault"] = json!(true),
        }
        let datagram = format!("{{\"format\": \"json\", \"version\": 1}}\n{document}");
        // Best effort, never blocking the call: a full socket buffer drops the subsegment.
        let _ = self.socket.send_to(datagram.as_bytes(), self.daemon);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sampled_traces_with_a_parent_get_subsegments() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        assert_eq!(
            TraceHeader::parse(header),
            Some(TraceHeader { root: "1-5759e988-bd862e3fe1be46a994272793".into(), parent: "53995c3f42cd8ad8".into() })
        );
        assert_eq!(TraceHeader::parse(&header.replace("Sampled=1", "Sampled=0")), None);
        assert_eq!(TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"), None);
    }

    #[tokio::test]
    async fn each_call_attempt_sends_a_subsegment_to_the_daemon() {
        let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
        daemon.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let xray = XrayCalls::to(daemon.local_addr().unwrap(), Arc::new(move || Some(header.to_owned()))).unwrap();
        // DynamoDB at a port nothing listens on: the attempt fails, and is still traced.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("x", "y", None, None, "test"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .interceptor(xray)
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        assert!(client.list_tables().send().await.is_err());
        let mut buffer = [0u8; 4096];
        let (n, _) = daemon.recv_from(&mut buffer).expect("a subsegment arrives");
        let datagram = std::str::from_utf8(&buffer[..n]).unwrap();
        let (head, body) = datagram.split_once('\n').unwrap();
        assert_eq!(head, r#"{"format": "json", "version": 1}"#);
        let subsegment: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(subsegment["type"], "subsegment");
        assert_eq!(subsegment["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(subsegment["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(subsegment["name"], "DynamoDB");
        assert_eq!(subsegment["aws"]["operation"], "ListTables");
        assert_eq!(subsegment["fault"], true);
        assert_eq!(subsegment["id"].as_str().unwrap().len(), 16);
        assert!(subsegment["end_time"].as_f64().unwrap() >= subsegment["start_time"].as_f64().unwrap());
    }
}
