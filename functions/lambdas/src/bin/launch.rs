//! The API behind a function URL: the edge's router plus campaign files and CSV launches.
use closeloop_lambdas::{launch, services, LambdaConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    closeloop_lambdas::init_logging();
    let config = LambdaConfig::from_env()?;
    lambda_http::run(launch::router(&services(&config), config.api_token.as_deref())).await
}
