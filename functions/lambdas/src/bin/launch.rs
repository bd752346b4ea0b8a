//! The API behind a function URL: the edge's router plus campaign files and CSV launches, and
//! the dashboard with contact uploads when SESSION_SECRET and ACCOUNTS are set.
use closeloop_lambdas::{chunk_queue, launch, s3_client, services, LambdaConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    closeloop_lambdas::init_logging();
    let config = LambdaConfig::load().await?;
    let pipeline = launch::Pipeline { queue: chunk_queue(&config), s3: s3_client(&config), upload_bucket: config.upload_bucket.clone() };
    let dashboard = config.dashboard()?;
    lambda_http::run(launch::router_with_dashboard(&services(&config), config.api_token.as_deref(), Some(pipeline), dashboard, config.people_api_token.as_deref())).await
}
