//! The invitation API behind a function URL: the same router as the edge and the local process.
use closeloop_edge::{router, AppState};
use closeloop_lambdas::{services, LambdaConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    closeloop_lambdas::init_logging();
    let config = LambdaConfig::from_env()?;
    lambda_http::run(router(AppState::new(
        &services(&config),
        config.api_token.as_deref(),
    )))
    .await
}
