//! Domain records: contacts, invitations, answers, follow-up cases and the events between them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::campaign::{Campaign, CampaignId};
use crate::nps::Score;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    En,
    Sv,
    Da,
}

impl Locale {
    pub const ALL: [Locale; 3] = [Locale::En, Locale::Sv, Locale::Da];

    /// Accepts what CRMs export: "sv", "SV", "sv-SE", "sv_SE", "da-DK"; Norwegian-less for now.
    pub fn parse(input: &str) -> Option<Self> {
        let lang = input.trim().get(..2)?.to_ascii_lowercase();
        let rest = &input.trim()[2..];
        if !(rest.is_empty() || rest.starts_with('-') || rest.starts_with('_')) {
            return None;
        }
        match lang.as_str() {
            "en" => Some(Locale::En),
            "sv" => Some(Locale::Sv),
            "da" => Some(Locale::Da),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Sv => "sv",
            Locale::Da => "da",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("{0:?} is not an email address")]
    BadEmail(String),
    #[error("{0:?} is not a phone number in international form, such as +46 70 123 45 67")]
    BadPhone(String),
    #[error("needs an email address or a mobile phone number")]
    NoChannel,
    #[error("{field} is longer than {max} characters")]
    TooLong { field: String, max: usize },
    #[error("has {found} CRM property columns; at most {max} are kept: remove the columns you do not need")]
    TooManyProperties { found: usize, max: usize },
}

/// A lower-cased, syntactically plausible address. Deliverability is SES's business.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Characters that change how text reads without showing (direction overrides, zero-width
/// marks), and U+FFFD, which stands for bytes that were not text: none belongs in an address.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{FFFD}')
}

impl Email {
    pub fn parse(input: &str) -> Result<Self, ContactError> {
        let candidate = input.trim();
        let bad = || ContactError::BadEmail(candidate.chars().take(80).collect());
        if candidate.len() > 254 || candidate.chars().any(|c| c.is_whitespace() || c.is_control() || invisible(c)) {
            return Err(bad());
        }
        let (local, domain) = candidate.rsplit_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && !local.contains(['<', '>', '"', ',', ';', ':', '(', ')', '[', ']', '\\']);
        if !(domain_ok && local_ok) {
            return Err(bad());
        }
        // NFC, so "jörg" typed as o + combining diaeresis (as macOS pastes it) is the same
        // address as the precomposed ö the CRM exported: one key for suppression and erasure.
        let composed = icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(candidate);
        Ok(Self(composed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = ContactError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

/// E.164: "+" and 8 to 15 digits. Spaces, dashes, dots and brackets that people type are dropped;
/// a leading "00" is the international prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    pub fn parse(input: &str) -> Result<Self, ContactError> {
        let bad = || ContactError::BadPhone(input.trim().chars().take(40).collect());
        let compact: String = input.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}')).collect();
        let digits = if let Some(rest) = compact.strip_prefix('+') {
            rest
        } else if let Some(rest) = compact.strip_prefix("00") {
            rest
        } else {
            return Err(bad());
        };
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
            return Err(bad());
        }
        Ok(Self(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Phone {
    type Error = ContactError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}

/// How a person is recognised across campaigns, for suppression and throttling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContactKey(String);

impl ContactKey {
    pub fn email(email: &Email) -> Self {
        Self(format!("email:{}", email.as_str()))
    }
    pub fn phone(phone: &Phone) -> Self {
        Self(format!("phone:{}", phone.as_str()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }
}

pub const MAX_FIELD_CHARS: usize = 200;
pub const MAX_PROPERTIES: usize = 50;

/// A person from the CRM, with the background fields that make the answer actionable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub segment: Option<String>,
    pub store: Option<String>,
    pub owner_email: Option<Email>,
    pub touchpoint: Option<String>,
    pub locale: Option<Locale>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl Contact {
    /// The contact with every text field cleaned (`clean::field`): no control character, line
    /// separator or bidi override reaches a header, a page or an export from here on. A field
    /// that held nothing else is dropped.
    pub fn cleaned(mut self) -> Self {
        let clean = |v: Option<String>| v.map(|v| crate::clean::field(&v)).filter(|v| !v.is_empty());
        self.first_name = clean(self.first_name);
        self.last_name = clean(self.last_name);
        self.company = clean(self.company);
        self.segment = clean(self.segment);
        self.store = clean(self.store);
        self.touchpoint = clean(self.touchpoint);
        self.properties = std::mem::take(&mut self.properties)
            .into_iter()
            .map(|(k, v)| (crate::clean::field(&k), crate::clean::field(&v)))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .collect();
        self
    }

    /// Every key this person is known by; suppressing or throttling one covers them all.
    pub fn keys(&self) -> Vec<ContactKey> {
        let mut keys = Vec::with_capacity(2);
        if let Some(e) = &self.email {
            keys.push(ContactKey::email(e));
        }
        if let Some(p) = &self.phone {
            keys.push(ContactKey::phone(p));
        }
        keys
    }

    /// Email is preferred: it carries the embedded scale and the unsubscribe headers.
    pub fn channel(&self) -> Option<Channel> {
        if self.email.is_some() {
            Some(Channel::Email)
        } else if self.phone.is_some() {
            Some(Channel::Sms)
        } else {
            None
        }
    }

    pub fn full_name(&self) -> String {
        [self.first_name.as_deref(), self.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ")
    }

    /// Checks invariants that hold however the contact arrived (CSV, API).
    pub fn validate(&self) -> Result<(), ContactError> {
        if self.channel().is_none() {
            return Err(ContactError::NoChannel);
        }
        let named = [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("company", &self.company),
            ("segment", &self.segment),
            ("store", &self.store),
            ("touchpoint", &self.touchpoint),
        ];
        for (field, value) in named {
            if value.as_ref().is_some_and(|v| v.chars().count() > MAX_FIELD_CHARS) {
                return Err(ContactError::TooLong { field: field.into(), max: MAX_FIELD_CHARS });
            }
        }
        if self.properties.len() > MAX_PROPERTIES {
            return Err(ContactError::TooManyProperties { found: self.properties.len(), max: MAX_PROPERTIES });
        }
        for (k, v) in &self.properties {
            if k.chars().count() > 64 || v.chars().count() > MAX_FIELD_CHARS {
                return Err(ContactError::TooLong { field: k.clone(), max: MAX_FIELD_CHARS });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

/// The secret in a personal link: 128 random bits written as 22 base-62 characters, so an SMS
/// link stays short and the token survives any URL handling untouched.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const TOKEN_LEN: usize = 22;

impl Token {
    /// `random` must come from a cryptographic source (a v4 UUID's bytes qualify).
    pub fn from_random_bytes(random: [u8; 16]) -> Self {
        let mut n = u128::from_be_bytes(random);
        let mut out = [b'0'; TOKEN_LEN];
        for slot in out.iter_mut().rev() {
            *slot = BASE62[(n % 62) as usize];
            n /= 62;
        }
        Self(out.iter().map(|b| *b as char).collect())
    }

    /// A syntactic check only: refuses junk before any storage lookup.
    pub fn parse(input: &str) -> Option<Self> {
        (input.len() == TOKEN_LEN && input.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A token as the store holds it, not checked: an erased invitation's is no link token.
    pub fn stored(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for Token {
    // Tokens are credentials: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}…)", &self.0[..4.min(self.0.len())])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InvitationId(pub String);

impl std::fmt::Display for InvitationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One personal invitation to answer one campaign. One answer per invitation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: InvitationId,
    pub token: Token,
    pub campaign_id: CampaignId,
    pub contact: Contact,
    pub channel: Channel,
    pub locale: Locale,
    pub touchpoint: Option<String>,
    pub created_at: Timestamp,
    pub reminders_sent: u32,
    /// Set while a reminder may still be due; cleared by an answer, an unsubscribe or the last reminder.
    pub next_reminder_at: Option<Timestamp>,
    pub answered_at: Option<Timestamp>,
    /// When the personal page was first opened (a mail scanner's open counts too).
    #[serde(default)]
    pub opened_at: Option<Timestamp>,
    /// Set once when the contact is suppressed, so the campaign's funnel counts each person once.
    #[serde(default)]
    pub suppressed: Option<SuppressionReason>,
    /// Not sent before this (the API's `send_at` or `delay_minutes`: two hours after the visit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_after: Option<Timestamp>,
    /// When the person's personal data was erased (`privacy`); the row stays, anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<Timestamp>,
}

impl Invitation {
    pub fn new(id: InvitationId, token: Token, campaign: &Campaign, contact: Contact, now: Timestamp) -> Result<Self, ContactError> {
        contact.validate()?;
        let channel = contact.channel().ok_or(ContactError::NoChannel)?;
        let locale = campaign.locale_for(contact.locale);
        let touchpoint = contact.touchpoint.clone().or_else(|| campaign.touchpoint.clone());
        Ok(Self {
            id,
            token,
            campaign_id: campaign.id.clone(),
            contact,
            channel,
            locale,
            touchpoint,
            created_at: now,
            reminders_sent: 0,
            next_reminder_at: crate::rules::first_reminder_at(&campaign.reminders, now),
            answered_at: None,
            opened_at: None,
            suppressed: None,
            send_after: None,
            erased_at: None,
        })
    }
}

pub const MAX_COMMENT_CHARS: usize = 2000;

/// The respondent's current answer. `version` grows by one with every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub invitation_id: InvitationId,
    pub campaign_id: CampaignId,
    pub score: Score,
    pub comment: Option<String>,
    pub contact_ok: bool,
    #[serde(default)]
    pub ratings: BTreeMap<String, u8>,
    pub version: u32,
    pub first_answered_at: Timestamp,
    pub answered_at: Timestamp,
}

/// Facts the reactions act on, written in the same transaction as the change they describe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    InvitationCreated { invitation_id: InvitationId },
    AnswerRecorded { invitation_id: InvitationId, version: u32, previous_score: Option<Score>, score: Score },
    /// Counted only: no reaction follows a page open, a first review click or a suppression.
    PageOpened { invitation_id: InvitationId },
    ReviewClicked { invitation_id: InvitationId, site: String },
    InvitationSuppressed { invitation_id: InvitationId, reason: SuppressionReason },
    /// "Send me a test" from the preview: the invitation mail as the campaign would send it,
    /// to a staff address, marked as a test. No invitation, no counter. `request_id` stands in
    /// for an invitation where events are grouped, so a request is alone in its group.
    TestMailRequested {
        request_id: InvitationId,
        campaign_id: crate::campaign::CampaignId,
        locale: Locale,
        to: Email,
        requested_by: String,
    },
    /// A campaign started or resumed: its held invitations go now (a first batch; the schedule
    /// sends the rest). `request_id` as for a test mail.
    HeldReleaseRequested { request_id: InvitationId, campaign_id: crate::campaign::CampaignId },
    /// "You said, we did": an update was composed and sent from the dashboard. Its first page
    /// of recipients goes now; the schedule sends the rest. `request_id` as for a test mail.
    UpdateRequested { request_id: InvitationId, campaign_id: crate::campaign::CampaignId, update_id: crate::updates::UpdateId },
    /// Counted only: a person's first click on one of an update's links.
    UpdateLinkClicked { invitation_id: InvitationId, update_id: crate::updates::UpdateId, link: u32 },
    /// A case was closed with a personal follow-up for the respondent (in its closure).
    CaseFollowUpRequested { invitation_id: InvitationId },
}

impl EventKind {
    /// For an answer change: the group it leaves (if any) and the group it joins, when they differ.
    pub fn group_move(&self) -> Option<(Option<crate::nps::Group>, crate::nps::Group)> {
        match self {
            EventKind::AnswerRecorded { previous_score, score, .. } => {
                let from = previous_score.map(|s| s.group());
                (from != Some(score.group())).then_some((from, score.group()))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub at: Timestamp,
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    Open,
    Closed,
}

/// A detractor (or "contact me") answer someone must follow up before `due_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowUpCase {
    pub invitation_id: InvitationId,
    pub campaign_id: CampaignId,
    pub owner_email: Option<Email>,
    pub opened_at: Timestamp,
    pub due_at: Timestamp,
    pub status: CaseStatus,
    pub escalated_at: Option<Timestamp>,
    #[serde(default)]
    pub notes: Vec<CaseNote>,
    #[serde(default)]
    pub closed: Option<CaseClosure>,
    /// When the person was erased (`privacy::erase_case`): nothing more is written about them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<Timestamp>,
}

impl FollowUpCase {
    pub fn new(
        invitation_id: InvitationId,
        campaign_id: CampaignId,
        owner_email: Option<Email>,
        opened_at: Timestamp,
        due_at: Timestamp,
    ) -> Self {
        Self {
            invitation_id,
            campaign_id,
            owner_email,
            opened_at,
            due_at,
            status: CaseStatus::Open,
            escalated_at: None,
            notes: Vec::new(),
            closed: None,
            erased_at: None,
        }
    }

    pub fn is_overdue(&self, at: Timestamp) -> bool {
        self.status == CaseStatus::Open && self.due_at <= at
    }

    /// Closes an open case; false if it was closed already (the first closure stands).
    /// False once the person was erased: nothing more is written about them.
    pub fn add_note(&mut self, note: &CaseNote) -> bool {
        if self.is_erased() {
            return false;
        }
        self.notes.push(note.clone());
        true
    }

    pub fn is_erased(&self) -> bool {
        self.erased_at.is_some()
    }

    pub fn close(&mut self, closure: &CaseClosure) -> bool {
        if self.status == CaseStatus::Closed {
            return false;
        }
        self.status = CaseStatus::Closed;
        self.closed = Some(closure.clone());
        true
    }
}

pub const MAX_NOTE_CHARS: usize = 2000;

/// Who closes the open case of an erased person: nobody can follow up with them any more.
pub const ERASURE_ACTOR: &str = "erasure";

/// A line someone wrote while following up: who, when, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseNote {
    pub by: String,
    pub at: Timestamp,
    pub text: String,
}

/// Who closed a case, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseClosure {
    pub by: String,
    pub at: Timestamp,
    pub outcome: String,
    /// What the owner wrote to the respondent on closing, if they chose to (sent once, by mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<String>,
}

/// The longest personal follow-up an owner may send when closing a case.
pub const MAX_FOLLOW_UP_CHARS: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuppressionReason {
    Unsubscribed,
    Bounced,
    Complained,
    /// The person asked to be erased: only a keyed hash of their address stays on the list.
    Erased,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Unsubscribed => "unsubscribed",
            SuppressionReason::Bounced => "bounced",
            SuppressionReason::Complained => "complained",
            SuppressionReason::Erased => "erased",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        [SuppressionReason::Unsubscribed, SuppressionReason::Bounced, SuppressionReason::Complained, SuppressionReason::Erased]
            .into_iter()
            .find(|r| r.as_str() == input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_one_address_however_its_letters_were_composed() {
        assert_eq!(Email::parse("jo\u{308}rg@example.se").unwrap(), Email::parse("j\u{f6}rg@example.se").unwrap());
    }

    #[test]
    fn emails_are_lowercased_and_junk_refused() {
        assert_eq!(Email::parse(" Åsa.Berg@Example.SE ").unwrap().as_str(), "åsa.berg@example.se");
        for bad in ["", "a@b", "no-at.example.com", "a b@example.com", "a@@example.com", "a@.example.com", "<a>@x.se", "bcc:a@x.se", "\u{202E}evil@x.se", "\u{FFFD}@x.se"] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn phones_are_normalised_to_e164() {
        assert_eq!(Phone::parse("+46 70-123 45 67").unwrap().as_str(), "+46701234567");
        assert_eq!(Phone::parse("0045 20 12 34 56").unwrap().as_str(), "+4520123456");
        assert!(Phone::parse("070-123 45 67").is_err(), "national form has no country");
        assert!(Phone::parse("+46 70 CALL ME").is_err());
    }

    #[test]
    fn locales_accept_crm_spellings() {
        assert_eq!(Locale::parse("sv-SE"), Some(Locale::Sv));
        assert_eq!(Locale::parse("DA"), Some(Locale::Da));
        assert_eq!(Locale::parse("en_GB"), Some(Locale::En));
        assert_eq!(Locale::parse("de"), None);
        assert_eq!(Locale::parse("svenska"), None);
    }

    #[test]
    fn tokens_are_22_alphanumerics_and_distinct_for_distinct_bytes() {
        let a = Token::from_random_bytes([0xff; 16]);
        let b = Token::from_random_bytes([0; 16]);
        assert_eq!(a.as_str().len(), TOKEN_LEN);
        assert_eq!(b.as_str(), "0000000000000000000000");
        assert_ne!(a, b);
        assert!(Token::parse(a.as_str()).is_some());
        assert!(Token::parse("short").is_none());
        assert!(Token::parse("../../../etc/passwd/xx").is_none());
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn contact_without_email_or_phone_is_refused() {
        assert_eq!(Contact::default().validate(), Err(ContactError::NoChannel));
    }
}
