//! Launching a campaign from CRM contacts as a job (`core::launch`), and creating single
//! invitations for the API.
//!
//! `start` validates the whole file and stores the job; its chunks are then written one by one
//! (`process_chunk`): locally right here, on AWS by the `launch_chunk` function from a queue.
//! The same file launched again is the same job: a finished job is reported as it stands, an
//! unfinished one is resumed, and rows written before are recognised, never invited twice.
//!
//! `dry_run` reads the same file the same way and reports what a launch would do, writing
//! nothing: the CLI's `launch --dry-run` and an API's dry run share it.

use std::collections::{BTreeMap, HashSet};

use closeloop_core::campaign::{Campaign, CampaignId};
use closeloop_core::import::{parse_contacts, ColumnTarget, ImportError, ImportSettings, ImportedContacts, RowProblem};
use closeloop_core::launch::{self, ChunkResult, LaunchChunk, LaunchId, LaunchJob, LaunchState, SkipReason};
use closeloop_core::model::{Contact, ContactError, ContactKey, Invitation, InvitationId, Token};
use closeloop_core::ports::CreateOutcome;
use closeloop_core::ports::{Store, StoreError};
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
    #[error("the uploaded file could not be kept for its launch")]
    Staging(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the launch's chunks could not be queued")]
    Queue(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// How a launch started in the dashboard runs on this runtime, and where its file waits between
/// the upload and the launch: locally a directory and a task in the process; on AWS S3 and the
/// chunk queue. A staged file is keyed by its launch id (the SHA-256 of campaign and bytes), so
/// uploading the same file again stages it once.
#[async_trait::async_trait]
pub trait Launcher: Send + Sync {
    /// Keeps the file; returns its launch id.
    async fn stage(&self, campaign: &CampaignId, bytes: &[u8]) -> Result<LaunchId, LaunchError>;
    /// The file staged under that id, if it is still there.
    async fn staged(&self, campaign: &CampaignId, id: &LaunchId) -> Result<Option<Vec<u8>>, LaunchError>;
    /// What a launch of the file would do (`dry_run`), with this runtime's services.
    async fn dry_run(&self, campaign: &Campaign, file: &ContactsFile<'_>) -> Result<DryRunReport, LaunchError>;
    /// Starts the launch: the job is stored and its chunks on their way when this returns.
    async fn launch(&self, campaign: &Campaign, source: &str, file: &ContactsFile<'_>) -> Result<LaunchJob, LaunchError>;
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

/// A contacts file as uploaded (CSV or `.xlsx`, told apart by its bytes), and how to read it
/// beyond the campaign's own `[columns]` and `[owners]`.
#[derive(Debug, Clone, Copy)]
pub struct ContactsFile<'a> {
    pub bytes: &'a [u8],
    /// The sheet of a workbook; the first one when `None`.
    pub sheet: Option<&'a str>,
    /// Column mappings over the campaign's `[columns]` (the CLI's `--map`).
    pub columns: Option<&'a BTreeMap<String, ColumnTarget>>,
}

impl<'a> ContactsFile<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, sheet: None, columns: None }
    }

    pub fn read(&self, campaign: &Campaign) -> Result<ImportedContacts, ImportError> {
        let mut settings = ImportSettings::for_campaign(campaign).with_sheet(self.sheet.map(str::to_owned));
        if let Some(columns) = self.columns {
            settings = settings.with_columns(columns);
        }
        parse_contacts(self.bytes, &settings)
    }
}

/// The rows a launch would write, and the bad rows: the file's own problems and the contacts
/// an invitation cannot be made for, in line order.
struct Checked {
    rows: Vec<(u64, Contact)>,
    bad_rows: Vec<RowProblem>,
}

fn check(campaign: &Campaign, id: &LaunchId, imported: ImportedContacts, now: Timestamp) -> Checked {
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
    Checked { rows, bad_rows }
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
    start_file(services, campaign, source, &ContactsFile::new(contacts_csv)).await
}

/// `start` for a file with a sheet or column mappings of its own.
pub async fn start_file(services: &Services, campaign: &Campaign, source: &str, file: &ContactsFile<'_>) -> Result<Started, LaunchError> {
    let id = LaunchId::of(&campaign.id, file.bytes);
    let imported = file.read(campaign)?;
    let existing = services.store.launch(&id).await?;
    if let Some(job) = existing.as_ref().filter(|j| j.is_finished()) {
        return Ok(Started { job: job.clone(), chunks: Vec::new() });
    }
    // A campaign the store has is not written back: the caller's copy may be older than an
    // edit saved since (a campaign file changes the stored one through `save_campaign_file`).
    if services.store.campaign(&campaign.id).await?.is_none() {
        services.store.put_campaign(campaign).await?;
    }
    let now = services.clock.now();
    let duplicates = imported.duplicate_lines.len() as u64;
    let Checked { rows, bad_rows } = check(campaign, &id, imported, now);
    let chunks = launch::chunks(&id, &campaign.id, rows);
    let job = match existing {
        // Resumed: the stored progress stands; chunks recorded before are not counted again.
        Some(job) => job,
        None => {
            let mut job = LaunchJob::new(id, campaign.id.clone(), source, now);
            let total = chunks.iter().map(|c| c.rows.len() as u64).sum();
            job.validated(total, chunks.len() as u32, bad_rows, duplicates);
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
    let job = services.store.record_launch_chunk(&chunk.launch, chunk.index, &result, services.clock.now()).await?;
    // The chunk that finished the job (or its redelivery: the delivery's id is the launch's).
    if let Some(job) = job.as_ref().filter(|j| matches!(j.state, closeloop_core::launch::LaunchState::Done | closeloop_core::launch::LaunchState::Failed)) {
        crate::webhooks::queue_launch_completed(services.store.as_ref(), campaign, job, job.finished_at.unwrap_or(now)).await?;
    }
    Ok(job)
}

/// Stores a campaign given as a file (the CLI's `launch`, the API's PUT) over the stored one,
/// with a change-log entry by `by` when it changes anything. The log's latest revision is read
/// before the campaign, so a save that lands between the two makes this one's revision taken
/// (and it goes again) rather than unseen; a save that loses to a concurrent one is made again
/// over it, since the file is what its sender asked for.
pub async fn save_campaign_file(services: &Services, campaign: &Campaign, by: &str) -> Result<(), StoreError> {
    use closeloop_core::changelog::{CampaignChange, ChangeKind};
    for _ in 0..5 {
        let latest = services.store.campaign_changes(&campaign.id, 1).await?.first().map_or(0, |c| c.revision);
        let before = services.store.campaign(&campaign.id).await?;
        if before.as_ref() == Some(campaign) {
            return Ok(());
        }
        let kind = if before.is_some() { ChangeKind::Edited } else { ChangeKind::Imported };
        let Some(revision) = latest.checked_add(1) else { return Err(StoreError::rejected(RevisionsExhausted)) };
        let change = CampaignChange::new(kind, revision, by, services.clock.now(), before.as_ref(), campaign);
        if services.store.save_campaign(campaign, &change, None).await? {
            return Ok(());
        }
    }
    Err(StoreError::unavailable(std::io::Error::other("the campaign kept changing while its file was saved")))
}

#[derive(Debug, thiserror::Error)]
#[error("the campaign has had as many revisions as a change log numbers")]
pub struct RevisionsExhausted;

/// The whole launch in this process: `progress` sees the job after every chunk.
pub async fn launch_with_progress(
    services: &Services,
    campaign: &Campaign,
    source: &str,
    contacts_csv: &[u8],
    progress: &(dyn Fn(&LaunchJob) + Sync),
) -> Result<LaunchJob, LaunchError> {
    launch_file_with_progress(services, campaign, source, &ContactsFile::new(contacts_csv), progress).await
}

/// `launch_with_progress` for a file with a sheet or column mappings of its own.
pub async fn launch_file_with_progress(
    services: &Services,
    campaign: &Campaign,
    source: &str,
    file: &ContactsFile<'_>,
    progress: &(dyn Fn(&LaunchJob) + Sync),
) -> Result<LaunchJob, LaunchError> {
    let Started { mut job, chunks } = start_file(services, campaign, source, file).await?;
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

pub use closeloop_core::launch::DryRunReport;

/// Rows (or contact keys) a dry run asks the store about in one call.
const DRY_RUN_BATCH: usize = 500;

/// Validates the file as `start` does and asks the store, read-only, which contacts are
/// suppressed and which were invited within the throttle window.
///
/// The ports have no read for "invited since" by contact, so the throttle window is found by
/// reading every campaign's invitations a page at a time and keeping the keys of this file's
/// contacts: exact, and as costly as the store is large.
pub async fn dry_run(services: &Services, campaign: &Campaign, file: &ContactsFile<'_>) -> Result<DryRunReport, LaunchError> {
    let id = LaunchId::of(&campaign.id, file.bytes);
    let imported = file.read(campaign)?;
    let launched_before = services.store.launch(&id).await?.map(|job| job.state);
    let (format, mapping, unused_mapping) = (imported.format.clone(), imported.mapping.clone(), imported.unused_mapping.clone());
    let duplicates = imported.duplicate_lines.len() as u64;
    let now = services.clock.now();
    let Checked { rows, bad_rows } = check(campaign, &id, imported, now);

    let since = rules::throttle_since(campaign, now);
    // Rows an earlier run of this launch wrote (a launch counts them as invited), and when each
    // of the file's contacts was last invited: reads by key, however large the store is.
    let mut written = HashSet::new();
    let mut recent = HashSet::new();
    if launched_before.is_some() {
        for chunk in rows.chunks(DRY_RUN_BATCH) {
            let ids: Vec<InvitationId> = chunk.iter().map(|(line, _)| id.invitation_id(*line)).collect();
            let found = services.store.invitations_with_answers(&ids).await?;
            written.extend(ids.into_iter().zip(found).filter(|(_, (inv, _))| inv.is_some()).map(|(id, _)| id));
        }
    }
    let keys: Vec<ContactKey> = rows.iter().flat_map(|(_, c)| c.keys()).collect::<HashSet<_>>().into_iter().collect();
    for chunk in keys.chunks(DRY_RUN_BATCH) {
        let last = services.store.last_invited(chunk).await?;
        recent.extend(last.into_iter().filter(|(_, at)| *at >= since).map(|(key, _)| key));
    }
    // Whether each row's person is suppressed, a batch of rows per store call (DynamoDB: one
    // BatchGetItem per 100 keys); a row written before is not asked about.
    let mut suppressed = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(DRY_RUN_BATCH) {
        let people: Vec<Vec<ContactKey>> = chunk
            .iter()
            .map(|(line, contact)| if written.contains(&id.invitation_id(*line)) { Vec::new() } else { contact.keys() })
            .collect();
        suppressed.extend(services.store.are_suppressed(&people).await?);
    }

    let mut report = DryRunReport {
        campaign: campaign.id.clone(),
        launch_id: id.clone(),
        launched_before,
        file: format,
        mapping,
        unused_mapping,
        rows: rows.len() as u64 + duplicates + bad_rows.len() as u64,
        would_invite: 0,
        duplicates,
        suppressed: 0,
        throttled: 0,
        throttle_days: campaign.throttle_days,
        bad_rows,
    };
    // The order the store decides in: a row written before, then suppression, then throttle.
    for ((line, contact), suppressed) in rows.iter().zip(suppressed) {
        if written.contains(&id.invitation_id(*line)) {
            report.would_invite += 1;
        } else if suppressed {
            report.suppressed += 1;
        } else if contact.keys().iter().any(|k| recent.contains(k)) {
            report.throttled += 1;
        } else {
            report.would_invite += 1;
        }
    }
    Ok(report)
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
/// `send_after`: not sent before then (its reminders count from when it goes out).
pub async fn invite_one(
    store: &dyn Store,
    campaign: &Campaign,
    contact: Contact,
    now: Timestamp,
    send_after: Option<Timestamp>,
) -> Result<(CreateOutcome, Invitation), InviteError> {
    let mut invitation = new_invitation(campaign, contact, now)?;
    if let Some(at) = send_after.filter(|at| *at > now) {
        invitation.send_after = Some(at);
        // The first reminder counts from the send, not from the request.
        invitation.next_reminder_at = rules::first_reminder_at(&campaign.reminders, at);
    }
    let throttle_since = rules::throttle_since(campaign, now);
    let outcomes = store.create_invitations(std::slice::from_ref(&invitation), throttle_since).await.map_err(FunctionError::from)?;
    let outcome = outcomes.first().copied().ok_or_else(|| FunctionError::Missing("outcome of the invitation".into()))?;
    Ok((outcome, invitation))
}
