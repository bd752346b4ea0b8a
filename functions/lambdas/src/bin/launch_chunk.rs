//! SQS → launch chunks written to DynamoDB.
use closeloop_lambdas::{launch_pipeline, services, LambdaConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    closeloop_lambdas::init_logging();
    let services = services(&LambdaConfig::load().await?);
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| async {
        Ok::<_, std::convert::Infallible>(launch_pipeline::handle_chunks(&services, event.payload).await)
    }))
    .await
}
