//! Delivery to WebSocket connections through the API Gateway Management API: the domain's
//! [`Poster`] port. 410 GoneException means "forget that connection", not a failed send.

use std::sync::Arc;

use crate::lazy::LazyClient;
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_smithy_types::error::display::DisplayErrorContext;
use chat_domain::model::ConnectionId;
pub use chat_domain::ports::PostOutcome;
use chat_domain::ports::Poster;

/// Posts frames to connections. The client is built with the API's own endpoint
/// (stage included) and a short retry policy: see [`crate::wire`].
#[derive(Clone)]
pub struct Notifier {
    client: Arc<LazyClient<Client>>,
}

impl Notifier {
    pub fn new(client: Arc<LazyClient<Client>>) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Poster for Notifier {
    /// `DELETE @connections/{id}`: the client sees the socket close.
    async fn close(&self, connection: &ConnectionId) -> PostOutcome {
        match self.client.get().delete_connection().connection_id(connection.as_str()).send().await {
            Ok(_) => PostOutcome::Delivered,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_gone_exception()) => PostOutcome::Gone,
            Err(err) if err.as_service_error().is_some_and(|e| e.meta().code() == Some("LimitExceededException")) => {
                PostOutcome::Throttled(DisplayErrorContext(&err).to_string())
            }
            Err(err) => PostOutcome::Failed(DisplayErrorContext(&err).to_string()),
        }
    }

    async fn post(&self, connection: &ConnectionId, frame: &str) -> PostOutcome {
        let result = self
            .client
            .get()
            .post_to_connection()
            .connection_id(connection.as_str())
            .data(Blob::new(frame.as_bytes()))
            .send()
            .await;
        match result {
            Ok(_) => PostOutcome::Delivered,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_gone_exception()) => PostOutcome::Gone,
            Err(err) if err.as_service_error().is_some_and(|e| e.meta().code() == Some("LimitExceededException")) => {
                PostOutcome::Throttled(DisplayErrorContext(&err).to_string())
            }
            Err(err) => PostOutcome::Failed(DisplayErrorContext(&err).to_string()),
        }
    }
}
