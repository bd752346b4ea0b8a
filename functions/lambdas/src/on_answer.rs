//! DynamoDB stream batches → reactions. Each inserted event item is handled by the same
//! `handle_event` as the local dispatcher. A record that may succeed later is reported in
//! `batchItemFailures` (the platform retries from it, and idempotent sends make the repeat of
//! later records harmless); one that never can is logged and skipped so it blocks nothing.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::Event as StreamBatch;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use closeloop_dynamodb::event_from_item;
use closeloop_functions::{dispatch, Services};

/// Never fails as a whole: failures are reported per record.
pub async fn handle(
    services: &Services,
    batch: StreamBatch,
) -> Result<DynamoDbEventResponse, crate::Retryable> {
    let mut failures = Vec::new();
    for record in batch.records {
        if record.event_name != "INSERT" {
            continue;
        }
        let item: HashMap<String, AttributeValue> = record.change.new_image.into();
        let Some(event) = event_from_item(&item) else {
            continue; // not an event item: invitations, answers and the rest need no reaction
        };
        match dispatch::handle_event(services, &event).await {
            Ok(()) => {}
            Err(e) if e.is_retryable() => {
                tracing::warn!(event = %event.id, error = %e, "will be retried");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                failures.push(failure);
            }
            Err(e) => {
                tracing::error!(event = %event.id, error = %e, "dropped: retrying cannot help")
            }
        }
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures;
    Ok(response)
}
