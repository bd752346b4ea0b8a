use closeloop_lambdas::{on_answer, services, LambdaConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    closeloop_lambdas::init_logging();
    let services = services(&LambdaConfig::from_env()?);
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        on_answer::handle(&services, event.payload, on_answer::deadline_of(&event.context))
    }))
    .await
}
