//! `$disconnect`: forgets the connection. API Gateway does not promise this event; stale
//! connections are also dropped on their first 410 and by their expiry.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chat_aws::apigw;
use chat_domain::{App, chat};
use tracing::{Instrument, warn};

pub async fn handle(app: &App, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let span = apigw::ws_span(&event);
    handle_in_span(app, event).instrument(span).await
}

async fn handle_in_span(app: &App, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let (user, connection) = match apigw::ws_caller(&event) {
        Ok(caller) => caller,
        Err(err) => {
            warn!(error = %err, "disconnect without an authorized user");
            return apigw::ws_status(200);
        }
    };
    if let Err(err) = chat::disconnect(app, &user, &connection).await {
        // The connection's expiry removes it anyway; nobody is waiting for this answer.
        warn!(%user, %connection, error = ?err, "could not forget connection");
    }
    apigw::ws_status(200)
}
