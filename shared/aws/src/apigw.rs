//! Reading API Gateway WebSocket events and shaping their responses.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use serde_json::Value;

use chat_domain::ChatError;
use chat_domain::model::{ConnectionId, UserId};
use chat_domain::protocol::ServerFrame;

/// The key under which the authorizer puts the user id into its context.
pub const AUTHORIZER_USER_ID: &str = "userId";
/// ... and the session the token belongs to (absent for tokens of no session).
pub const AUTHORIZER_SESSION: &str = "sessionId";

/// The session of the connection's token, from the authorizer's context.
pub fn ws_session(event: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    event.request_context.authorizer.fields.get(AUTHORIZER_SESSION).and_then(Value::as_str)
}

/// Who sent the event and on which connection. The user id comes only from the
/// authorizer's context, never from the client's frame.
pub fn ws_caller(event: &ApiGatewayWebsocketProxyRequest) -> Result<(UserId, ConnectionId), ChatError> {
    let context = &event.request_context;
    let user = match context.authorizer.fields.get(AUTHORIZER_USER_ID) {
        Some(Value::String(user)) => UserId::parse(user.as_str())
            .map_err(|_| ChatError::Unauthorized("authorizer gave an invalid user id".into()))?,
        _ => {
            return Err(ChatError::Unauthorized("connection has no authorized user".into()));
        }
    };
    let connection = context
        .connection_id
        .as_deref()
        .map(ConnectionId::new)
        .ok_or_else(|| ChatError::InvalidRequest("event has no connectionId".into()))?;
    Ok((user, connection))
}

/// A span naming the event's user, connection and route, for every log line of its
/// handling (never the frame's body: it may hold a message text).
pub fn ws_span(event: &ApiGatewayWebsocketProxyRequest) -> tracing::Span {
    let context = &event.request_context;
    let user = context.authorizer.fields.get(AUTHORIZER_USER_ID).and_then(Value::as_str).unwrap_or_default();
    tracing::info_span!(
        "websocket",
        user_id = user,
        connection_id = context.connection_id.as_deref().unwrap_or_default(),
        route = context.route_key.as_deref().unwrap_or_default(),
    )
}

/// How long API Gateway keeps this connection open at most, from the event's time. A
/// duration rather than a time, so that it holds whatever clock the function uses.
pub fn ws_lifetime_left_ms(event: &ApiGatewayWebsocketProxyRequest) -> i64 {
    let context = &event.request_context;
    (context.connected_at + chat_domain::chat::CONNECTION_TTL_MS - context.request_time_epoch).max(0)
}

pub fn ws_status(status: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response
}

/// A 200 whose body API Gateway sends back to the caller (the route has a route response).
pub fn ws_reply(frame: &ServerFrame) -> ApiGatewayProxyResponse {
    ws_reply_json(frame.to_json())
}

/// [`ws_reply`] of a frame serialised already.
pub fn ws_reply_json(frame: String) -> ApiGatewayProxyResponse {
    let mut response = ws_status(200);
    response.body = Some(Body::Text(frame));
    response
}
