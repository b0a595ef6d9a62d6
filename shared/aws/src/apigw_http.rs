//! Reading HTTP API (payload 2.0) requests and shaping their responses, for the
//! lambda_http functions.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::error;

use chat_domain::model::{ChannelId, UserId};
use chat_domain::{App, ChatError};

use crate::apigw::AUTHORIZER_USER_ID;

/// The user the HTTP API's Lambda authorizer let in.
pub fn caller(request: &Request) -> Result<UserId, ChatError> {
    let user = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|a| a.fields.get(AUTHORIZER_USER_ID))
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        _ => None,
    };
    user.ok_or_else(|| ChatError::Unauthorized("request has no authorized user".into()))
        .and_then(|u| UserId::parse(u).map_err(|_| ChatError::Unauthorized("invalid user id".into())))
}

/// The client's address as API Gateway saw it (`ip:` + address), to key limits of routes
/// nobody is signed in to.
pub fn source_address(request: &Request) -> String {
    let ip = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    };
    format!("ip:{}", ip.unwrap_or_else(|| "unknown".into()))
}

/// Counts a signed-in route against the caller's limit: reads, upload grants, or changes.
pub async fn within_limit(app: &App, request: &Request) -> Result<(), ChatError> {
    use chat_domain::limits::{Action, check};
    let route = route_key(request);
    let action = if route == "GET /search" {
        Action::Search
    } else if route.starts_with("GET ") {
        Action::Read
    } else if route == "POST /channels/{channelId}/uploads" {
        Action::Upload
    } else {
        Action::Write
    };
    check(app, action, caller(request)?.as_str()).await
}

/// The session of the caller's token, from the authorizer's context.
pub fn session(request: &Request) -> Option<String> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|a| a.fields.get(crate::apigw::AUTHORIZER_SESSION))
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        _ => None,
    }
}

/// Lambda's request id and API Gateway's, for the logs.
pub fn request_ids(request: &Request) -> (String, Option<String>) {
    let lambda = request.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default();
    let apigw = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    };
    (lambda, apigw)
}

/// `METHOD /path/{param}` of the matched route.
pub fn route_key(request: &Request) -> String {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.route_key.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

pub fn path_param<'a>(request: &'a Request, name: &str) -> Result<&'a str, ChatError> {
    request
        .path_parameters_ref()
        .and_then(|p| p.first(name))
        .ok_or_else(|| ChatError::InvalidRequest(format!("missing {name} in path")))
}

pub fn channel_param(request: &Request) -> Result<ChannelId, ChatError> {
    Ok(ChannelId::parse(path_param(request, "channelId")?)?)
}

pub fn query_param<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.query_string_parameters_ref().and_then(|p| p.first(name)).filter(|v| !v.is_empty())
}

/// The JSON body as `T`, or `invalid_request` saying what is wrong with it.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ChatError> {
    let bytes: &[u8] = match request.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    if bytes.is_empty() {
        return Err(ChatError::InvalidRequest("a JSON body is required".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| ChatError::InvalidRequest(format!("invalid JSON body: {e}")))
}

pub fn json(status: u16, body: &impl Serialize) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(serde_json::to_string(body).expect("response bodies serialise")))
        .expect("static response parts are valid")
}

pub fn no_content() -> Response<Body> {
    Response::builder().status(204).body(Body::Empty).expect("static response parts are valid")
}

/// The answer for a failed request: `{code, message}` with the code's status.
pub fn error(err: &ChatError) -> Response<Body> {
    if let ChatError::Internal(detail) = err {
        error!(error = %detail, "request failed");
    }
    let mut response = json(err.http_status(), &err.body());
    if let Some(ms) = err.retry_after_ms()
        && let Ok(value) = ms.div_ceil(1000).to_string().parse()
    {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

/// Shapes a handler's result.
pub fn respond<T: Serialize>(status: u16, result: Result<T, ChatError>) -> Response<Body> {
    match result {
        Ok(body) => json(status, &body),
        Err(err) => error(&err),
    }
}
