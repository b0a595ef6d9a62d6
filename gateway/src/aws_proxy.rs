//! A proxy between the functions and the local AWS endpoint (moto) that holds every
//! request to the calling function's IAM policy from template.yaml. The caller is who
//! signed the request (the access key id in its SigV4 credential, as in AWS); what it
//! needs is derived per service the way AWS authorizes it: DynamoDB per table or index
//! and per item action inside transactions and batches, S3 per object key (presigned
//! URLs and POST uploads by who signed them), SNS per topic, endpoint or application.
//! A refused request never reaches moto and is answered with AWS's own error shape, so
//! the handler sees `AccessDeniedException` exactly as it would in Lambda.
//!
//! Requests signed by anyone else (the test harness, the tools that create tables) pass
//! unchecked: they stand for the account's administrator.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::iam::{Denial, Iam, LOCAL_ACCOUNT, LOCAL_REGION, Need};

/// A running proxy; stops when dropped.
pub struct AwsProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl AwsProxy {
    /// Serves on a free 127.0.0.1 port in front of `upstream` (moto's URL).
    pub async fn start(upstream: &str, iam: Iam) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            iam,
        });
        let router = axum::Router::new().fallback(handle).with_state(state);
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(error = %err, "AWS proxy stopped");
            }
        });
        Ok(Self { addr, task })
    }

    /// The endpoint URL to give the functions' SDK config.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    iam: Iam,
}

/// The parts of a request the checks read.
pub struct Incoming<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

async fn handle(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let incoming = Incoming {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body: &body,
    };
    if let Some(refused) = refusal(&state.iam, &incoming) {
        return refused;
    }
    forward(&state, &parts, body).await.unwrap_or_else(|err| (StatusCode::BAD_GATEWAY, err).into_response())
}

/// The IAM check of one request: the answer AWS would give when it refuses.
fn refusal(iam: &Iam, request: &Incoming) -> Option<Response> {
    if request.method == Method::OPTIONS {
        return None; // CORS preflight: S3 answers it without credentials.
    }
    let Some(credential) = credential(request) else {
        // Uploads are private: nobody reads or writes them unsigned.
        return Some(s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied"));
    };
    let policy = iam.principal(&credential.access_key)?;
    let needs = match credential.service.as_str() {
        "dynamodb" => dynamodb_needs(request),
        "s3" => s3_needs(request),
        "sns" => sns_needs(request),
        other => Err(format!("the local IAM check does not know the service {other}")),
    };
    let needs = match needs {
        Ok(needs) => needs,
        Err(unknown) => {
            tracing::error!(target: "iam", function = %policy.function, "{unknown}");
            let denial = Denial { function: policy.function.clone(), need: Need::new(unknown, "*") };
            return Some(denied(&credential.service, &denial));
        }
    };
    iam.authorize(policy, &needs).err().map(|denial| denied(&credential.service, &denial))
}

struct Credential {
    access_key: String,
    service: String,
}

/// `Credential=AKID/20261129/us-east-1/dynamodb/aws4_request` from the Authorization
/// header, a presigned URL's `X-Amz-Credential`, or a POST upload's `x-amz-credential` field.
fn credential(request: &Incoming) -> Option<Credential> {
    let scope = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .map(|rest| rest.split([',', ' ']).next().unwrap_or_default().to_owned())
        .or_else(|| query_param(request.query, "X-Amz-Credential"))
        .or_else(|| form_field(request.body, "x-amz-credential"))?;
    let mut parts = scope.split('/');
    let access_key = parts.next()?.to_owned();
    let service = parts.nth(2)?.to_owned();
    Some(Credential { access_key, service })
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.eq_ignore_ascii_case(name).then(|| urlencoding::decode(value).map(|v| v.into_owned()).ok()).flatten()
    })
}

/// A field of a `multipart/form-data` body (the presigned POST upload).
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body.get(..body.len().min(64 * 1024))?);
    let marker = format!("name=\"{name}\"");
    let start = text.find(&marker)? + marker.len();
    let value = text[start..].split_once("\r\n\r\n")?.1;
    Some(value.split("\r\n").next()?.to_owned())
}

fn table_arn(table: &str) -> String {
    format!("arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT}:table/{table}")
}

/// What DynamoDB checks: the operation's action on the table (or index); inside
/// `TransactWriteItems` the action of each item; batches once per table.
pub fn dynamodb_needs(request: &Incoming) -> Result<Vec<Need>, String> {
    let operation = request
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once('.'))
        .map(|(_, op)| op.to_owned())
        .ok_or("a DynamoDB request without X-Amz-Target")?;
    let body: Value = serde_json::from_slice(request.body).map_err(|e| format!("DynamoDB body: {e}"))?;
    let table = |value: &Value| value.get("TableName").and_then(Value::as_str).map(str::to_owned);
    let action = |name: &str| format!("dynamodb:{name}");
    let mut needs = Vec::new();
    match operation.as_str() {
        // DynamoDB Streams (signed as `dynamodb`): on the stream's ARN. A shard iterator is
        // opaque in AWS; moto's begin with the stream ARN, which is what the check needs.
        "DescribeStream" | "GetShardIterator" | "GetRecords" => {
            let arn = body
                .get("StreamArn")
                .and_then(Value::as_str)
                .or_else(|| body.get("ShardIterator").and_then(Value::as_str).and_then(|i| i.split('|').next()))
                .ok_or_else(|| format!("dynamodb:{operation} without a stream"))?;
            needs.push(Need::new(action(&operation), arn));
        }
        "ListStreams" => needs.push(Need::new(action(&operation), "*")),
        "BatchGetItem" | "BatchWriteItem" => {
            for name in body.get("RequestItems").and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
                needs.push(Need::new(action(&operation), table_arn(name)));
            }
        }
        "TransactWriteItems" | "TransactGetItems" => {
            for item in body.get("TransactItems").and_then(Value::as_array).into_iter().flatten() {
                let (kind, inner) =
                    item.as_object().and_then(|m| m.iter().next()).ok_or("a transaction item without an operation")?;
                let item_action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    other => return Err(format!("unknown transaction item {other}")),
                };
                let name = table(inner).ok_or("a transaction item without TableName")?;
                needs.push(Need::new(action(item_action), table_arn(&name)));
            }
        }
        _ => {
            let name = table(&body).ok_or_else(|| format!("dynamodb:{operation} without TableName"))?;
            let resource = match body.get("IndexName").and_then(Value::as_str) {
                Some(index) => format!("{}/index/{index}", table_arn(&name)),
                None => table_arn(&name),
            };
            needs.push(Need::new(action(&operation), resource));
        }
    }
    needs.sort();
    needs.dedup();
    Ok(needs)
}

/// What S3 checks, path-style: the object action on `arn:aws:s3:::bucket/key`.
pub fn s3_needs(request: &Incoming) -> Result<Vec<Need>, String> {
    let path = request.path.trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) if !key.is_empty() => (bucket, Some(key)),
        _ => (path.trim_end_matches('/'), None),
    };
    let object = |key: &str| {
        let key = urlencoding::decode(key).map(|k| k.into_owned()).unwrap_or_else(|_| key.to_owned());
        format!("arn:aws:s3:::{bucket}/{key}")
    };
    let need = match (request.method.as_str(), key) {
        ("GET", Some(key)) if request.query.split('&').any(|q| q == "tagging" || q == "tagging=") => {
            Need::new("s3:GetObjectTagging", object(key))
        }
        ("GET" | "HEAD", Some(key)) => Need::new("s3:GetObject", object(key)),
        ("PUT", Some(key)) if request.query.split('&').any(|q| q == "tagging" || q == "tagging=") => {
            Need::new("s3:PutObjectTagging", object(key))
        }
        ("PUT", Some(key)) => Need::new("s3:PutObject", object(key)),
        ("DELETE", Some(key)) => Need::new("s3:DeleteObject", object(key)),
        ("POST", None) if request.query.split('&').any(|q| q == "delete" || q == "delete=") => {
            let body = String::from_utf8_lossy(request.body);
            let keys: Vec<Need> = body
                .split("<Key>")
                .skip(1)
                .filter_map(|rest| rest.split("</Key>").next())
                .map(|key| Need::new("s3:DeleteObject", format!("arn:aws:s3:::{bucket}/{key}")))
                .collect();
            return Ok(keys);
        }
        ("POST", None) => {
            let key = form_field(request.body, "key").ok_or("a POST upload without a key field")?;
            let object = format!("arn:aws:s3:::{bucket}/{key}");
            // Tags set by the upload need their own permission, as with PUT and x-amz-tagging.
            if form_field(request.body, "tagging").is_some() {
                return Ok(vec![Need::new("s3:PutObject", &object), Need::new("s3:PutObjectTagging", object)]);
            }
            Need::new("s3:PutObject", object)
        }
        ("GET" | "HEAD", None) => Need::new("s3:ListBucket", format!("arn:aws:s3:::{bucket}")),
        (method, _) => return Err(format!("s3:{method} on {path} is not known to the local IAM check")),
    };
    Ok(vec![need])
}

/// What SNS checks: the action on the topic, endpoint or platform application named.
pub fn sns_needs(request: &Incoming) -> Result<Vec<Need>, String> {
    let form = String::from_utf8_lossy(request.body);
    let field = |name: &str| query_param(&form, name).or_else(|| query_param(request.query, name));
    let action = field("Action").ok_or("an SNS request without Action")?;
    let resource = match action.as_str() {
        "Publish" => field("TargetArn").or_else(|| field("TopicArn")),
        "CreatePlatformEndpoint" => field("PlatformApplicationArn"),
        "SetEndpointAttributes" | "GetEndpointAttributes" | "DeleteEndpoint" => field("EndpointArn"),
        _ => field("TopicArn"),
    }
    .ok_or_else(|| format!("sns:{action} without the ARN it acts on"))?;
    Ok(vec![Need::new(format!("sns:{action}"), resource)])
}

/// The refusal in the service's own error shape.
fn denied(service: &str, denial: &Denial) -> Response {
    let message = format!(
        "User: arn:aws:sts::{LOCAL_ACCOUNT}:assumed-role/{function}Role/{function} is not authorized to perform: \
         {action} on resource: {resource} because no identity-based policy allows the {action} action",
        function = denial.function,
        action = denial.need.action,
        resource = denial.need.resource,
    );
    match service {
        "dynamodb" => (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.0")],
            serde_json::json!({"__type": "com.amazon.coral.service#AccessDeniedException", "Message": message})
                .to_string(),
        )
            .into_response(),
        "sns" => (
            StatusCode::FORBIDDEN,
            [("content-type", "text/xml")],
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>AuthorizationError</Code>\
                 <Message>{}</Message></Error><RequestId>local</RequestId></ErrorResponse>",
                xml_escape(&message)
            ),
        )
            .into_response(),
        _ => s3_error(StatusCode::FORBIDDEN, "AccessDenied", &message),
    }
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/xml")],
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}</Message>\
             <RequestId>local</RequestId></Error>",
            xml_escape(message)
        ),
    )
        .into_response()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

const HOP_BY_HOP: [&str; 4] = ["host", "content-length", "connection", "transfer-encoding"];

async fn forward(
    state: &ProxyState,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Result<Response, String> {
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).map_err(|e| e.to_string())?;
    let mut request = state.http.request(method, format!("{}{path_and_query}", state.upstream)).body(body);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request.send().await.map_err(|e| format!("upstream: {e}"))?;
    let mut response = Response::builder().status(answer.status().as_u16());
    // A HEAD answer's length is the object's: the one header that carries its size.
    let head = parts.method == Method::HEAD;
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) || (head && name.as_str() == "content-length") {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let bytes = answer.bytes().await.map_err(|e| format!("upstream body: {e}"))?;
    response.body(Body::from(bytes)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamo(operation: &str, body: Value) -> Vec<Need> {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-target", format!("DynamoDB_20120810.{operation}").parse().unwrap());
        let body = body.to_string();
        let request =
            Incoming { method: &Method::POST, path: "/", query: "", headers: &headers, body: body.as_bytes() };
        dynamodb_needs(&request).unwrap()
    }

    #[test]
    fn a_transaction_needs_each_items_own_action() {
        let needs = dynamo(
            "TransactWriteItems",
            serde_json::json!({"TransactItems": [
                {"Update": {"TableName": "Messages", "Key": {}}},
                {"Put": {"TableName": "Channels", "Item": {}}},
                {"ConditionCheck": {"TableName": "Channels", "Key": {}}},
            ]}),
        );
        let actions: Vec<(&str, &str)> =
            needs.iter().map(|n| (n.action.as_str(), n.resource.rsplit('/').next().unwrap())).collect();
        assert_eq!(
            actions,
            [
                ("dynamodb:ConditionCheckItem", "Channels"),
                ("dynamodb:PutItem", "Channels"),
                ("dynamodb:UpdateItem", "Messages")
            ]
        );
    }

    #[test]
    fn a_query_on_an_index_needs_the_index_arn() {
        let needs = dynamo("Query", serde_json::json!({"TableName": "Channels", "IndexName": "UserChannels"}));
        assert_eq!(needs[0].resource, format!("{}/index/UserChannels", table_arn("Channels")));
    }

    #[test]
    fn a_presigned_post_is_checked_as_put_object_by_its_signer() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/c/u/f.png\r\n--b\r\n\
                    Content-Disposition: form-data; name=\"x-amz-credential\"\r\n\r\nChannelsFunction/20261129/us-east-1/s3/aws4_request\r\n--b--\r\n";
        let headers = HeaderMap::new();
        let request =
            Incoming { method: &Method::POST, path: "/bucket", query: "", headers: &headers, body: body.as_bytes() };
        assert_eq!(s3_needs(&request).unwrap(), [Need::new("s3:PutObject", "arn:aws:s3:::bucket/uploads/c/u/f.png")]);
        let credential = credential(&request).unwrap();
        assert_eq!((credential.access_key.as_str(), credential.service.as_str()), ("ChannelsFunction", "s3"));
    }
}
