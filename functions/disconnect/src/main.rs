use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chat_aws::telemetry::init_lambda();
    let app = chat_aws::wire::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
        let apigw_request_id = event.payload.request_context.request_id.clone();
        let work = disconnect::handle(app, event.payload);
        let answer =
            chat_aws::telemetry::invocation("disconnect", &event.context.request_id, apigw_request_id.as_deref(), work)
                .await;
        Ok::<_, Error>(answer)
    }))
    .await
}
