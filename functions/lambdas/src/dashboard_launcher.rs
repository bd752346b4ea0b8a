//! Launches started in the dashboard the launch function serves: the uploaded file waits in the
//! uploads bucket under `staged/{campaign}/{launch id}` (not under `uploads/`, whose objects
//! launch themselves) between its dry run and its launch; the launch queues its chunks on SQS like
//! any other. The staged object is deleted once its chunks are queued (they carry the rows), and
//! the bucket's lifecycle rule expires staged files never launched (`infra/template.yaml`).

use aws_sdk_s3::primitives::ByteStream;
use closeloop_core::launch::{LaunchId, LaunchJob};
use closeloop_core::{Campaign, CampaignId};
use closeloop_functions::launch::{self, ContactsFile, DryRunReport, LaunchError, Launcher, Started};
use closeloop_functions::Services;

use crate::launch_pipeline::ChunkQueue;

pub struct S3Launcher {
    pub services: Services,
    pub queue: ChunkQueue,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

fn key(campaign: &CampaignId, id: &LaunchId) -> String {
    format!("staged/{campaign}/{id}")
}

fn staging(e: impl std::error::Error + Send + Sync + 'static) -> LaunchError {
    LaunchError::Staging(Box::new(e))
}

#[async_trait::async_trait]
impl Launcher for S3Launcher {
    async fn stage(&self, campaign: &CampaignId, bytes: &[u8]) -> Result<LaunchId, LaunchError> {
        let id = LaunchId::of(campaign, bytes);
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key(campaign, &id))
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(|e| staging(e))?;
        Ok(id)
    }

    async fn staged(&self, campaign: &CampaignId, id: &LaunchId) -> Result<Option<Vec<u8>>, LaunchError> {
        match self.s3.get_object().bucket(&self.bucket).key(key(campaign, id)).send().await {
            Ok(object) => Ok(Some(object.body.collect().await.map_err(staging)?.into_bytes().to_vec())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(staging(e)),
        }
    }

    async fn dry_run(&self, campaign: &Campaign, file: &ContactsFile<'_>) -> Result<DryRunReport, LaunchError> {
        launch::dry_run(&self.services, campaign, file).await
    }

    async fn launch(&self, campaign: &Campaign, source: &str, file: &ContactsFile<'_>) -> Result<LaunchJob, LaunchError> {
        let Started { job, chunks } = launch::start_file(&self.services, campaign, source, file).await?;
        self.queue.send(&chunks).await.map_err(|e| LaunchError::Queue(Box::new(e)))?;
        // Queued: the chunks carry the rows, so the file is no longer needed. A failed delete
        // leaves it to the bucket's lifecycle rule.
        if let Err(e) = self.s3.delete_object().bucket(&self.bucket).key(key(&campaign.id, &job.id)).send().await {
            tracing::warn!(error = %aws_sdk_s3::error::DisplayErrorContext(&e), "a launched upload stays staged until it expires");
        }
        tracing::info!(launch = %job.id, chunks = chunks.len(), "dashboard launch queued");
        Ok(job)
    }
}
