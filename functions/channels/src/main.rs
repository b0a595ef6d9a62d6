use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chat_aws::telemetry::init_lambda();
    let app = chat_aws::wire::from_env().await?;
    let app = &app;
    lambda_http::run(service_fn(
        move |request: Request| async move { Ok::<_, Error>(channels::handle(app, request).await) },
    ))
    .await
}
