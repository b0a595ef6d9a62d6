//! API Gateway events, built as the JSON AWS sends (field names and shapes from the
//! AWS docs; `connectedAt` and `requestTimeEpoch` are required by the Rust parsers).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Fixed fake ids that stand where AWS puts real ones.
pub const ACCOUNT_ID: &str = "000000000000";
pub const API_ID: &str = "localapi";
pub const REGION: &str = "local";

/// What API Gateway knows about a WebSocket connection.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub connection_id: String,
    pub connected_at_ms: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
    pub stage: String,
    pub domain_name: String,
}

impl ConnectionContext {
    fn identity(&self) -> Value {
        json!({ "sourceIp": self.source_ip, "userAgent": self.user_agent })
    }
}

/// One incoming HTTP request's query and headers, in both of API Gateway's forms.
#[derive(Debug, Clone, Default)]
pub struct RequestParts {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub raw_query: String,
}

impl RequestParts {
    /// Single-value form: the last value wins, as in API Gateway's v1 events.
    fn single(pairs: &[(String, String)]) -> Value {
        let map: Map<String, Value> = pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        Value::Object(map)
    }

    fn multi(pairs: &[(String, String)]) -> Value {
        let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k).or_default().push(v);
        }
        json!(map)
    }

    /// v2 form: repeated values joined with commas.
    fn joined(pairs: &[(String, String)]) -> Value {
        let mut map: BTreeMap<&str, String> = BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k)
                .and_modify(|joined| {
                    joined.push(',');
                    joined.push_str(v)
                })
                .or_insert_with(|| v.clone());
        }
        json!(map)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

pub fn request_id() -> String {
    use base64::Engine as _;
    let bytes: [u8; 12] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ws_request_context(
    connection: &ConnectionContext,
    route_key: &str,
    event_type: &str,
    now_ms: i64,
    request_id: &str,
) -> Map<String, Value> {
    let mut context = Map::new();
    context.insert("routeKey".into(), json!(route_key));
    context.insert("eventType".into(), json!(event_type));
    context.insert("extendedRequestId".into(), json!(request_id));
    context.insert("requestTime".into(), json!(clf_time(now_ms)));
    context.insert("messageDirection".into(), json!("IN"));
    context.insert("stage".into(), json!(connection.stage));
    context.insert("connectedAt".into(), json!(connection.connected_at_ms));
    context.insert("requestTimeEpoch".into(), json!(now_ms));
    context.insert("identity".into(), connection.identity());
    context.insert("requestId".into(), json!(request_id));
    context.insert("domainName".into(), json!(connection.domain_name));
    context.insert("connectionId".into(), json!(connection.connection_id));
    context.insert("apiId".into(), json!(API_ID));
    context
}

/// The REQUEST authorizer event for `$connect` (no connectionId/routeKey at top level).
pub fn websocket_authorizer_event(connection: &ConnectionContext, request: &RequestParts, now_ms: i64) -> Value {
    let request_id = request_id();
    json!({
        "type": "REQUEST",
        "methodArn": format!(
            "arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{}/$connect",
            connection.stage
        ),
        "headers": RequestParts::single(&request.headers),
        "multiValueHeaders": RequestParts::multi(&request.headers),
        "queryStringParameters": RequestParts::single(&request.query),
        "multiValueQueryStringParameters": RequestParts::multi(&request.query),
        "stageVariables": {},
        "requestContext": Value::Object(ws_request_context(connection, "$connect", "CONNECT", now_ms, &request_id)),
    })
}

/// The event of a WebSocket route. `authorizer` is the authorizer's context plus
/// `principalId`, which AWS passes to every route of the connection.
pub fn websocket_event(
    connection: &ConnectionContext,
    route_key: &str,
    authorizer: &Value,
    now_ms: i64,
    kind: WebSocketEventKind<'_>,
) -> Value {
    let request_id = request_id();
    let event_type = match kind {
        WebSocketEventKind::Connect(_) => "CONNECT",
        WebSocketEventKind::Message(_) => "MESSAGE",
        WebSocketEventKind::Disconnect { .. } => "DISCONNECT",
    };
    let mut context = ws_request_context(connection, route_key, event_type, now_ms, &request_id);
    context.insert("authorizer".into(), authorizer.clone());
    let mut event = Map::new();
    match kind {
        WebSocketEventKind::Connect(request) => {
            event.insert("headers".into(), RequestParts::single(&request.headers));
            event.insert("multiValueHeaders".into(), RequestParts::multi(&request.headers));
            event.insert("queryStringParameters".into(), RequestParts::single(&request.query));
            event.insert("multiValueQueryStringParameters".into(), RequestParts::multi(&request.query));
        }
        WebSocketEventKind::Message(body) => {
            context.insert("messageId".into(), json!(self::request_id()));
            event.insert("body".into(), json!(body));
        }
        WebSocketEventKind::Disconnect { status_code, reason } => {
            context.insert("disconnectStatusCode".into(), json!(status_code));
            context.insert("disconnectReason".into(), json!(reason));
            event.insert("headers".into(), json!({}));
        }
    }
    event.insert("requestContext".into(), Value::Object(context));
    event.insert("isBase64Encoded".into(), json!(false));
    Value::Object(event)
}

pub enum WebSocketEventKind<'a> {
    Connect(&'a RequestParts),
    Message(&'a str),
    Disconnect { status_code: u16, reason: &'a str },
}

/// An HTTP API request as seen by a route, or by its authorizer.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub route_key: String,
    pub parts: &'a RequestParts,
    pub path_parameters: &'a [(String, String)],
    pub body: Option<&'a str>,
    pub source_ip: &'a str,
    pub domain_name: &'a str,
}

fn http_request_context(request: &HttpRequest<'_>, now_ms: i64) -> Map<String, Value> {
    let request_id = request_id();
    let mut context = Map::new();
    context.insert("accountId".into(), json!(ACCOUNT_ID));
    context.insert("apiId".into(), json!(API_ID));
    context.insert("domainName".into(), json!(request.domain_name));
    context.insert("domainPrefix".into(), json!(API_ID));
    context.insert(
        "http".into(),
        json!({
            "method": request.method,
            "path": request.path,
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": request.parts.header("user-agent").unwrap_or_default(),
        }),
    );
    context.insert("requestId".into(), json!(request_id));
    context.insert("routeKey".into(), json!(request.route_key));
    context.insert("stage".into(), json!("$default"));
    context.insert("time".into(), json!(clf_time(now_ms)));
    context.insert("timeEpoch".into(), json!(now_ms));
    context
}

fn http_common(request: &HttpRequest<'_>) -> Map<String, Value> {
    let mut event = Map::new();
    let lower_headers: Vec<(String, String)> =
        request.parts.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(request.route_key));
    event.insert("rawPath".into(), json!(request.path));
    event.insert("rawQueryString".into(), json!(request.parts.raw_query));
    event.insert("headers".into(), RequestParts::joined(&lower_headers));
    if !request.parts.query.is_empty() {
        event.insert("queryStringParameters".into(), RequestParts::joined(&request.parts.query));
    }
    if !request.path_parameters.is_empty() {
        event.insert("pathParameters".into(), RequestParts::single(request.path_parameters));
    }
    event
}

/// HTTP API Lambda authorizer event (payload format 2.0).
pub fn http_authorizer_event(request: &HttpRequest<'_>, identity: &str, now_ms: i64) -> Value {
    let mut event = http_common(request);
    event.insert("type".into(), json!("REQUEST"));
    event.insert(
        "routeArn".into(),
        json!(format!(
            "arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/$default/{}{}",
            request.method, request.path
        )),
    );
    event.insert("identitySource".into(), json!([identity]));
    event.insert("requestContext".into(), Value::Object(http_request_context(request, now_ms)));
    Value::Object(event)
}

/// HTTP API route event (payload format 2.0), with the authorizer's context.
pub fn http_event(request: &HttpRequest<'_>, authorizer_context: Option<&Value>, now_ms: i64) -> Value {
    let mut event = http_common(request);
    let mut context = http_request_context(request, now_ms);
    if let Some(authorizer_context) = authorizer_context {
        context.insert("authorizer".into(), json!({ "lambda": authorizer_context }));
    }
    event.insert("requestContext".into(), Value::Object(context));
    event.insert("isBase64Encoded".into(), json!(false));
    if let Some(body) = request.body {
        event.insert("body".into(), json!(body));
    }
    Value::Object(event)
}

/// The event an EventBridge schedule rule sends to its target.
pub fn scheduled_event(rule: &str, now_ms: i64) -> Value {
    json!({
        "version": "0",
        "id": request_id(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": iso_time(now_ms),
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}")],
        "detail": {},
    })
}

/// `23/Nov/2026:08:10:27 +0000`, the format of `requestTime`.
pub fn clf_time(ms: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// ISO-8601 with milliseconds, as the Management API's GetConnection answers.
pub fn iso_time(ms: i64) -> String {
    aws_smithy_types::DateTime::from_millis(ms).fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_time_is_in_api_gateways_format() {
        assert_eq!(clf_time(1_795_421_427_000), "23/Nov/2026:08:10:27 +0000");
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn websocket_events_parse_as_the_handlers_expect() {
        let connection = ConnectionContext {
            connection_id: "L0SM9cOFvHcCIhw=".into(),
            connected_at_ms: 1,
            source_ip: "127.0.0.1".into(),
            user_agent: None,
            stage: "local".into(),
            domain_name: "127.0.0.1:1".into(),
        };
        let authorizer = json!({"principalId": "alice", "userId": "alice"});
        let event = websocket_event(&connection, "sendMessage", &authorizer, 2, WebSocketEventKind::Message("{}"));
        let parsed: aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest = serde_json::from_value(event).unwrap();
        assert_eq!(parsed.request_context.connection_id.as_deref(), Some("L0SM9cOFvHcCIhw="));
        assert_eq!(parsed.request_context.authorizer.fields["userId"], "alice");
        assert_eq!(parsed.body.as_deref(), Some("{}"));

        let parts = RequestParts { query: vec![("token".into(), "t".into())], ..Default::default() };
        let auth = websocket_authorizer_event(&connection, &parts, 2);
        let parsed: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_value(auth).unwrap();
        assert_eq!(parsed.query_string_parameters.first("token"), Some("t"));
    }
}
