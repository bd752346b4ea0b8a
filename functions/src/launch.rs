//! Launching a campaign from CRM contacts as a job (`core::launch`), and creating single
//! invitations for the API.
//!
//! `start` validates the whole file and stores the job; its chunks are then written one by one
//! (`process_chunk`): locally right here, on AWS by the `launch_chunk` function from a queue.
//! The same file launched again is the same job: a finished job is reported as it stands, an
//! unfinished one is resumed, and rows written before are recognised, never invited twice.

use closeloop_core::campaign::Campaign;
use closeloop_core::import::{parse_contacts_csv, ImportError, RowProblem};
use closeloop_core::launch::{self, ChunkResult, LaunchChunk, LaunchId, LaunchJob, LaunchState, SkipReason};
use closeloop_core::model::{Contact, ContactError, Invitation, InvitationId, Token};
use closeloop_core::ports::CreateOutcome;
use closeloop_core::ports::Store;
use closeloop_core::{rules, Timestamp};

use crate::{FunctionError, Services};

/// What `closeloop launch` and the CSV launch route report: the job's figures.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LaunchSummary {
    pub launch_id: Option<LaunchId>,
    pub invited: usize,
    pub bad_rows: Vec<RowProblem>,
    pub duplicates: usize,
    pub suppressed: usize,
    pub throttled: usize,
}

impl From<&LaunchJob> for LaunchSummary {
    fn from(job: &LaunchJob) -> Self {
        Self {
            launch_id: Some(job.id.clone()),
            invited: job.invited as usize,
            bad_rows: job.bad_rows.clone(),
            duplicates: job.skipped(SkipReason::Duplicate) as usize,
            suppressed: job.skipped(SkipReason::Suppressed) as usize,
            throttled: job.skipped(SkipReason::Throttled) as usize,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("the contacts file cannot be used: {0}")]
    Import(#[from] ImportError),
    #[error(transparent)]
    Function(#[from] FunctionError),
}

impl From<closeloop_core::ports::StoreError> for LaunchError {
    fn from(e: closeloop_core::ports::StoreError) -> Self {
        LaunchError::Function(FunctionError::Store(e))
    }
}

/// A fresh invitation with an unguessable token (a v4 UUID's 122 random bits).
pub fn new_invitation(campaign: &Campaign, contact: Contact, now: Timestamp) -> Result<Invitation, ContactError> {
    let id = InvitationId(uuid::Uuid::new_v4().simple().to_string());
    invitation_with_id(id, campaign, contact, now)
}

fn invitation_with_id(id: InvitationId, campaign: &Campaign, contact: Contact, now: Timestamp) -> Result<Invitation, ContactError> {
    let token = Token::from_random_bytes(*uuid::Uuid::new_v4().as_bytes());
    Invitation::new(id, token, campaign, contact, now)
}

/// A launch whose rows are known and whose job is stored, with the chunks still to write.
pub struct Started {
    pub job: LaunchJob,
    /// Empty when the job had finished before (the same file launched again).
    pub chunks: Vec<LaunchChunk>,
}

/// Validates every row, stores the campaign and the job (or finds the job of an earlier run of
/// the same file) and splits the rows into chunks.
pub async fn start(services: &Services, campaign: &Campaign, source: &str, contacts_csv: &[u8]) -> Result<Started, LaunchError> {
    let id = LaunchId::of(&campaign.id, contacts_csv);
    let imported = parse_contacts_csv(contacts_csv)?;
    let existing = services.store.launch(&id).await?;
    if let Some(job) = existing.as_ref().filter(|j| j.is_finished()) {
        return Ok(Started { job: job.clone(), chunks: Vec::new() });
    }
    services.store.put_campaign(campaign).await?;
    let now = services.clock.now();
    let mut bad_rows = imported.bad_rows;
    let mut rows = Vec::with_capacity(imported.contacts.len());
    for (line, contact) in imported.contacts {
        // The same checks the chunk's write makes, so every bad row is known before the first write.
        match Invitation::new(id.invitation_id(line), Token::from_random_bytes([0; 16]), campaign, contact.clone(), now) {
            Ok(_) => rows.push((line, contact)),
            Err(e) => bad_rows.push(RowProblem { line, reason: e.to_string() }),
        }
    }
    bad_rows.sort_by_key(|p| p.line);
    let chunks = launch::chunks(&id, &campaign.id, rows);
    let job = match existing {
        // Resumed: the stored progress stands; chunks recorded before are not counted again.
        Some(job) => job,
        None => {
            let mut job = LaunchJob::new(id, campaign.id.clone(), source, now);
            let total = chunks.iter().map(|c| c.rows.len() as u64).sum();
            job.validated(total, chunks.len() as u32, bad_rows, imported.duplicate_lines.len() as u64);
            services.store.create_launch(&job).await?
        }
    };
    Ok(Started { job, chunks })
}

/// Writes one chunk's invitations and adds its result to the job once. Safe to run twice.
pub async fn process_chunk(services: &Services, campaign: &Campaign, chunk: &LaunchChunk) -> Result<Option<LaunchJob>, FunctionError> {
    let now = services.clock.now();
    let mut invitations = Vec::with_capacity(chunk.rows.len());
    let mut bad = 0;
    for (line, contact) in &chunk.rows {
        match invitation_with_id(chunk.launch.invitation_id(*line), campaign, contact.clone(), now) {
            Ok(inv) => invitations.push(inv),
            // Validated at the start already; a row that fails now is counted as processed.
            Err(_) => bad += 1,
        }
    }
    let throttle_since = rules::throttle_since(campaign, now);
    let outcomes = services.store.create_invitations(&invitations, throttle_since).await?;
    let result = ChunkResult::from_outcomes(&outcomes, bad);
    Ok(services.store.record_launch_chunk(&chunk.launch, chunk.index, &result, services.clock.now()).await?)
}

/// The whole launch in this process: `progress` sees the job after every chunk.
pub async fn launch_with_progress(
    services: &Services,
    campaign: &Campaign,
    source: &str,
    contacts_csv: &[u8],
    progress: &(dyn Fn(&LaunchJob) + Sync),
) -> Result<LaunchJob, LaunchError> {
    let Started { mut job, chunks } = start(services, campaign, source, contacts_csv).await?;
    progress(&job);
    for chunk in &chunks {
        if let Some(now) = process_chunk(services, campaign, chunk).await? {
            job = now;
            progress(&job);
        }
    }
    if job.state == LaunchState::Running {
        // Every chunk was recorded by an earlier run, which crashed before the job said so.
        job = services.store.launch(&job.id).await?.unwrap_or(job);
    }
    Ok(job)
}

pub async fn launch(services: &Services, campaign: &Campaign, contacts_csv: &[u8]) -> Result<LaunchSummary, LaunchError> {
    let job = launch_with_progress(services, campaign, "file", contacts_csv, &|_| {}).await?;
    Ok(LaunchSummary::from(&job))
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error(transparent)]
    Contact(#[from] ContactError),
    #[error(transparent)]
    Function(#[from] FunctionError),
}

/// One transactional invitation (the CRM API): the outcome, and the invitation it concerns.
/// Needs only the store, so the edge can call it without any way to send.
pub async fn invite_one(store: &dyn Store, campaign: &Campaign, contact: Contact, now: Timestamp) -> Result<(CreateOutcome, Invitation), InviteError> {
    let invitation = new_invitation(campaign, contact, now)?;
    let throttle_since = rules::throttle_since(campaign, now);
    let outcomes = store.create_invitations(std::slice::from_ref(&invitation), throttle_since).await.map_err(FunctionError::from)?;
    let outcome = outcomes.first().copied().ok_or_else(|| FunctionError::Missing("outcome of the invitation".into()))?;
    Ok((outcome, invitation))
}
