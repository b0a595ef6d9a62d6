//! HTTP API, read side:
//! - `GET /channels`: the caller's channels.
//! - `GET /channels/{channelId}/messages?before=&after=&limit=`: a page of history,
//!   newest first, with `nextBefore` as the cursor for the next page.

use chat_aws::apigw_http::{self, caller, channel_param, query_param};
use chat_domain::history::{self, HistoryQuery};
use chat_domain::http::ChannelList;
use chat_domain::ids::MessageId;
use chat_domain::{App, ChatError, membership};
use lambda_http::{Body, Request, Response};

pub async fn handle(app: &App, request: Request) -> Response<Body> {
    if let Err(err) = apigw_http::within_limit(app, &request).await {
        return apigw_http::error(&err);
    }
    match apigw_http::route_key(&request).as_str() {
        "GET /channels" => apigw_http::respond(200, list(app, &request).await),
        _ => apigw_http::respond(200, history(app, &request).await),
    }
}

async fn list(app: &App, request: &Request) -> Result<ChannelList, ChatError> {
    let user = caller(request)?;
    Ok(ChannelList { channels: membership::list_channels(app, &user).await? })
}

async fn history(app: &App, request: &Request) -> Result<history::HistoryPage, ChatError> {
    let user = caller(request)?;
    let channel = channel_param(request)?;
    let id = |name: &'static str| -> Result<Option<MessageId>, ChatError> {
        query_param(request, name)
            .map(|v| v.parse().map_err(|_| ChatError::InvalidRequest(format!("{name} must be a message id"))))
            .transpose()
    };
    let limit = query_param(request, "limit")
        .map(|v| v.parse::<usize>().map_err(|_| ChatError::InvalidRequest("limit must be a number".into())))
        .transpose()?;
    let query = HistoryQuery { before: id("before")?, after: id("after")?, limit };
    history::history(app, &user, &channel, query).await
}
