//! The ports adapters implement: storage, mail, SMS and time.
//!
//! Futures are `Send` everywhere, as axum and the AWS SDK require; on the Worker the adapters wrap
//! their JavaScript-backed futures (the isolate is single-threaded, so that is sound).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::campaign::{Campaign, CampaignId};
use crate::counters::{Aggregates, CounterDeltas, Fields};
use crate::model::{
    Answer, CaseClosure, CaseNote, ContactKey, Email, Event, FollowUpCase, Invitation, InvitationId, SuppressionReason, Token,
};
use crate::time::Timestamp;

/// The error an adapter wraps: the SDK's, SQLite's or serde's own, kept whole for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the record first; reread and decide again.
    #[error("the record was changed concurrently")]
    Conflict,
    /// Worth retrying: throttling, timeouts, 5xx, a transaction conflict that outlasted its own
    /// retries, a busy database.
    #[error("storage is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Retrying cannot help: the request was refused (validation, permission, a missing table).
    #[error("storage refused the request: {0}")]
    Rejected(#[source] BoxError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[source] BoxError),
}

impl StoreError {
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable(source.into())
    }
    pub fn rejected(source: impl Into<BoxError>) -> Self {
        StoreError::Rejected(source.into())
    }
    pub fn corrupt(source: impl Into<BoxError>) -> Self {
        StoreError::Corrupt(source.into())
    }
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Conflict | StoreError::Unavailable(_))
    }
}

/// What a store found wrong with an item it read: names the part, since the item is not ours to print.
#[derive(Debug, thiserror::Error)]
#[error("malformed item: {0}")]
pub struct Malformed(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateOutcome {
    Created,
    Suppressed,
    Throttled,
    /// An invitation with this id exists already: a retried chunk or a resumed launch.
    AlreadyCreated,
}

/// A campaign's running totals, kept as atomic counters in the same transactions as the changes
/// they count, so an overview never scans every answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CampaignCounters {
    pub invited: u64,
    pub tally: crate::nps::Tally,
}

/// An invitation with its current answer, for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct InvitationRow {
    pub invitation: Invitation,
    pub answer: Option<Answer>,
    pub suppressed: bool,
    pub review_clicks: u32,
}

/// Where the next page of a campaign's rows starts. Opaque to callers: each store writes its own
/// position into it, and a position from the URL only ever moves where reading starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowCursor(String);

#[derive(Debug, thiserror::Error)]
#[error("a page cursor is 1 to {max} bytes of text without spaces or control characters", max = RowCursor::MAX_LEN)]
pub struct BadCursor;

impl RowCursor {
    /// DynamoDB's largest sort key: a case's key holds an owner's address of up to 254 bytes.
    pub const MAX_LEN: usize = 1024;

    pub fn parse(text: &str) -> Result<Self, BadCursor> {
        // Sort keys can hold an owner's address, which may be internationalised.
        let printable = text.chars().all(|c| !c.is_control() && !c.is_whitespace());
        if text.is_empty() || text.len() > Self::MAX_LEN || !printable {
            return Err(BadCursor);
        }
        Ok(RowCursor(text.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which rows a page reads: the whole campaign's, or one owner's through the owner index.
#[derive(Debug, Clone, Copy)]
pub struct RowQuery<'a> {
    pub campaign: &'a CampaignId,
    pub owner: Option<&'a Email>,
    pub after: Option<&'a RowCursor>,
    /// No invitation id after this one (the end of one part of an export).
    pub through: Option<&'a str>,
    /// At most this many rows (a store may return fewer and still have more).
    pub limit: usize,
}

impl<'a> RowQuery<'a> {
    /// The first page of every row of a campaign, `limit` at a time.
    pub fn campaign(campaign: &'a CampaignId, limit: usize) -> Self {
        Self { campaign, owner: None, after: None, through: None, limit }
    }
}

/// A page of rows in invitation-id order, and where the next one starts (`None` at the end).
#[derive(Debug, Clone, Default)]
pub struct RowPage {
    pub rows: Vec<InvitationRow>,
    pub next: Option<RowCursor>,
}

/// What a survey page reads after its token: the campaign, its stored state (none: active) and
/// the invitation's answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SurveyReads {
    pub campaign: Option<Campaign>,
    pub status: Option<crate::lifecycle::CampaignStatus>,
    pub answer: Option<Answer>,
}

#[async_trait]
pub trait Store: Sync + Send {
    async fn put_campaign(&self, campaign: &Campaign) -> Result<(), StoreError>;
    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError>;
    async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError>;

    /// Writes a campaign saved in the workspace together with its change-log entry, all or
    /// nothing. False, writing nothing, when another save took `change.revision` first, when a
    /// save that creates (`change.kind.creates()`) finds a campaign with the id, or when an edit
    /// finds none. `first_status`, with a creation, is the campaign's first state (a draft),
    /// written in the same transaction, so the campaign is never active for a moment.
    async fn save_campaign(
        &self,
        campaign: &Campaign,
        change: &crate::changelog::CampaignChange,
        first_status: Option<&crate::lifecycle::CampaignStatus>,
    ) -> Result<bool, StoreError>;
    /// A campaign's change log, newest first.
    async fn campaign_changes(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<crate::changelog::CampaignChange>, StoreError>;

    /// Creates each invitation unless one of its contact keys is suppressed or was invited at or
    /// after `throttle_since`; each creation writes its `InvitationCreated` event atomically.
    async fn create_invitations(&self, invitations: &[Invitation], throttle_since: Timestamp) -> Result<Vec<CreateOutcome>, StoreError>;
    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, StoreError>;
    async fn invitation_by_token(&self, token: &Token) -> Result<Option<Invitation>, StoreError>;
    async fn campaign_rows(&self, campaign: &CampaignId) -> Result<Vec<InvitationRow>, StoreError>;
    /// One page of a campaign's rows (or one owner's), in invitation-id order, with a bounded
    /// number of reads: one query, plus one batch read for an owner's answers on DynamoDB (whose
    /// owner pages hold at most 100 rows for that).
    async fn rows_page(&self, query: RowQuery<'_>) -> Result<RowPage, StoreError>;
    /// The counter buckets of a campaign whose names start with one of `prefixes` (see
    /// `counters::View`): a read of a few items, however many answers the campaign has.
    async fn counter_buckets(&self, campaign: &CampaignId, prefixes: &[String]) -> Result<std::collections::BTreeMap<String, Fields>, StoreError>;

    async fn campaign_counters(&self, campaign: &CampaignId) -> Result<CampaignCounters, StoreError> {
        let aggregates = Aggregates::from_buckets(self.counter_buckets(campaign, &[crate::counters::TOTAL.to_owned()]).await?);
        Ok(CampaignCounters { invited: aggregates.funnel().invited, tally: aggregates.tally() })
    }

    async fn answer(&self, invitation: &InvitationId) -> Result<Option<Answer>, StoreError>;
    /// Writes `answer` if the stored version is `answer.version - 1` (none for version 1), marks the
    /// invitation answered, moves the campaign's group counters from the previous score's group
    /// to this one's, and appends an `AnswerRecorded` event, all or nothing. `Conflict` otherwise.
    /// `counters` are `counters::answer_deltas` of the replaced answer (the one of version − 1).
    async fn record_answer(&self, answer: &Answer, event: &Event, counters: &CounterDeltas) -> Result<(), StoreError>;

    /// Marks the invitation's page as opened and counts it, the first time only; true if first.
    /// `campaign` is the invitation's (the caller has the invitation): no read to learn it.
    async fn record_open(&self, invitation: &InvitationId, campaign: &CampaignId, at: Timestamp) -> Result<bool, StoreError>;

    /// Events not yet completed, oldest first.
    async fn pending_events(&self, limit: usize) -> Result<Vec<Event>, StoreError>;
    async fn complete_event(&self, id: &str, at: Timestamp) -> Result<(), StoreError>;

    /// A campaign's state; `None` for one never changed (active).
    async fn campaign_status(&self, campaign: &CampaignId) -> Result<Option<crate::lifecycle::CampaignStatus>, StoreError>;
    /// Stores `status` if the stored state is still `expected` (a missing status counts as
    /// active); `false` when someone changed it first.
    async fn set_campaign_status(
        &self,
        campaign: &CampaignId,
        status: &crate::lifecycle::CampaignStatus,
        expected: crate::lifecycle::CampaignState,
    ) -> Result<bool, StoreError>;
    /// Keeps an invitation whose campaign was paused when it was to go out; idempotent.
    async fn hold_invitation(&self, campaign: &CampaignId, invitation: &InvitationId, at: Timestamp) -> Result<(), StoreError>;
    /// Invitations of a campaign that wait for it to resume, oldest first.
    async fn held_invitations(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<InvitationId>, StoreError>;
    async fn release_invitation(&self, campaign: &CampaignId, invitation: &InvitationId) -> Result<(), StoreError>;
    /// The held invitations after `after` in id order: a walk through a long held list.
    async fn held_invitations_after(&self, campaign: &CampaignId, after: &InvitationId, limit: usize) -> Result<Vec<InvitationId>, StoreError>;
    /// Completes several handled events; a store may do it in one write.
    async fn complete_events(&self, ids: &[String], at: Timestamp) -> Result<(), StoreError> {
        for id in ids {
            self.complete_event(id, at).await?;
        }
        Ok(())
    }

    /// Claims the right to send the message with this key; false if it was claimed before.
    async fn claim_send(&self, key: &str, at: Timestamp) -> Result<bool, StoreError>;
    /// Gives a claim back after a send failed, so a retry may send.
    async fn release_send(&self, key: &str) -> Result<(), StoreError>;
    /// `claim_send` for many keys, in the order given: a dispatcher's batch of invitations
    /// claims its sends in one write (SQLite: one transaction) instead of one each. A key given
    /// twice is claimed by its first place only.
    async fn claim_sends(&self, keys: &[String], at: Timestamp) -> Result<Vec<bool>, StoreError> {
        let mut claimed = Vec::with_capacity(keys.len());
        for key in keys {
            claimed.push(self.claim_send(key, at).await?);
        }
        Ok(claimed)
    }

    /// True if the key was not suppressed before. Clears pending reminders of that contact and
    /// counts the reason once in each campaign the contact was invited to.
    async fn suppress(&self, key: &ContactKey, reason: SuppressionReason, at: Timestamp) -> Result<bool, StoreError>;
    async fn is_suppressed(&self, keys: &[ContactKey]) -> Result<bool, StoreError>;
    /// `is_suppressed` for each of several people (each a list of contact keys), in one read
    /// where the store can.
    async fn are_suppressed(&self, people: &[Vec<ContactKey>]) -> Result<Vec<bool>, StoreError> {
        let mut suppressed = Vec::with_capacity(people.len());
        for keys in people {
            suppressed.push(self.is_suppressed(keys).await?);
        }
        Ok(suppressed)
    }
    /// When each of these contact keys was last invited (keys never invited are absent): what
    /// the throttle window is checked against, for a dry run that writes nothing.
    async fn last_invited(&self, keys: &[ContactKey]) -> Result<std::collections::HashMap<ContactKey, Timestamp>, StoreError>;

    /// Invitations whose next reminder is due at or before `at`, oldest first.
    async fn due_reminders(&self, at: Timestamp, limit: usize) -> Result<Vec<Invitation>, StoreError>;
    /// Records that reminder number `sent` went out, and when the next is due (if any).
    async fn reminder_sent(&self, invitation: &InvitationId, sent: u32, next: Option<Timestamp>) -> Result<(), StoreError>;

    /// Records a click; the first click of an invitation also counts a review clicker.
    async fn record_review_click(&self, invitation: &InvitationId, site: &str, at: Timestamp) -> Result<(), StoreError>;

    /// Opens a case unless the invitation already has one; true if opened.
    async fn open_case(&self, case: &FollowUpCase) -> Result<bool, StoreError>;
    async fn case(&self, invitation: &InvitationId) -> Result<Option<FollowUpCase>, StoreError>;
    async fn overdue_cases(&self, at: Timestamp, limit: usize) -> Result<Vec<FollowUpCase>, StoreError>;
    async fn case_escalated(&self, invitation: &InvitationId, at: Timestamp) -> Result<(), StoreError>;
    /// A campaign's cases, all or one owner's, through an index on (campaign, owner, due).
    async fn cases(&self, campaign: &CampaignId, owner: Option<&Email>) -> Result<Vec<FollowUpCase>, StoreError>;
    /// Appends a note; false if there is no such case.
    async fn add_case_note(&self, invitation: &InvitationId, note: &CaseNote) -> Result<bool, StoreError>;
    /// Closes an open case; false if there is none or it was closed already (the first closure stands).
    async fn close_case(&self, invitation: &InvitationId, closure: &CaseClosure) -> Result<bool, StoreError>;

    /// A campaign, its stored state and an invitation's answer together: what a survey page
    /// needs after the token lookup. DynamoDB reads the three in one BatchGetItem (one
    /// subrequest on the Worker).
    async fn campaign_and_answer(&self, campaign: &CampaignId, invitation: &InvitationId) -> Result<SurveyReads, StoreError> {
        Ok(SurveyReads {
            campaign: self.campaign(campaign).await?,
            status: self.campaign_status(campaign).await?,
            answer: self.answer(invitation).await?,
        })
    }

    /// Writes an event that changes nothing else: a request the reactions carry out (a test
    /// mail). False if an event with its id exists (a retried request asks once).
    async fn append_event(&self, change: &crate::changes::Change) -> Result<bool, StoreError>;

    /// Stores a new launch job unless one with its id exists (two starts of the same file at
    /// once); returns the job as stored.
    async fn create_launch(&self, job: &crate::launch::LaunchJob) -> Result<crate::launch::LaunchJob, StoreError>;
    async fn launch(&self, id: &crate::launch::LaunchId) -> Result<Option<crate::launch::LaunchJob>, StoreError>;
    /// A campaign's launches, the most recent first, at most `limit`.
    async fn launches(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<crate::launch::LaunchJob>, StoreError>;
    /// Adds one chunk's result to its job, once: a chunk recorded before (a redelivery, a
    /// resumed launch) changes nothing. Returns the job as it is now (`None` if there is no job).
    async fn record_launch_chunk(
        &self,
        id: &crate::launch::LaunchId,
        chunk: u32,
        result: &crate::launch::ChunkResult,
        at: Timestamp,
    ) -> Result<Option<crate::launch::LaunchJob>, StoreError>;

    /// Each invitation with its answer, in the order asked; `None` for an unknown id. DynamoDB
    /// reads them with BatchGetItem (100 keys a call), so a page of 100 cases costs the Worker
    /// two subrequests instead of 200.
    async fn invitations_with_answers(&self, ids: &[InvitationId]) -> Result<Vec<(Option<Invitation>, Option<Answer>)>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.push((self.invitation(id).await?, self.answer(id).await?));
        }
        Ok(found)
    }

    /// Counts these events (read from the work index or the stream) if they carry deltas not
    /// counted yet: what a dispatcher calls before reacting to the events it fetched.
    async fn count_events(&self, _events: &[Event]) -> Result<usize, StoreError> {
        Ok(0)
    }

    /// Adds the counter deltas of changes already written, each change once however often it
    /// is delivered; returns how many were counted now. Stores that add counters inside the
    /// change's own transaction (SQLite) have nothing to do. DynamoDB's stream consumer calls it.
    async fn apply_counters(&self, _changes: &[crate::changes::Change]) -> Result<usize, StoreError> {
        Ok(0)
    }

    /// Counts every written change not counted yet: what the stream consumer does on AWS. For a
    /// local dispatcher over such a store, and for tests before they read counters.
    async fn settle_counters(&self) -> Result<usize, StoreError> {
        Ok(0)
    }

    // Dashboard accounts (`accounts`).

    /// Every stored account, by name.
    async fn accounts(&self) -> Result<Vec<crate::accounts::Account>, StoreError>;
    async fn account(&self, name: &str) -> Result<Option<crate::accounts::Account>, StoreError>;
    /// Stores the account only if the stored one is still at `account.version` (0: none is
    /// stored yet); the stored copy has the next version. False when another change came first.
    async fn put_account(&self, account: &crate::accounts::Account) -> Result<bool, StoreError>;

    /// Wrong sign-in tokens of one client (`accounts::SignInFailures`).
    async fn sign_in_failures(&self, client: &str) -> Result<Option<crate::accounts::SignInFailures>, StoreError>;
    /// Keeps the client's count; `None` clears it (a right token).
    async fn set_sign_in_failures(&self, client: &str, failures: Option<&crate::accounts::SignInFailures>) -> Result<(), StoreError>;

    // The audit log (`audit`): append-only.

    /// Appends an entry; nothing changes or removes one.
    async fn append_audit(&self, entry: &crate::audit::AuditEntry) -> Result<(), StoreError>;
    /// A page of the log, newest first, from `before` (a page's `next`) or from the newest.
    async fn audit_log(&self, before: Option<&str>, limit: usize) -> Result<crate::audit::AuditPage, StoreError>;

    // Webhook deliveries (`webhooks`): a queue of attempts with their log.

    /// Queues deliveries; one whose id is queued already is left as it is (an event handled
    /// twice queues once). Returns how many were new.
    async fn enqueue_webhooks(&self, deliveries: &[crate::webhooks::WebhookDelivery]) -> Result<usize, StoreError>;
    /// Pending deliveries due at or before `at`, soonest first, of every campaign.
    async fn due_webhooks(&self, at: Timestamp, limit: usize) -> Result<Vec<crate::webhooks::WebhookDelivery>, StoreError>;
    /// Stores a delivery after an attempt (or a redelivery); only a pending one stays due.
    async fn save_webhook(&self, delivery: &crate::webhooks::WebhookDelivery) -> Result<(), StoreError>;
    /// A campaign's deliveries, newest first: the delivery log.
    async fn webhook_log(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<crate::webhooks::WebhookDelivery>, StoreError>;
    /// One delivery, for a manual redelivery.
    async fn webhook(&self, campaign: &CampaignId, id: &str) -> Result<Option<crate::webhooks::WebhookDelivery>, StoreError>;
    /// An endpoint's run of failures; none before its first failure.
    async fn webhook_health(&self, campaign: &CampaignId, endpoint: &str) -> Result<Option<crate::webhooks::EndpointHealth>, StoreError>;
    async fn set_webhook_health(&self, campaign: &CampaignId, endpoint: &str, health: &crate::webhooks::EndpointHealth) -> Result<(), StoreError>;

    // One person's data (`privacy`): access and erasure.

    /// The key this store hashes erased contact keys with, made once on first use and kept in
    /// the store, so every process over the same data hashes alike.
    /// "You said, we did". Writes a new update; false (and nothing written) when one with its id
    /// exists, so a composer form posted twice is one update.
    async fn create_update(&self, update: &crate::updates::CampaignUpdate) -> Result<bool, StoreError>;
    async fn update(&self, campaign: &CampaignId, id: &crate::updates::UpdateId) -> Result<Option<crate::updates::CampaignUpdate>, StoreError>;
    /// A campaign's updates, newest first.
    async fn updates(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<crate::updates::CampaignUpdate>, StoreError>;
    /// Where sending an existing update stands (only its sender writes this).
    async fn save_update_progress(&self, campaign: &CampaignId, id: &crate::updates::UpdateId, progress: &crate::updates::UpdateProgress) -> Result<(), StoreError>;
    /// A message that counts toward the "not too often" rule went to these keys at `at`: an
    /// invitation within the throttle window after it is refused, as after an invitation.
    /// A later time never moves back.
    async fn record_contact(&self, keys: &[ContactKey], at: Timestamp) -> Result<(), StoreError>;

    async fn erasure_key(&self) -> Result<crate::privacy::ErasureKey, StoreError>;
    /// The invitations, in any campaign, of a contact known by any of these keys.
    async fn person_invitations(&self, keys: &[ContactKey]) -> Result<Vec<InvitationId>, StoreError>;
    /// Every version of the invitation's answer, oldest first (an answer stored before versions
    /// were kept comes back as its one current version).
    async fn answer_versions(&self, invitation: &InvitationId) -> Result<Vec<Answer>, StoreError>;
    /// The suppression-list entries under these keys.
    async fn suppressions(&self, keys: &[ContactKey]) -> Result<Vec<crate::privacy::SuppressionRecord>, StoreError>;
    /// When each send key was claimed; `None` for one never claimed.
    async fn send_claims(&self, keys: &[String]) -> Result<Vec<Option<Timestamp>>, StoreError>;
    /// Rewrites the invitation, every version of its answer and its case as `privacy` erases
    /// them, gives it a token no link carries, drops its contact links (so it is no longer
    /// found, and no longer throttles anyone), and deletes messages the store holds that were
    /// sent to or about the person (the local outbox). False if there is no such invitation.
    /// Counters do not move. Erasing twice is erasing once.
    async fn erase_invitation(&self, id: &InvitationId, at: Timestamp) -> Result<bool, StoreError>;
    /// Puts the keyed hash of each key on the suppression list (under the reason its entry had,
    /// `Erased` if none), then removes the entries and throttle records under the keys
    /// themselves. Returns how many hashes were new. A relaunch of the same person checks the
    /// hashes and invites nobody.
    async fn forget_contact_keys(&self, keys: &[ContactKey], at: Timestamp) -> Result<usize, StoreError>;
    /// Invitations of the campaign created before `created_before` and not erased yet, oldest
    /// first: what retention (`schedule`) erases next.
    async fn invitations_to_retain(&self, campaign: &CampaignId, created_before: Timestamp, limit: usize) -> Result<Vec<InvitationId>, StoreError>;
    /// After an erasure: makes what was erased unrecoverable from the store's own files (SQLite:
    /// the WAL is checkpointed and truncated). Nothing to do where the service does it.
    async fn purge_erased(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// What a message is for: shown in the outbox and used in idempotency keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Invitation,
    Reminder,
    ThankYou,
    ReviewInvitation,
    Alert,
    Escalation,
    Digest,
    /// Told a survey is coming, a few days before a scheduled campaign starts.
    HeadsUp,
    /// To the campaign's manager: a webhook endpoint failed so often it was switched off.
    WebhookDisabled,
    /// "You said, we did": what changed, to those who answered (and maybe those who did not).
    Update,
    /// From a case's owner to the respondent, with the outcome, when the case is closed.
    CaseFollowUp,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Invitation => "invitation",
            MessageKind::Reminder => "reminder",
            MessageKind::ThankYou => "thank_you",
            MessageKind::ReviewInvitation => "review_invitation",
            MessageKind::Alert => "alert",
            MessageKind::Escalation => "escalation",
            MessageKind::Digest => "digest",
            MessageKind::HeadsUp => "heads_up",
            MessageKind::WebhookDisabled => "webhook_disabled",
            MessageKind::Update => "update",
            MessageKind::CaseFollowUp => "case_follow_up",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingMail {
    pub kind: MessageKind,
    /// The send's idempotency key (`thank_you:{id}`); set by the sender, becomes the Message-ID.
    #[serde(default)]
    pub key: String,
    pub from_name: String,
    pub from_email: String,
    pub to_name: Option<String>,
    pub to_email: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingSms {
    pub kind: MessageKind,
    pub to: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later: throttling, timeouts, the service being down.
    #[error("temporary send failure: {0}")]
    Transient(#[source] BoxError),
    /// Retrying cannot help: a refused address, a rejected message.
    #[error("permanent send failure: {0}")]
    Permanent(#[source] BoxError),
}

impl SendError {
    pub fn transient(source: impl Into<BoxError>) -> Self {
        SendError::Transient(source.into())
    }
    pub fn permanent(source: impl Into<BoxError>) -> Self {
        SendError::Permanent(source.into())
    }
    /// Sorts a provider's error by its code: the listed codes can never succeed as sent, every
    /// other failure (throttling, timeouts, 5xx) may succeed later.
    pub fn classify(code: Option<&str>, permanent_codes: &[&str], source: impl Into<BoxError>) -> Self {
        if code.is_some_and(|c| permanent_codes.contains(&c)) {
            SendError::permanent(source)
        } else {
            SendError::transient(source)
        }
    }
}

#[async_trait]
pub trait Mailer: Sync + Send {
    /// Returns the provider's message id.
    async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError>;
    /// Sends several mails, each with its own outcome in the order given: the local outbox
    /// stores a batch in one transaction; a provider sends them one by one at its own rate.
    async fn send_mails(&self, mails: &[OutgoingMail]) -> Vec<Result<String, SendError>> {
        let mut sent = Vec::with_capacity(mails.len());
        for mail in mails {
            sent.push(self.send_mail(mail).await);
        }
        sent
    }
}

/// What an endpoint answered to one webhook POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
}

/// Why a webhook POST got no answer: each is a failed attempt, retried on the schedule.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSendError {
    /// The address is not one this runtime may call (`webhooks::AddressPolicy`): SSRF.
    #[error("refused: {0}")]
    Refused(String),
    #[error("timed out")]
    Timeout,
    #[error("could not connect")]
    Connect(#[source] BoxError),
    /// The endpoint's secret could not be read (a parameter missing or unreadable).
    #[error("secret unavailable: {0}")]
    Secret(String),
}

/// Posts one signed webhook. No redirects are followed and only a little of the response is
/// read: an endpoint's answer is its status.
#[async_trait]
pub trait WebhookSender: Sync + Send {
    async fn post(&self, url: &crate::webhooks::WebhookUrl, headers: &[(String, String)], body: &str) -> Result<WebhookResponse, WebhookSendError>;

    /// The secret a parameter reference (`ssm:/…`) names. Only the Lambda's sender reads a
    /// parameter store; elsewhere a referenced secret cannot sign, and the attempt says so.
    async fn parameter(&self, name: &str) -> Result<String, WebhookSendError> {
        Err(WebhookSendError::Secret(format!("no parameter store here to read {name}")))
    }
}

#[async_trait]
pub trait SmsSender: Sync + Send {
    async fn send_sms(&self, sms: &OutgoingSms) -> Result<String, SendError>;
}

pub trait Clock: Sync + Send {
    fn now(&self) -> Timestamp;
}

/// Where outbound links point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    base: String,
}

impl Links {
    pub fn new(public_base_url: &str) -> Self {
        Self { base: public_base_url.trim_end_matches('/').to_owned() }
    }
    /// The address the links start with (`https://nps.example`).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn survey(&self, token: &Token) -> String {
        format!("{}/s/{}", self.base, token.as_str())
    }
    pub fn survey_with_score(&self, token: &Token, score: u8) -> String {
        format!("{}/s/{}?score={score}", self.base, token.as_str())
    }
    pub fn unsubscribe(&self, token: &Token) -> String {
        format!("{}/u/{}", self.base, token.as_str())
    }
    pub fn dashboard(&self, campaign: &CampaignId) -> String {
        format!("{}/admin/c/{}", self.base, campaign.as_str())
    }
    /// A tracked link of a "you said, we did" update: counted, then on to the address written.
    pub fn update_link(&self, token: &Token, update: &crate::updates::UpdateId, index: usize) -> String {
        format!("{}/n/{}/{update}/{index}", self.base, token.as_str())
    }

    pub fn review(&self, token: &Token, site: &str) -> String {
        format!("{}/r/{}/{site}", self.base, token.as_str())
    }
}

/// Wall-clock time for native processes (the local process, Lambdas). Not for the Worker:
/// wasm32-unknown-unknown has no system clock, the Worker reads JavaScript's instead.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        Timestamp::from_millis(ms)
    }
}

/// A clock that moves only when told: for tests and for `run-schedule --at`.
#[derive(Debug)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        Self(std::sync::atomic::AtomicI64::new(at.millis()))
    }
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.millis(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_cursor_is_bounded_text_without_spaces_or_control_characters() {
        assert!(RowCursor::parse("3f2a-17#INV").is_ok());
        assert!(RowCursor::parse("CASE#åsa@exempel.se#0001790000000000#3f2a-17").is_ok(), "an internationalised owner");
        for bad in ["", "a b", "a\u{0}b", "a\nb", &"x".repeat(RowCursor::MAX_LEN + 1)] {
            assert!(RowCursor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_listed_provider_codes_are_permanent() {
        let permanent = ["MessageRejected"];
        assert!(matches!(SendError::classify(Some("MessageRejected"), &permanent, "x"), SendError::Permanent(_)));
        assert!(matches!(SendError::classify(Some("Throttling"), &permanent, "x"), SendError::Transient(_)));
        assert!(matches!(SendError::classify(None, &permanent, "timeout"), SendError::Transient(_)));
    }
}
