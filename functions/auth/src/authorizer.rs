//! The Lambda authorizer: one function serves both APIs.
//! - WebSocket `$connect` (REQUEST authorizer): token in the `token` query parameter
//!   (browsers cannot set headers on a WebSocket). Refusal is the error "Unauthorized",
//!   which API Gateway turns into a 401 handshake failure.
//! - HTTP API (payload 2.0, simple responses): token in `Authorization: Bearer …`.
//!
//! Either way the user id goes into the authorizer context, from where API Gateway hands
//! it to every route of the request or connection. Tokens are never logged.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use chat_aws::apigw::{AUTHORIZER_SESSION, AUTHORIZER_USER_ID};
use chat_domain::App;
use chat_domain::ports::{TokenError, Verified};
use serde_json::{Value, json};
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// This exact text is what API Gateway turns into 401.
    #[error("Unauthorized")]
    Unauthorized,
    #[error("not an authorizer event: {0}")]
    BadEvent(String),
    /// The session could not be looked up: API Gateway answers 500, not a wrong 401.
    #[error("session lookup failed: {0}")]
    Store(String),
}

pub async fn handle(app: &App, event: Value) -> Result<Value, AuthorizerError> {
    if event.get("routeArn").is_some() {
        let event: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_value(event).map_err(|e| AuthorizerError::BadEvent(e.to_string()))?;
        Ok(serde_json::to_value(authorize_http(app, &event).await?).expect("responses serialise"))
    } else {
        let event: ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_value(event).map_err(|e| AuthorizerError::BadEvent(e.to_string()))?;
        Ok(serde_json::to_value(authorize_websocket(app, &event).await?).expect("responses serialise"))
    }
}

/// The token's user and session, if the token is valid and its session is not signed out
/// (one GetItem for tokens of a session).
async fn check(app: &App, token: &str) -> Result<Option<Verified>, AuthorizerError> {
    let verified = match app.tokens().map_err(|e| AuthorizerError::Store(e.to_string()))?.check(token) {
        Ok(verified) => verified,
        Err(err) => {
            log_refusal(&err);
            return Ok(None);
        }
    };
    if let Some(session) = &verified.session {
        let live =
            app.sessions().is_live(&verified.user, session).await.map_err(|e| AuthorizerError::Store(e.to_string()))?;
        if !live {
            info!(user = %verified.user, "refused a token of a signed-out session");
            return Ok(None);
        }
    }
    Ok(Some(verified))
}

fn context(verified: &Verified) -> Value {
    let mut context = json!({ AUTHORIZER_USER_ID: verified.user.as_str() });
    if let Some(session) = &verified.session {
        context[AUTHORIZER_SESSION] = json!(session);
    }
    context
}

async fn authorize_websocket(
    app: &App,
    event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<ApiGatewayCustomAuthorizerResponse<Value>, AuthorizerError> {
    let token = event.query_string_parameters.first("token").ok_or(AuthorizerError::Unauthorized)?;
    let verified = check(app, token).await?.ok_or(AuthorizerError::Unauthorized)?;
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = IamPolicyEffect::Allow;
    statement.resource = vec![event.method_arn.clone().unwrap_or_else(|| "*".into())];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(verified.user.to_string());
    response.policy_document = policy;
    response.context = context(&verified);
    Ok(response)
}

async fn authorize_http(
    app: &App,
    event: &ApiGatewayV2CustomAuthorizerV2Request,
) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse, AuthorizerError> {
    let token = event
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    match token {
        Some(token) => {
            if let Some(verified) = check(app, token.trim()).await? {
                response.is_authorized = true;
                response.context = context(&verified);
            }
        }
        None => info!("refused: no bearer token"),
    }
    Ok(response)
}

fn log_refusal(err: &TokenError) {
    info!(reason = %err, "refused a token");
}

/// Lambda reports the error as `{errorType, errorMessage}`; API Gateway reads the message.
impl From<AuthorizerError> for lambda_runtime::Diagnostic {
    fn from(err: AuthorizerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: match err {
                AuthorizerError::Unauthorized => "Unauthorized".into(),
                AuthorizerError::BadEvent(_) => "BadEvent".into(),
                AuthorizerError::Store(_) => "Store".into(),
            },
            error_message: err.to_string(),
        }
    }
}
