//! DynamoDB stream batches → counters and reactions. First the batch's counter deltas are
//! folded and applied once (`Store::apply_counters`, exact on redelivery); then each inserted
//! event item is handled by the same `handle_event` as the local dispatcher: events of one
//! invitation in order, different invitations concurrently (at most `CONCURRENCY` at a time),
//! each campaign read once per batch. A handled event is completed, so it leaves the `work`
//! index. A record that may succeed later is reported in `batchItemFailures` together with the
//! later records of its invitation (the platform retries from it; idempotent sends make the
//! repeat of later records harmless); one that never can is logged and skipped. Near the
//! function's deadline no new invitation is started and the rest are reported as failures.
//!
//! A suppression the Worker wrote (its unsubscribe page only writes the suppression, to keep
//! within its subrequests) arrives too: the person's invitations are marked here, once, however
//! often the record is delivered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event as StreamBatch;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use closeloop_core::changes::Change;
use closeloop_core::model::EventKind;
use closeloop_dynamodb::{change_from_item, suppression_from_item};
use closeloop_functions::dispatch::{self, CampaignCache};
use closeloop_functions::Services;
use futures_util::StreamExt;

/// Invitations handled at the same time; each holds a few store reads and at most three sends.
pub const CONCURRENCY: usize = 16;
/// Time kept in hand before the deadline: a started invitation needs at most a few seconds.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// Never fails as a whole: failures are reported per record.
pub async fn handle(services: &Services, batch: StreamBatch, deadline: Option<Instant>) -> Result<DynamoDbEventResponse, crate::Retryable> {
    handle_with_concurrency(services, batch, deadline, CONCURRENCY).await
}

/// `handle`, after forwarding the batch's newly due webhook deliveries to their queue (one
/// SendMessageBatch per ten: the posting happens in `deliver_webhooks`, not here). A record
/// whose forward failed is reported, so the platform delivers it again.
pub async fn handle_with_webhooks(
    services: &Services,
    queue: &crate::webhooks::WebhookQueue,
    batch: StreamBatch,
    deadline: Option<Instant>,
) -> Result<DynamoDbEventResponse, crate::Retryable> {
    let mut due = Vec::new();
    for record in &batch.records {
        let old: HashMap<String, AttributeValue> = record.change.old_image.clone().into();
        let new: HashMap<String, AttributeValue> = record.change.new_image.clone().into();
        if let Some(reference) = crate::webhooks::newly_due(&old, &new) {
            due.push((record.change.sequence_number.clone().unwrap_or_default(), reference));
        }
    }
    let mut forward_failed = Vec::new();
    if !due.is_empty() && queue.is_configured() {
        let refs: Vec<_> = due.iter().map(|(_, r)| r.clone()).collect();
        if let Err(e) = queue.send(&refs, 0).await {
            tracing::warn!(error = %e, "forwarding webhook deliveries failed; the records will be retried");
            forward_failed = due.into_iter().map(|(sequence, _)| sequence).collect();
        }
    }
    let mut response = handle(services, batch, deadline).await?;
    for sequence in forward_failed {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence);
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

/// `handle` with another bound on concurrent invitations (1 handles them one after another).
pub async fn handle_with_concurrency(
    services: &Services,
    batch: StreamBatch,
    deadline: Option<Instant>,
    concurrency: usize,
) -> Result<DynamoDbEventResponse, crate::Retryable> {
    // What this batch sends is counted for its metric document.
    let (services, sends) = crate::metrics::counted(services);
    let services = &services;
    let mut records: Vec<(String, Change)> = Vec::new();
    let mut suppressions = Vec::new();
    for record in batch.records {
        if record.event_name != "INSERT" {
            continue;
        }
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        let item: HashMap<String, AttributeValue> = record.change.new_image.into();
        if let Some(suppression) = suppression_from_item(&item) {
            match suppression {
                Ok(suppression) => suppressions.push((sequence, suppression)),
                Err(e) => tracing::error!(error = %e, "dropped: unreadable suppression item"),
            }
            continue;
        }
        match change_from_item(&item) {
            None => continue, // not an event item: invitations, answers and the rest need no reaction
            Some(Ok(change)) => records.push((sequence, change)),
            Some(Err(e)) => tracing::error!(error = %e, "dropped: unreadable event item"),
        }
    }
    let mut failures: Vec<String> = Vec::new();
    for (sequence, (key, reason, at)) in suppressions {
        // Marks every invitation of the person; marking twice changes nothing.
        match services.store.suppress(&key, reason, at).await {
            Ok(_) => {}
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "marking a suppression failed; it will be retried");
                failures.push(sequence);
            }
            Err(e) => tracing::error!(error = %e, "dropped: marking a suppression cannot succeed"),
        }
    }
    let changes: Vec<Change> = records.iter().map(|(_, c)| c.clone()).collect();
    // Events whose counting failed for good stay on the work index (uncompleted), where a later
    // `settle_counters` can still count them.
    let mut complete = true;
    if let Err(e) = services.store.apply_counters(&changes).await {
        if e.is_retryable() {
            // Nothing was reacted to yet: the whole batch comes again, and what was counted is
            // not counted twice.
            tracing::warn!(error = %e, "counting failed; the batch will be retried");
            // With any suppression that failed: the platform retries from the lowest reported.
            failures.extend(records.into_iter().map(|(sequence, _)| sequence));
            return Ok(response(failures));
        }
        tracing::error!(error = %e, "counting failed permanently; reacting anyway");
        complete = false;
    }

    let mut by_invitation: Vec<Vec<(String, Change)>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (sequence, change) in records {
        let key = dispatch::event_invitation(&change.event).0.clone();
        let slot = *index.entry(key).or_insert_with(|| {
            by_invitation.push(Vec::new());
            by_invitation.len() - 1
        });
        by_invitation[slot].push((sequence, change));
    }
    let campaigns = CampaignCache::default();
    // The answers' invitations, answers and suppressions in a few batched reads up front (a
    // failure only means each event reads its own).
    let answered: Vec<_> = by_invitation
        .iter()
        .filter(|group| group.iter().any(|(_, change)| matches!(change.event.kind, EventKind::AnswerRecorded { .. })))
        .map(|group| dispatch::event_invitation(&group[0].1.event).clone())
        .collect();
    if let Err(e) = campaigns.prefetch(services, &answered).await {
        tracing::warn!(error = %e, "prefetching the batch failed; each event reads its own");
    }
    let outcomes = futures_util::stream::iter(by_invitation)
        .map(|group| handle_in_order(services, group, &campaigns, deadline))
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<(Vec<String>, Vec<String>, u64)>>()
        .await;
    let mut handled = Vec::new();
    let mut answers = 0;
    for (retry, done, answered) in outcomes {
        failures.extend(retry);
        handled.extend(done);
        answers += answered;
    }
    sends.emit_with(&[(crate::metrics::Metric::Answers, answers)]);
    // Handled events leave the work index together, in a few requests.
    if complete {
        if let Err(e) = services.store.complete_events(&handled, services.clock.now()).await {
            // Handled; they only stay on the work index until the next local dispatch or their TTL.
            tracing::warn!(events = handled.len(), error = %e, "completing the events failed");
        }
    }
    Ok(response(failures))
}

/// Handles one invitation's events in order; returns the sequence numbers to retry, the ids
/// of the events handled (or dropped for good), to complete, and the answers reacted to.
async fn handle_in_order(
    services: &Services,
    group: Vec<(String, Change)>,
    campaigns: &CampaignCache,
    deadline: Option<Instant>,
) -> (Vec<String>, Vec<String>, u64) {
    if deadline.is_some_and(|d| Instant::now() + DEADLINE_MARGIN >= d) {
        tracing::warn!(records = group.len(), "near the deadline: left for the retry");
        return (group.into_iter().map(|(sequence, _)| sequence).collect(), Vec::new(), 0);
    }
    let mut done = Vec::new();
    let mut answers = 0;
    let mut records = group.into_iter();
    while let Some((sequence, change)) = records.next() {
        let event = &change.event;
        // `handle_event_with` logs inside a span of the event's ids; these lines name it.
        match dispatch::handle_event_with(services, event, campaigns).await {
            Ok(()) => answers += u64::from(matches!(event.kind, EventKind::AnswerRecorded { .. })),
            Err(e) if e.is_retryable() => {
                tracing::warn!(event = %event.id, invitation = %dispatch::event_invitation(event), error = %e, "will be retried");
                return (std::iter::once(sequence).chain(records.map(|(s, _)| s)).collect(), done, answers);
            }
            Err(e) => tracing::error!(event = %event.id, invitation = %dispatch::event_invitation(event), error = %e, "dropped: retrying cannot help"),
        }
        done.push(event.id.clone());
    }
    (Vec::new(), done, answers)
}

fn response(sequence_numbers: Vec<String>) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = sequence_numbers
        .into_iter()
        .map(|sequence| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failure
        })
        .collect();
    response
}

/// The invocation's deadline as an `Instant`, from the runtime's milliseconds since the epoch.
pub fn deadline_of(context: &lambda_runtime::Context) -> Option<Instant> {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(context.deadline.checked_sub(now_ms)?))
}
