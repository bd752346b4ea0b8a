//! The storage port on a single DynamoDB table. The design, with every access pattern, is in
//! ARCHITECTURE.md ("DynamoDB single-table design"). Every multi-item change is one
//! TransactWriteItems call, so nothing is half-written when a request dies midway.

mod errors;
mod items;
mod schema;
#[cfg(feature = "stream-reader")]
pub mod stream;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;

use closeloop_core::campaign::{Campaign, CampaignId};
use closeloop_core::counters::{self, CounterDeltas, Fields, OPENED, REVIEW_CLICKERS, TOTAL};
use closeloop_core::model::*;
use closeloop_core::ports::{CreateOutcome, InvitationRow, Store, StoreError};
use closeloop_core::Timestamp;

pub use items::event_from_item;
pub use schema::{create_table, TableSettings};

use items::*;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

use errors::{classify as unavailable, Cancelled};

/// A request we could not build is our bug: sending it again cannot help.
fn request_bug(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::rejected(e)
}

/// Whether a transaction was cancelled because the condition of item `index` failed.
fn condition_failed_at(reasons: &[aws_sdk_dynamodb::types::CancellationReason], index: usize) -> bool {
    reasons.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
}

/// Cancellation reasons of a cancelled transaction, or the error to return.
fn cancellation_reasons<R: std::fmt::Debug + Send + Sync + 'static>(
    e: SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Result<Vec<aws_sdk_dynamodb::types::CancellationReason>, StoreError> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => Ok(c.cancellation_reasons().to_vec()),
        _ => Err(unavailable(e)),
    }
}

const PAGE: i32 = 500;

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    /// A conditional put: false when the condition failed.
    async fn put_if(&self, item: HashMap<String, AttributeValue>, condition: &str) -> Result<bool, StoreError> {
        match self.client.put_item().table_name(&self.table).set_item(Some(item)).condition_expression(condition).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// All items of a query, page by page.
    async fn query_all(
        &self,
        index: Option<&str>,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        limit: Option<usize>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(condition)
                .set_exclusive_start_key(start)
                .limit(limit.map_or(PAGE, |l| (l - items.len()).min(PAGE as usize) as i32));
            for (name, value) in &values {
                query = query.expression_attribute_values(*name, value.clone());
            }
            let out = query.send().await.map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() || limit.is_some_and(|l| items.len() >= l) {
                return Ok(items);
            }
        }
    }

    /// One ADD per counter bucket, as transaction items (a transaction may touch an item once).
    fn counter_updates(&self, campaign: &CampaignId, deltas: &CounterDeltas) -> Result<Vec<TransactWriteItem>, StoreError> {
        deltas
            .buckets()
            .map(|(bucket, fields)| {
                let expression = (0..fields.len()).map(|i| format!("#f{i} :d{i}")).collect::<Vec<_>>().join(", ");
                let mut update = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(campaign_partition(campaign)))
                    .key("sk", s(counter_sk(bucket)))
                    .update_expression(format!("ADD {expression}"));
                for (i, (field, delta)) in fields.iter().enumerate() {
                    update =
                        update.expression_attribute_names(format!("#f{i}"), field).expression_attribute_values(format!(":d{i}"), n(*delta));
                }
                Ok(TransactWriteItem::builder().update(update.build().map_err(request_bug)?).build())
            })
            .collect()
    }

    /// Runs a transaction; `Ok(false)` when a condition failed.
    async fn transact_if(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let reasons = cancellation_reasons(e)?;
                if reasons.iter().any(|r| r.code() == Some("ConditionalCheckFailed")) {
                    Ok(false)
                } else {
                    Err(Cancelled { reasons }.into_store_error())
                }
            }
        }
    }

    /// Reads, changes and writes a case under the condition that nobody changed it meanwhile.
    async fn change_case(&self, invitation: &InvitationId, change: impl Fn(&mut FollowUpCase) -> bool) -> Result<bool, StoreError> {
        for _ in 0..5 {
            let Some(item) = self.get(invitation_pk(invitation), CASE_SK).await? else {
                return Ok(false);
            };
            let mut case = case_from(&item)?;
            if !change(&mut case) {
                return Ok(false);
            }
            let old_body = item.get("body").cloned().ok_or_else(|| StoreError::corrupt("case without body"))?;
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(invitation_pk(invitation)))
                .key("sk", s(CASE_SK))
                .condition_expression("body = :old")
                .expression_attribute_values(":old", old_body)
                .expression_attribute_values(":new", case_body(&case)?);
            // A closed case leaves the overdue index: it can no longer escalate.
            update = if case.status == CaseStatus::Closed {
                update.update_expression("SET body = :new REMOVE gsi1pk, gsi1sk")
            } else {
                update.update_expression("SET body = :new")
            };
            match update.send().await {
                Ok(_) => return Ok(true),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn invitation_item(&self, id: &InvitationId) -> Result<Option<Invitation>, StoreError> {
        self.get(invitation_pk(id), INVITATION_SK).await?.map(|item| invitation_from(&item)).transpose()
    }

    /// Runs a conditional update whose failed condition means the step was already done, which
    /// makes retried steps (completing an event, escalating a case) idempotent.
    async fn update_unless_done(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<(), StoreError> {
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn clear_reminder(&self, id: &str) -> Result<(), StoreError> {
        self.update_unless_done(
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("INV#{id}")))
                .key("sk", s(INVITATION_SK))
                .update_expression("REMOVE next_reminder_at, gsi1pk, gsi1sk")
                .condition_expression("attribute_exists(pk)"),
        )
        .await
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn put_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        self.client.put_item().table_name(&self.table).set_item(Some(campaign_item(campaign)?)).send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError> {
        self.get(CAMPAIGNS_PK.to_owned(), &campaign_sk(id)).await?.map(|item| body(&item)).transpose()
    }

    async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let items = self.query_all(None, "pk = :p", vec![(":p", s(CAMPAIGNS_PK))], None).await?;
        items.iter().map(body).collect()
    }

    async fn create_invitations(&self, invitations: &[Invitation], throttle_since: Timestamp) -> Result<Vec<CreateOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(invitations.len());
        for inv in invitations {
            let keys = inv.contact.keys();
            let mut items = vec![TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(invitation_item(inv)?))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(request_bug)?,
                )
                .build()];
            let suppression_checks = 1..1 + keys.len();
            for key in &keys {
                items.push(
                    TransactWriteItem::builder()
                        .condition_check(
                            ConditionCheck::builder()
                                .table_name(&self.table)
                                .key("pk", s(contact_pk(key)))
                                .key("sk", s(SUPPRESSED_SK))
                                .condition_expression("attribute_not_exists(pk)")
                                .build()
                                .map_err(request_bug)?,
                        )
                        .build(),
                );
            }
            for key in &keys {
                items.push(
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.table)
                                .set_item(Some(last_invited_item(key, inv.created_at)))
                                .condition_expression("attribute_not_exists(pk) OR invited_at < :since")
                                .expression_attribute_values(":since", n(throttle_since.millis()))
                                .build()
                                .map_err(request_bug)?,
                        )
                        .build(),
                );
                items.push(
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.table)
                                .set_item(Some(contact_link_item(key, &inv.id)))
                                .build()
                                .map_err(request_bug)?,
                        )
                        .build(),
                );
            }
            let event = Event {
                id: format!("invitation-{}", inv.id),
                at: inv.created_at,
                kind: EventKind::InvitationCreated { invitation_id: inv.id.clone() },
            };
            items.push(
                TransactWriteItem::builder()
                    .put(Put::builder().table_name(&self.table).set_item(Some(event_item(&event)?)).build().map_err(request_bug)?)
                    .build(),
            );
            items.extend(self.counter_updates(&inv.campaign_id, &counters::invitation_deltas(inv))?);

            let outcome = match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
                Ok(_) => CreateOutcome::Created,
                Err(e) => {
                    let reasons = cancellation_reasons(e)?;
                    if suppression_checks.clone().any(|i| condition_failed_at(&reasons, i)) {
                        CreateOutcome::Suppressed
                    } else if reasons.iter().any(|r| r.code() == Some("ConditionalCheckFailed")) {
                        CreateOutcome::Throttled
                    } else {
                        return Err(Cancelled { reasons }.into_store_error());
                    }
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, StoreError> {
        self.invitation_item(id).await
    }

    async fn invitation_by_token(&self, token: &Token) -> Result<Option<Invitation>, StoreError> {
        let items = self.query_all(Some(schema::TOKEN_INDEX), "link_token = :t", vec![(":t", s(token.as_str()))], Some(1)).await?;
        items.first().map(invitation_from).transpose()
    }

    async fn campaign_rows(&self, campaign: &CampaignId) -> Result<Vec<InvitationRow>, StoreError> {
        let items =
            self.query_all(Some(schema::CAMPAIGN_INDEX), "gsi2pk = :c", vec![(":c", s(campaign_partition(campaign)))], None).await?;
        let mut rows: Vec<InvitationRow> = Vec::new();
        let mut answers: HashMap<String, Answer> = HashMap::new();
        for item in &items {
            match get_s(item, "sk")? {
                INVITATION_SK => rows.push(InvitationRow {
                    invitation: invitation_from(item)?,
                    answer: None,
                    suppressed: false,
                    review_clicks: get_n(item, "review_clicks").unwrap_or(0) as u32,
                }),
                ANSWER_SK => {
                    let answer: Answer = body(item)?;
                    answers.insert(answer.invitation_id.0.clone(), answer);
                }
                _ => {}
            }
        }
        // Suppressing marks every invitation of the person (`suppressed`), so no lookup per
        // contact key is needed: a Worker has a budget of subrequests per request.
        for row in &mut rows {
            row.answer = answers.remove(&row.invitation.id.0);
            row.suppressed = row.invitation.suppressed.is_some();
        }
        rows.sort_by(|a, b| (a.invitation.created_at, &a.invitation.id).cmp(&(b.invitation.created_at, &b.invitation.id)));
        Ok(rows)
    }

    async fn counter_buckets(
        &self,
        campaign: &CampaignId,
        prefixes: &[String],
    ) -> Result<std::collections::BTreeMap<String, Fields>, StoreError> {
        let mut items = Vec::new();
        for prefix in prefixes {
            // The total keeps the first schema's `COUNTERS` item; every other bucket is `COUNTER#…`.
            let sk_prefix = if prefix.is_empty() { "COUNTER".to_owned() } else { format!("COUNTER#{prefix}") };
            if prefix.as_str() == TOTAL {
                items.extend(self.get(campaign_partition(campaign), COUNTERS_SK).await?);
                continue;
            }
            items.extend(
                self.query_all(
                    None,
                    "pk = :p AND begins_with(sk, :counter)",
                    vec![(":p", s(campaign_partition(campaign))), (":counter", s(sk_prefix))],
                    None,
                )
                .await?,
            );
        }
        let mut buckets = std::collections::BTreeMap::new();
        for item in &items {
            let Some(bucket) = counter_bucket(get_s(item, "sk")?) else { continue };
            let fields: Fields = item
                .iter()
                .filter(|(name, _)| name.as_str() != "pk" && name.as_str() != "sk")
                .filter_map(|(name, value)| value.as_n().ok().and_then(|v| v.parse().ok()).map(|v| (name.clone(), v)))
                .collect();
            buckets.insert(bucket.to_owned(), fields);
        }
        Ok(buckets)
    }

    async fn record_open(&self, invitation: &InvitationId, at: Timestamp) -> Result<bool, StoreError> {
        let Some(inv) = self.invitation_item(invitation).await? else {
            return Ok(false);
        };
        if inv.opened_at.is_some() {
            return Ok(false);
        }
        let mark = Update::builder()
            .table_name(&self.table)
            .key("pk", s(invitation_pk(invitation)))
            .key("sk", s(INVITATION_SK))
            .update_expression("SET opened_at = :at")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(opened_at)")
            .expression_attribute_values(":at", n(at.millis()))
            .build()
            .map_err(request_bug)?;
        let mut items = vec![TransactWriteItem::builder().update(mark).build()];
        items.extend(self.counter_updates(&inv.campaign_id, &CounterDeltas::single(TOTAL, OPENED, 1))?);
        self.transact_if(items).await
    }

    async fn answer(&self, invitation: &InvitationId) -> Result<Option<Answer>, StoreError> {
        self.get(invitation_pk(invitation), ANSWER_SK).await?.map(|item| body(&item)).transpose()
    }

    async fn record_answer(&self, answer: &Answer, event: &Event, deltas: &CounterDeltas) -> Result<(), StoreError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(answer_item(answer)?));
        put = if answer.version <= 1 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :previous").expression_attribute_values(":previous", n(i64::from(answer.version) - 1))
        };
        let mark_answered = Update::builder()
            .table_name(&self.table)
            .key("pk", s(invitation_pk(&answer.invitation_id)))
            .key("sk", s(INVITATION_SK))
            .update_expression("SET answered_at = if_not_exists(answered_at, :first) REMOVE next_reminder_at, gsi1pk, gsi1sk")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":first", n(answer.first_answered_at.millis()))
            .build()
            .map_err(request_bug)?;
        let event_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(event_item(event)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(request_bug)?;
        let mut items = vec![
            TransactWriteItem::builder().put(put.build().map_err(request_bug)?).build(),
            TransactWriteItem::builder().update(mark_answered).build(),
            TransactWriteItem::builder().put(event_put).build(),
        ];
        items.extend(self.counter_updates(&answer.campaign_id, deltas)?);
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let reasons = cancellation_reasons(e)?;
                if reasons.iter().any(|r| matches!(r.code(), Some("ConditionalCheckFailed" | "TransactionConflict"))) {
                    Err(StoreError::Conflict)
                } else {
                    Err(Cancelled { reasons }.into_store_error())
                }
            }
        }
    }

    async fn pending_events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let items = self.query_all(Some(schema::WORK_INDEX), "gsi1pk = :p", vec![(":p", s(PENDING_EVENT))], Some(limit)).await?;
        items.iter().map(|item| event_from_item(item).ok_or_else(|| StoreError::corrupt("malformed event item"))).collect()
    }

    async fn complete_event(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.update_unless_done(
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("EVENT#{id}")))
                .key("sk", s(EVENT_SK))
                .update_expression("SET done_at = :at REMOVE gsi1pk, gsi1sk")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(done_at)")
                .expression_attribute_values(":at", n(at.millis())),
        )
        .await
    }

    async fn claim_send(&self, key: &str, at: Timestamp) -> Result<bool, StoreError> {
        self.put_if(send_claim_item(key, at), "attribute_not_exists(pk)").await
    }

    async fn release_send(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("SEND#{key}")))
            .key("sk", s(SEND_SK))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn suppress(&self, key: &ContactKey, reason: SuppressionReason, at: Timestamp) -> Result<bool, StoreError> {
        let newly = self.put_if(suppression_item(key, reason, at)?, "attribute_not_exists(pk)").await?;
        // Reminders of this person stop everywhere; repeated on every call so a crash between the
        // two steps heals on the next unsubscribe or bounce.
        let links =
            self.query_all(None, "pk = :p AND begins_with(sk, :inv)", vec![(":p", s(contact_pk(key))), (":inv", s("INV#"))], None).await?;
        for link in &links {
            if let Some(id) = get_s(link, "sk")?.strip_prefix("INV#") {
                let id = InvitationId(id.to_owned());
                let Some(inv) = self.invitation_item(&id).await? else {
                    continue;
                };
                // Each invitation counts once, under the first reason it was suppressed for.
                let mark = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(invitation_pk(&id)))
                    .key("sk", s(INVITATION_SK))
                    .update_expression("SET suppressed = :r REMOVE next_reminder_at, gsi1pk, gsi1sk")
                    .condition_expression("attribute_exists(pk) AND attribute_not_exists(suppressed)")
                    .expression_attribute_values(":r", s(reason.as_str()))
                    .build()
                    .map_err(request_bug)?;
                let mut items = vec![TransactWriteItem::builder().update(mark).build()];
                items
                    .extend(self.counter_updates(&inv.campaign_id, &CounterDeltas::single(TOTAL, counters::suppression_field(reason), 1))?);
                if !self.transact_if(items).await? {
                    self.clear_reminder(&id.0).await?;
                }
            }
        }
        Ok(newly)
    }

    async fn is_suppressed(&self, keys: &[ContactKey]) -> Result<bool, StoreError> {
        for key in keys {
            if self.get(contact_pk(key), SUPPRESSED_SK).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn due_reminders(&self, at: Timestamp, limit: usize) -> Result<Vec<Invitation>, StoreError> {
        let items = self
            .query_all(
                Some(schema::WORK_INDEX),
                "gsi1pk = :p AND gsi1sk <= :upper",
                vec![(":p", s(DUE_REMINDER)), (":upper", s(upper_bound(at)))],
                Some(limit),
            )
            .await?;
        items.iter().map(invitation_from).collect()
    }

    async fn reminder_sent(&self, invitation: &InvitationId, sent: u32, next: Option<Timestamp>) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(invitation_pk(invitation)))
            .key("sk", s(INVITATION_SK))
            .expression_attribute_values(":sent", n(i64::from(sent)));
        let update = match next {
            // Only an unanswered invitation goes back on the reminder index.
            Some(next) => update
                .update_expression("SET reminders_sent = :sent, next_reminder_at = :next, gsi1pk = :due, gsi1sk = :order")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(answered_at)")
                .expression_attribute_values(":next", n(next.millis()))
                .expression_attribute_values(":due", s(DUE_REMINDER))
                .expression_attribute_values(":order", s(order_key(next, &invitation.0))),
            None => update
                .update_expression("SET reminders_sent = :sent REMOVE next_reminder_at, gsi1pk, gsi1sk")
                .condition_expression("attribute_exists(pk)"),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                if next.is_some() {
                    // Answered meanwhile: record the count, schedule nothing.
                    return Box::pin(self.reminder_sent(invitation, sent, None)).await;
                }
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn record_review_click(&self, invitation: &InvitationId, site: &str, at: Timestamp) -> Result<(), StoreError> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(invitation_pk(invitation)))
            .key("sk", s(INVITATION_SK))
            .update_expression("ADD review_clicks :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(unavailable)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(click_item(invitation, site, at)))
            .send()
            .await
            .map_err(unavailable)?;
        let clicked = updated.attributes.unwrap_or_default();
        if get_n(&clicked, "review_clicks") == Some(1) {
            // The first click of this invitation: one more person went on to a review site.
            let inv = invitation_from(&clicked)?;
            let items = self.counter_updates(&inv.campaign_id, &CounterDeltas::single(TOTAL, REVIEW_CLICKERS, 1))?;
            self.client.transact_write_items().set_transact_items(Some(items)).send().await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn open_case(&self, case: &FollowUpCase) -> Result<bool, StoreError> {
        self.put_if(case_item(case)?, "attribute_not_exists(pk)").await
    }

    async fn case(&self, invitation: &InvitationId) -> Result<Option<FollowUpCase>, StoreError> {
        self.get(invitation_pk(invitation), CASE_SK).await?.map(|item| case_from(&item)).transpose()
    }

    async fn overdue_cases(&self, at: Timestamp, limit: usize) -> Result<Vec<FollowUpCase>, StoreError> {
        let items = self
            .query_all(
                Some(schema::WORK_INDEX),
                "gsi1pk = :p AND gsi1sk <= :upper",
                vec![(":p", s(OVERDUE_CASE)), (":upper", s(upper_bound(at)))],
                Some(limit),
            )
            .await?;
        items.iter().map(case_from).collect()
    }

    async fn case_escalated(&self, invitation: &InvitationId, at: Timestamp) -> Result<(), StoreError> {
        self.update_unless_done(
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(invitation_pk(invitation)))
                .key("sk", s(CASE_SK))
                .update_expression("SET escalated_at = :at REMOVE gsi1pk, gsi1sk")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(escalated_at)")
                .expression_attribute_values(":at", n(at.millis())),
        )
        .await
    }

    async fn cases(&self, campaign: &CampaignId, owner: Option<&Email>) -> Result<Vec<FollowUpCase>, StoreError> {
        let prefix = match owner {
            Some(owner) => case_owner_prefix(Some(owner)),
            None => "CASE#".to_owned(),
        };
        let items = self
            .query_all(
                Some(schema::CAMPAIGN_INDEX),
                "gsi2pk = :c AND begins_with(gsi2sk, :prefix)",
                vec![(":c", s(campaign_partition(campaign))), (":prefix", s(prefix))],
                None,
            )
            .await?;
        let mut cases = items.iter().map(case_from).collect::<Result<Vec<_>, _>>()?;
        cases.sort_by(|a, b| (a.due_at, &a.invitation_id).cmp(&(b.due_at, &b.invitation_id)));
        Ok(cases)
    }

    async fn add_case_note(&self, invitation: &InvitationId, note: &CaseNote) -> Result<bool, StoreError> {
        self.change_case(invitation, |case| {
            case.notes.push(note.clone());
            true
        })
        .await
    }

    async fn close_case(&self, invitation: &InvitationId, closure: &CaseClosure) -> Result<bool, StoreError> {
        self.change_case(invitation, |case| case.close(closure))
        .await
    }
}

/// A client for a given endpoint and static credentials: DynamoDB Local in tests, or AWS with
/// the credentials a Lambda gets in its environment.
#[cfg(feature = "native")]
pub fn client_for(endpoint: Option<&str>, region: &str, credentials: aws_credential_types::Credentials) -> Client {
    let mut builder = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new(region.to_owned()))
        .credentials_provider(credentials);
    builder.set_endpoint_url(endpoint.map(str::to_owned));
    Client::from_conf(builder.build())
}

/// DynamoDB Local from `DYNAMODB_ENDPOINT`, for tests and benchmarks. Without DynamoDB Local
/// keeping one database per access key and region, every caller shares the same one.
#[cfg(feature = "native")]
pub fn local_client() -> Result<Client, StoreError> {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT").map_err(|_| {
        StoreError::rejected("DYNAMODB_ENDPOINT is not set: run the tests through scripts/test, which starts DynamoDB Local")
    })?;
    let credentials = aws_credential_types::Credentials::new("local", "local", None, None, "closeloop-local");
    Ok(client_for(Some(&endpoint), "eu-north-1", credentials))
}
