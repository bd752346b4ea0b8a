//! A person's data on request (GDPR Art. 15 and 17), on every runtime: the CLI, the API and the
//! dashboard all call these two functions.
//!
//! A person is found by the address or phone asked for, and then by every other key their
//! invitations carry (an email invitation's phone, say), one hop, so an export or an erasure
//! by email covers the SMS invitations of the same person too.

use std::collections::HashMap;

use closeloop_core::campaign::{Campaign, CampaignId};
use closeloop_core::model::{ContactKey, InvitationId};
use closeloop_core::ports::{Store, StoreError};
use closeloop_core::privacy::{self, InvitationRecord, Person, PersonExport, SentMessage};
use closeloop_core::Timestamp;

/// How often an erasure is tried again when a write to the same invitation (an answer being
/// recorded) came between its read and its write.
const CONFLICT_ATTEMPTS: u32 = 5;

/// How the audit log names the person: the start of the keyed hash of the key asked for, so an
/// export and a later erasure of one person read as the same person, and the log holds nothing
/// the erasure removes.
pub async fn pseudonym(store: &dyn Store, person: &Person) -> Result<String, StoreError> {
    let hashed = store.erasure_key().await?.hash(&person.key());
    let hex = hashed.as_str().trim_start_matches(privacy::ERASED_KEY_PREFIX);
    Ok(format!("person {}", &hex[..16.min(hex.len())]))
}

/// The person's invitations and every contact key they are known by: the invitations of the
/// key asked for, then those of the other keys these carry (an email invitation's phone), one
/// hop, but only an invitation all of whose keys are the person's: a phone shared with someone
/// else (an office, a family) does not bring in that other person, and is not the person's to
/// have suppressed. Invitations found through another key come first and the ones that led to
/// them last, so an erasure in several calls still finds the other key in its later calls.
/// Reads: a query per key and one batch read per hop.
pub async fn find(store: &dyn Store, person: &Person) -> Result<(Vec<InvitationId>, Vec<ContactKey>), StoreError> {
    let asked = person.key();
    let direct = store.person_invitations(std::slice::from_ref(&asked)).await?;
    let mut others: Vec<ContactKey> = Vec::new();
    for (invitation, _) in store.invitations_with_answers(&direct).await? {
        for key in invitation.iter().flat_map(|i| i.contact.keys()) {
            if key != asked && !others.contains(&key) {
                others.push(key);
            }
        }
    }
    let mut keys = vec![asked];
    let mut through_others = Vec::new();
    if !others.is_empty() {
        let found: Vec<InvitationId> = store.person_invitations(&others).await?.into_iter().filter(|id| !direct.contains(id)).collect();
        let known: Vec<ContactKey> = keys.iter().chain(&others).cloned().collect();
        let mut shared: Vec<ContactKey> = Vec::new();
        for (id, (invitation, _)) in found.iter().zip(store.invitations_with_answers(&found).await?) {
            let Some(invitation) = invitation else { continue };
            let theirs = invitation.contact.keys();
            if theirs.iter().all(|k| known.contains(k)) {
                through_others.push(id.clone());
            } else {
                shared.extend(theirs.into_iter().filter(|k| others.contains(k)));
            }
        }
        keys.extend(others.into_iter().filter(|k| !shared.contains(k)));
    }
    Ok((through_others.into_iter().chain(direct).collect(), keys))
}

/// Everything held about the person: their invitations with the CRM fields, every answer
/// version, the follow-up case with its notes, the messages sent, and suppressions (also the
/// keyed hash an earlier erasure left).
pub async fn export(store: &dyn Store, person: &Person, at: Timestamp) -> Result<PersonExport, StoreError> {
    let (ids, keys) = find(store, person).await?;
    export_found(store, person, &ids, &keys, at).await
}

/// `export` of what `find` found: a caller that checks the count first reads it once.
pub async fn export_found(store: &dyn Store, person: &Person, ids: &[InvitationId], keys: &[ContactKey], at: Timestamp) -> Result<PersonExport, StoreError> {
    let mut campaigns: HashMap<CampaignId, Option<Campaign>> = HashMap::new();
    let mut invitations = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(invitation) = store.invitation(id).await? else { continue };
        if !campaigns.contains_key(&invitation.campaign_id) {
            let campaign = store.campaign(&invitation.campaign_id).await?;
            campaigns.insert(invitation.campaign_id.clone(), campaign);
        }
        let campaign = campaigns.get(&invitation.campaign_id).and_then(Option::as_ref);
        let answers = store.answer_versions(id).await?;
        let case = store.case(id).await?;
        let sends = privacy::send_keys(&invitation);
        let claims = store.send_claims(&sends.iter().map(|(_, key)| key.clone()).collect::<Vec<_>>()).await?;
        let messages =
            sends.iter().zip(claims).filter_map(|((kind, _), at)| Some(SentMessage { kind: *kind, sent_at: at? })).collect();
        invitations.push(InvitationRecord::new(invitation, campaign, answers, case, messages));
    }
    let erasure = store.erasure_key().await?;
    let suppressions = store.suppressions(&erasure.with_hashes(keys)).await?;
    Ok(PersonExport { person: person.as_str().to_owned(), generated_at: at, invitations, suppressions })
}

/// Erases the person everywhere (see `core::privacy` for what is kept). Idempotent: a second
/// run finds nothing left to erase and reports zero invitations.
pub async fn erase(store: &dyn Store, person: &Person, at: Timestamp) -> Result<privacy::ErasureReport, StoreError> {
    erase_some(store, person, at, None).await
}

/// `erase`, of at most `limit` invitations a call (a Worker request's subrequests): the keys are
/// forgotten by the call that erases the last one, and `remaining` says how many calls must follow.
pub async fn erase_some(store: &dyn Store, person: &Person, at: Timestamp, limit: Option<usize>) -> Result<privacy::ErasureReport, StoreError> {
    let (ids, keys) = find(store, person).await?;
    let mut report = privacy::ErasureReport::default();
    let take = limit.unwrap_or(ids.len()).min(ids.len());
    report.remaining = ids.len() - take;
    for id in &ids[..take] {
        let mut attempt = 0;
        loop {
            match store.erase_invitation(id, at).await {
                Ok(erased) => {
                    report.invitations_erased += usize::from(erased);
                    break;
                }
                Err(StoreError::Conflict) if attempt + 1 < CONFLICT_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }
    // Last: forgetting the keys drops the links the invitations were found by (SQLite keeps
    // its throttle there), so a run cut short before this point finds them again.
    if report.remaining == 0 {
        report.keys_suppressed = store.forget_contact_keys(&keys, at).await?;
    }
    store.purge_erased().await?;
    Ok(report)
}
