use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    chat_aws::telemetry::init_lambda();
    let app = chat_search::open(chat_aws::wire::from_env().await?)?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let work = indexer::handle(app, event.payload);
        chat_aws::telemetry::invocation("indexer", &event.context.request_id, None, work).await
    }))
    .await
}
