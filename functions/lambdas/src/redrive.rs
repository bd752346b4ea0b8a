//! `redrive`: replays what landed in the on-failure queues of the asynchronously invoked
//! functions (`ScheduleFailed`, `MailFeedbackFailed`, `LaunchUploadFailed`). Each message is
//! Lambda's destination record; its `requestPayload`, the original event, goes through the same
//! handler the function runs, in this process, and the message is deleted only once that replay
//! succeeded. A replay that fails again stays in its queue, visible again when the run ends.
//!
//! Replaying is idempotent because the handlers are: a suppression is stored once per address, a
//! schedule run sends each reminder, escalation and digest under its send key at most once, and
//! a launch's id is its campaign and its file's content, so the same upload is one launch. A message replayed
//! and then not deleted (the run cut off, a failed delete) is therefore harmless to replay again.
//!
//! Invoked by hand: `{"queue": "<a failure queue's URL>", "max": 100}` (the URLs are the stack's
//! outputs); it answers `{"replayed", "failed", "left"}`.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sns::SnsEvent;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::delete_message::DeleteMessageError;
use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
use aws_sdk_sqs::operation::receive_message::ReceiveMessageError;
use aws_sdk_sqs::types::QueueAttributeName;
use closeloop_functions::Services;
use serde::{Deserialize, Serialize};

use crate::launch_pipeline::{self, ChunkQueue, UploadError};
use crate::webhooks::WebhookQueue;
use crate::{mail_feedback, schedule, LambdaConfig, Retryable};

/// How long a received message stays hidden: the function's own timeout (infra/template.yaml),
/// so a message is not received twice in one run, and one whose run was cut off comes back.
const VISIBILITY_SECONDS: i32 = 900;
/// At most this many messages a run, whatever the request asks.
const MAX_PER_RUN: usize = 1000;

/// The function whose failures a queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    Schedule,
    MailFeedback,
    LaunchUpload,
}

/// Which queue holds which function's failures. A queue is told by its URL, not by the record's
/// `functionArn`: the stack names its functions, and only these queues may be read anyway.
#[derive(Debug, Clone, Default)]
pub struct FailureQueues {
    pub schedule: Option<String>,
    pub mail_feedback: Option<String>,
    pub launch_upload: Option<String>,
}

impl FailureQueues {
    /// From `SCHEDULE_FAILED_QUEUE_URL`, `MAIL_FEEDBACK_FAILED_QUEUE_URL` and
    /// `LAUNCH_UPLOAD_FAILED_QUEUE_URL`, as the template sets them on the redrive function.
    pub fn from_env() -> Self {
        let url = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Self {
            schedule: url("SCHEDULE_FAILED_QUEUE_URL"),
            mail_feedback: url("MAIL_FEEDBACK_FAILED_QUEUE_URL"),
            launch_upload: url("LAUNCH_UPLOAD_FAILED_QUEUE_URL"),
        }
    }

    fn function_of(&self, queue: &str) -> Option<Replayed> {
        [(&self.schedule, Replayed::Schedule), (&self.mail_feedback, Replayed::MailFeedback), (&self.launch_upload, Replayed::LaunchUpload)]
            .into_iter()
            .find(|(url, _)| url.as_deref() == Some(queue))
            .map(|(_, function)| function)
    }
}

/// What the replayed handlers need, built once per execution environment.
pub struct Redrive {
    pub services: Services,
    pub accounts: closeloop_core::accounts::Accounts,
    pub webhooks: WebhookQueue,
    pub chunks: ChunkQueue,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub queues: FailureQueues,
}

impl Redrive {
    /// The function's wiring: the same adapters as the three replayed functions.
    pub fn new(config: &LambdaConfig, queues: FailureQueues) -> Self {
        let chunks = crate::chunk_queue(config);
        Self {
            services: crate::services(config),
            accounts: config.accounts.clone(),
            webhooks: crate::webhook_queue(config),
            sqs: chunks.client().clone(),
            chunks,
            s3: crate::s3_client(config),
            queues,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedriveRequest {
    /// A failure queue's URL (a stack output).
    pub queue: String,
    /// How many messages to try this run (at most 1,000); 100 when not given.
    #[serde(default = "default_max")]
    pub max: usize,
}

fn default_max() -> usize {
    100
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RedriveSummary {
    /// Replayed and deleted.
    pub replayed: usize,
    /// Replayed without success (or unreadable): kept in the queue.
    pub failed: usize,
    /// Messages in the queue after the run, visible or not (SQS's approximate count).
    pub left: usize,
}

/// Why a run stopped before it was done; what it replayed until then is deleted.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("{0} is not a failure queue redrive knows (ScheduleFailed, MailFeedbackFailed, LaunchUploadFailed)")]
    UnknownQueue(String),
    #[error("receiving from {queue}")]
    Receive {
        queue: String,
        #[source]
        source: Box<SdkError<ReceiveMessageError>>,
    },
    #[error("counting the messages left in {queue}")]
    Count {
        queue: String,
        #[source]
        source: Box<SdkError<GetQueueAttributesError>>,
    },
}

impl From<RedriveError> for lambda_runtime::Diagnostic {
    fn from(e: RedriveError) -> Self {
        let source = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
        lambda_runtime::Diagnostic { error_type: "RedriveError".into(), error_message: format!("{e}{source}") }
    }
}

/// Why one message's replay did not succeed.
#[derive(Debug, thiserror::Error)]
enum ReplayError {
    // Not serde's message: it may quote the payload, which names people.
    #[error("the message is not a destination record with a {expected} event (line {line}, column {column})")]
    Unreadable { expected: &'static str, line: usize, column: usize },
    #[error(transparent)]
    Handler(#[from] Retryable),
    #[error(transparent)]
    Upload(#[from] UploadError),
}

/// The part of Lambda's destination record a replay needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DestinationRecord<E> {
    request_payload: E,
}

fn parse<E: serde::de::DeserializeOwned>(body: &str, expected: &'static str) -> Result<E, ReplayError> {
    serde_json::from_str::<DestinationRecord<E>>(body)
        .map(|record| record.request_payload)
        .map_err(|e| ReplayError::Unreadable { expected, line: e.line(), column: e.column() })
}

impl Redrive {
    async fn replay(&self, function: Replayed, body: &str) -> Result<(), ReplayError> {
        match function {
            Replayed::Schedule => {
                let event: EventBridgeEvent<serde_json::Value> = parse(body, "schedule (EventBridge)")?;
                schedule::handle_with_webhooks(&self.services, &self.accounts, &self.webhooks, event).await?;
            }
            Replayed::MailFeedback => {
                let event: SnsEvent = parse(body, "SNS")?;
                mail_feedback::handle(&self.services, event).await?;
            }
            Replayed::LaunchUpload => {
                let event: S3Event = parse(body, "S3")?;
                launch_pipeline::handle_upload(&self.services, &self.chunks, &self.s3, event).await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), SdkError<DeleteMessageError>> {
        self.sqs.delete_message().queue_url(queue).receipt_handle(receipt).send().await.map(drop)
    }
}

/// One run over `request.queue`: receive, replay, delete what succeeded, then count what is left.
pub async fn handle(redrive: &Redrive, request: RedriveRequest) -> Result<RedriveSummary, RedriveError> {
    let queue = request.queue.as_str();
    let function = redrive.queues.function_of(queue).ok_or_else(|| RedriveError::UnknownQueue(queue.to_owned()))?;
    let max = request.max.min(MAX_PER_RUN);
    let mut summary = RedriveSummary::default();
    let mut kept = Vec::new();
    let mut attempted = 0;
    while attempted < max {
        let received = redrive
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages((max - attempted).min(10) as i32)
            .visibility_timeout(VISIBILITY_SECONDS)
            // A short long-poll: SQS asks all its servers, so an empty answer means an empty queue.
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| RedriveError::Receive { queue: queue.to_owned(), source: Box::new(e) })?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            attempted += 1;
            let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else { continue };
            match redrive.replay(function, message.body().unwrap_or_default()).await {
                Ok(()) => {
                    summary.replayed += 1;
                    // Replayed but not deleted, it comes back and replays to no effect.
                    if let Err(e) = redrive.delete(queue, receipt).await {
                        tracing::warn!(message_id = id, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "replayed, but not deleted");
                    } else {
                        tracing::info!(message_id = id, ?function, "replayed");
                    }
                }
                Err(e) => {
                    summary.failed += 1;
                    tracing::warn!(message_id = id, ?function, error = %e, "replay failed: kept in the queue");
                    kept.push(receipt.to_owned());
                }
            }
        }
    }
    // What failed is visible again at once, for the next redrive and the queue's alarm.
    for receipt in kept {
        if let Err(e) = redrive.sqs.change_message_visibility().queue_url(queue).receipt_handle(receipt).visibility_timeout(0).send().await {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "a failed message stays hidden until its visibility timeout");
        }
    }
    let attributes = redrive
        .sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| RedriveError::Count { queue: queue.to_owned(), source: Box::new(e) })?;
    summary.left = attributes
        .attributes()
        .map(|a| a.values().filter_map(|v| v.parse::<usize>().ok()).sum())
        .unwrap_or(0);
    tracing::info!(?function, replayed = summary.replayed, failed = summary.failed, left = summary.left, "redrive done");
    Ok(summary)
}
