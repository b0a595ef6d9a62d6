//! `$connect`: records the connection of the user the authorizer let in.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chat_aws::apigw;
use chat_domain::{App, ChatError, chat, presence};
use tracing::{Instrument, error};

/// A non-2xx answer refuses the connection: the client's handshake fails with it.
pub async fn handle(app: &App, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let span = apigw::ws_span(&event);
    handle_in_span(app, event).instrument(span).await
}

async fn handle_in_span(app: &App, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let (user, connection) = match apigw::ws_caller(&event) {
        Ok(caller) => caller,
        Err(err) => return apigw::ws_status(err.http_status().into()),
    };
    let device = presence::Device {
        connection: &connection,
        session: apigw::ws_session(&event),
        lifetime_left_ms: apigw::ws_lifetime_left_ms(&event),
    };
    match chat::connect(app, &user, &device).await {
        Ok(()) => apigw::ws_status(200),
        Err(err) => {
            if let ChatError::Internal(detail) = &err {
                error!(%user, %connection, error = %detail, "could not record connection");
            }
            apigw::ws_status(err.http_status().into())
        }
    }
}
