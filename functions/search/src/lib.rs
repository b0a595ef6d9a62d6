//! HTTP API: `GET /search?q=&channelId=&from=&before=&after=&hasFile=&order=&limit=&cursor=`,
//! full-text search over the messages of the caller's channels (chat_domain::search).

use chat_aws::apigw_http::{self, caller, query_param};
use chat_domain::model::{ChannelId, UserId};
use chat_domain::search::{self, SearchOrder, SearchPage, SearchRequest};
use chat_domain::{App, ChatError};
use lambda_http::{Body, Request, Response};

pub async fn handle(app: &App, request: Request) -> Response<Body> {
    if let Err(err) = apigw_http::within_limit(app, &request).await {
        return apigw_http::error(&err);
    }
    apigw_http::respond(200, run(app, &request).await)
}

async fn run(app: &App, request: &Request) -> Result<SearchPage, ChatError> {
    let user = caller(request)?;
    search::search(app, &user, parse(request)?).await
}

fn parse(request: &Request) -> Result<SearchRequest, ChatError> {
    let invalid = |name: &str, what: &str| ChatError::InvalidRequest(format!("{name} must be {what}"));
    let ms = |name: &'static str| -> Result<Option<i64>, ChatError> {
        query_param(request, name)
            .map(|v| v.parse::<i64>().map_err(|_| invalid(name, "milliseconds since the epoch")))
            .transpose()
    };
    Ok(SearchRequest {
        q: query_param(request, "q").unwrap_or_default().to_owned(),
        channel: query_param(request, "channelId").map(ChannelId::parse).transpose().map_err(ChatError::from)?,
        from: query_param(request, "from").map(UserId::parse).transpose().map_err(ChatError::from)?,
        before: ms("before")?,
        after: ms("after")?,
        has_file: match query_param(request, "hasFile") {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(invalid("hasFile", "true or false")),
        },
        order: match query_param(request, "order") {
            None | Some("newest") => SearchOrder::Newest,
            Some("relevance") => SearchOrder::Relevance,
            Some(_) => return Err(invalid("order", "newest or relevance")),
        },
        limit: query_param(request, "limit")
            .map(|v| v.parse::<usize>().map_err(|_| invalid("limit", "a number")))
            .transpose()?,
        cursor: query_param(request, "cursor").map(str::to_owned),
    })
}
