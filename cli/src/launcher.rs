//! Launches started in the local dashboard: the uploaded file waits in the data directory
//! (`uploads/{campaign}/{launch id}`) between its dry run and its launch, and the launch's chunks
//! are written by a task in this process, as `closeloop launch` writes them; the dispatcher sends.
//!
//! A staged file holds personal data, so it is deleted once its launch has written every chunk,
//! and files never launched are deleted a week after their upload (checked at each upload).
//! A launch cut off by a stop keeps its file: launching it again resumes it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use closeloop_core::launch::LaunchId;
use closeloop_core::{Campaign, CampaignId};
use closeloop_core::launch::LaunchJob;
use closeloop_functions::launch::{self, ContactsFile, DryRunReport, LaunchError, Launcher};
use closeloop_functions::Services;

/// A staged file never launched is deleted after this long.
pub const STAGED_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct LocalLauncher {
    dir: PathBuf,
    services: Services,
}

impl LocalLauncher {
    pub fn new(data_dir: &Path, services: Services) -> Self {
        Self { dir: data_dir.join("uploads"), services }
    }

    fn path(&self, campaign: &CampaignId, id: &LaunchId) -> PathBuf {
        // Both are a-z, 0-9 and dashes (checked by their parse): no path can escape the directory.
        self.dir.join(campaign.as_str()).join(id.as_str())
    }
}

fn staging(e: std::io::Error) -> LaunchError {
    LaunchError::Staging(Box::new(e))
}

/// Deletes staged files older than `STAGED_FOR`; a failure leaves them for the next upload.
fn prune(dir: &Path) {
    let Ok(campaigns) = std::fs::read_dir(dir) else { return };
    for campaign in campaigns.flatten() {
        let Ok(files) = std::fs::read_dir(campaign.path()) else { continue };
        for file in files.flatten() {
            let old = file.metadata().and_then(|m| m.modified()).ok().and_then(|at| SystemTime::now().duration_since(at).ok()).is_some_and(|age| age > STAGED_FOR);
            if old {
                let _ = std::fs::remove_file(file.path());
            }
        }
    }
}

#[async_trait::async_trait]
impl Launcher for LocalLauncher {
    async fn stage(&self, campaign: &CampaignId, bytes: &[u8]) -> Result<LaunchId, LaunchError> {
        let id = LaunchId::of(campaign, bytes);
        let (path, dir, bytes) = (self.path(campaign, &id), self.dir.clone(), bytes.to_vec());
        tokio::task::spawn_blocking(move || {
            prune(&dir);
            let parent = path.parent().unwrap_or(&dir);
            std::fs::create_dir_all(parent)?;
            // Written whole, then renamed: a dry run never reads half a file.
            let partial = path.with_extension("partial");
            std::fs::write(&partial, &bytes)?;
            std::fs::rename(&partial, &path)
        })
        .await
        .map_err(|e| LaunchError::Staging(Box::new(e)))?
        .map_err(staging)?;
        Ok(id)
    }

    async fn staged(&self, campaign: &CampaignId, id: &LaunchId) -> Result<Option<Vec<u8>>, LaunchError> {
        let path = self.path(campaign, id);
        match tokio::task::spawn_blocking(move || std::fs::read(path)).await.map_err(|e| LaunchError::Staging(Box::new(e)))? {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(staging(e)),
        }
    }

    async fn dry_run(&self, campaign: &Campaign, file: &ContactsFile<'_>) -> Result<DryRunReport, LaunchError> {
        launch::dry_run(&self.services, campaign, file).await
    }

    async fn launch(&self, campaign: &Campaign, source: &str, file: &ContactsFile<'_>) -> Result<LaunchJob, LaunchError> {
        let started = launch::start_file(&self.services, campaign, source, file).await?;
        let (services, campaign, path) = (self.services.clone(), campaign.clone(), self.path(&campaign.id, &started.job.id));
        let chunks = started.chunks;
        tokio::spawn(async move {
            for chunk in &chunks {
                if let Err(e) = launch::process_chunk(&services, &campaign, chunk).await {
                    // The file stays: launching it again resumes from the chunks written.
                    tracing::error!(error = %e, chunk = chunk.index, "a dashboard launch stopped; launch the file again to resume");
                    return;
                }
            }
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        });
        Ok(started.job)
    }
}
