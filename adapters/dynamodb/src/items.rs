//! Item layouts: keys, index attributes and the conversions between records and items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::Serialize;

use closeloop_core::campaign::{Campaign, CampaignId};
use closeloop_core::changes::Change;
use closeloop_core::counters::CounterDeltas;
use closeloop_core::model::*;
use closeloop_core::ports::{Malformed, StoreError};
use closeloop_core::Timestamp;

pub type Item = HashMap<String, AttributeValue>;

pub const CAMPAIGNS_PK: &str = "CAMPAIGNS";
pub const INVITATION_SK: &str = "INV";
pub const ANSWER_SK: &str = "ANSWER";
pub const CASE_SK: &str = "CASE";
pub const EVENT_SK: &str = "EVENT";
pub const SEND_SK: &str = "SEND";
pub const SUPPRESSED_SK: &str = "SUPPRESSED";
pub const LAST_INVITED_SK: &str = "LAST";
pub const COUNTERS_SK: &str = "COUNTERS";
/// Each version of an answer, beside the current one: `ANSWER#V0000000002`.
pub const ANSWER_VERSION_PREFIX: &str = "ANSWER#V";
/// The store's own settings: the erasure key.
pub const META_PK: &str = "META";
/// Dashboard accounts: one small partition, read whole at sign-in.
pub const ACCOUNTS_PK: &str = "ACCOUNTS";

pub fn account_sk(name: &str) -> String {
    format!("ACCOUNT#{name}")
}

/// One client's wrong sign-ins; the client text is bounded by the edge (64 characters).
pub fn sign_in_pk(client: &str) -> String {
    format!("SIGNIN#{client}")
}
pub const SIGN_IN_SK: &str = "FAILURES";

/// The audit log: one partition (staff actions are few), newest last by sort key.
pub const AUDIT_PK: &str = "AUDIT";
pub const ERASURE_KEY_SK: &str = "ERASURE_KEY";
/// A campaign's state (active, paused, ended), in the campaign's partition.
pub const STATUS_SK: &str = "STATUS";
/// Partitions of the sparse work index: only what is still due carries these, with a shard
/// suffix (`DUE_REMINDER#07`) so that a launch's writes spread over `WORK_SHARDS` partitions
/// instead of one (a partition takes about 1,000 writes a second). Readers query every shard.
pub const DUE_REMINDER: &str = "DUE_REMINDER";
pub const OVERDUE_CASE: &str = "OVERDUE_CASE";
pub const PENDING_EVENT: &str = "PENDING_EVENT";
pub const DUE_WEBHOOK: &str = "DUE_WEBHOOK";
pub const WORK_SHARDS: u32 = 16;

/// The work-index partition of the item whose id is `id`: a stable hash (FNV-1a), so an item
/// keeps its shard when it is rescheduled.
pub fn work_partition(kind: &str, id: &str) -> String {
    let hash = id.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("{kind}#{:02}", hash % WORK_SHARDS)
}

/// Every partition of one kind, for readers.
pub fn work_partitions(kind: &str) -> impl Iterator<Item = String> + '_ {
    (0..WORK_SHARDS).map(move |shard| format!("{kind}#{shard:02}"))
}

/// Events and send claims expire after this long (TTL attribute `expires_at`, in seconds).
const EVENT_TTL_DAYS: u32 = 30;
const SEND_CLAIM_TTL_DAYS: u32 = 400;

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::corrupt(format!("item lacks string attribute {name}")))
}

pub fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn json<T: Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value).map(s).map_err(StoreError::corrupt)
}

pub fn body<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(get_s(item, "body")?).map_err(StoreError::corrupt)
}

/// Sort keys of the work index: zero-padded time, then id, so string order is time order.
pub fn order_key(at: Timestamp, id: &str) -> String {
    format!("{:015}#{id}", at.millis())
}

/// Everything due at or before `at`: '~' sorts after every id character.
pub fn upper_bound(at: Timestamp) -> String {
    format!("{:015}#~", at.millis())
}

fn expires_at(at: Timestamp, days: u32) -> AttributeValue {
    n(at.plus_days(days).millis() / 1000)
}

/// The primary key of an item, for GetItem and BatchGetItem.
pub fn item_key(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub fn invitation_pk(id: &InvitationId) -> String {
    format!("INV#{}", id.0)
}

pub fn contact_pk(key: &ContactKey) -> String {
    format!("CONTACT#{}", key.as_str())
}

pub fn campaign_sk(id: &CampaignId) -> String {
    format!("CAMPAIGN#{id}")
}

/// One owner's invitations of a campaign, on the sparse `owner` index (sorted by invitation id).
pub fn owner_partition(campaign: &CampaignId, owner: &closeloop_core::Email) -> String {
    format!("OWNER#{campaign}#{}", owner.as_str())
}

/// A campaign's invitations not erased yet, on the `age` index by creation time.
pub fn age_partition(campaign: &CampaignId) -> String {
    format!("AGE#{campaign}")
}

/// A campaign's launch jobs on the `campaign` index: a partition of their own, so that listing
/// them never reads through the campaign's invitations (DynamoDB Local's query grows with the
/// partition: 9 → 162 ms at 100,000 answers).
pub fn launches_partition(campaign: &CampaignId) -> String {
    format!("LAUNCHES#{campaign}")
}

/// A campaign's follow-up cases on the `campaign` index, for the same reason.
pub fn cases_partition(campaign: &CampaignId) -> String {
    format!("CASES#{campaign}")
}

/// The invitations of a paused campaign that wait to go out, by invitation id.
pub fn held_pk(campaign: &CampaignId) -> String {
    format!("HELD#{campaign}")
}

pub fn campaign_partition(id: &CampaignId) -> String {
    format!("CAMPAIGN#{id}")
}

/// The field a segment-value bucket (`seg␟{field}␟{value}`) or prefix (`seg␟{field}␟`) is of.
pub fn segment_field(bucket: &str) -> Option<&str> {
    let rest = bucket.strip_prefix("seg\u{1f}")?;
    rest.split_once('\u{1f}').map(|(field, _)| field)
}

/// The partition a counter bucket lives in: a segment field's values in one of their own
/// (`CAMPAIGN#{id}#SEG#{field}`), so that a field with a value per contact (a customer number)
/// never grows the partition the overview reads; every other bucket in the campaign's.
pub fn counter_partition(campaign: &CampaignId, bucket: &str) -> String {
    match segment_field(bucket) {
        Some(field) => format!("CAMPAIGN#{campaign}#SEG#{field}"),
        None => campaign_partition(campaign),
    }
}

/// The sort key of a counter bucket: the total keeps the `COUNTERS` item of the first schema.
pub fn counter_sk(bucket: &str) -> String {
    if bucket == closeloop_core::counters::TOTAL {
        COUNTERS_SK.to_owned()
    } else {
        format!("COUNTER#{bucket}")
    }
}

/// The bucket a counter item holds, from its sort key.
pub fn counter_bucket(sk: &str) -> Option<&str> {
    if sk == COUNTERS_SK {
        Some(closeloop_core::counters::TOTAL)
    } else {
        sk.strip_prefix("COUNTER#")
    }
}

/// Cases of a campaign on the `campaign` index, ordered by owner then due date.
pub fn case_index_sk(case: &FollowUpCase) -> String {
    format!("{}{}", case_owner_prefix(case.owner_email.as_ref()), order_key(case.due_at, &case.invitation_id.0))
}

/// A domain cannot hold `#`, so one owner's prefix never matches another's.
pub fn case_owner_prefix(owner: Option<&closeloop_core::Email>) -> String {
    format!("CASE#{}#", owner.map_or("-", |o| o.as_str()))
}

/// A campaign's change log: a partition of its own, so reading it never walks the campaign's.
pub fn changes_partition(id: &CampaignId) -> String {
    format!("{}#CHANGES", campaign_partition(id))
}

/// Zero-padded, so the sort key orders entries by revision.
pub fn change_sk(revision: u32) -> String {
    format!("REV#{revision:010}")
}

pub fn change_log_item(change: &closeloop_core::changelog::CampaignChange) -> Result<Item, StoreError> {
    Ok(HashMap::from([("pk".into(), s(changes_partition(&change.campaign))), ("sk".into(), s(change_sk(change.revision))), ("body".into(), json(change)?)]))
}

pub fn campaign_item(campaign: &Campaign) -> Result<Item, StoreError> {
    Ok(HashMap::from([("pk".into(), s(CAMPAIGNS_PK)), ("sk".into(), s(campaign_sk(&campaign.id))), ("body".into(), json(campaign)?)]))
}

/// The body holds what never changes; the changing fields are attributes of their own so that
/// updates are single expressions and need no read.
pub fn invitation_item(inv: &Invitation) -> Result<Item, StoreError> {
    let mut item = HashMap::from([
        ("pk".into(), s(invitation_pk(&inv.id))),
        ("sk".into(), s(INVITATION_SK)),
        ("body".into(), json(inv)?),
        ("link_token".into(), s(inv.token.as_str())),
        ("created_at".into(), n(inv.created_at.millis())),
        ("reminders_sent".into(), n(i64::from(inv.reminders_sent))),
        ("review_clicks".into(), n(0)),
        ("gsi2pk".into(), s(campaign_partition(&inv.campaign_id))),
        ("gsi2sk".into(), s(format!("{}#{INVITATION_SK}", inv.id))),
    ]);
    if inv.erased_at.is_none() {
        item.insert("gsi4pk".into(), s(age_partition(&inv.campaign_id)));
        item.insert("gsi4sk".into(), s(order_key(inv.created_at, &inv.id.0)));
    }
    if let Some(owner) = &inv.contact.owner_email {
        item.insert("gsi3pk".into(), s(owner_partition(&inv.campaign_id, owner)));
        item.insert("gsi3sk".into(), s(inv.id.0.as_str()));
    }
    if let Some(next) = inv.next_reminder_at {
        item.insert("next_reminder_at".into(), n(next.millis()));
        item.insert("gsi1pk".into(), s(work_partition(DUE_REMINDER, &inv.id.0)));
        item.insert("gsi1sk".into(), s(order_key(next, &inv.id.0)));
    }
    if let Some(answered) = inv.answered_at {
        item.insert("answered_at".into(), n(answered.millis()));
    }
    Ok(item)
}

pub fn invitation_from(item: &Item) -> Result<Invitation, StoreError> {
    let mut inv: Invitation = body(item)?;
    inv.reminders_sent = get_n(item, "reminders_sent").unwrap_or(0) as u32;
    inv.next_reminder_at = get_n(item, "next_reminder_at").map(Timestamp::from_millis);
    inv.answered_at = get_n(item, "answered_at").map(Timestamp::from_millis);
    inv.opened_at = get_n(item, "opened_at").map(Timestamp::from_millis);
    inv.suppressed = get_s(item, "suppressed").ok().and_then(SuppressionReason::parse);
    Ok(inv)
}

pub fn last_invited_item(key: &ContactKey, at: Timestamp) -> Item {
    HashMap::from([("pk".into(), s(contact_pk(key))), ("sk".into(), s(LAST_INVITED_SK)), ("invited_at".into(), n(at.millis()))])
}

pub fn contact_link_item(key: &ContactKey, id: &InvitationId) -> Item {
    HashMap::from([("pk".into(), s(contact_pk(key))), ("sk".into(), s(format!("INV#{}", id.0)))])
}

pub fn answer_item(answer: &Answer) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        ("pk".into(), s(invitation_pk(&answer.invitation_id))),
        ("sk".into(), s(ANSWER_SK)),
        ("body".into(), json(answer)?),
        ("version".into(), n(i64::from(answer.version))),
        ("score".into(), n(i64::from(answer.score.value()))),
        ("gsi2pk".into(), s(campaign_partition(&answer.campaign_id))),
        ("gsi2sk".into(), s(format!("{}#{ANSWER_SK}", answer.invitation_id))),
    ]))
}

/// A version of an answer, kept for the person's export (no index attributes: nothing lists it).
pub fn answer_version_item(answer: &Answer) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        ("pk".into(), s(invitation_pk(&answer.invitation_id))),
        ("sk".into(), s(format!("{ANSWER_VERSION_PREFIX}{:010}", answer.version))),
        ("body".into(), json(answer)?),
    ]))
}

/// An event with the counter deltas it carries: the stream consumer adds them to the counter
/// items once (`counted_at` marks that it did), so the writer never touches a counter item.
pub fn change_item(change: &Change) -> Result<Item, StoreError> {
    let event = &change.event;
    let mut item = HashMap::from([
        ("pk".into(), s(event_pk(&event.id))),
        ("sk".into(), s(EVENT_SK)),
        ("body".into(), json(&event.kind)?),
        ("at".into(), n(event.at.millis())),
        ("gsi1pk".into(), s(work_partition(PENDING_EVENT, &event.id))),
        ("gsi1sk".into(), s(order_key(event.at, &event.id))),
        ("expires_at".into(), expires_at(event.at, EVENT_TTL_DAYS)),
        ("campaign".into(), s(change.campaign.as_str())),
    ]);
    if !change.deltas.is_empty() {
        item.insert("deltas".into(), json(&change.deltas)?);
    }
    Ok(item)
}

pub const LAUNCH_SK: &str = "LAUNCH";

pub fn launch_pk(id: &closeloop_core::launch::LaunchId) -> String {
    format!("LAUNCH#{id}")
}

/// A launch job, with a version for the updates of chunks that finish at the same time.
pub fn launch_item(job: &closeloop_core::launch::LaunchJob, version: i64) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        ("pk".into(), s(launch_pk(&job.id))),
        ("sk".into(), s(LAUNCH_SK)),
        ("body".into(), json(job)?),
        ("version".into(), n(version)),
        ("gsi2pk".into(), s(launches_partition(&job.campaign))),
        ("gsi2sk".into(), s(format!("LAUNCH#{:015}#{}", job.started_at.millis(), job.id))),
    ]))
}

pub fn event_pk(id: &str) -> String {
    format!("EVENT#{id}")
}

/// Reads an event item, from the table or from a stream record's new image.
pub fn event_from_item(item: &Item) -> Option<Event> {
    let id = get_s(item, "pk").ok()?.strip_prefix("EVENT#")?.to_owned();
    let kind = serde_json::from_str(get_s(item, "body").ok()?).ok()?;
    Some(Event { id, at: Timestamp::from_millis(get_n(item, "at")?), kind })
}

/// An event item with its counter deltas; `None` for items that are not events. An event of
/// the first schema (no `campaign`) carries nothing to count.
pub fn change_from_item(item: &Item) -> Option<Result<Change, StoreError>> {
    let event = event_from_item(item)?;
    let campaign = match get_s(item, "campaign").map(CampaignId::parse) {
        Ok(Ok(campaign)) => campaign,
        Ok(Err(e)) => return Some(Err(StoreError::corrupt(e))),
        Err(_) => return Some(Ok(Change { event, campaign: CampaignId::parse("unknown").ok()?, deltas: CounterDeltas::default() })),
    };
    let deltas = match item.get("deltas").and_then(|v| v.as_s().ok()) {
        Some(json) => match serde_json::from_str(json) {
            Ok(deltas) => deltas,
            Err(e) => return Some(Err(StoreError::corrupt(e))),
        },
        None => CounterDeltas::default(),
    };
    Some(Ok(Change { event, campaign, deltas }))
}

pub fn send_claim_item(key: &str, at: Timestamp) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("SEND#{key}"))),
        ("sk".into(), s(SEND_SK)),
        ("claimed_at".into(), n(at.millis())),
        ("expires_at".into(), expires_at(at, SEND_CLAIM_TTL_DAYS)),
    ])
}

pub fn suppression_item(key: &ContactKey, reason: SuppressionReason, at: Timestamp) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        ("pk".into(), s(contact_pk(key))),
        ("sk".into(), s(SUPPRESSED_SK)),
        ("reason".into(), json(&reason)?),
        ("at".into(), n(at.millis())),
    ]))
}

/// A suppression the stream delivers: whom, why and when.
pub fn suppression_from_item(item: &Item) -> Option<Result<(ContactKey, SuppressionReason, Timestamp), StoreError>> {
    let key = get_s(item, "pk").ok()?.strip_prefix("CONTACT#")?.to_owned();
    if get_s(item, "sk").ok()? != SUPPRESSED_SK {
        return None;
    }
    let read = || {
        let reason: SuppressionReason = serde_json::from_str(get_s(item, "reason")?).map_err(StoreError::corrupt)?;
        let at = get_n(item, "at").map(Timestamp::from_millis).ok_or_else(|| StoreError::corrupt(Malformed("suppression time")))?;
        Ok((ContactKey::from_stored(key), reason, at))
    };
    Some(read())
}

pub fn click_item(id: &InvitationId, site: &str, at: Timestamp) -> Item {
    HashMap::from([
        ("pk".into(), s(invitation_pk(id))),
        ("sk".into(), s(format!("CLICK#{:015}#{site}", at.millis()))),
        ("site".into(), s(site)),
    ])
}

pub fn case_item(case: &FollowUpCase) -> Result<Item, StoreError> {
    let mut item = HashMap::from([
        ("pk".into(), s(invitation_pk(&case.invitation_id))),
        ("sk".into(), s(CASE_SK)),
        ("body".into(), json(case)?),
        ("due_at".into(), n(case.due_at.millis())),
        ("gsi2pk".into(), s(cases_partition(&case.campaign_id))),
        ("gsi2sk".into(), s(case_index_sk(case))),
    ]);
    match case.escalated_at {
        Some(at) => {
            item.insert("escalated_at".into(), n(at.millis()));
        }
        None if case.status == CaseStatus::Open => {
            item.insert("gsi1pk".into(), s(work_partition(OVERDUE_CASE, &case.invitation_id.0)));
            item.insert("gsi1sk".into(), s(order_key(case.due_at, &case.invitation_id.0)));
        }
        None => {}
    }
    Ok(item)
}

pub fn case_from(item: &Item) -> Result<FollowUpCase, StoreError> {
    let mut case: FollowUpCase = body(item)?;
    case.escalated_at = get_n(item, "escalated_at").map(Timestamp::from_millis);
    Ok(case)
}

pub fn case_body(case: &FollowUpCase) -> Result<AttributeValue, StoreError> {
    json(case)
}

/// A campaign's webhook deliveries (`D#{id}`: ids sort by time) and endpoint health (`E#{key}`).
/// A campaign's "you said, we did" updates: `U#{id}`, with the progress in its own attribute.
pub fn updates_pk(campaign: &closeloop_core::campaign::CampaignId) -> String {
    format!("UPDATES#{}", campaign.as_str())
}

pub fn webhooks_pk(campaign: &closeloop_core::campaign::CampaignId) -> String {
    format!("WEBHOOKS#{}", campaign.as_str())
}

/// A delivery's item: its body, and while pending a place on the work index.
pub fn webhook_item(delivery: &closeloop_core::webhooks::WebhookDelivery) -> Result<Item, StoreError> {
    let mut item = Item::from([
        ("pk".to_owned(), s(webhooks_pk(&delivery.campaign_id))),
        ("sk".to_owned(), s(format!("D#{}", delivery.id))),
        ("body".to_owned(), s(serde_json::to_string(delivery).map_err(StoreError::corrupt)?)),
    ]);
    if let (closeloop_core::webhooks::DeliveryState::Pending, Some(next)) = (delivery.state, delivery.next_at) {
        item.insert("gsi1pk".into(), s(work_partition(DUE_WEBHOOK, &delivery.id)));
        item.insert("gsi1sk".into(), s(order_key(next, &delivery.id)));
    }
    Ok(item)
}
