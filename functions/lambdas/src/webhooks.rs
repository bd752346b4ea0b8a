//! Webhooks on AWS, through SQS: never posted from the Worker's request path or inside the
//! stream handler's time budget.
//! - The stream handler forwards each newly queued delivery (an inserted `WEBHOOKS#…/D#…`
//!   item, or one made due again by a redelivery) to the webhook queue (`forward`).
//! - `deliver_webhooks` (SQS-triggered) posts it, signed, with the public-only address policy;
//!   a failed attempt goes back on the queue with its back-off as the message's delay, when that
//!   fits SQS's 15 minutes.
//! - A longer back-off, or a message lost anywhere, is picked up by the schedule's sweep
//!   (`sweep`), which queues whatever is due. A delivery posted twice that way keeps its
//!   `webhook-id`, so the receiver can tell.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use closeloop_core::ports::WebhookSender;
use closeloop_core::webhooks::DeliveryState;
use closeloop_core::{CampaignId, Timestamp};
use closeloop_functions::webhooks::{deliver_one, Campaigns, DeliverySummary};
use closeloop_functions::Services;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// SQS's longest message delay.
const MAX_DELAY_SECONDS: i64 = 900;
/// Deliveries queued per sweep.
const SWEPT_PER_RUN: usize = 500;

/// A queue message: which delivery to post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRef {
    pub campaign_id: String,
    pub id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("WEBHOOK_QUEUE_URL is not set")]
    NotConfigured,
    #[error("sending to the webhook queue failed")]
    Send(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Clone)]
pub struct WebhookQueue {
    client: aws_sdk_sqs::Client,
    url: Option<String>,
}

impl WebhookQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: Option<String>) -> Self {
        Self { client, url }
    }

    pub fn is_configured(&self) -> bool {
        self.url.is_some()
    }

    /// Sends each reference, ten to a batch, after `delay_seconds` (0 to 900).
    pub async fn send(&self, refs: &[DeliveryRef], delay_seconds: i64) -> Result<(), QueueError> {
        let url = self.url.as_deref().ok_or(QueueError::NotConfigured)?;
        for batch in refs.chunks(10) {
            let entries: Vec<SendMessageBatchRequestEntry> = batch
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let body = serde_json::to_string(r).map_err(|e| QueueError::Send(e.into()))?;
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("d{i}"))
                        .message_body(body)
                        .delay_seconds(delay_seconds.clamp(0, MAX_DELAY_SECONDS) as i32)
                        .build()
                        .map_err(|e| QueueError::Send(e.into()))
                })
                .collect::<Result<_, _>>()?;
            let out = self.client.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await.map_err(|e| QueueError::Send(e.into()))?;
            if !out.failed.is_empty() {
                return Err(QueueError::Send(format!("{} of {} messages refused", out.failed.len(), batch.len()).into()));
            }
        }
        Ok(())
    }
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// The delivery a stream record's item is, when it has just become due: inserted, or made
/// pending again (a redelivery). An attempt's own save keeps it pending and is not forwarded:
/// its retry is already on the queue.
pub fn newly_due(old: &HashMap<String, AttributeValue>, new: &HashMap<String, AttributeValue>) -> Option<DeliveryRef> {
    let pk = text(new, "pk")?;
    let campaign_id = pk.strip_prefix("WEBHOOKS#")?;
    let id = text(new, "sk")?.strip_prefix("D#")?;
    let due_now = text(new, "gsi1pk").is_some_and(|p| p.starts_with("DUE_WEBHOOK"));
    let due_before = text(old, "gsi1pk").is_some();
    (due_now && !due_before).then(|| DeliveryRef { campaign_id: campaign_id.to_owned(), id: id.to_owned() })
}

/// The sender on AWS: nothing private, loopback or link-local (the metadata service among
/// them), checked after DNS resolution; a timeout well inside the function's.
pub fn public_sender() -> Result<closeloop_webhooks::HttpWebhookSender, reqwest::Error> {
    closeloop_webhooks::HttpWebhookSender::new(closeloop_core::webhooks::AddressPolicy::PublicOnly, closeloop_webhooks::DEFAULT_TIMEOUT)
}

/// The delivery function's sender: posts through `inner`, and reads a secret a campaign names
/// (`secret = "ssm:/closeloop/webhooks/crm"`) from Parameter Store, once per instance.
pub struct ParameterStoreSender<S> {
    inner: S,
    ssm: aws_sdk_ssm::Client,
    read: tokio::sync::Mutex<HashMap<String, String>>,
}

impl<S> ParameterStoreSender<S> {
    pub fn new(inner: S, ssm: aws_sdk_ssm::Client) -> Self {
        Self { inner, ssm, read: tokio::sync::Mutex::new(HashMap::new()) }
    }
}

#[async_trait::async_trait]
impl<S: WebhookSender> WebhookSender for ParameterStoreSender<S> {
    async fn post(&self, url: &closeloop_core::webhooks::WebhookUrl, headers: &[(String, String)], body: &str) -> Result<closeloop_core::ports::WebhookResponse, closeloop_core::ports::WebhookSendError> {
        self.inner.post(url, headers, body).await
    }

    async fn parameter(&self, name: &str) -> Result<String, closeloop_core::ports::WebhookSendError> {
        use aws_sdk_ssm::error::ProvideErrorMetadata;
        let mut read = self.read.lock().await;
        if let Some(value) = read.get(name) {
            return Ok(value.clone());
        }
        // The error's code only: its message could echo more than the name.
        let unreadable = |code: Option<&str>| closeloop_core::ports::WebhookSendError::Secret(format!("{name}: {}", code.unwrap_or("unreadable")));
        let out = self.ssm.get_parameter().name(name).with_decryption(true).send().await.map_err(|e| unreadable(e.code()))?;
        let value = out.parameter.and_then(|p| p.value).ok_or_else(|| unreadable(Some("no value")))?;
        read.insert(name.to_owned(), value.clone());
        Ok(value)
    }
}

/// SQS → posts. A message whose delivery cannot be read now is retried by SQS; one that is
/// done or gone is dropped.
pub async fn handle(services: &Services, sender: &dyn WebhookSender, queue: &WebhookQueue, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    let mut summary = DeliverySummary::default();
    let mut campaigns = Campaigns::new();
    for message in event.records {
        let message_id = message.message_id.clone().unwrap_or_default();
        let Some(reference) = message.body.as_deref().and_then(|b| serde_json::from_str::<DeliveryRef>(b).ok()) else {
            tracing::error!(message = %message_id, "dropped: not a webhook delivery reference");
            continue;
        };
        let Ok(campaign) = CampaignId::parse(&reference.campaign_id) else {
            tracing::error!(message = %message_id, "dropped: not a campaign id");
            continue;
        };
        let now = services.clock.now();
        // Ids only: every line logged for this delivery carries them.
        let span = tracing::info_span!("delivery", campaign = %campaign, delivery = %reference.id);
        let outcome = deliver_one(services, sender, &campaign, &reference.id, now, &mut campaigns, &mut summary).instrument(span.clone()).await;
        // The lines below are the delivery's too (`in_scope`: no span is entered across an await).
        match outcome {
            Ok(Some(delivery)) if delivery.state == DeliveryState::Pending => {
                let Some(next) = delivery.next_at else { continue };
                let delay = (next.millis() - now.millis()).div_euclid(1000);
                // Longer than SQS can hold a message: the schedule's sweep queues it when due.
                if delay <= MAX_DELAY_SECONDS {
                    if let Err(e) = queue.send(std::slice::from_ref(&reference), delay).instrument(span.clone()).await {
                        span.in_scope(|| tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "the retry could not be queued; the sweep will find it"));
                    }
                }
            }
            Ok(_) => {}
            Err(e) if e.is_retryable() => {
                span.in_scope(|| tracing::warn!(error = %e, "webhook delivery will be retried"));
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                failures.push(failure);
            }
            Err(e) => span.in_scope(|| tracing::error!(error = %e, "dropped: webhook delivery cannot succeed")),
        }
    }
    tracing::info!(delivered = summary.delivered, failed = summary.failed, gave_up = summary.gave_up, disabled = summary.disabled, "webhooks");
    // A give-up is most often a last failed attempt (rarely an endpoint removed meanwhile).
    let failed_posts = (summary.failed + summary.gave_up) as u64;
    crate::metrics::emit(&[(crate::metrics::Metric::WebhookFailures, failed_posts), (crate::metrics::Metric::SendsThrottled, crate::metrics::take_throttled())]);
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

/// Queues every delivery due at `at` (the schedule runs it): retries whose back-off was longer
/// than SQS's delay, and anything whose message was lost.
pub async fn sweep(services: &Services, queue: &WebhookQueue, at: Timestamp) -> Result<usize, crate::Retryable> {
    if !queue.is_configured() {
        return Ok(0);
    }
    let due = services.store.due_webhooks(at, SWEPT_PER_RUN).await.map_err(|e| crate::Retryable(e.into()))?;
    let refs: Vec<DeliveryRef> = due.iter().map(|d| DeliveryRef { campaign_id: d.campaign_id.as_str().to_owned(), id: d.id.clone() }).collect();
    if let Err(e) = queue.send(&refs, 0).await {
        tracing::error!(error = %e, "sweeping due webhooks to the queue failed");
        return Ok(0);
    }
    Ok(refs.len())
}
