//! The storage port on a single DynamoDB table. The design, with every access pattern, is in
//! ARCHITECTURE.md ("DynamoDB single-table design"). Every multi-item change is one
//! TransactWriteItems call, so nothing is half-written when a request dies midway.

mod errors;
mod retry;
mod items;
mod schema;
#[cfg(feature = "stream-reader")]
pub mod stream;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, ConditionCheck, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;

use closeloop_core::campaign::{Campaign, CampaignId};
use closeloop_core::changes::Change;
use closeloop_core::launch::{ChunkResult, LaunchId, LaunchJob};
use closeloop_core::counters::{CounterDeltas, Fields, TOTAL};
use closeloop_core::model::*;
use closeloop_core::ports::{CreateOutcome, InvitationRow, Malformed, RowCursor, RowPage, RowQuery, Store, StoreError};
use closeloop_core::Timestamp;
use closeloop_core::privacy::{self, ErasureKey, SuppressionRecord};

pub use items::{change_from_item, event_from_item, suppression_from_item};
pub use schema::{create_table, TableSettings};

use items::*;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    retry: retry::ConflictRetry,
    /// Marking a suppressed person's invitations is left to the stream consumer (the Worker's
    /// unsubscribe page, whose subrequests are counted; see `suppress`).
    defer_suppression_marks: bool,
    /// Read from the table once per process (or Worker isolate), shared by clones.
    erasure: std::sync::Arc<std::sync::OnceLock<ErasureKey>>,
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

/// DynamoDB's limit of operations in one TransactWriteItems call.
const MAX_TRANSACTION_ITEMS: usize = 100;

const PAGE: i32 = 500;

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), retry: retry::ConflictRetry::default(), defer_suppression_marks: false, erasure: Default::default() }
    }

    /// How many times in all a transaction is sent while conflicts cancel it. The Worker uses 1:
    /// each try is a subrequest, and its callers retry what matters themselves.
    pub fn with_conflict_attempts(mut self, attempts: u32) -> Self {
        self.retry.attempts = attempts.max(1);
        self
    }

    /// `suppress` writes only the suppression; `on_answer` marks the person's invitations when
    /// the stream delivers it. Two writes, however many campaigns the person is in.
    pub fn with_deferred_suppression_marks(mut self) -> Self {
        self.defer_suppression_marks = true;
        self
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

    /// One Query call (one subrequest on the Worker): its items and whether more follow.
    async fn query_once(
        &self,
        index: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        limit: usize,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, bool), StoreError> {
        let mut query =
            self.client.query().table_name(&self.table).index_name(index).key_condition_expression(condition).limit(limit.min(PAGE as usize) as i32);
        for (name, value) in values {
            query = query.expression_attribute_values(name, value);
        }
        let out = query.send().await.map_err(unavailable)?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key.is_some()))
    }

    /// A page of the whole campaign from the campaign index, whose sort keys put each answer
    /// (`{id}#ANSWER`) right before its invitation (`{id}#INV`); cases and launches share the index
    /// and are stepped over. The cursor is the last sort key consumed.
    async fn campaign_page(&self, query: RowQuery<'_>, limit: usize) -> Result<RowPage, StoreError> {
        let mut values = vec![(":c", s(campaign_partition(query.campaign)))];
        let condition = range_condition("gsi2pk = :c", "gsi2sk", query, &mut values);
        // Room for every row's answer, and a little for the cases between them.
        let (items, more) = self.query_once(schema::CAMPAIGN_INDEX, &condition, values, 2 * limit + 2).await?;
        let (mut rows, mut position, mut pending): (Vec<InvitationRow>, Option<String>, Option<Answer>) = (Vec::new(), None, None);
        let mut consumed = 0;
        let mut past_the_range = false;
        let mut last_row: Option<String> = None;
        for item in &items {
            let sort_key = get_s(item, "gsi2sk")?;
            // Ids hold no `#`, so the sort key's first part orders like the id. Checked before the
            // limit, so a page that ends a part knows it is the last.
            if query.through.is_some_and(|through| sort_key.split('#').next().unwrap_or(sort_key) > through) {
                past_the_range = true;
                break;
            }
            if rows.len() == limit {
                break;
            }
            consumed += 1;
            match get_s(item, "sk")? {
                ANSWER_SK => {
                    pending = Some(body(item)?);
                    continue;
                }
                INVITATION_SK => {
                    let invitation = invitation_from(item)?;
                    let answer = pending.take().filter(|a| a.invitation_id == invitation.id);
                    rows.push(InvitationRow {
                        suppressed: invitation.suppressed.is_some(),
                        review_clicks: get_n(item, "review_clicks").unwrap_or(0) as u32,
                        invitation,
                        answer,
                    });
                    last_row = Some(sort_key.to_owned());
                }
                _ => {}
            }
            pending = None;
            position = Some(sort_key.to_owned());
        }
        // An answer read last waits for its invitation on the next page: the cursor stays before
        // it. After a page with rows the cursor is the last row, not the cases beyond it: an
        // invitation added between them later is still read by the next page (or export part).
        let ends_the_part = query.through.is_some_and(|through| rows.last().is_some_and(|r| r.invitation.id.0 == through));
        let finished = past_the_range || ends_the_part || (!more && consumed == items.len());
        let next = match last_row.or(position) {
            Some(position) if !finished => Some(RowCursor::parse(&position).map_err(StoreError::corrupt)?),
            None if !finished => return Err(StoreError::corrupt(Malformed("a campaign index page without an invitation"))),
            _ => None,
        };
        Ok(RowPage { rows, next })
    }

    /// A page of one owner's invitations from the sparse owner index, with their answers in one
    /// BatchGetItem.
    async fn owner_page(&self, query: RowQuery<'_>, owner: &Email, limit: usize) -> Result<RowPage, StoreError> {
        let mut values = vec![(":c", s(owner_partition(query.campaign, owner)))];
        let condition = range_condition("gsi3pk = :c", "gsi3sk", query, &mut values);
        let (mut items, mut more) = self.query_once(schema::OWNER_INDEX, &condition, values, limit).await?;
        if let Some(through) = query.through {
            let inside = items.iter().take_while(|item| get_s(item, "gsi3sk").is_ok_and(|id| id <= through)).count();
            more &= inside == items.len();
            items.truncate(inside);
        }
        let keys = items.iter().map(|item| Ok(item_key(get_s(item, "pk")?.to_owned(), ANSWER_SK.to_owned()))).collect::<Result<_, StoreError>>()?;
        let mut answers: HashMap<String, Answer> = HashMap::new();
        for item in self.batch_get(keys).await? {
            let answer: Answer = body(&item)?;
            answers.insert(answer.invitation_id.0.clone(), answer);
        }
        let rows = items
            .iter()
            .map(|item| {
                let invitation = invitation_from(item)?;
                Ok(InvitationRow {
                    suppressed: invitation.suppressed.is_some(),
                    review_clicks: get_n(item, "review_clicks").unwrap_or(0) as u32,
                    answer: answers.remove(&invitation.id.0),
                    invitation,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let ends_the_part = query.through.is_some_and(|through| rows.last().is_some_and(|r| r.invitation.id.0 == through));
        let next = match rows.last() {
            Some(last) if more && !ends_the_part => Some(RowCursor::parse(&last.invitation.id.0).map_err(StoreError::corrupt)?),
            _ => None,
        };
        Ok(RowPage { rows, next })
    }

    /// The items with these keys, strongly consistent, 100 keys a call; keys DynamoDB leaves
    /// unprocessed (throttling) are asked again with backoff. Missing items are simply absent.
    async fn batch_get(&self, keys: Vec<HashMap<String, AttributeValue>>) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder().set_keys(Some(pending)).consistent_read(true).build().map_err(request_bug)?;
                let out = self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(unavailable)?;
                items.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
                pending = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|k| k.keys).unwrap_or_default();
                attempt += 1;
                if !pending.is_empty() {
                    if attempt >= self.retry.attempts.max(3) {
                        return Err(StoreError::unavailable(Unprocessed { keys: pending.len() }));
                    }
                    self.retry.pause(&self.client, attempt).await;
                }
            }
        }
        Ok(items)
    }

    /// Items of one kind on the sharded work index, due at or before `due` (all if `None`),
    /// oldest first across the shards, at most `limit`.
    async fn query_work(&self, kind: &str, due: Option<Timestamp>, limit: usize) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        for partition in work_partitions(kind) {
            let found = match due {
                Some(at) => {
                    self.query_all(
                        Some(schema::WORK_INDEX),
                        "gsi1pk = :p AND gsi1sk <= :upper",
                        vec![(":p", s(partition)), (":upper", s(upper_bound(at)))],
                        Some(limit),
                    )
                    .await?
                }
                None => self.query_all(Some(schema::WORK_INDEX), "gsi1pk = :p", vec![(":p", s(partition))], Some(limit)).await?,
            };
            items.extend(found);
        }
        let order = |item: &HashMap<String, AttributeValue>| item.get("gsi1sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        items.sort_by_cached_key(order);
        items.truncate(limit);
        Ok(items)
    }

    /// Counts the event items among `items` not marked `counted` yet.
    async fn count_uncounted(&self, items: &[HashMap<String, AttributeValue>]) -> Result<usize, StoreError> {
        let changes: Vec<Change> =
            items.iter().filter(|item| !item.contains_key("counted")).filter_map(change_from_item).collect::<Result<_, _>>()?;
        self.count_changes(&changes).await
    }

    /// Adds the deltas of `changes` to the counter items, each change once: every transaction
    /// marks its changes' event items `counted` under the condition that they were not, and
    /// adds their deltas folded by (campaign, bucket). A change counted before (a redelivered
    /// batch) fails its condition; it is left out and the rest go again.
    async fn count_changes(&self, changes: &[Change]) -> Result<usize, StoreError> {
        let mut counted = 0;
        let mut pending: Vec<&Change> = changes.iter().filter(|c| !c.deltas.is_empty()).collect();
        // The same event twice in one batch is one change.
        let mut seen = std::collections::HashSet::new();
        pending.retain(|c| seen.insert(c.event.id.clone()));
        while !pending.is_empty() {
            // As many changes as fit: one marker each plus one ADD per distinct counter item.
            let mut take = 0;
            while take < pending.len() && take + 1 + Change::touched_buckets(pending[..=take].iter().copied()) <= MAX_TRANSACTION_ITEMS {
                take += 1;
            }
            if take == 0 {
                // Cannot happen within the campaign file's limits (a contract case checks);
                // left uncounted rather than holding back every change after it.
                let error = TooManyCounters { event: pending[0].event.id.clone() };
                tracing::error!(error = %error, "change left uncounted");
                pending.remove(0);
                continue;
            }
            let mut group: Vec<&Change> = pending.drain(..take).collect();
            loop {
                if group.is_empty() {
                    break;
                }
                let mut items = Vec::with_capacity(MAX_TRANSACTION_ITEMS);
                for change in &group {
                    let mark = Update::builder()
                        .table_name(&self.table)
                        .key("pk", s(event_pk(&change.event.id)))
                        .key("sk", s(EVENT_SK))
                        .update_expression("SET counted = :yes")
                        .condition_expression("attribute_exists(pk) AND attribute_not_exists(counted)")
                        .expression_attribute_values(":yes", AttributeValue::Bool(true))
                        .build()
                        .map_err(request_bug)?;
                    items.push(TransactWriteItem::builder().update(mark).build());
                }
                let mut by_campaign: std::collections::BTreeMap<&CampaignId, CounterDeltas> = std::collections::BTreeMap::new();
                for change in &group {
                    by_campaign.entry(&change.campaign).or_default().merge(&change.deltas);
                }
                for (campaign, deltas) in &by_campaign {
                    items.extend(self.counter_updates(campaign, deltas)?);
                }
                match self.transact(items).await? {
                    Ok(()) => {
                        counted += group.len();
                        break;
                    }
                    Err(reasons) => {
                        let before = group.len();
                        let mut index = 0;
                        group.retain(|_| {
                            let keep = !condition_failed_at(&reasons, index);
                            index += 1;
                            keep
                        });
                        if group.len() == before {
                            return Err(Cancelled { reasons }.into_store_error());
                        }
                    }
                }
            }
        }
        Ok(counted)
    }

    /// One ADD per counter bucket, as transaction items (a transaction may touch an item once).
    fn counter_updates(&self, campaign: &CampaignId, deltas: &CounterDeltas) -> Result<Vec<TransactWriteItem>, StoreError> {
        deltas
            .buckets()
            .map(|(bucket, fields)| {
                let expression = (0..fields.len()).map(|i| format!("#f{i} :d{i}")).collect::<Vec<_>>().join(", ");
                let mut update = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(counter_partition(campaign, bucket)))
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

    /// Deletes a counter item whose every count is zero, under the condition that each still is.
    async fn delete_if_zero(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        let Some(item) = self.get(pk.to_owned(), sk).await? else { return Ok(()) };
        let counts: Vec<&String> = item.iter().filter(|(name, v)| v.as_n().is_ok() && name.as_str() != "expires_at").map(|(name, _)| name).collect();
        if counts.iter().any(|name| get_n(&item, name) != Some(0)) {
            return Ok(());
        }
        let mut delete = self.client.delete_item().table_name(&self.table).key("pk", s(pk)).key("sk", s(sk));
        // Each count it has still zero, and none of a segment bucket's others arrived since the
        // read (the stream consumer may ADD one at any moment).
        let absent: Vec<&str> = [closeloop_core::counters::INVITED, "promoters", "passives", "detractors"]
            .into_iter()
            .filter(|f| !counts.iter().any(|c| c.as_str() == *f))
            .collect();
        let mut condition: Vec<String> = (0..counts.len()).map(|i| format!("#c{i} = :zero")).collect();
        condition.extend((0..absent.len()).map(|i| format!("attribute_not_exists(#a{i})")));
        for (i, name) in counts.iter().enumerate() {
            delete = delete.expression_attribute_names(format!("#c{i}"), name.as_str());
        }
        for (i, name) in absent.iter().enumerate() {
            delete = delete.expression_attribute_names(format!("#a{i}"), *name);
        }
        if !counts.is_empty() {
            delete = delete.expression_attribute_values(":zero", n(0));
        }
        if !condition.is_empty() {
            delete = delete.condition_expression(condition.join(" AND "));
        }
        match delete.send().await {
            Ok(_) => Ok(()),
            // Counted again meanwhile: it names someone who is not erased, and stays.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Runs a transaction; `Ok(false)` when a condition failed.
    async fn transact_if(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        Ok(self.transact(items).await?.is_ok())
    }

    /// Runs a transaction, retrying with jittered backoff while DynamoDB cancels it for a
    /// conflict with another transaction on one of its items (or throttles it), so concurrent
    /// writers on one item wait a few milliseconds instead of failing. A failed condition is
    /// not retried: `Ok(Err(reasons))` gives the reasons, item by item.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Result<(), Vec<CancellationReason>>, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let mut attempt = 0;
        // A retry after an unclear outcome (a timeout: it may have committed) reuses the token, so
        // DynamoDB recognises it instead of applying it twice; a cancelled transaction certainly
        // did not commit, so its retry is a new request with a new token.
        let mut token = uuid::Uuid::new_v4().simple().to_string();
        loop {
            let error = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(&token)
                .send()
                .await
            {
                Ok(_) => return Ok(Ok(())),
                Err(e) => match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                        let reasons = c.cancellation_reasons().to_vec();
                        if reasons.iter().any(|r| r.code() == Some("ConditionalCheckFailed")) {
                            return Ok(Err(reasons));
                        }
                        token = uuid::Uuid::new_v4().simple().to_string();
                        Cancelled { reasons }.into_store_error()
                    }
                    Some(TransactWriteItemsError::TransactionInProgressException(_)) => StoreError::unavailable(e),
                    _ => unavailable(e),
                },
            };
            attempt += 1;
            if !error.is_retryable() || attempt >= self.retry.attempts {
                return Err(error);
            }
            self.retry.pause(&self.client, attempt).await;
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

    /// The operations that create one invitation, in this order: Put `INV` (must not exist),
    /// a ConditionCheck per contact key that it is not suppressed, per key a conditional Put of
    /// `LAST` (the throttle) and a Put of the contact link, and the event with its counter deltas.
    fn invitation_operations(&self, inv: &Invitation, throttle_since: Timestamp, erasure: &ErasureKey) -> Result<Vec<TransactWriteItem>, StoreError> {
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
        for key in &erasure.with_hashes(&keys) {
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
                    .put(Put::builder().table_name(&self.table).set_item(Some(contact_link_item(key, &inv.id))).build().map_err(request_bug)?)
                    .build(),
            );
        }
        items.push(self.change_put(&Change::invitation_created(inv))?);
        Ok(items)
    }

    /// The Put of an event item with its counter deltas; it must not exist yet.
    fn change_put(&self, change: &Change) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(change_item(change)?))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map_err(request_bug)?,
            )
            .build())
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

/// An update with the progress kept beside it (the body's own is the one it was created with).
fn stored_update(item: &HashMap<String, AttributeValue>) -> Result<closeloop_core::updates::CampaignUpdate, StoreError> {
    let mut update: closeloop_core::updates::CampaignUpdate = body(item)?;
    update.progress = serde_json::from_str(get_s(item, "progress")?).map_err(StoreError::corrupt)?;
    Ok(update)
}

fn status_item(campaign: &CampaignId, status: &closeloop_core::lifecycle::CampaignStatus) -> Result<HashMap<String, AttributeValue>, StoreError> {
    Ok(HashMap::from([
        ("pk".to_owned(), s(campaign_partition(campaign))),
        ("sk".to_owned(), s(STATUS_SK)),
        ("state".to_owned(), s(status.state.as_str())),
        ("body".to_owned(), s(serde_json::to_string(status).map_err(StoreError::corrupt)?)),
    ]))
}

#[async_trait]
impl Store for DynamoStore {
    async fn put_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        self.client.put_item().table_name(&self.table).set_item(Some(campaign_item(campaign)?)).send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn save_campaign(
        &self,
        campaign: &Campaign,
        change: &closeloop_core::changelog::CampaignChange,
        first_status: Option<&closeloop_core::lifecycle::CampaignStatus>,
    ) -> Result<bool, StoreError> {
        // Both items in one transaction: the entry's put fails if another save took the
        // revision; the campaign's if it exists when it should not, or not when it should.
        let log = Put::builder().table_name(&self.table).set_item(Some(change_log_item(change)?)).condition_expression("attribute_not_exists(pk)");
        let exists = if change.kind.creates() { "attribute_not_exists(pk)" } else { "attribute_exists(pk)" };
        let put = Put::builder().table_name(&self.table).set_item(Some(campaign_item(campaign)?)).condition_expression(exists);
        let mut items = vec![
            TransactWriteItem::builder().put(log.build().map_err(request_bug)?).build(),
            TransactWriteItem::builder().put(put.build().map_err(request_bug)?).build(),
        ];
        // The next revision exactly: the one before must exist (revisions have no gaps, so with
        // this one not taken it is the latest), or a forged number could skip ahead.
        if change.revision > 1 {
            let previous = ConditionCheck::builder()
                .table_name(&self.table)
                .key("pk", s(changes_partition(&campaign.id)))
                .key("sk", s(change_sk(change.revision - 1)))
                .condition_expression("attribute_exists(pk)")
                .build()
                .map_err(request_bug)?;
            items.push(TransactWriteItem::builder().condition_check(previous).build());
        }
        if let Some(status) = first_status.filter(|_| change.kind.creates()) {
            let item = status_item(&campaign.id, status)?;
            items.push(TransactWriteItem::builder().put(Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(request_bug)?).build());
        }
        self.transact_if(items).await
    }

    async fn append_event(&self, change: &Change) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(change_item(change)?))
            .condition_expression("attribute_not_exists(pk)");
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn campaign_changes(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<closeloop_core::changelog::CampaignChange>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :rev)")
            .expression_attribute_values(":p", s(changes_partition(campaign)))
            .expression_attribute_values(":rev", s("REV#"))
            .scan_index_forward(false)
            // Read right before a save (the revision it follows): never a stale one.
            .consistent_read(true)
            .limit(limit.clamp(1, 100) as i32)
            .send()
            .await
            .map_err(unavailable)?;
        out.items.unwrap_or_default().iter().take(limit).map(|item| body(item)).collect()
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError> {
        self.get(CAMPAIGNS_PK.to_owned(), &campaign_sk(id)).await?.map(|item| body(&item)).transpose()
    }

    async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let items = self.query_all(None, "pk = :p", vec![(":p", s(CAMPAIGNS_PK))], None).await?;
        items.iter().map(body).collect()
    }

    async fn create_invitations(&self, invitations: &[Invitation], throttle_since: Timestamp) -> Result<Vec<CreateOutcome>, StoreError> {
        let mut outcomes: Vec<Option<CreateOutcome>> = vec![None; invitations.len()];
        let erasure = self.erasure_key().await?;
        // Several invitations share a transaction (10 operations each for a contact with email
        // and phone), so a chunk of a launch is a few calls instead of one per contact. A
        // transaction may touch an item once: a contact twice in one chunk waits for the next
        // round, where the first one's `LAST` item throttles it, as in a sequential write.
        let mut remaining: Vec<usize> = (0..invitations.len()).collect();
        while !remaining.is_empty() {
            let mut group: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
            let mut items: Vec<TransactWriteItem> = Vec::new();
            let mut keys_in_group = std::collections::HashSet::new();
            let mut later = Vec::new();
            for &index in &remaining {
                let inv = &invitations[index];
                let keys = inv.contact.keys();
                let operations = self.invitation_operations(inv, throttle_since, &erasure)?;
                let clashes = keys.iter().any(|k| keys_in_group.contains(k.as_str()));
                if clashes || items.len() + operations.len() > MAX_TRANSACTION_ITEMS {
                    later.push(index);
                    continue;
                }
                keys_in_group.extend(keys.iter().map(|k| k.as_str().to_owned()));
                let first = items.len();
                items.extend(operations);
                group.push((index, first..items.len()));
            }
            match self.transact(items).await? {
                Ok(()) => {
                    for (index, _) in &group {
                        outcomes[*index] = Some(CreateOutcome::Created);
                    }
                }
                Err(reasons) => {
                    // Only the invitations whose own conditions failed get an outcome; the rest
                    // were cancelled with them and go again.
                    for (index, range) in &group {
                        let failed = |i: usize| condition_failed_at(&reasons, i);
                        let inv = &invitations[*index];
                        // Each key and its erased hash.
                        let checks = 2 * inv.contact.keys().len();
                        let created_before = failed(range.start);
                        let suppressed = (range.start + 1..range.start + 1 + checks).any(failed);
                        let throttled = range.clone().any(failed);
                        if created_before {
                            outcomes[*index] = Some(CreateOutcome::AlreadyCreated);
                        } else if suppressed {
                            outcomes[*index] = Some(CreateOutcome::Suppressed);
                        } else if throttled {
                            outcomes[*index] = Some(CreateOutcome::Throttled);
                        } else {
                            later.push(*index);
                        }
                    }
                }
            }
            later.sort_unstable();
            remaining = later;
        }
        Ok(outcomes.into_iter().map(|o| o.unwrap_or(CreateOutcome::Throttled)).collect())
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

    async fn rows_page(&self, query: RowQuery<'_>) -> Result<RowPage, StoreError> {
        match query.owner {
            // One BatchGetItem (100 keys) holds an owner's page of answers: two requests a page.
            Some(owner) => self.owner_page(query, owner, query.limit.clamp(1, 100)).await,
            None => self.campaign_page(query, query.limit.clamp(1, PAGE as usize / 2 - 1)).await,
        }
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
            let mut partitions = vec![counter_partition(campaign, prefix)];
            if segment_field(prefix).is_none() && "seg\u{1f}".starts_with(prefix.as_str()) {
                // Every field's values: one partition per field the `dims` bucket lists.
                let dims = self.get(campaign_partition(campaign), &counter_sk(closeloop_core::counters::DIMENSIONS)).await?;
                let fields = dims.iter().flat_map(|item| item.keys()).filter(|name| *name != "pk" && *name != "sk");
                partitions.extend(fields.map(|field| counter_partition(campaign, &format!("seg\u{1f}{field}\u{1f}"))));
            }
            for partition in partitions {
                let values = vec![(":p", s(partition)), (":counter", s(sk_prefix.clone()))];
                items.extend(self.query_all(None, "pk = :p AND begins_with(sk, :counter)", values, None).await?);
            }
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

    async fn record_open(&self, invitation: &InvitationId, campaign: &CampaignId, at: Timestamp) -> Result<bool, StoreError> {
        // One write, no read: the condition makes it the first open of an existing invitation.
        let mark = Update::builder()
            .table_name(&self.table)
            .key("pk", s(invitation_pk(invitation)))
            .key("sk", s(INVITATION_SK))
            .update_expression("SET opened_at = :at")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(opened_at)")
            .expression_attribute_values(":at", n(at.millis()))
            .build()
            .map_err(request_bug)?;
        let change = Change::page_opened(invitation, campaign, at);
        self.transact_if(vec![TransactWriteItem::builder().update(mark).build(), self.change_put(&change)?]).await
    }

    async fn campaign_and_answer(&self, campaign: &CampaignId, invitation: &InvitationId) -> Result<closeloop_core::ports::SurveyReads, StoreError> {
        let items = self
            .batch_get(vec![
                item_key(CAMPAIGNS_PK.to_owned(), campaign_sk(campaign)),
                item_key(campaign_partition(campaign), STATUS_SK.to_owned()),
                item_key(invitation_pk(invitation), ANSWER_SK.to_owned()),
            ])
            .await?;
        let mut found = closeloop_core::ports::SurveyReads::default();
        for item in &items {
            match get_s(item, "sk")? {
                ANSWER_SK => found.answer = Some(body(item)?),
                STATUS_SK => found.status = Some(body(item)?),
                _ => found.campaign = Some(body(item)?),
            }
        }
        Ok(found)
    }

    async fn answer(&self, invitation: &InvitationId) -> Result<Option<Answer>, StoreError> {
        self.get(invitation_pk(invitation), ANSWER_SK).await?.map(|item| body(&item)).transpose()
    }

    async fn record_answer(&self, answer: &Answer, event: &Event, deltas: &CounterDeltas) -> Result<(), StoreError> {
        let change = Change { event: event.clone(), campaign: answer.campaign_id.clone(), deltas: deltas.clone() };
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
            // An answer that raced an erasure is refused: the invitation is no one's any more.
            .condition_expression("attribute_exists(pk) AND NOT begins_with(link_token, :erased)")
            .expression_attribute_values(":erased", s("erased-"))
            .expression_attribute_values(":first", n(answer.first_answered_at.millis()))
            .build()
            .map_err(request_bug)?;
        // Items of this invitation only: the campaign's counters are the stream
        // consumer's, so a burst of answers to one campaign never conflicts on them.
        let version = Put::builder().table_name(&self.table).set_item(Some(answer_version_item(answer)?)).build().map_err(request_bug)?;
        let items = vec![
            TransactWriteItem::builder().put(put.build().map_err(request_bug)?).build(),
            TransactWriteItem::builder().update(mark_answered).build(),
            self.change_put(&change)?,
            TransactWriteItem::builder().put(version).build(),
        ];
        match self.transact(items).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Conflict),
            // Another write to this invitation at the same moment: the caller reads and decides again.
            Err(e) if errors::is_transaction_conflict(&e) => Err(StoreError::Conflict),
            Err(e) => Err(e),
        }
    }

    async fn pending_events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let items = self.query_work(PENDING_EVENT, None, limit).await?;
        items.iter().map(|item| event_from_item(item).ok_or_else(|| StoreError::corrupt("malformed event item"))).collect()
    }

    async fn complete_event(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.update_unless_done(
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(event_pk(id)))
                .key("sk", s(EVENT_SK))
                .update_expression("SET done_at = :at REMOVE gsi1pk, gsi1sk")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(done_at)")
                .expression_attribute_values(":at", n(at.millis())),
        )
        .await
    }

    async fn campaign_status(&self, campaign: &CampaignId) -> Result<Option<closeloop_core::lifecycle::CampaignStatus>, StoreError> {
        self.get(campaign_partition(campaign), STATUS_SK).await?.map(|item| body(&item)).transpose()
    }

    async fn set_campaign_status(
        &self,
        campaign: &CampaignId,
        status: &closeloop_core::lifecycle::CampaignStatus,
        expected: closeloop_core::lifecycle::CampaignState,
    ) -> Result<bool, StoreError> {
        let item = status_item(campaign, status)?;
        // A campaign never changed is active.
        let condition = if expected == closeloop_core::lifecycle::CampaignState::Active {
            "attribute_not_exists(pk) OR #state = :expected"
        } else {
            "#state = :expected"
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":expected", s(expected.as_str()));
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn last_invited(&self, keys: &[ContactKey]) -> Result<HashMap<ContactKey, Timestamp>, StoreError> {
        let mut unique: Vec<&ContactKey> = keys.iter().collect();
        unique.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        unique.dedup();
        let items = self.batch_get(unique.iter().map(|key| item_key(contact_pk(key), LAST_INVITED_SK.to_owned())).collect()).await?;
        let mut last = HashMap::new();
        for item in &items {
            let Some(key) = get_s(item, "pk")?.strip_prefix("CONTACT#") else { continue };
            if let Some(at) = get_n(item, "invited_at") {
                last.insert(ContactKey::from_stored(key.to_owned()), Timestamp::from_millis(at));
            }
        }
        Ok(last)
    }

    async fn hold_invitation(&self, campaign: &CampaignId, invitation: &InvitationId, at: Timestamp) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(held_pk(campaign))),
            ("sk".to_owned(), s(invitation.0.as_str())),
            ("held_at".to_owned(), n(at.millis())),
        ]);
        // Held twice is held once: the first time stands.
        self.put_if(item, "attribute_not_exists(pk)").await.map(|_| ())
    }

    async fn held_invitations(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<InvitationId>, StoreError> {
        let items = self.query_all(None, "pk = :p", vec![(":p", s(held_pk(campaign)))], Some(limit)).await?;
        items.iter().take(limit).map(|item| Ok(InvitationId(get_s(item, "sk")?.to_owned()))).collect()
    }

    async fn held_invitations_after(&self, campaign: &CampaignId, after: &InvitationId, limit: usize) -> Result<Vec<InvitationId>, StoreError> {
        let items = self.query_all(None, "pk = :p AND sk > :after", vec![(":p", s(held_pk(campaign))), (":after", s(after.0.as_str()))], Some(limit)).await?;
        items.iter().take(limit).map(|item| Ok(InvitationId(get_s(item, "sk")?.to_owned()))).collect()
    }

    async fn release_invitation(&self, campaign: &CampaignId, invitation: &InvitationId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(held_pk(campaign)))
            .key("sk", s(invitation.0.as_str()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn complete_events(&self, ids: &[String], at: Timestamp) -> Result<(), StoreError> {
        // A transaction names an item once.
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort_unstable();
        unique.dedup();
        // Up to 100 in one request instead of one each (the stream consumer's batch). Completing
        // twice only moves `done_at`; an event that is not there cancels the transaction, and that
        // part goes one at a time.
        for chunk in unique.chunks(100) {
            let items = chunk
                .iter()
                .map(|id| {
                    let update = Update::builder()
                        .table_name(&self.table)
                        .key("pk", s(event_pk(id)))
                        .key("sk", s(EVENT_SK))
                        .update_expression("SET done_at = :at REMOVE gsi1pk, gsi1sk")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":at", n(at.millis()))
                        .build()
                        .map_err(request_bug)?;
                    Ok(TransactWriteItem::builder().update(update).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            if self.transact(items).await?.is_err() {
                for id in chunk {
                    self.complete_event(id, at).await?;
                }
            }
        }
        Ok(())
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
        // An erased person stays on the list as a hash only: a late bounce or a redelivered
        // unsubscribe does not bring the address back.
        if !key.as_str().starts_with(privacy::ERASED_KEY_PREFIX) {
            let hashed = self.erasure_key().await?.hash(key);
            if self.get(contact_pk(&hashed), SUPPRESSED_SK).await?.is_some() {
                return Ok(false);
            }
        }
        let newly = self.put_if(suppression_item(key, reason, at)?, "attribute_not_exists(pk)").await?;
        if self.defer_suppression_marks {
            // Sending already checks `is_suppressed`; the marks (reminders off, counters) follow
            // from the stream, which calls this again on a store that marks.
            return Ok(newly);
        }
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
                let change = Change::invitation_suppressed(&id, &inv.campaign_id, reason, at);
                let items = vec![TransactWriteItem::builder().update(mark).build(), self.change_put(&change)?];
                if !self.transact_if(items).await? {
                    self.clear_reminder(&id.0).await?;
                }
            }
        }
        Ok(newly)
    }

    /// One BatchGetItem for the keys and their erased hashes: one subrequest on the Worker.
    async fn is_suppressed(&self, keys: &[ContactKey]) -> Result<bool, StoreError> {
        Ok(self.are_suppressed(&[keys.to_vec()]).await?.first().copied().unwrap_or(false))
    }

    /// One BatchGetItem per 100 distinct contact keys, however many people.
    async fn are_suppressed(&self, people: &[Vec<ContactKey>]) -> Result<Vec<bool>, StoreError> {
        let erasure = self.erasure_key().await?;
        let people: Vec<Vec<ContactKey>> = people.iter().map(|keys| erasure.with_hashes(keys)).collect();
        let mut unique = std::collections::HashSet::new();
        let keys = people
            .iter()
            .flatten()
            .filter(|key| unique.insert(key.as_str()))
            .map(|key| item_key(contact_pk(key), SUPPRESSED_SK.to_owned()))
            .collect();
        let mut suppressed = std::collections::HashSet::new();
        for item in self.batch_get(keys).await? {
            suppressed.insert(get_s(&item, "pk")?.to_owned());
        }
        Ok(people.iter().map(|keys| keys.iter().any(|key| suppressed.contains(&contact_pk(key)))).collect())
    }

    async fn due_reminders(&self, at: Timestamp, limit: usize) -> Result<Vec<Invitation>, StoreError> {
        let items = self.query_work(DUE_REMINDER, Some(at), limit).await?;
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
            // Nor an invitation erased since its reminder was read.
            Some(next) => update
                .update_expression("SET reminders_sent = :sent, next_reminder_at = :next, gsi1pk = :due, gsi1sk = :order")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(answered_at) AND NOT begins_with(link_token, :erased)")
                .expression_attribute_values(":erased", s("erased-"))
                .expression_attribute_values(":next", n(next.millis()))
                .expression_attribute_values(":due", s(work_partition(DUE_REMINDER, &invitation.0)))
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
        let click = || -> Result<TransactWriteItem, StoreError> {
            Ok(TransactWriteItem::builder()
                .put(Put::builder().table_name(&self.table).set_item(Some(click_item(invitation, site, at))).build().map_err(request_bug)?)
                .build())
        };
        let count = |first: bool| -> Result<TransactWriteItem, StoreError> {
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(invitation_pk(invitation)))
                .key("sk", s(INVITATION_SK))
                .expression_attribute_values(":one", n(1));
            let update = if first {
                update
                    .update_expression("SET first_review_click_at = :at ADD review_clicks :one")
                    .condition_expression("attribute_exists(pk) AND attribute_not_exists(first_review_click_at) AND (attribute_not_exists(review_clicks) OR review_clicks = :zero)")
                    .expression_attribute_values(":at", n(at.millis()))
                    .expression_attribute_values(":zero", n(0))
            } else {
                update.update_expression("ADD review_clicks :one").condition_expression("attribute_exists(pk)")
            };
            Ok(TransactWriteItem::builder().update(update.build().map_err(request_bug)?).build())
        };
        let Some(inv) = self.invitation_item(invitation).await? else {
            return Ok(()); // no such invitation: nothing to record, as on SQLite
        };
        // The first click counts a review clicker: its event is written with the click, in one
        // transaction, so the count cannot drift from the clicks.
        let first = Change::first_review_click(invitation, &inv.campaign_id, site, at);
        if self.transact(vec![count(true)?, click()?, self.change_put(&first)?]).await?.is_ok() {
            return Ok(());
        }
        match self.transact(vec![count(false)?, click()?]).await? {
            Ok(()) => Ok(()),
            Err(reasons) => Err(Cancelled { reasons }.into_store_error()),
        }
    }

    async fn open_case(&self, case: &FollowUpCase) -> Result<bool, StoreError> {
        self.put_if(case_item(case)?, "attribute_not_exists(pk)").await
    }

    async fn case(&self, invitation: &InvitationId) -> Result<Option<FollowUpCase>, StoreError> {
        self.get(invitation_pk(invitation), CASE_SK).await?.map(|item| case_from(&item)).transpose()
    }

    async fn overdue_cases(&self, at: Timestamp, limit: usize) -> Result<Vec<FollowUpCase>, StoreError> {
        let items = self.query_work(OVERDUE_CASE, Some(at), limit).await?;
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
                vec![(":c", s(cases_partition(campaign))), (":prefix", s(prefix))],
                None,
            )
            .await?;
        let mut cases = items.iter().map(case_from).collect::<Result<Vec<_>, _>>()?;
        cases.sort_by(|a, b| (a.due_at, &a.invitation_id).cmp(&(b.due_at, &b.invitation_id)));
        Ok(cases)
    }

    async fn add_case_note(&self, invitation: &InvitationId, note: &CaseNote) -> Result<bool, StoreError> {
        self.change_case(invitation, |case| case.add_note(note))
        .await
    }

    async fn close_case(&self, invitation: &InvitationId, closure: &CaseClosure) -> Result<bool, StoreError> {
        self.change_case(invitation, |case| case.close(closure))
        .await
    }

    async fn create_launch(&self, job: &LaunchJob) -> Result<LaunchJob, StoreError> {
        if self.put_if(launch_item(job, 0)?, "attribute_not_exists(pk)").await? {
            return Ok(job.clone());
        }
        self.launch(&job.id).await?.ok_or_else(|| StoreError::Conflict)
    }

    async fn count_events(&self, events: &[Event]) -> Result<usize, StoreError> {
        // Read again by key, strongly consistent: the work index may lag behind the table.
        let items = self.batch_get(events.iter().map(|e| item_key(event_pk(&e.id), EVENT_SK.to_owned())).collect()).await?;
        self.count_uncounted(&items).await
    }

    async fn launch(&self, id: &LaunchId) -> Result<Option<LaunchJob>, StoreError> {
        self.get(launch_pk(id), LAUNCH_SK).await?.map(|item| body(&item)).transpose()
    }

    async fn launches(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<LaunchJob>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(schema::CAMPAIGN_INDEX)
            .key_condition_expression("gsi2pk = :c AND begins_with(gsi2sk, :launch)")
            .expression_attribute_values(":c", s(launches_partition(campaign)))
            .expression_attribute_values(":launch", s("LAUNCH#"))
            .scan_index_forward(false);
        query = query.limit(limit.min(100) as i32);
        let out = query.send().await.map_err(unavailable)?;
        out.items.unwrap_or_default().iter().take(limit).map(|item| body(item)).collect()
    }

    async fn record_launch_chunk(&self, id: &LaunchId, chunk: u32, result: &ChunkResult, at: Timestamp) -> Result<Option<LaunchJob>, StoreError> {
        // Chunks finish in parallel (one `launch_chunk` invocation each): the job item is
        // updated under its version, and a marker item per chunk makes the count happen once.
        for _ in 0..20 {
            let Some(item) = self.get(launch_pk(id), LAUNCH_SK).await? else { return Ok(None) };
            let mut job: LaunchJob = body(&item)?;
            let version = get_n(&item, "version").unwrap_or(0);
            job.add_chunk(chunk, result, at);
            let marker = Put::builder()
                .table_name(&self.table)
                .set_item(Some(HashMap::from([("pk".to_owned(), s(launch_pk(id))), ("sk".to_owned(), s(format!("CHUNK#{chunk:06}")))])))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(request_bug)?;
            let update = Put::builder()
                .table_name(&self.table)
                .set_item(Some(launch_item(&job, version + 1)?))
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(version))
                .build()
                .map_err(request_bug)?;
            match self.transact(vec![TransactWriteItem::builder().put(marker).build(), TransactWriteItem::builder().put(update).build()]).await? {
                Ok(()) => return Ok(Some(job)),
                Err(reasons) if condition_failed_at(&reasons, 0) => {
                    // Recorded before; a chunk given up on may have been written by a redrive since.
                    let Some(item) = self.get(launch_pk(id), LAUNCH_SK).await? else { return Ok(None) };
                    let mut job: LaunchJob = body(&item)?;
                    let version = get_n(&item, "version").unwrap_or(0);
                    if !job.recover_chunk(chunk, result, at) {
                        return Ok(Some(job));
                    }
                    let update = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(launch_item(&job, version + 1)?))
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", n(version))
                        .build()
                        .map_err(request_bug)?;
                    match self.transact(vec![TransactWriteItem::builder().put(update).build()]).await? {
                        Ok(()) => return Ok(Some(job)),
                        Err(_) => continue, // the job moved meanwhile: read it again
                    }
                }
                Err(_) => continue, // another chunk moved the job first: read it again
            }
        }
        Err(StoreError::Conflict)
    }

    async fn invitations_with_answers(&self, ids: &[InvitationId]) -> Result<Vec<(Option<Invitation>, Option<Answer>)>, StoreError> {
        let mut unique = std::collections::HashSet::new();
        let keys = ids
            .iter()
            .filter(|id| unique.insert(&id.0))
            .flat_map(|id| [INVITATION_SK, ANSWER_SK].map(|sk| item_key(invitation_pk(id), sk.to_owned())))
            .collect();
        let mut items: HashMap<(String, String), HashMap<String, AttributeValue>> = HashMap::new();
        for item in self.batch_get(keys).await? {
            let key = (get_s(&item, "pk")?.to_owned(), get_s(&item, "sk")?.to_owned());
            items.insert(key, item);
        }
        ids.iter()
            .map(|id| {
                let invitation = items.get(&(invitation_pk(id), INVITATION_SK.to_owned())).map(invitation_from).transpose()?;
                let answer = items.get(&(invitation_pk(id), ANSWER_SK.to_owned())).map(|item| body(item)).transpose()?;
                Ok((invitation, answer))
            })
            .collect()
    }

    async fn apply_counters(&self, changes: &[Change]) -> Result<usize, StoreError> {
        self.count_changes(changes).await
    }

    async fn settle_counters(&self) -> Result<usize, StoreError> {
        // Every event still on the work index (handled ones leave it), counted or not.
        let items = self.query_work(PENDING_EVENT, None, usize::MAX).await?;
        self.count_uncounted(&items).await
    }

    async fn accounts(&self) -> Result<Vec<closeloop_core::accounts::Account>, StoreError> {
        let items = self.query_all(None, "pk = :p", vec![(":p", s(ACCOUNTS_PK))], None).await?;
        items.iter().map(body).collect()
    }

    async fn account(&self, name: &str) -> Result<Option<closeloop_core::accounts::Account>, StoreError> {
        self.get(ACCOUNTS_PK.to_owned(), &account_sk(name)).await?.map(|item| body(&item)).transpose()
    }

    async fn put_account(&self, account: &closeloop_core::accounts::Account) -> Result<bool, StoreError> {
        let expected = account.version;
        let mut stored = account.clone();
        stored.version = expected + 1;
        let item = HashMap::from([
            ("pk".to_owned(), s(ACCOUNTS_PK)),
            ("sk".to_owned(), s(account_sk(&stored.name))),
            ("version".to_owned(), n(i64::from(stored.version))),
            ("body".to_owned(), s(serde_json::to_string(&stored).map_err(StoreError::corrupt)?)),
        ]);
        let put = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v").expression_attribute_values(":v", n(i64::from(expected)))
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn sign_in_failures(&self, client: &str) -> Result<Option<closeloop_core::accounts::SignInFailures>, StoreError> {
        self.get(sign_in_pk(client), SIGN_IN_SK).await?.map(|item| body(&item)).transpose()
    }

    async fn set_sign_in_failures(&self, client: &str, failures: Option<&closeloop_core::accounts::SignInFailures>) -> Result<(), StoreError> {
        match failures {
            Some(failures) => {
                // Gone by TTL once forgotten anyway, so the table keeps no count of old guessers.
                let expires = (failures.last_at.millis() + closeloop_core::accounts::FORGET_AFTER_MS) / 1000 + 1;
                let item = HashMap::from([
                    ("pk".to_owned(), s(sign_in_pk(client))),
                    ("sk".to_owned(), s(SIGN_IN_SK)),
                    ("body".to_owned(), s(serde_json::to_string(failures).map_err(StoreError::corrupt)?)),
                    ("expires_at".to_owned(), n(expires)),
                ]);
                self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(unavailable)?;
            }
            None => {
                self.client.delete_item().table_name(&self.table).key("pk", s(sign_in_pk(client))).key("sk", s(SIGN_IN_SK)).send().await.map_err(unavailable)?;
            }
        }
        Ok(())
    }

    async fn enqueue_webhooks(&self, deliveries: &[closeloop_core::webhooks::WebhookDelivery]) -> Result<usize, StoreError> {
        // A few per event (one per endpoint, at most 10): conditional puts, each its own.
        let mut inserted = 0;
        for delivery in deliveries {
            if self.put_if(webhook_item(delivery)?, "attribute_not_exists(pk)").await? {
                inserted += 1;
            }
        }
        Ok(inserted)
    }

    async fn due_webhooks(&self, at: Timestamp, limit: usize) -> Result<Vec<closeloop_core::webhooks::WebhookDelivery>, StoreError> {
        let items = self.query_work(DUE_WEBHOOK, Some(at), limit).await?;
        items.iter().map(body).collect()
    }

    async fn save_webhook(&self, delivery: &closeloop_core::webhooks::WebhookDelivery) -> Result<(), StoreError> {
        // The whole item again: a delivery no longer pending loses its work-index keys with it.
        self.put_if(webhook_item(delivery)?, "attribute_exists(pk)").await?;
        Ok(())
    }

    async fn webhook_log(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<closeloop_core::webhooks::WebhookDelivery>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :d)")
            .expression_attribute_values(":p", s(webhooks_pk(campaign)))
            .expression_attribute_values(":d", s("D#"))
            .scan_index_forward(false)
            .limit(limit.clamp(1, PAGE as usize) as i32)
            .send()
            .await
            .map_err(unavailable)?;
        out.items.unwrap_or_default().iter().map(body).collect()
    }

    async fn webhook(&self, campaign: &CampaignId, id: &str) -> Result<Option<closeloop_core::webhooks::WebhookDelivery>, StoreError> {
        self.get(webhooks_pk(campaign), &format!("D#{id}")).await?.as_ref().map(body).transpose()
    }

    async fn webhook_health(&self, campaign: &CampaignId, endpoint: &str) -> Result<Option<closeloop_core::webhooks::EndpointHealth>, StoreError> {
        self.get(webhooks_pk(campaign), &format!("E#{endpoint}")).await?.as_ref().map(body).transpose()
    }

    async fn set_webhook_health(&self, campaign: &CampaignId, endpoint: &str, health: &closeloop_core::webhooks::EndpointHealth) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(webhooks_pk(campaign))),
            ("sk".to_owned(), s(format!("E#{endpoint}"))),
            ("body".to_owned(), s(serde_json::to_string(health).map_err(StoreError::corrupt)?)),
        ]);
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn create_update(&self, update: &closeloop_core::updates::CampaignUpdate) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(updates_pk(&update.campaign_id))),
            ("sk".to_owned(), s(format!("U#{}", update.id))),
            ("body".to_owned(), s(serde_json::to_string(update).map_err(StoreError::corrupt)?)),
            ("progress".to_owned(), s(serde_json::to_string(&update.progress).map_err(StoreError::corrupt)?)),
        ]);
        self.put_if(item, "attribute_not_exists(pk)").await
    }

    async fn update(&self, campaign: &CampaignId, id: &closeloop_core::updates::UpdateId) -> Result<Option<closeloop_core::updates::CampaignUpdate>, StoreError> {
        self.get(updates_pk(campaign), &format!("U#{id}")).await?.as_ref().map(stored_update).transpose()
    }

    async fn updates(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<closeloop_core::updates::CampaignUpdate>, StoreError> {
        // A campaign has a few updates, not thousands: all of them, newest first.
        let items = self.query_all(None, "pk = :p AND begins_with(sk, :u)", vec![(":p", s(updates_pk(campaign))), (":u", s("U#"))], None).await?;
        let mut updates = items.iter().map(stored_update).collect::<Result<Vec<_>, _>>()?;
        updates.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        updates.truncate(limit);
        Ok(updates)
    }

    async fn save_update_progress(
        &self,
        campaign: &CampaignId,
        id: &closeloop_core::updates::UpdateId,
        progress: &closeloop_core::updates::UpdateProgress,
    ) -> Result<(), StoreError> {
        let progress = serde_json::to_string(progress).map_err(StoreError::corrupt)?;
        self.update_unless_done(
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(updates_pk(campaign)))
                .key("sk", s(format!("U#{id}")))
                .update_expression("SET progress = :p")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":p", s(progress)),
        )
        .await
    }

    async fn record_contact(&self, keys: &[ContactKey], at: Timestamp) -> Result<(), StoreError> {
        // The throttle's own item (`LAST`), moved forward only: an invitation's transaction
        // checks it as it checks an earlier invitation.
        for key in keys {
            self.update_unless_done(
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(contact_pk(key)))
                    .key("sk", s(LAST_INVITED_SK))
                    .update_expression("SET invited_at = :at")
                    .condition_expression("attribute_not_exists(invited_at) OR invited_at < :at")
                    .expression_attribute_values(":at", n(at.millis())),
            )
            .await?;
        }
        Ok(())
    }

    async fn append_audit(&self, entry: &closeloop_core::audit::AuditEntry) -> Result<(), StoreError> {
        // Zero-padded time, then this process's sequence: a query's key order is the order written
        // (within one process; entries of one millisecond from two processes interleave).
        static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sk = format!("{:015}#{sequence:012}#{}", entry.at.millis(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let item = HashMap::from([
            ("pk".to_owned(), s(AUDIT_PK)),
            ("sk".to_owned(), s(sk)),
            ("body".to_owned(), s(serde_json::to_string(entry).map_err(StoreError::corrupt)?)),
        ]);
        if self.put_if(item, "attribute_not_exists(pk)").await? {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn audit_log(&self, before: Option<&str>, limit: usize) -> Result<closeloop_core::audit::AuditPage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .limit(limit.clamp(1, PAGE as usize) as i32)
            .expression_attribute_values(":p", s(AUDIT_PK));
        query = match before {
            Some(cursor) => query.key_condition_expression("pk = :p AND sk < :before").expression_attribute_values(":before", s(cursor)),
            None => query.key_condition_expression("pk = :p"),
        };
        let out = query.send().await.map_err(unavailable)?;
        let items = out.items.unwrap_or_default();
        let entries = items.iter().map(body).collect::<Result<Vec<_>, _>>()?;
        let next = match (out.last_evaluated_key, items.last()) {
            (Some(_), Some(last)) => Some(get_s(last, "sk")?.to_owned()),
            _ => None,
        };
        Ok(closeloop_core::audit::AuditPage { entries, next })
    }

    async fn invitations_to_retain(&self, campaign: &CampaignId, created_before: Timestamp, limit: usize) -> Result<Vec<InvitationId>, StoreError> {
        let items = self
            .query_all(
                Some(schema::AGE_INDEX),
                "gsi4pk = :p AND gsi4sk < :before",
                vec![(":p", s(age_partition(campaign))), (":before", s(format!("{:015}#", created_before.millis())))],
                Some(limit.max(1)),
            )
            .await?;
        items.iter().map(|item| get_s(item, "pk").map(|pk| InvitationId(pk.trim_start_matches("INV#").to_owned()))).collect()
    }

    async fn erasure_key(&self) -> Result<ErasureKey, StoreError> {
        if let Some(key) = self.erasure.get() {
            return Ok(key.clone());
        }
        let stored = match self.get(META_PK.to_owned(), ERASURE_KEY_SK).await? {
            Some(item) => item,
            None => {
                // Two v4 UUIDs: 244 random bits from the platform's secure source. Whoever puts
                // first wins; everyone reads back the winner.
                let mut random = [0u8; 32];
                random[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                random[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                let item = HashMap::from([
                    ("pk".to_owned(), s(META_PK)),
                    ("sk".to_owned(), s(ERASURE_KEY_SK)),
                    ("value".to_owned(), s(ErasureKey::from_bytes(random).to_hex())),
                ]);
                self.put_if(item, "attribute_not_exists(pk)").await?;
                self.get(META_PK.to_owned(), ERASURE_KEY_SK).await?.ok_or_else(|| StoreError::unavailable(Malformed("erasure key vanished")))?
            }
        };
        let key = ErasureKey::from_hex(get_s(&stored, "value")?).ok_or_else(|| StoreError::corrupt(Malformed("erasure key")))?;
        Ok(self.erasure.get_or_init(|| key).clone())
    }

    async fn person_invitations(&self, keys: &[ContactKey]) -> Result<Vec<InvitationId>, StoreError> {
        let mut found: Vec<InvitationId> = Vec::new();
        for key in keys {
            let links =
                self.query_all(None, "pk = :p AND begins_with(sk, :inv)", vec![(":p", s(contact_pk(key))), (":inv", s("INV#"))], None).await?;
            for link in &links {
                if let Some(id) = get_s(link, "sk")?.strip_prefix("INV#") {
                    let id = InvitationId(id.to_owned());
                    if !found.contains(&id) {
                        found.push(id);
                    }
                }
            }
        }
        Ok(found)
    }

    async fn answer_versions(&self, invitation: &InvitationId) -> Result<Vec<Answer>, StoreError> {
        let items = self
            .query_all(None, "pk = :p AND begins_with(sk, :v)", vec![(":p", s(invitation_pk(invitation))), (":v", s(ANSWER_VERSION_PREFIX))], None)
            .await?;
        if items.is_empty() {
            return Ok(self.answer(invitation).await?.into_iter().collect());
        }
        items.iter().map(body).collect()
    }

    async fn suppressions(&self, keys: &[ContactKey]) -> Result<Vec<SuppressionRecord>, StoreError> {
        let items = self.batch_get(keys.iter().map(|k| item_key(contact_pk(k), SUPPRESSED_SK.to_owned())).collect()).await?;
        let mut found: Vec<SuppressionRecord> = Vec::new();
        for item in &items {
            if let Some(read) = suppression_from_item(item) {
                let (key, reason, at) = read?;
                found.push(SuppressionRecord { key, reason, at });
            }
        }
        // In the order asked, like the other stores.
        found.sort_by_key(|r| keys.iter().position(|k| *k == r.key));
        Ok(found)
    }

    async fn send_claims(&self, keys: &[String]) -> Result<Vec<Option<Timestamp>>, StoreError> {
        let items = self.batch_get(keys.iter().map(|k| item_key(format!("SEND#{k}"), SEND_SK.to_owned())).collect()).await?;
        let mut claimed: HashMap<String, Timestamp> = HashMap::new();
        for item in &items {
            let key = get_s(item, "pk")?.strip_prefix("SEND#").unwrap_or_default().to_owned();
            claimed.insert(key, get_n(item, "claimed_at").map(Timestamp::from_millis).ok_or_else(|| StoreError::corrupt(Malformed("claim time")))?);
        }
        Ok(keys.iter().map(|k| claimed.get(k).copied()).collect())
    }

    async fn erase_invitation(&self, id: &InvitationId, at: Timestamp) -> Result<bool, StoreError> {
        // Everything in the invitation's partition: the invitation, its answer and versions,
        // its case and its review clicks (which hold no personal data).
        let items = self.query_all(None, "pk = :p", vec![(":p", s(invitation_pk(id)))], None).await?;
        let Some(invitation) = items.iter().find(|i| get_s(i, "sk").is_ok_and(|sk| sk == INVITATION_SK)) else { return Ok(false) };
        let invitation = invitation_from(invitation)?;
        let erased = privacy::erase_invitation(&invitation, at);
        let answer: Option<Answer> = items.iter().find(|i| get_s(i, "sk").is_ok_and(|sk| sk == ANSWER_SK)).map(body).transpose()?;
        let campaign = self.campaign(&invitation.campaign_id).await?;
        // The invitation's own events carry counter deltas whose bucket names hold its CRM
        // values: counted first (so the move below is against counts that include them, and no
        // later count re-creates a bucket the move emptied), their deltas dropped after.
        let mut own_events = vec![format!("invitation-{}", id.0)];
        own_events.extend((1..=answer.as_ref().map_or(0, |a| a.version)).map(|v| format!("answer-{}-{v}", id.0)));
        let event_items = self.batch_get(own_events.iter().map(|e| item_key(event_pk(e), EVENT_SK.to_owned())).collect()).await?;
        self.count_uncounted(&event_items).await?;
        let deltas = privacy::erasure_deltas(campaign.as_ref(), &invitation, &erased, answer.as_ref());
        // Each write an Update of one item in the invitation's partition, which must exist.
        let update = |sk: &str, expression: &str, condition: &str, values: Vec<(&str, AttributeValue)>| -> Result<TransactWriteItem, StoreError> {
            let mut update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(invitation_pk(id)))
                .key("sk", s(sk))
                .update_expression(expression)
                .condition_expression(condition);
            for (name, value) in values {
                update = update.expression_attribute_values(name, value);
            }
            Ok(TransactWriteItem::builder().update(update.build().map_err(request_bug)?).build())
        };
        let mut writes = vec![update(
            INVITATION_SK,
            "SET body = :b, link_token = :t REMOVE next_reminder_at, gsi1pk, gsi1sk, gsi4pk, gsi4sk",
            "attribute_exists(pk)",
            vec![(":b", s(serde_json::to_string(&erased).map_err(StoreError::corrupt)?)), (":t", s(erased.token.as_str()))],
        )?];
        for item in &items {
            let sk = get_s(item, "sk")?;
            if sk == ANSWER_SK {
                // Only the version read: a newer answer written meanwhile makes this a conflict,
                // and the erasure reads again rather than leave that answer's comment.
                let answer: Answer = body(item)?;
                let erased_answer = serde_json::to_string(&privacy::erase_answer(&answer)).map_err(StoreError::corrupt)?;
                writes.push(update(sk, "SET body = :b", "version = :v", vec![(":b", s(erased_answer)), (":v", n(i64::from(answer.version)))])?);
            } else if sk.starts_with(ANSWER_VERSION_PREFIX) {
                let answer: Answer = body(item)?;
                let erased_answer = serde_json::to_string(&privacy::erase_answer(&answer)).map_err(StoreError::corrupt)?;
                writes.push(update(sk, "SET body = :b", "attribute_exists(pk)", vec![(":b", s(erased_answer))])?);
            } else if sk == CASE_SK {
                let case = case_from(item)?;
                let erased_case = serde_json::to_string(&privacy::erase_case(&case, at)).map_err(StoreError::corrupt)?;
                // Closed now: off the overdue index, so it never escalates.
                writes.push(update(sk, "SET body = :b REMOVE gsi1pk, gsi1sk", "attribute_exists(pk)", vec![(":b", s(erased_case))])?);
            }
        }
        for key in invitation.contact.keys() {
            writes.push(
                TransactWriteItem::builder()
                    .delete(
                        aws_sdk_dynamodb::types::Delete::builder()
                            .table_name(&self.table)
                            .key("pk", s(contact_pk(&key)))
                            .key("sk", s(format!("INV#{}", id.0)))
                            .build()
                            .map_err(request_bug)?,
                    )
                    .build(),
            );
        }
        // The counts move with the invitation's rewrite, in its transaction, right behind it
        // (the rewrite is the mark that they moved: a repeat computes no move from an erased
        // invitation). Only an invitation with dozens of answer versions needs a second one,
        // which holds versions only, safe to write again.
        let moves = self.counter_updates(&invitation.campaign_id, &deltas)?;
        writes.splice(1..1, moves);
        let mut chunks = writes.chunks(MAX_TRANSACTION_ITEMS);
        if let Some(first) = chunks.next() {
            if let Err(reasons) = self.transact(first.to_vec()).await? {
                // An item went between the read and the write: read and decide again.
                tracing::warn!(reasons = reasons.len(), "erasure raced another write");
                return Err(StoreError::Conflict);
            }
        }
        for chunk in chunks {
            if self.transact(chunk.to_vec()).await?.is_err() {
                return Err(StoreError::Conflict);
            }
        }
        // A counter item left at zero would still carry the value in its name.
        for (bucket, _) in deltas.buckets().filter(|(_, fields)| fields.values().any(|d| *d < 0)) {
            self.delete_if_zero(&counter_partition(&invitation.campaign_id, bucket), &counter_sk(bucket)).await?;
        }
        for item in &event_items {
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(get_s(item, "pk")?))
                .key("sk", s(EVENT_SK))
                .update_expression("REMOVE deltas")
                .condition_expression("attribute_exists(pk)");
            match update.send().await {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(true)
    }

    async fn forget_contact_keys(&self, keys: &[ContactKey], at: Timestamp) -> Result<usize, StoreError> {
        let erasure = self.erasure_key().await?;
        let mut added = 0;
        for key in keys.iter().filter(|k| !k.as_str().starts_with(privacy::ERASED_KEY_PREFIX)) {
            let existing = self.get(contact_pk(key), SUPPRESSED_SK).await?;
            let reason = match existing.as_ref().and_then(suppression_from_item) {
                Some(read) => read?.1,
                None => SuppressionReason::Erased,
            };
            if self.put_if(suppression_item(&erasure.hash(key), reason, at)?, "attribute_not_exists(pk)").await? {
                added += 1;
            }
            for sk in [SUPPRESSED_SK, LAST_INVITED_SK] {
                self.client.delete_item().table_name(&self.table).key("pk", s(contact_pk(key))).key("sk", s(sk)).send().await.map_err(unavailable)?;
            }
        }
        Ok(added)
    }
}

/// The key condition of a page: after the cursor, if any. (A key condition takes one comparison
/// on the sort key, so the end of an export's part is checked on the items.)
fn range_condition(partition: &str, sort_key: &str, query: RowQuery<'_>, values: &mut Vec<(&str, AttributeValue)>) -> String {
    match query.after {
        Some(after) => {
            values.push((":start", s(after.as_str())));
            format!("{partition} AND {sort_key} > :start")
        }
        None => partition.to_owned(),
    }
}

/// DynamoDB kept leaving keys of a BatchGetItem unprocessed (throttling) through every retry.
#[derive(Debug, thiserror::Error)]
#[error("BatchGetItem left {keys} keys unprocessed after every retry")]
pub struct Unprocessed {
    pub keys: usize,
}

/// A single change whose counter items do not fit one transaction: the campaign file's limits
/// (50 CRM properties, 5 drivers, 30 themes) keep every change below it, as a contract case checks.
#[derive(Debug, thiserror::Error)]
#[error("event {event} touches more counter items than one transaction allows")]
pub struct TooManyCounters {
    pub event: String,
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
