//! Accounts over the HTTP API: sign up, sign in and refresh (no authorizer on these), and
//! the caller's push devices (`POST /devices`, `GET /devices`, `DELETE /devices/{deviceId}`).

use chat_aws::apigw_http::{self, caller, json_body, path_param};
use chat_domain::accounts;
use chat_domain::http::{Credentials, DeviceList, NewDevice, RefreshRequest, SignOutRequest};
use chat_domain::limits;
use chat_domain::push::{self, DeviceView};
use chat_domain::{App, ChatError};
use lambda_http::{Body, Request, Response};

pub async fn handle(app: &App, request: Request) -> Response<Body> {
    let route = apigw_http::route_key(&request);
    // Sign-in counts per account and address inside, refresh per session and (refused ones)
    // per address inside; sign-up per address; everything else per signed-in user.
    let limited = match route.as_str() {
        "POST /auth/signin" | "POST /auth/refresh" => Ok(()),
        "POST /auth/signup" => limits::check(app, limits::Action::SignUp, &apigw_http::source_address(&request)).await,
        _ => apigw_http::within_limit(app, &request).await,
    };
    if let Err(err) = limited {
        return apigw_http::error(&err);
    }
    match route.as_str() {
        "POST /auth/signup" => apigw_http::respond(201, sign_up(app, &request).await),
        "POST /auth/signin" => apigw_http::respond(200, sign_in(app, &request).await),
        "POST /auth/refresh" => apigw_http::respond(200, refresh(app, &request).await),
        "POST /auth/signout" => match sign_out(app, &request).await {
            Ok(()) => apigw_http::no_content(),
            Err(err) => apigw_http::error(&err),
        },
        "POST /devices" => apigw_http::respond(200, register_device(app, &request).await),
        "GET /devices" => apigw_http::respond(200, list_devices(app, &request).await),
        "DELETE /devices/{deviceId}" => match unregister_device(app, &request).await {
            Ok(()) => apigw_http::no_content(),
            Err(err) => apigw_http::error(&err),
        },
        other => apigw_http::error(&ChatError::NotFound(format!("no route {other}"))),
    }
}

async fn sign_up(app: &App, request: &Request) -> Result<accounts::Session, ChatError> {
    accounts::sign_up(app, json_body::<Credentials>(request)?).await
}

async fn sign_in(app: &App, request: &Request) -> Result<accounts::Session, ChatError> {
    accounts::sign_in(app, json_body::<Credentials>(request)?, &apigw_http::source_address(request)).await
}

async fn refresh(app: &App, request: &Request) -> Result<accounts::Session, ChatError> {
    let body: RefreshRequest = json_body(request)?;
    accounts::refresh(app, &body.refresh_token, &apigw_http::source_address(request)).await
}

async fn register_device(app: &App, request: &Request) -> Result<DeviceView, ChatError> {
    let body: NewDevice = json_body(request)?;
    push::register(app, &caller(request)?, body.platform, &body.token).await
}

async fn list_devices(app: &App, request: &Request) -> Result<DeviceList, ChatError> {
    Ok(DeviceList { devices: push::devices(app, &caller(request)?).await? })
}

async fn unregister_device(app: &App, request: &Request) -> Result<(), ChatError> {
    push::unregister(app, &caller(request)?, path_param(request, "deviceId")?).await
}

/// `POST /auth/signout` {everywhere}: ends this device's session, or every session.
async fn sign_out(app: &App, request: &Request) -> Result<(), ChatError> {
    let body: SignOutRequest = match request.body() {
        lambda_http::Body::Empty => SignOutRequest::default(),
        _ => json_body(request)?,
    };
    let user = apigw_http::caller(request)?;
    let session = apigw_http::session(request);
    accounts::sign_out(app, &user, session.as_deref(), body.everywhere).await?;
    Ok(())
}
