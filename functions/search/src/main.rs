use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chat_aws::telemetry::init_lambda();
    let app = chat_search::open(chat_aws::wire::from_env().await?)?;
    let app = &app;
    lambda_http::run(service_fn(move |request: Request| async move {
        let (request_id, apigw_request_id) = chat_aws::apigw_http::request_ids(&request);
        let work = search::handle(app, request);
        Ok::<_, Error>(chat_aws::telemetry::invocation("search", &request_id, apigw_request_id.as_deref(), work).await)
    }))
    .await
}
