//! Delivery to WebSocket connections through the API Gateway Management API.

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::model::ConnectionId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Delivered,
    /// 410 GoneException: the connection is closed; forget it. Not a failure of the send.
    Gone,
    Failed(String),
}

/// Posts frames to connections. The client is built with the API's own endpoint
/// (stage included) and a short retry policy: see [`crate::app`].
#[derive(Clone)]
pub struct Notifier {
    client: Client,
}

impl Notifier {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Closes a connection (`DELETE @connections/{id}`): the client sees the socket close.
    pub async fn close(&self, connection: &ConnectionId) -> PostOutcome {
        match self.client.delete_connection().connection_id(connection.as_str()).send().await {
            Ok(_) => PostOutcome::Delivered,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_gone_exception()) => PostOutcome::Gone,
            Err(err) => PostOutcome::Failed(DisplayErrorContext(&err).to_string()),
        }
    }

    pub async fn post(&self, connection: &ConnectionId, frame: &str) -> PostOutcome {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection.as_str())
            .data(Blob::new(frame.as_bytes()))
            .send()
            .await;
        match result {
            Ok(_) => PostOutcome::Delivered,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_gone_exception()) => PostOutcome::Gone,
            Err(err) => PostOutcome::Failed(DisplayErrorContext(&err).to_string()),
        }
    }
}
