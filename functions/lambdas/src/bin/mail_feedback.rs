use closeloop_lambdas::{mail_feedback, services, LambdaConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    closeloop_lambdas::init_logging();
    let services = services(&LambdaConfig::load().await?);
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        mail_feedback::handle(&services, event.payload)
    }))
    .await
}
