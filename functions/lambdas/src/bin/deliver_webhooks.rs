//! SQS → signed webhook posts (public addresses only).
use closeloop_lambdas::{services, webhook_queue, webhooks, LambdaConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    closeloop_lambdas::init_logging();
    let config = LambdaConfig::load().await?;
    let (services, queue, sender) = (services(&config), webhook_queue(&config), webhooks::public_sender()?);
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| async {
        Ok::<_, std::convert::Infallible>(webhooks::handle(&services, &sender, &queue, event.payload).await)
    }))
    .await
}
