//! HTTP API: `GET /channels/{channelId}/messages?before=&after=&limit=` returns a page of
//! history, newest first, with `nextBefore` as the cursor for the next page.

use chat_shared::apigw::AUTHORIZER_USER_ID;
use chat_shared::chat::{self, HistoryQuery};
use chat_shared::ids::MessageId;
use chat_shared::model::{ChannelId, UserId};
use chat_shared::protocol::ErrorBody;
use chat_shared::{App, ChatError};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use tracing::error;

pub async fn handle(app: &App, request: Request) -> Response<Body> {
    match history(app, &request).await {
        Ok(page) => json(200, &page),
        Err(err) => {
            if let ChatError::Internal(detail) = &err {
                error!(error = %detail, "history failed");
            }
            json(err.http_status(), &ErrorBody::from_error(&err))
        }
    }
}

async fn history(app: &App, request: &Request) -> Result<chat::HistoryPage, ChatError> {
    let user = caller(request)?;
    let channel = request
        .path_parameters_ref()
        .and_then(|p| p.first("channelId"))
        .ok_or_else(|| ChatError::InvalidRequest("missing channel id in path".into()))
        .and_then(ChannelId::parse)?;
    let params = request.query_string_parameters_ref();
    let param = |name: &str| params.and_then(|p| p.first(name)).filter(|v| !v.is_empty());
    let id = |name: &'static str| -> Result<Option<MessageId>, ChatError> {
        param(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| ChatError::InvalidRequest(format!("{name} must be a message id")))
            })
            .transpose()
    };
    let limit = param("limit")
        .map(|v| {
            v.parse::<usize>()
                .map_err(|_| ChatError::InvalidRequest("limit must be a number".into()))
        })
        .transpose()?;
    let query = HistoryQuery {
        before: id("before")?,
        after: id("after")?,
        limit,
    };
    chat::history(app, &user, &channel, query).await
}

/// The user id the HTTP API's Lambda authorizer put into the request context.
fn caller(request: &Request) -> Result<UserId, ChatError> {
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
        .and_then(|u| {
            UserId::parse(u).map_err(|_| ChatError::Unauthorized("invalid user id".into()))
        })
}

fn json(status: u16, body: &impl Serialize) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(
            serde_json::to_string(body).expect("response bodies serialise"),
        ))
        .expect("static response parts are valid")
}
