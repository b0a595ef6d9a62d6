//! The HTTP API: every route runs the Lambda authorizer (payload 2.0, simple responses)
//! on the `Authorization` header, then the route's function with the payload 2.0 event.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, RawQuery, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tracing::warn;

use crate::events::{self, HttpRequest, RequestParts};
use crate::invoke::InvokeError;
use crate::routes::{HTTP_AUTHORIZER, HttpRoute};
use crate::{Gateway, now_ms};

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

pub(crate) async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}

pub(crate) async fn handle(
    State(gateway): State<Arc<Gateway>>,
    route: &'static HttpRoute,
    request: Request,
) -> Response {
    let (mut head, body) = request.into_parts();
    let path_parameters =
        Path::<Vec<(String, String)>>::from_request_parts(&mut head, &()).await.map(|Path(p)| p).unwrap_or_default();
    let query =
        Query::<Vec<(String, String)>>::from_request_parts(&mut head, &()).await.map(|Query(q)| q).unwrap_or_default();
    let RawQuery(raw_query) = RawQuery::from_request_parts(&mut head, &()).await.unwrap_or(RawQuery(None));
    let peer = head
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let parts = RequestParts {
        headers: head
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        query,
        raw_query: raw_query.unwrap_or_default(),
    };
    let body = match String::from_request(Request::from_parts(head.clone(), body), &()).await {
        Ok(body) => body,
        Err(_) => return message(StatusCode::BAD_REQUEST, "Body must be UTF-8"),
    };
    let domain_name = parts.header("host").unwrap_or("localhost").to_owned();
    let http_request = HttpRequest {
        method: route.method,
        path: head.uri.path(),
        route_key: format!("{} {}", route.method, route.path),
        parts: &parts,
        path_parameters: &path_parameters,
        body: (!body.is_empty()).then_some(body.as_str()),
        source_ip: &peer,
        domain_name: &domain_name,
    };

    let now = now_ms();
    let context = if route.authorized {
        match authorize(&gateway, &http_request, &parts, now).await {
            Ok(context) => Some(context),
            Err(response) => return response,
        }
    } else {
        None
    };

    let event = events::http_event(&http_request, context.as_ref(), now);
    let waited = gateway.options.limits.http_integration_timeout;
    let Ok(answer) = tokio::time::timeout(waited, gateway.invoker.invoke(route.function, event)).await else {
        // HTTP API stops waiting at 30 s and answers 503, whatever the function does later.
        warn!(route = route.path, "integration timed out");
        return message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    };
    match answer {
        Ok(answer) => lambda_response(&answer),
        Err(err) => {
            warn!(route = route.path, error = %err, "route failed");
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// Runs the HTTP API's Lambda authorizer (simple responses); its context goes to the route.
async fn authorize(
    gateway: &Gateway,
    http_request: &HttpRequest<'_>,
    parts: &RequestParts,
    now: i64,
) -> Result<Value, Response> {
    // Identity source `$request.header.Authorization`: missing means 401 without a call.
    let Some(authorization) = parts.header("authorization") else {
        return Err(message(StatusCode::UNAUTHORIZED, "Unauthorized"));
    };
    let authorizer_event = events::http_authorizer_event(http_request, authorization, now);
    match gateway.invoker.invoke(HTTP_AUTHORIZER, authorizer_event).await {
        Ok(answer) if answer.get("isAuthorized").and_then(Value::as_bool) == Some(true) => {
            let context = answer.get("context").cloned().unwrap_or_else(|| json!({}));
            if !crate::websocket::authorizer_context_fits(&context, false) {
                warn!("the authorizer's context is over 8 KB: API Gateway answers 500");
                return Err(message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"));
            }
            Ok(context)
        }
        Ok(_) => Err(message(StatusCode::FORBIDDEN, "Forbidden")),
        Err(InvokeError::Failed { message: m, .. }) if m == "Unauthorized" => {
            Err(message(StatusCode::UNAUTHORIZED, "Unauthorized"))
        }
        Err(err) => {
            warn!(error = %err, "HTTP authorizer failed");
            Err(message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"))
        }
    }
}

/// Turns a payload 2.0 Lambda response (`statusCode`, `headers`, `body`,
/// `isBase64Encoded`, `cookies`) into the HTTP response API Gateway would send.
fn lambda_response(answer: &Value) -> Response {
    let status = answer
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let text = answer.get("body").and_then(Value::as_str).unwrap_or_default();
    let body = if answer.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(bytes) => Body::from(bytes),
            Err(_) => return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
    } else {
        Body::from(text.to_owned())
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers: HashMap<String, String> =
        answer.get("headers").and_then(|h| serde_json::from_value(h.clone()).ok()).unwrap_or_default();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().append(name, value);
        }
    }
    for cookie in answer.get("cookies").and_then(Value::as_array).into_iter().flatten() {
        if let Some(Ok(value)) = cookie.as_str().map(HeaderValue::try_from) {
            response.headers_mut().append("set-cookie", value);
        }
    }
    response
}
