//! Every client action on an open connection (`sendMessage`, and `$default` for frames
//! with no known action). The answer goes back to the caller as the route response.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chat_shared::protocol::{ClientFrame, ErrorBody, ServerFrame};
use chat_shared::{App, ChatError, apigw, chat};
use tracing::error;

pub async fn handle(app: &App, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let body = event.body.as_deref().unwrap_or_default();
    let frame = match dispatch(app, &event, body).await {
        Ok(frame) => frame,
        Err(err) => {
            if let ChatError::Internal(detail) = &err {
                error!(connection = ?event.request_context.connection_id, error = %detail, "action failed");
            }
            ServerFrame::Error(ErrorBody::from_error(&err).about_frame(body))
        }
    };
    apigw::ws_reply(&frame)
}

async fn dispatch(app: &App, event: &ApiGatewayWebsocketProxyRequest, body: &str) -> Result<ServerFrame, ChatError> {
    let (user, connection) = apigw::ws_caller(event)?;
    match ClientFrame::parse(body)? {
        ClientFrame::SendMessage { channel_id, client_msg_id, text } => {
            let sent = chat::send_message(app, &user, &connection, &channel_id, &client_msg_id, text).await?;
            Ok(ServerFrame::Ack { client_msg_id, message: sent.message })
        }
    }
}
