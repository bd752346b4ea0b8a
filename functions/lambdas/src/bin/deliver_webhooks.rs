//! SQS → signed webhook posts (public addresses only), secrets named by campaigns read from Parameter Store.
use closeloop_lambdas::{services, webhook_queue, webhooks, LambdaConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    closeloop_lambdas::init_logging();
    let config = LambdaConfig::load().await?;
    let ssm = closeloop_lambdas::config::ssm_client(std::env::var("SSM_ENDPOINT").ok().as_deref(), &config.region, config.credentials.clone());
    let (services, queue) = (services(&config), webhook_queue(&config));
    let sender = webhooks::ParameterStoreSender::new(webhooks::public_sender()?, ssm);
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| async {
        Ok::<_, std::convert::Infallible>(webhooks::handle(&services, &sender, &queue, event.payload).await)
    }))
    .await
}
