//! Sign up, sign in and refresh over the HTTP API (no authorizer on these routes).

use chat_shared::accounts::{self, Credentials};
use chat_shared::apigw_http::{self, json_body};
use chat_shared::{App, ChatError};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

pub async fn handle(app: &App, request: Request) -> Response<Body> {
    match apigw_http::route_key(&request).as_str() {
        "POST /auth/signup" => apigw_http::respond(201, sign_up(app, &request).await),
        "POST /auth/signin" => apigw_http::respond(200, sign_in(app, &request).await),
        "POST /auth/refresh" => apigw_http::respond(200, refresh(app, &request).await),
        other => apigw_http::error(&ChatError::NotFound(format!("no route {other}"))),
    }
}

async fn sign_up(app: &App, request: &Request) -> Result<accounts::Session, ChatError> {
    accounts::sign_up(app, json_body::<Credentials>(request)?).await
}

async fn sign_in(app: &App, request: &Request) -> Result<accounts::Session, ChatError> {
    accounts::sign_in(app, json_body::<Credentials>(request)?).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(app: &App, request: &Request) -> Result<accounts::Session, ChatError> {
    let body: RefreshRequest = json_body(request)?;
    accounts::refresh(app, &body.refresh_token).await
}
