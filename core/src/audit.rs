//! The record of processing (GDPR Art. 30): every staff action that touches personal data or
//! settings, who did it, when, and from where. Append-only in the store: no port call changes
//! or removes an entry, and SQLite refuses it with triggers.
//!
//! An entry never holds a respondent's address or phone: a person is named by the keyed hash
//! the store's erasure key gives their contact key, so the log of an erasure keeps nothing the
//! erasure removed, and the export and erasure of one person still read as the same person.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    SignedIn,
    SignInFailed,
    SignInThrottled,
    SignedOut,
    CsvExported,
    PersonExported,
    PersonErased,
    CaseNoteAdded,
    CaseClosed,
    CampaignCreated,
    CampaignEdited,
    CampaignLaunched,
    CampaignStateChanged,
    AuditLogExported,
    AccountAdded,
    AccountChanged,
    /// A "you said, we did" update was sent to its audience.
    UpdateSent,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::SignedIn => "signed in",
            AuditAction::SignInFailed => "sign-in failed",
            AuditAction::SignInThrottled => "sign-in throttled",
            AuditAction::SignedOut => "signed out",
            AuditAction::CsvExported => "CSV exported",
            AuditAction::PersonExported => "person exported",
            AuditAction::PersonErased => "person erased",
            AuditAction::CaseNoteAdded => "case note added",
            AuditAction::CaseClosed => "case closed",
            AuditAction::UpdateSent => "update sent",
            AuditAction::CampaignCreated => "campaign created",
            AuditAction::CampaignEdited => "campaign edited",
            AuditAction::CampaignLaunched => "campaign launched",
            AuditAction::CampaignStateChanged => "campaign state changed",
            AuditAction::AuditLogExported => "audit log exported",
            AuditAction::AccountAdded => "account added",
            AuditAction::AccountChanged => "account changed",
        }
    }
}

/// Longest `who`, `subject` and `client` an entry keeps: a forged header cannot grow the log.
pub const MAX_AUDIT_FIELD_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// The account's name, `api` for the API token, `cli` for the command line; for a failed
    /// sign-in, `unknown`.
    pub who: String,
    pub action: AuditAction,
    /// What it was done to: a campaign id, a case's invitation id, a person's keyed hash.
    pub subject: String,
    /// The client's address as the platform gave it; `None` on the command line.
    pub client: Option<String>,
}

impl AuditEntry {
    /// Each text bounded and stripped of control characters, whatever the caller passed.
    pub fn new(at: Timestamp, who: &str, action: AuditAction, subject: &str, client: Option<&str>) -> Self {
        let clean = |text: &str| text.chars().filter(|c| !c.is_control()).take(MAX_AUDIT_FIELD_CHARS).collect::<String>();
        Self { at, who: clean(who), action, subject: clean(subject), client: client.map(clean) }
    }
}

/// A page of the log, newest first, and where the next (older) page starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Opaque to callers: the store's own position.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_keeps_no_control_character_and_no_overlong_field() {
        let entry = AuditEntry::new(Timestamp::from_millis(0), "Eve\r\nAdmin", AuditAction::SignInFailed, &"x".repeat(5000), Some("1.2.3.4\n"));
        assert_eq!(entry.who, "EveAdmin");
        assert_eq!(entry.subject.chars().count(), MAX_AUDIT_FIELD_CHARS);
        assert_eq!(entry.client.as_deref(), Some("1.2.3.4"));
    }
}
