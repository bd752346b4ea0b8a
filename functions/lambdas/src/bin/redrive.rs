//! Replays the failure queues of schedule, mail_feedback and launch_upload (invoked by hand).
use closeloop_lambdas::{redrive, LambdaConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    closeloop_lambdas::init_logging();
    let redrive = redrive::Redrive::new(&LambdaConfig::load().await?, redrive::FailureQueues::from_env());
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| redrive::handle(&redrive, event.payload))).await
}
