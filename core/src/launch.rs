//! A launch is a job: a CRM file turned into invitations chunk by chunk, with its progress
//! stored so that the CLI, the API and the dashboard all read the same record, and so that
//! running the same launch again after a crash resumes it instead of starting over.
//!
//! The job's id is a digest of the campaign and the file's bytes, and each invitation's id is
//! the job's id and the row's line: the same file launched again is the same job, and a row
//! written before a crash is recognised (`CreateOutcome::AlreadyCreated`) instead of throttled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::campaign::CampaignId;
use crate::import::RowProblem;
use crate::model::{Contact, InvitationId};
use crate::ports::CreateOutcome;
use crate::time::Timestamp;

/// Bad rows kept on the job itself; the count goes on past it (a DynamoDB item is at most 400 KB).
pub const MAX_BAD_ROWS_KEPT: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LaunchId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a launch id is 32 lowercase hexadecimal characters")]
pub struct InvalidLaunchId;

impl LaunchId {
    /// The same campaign and the same bytes give the same launch.
    pub fn of(campaign: &CampaignId, file: &[u8]) -> Self {
        let mut digest = Sha256::new();
        digest.update(campaign.as_str().as_bytes());
        digest.update([0]);
        digest.update(file);
        let bytes = digest.finalize();
        Self(bytes[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn parse(input: &str) -> Result<Self, InvalidLaunchId> {
        if input.len() == 32 && input.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(input.to_owned()))
        } else {
            Err(InvalidLaunchId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The invitation a row of this launch becomes: stable across retries and resumes. The line
    /// is zero-padded so that id order (how rows are paged and exported) is line order.
    pub fn invitation_id(&self, line: u64) -> InvitationId {
        InvitationId(format!("{}-{line:08}", self.0))
    }
}

impl std::fmt::Display for LaunchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaunchState {
    Validating,
    Running,
    Done,
    Failed,
}

impl LaunchState {
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchState::Validating => "validating",
            LaunchState::Running => "running",
            LaunchState::Done => "done",
            LaunchState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    Suppressed,
    Throttled,
    /// The same person appeared earlier in the file.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchJob {
    pub id: LaunchId,
    pub campaign: CampaignId,
    /// Where the rows came from: a file name, `api`, or `s3://bucket/key`.
    pub source: String,
    /// Rows with a contact, after bad rows and duplicates are set aside.
    pub total_rows: u64,
    pub rows_processed: u64,
    pub invited: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    pub bad_rows: Vec<RowProblem>,
    pub bad_row_count: u64,
    pub chunks: u32,
    pub chunks_done: u32,
    pub state: LaunchState,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Chunks given up on; once every chunk is accounted for, any of these makes the job failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ChunkFailure>,
}

impl LaunchJob {
    pub fn new(id: LaunchId, campaign: CampaignId, source: impl Into<String>, at: Timestamp) -> Self {
        Self {
            id,
            campaign,
            source: source.into(),
            total_rows: 0,
            rows_processed: 0,
            invited: 0,
            skipped: BTreeMap::new(),
            bad_rows: Vec::new(),
            bad_row_count: 0,
            chunks: 0,
            chunks_done: 0,
            state: LaunchState::Validating,
            started_at: at,
            finished_at: None,
            failures: Vec::new(),
        }
    }

    /// What the file holds, before any row is written.
    pub fn validated(&mut self, rows: u64, chunks: u32, mut bad_rows: Vec<RowProblem>, duplicates: u64) {
        self.total_rows = rows;
        self.chunks = chunks;
        self.bad_row_count = bad_rows.len() as u64;
        bad_rows.truncate(MAX_BAD_ROWS_KEPT);
        self.bad_rows = bad_rows;
        if duplicates > 0 {
            self.skipped.insert(SkipReason::Duplicate, duplicates);
        }
        self.state = if chunks == 0 { LaunchState::Done } else { LaunchState::Running };
    }

    /// Adds one chunk's result; the store calls it at most once per chunk.
    pub fn add_chunk(&mut self, chunk: u32, result: &ChunkResult, at: Timestamp) {
        self.invited += result.invited;
        for (reason, n) in &result.skipped {
            *self.skipped.entry(*reason).or_default() += n;
        }
        match &result.failure {
            // Its rows are accounted for, not processed.
            Some(reason) => self.failures.push(ChunkFailure { chunk, rows: result.rows, reason: reason.clone() }),
            None => self.rows_processed += result.rows,
        }
        self.chunks_done += 1;
        if self.chunks_done >= self.chunks && self.state == LaunchState::Running {
            self.state = if self.failures.is_empty() { LaunchState::Done } else { LaunchState::Failed };
            self.finished_at = Some(at);
        }
    }

    /// A chunk recorded as given up on that a later delivery (a redrive from the dead-letter
    /// queue) wrote after all: its result takes the failure's place. Whether anything changed.
    pub fn recover_chunk(&mut self, chunk: u32, result: &ChunkResult, at: Timestamp) -> bool {
        let Some(failed) = self.failures.iter().position(|f| f.chunk == chunk) else { return false };
        if result.failure.is_some() {
            return false;
        }
        self.failures.remove(failed);
        self.rows_processed += result.rows;
        self.invited += result.invited;
        for (reason, n) in &result.skipped {
            *self.skipped.entry(*reason).or_default() += n;
        }
        if self.state == LaunchState::Failed && self.failures.is_empty() {
            self.state = LaunchState::Done;
            self.finished_at = Some(at);
        }
        true
    }

    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped.get(&reason).copied().unwrap_or(0)
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.state, LaunchState::Done | LaunchState::Failed)
    }
}

/// A slice of a launch's rows, as a queue message carries it or the local process writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchChunk {
    pub launch: LaunchId,
    pub campaign: CampaignId,
    pub index: u32,
    pub rows: Vec<(u64, Contact)>,
}

/// Rows a chunk holds at most: several transactions of up to 100 operations each.
pub const CHUNK_ROWS: usize = 500;
/// A chunk's serialised size at most, below SQS's 256 KiB message limit.
pub const CHUNK_BYTES: usize = 200 * 1024;

/// Splits rows into chunks of at most `CHUNK_ROWS` rows and about `CHUNK_BYTES` of JSON, in order.
pub fn chunks(launch: &LaunchId, campaign: &CampaignId, rows: Vec<(u64, Contact)>) -> Vec<LaunchChunk> {
    let mut chunks = Vec::new();
    let mut current: Vec<(u64, Contact)> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let size = serde_json::to_vec(&row).map(|v| v.len()).unwrap_or(CHUNK_BYTES);
        if !current.is_empty() && (current.len() >= CHUNK_ROWS || bytes + size > CHUNK_BYTES) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(row);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, rows)| LaunchChunk { launch: launch.clone(), campaign: campaign.clone(), index: index as u32, rows })
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkResult {
    pub rows: u64,
    pub invited: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Why the chunk's rows could not be written, when it gave up (its queue's last delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// A chunk a launch gave up on: which one, how many rows, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkFailure {
    pub chunk: u32,
    pub rows: u64,
    pub reason: String,
}

impl ChunkResult {
    /// A row that exists already (a retry, a resume) was invited by the earlier attempt.
    pub fn from_outcomes(outcomes: &[CreateOutcome], bad_rows: u64) -> Self {
        let mut result = Self { rows: outcomes.len() as u64 + bad_rows, ..Self::default() };
        for outcome in outcomes {
            match outcome {
                CreateOutcome::Created | CreateOutcome::AlreadyCreated => result.invited += 1,
                CreateOutcome::Suppressed => *result.skipped.entry(SkipReason::Suppressed).or_default() += 1,
                CreateOutcome::Throttled => *result.skipped.entry(SkipReason::Throttled).or_default() += 1,
            }
        }
        result
    }

    /// A chunk of `rows` rows that was given up on.
    pub fn failed(rows: u64, reason: impl Into<String>) -> Self {
        Self { rows, failure: Some(reason.into()), ..Self::default() }
    }
}

/// What launching a file would do, computed without writing anything: how it was read, the
/// mapping, and how many rows would be invited, skipped (by reason) or refused (by line).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DryRunReport {
    pub campaign: CampaignId,
    /// The launch this file would be: the same file launched again is the same launch.
    pub launch_id: LaunchId,
    /// The state of that launch if it was started before: a launch reports a finished one as
    /// it stands and resumes an unfinished one.
    pub launched_before: Option<LaunchState>,
    #[serde(flatten)]
    pub file: crate::import::FileFormat,
    pub mapping: Vec<crate::import::MappedColumn>,
    /// Explicit mapping entries that matched no column.
    pub unused_mapping: Vec<String>,
    /// Rows with any content, the header not counted.
    pub rows: u64,
    pub would_invite: u64,
    /// Duplicates of an earlier row of the file.
    pub duplicates: u64,
    pub suppressed: u64,
    /// Invited, in this or another campaign, within the campaign's `throttle_days`.
    pub throttled: u64,
    pub throttle_days: u32,
    /// Every bad row, in line order (a launch's job keeps only the first 500).
    pub bad_rows: Vec<RowProblem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_for_the_same_campaign_is_the_same_launch() {
        let c = CampaignId::parse("spring").unwrap();
        let a = LaunchId::of(&c, b"email\na@x.example\n");
        assert_eq!(a, LaunchId::of(&c, b"email\na@x.example\n"));
        assert_ne!(a, LaunchId::of(&c, b"email\nb@x.example\n"));
        assert_ne!(a, LaunchId::of(&CampaignId::parse("autumn").unwrap(), b"email\na@x.example\n"));
        assert_eq!(LaunchId::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(LaunchId::parse("../../etc"), Err(InvalidLaunchId));
        assert_eq!(a.invitation_id(7).0, format!("{a}-00000007"));
        assert!(a.invitation_id(10) > a.invitation_id(9), "ids sort in line order");
    }

    #[test]
    fn chunks_keep_row_order_and_stay_under_the_queue_message_limit() {
        let c = CampaignId::parse("spring").unwrap();
        let id = LaunchId::of(&c, b"x");
        let big = Contact { properties: (0..50).map(|p| (format!("f{p}"), "x".repeat(200))).collect(), ..Contact::default() };
        let rows: Vec<(u64, Contact)> = (2..2000).map(|line| (line, big.clone())).collect();
        let chunks = chunks(&id, &c, rows);
        assert!(chunks.len() > 4);
        let lines: Vec<u64> = chunks.iter().flat_map(|ch| ch.rows.iter().map(|(l, _)| *l)).collect();
        assert_eq!(lines, (2..2000).collect::<Vec<_>>());
        for chunk in &chunks {
            assert!(serde_json::to_vec(chunk).unwrap().len() < 256 * 1024, "chunk {} fits an SQS message", chunk.index);
            assert!(chunk.rows.len() <= CHUNK_ROWS);
        }
    }

    #[test]
    fn a_job_is_done_when_its_last_chunk_is_added() {
        let c = CampaignId::parse("spring").unwrap();
        let mut job = LaunchJob::new(LaunchId::of(&c, b"x"), c, "contacts.csv", Timestamp::from_millis(0));
        job.validated(3, 2, vec![RowProblem { line: 4, reason: "no email".into() }], 1);
        assert_eq!(job.state, LaunchState::Running);
        job.add_chunk(0, &ChunkResult::from_outcomes(&[CreateOutcome::Created, CreateOutcome::Throttled], 0), Timestamp::from_millis(1));
        assert_eq!(job.state, LaunchState::Running);
        job.add_chunk(1, &ChunkResult::from_outcomes(&[CreateOutcome::AlreadyCreated], 0), Timestamp::from_millis(2));
        assert_eq!((job.state, job.invited, job.skipped(SkipReason::Throttled), job.skipped(SkipReason::Duplicate)), (LaunchState::Done, 2, 1, 1));
        assert_eq!(job.finished_at, Some(Timestamp::from_millis(2)));
    }
}
