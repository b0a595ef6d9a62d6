//! Transport: one TLS configuration (the system's root certificates, the aws-lc-rs provider
//! the AWS SDK already builds) for `https://` and `wss://`, and a small HTTP client on hyper.
//! Plain `http://` and `ws://` (the local gateway) need none of it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const TIMEOUT: Duration = Duration::from_secs(30);

/// TLS with an explicit provider, so nothing depends on a process-wide default.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    // Certificates the system has; none (a bare container) only makes TLS fail later.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

pub struct HttpClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    /// `Retry-After` in seconds (a 429 or 503), when the server sent one.
    pub retry_after_s: Option<u64>,
}

impl HttpClient {
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .build();
        Self { inner: Client::builder(TokioExecutor::new()).build(connector) }
    }

    /// One request with an optional body (its content type and bytes); the whole answer,
    /// within 30 s.
    pub async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(http::HeaderName, String)],
        body: Option<(String, Vec<u8>)>,
    ) -> Result<Reply, String> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(url)
            .header(http::header::USER_AGENT, concat!("chat-cli/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(http::header::CONTENT_TYPE, content_type);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| format!("bad request: {e}"))?;
        let exchange = async {
            let response = self.inner.request(request).await.map_err(|e| error_chain(&e))?;
            let status = response.status().as_u16();
            let retry_after_s = retry_after(response.headers());
            let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Reply { status, body, retry_after_s })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
    }
}

/// `Retry-After` as a number of seconds (the HTTP-date form is not used by the backend).
pub fn retry_after(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

/// A `multipart/form-data` body: the fields in order, then the file last (as S3's POST
/// uploads require). Answers the content type (with its boundary) and the bytes.
pub fn multipart(fields: &[(String, String)], file_name: &str, content_type: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("chat-cli-{:032x}", rand::random::<u128>());
    let mut body = Vec::with_capacity(file.len() + 1024);
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    // Quotes and line breaks cannot be in a header value; the server makes names key-safe anyway.
    let safe_name: String = file_name.chars().map(|c| if matches!(c, '"' | '\r' | '\n') { '_' } else { c }).collect();
    let disposition = format!("form-data; name=\"file\"; filename=\"{safe_name}\"");
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// hyper's errors say "client error (Connect)"; the cause is further down.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
