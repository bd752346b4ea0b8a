//! The Lambda functions' handlers and their wiring. Each `src/bin/*.rs` main only loads the
//! configuration, builds the services once and hands events to a handler here.

pub mod config;
pub mod dashboard_launcher;
pub mod launch;
pub mod launch_pipeline;
pub mod mail_feedback;
pub mod metrics;
pub mod on_answer;
pub mod redrive;
pub mod schedule;
pub mod send_rate;
pub mod webhooks;

use std::sync::Arc;

use closeloop_core::ports::Links;
use closeloop_dynamodb::DynamoStore;
use closeloop_functions::Services;
use closeloop_ses::SesMailer;
use closeloop_sns::SnsSms;

pub use config::LambdaConfig;

pub use closeloop_core::ports::SystemClock;

/// The adapters every function shares, built once per execution environment.
pub fn services(config: &LambdaConfig) -> Services {
    let dynamodb = closeloop_dynamodb::client_for(
        config.dynamodb_endpoint.as_deref(),
        &config.region,
        config.credentials.clone(),
    );
    let ses = closeloop_ses::client_for(
        config.ses_endpoint.as_deref(),
        &config.region,
        config.credentials.clone(),
    );
    let sns = closeloop_sns::client_for(config.sns_endpoint.as_deref(), &config.region, config.credentials.clone());
    Services {
        store: Arc::new(DynamoStore::new(dynamodb, config.table.clone())),
        mailer: match config.ses_max_send_rate {
            Some(rate) => Arc::new(send_rate::RateLimited::new(
                SesMailer::new(ses, config.ses_configuration_set.clone()),
                rate / f64::from(config.ses_sending_instances),
            )),
            None => Arc::new(SesMailer::new(ses, config.ses_configuration_set.clone())),
        },
        sms: Arc::new(SnsSms::new(sns, config.sms_sender_id.clone())),
        clock: Arc::new(SystemClock),
        links: Links::new(&config.public_url),
    }
}

/// The SQS queue of launch chunks.
pub fn chunk_queue(config: &LambdaConfig) -> launch_pipeline::ChunkQueue {
    let mut builder = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new(config.region.clone()))
        .credentials_provider(config.credentials.clone());
    builder.set_endpoint_url(config.sqs_endpoint.clone());
    launch_pipeline::ChunkQueue::new(aws_sdk_sqs::Client::from_conf(builder.build()), config.launch_queue_url.clone())
}

/// The SQS queue of webhook deliveries, and the sender that posts them: public addresses only.
pub fn webhook_queue(config: &LambdaConfig) -> webhooks::WebhookQueue {
    let mut builder = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new(config.region.clone()))
        .credentials_provider(config.credentials.clone());
    builder.set_endpoint_url(config.sqs_endpoint.clone());
    webhooks::WebhookQueue::new(aws_sdk_sqs::Client::from_conf(builder.build()), config.webhook_queue_url.clone())
}

/// S3, for uploads of large CRM files. Path-style addressing against a stand-in.
pub fn s3_client(config: &LambdaConfig) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(config.region.clone()))
        .credentials_provider(config.credentials.clone())
        .force_path_style(config.s3_endpoint.is_some());
    builder.set_endpoint_url(config.s3_endpoint.clone());
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Structured logs to CloudWatch, configured by `RUST_LOG`: one JSON object a line, carrying
/// the fields of every span it is in (the runtime's `requestId`, the handlers' campaign and
/// invitation ids), so Logs Insights can filter on them. The metrics go to stdout beside them.
pub fn init_logging() {
    init_logging_to(std::io::stdout);
}

/// `init_logging`, writing the log lines and the metric documents to `writer` (a test's buffer).
/// A second call keeps the first subscriber.
pub fn init_logging_to<W>(writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Clone + Send + Sync + 'static,
{
    metrics::write_to(writer.clone());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .without_time()
        .with_target(false)
        .try_init();
}

/// What a function returns to the platform as an error: only failures that may succeed on a
/// retry. Those that cannot are logged and the invocation succeeds, so nothing is retried in vain.
#[derive(Debug, thiserror::Error)]
#[error("retryable: {0}")]
pub struct Retryable(#[from] closeloop_functions::FunctionError);

impl From<Retryable> for lambda_runtime::Diagnostic {
    fn from(e: Retryable) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "Retryable".into(),
            error_message: e.to_string(),
        }
    }
}

/// Sorts a handler's outcome into success, a retry, or a logged permanent failure.
pub fn retry_or_log<T: Default>(
    result: Result<T, closeloop_functions::FunctionError>,
) -> Result<T, Retryable> {
    match result {
        Ok(value) => Ok(value),
        Err(e) if e.is_retryable() => Err(Retryable(e)),
        Err(e) => {
            tracing::error!(error = %e, "permanent failure, not retried");
            Ok(T::default())
        }
    }
}
