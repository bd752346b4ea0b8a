//! Launching a campaign from CRM contacts, and creating single invitations for the API.

use closeloop_core::campaign::Campaign;
use closeloop_core::import::{parse_contacts_csv, ImportError, RowProblem};
use closeloop_core::model::{Contact, ContactError, Invitation, InvitationId, Token};
use closeloop_core::ports::CreateOutcome;
use closeloop_core::ports::Store;
use closeloop_core::{rules, Timestamp};

use crate::{FunctionError, Services};

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LaunchSummary {
    pub invited: usize,
    pub bad_rows: Vec<RowProblem>,
    pub duplicates: usize,
    pub suppressed: usize,
    pub throttled: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("the contacts file cannot be used: {0}")]
    Import(#[from] ImportError),
    #[error(transparent)]
    Function(#[from] FunctionError),
}

/// A fresh invitation with an unguessable token (a v4 UUID's 122 random bits).
pub fn new_invitation(campaign: &Campaign, contact: Contact, now: Timestamp) -> Result<Invitation, ContactError> {
    let id = InvitationId(uuid::Uuid::new_v4().simple().to_string());
    let token = Token::from_random_bytes(*uuid::Uuid::new_v4().as_bytes());
    Invitation::new(id, token, campaign, contact, now)
}

/// Rows are written in batches, each batch one transaction, so a 10,000-row file is not 10,000
/// round trips.
const BATCH: usize = 500;

pub async fn launch(services: &Services, campaign: &Campaign, contacts_csv: &[u8]) -> Result<LaunchSummary, LaunchError> {
    let imported = parse_contacts_csv(contacts_csv)?;
    services.store.put_campaign(campaign).await.map_err(FunctionError::from)?;
    let mut summary = LaunchSummary { bad_rows: imported.bad_rows, duplicates: imported.duplicate_lines.len(), ..Default::default() };
    let mut invitations = Vec::with_capacity(imported.contacts.len());
    for (line, contact) in imported.contacts {
        match new_invitation(campaign, contact, services.clock.now()) {
            Ok(inv) => invitations.push(inv),
            Err(e) => summary.bad_rows.push(RowProblem { line, reason: e.to_string() }),
        }
    }
    summary.bad_rows.sort_by_key(|p| p.line);
    let throttle_since = rules::throttle_since(campaign, services.clock.now());
    for chunk in invitations.chunks(BATCH) {
        for outcome in services.store.create_invitations(chunk, throttle_since).await.map_err(FunctionError::from)? {
            match outcome {
                CreateOutcome::Created | CreateOutcome::AlreadyCreated => summary.invited += 1,
                CreateOutcome::Suppressed => summary.suppressed += 1,
                CreateOutcome::Throttled => summary.throttled += 1,
            }
        }
    }
    Ok(summary)
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
