//! One person's data (GDPR Art. 15 and 17): how a person is looked up, what an export holds,
//! and what erasing them leaves of each record. The stores apply these functions; they do not
//! decide what personal data is.
//!
//! Erasing keeps each invitation, answer and case as an anonymous row, so that counters and
//! reports stay as they were: the score, the dates, the segment and store (the breakdowns the
//! counters are kept by), the owner (staff, not the respondent) and the locale stay; the
//! address, the phone, the names, the company, the CRM properties, the comment, the case notes
//! and the closing text go, and the link token is replaced by one no URL can carry.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::campaign::CampaignId;
use crate::counters::{answer_deltas, invitation_deltas, CounterDeltas};
use crate::model::*;
use crate::ports::MessageKind;
use crate::time::Timestamp;

/// Prefix of a contact key that is a keyed hash of an erased person's address or phone.
pub const ERASED_KEY_PREFIX: &str = "erased:";

/// The secret a store keys the hashes of erased contact keys with. The hash lets the
/// suppression list recognise an erased person at a relaunch without holding their address;
/// without the key, the list cannot be checked against guessed addresses either.
#[derive(Clone, PartialEq, Eq)]
pub struct ErasureKey([u8; 32]);

impl ErasureKey {
    /// `random` must come from a cryptographic source.
    pub fn from_bytes(random: [u8; 32]) -> Self {
        Self(random)
    }

    /// From its stored form: 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut key = [0u8; 32];
        for (slot, pair) in key.iter_mut().zip(bytes.chunks(2)) {
            let digits = std::str::from_utf8(pair).ok()?;
            *slot = u8::from_str_radix(digits, 16).ok()?;
        }
        Some(Self(key))
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The key an erased person's contact key is kept under on the suppression list.
    pub fn hash(&self, key: &ContactKey) -> ContactKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(key.as_str().as_bytes());
        ContactKey::from_stored(format!("{ERASED_KEY_PREFIX}{}", hex(&mac.finalize().into_bytes())))
    }

    /// Each key with its hash beside it: what a suppression check looks up.
    pub fn with_hashes(&self, keys: &[ContactKey]) -> Vec<ContactKey> {
        keys.iter().flat_map(|k| [k.clone(), self.hash(k)]).collect()
    }
}

impl std::fmt::Debug for ErasureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasureKey(…)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whom a person request is about: an address or a phone number, read like a CRM value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    Email(Email),
    Phone(Phone),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PersonError {
    #[error("give an email address or a phone number")]
    Missing,
    #[error("give an email address or a phone number, not both")]
    Both,
    #[error("not an email address")]
    Email(#[source] ContactError),
    #[error("not a phone number")]
    Phone(#[source] ContactError),
}

impl Person {
    /// Blank values count as not given.
    pub fn parse(email: Option<&str>, phone: Option<&str>) -> Result<Self, PersonError> {
        let email = email.map(str::trim).filter(|v| !v.is_empty());
        let phone = phone.map(str::trim).filter(|v| !v.is_empty());
        match (email, phone) {
            (Some(_), Some(_)) => Err(PersonError::Both),
            (None, None) => Err(PersonError::Missing),
            (Some(e), None) => Email::parse(e).map(Person::Email).map_err(PersonError::Email),
            (None, Some(p)) => Phone::parse(p).map(Person::Phone).map_err(PersonError::Phone),
        }
    }

    pub fn key(&self) -> ContactKey {
        match self {
            Person::Email(e) => ContactKey::email(e),
            Person::Phone(p) => ContactKey::phone(p),
        }
    }

    /// The address or number as written back to the reader.
    pub fn as_str(&self) -> &str {
        match self {
            Person::Email(e) => e.as_str(),
            Person::Phone(p) => p.as_str(),
        }
    }
}

/// The token an erased invitation keeps: unique (the token index needs one) and never a valid
/// link token (`Token::parse` takes 22 letters and digits only), so every link answers as an
/// unknown token does.
pub fn erased_token(id: &InvitationId) -> Token {
    Token::stored(format!("erased-{}", id.0))
}

/// What an erased company or CRM property reads as. The keys stay, so the erased person still
/// counts in each breakdown, under this value instead of theirs (`erasure_deltas`).
pub const ERASED_VALUE: &str = "(erased)";

/// The invitation as an anonymous row. Erasing twice gives the same row.
pub fn erase_invitation(invitation: &Invitation, at: Timestamp) -> Invitation {
    let kept = &invitation.contact;
    Invitation {
        token: erased_token(&invitation.id),
        contact: Contact {
            segment: kept.segment.clone(),
            store: kept.store.clone(),
            owner_email: kept.owner_email.clone(),
            touchpoint: kept.touchpoint.clone(),
            locale: kept.locale,
            company: kept.company.as_ref().map(|_| ERASED_VALUE.to_owned()),
            properties: kept.properties.keys().map(|k| (k.clone(), ERASED_VALUE.to_owned())).collect(),
            ..Contact::default()
        },
        // Nothing is sent to an erased person again.
        next_reminder_at: None,
        erased_at: Some(invitation.erased_at.unwrap_or(at)),
        ..invitation.clone()
    }
}

/// The counter changes of an erasure: the person's counts move out of the buckets named by
/// their company and CRM values (a customer number would name them) into the `(erased)` value
/// of the same breakdown. Totals, weeks, drivers, themes and the kept breakdowns (store,
/// segment, owner, touchpoint, language) do not move. `answer` is the answer before erasure;
/// without the campaign only the invitation's own counts move.
pub fn erasure_deltas(campaign: Option<&crate::campaign::Campaign>, before: &Invitation, after: &Invitation, answer: Option<&Answer>) -> CounterDeltas {
    let mut d = invitation_deltas(after);
    d.merge(&invitation_deltas(before).negated());
    if let (Some(campaign), Some(answer)) = (campaign, answer) {
        d.merge(&answer_deltas(campaign, after, None, answer));
        d.merge(&answer_deltas(campaign, before, None, answer).negated());
    }
    d
}

pub fn erase_answer(answer: &Answer) -> Answer {
    Answer { comment: None, ..answer.clone() }
}

/// Written where a closing text was, so the case still reads as closed.
pub const ERASED_TEXT: &str = "[erased]";

/// An open case is closed by the erasure (it would go overdue and escalate about nobody); a
/// closed one keeps who closed it and when, without the text.
pub fn erase_case(case: &FollowUpCase, at: Timestamp) -> FollowUpCase {
    let closed = match &case.closed {
        Some(c) => CaseClosure { outcome: ERASED_TEXT.to_owned(), follow_up: c.follow_up.as_ref().map(|_| ERASED_TEXT.to_owned()), ..c.clone() },
        None => CaseClosure { by: ERASURE_ACTOR.to_owned(), at, outcome: ERASED_TEXT.to_owned(), follow_up: None },
    };
    FollowUpCase { notes: Vec::new(), status: CaseStatus::Closed, closed: Some(closed), erased_at: Some(case.erased_at.unwrap_or(at)), ..case.clone() }
}

/// The send keys the reactions can have claimed for an invitation (`dispatch`, `schedule`):
/// the export lists the ones claimed as the messages sent.
pub fn send_keys(invitation: &Invitation) -> Vec<(MessageKind, String)> {
    let id = &invitation.id;
    let mut keys = vec![(MessageKind::Invitation, format!("invitation:{id}")), (MessageKind::HeadsUp, format!("heads_up:{id}"))];
    keys.extend((1..=invitation.reminders_sent).map(|n| (MessageKind::Reminder, format!("reminder:{id}:{n}"))));
    keys.extend([
        (MessageKind::ThankYou, format!("thank_you:{id}")),
        (MessageKind::ReviewInvitation, format!("review_invitation:{id}")),
        (MessageKind::Alert, format!("alert:{id}")),
        (MessageKind::Escalation, format!("escalation:{id}")),
    ]);
    keys
}

/// A message sent about or to the person, from its send record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    pub kind: MessageKind,
    pub sent_at: Timestamp,
}

/// One invitation and everything hanging off it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationRecord {
    pub campaign: CampaignId,
    pub campaign_name: Option<String>,
    /// The campaign's zone (IANA name), which the times below are shown in.
    pub time_zone: String,
    pub invitation_id: InvitationId,
    pub invited_at: Timestamp,
    pub channel: Channel,
    pub locale: Locale,
    pub touchpoint: Option<String>,
    pub contact: Contact,
    pub opened_at: Option<Timestamp>,
    pub answered_at: Option<Timestamp>,
    pub reminders_sent: u32,
    pub suppressed: Option<SuppressionReason>,
    pub erased_at: Option<Timestamp>,
    /// Every version, oldest first.
    pub answers: Vec<Answer>,
    pub case: Option<FollowUpCase>,
    pub messages: Vec<SentMessage>,
}

impl InvitationRecord {
    /// The link token is left out: it is a credential, not information about the person.
    pub fn new(
        invitation: Invitation,
        campaign: Option<&crate::campaign::Campaign>,
        answers: Vec<Answer>,
        case: Option<FollowUpCase>,
        messages: Vec<SentMessage>,
    ) -> Self {
        Self {
            campaign: invitation.campaign_id,
            campaign_name: campaign.map(|c| c.name.clone()),
            time_zone: campaign.map_or_else(|| "UTC".to_owned(), |c| c.zone().name().to_owned()),
            invitation_id: invitation.id,
            invited_at: invitation.created_at,
            channel: invitation.channel,
            locale: invitation.locale,
            touchpoint: invitation.touchpoint,
            contact: invitation.contact,
            opened_at: invitation.opened_at,
            answered_at: invitation.answered_at,
            reminders_sent: invitation.reminders_sent,
            suppressed: invitation.suppressed,
            erased_at: invitation.erased_at,
            answers,
            case,
            messages,
        }
    }
}

/// A suppression-list entry of the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressionRecord {
    pub key: ContactKey,
    pub reason: SuppressionReason,
    pub at: Timestamp,
}

/// Everything held about one person across campaigns (Art. 15).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonExport {
    pub person: String,
    pub generated_at: Timestamp,
    pub invitations: Vec<InvitationRecord>,
    pub suppressions: Vec<SuppressionRecord>,
}

/// What an erasure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErasureReport {
    pub invitations_erased: usize,
    pub keys_suppressed: usize,
    /// Invitations left for a later call (a bounded call on the Worker); 0 when done.
    pub remaining: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{largest_campaign, largest_invitation};

    #[test]
    fn a_person_is_an_address_or_a_number_and_never_both_or_neither() {
        assert_eq!(Person::parse(Some(" Asa@Example.se "), None).unwrap().as_str(), "asa@example.se");
        assert!(matches!(Person::parse(None, Some("+46701234567")), Ok(Person::Phone(_))));
        assert_eq!(Person::parse(Some(""), Some(" ")), Err(PersonError::Missing));
        assert_eq!(Person::parse(Some("a@b.se"), Some("+46701234567")), Err(PersonError::Both));
        assert!(matches!(Person::parse(Some("not an address\r\n"), None), Err(PersonError::Email(_))));
    }

    #[test]
    fn an_erased_invitation_keeps_its_breakdowns_and_loses_everything_personal() {
        let inv = largest_invitation(&largest_campaign("erase"), 1, Timestamp::from_millis(1));
        let erased = erase_invitation(&inv, Timestamp::from_millis(5));
        assert_eq!(erased.contact.email, None);
        assert_eq!(erased.contact.phone, None);
        assert_eq!(erased.contact.full_name(), "");
        assert!(erased.contact.properties.values().all(|v| v == ERASED_VALUE), "the keys stay, the values go");
        assert!(erased.contact.company.as_deref().is_none_or(|c| c == ERASED_VALUE));
        assert_eq!((erased.contact.segment.as_ref(), erased.contact.store.as_ref()), (inv.contact.segment.as_ref(), inv.contact.store.as_ref()));
        assert_eq!(Token::parse(erased.token.as_str()), None, "no URL carries the erased token");
        assert_eq!(erased.created_at, inv.created_at);
        assert_eq!(erase_invitation(&erased, Timestamp::from_millis(9)), erased, "erasing twice changes nothing");
    }

    #[test]
    fn an_erased_key_is_a_keyed_hash_that_differs_per_key_and_per_secret() {
        let key = ContactKey::email(&Email::parse("asa@example.se").unwrap());
        let one = ErasureKey::from_bytes([1; 32]);
        let hashed = one.hash(&key);
        assert!(hashed.as_str().starts_with(ERASED_KEY_PREFIX) && !hashed.as_str().contains("asa"));
        assert_eq!(hashed, one.hash(&key));
        assert_ne!(hashed, ErasureKey::from_bytes([2; 32]).hash(&key));
        assert_eq!(ErasureKey::from_hex(&one.to_hex()), Some(one));
        assert_eq!(ErasureKey::from_hex("zz"), None);
    }
}
