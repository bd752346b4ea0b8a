use closeloop_lambdas::{schedule, services, webhook_queue, LambdaConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    closeloop_lambdas::init_logging();
    let config = LambdaConfig::load().await?;
    let (services, queue) = (services(&config), webhook_queue(&config));
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        schedule::handle_with_webhooks(&services, &config.accounts, &queue, event.payload)
    }))
    .await
}
