//! The API Gateway Management API: `POST`/`GET`/`DELETE /{stage}/@connections/{id}`.
//! Errors carry `x-amzn-ErrorType`, which is what the AWS SDK turns into typed errors
//! (a bare 410 would reach the handlers as an unhandled error).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Gateway;
use crate::connections::Outbound;
use crate::events::iso_time;

fn aws_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-ErrorType", error_type), ("content-type", "application/json")],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn gone() -> Response {
    aws_error(StatusCode::GONE, "GoneException", "")
}

fn wrong_stage() -> Response {
    aws_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden")
}

/// `execute-api:ManageConnections` on `arn:…:{api}/{stage}/{METHOD}/@connections/{id}`,
/// checked against the signing function's policy (when the gateway holds the stack's IAM):
/// the answer when refused.
fn refusal(gateway: &Gateway, headers: &HeaderMap, method: &str, stage: &str, connection_id: &str) -> Option<Response> {
    use crate::iam::{LOCAL_ACCOUNT, LOCAL_REGION, Need};
    let iam = gateway.options.iam.as_ref()?;
    let access_key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|rest| rest.split('/').next());
    let Some(access_key) = access_key else {
        return Some(aws_error(StatusCode::FORBIDDEN, "ForbiddenException", "Missing Authentication Token"));
    };
    let policy = iam.principal(access_key)?;
    let api = crate::template::LOCAL_WEBSOCKET_API_ID;
    let resource = format!(
        "arn:aws:execute-api:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{api}/{stage}/{method}/@connections/{connection_id}"
    );
    iam.authorize(policy, &[Need::new("execute-api:ManageConnections", resource)]).err().map(|denial| {
        let message = format!(
            "User: arn:aws:sts::{LOCAL_ACCOUNT}:assumed-role/{f}Role/{f} is not authorized to perform: {} on resource: {}",
            denial.need.action,
            denial.need.resource,
            f = denial.function
        );
        aws_error(StatusCode::FORBIDDEN, "AccessDeniedException", &message)
    })
}

pub(crate) async fn post_to_connection(
    State(gateway): State<Arc<Gateway>>,
    Path((stage, connection_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if stage != gateway.options.stage {
        return wrong_stage();
    }
    if let Some(refused) = refusal(&gateway, &headers, "POST", &stage, &connection_id) {
        return refused;
    }
    if body.len() > gateway.options.limits.max_message_bytes {
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "Message payload exceeds the maximum size",
        );
    }
    let Some(connection) = gateway.connections.get(&connection_id) else {
        return gone();
    };
    if let Some(fault) = injected_fault(&gateway.options.faults) {
        return answer_fault(&gateway, &connection_id, fault);
    }
    let out = match String::from_utf8(body.to_vec()) {
        Ok(text) => Outbound::Text(text),
        Err(err) => Outbound::Binary(err.into_bytes()),
    };
    if connection.send(out).is_err() {
        return gone();
    }
    StatusCode::OK.into_response()
}

/// In the order of [`crate::ManagementFaults::injected`].
#[derive(Debug, Clone, Copy)]
enum Fault {
    Gone = 0,
    Throttled = 1,
    InternalError = 2,
}

/// Draws whether this post fails on purpose ([`crate::ManagementFaults`], none by default).
fn injected_fault(faults: &crate::ManagementFaults) -> Option<Fault> {
    let shares = faults.shares();
    if shares == crate::FaultShares::default() {
        return None;
    }
    let draw: f64 = rand::random();
    if draw < shares.gone {
        Some(Fault::Gone)
    } else if draw < shares.gone + shares.throttled {
        Some(Fault::Throttled)
    } else if draw < shares.gone + shares.throttled + shares.internal_error {
        Some(Fault::InternalError)
    } else {
        None
    }
}

/// Answers an injected fault as the real API would. An injected 410 also drops the
/// connection, so that the answer stays true: the device went away just before the post.
fn answer_fault(gateway: &Gateway, connection_id: &str, fault: Fault) -> Response {
    let faults = &gateway.options.faults;
    faults.count(fault as usize);
    match fault {
        Fault::Gone => {
            if let Some(connection) = gateway.connections.remove(connection_id) {
                let _ = connection.send(Outbound::Close { code: 1001, reason: "Going away" });
            }
            gone()
        }
        Fault::Throttled => aws_error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException", "Rate exceeded"),
        Fault::InternalError => {
            aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerErrorException", "Internal server error")
        }
    }
}

pub(crate) async fn get_connection(
    State(gateway): State<Arc<Gateway>>,
    Path((stage, connection_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if stage != gateway.options.stage {
        return wrong_stage();
    }
    if let Some(refused) = refusal(&gateway, &headers, "GET", &stage, &connection_id) {
        return refused;
    }
    let Some(connection) = gateway.connections.get(&connection_id) else {
        return gone();
    };
    let context = &connection.context;
    axum::Json(json!({
        "connectedAt": iso_time(context.connected_at_ms),
        "lastActiveAt": iso_time(connection.last_active_ms().max(context.connected_at_ms)),
        "identity": { "sourceIp": context.source_ip, "userAgent": context.user_agent },
    }))
    .into_response()
}

pub(crate) async fn delete_connection(
    State(gateway): State<Arc<Gateway>>,
    Path((stage, connection_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if stage != gateway.options.stage {
        return wrong_stage();
    }
    if let Some(refused) = refusal(&gateway, &headers, "DELETE", &stage, &connection_id) {
        return refused;
    }
    let Some(connection) = gateway.connections.get(&connection_id) else {
        return gone();
    };
    let _ = connection.send(Outbound::Close { code: 1000, reason: "Goodbye" });
    StatusCode::NO_CONTENT.into_response()
}
