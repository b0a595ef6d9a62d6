//! How the gateway calls a function: with the event JSON exactly as API Gateway sends it,
//! answered with the JSON the function returns. In-process by default; a second
//! implementation (the Lambda Invoke API, served by `cargo lambda watch` and by AWS) fits
//! the same trait without touching the handlers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chat_domain::App;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Context, LambdaEvent, Service};
use serde_json::Value;

use crate::observe::Observed;
use crate::routes::Function;

pub type InvokeFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, InvokeError>> + Send + 'a>>;

pub trait Invoke: Send + Sync + 'static {
    fn invoke(&self, function: Function, event: Value) -> InvokeFuture<'_>;

    /// What the invocations counted and timed, when this invoker sees it (in process).
    fn observed(&self) -> Option<&Observed> {
        None
    }
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

/// The `App` each function runs with: its own clients, credentials and settings, as each
/// Lambda function has its own role and environment.
#[derive(Clone)]
pub struct FunctionApps {
    apps: BTreeMap<Function, Arc<App>>,
    shared: Arc<App>,
}

impl FunctionApps {
    /// Every function with the same `App` (handler benchmarks, fuzzing).
    pub fn same(app: Arc<App>) -> Self {
        Self { apps: BTreeMap::new(), shared: app }
    }

    /// `apps` per function; any function not named runs with `shared`.
    pub fn per_function(apps: BTreeMap<Function, Arc<App>>, shared: Arc<App>) -> Self {
        Self { apps, shared }
    }

    /// The `App` of functions not named (the account administrator's, in a local stack).
    pub fn shared(&self) -> &Arc<App> {
        &self.shared
    }

    pub fn get(&self, function: Function) -> &Arc<App> {
        self.apps.get(&function).unwrap_or(&self.shared)
    }
}

/// What Lambda enforces on a synchronous invocation (AWS docs): 6 MB of event and 6 MB of
/// response, and the function's `Timeout`.
#[derive(Debug, Clone)]
pub struct LambdaLimits {
    pub max_payload_bytes: usize,
    /// From template.yaml; a function not named runs without a timeout.
    pub timeouts: BTreeMap<Function, Duration>,
}

/// Lambda's synchronous payload limit, request and response each.
pub const MAX_LAMBDA_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

impl Default for LambdaLimits {
    fn default() -> Self {
        Self { max_payload_bytes: MAX_LAMBDA_PAYLOAD_BYTES, timeouts: BTreeMap::new() }
    }
}

/// Calls the handlers of the function crates directly, through serde, in this process,
/// within Lambda's limits.
pub struct InProcess {
    apps: FunctionApps,
    limits: LambdaLimits,
    observed: Observed,
}

impl InProcess {
    /// Every function with `app`, within Lambda's payload limits, without timeouts.
    pub fn new(app: Arc<App>) -> Self {
        Self::with(FunctionApps::same(app), LambdaLimits::default())
    }

    pub fn with(apps: FunctionApps, limits: LambdaLimits) -> Self {
        let observed = Observed::with_probe(apps.shared().clone());
        Self { apps, limits, observed }
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
        let app = &**self.apps.get(function);
        Box::pin(async move {
            let max = self.limits.max_payload_bytes;
            if event.to_string().len() > max {
                return Err(InvokeError::Failed {
                    error_type: "RequestTooLargeException".into(),
                    message: format!("Request must be smaller than {max} bytes for the InvokeFunction operation"),
                });
            }
            let run = async {
                let (answer, figures) = chat_domain::metrics::measure(run(app, function, event)).await;
                self.observed.record(function, answer.is_ok(), &figures);
                answer
            };
            let answer = match self.limits.timeouts.get(&function) {
                Some(limit) => tokio::time::timeout(*limit, run).await.map_err(|_| InvokeError::Failed {
                    error_type: "Sandbox.Timedout".into(),
                    message: format!("Task timed out after {:.2} seconds", limit.as_secs_f64()),
                })?,
                None => run.await,
            }?;
            let size = answer.to_string().len();
            if size > max {
                return Err(InvokeError::Failed {
                    error_type: "Function.ResponseSizeTooLarge".into(),
                    message: format!(
                        "Response payload size ({size} bytes) exceeded maximum allowed payload size ({max} bytes)."
                    ),
                });
            }
            Ok(answer)
        })
    }

    fn observed(&self) -> Option<&Observed> {
        Some(&self.observed)
    }
}

async fn run(app: &App, function: Function, event: Value) -> Result<Value, InvokeError> {
    match function {
        Function::Authorizer => auth::authorizer::handle(app, event).await.map_err(|err| {
            let diagnostic = lambda_runtime_diagnostic(err);
            InvokeError::Failed { error_type: diagnostic.0, message: diagnostic.1 }
        }),
        Function::Connect => to_json(connect::handle(app, parse(event)?).await),
        Function::Disconnect => to_json(disconnect::handle(app, parse(event)?).await),
        Function::Send => to_json(send::handle(app, parse(event)?).await),
        Function::PresenceSweep => Ok(presence::handle(app, event).await),
        Function::SearchIndexer => indexer::handle(app, event).await.map_err(|err| {
            let diagnostic: lambda_http::lambda_runtime::Diagnostic = err.into();
            InvokeError::Failed { error_type: diagnostic.error_type, message: diagnostic.error_message }
        }),
        Function::Search => http_function(event, |req| search::handle(app, req)).await,
        Function::History => http_function(event, |req| history::handle(app, req)).await,
        Function::Auth => http_function(event, |req| auth::http::handle(app, req)).await,
        Function::Channels => http_function(event, |req| channels::handle(app, req)).await,
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
