//! How the gateway calls a function: with the event JSON exactly as API Gateway sends it,
//! answered with the JSON the function returns. In-process by default; a second
//! implementation (the Lambda Invoke API, served by `cargo lambda watch` and by AWS) fits
//! the same trait without touching the handlers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chat_shared::App;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Context, LambdaEvent, Service};
use serde_json::Value;

use crate::routes::Function;

pub type InvokeFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, InvokeError>> + Send + 'a>>;

pub trait Invoke: Send + Sync + 'static {
    fn invoke(&self, function: Function, event: Value) -> InvokeFuture<'_>;
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The function failed (Lambda's `errorType` / `errorMessage`).
    #[error("{error_type}: {message}")]
    Failed { error_type: String, message: String },
    /// The event did not parse as the function's input type.
    #[error("event rejected: {0}")]
    BadEvent(String),
}

/// Calls the handlers of the function crates directly, through serde, in this process.
pub struct InProcess {
    app: Arc<App>,
}

impl InProcess {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

fn parse<T: serde::de::DeserializeOwned>(event: Value) -> Result<T, InvokeError> {
    serde_json::from_value(event).map_err(|e| InvokeError::BadEvent(e.to_string()))
}

fn to_json(value: impl serde::Serialize) -> Result<Value, InvokeError> {
    serde_json::to_value(value).map_err(|e| InvokeError::BadEvent(e.to_string()))
}

impl Invoke for InProcess {
    fn invoke(&self, function: Function, event: Value) -> InvokeFuture<'_> {
        let app = &*self.app;
        Box::pin(async move {
            match function {
                Function::Authorizer => auth::authorizer::handle(app, event).await.map_err(|err| {
                    let diagnostic = lambda_runtime_diagnostic(err);
                    InvokeError::Failed { error_type: diagnostic.0, message: diagnostic.1 }
                }),
                Function::Connect => to_json(connect::handle(app, parse(event)?).await),
                Function::Disconnect => to_json(disconnect::handle(app, parse(event)?).await),
                Function::Send => to_json(send::handle(app, parse(event)?).await),
                Function::PresenceSweep => Ok(presence::handle(app, event).await),
                Function::History => http_function(event, |req| history::handle(app, req)).await,
                Function::Auth => http_function(event, |req| auth::http::handle(app, req)).await,
                Function::Channels => http_function(event, |req| channels::handle(app, req)).await,
            }
        })
    }
}

/// Runs a lambda_http handler through the same adapter `lambda_http::run` uses: event
/// JSON in, response JSON out.
async fn http_function<F, Fut>(event: Value, handler: F) -> Result<Value, InvokeError>
where
    F: Fn(lambda_http::Request) -> Fut + Send + Sync,
    Fut: Future<Output = lambda_http::Response<lambda_http::Body>> + Send,
{
    let request: lambda_http::request::LambdaRequest = parse(event)?;
    let service = lambda_http::service_fn(|req: lambda_http::Request| {
        let response = handler(req);
        async move { Ok::<_, lambda_http::Error>(response.await) }
    });
    let mut adapter = Adapter::from(service);
    let adapter = adapter.ready().await.map_err(failed)?;
    let response = adapter.call(LambdaEvent::new(request, Context::default())).await.map_err(failed)?;
    to_json(response)
}

fn failed(err: lambda_http::Error) -> InvokeError {
    InvokeError::Failed { error_type: "Error".into(), message: err.to_string() }
}

fn lambda_runtime_diagnostic(err: auth::authorizer::AuthorizerError) -> (String, String) {
    let diagnostic: lambda_http::lambda_runtime::Diagnostic = err.into();
    (diagnostic.error_type, diagnostic.error_message)
}
