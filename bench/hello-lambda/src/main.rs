//! A Lambda function that answers its event as is: what a cold start costs before any of
//! our own work (the runtime, tokio, the process). `bench coldstart` measures it beside
//! the functions, built with the same release profile.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<_, Error>(event.payload) })).await
}
