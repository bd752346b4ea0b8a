//! The AWS launch pipeline around `functions::launch`: the launch function validates a file and
//! stores its job, then puts its chunks on SQS; `launch_chunk` writes each chunk (batched
//! transactions) and adds its result to the job once; a file too large to send inline is PUT to
//! S3 through a presigned URL, and the upload's S3 event starts the same launch
//! (`launch_upload`).

use std::time::Duration;

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use closeloop_core::campaign::{Campaign, CampaignId};
use closeloop_core::launch::{LaunchChunk, LaunchJob};
use closeloop_functions::dispatch::CampaignCache;
use closeloop_functions::launch::{self, LaunchError, Started};
use closeloop_functions::Services;
use tracing::Instrument;

/// SQS takes at most 10 entries and 256 KiB in one SendMessageBatch.
const BATCH_ENTRIES: usize = 10;
const BATCH_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the launch queue is not configured (LAUNCH_QUEUE_URL)")]
    NotConfigured,
    #[error("sending launch chunks to SQS")]
    Send(#[source] aws_sdk_sqs::Error),
    #[error("SQS refused {failed} of the launch's chunks")]
    Refused { failed: usize },
    #[error("a launch chunk could not be serialised")]
    Serialise(#[source] serde_json::Error),
}

/// Where a launch's chunks go.
#[derive(Clone)]
pub struct ChunkQueue {
    client: aws_sdk_sqs::Client,
    url: Option<String>,
}

impl ChunkQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: Option<String>) -> Self {
        Self { client, url }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// Sends every chunk, in batches; entries SQS refused are sent again, a few times.
    pub async fn send(&self, chunks: &[LaunchChunk]) -> Result<(), QueueError> {
        let url = self.url.as_deref().ok_or(QueueError::NotConfigured)?;
        let bodies: Vec<String> = chunks.iter().map(serde_json::to_string).collect::<Result<_, _>>().map_err(QueueError::Serialise)?;
        let mut batches: Vec<Vec<(usize, &String)>> = vec![Vec::new()];
        let mut bytes = 0;
        for (i, body) in bodies.iter().enumerate() {
            let last = batches.last_mut().expect("one batch at least");
            if !last.is_empty() && (last.len() == BATCH_ENTRIES || bytes + body.len() > BATCH_BYTES) {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += body.len();
            batches.last_mut().expect("one batch at least").push((i, body));
        }
        for batch in batches.into_iter().filter(|b| !b.is_empty()) {
            let mut pending = batch;
            for attempt in 0..5u32 {
                let entries: Vec<SendMessageBatchRequestEntry> = pending
                    .iter()
                    .map(|(i, body)| SendMessageBatchRequestEntry::builder().id(format!("c{i}")).message_body(body.as_str()).build())
                    .collect::<Result<_, _>>()
                    .map_err(|e| QueueError::Send(e.into()))?;
                let out = self.client.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await.map_err(|e| QueueError::Send(e.into()))?;
                let failed: Vec<String> = out.failed.iter().filter(|f| !f.sender_fault).map(|f| f.id.clone()).collect();
                if out.failed.iter().any(|f| f.sender_fault) {
                    return Err(QueueError::Refused { failed: out.failed.len() });
                }
                pending.retain(|(i, _)| failed.contains(&format!("c{i}")));
                if pending.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            if !pending.is_empty() {
                return Err(QueueError::Refused { failed: pending.len() });
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Validates the file, stores the job and queues its chunks. A file launched before returns its
/// job; an unfinished one has its chunks queued again (writing a chunk twice changes nothing).
pub async fn start_launch(services: &Services, queue: &ChunkQueue, campaign: &Campaign, source: &str, csv: &[u8]) -> Result<LaunchJob, StartError> {
    let Started { job, chunks } = launch::start(services, campaign, source, csv).await?;
    queue.send(&chunks).await?;
    tracing::info!(launch = %job.id, chunks = chunks.len(), rows = job.total_rows, "launch queued");
    Ok(job)
}

/// Deliveries of a chunk before SQS moves it to the dead-letter queue (`maxReceiveCount` of
/// `LaunchChunks` in infra/template.yaml).
pub const MAX_RECEIVES: u32 = 5;

/// `launch_chunk`: writes each chunk of the SQS batch. A chunk that may succeed later is
/// reported in `batchItemFailures` (SQS delivers it again, and a second write invites nobody
/// twice). One that never can, or fails on its last delivery, is recorded on its job as failed,
/// with why: once every chunk is accounted for, the job is `failed` instead of running forever.
pub async fn handle_chunks(services: &Services, event: SqsEvent) -> SqsBatchResponse {
    let campaigns = CampaignCache::default();
    let mut failures = Vec::new();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let chunk: LaunchChunk = match message.body.as_deref().map(serde_json::from_str) {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                tracing::error!(message = %id, error = %e, "dropped: not a launch chunk");
                continue;
            }
            None => continue,
        };
        // Ids only: every line logged for this chunk carries them.
        let span = tracing::info_span!("chunk", campaign = %chunk.campaign, launch = %chunk.launch, chunk = chunk.index);
        let result = async {
            let campaign = campaigns.get(services, &chunk.campaign).await?;
            launch::process_chunk(services, &campaign, &chunk).await
        }
        .instrument(span.clone())
        .await;
        let receives: u32 = message.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
        match result {
            Ok(job) => span.in_scope(|| tracing::info!(done = job.map(|j| j.chunks_done), "chunk written")),
            Err(e) if e.is_retryable() && receives < MAX_RECEIVES => {
                span.in_scope(|| tracing::warn!(message = %id, error = %e, receives, "chunk will be retried"));
                failures.push(batch_failure(id));
            }
            Err(e) => {
                let last_try = e.is_retryable();
                span.in_scope(|| tracing::error!(message = %id, error = %e, receives, "chunk given up on"));
                give_up(services, &chunk, &e).instrument(span.clone()).await;
                if last_try {
                    // Still reported, so SQS moves it to the dead-letter queue for a redrive.
                    failures.push(batch_failure(id));
                }
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

fn batch_failure(message_id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id;
    failure
}

/// Records on the job that `chunk` failed for good; a failure to record it is only logged (the
/// dead-letter queue still holds the chunk).
async fn give_up(services: &Services, chunk: &LaunchChunk, error: &dyn std::fmt::Display) {
    let result = closeloop_core::launch::ChunkResult::failed(chunk.rows.len() as u64, error.to_string());
    if let Err(e) = services.store.record_launch_chunk(&chunk.launch, chunk.index, &result, services.clock.now()).await {
        tracing::error!(launch = %chunk.launch, chunk = chunk.index, error = %e, "recording the failed chunk failed");
    }
}

/// Where an upload for a campaign goes: `uploads/{campaign}/{random}.csv`.
pub fn upload_key(campaign: &CampaignId) -> String {
    format!("uploads/{}/{}.csv", campaign, uuid::Uuid::new_v4().simple())
}

/// The campaign an upload's key names, if it is one of ours.
pub fn campaign_of_upload(key: &str) -> Option<CampaignId> {
    let rest = key.strip_prefix("uploads/")?;
    let (campaign, file) = rest.split_once('/')?;
    (file.ends_with(".csv") && !file.contains('/')).then(|| CampaignId::parse(campaign).ok()).flatten()
}

/// The largest upload `launch_upload` reads: some 2 million contacts, a few minutes of chunks.
pub const MAX_UPLOAD_OBJECT_BYTES: i64 = 512 * 1024 * 1024;

/// Why an upload could not be launched yet: returned to the platform, which invokes again.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("reading the campaign")]
    Store(#[source] closeloop_core::ports::StoreError),
    #[error("reading {source_name}")]
    Read { source_name: String, #[source] error: closeloop_core::ports::BoxError },
    #[error("launching {source_name}")]
    Launch { source_name: String, #[source] error: StartError },
}

impl From<UploadError> for lambda_runtime::Diagnostic {
    fn from(e: UploadError) -> Self {
        lambda_runtime::Diagnostic { error_type: "Retryable".into(), error_message: format!("{e}: {}", e.source_text()) }
    }
}

impl UploadError {
    fn source_text(&self) -> String {
        std::error::Error::source(self).map(|s| s.to_string()).unwrap_or_default()
    }
}

/// `launch_upload`: an uploaded file's S3 event starts its launch.
pub async fn handle_upload(services: &Services, queue: &ChunkQueue, s3: &aws_sdk_s3::Client, event: S3Event) -> Result<(), UploadError> {
    for record in event.records {
        let (Some(bucket), Some(key)) = (record.s3.bucket.name.clone(), record.s3.object.key.clone()) else { continue };
        // S3 event keys are URL-encoded (a space is `+`); ours never need it.
        let Some(campaign_id) = campaign_of_upload(&key) else {
            tracing::warn!(%key, "ignored: not an upload key");
            continue;
        };
        let source = format!("s3://{bucket}/{key}");
        let campaign = match services.store.campaign(&campaign_id).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                tracing::error!(%source, "dropped: the campaign does not exist");
                continue;
            }
            Err(e) if e.is_retryable() => return Err(UploadError::Store(e)),
            Err(e) => {
                tracing::error!(%source, error = %e, "dropped: the campaign cannot be read");
                continue;
            }
        };
        let object = match s3.get_object().bucket(&bucket).key(&key).send().await {
            Ok(o) => o,
            Err(e) => return Err(UploadError::Read { source_name: source, error: Box::new(e) }),
        };
        if object.content_length.unwrap_or(0) > MAX_UPLOAD_OBJECT_BYTES {
            tracing::error!(%source, "dropped: the upload is larger than {MAX_UPLOAD_OBJECT_BYTES} bytes");
            continue;
        }
        let bytes = match object.body.collect().await {
            Ok(b) => b.into_bytes(),
            Err(e) => return Err(UploadError::Read { source_name: source, error: Box::new(e) }),
        };
        match start_launch(services, queue, &campaign, &source, &bytes).await {
            Ok(job) => tracing::info!(launch = %job.id, %source, "upload launched"),
            Err(StartError::Launch(LaunchError::Import(e))) => tracing::error!(%source, error = %e, "dropped: the file cannot be used"),
            Err(StartError::Launch(LaunchError::Function(e))) if !e.is_retryable() => tracing::error!(%source, error = %e, "dropped"),
            Err(error) => return Err(UploadError::Launch { source_name: source, error }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_upload_keys_name_a_campaign() {
        let c = CampaignId::parse("spring").unwrap();
        let key = upload_key(&c);
        assert_eq!(campaign_of_upload(&key), Some(c));
        for other in ["uploads/spring.csv", "other/spring/x.csv", "uploads/../x.csv", "uploads/spring/a/b.csv", "uploads/spring/x.txt"] {
            assert_eq!(campaign_of_upload(other), None, "{other}");
        }
    }
}
