//! An uploaded CRM file's S3 event → its launch, chunks on SQS.
use closeloop_lambdas::{chunk_queue, launch_pipeline, s3_client, services, LambdaConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    closeloop_lambdas::init_logging();
    let config = LambdaConfig::load().await?;
    let (services, queue, s3) = (services(&config), chunk_queue(&config), s3_client(&config));
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| launch_pipeline::handle_upload(&services, &queue, &s3, event.payload))).await
}
