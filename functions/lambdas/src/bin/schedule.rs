use closeloop_lambdas::{schedule, services, LambdaConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    closeloop_lambdas::init_logging();
    let config = LambdaConfig::from_env()?;
    let services = services(&config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        schedule::handle(&services, &config.accounts, event.payload)
    }))
    .await
}
