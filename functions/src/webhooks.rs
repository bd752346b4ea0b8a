//! Webhooks (Standard Webhooks): a delivery is queued per endpoint that wants an event, in the
//! reaction to that event; `deliver_due` posts what is due, signed, and keeps each attempt.
//! Deliveries hold no personal data: the payload is built from the invitation when it is sent.

use std::collections::HashMap;

use closeloop_core::campaign::Campaign;
use closeloop_core::model::{Invitation, InvitationId};
use closeloop_core::ports::{WebhookSendError, WebhookSender};
use closeloop_core::webhooks::{AttemptOutcome, DeliveryState, EndpointHealth, WebhookDelivery, WebhookEvent, WebhookMessage};
use closeloop_core::{CampaignId, Timestamp};
use serde_json::{json, Value};

use crate::{FunctionError, Services};

/// Stores what was queued; nothing to store costs no write (a campaign without webhooks).
async fn enqueue(store: &dyn closeloop_core::ports::Store, deliveries: &[WebhookDelivery]) -> Result<usize, FunctionError> {
    if deliveries.is_empty() {
        return Ok(0);
    }
    Ok(store.enqueue_webhooks(deliveries).await?)
}

/// Queues `event` for every endpoint of `campaign` that wants it. `source_event_id` makes the
/// delivery id: handling the same event again queues nothing new.
pub async fn queue(
    store: &dyn closeloop_core::ports::Store,
    campaign: &Campaign,
    event: WebhookEvent,
    source_event_id: &str,
    invitation_id: &InvitationId,
    version: u32,
    at: Timestamp,
) -> Result<usize, FunctionError> {
    let deliveries: Vec<WebhookDelivery> = campaign
        .webhooks
        .iter()
        .filter(|endpoint| endpoint.wants(event))
        .map(|endpoint| WebhookDelivery::new(&campaign.id, endpoint, event, source_event_id, invitation_id, version, at))
        .collect();
    enqueue(store, &deliveries).await
}

fn contact_json(invitation: &Invitation) -> Value {
    let c = &invitation.contact;
    json!({
        "email": c.email.as_ref().map(|e| e.as_str()),
        "phone": c.phone.as_ref().map(|p| p.as_str()),
        "first_name": c.first_name,
        "last_name": c.last_name,
        "company": c.company,
        "segment": c.segment,
        "store": c.store,
        "owner_email": c.owner_email.as_ref().map(|e| e.as_str()),
        "touchpoint": invitation.touchpoint,
        "locale": invitation.locale.code(),
        "properties": c.properties,
    })
}

/// Which campaign a payload is about, in every event.
fn campaign_json(campaign: &Campaign) -> Value {
    json!({ "id": campaign.id.as_str(), "name": campaign.name, "time_zone": campaign.zone().name() })
}

/// The `data` of a delivery's payload, read now: an erased person's shows the erased values.
async fn data(services: &Services, campaign: &Campaign, delivery: &WebhookDelivery) -> Result<Value, FunctionError> {
    if let Some(launch) = &delivery.launch {
        return Ok(json!({
            "campaign": campaign_json(campaign),
            "launch": launch,
        }));
    }
    if let Some(digest) = &delivery.digest {
        return Ok(json!({
            "campaign": campaign_json(campaign),
            "digest": digest,
        }));
    }
    let id = &delivery.invitation_id;
    let invitation = services.store.invitation(id).await?.ok_or_else(|| FunctionError::Missing(format!("invitation {id}")))?;
    let mut data = json!({
        "campaign": campaign_json(campaign),
        "invitation_id": id.0,
        "contact": contact_json(&invitation),
    });
    let wants_answer = matches!(
        delivery.event,
        WebhookEvent::ResponseCreated | WebhookEvent::ResponseUpdated | WebhookEvent::CaseOpened | WebhookEvent::CaseOverdue | WebhookEvent::CaseClosed
    );
    if wants_answer {
        // A response event carries the version it was queued for, even when a later edit came
        // first; a case event carries the answer as it stands.
        let answer = match delivery.version {
            0 => services.store.answer(id).await?,
            version => {
                let versions = services.store.answer_versions(id).await?;
                match versions.into_iter().find(|a| a.version == version) {
                    Some(answer) => Some(answer),
                    None => services.store.answer(id).await?,
                }
            }
        };
        if let Some(answer) = answer {
            data["response"] = json!({
                "score": answer.score.value(),
                "group": answer.score.group().as_str(),
                "comment": answer.comment,
                "contact_ok": answer.contact_ok,
                "ratings": answer.ratings,
                "version": answer.version,
                "first_answered_at": answer.first_answered_at.to_rfc3339(),
                "answered_at": answer.answered_at.to_rfc3339(),
            });
        }
    }
    if matches!(delivery.event, WebhookEvent::CaseOpened | WebhookEvent::CaseOverdue | WebhookEvent::CaseClosed) {
        if let Some(case) = services.store.case(id).await? {
            let kind = data["response"]["score"].as_u64().and_then(|s| u8::try_from(s).ok()).map(|s| if s <= campaign.alert_threshold { "detractor" } else { "contact_request" });
            data["case"] = json!({
                "kind": kind,
                "status": case.status,
                "owner_email": case.owner_email.as_ref().map(|e| e.as_str()),
                "opened_at": case.opened_at.to_rfc3339(),
                "due_at": case.due_at.to_rfc3339(),
                "escalated_at": case.escalated_at.map(|t| t.to_rfc3339()),
                "closed": case.closed.as_ref().map(|c| json!({ "by": c.by, "at": c.at.to_rfc3339(), "outcome": c.outcome })),
            });
        }
    }
    Ok(data)
}

/// The Standard Webhooks headers for `body`: id, timestamp (seconds) and the v1 signature.
pub fn signed_headers(secret: &str, id: &str, at: Timestamp, body: &str) -> Result<Vec<(String, String)>, standardwebhooks::WebhookError> {
    let seconds = at.millis().div_euclid(1000);
    let signature = standardwebhooks::Webhook::new(secret)?.sign(id, seconds, body.as_bytes())?;
    Ok(vec![
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), "closeloop-webhooks/1".into()),
        ("webhook-id".into(), id.to_owned()),
        ("webhook-timestamp".into(), seconds.to_string()),
        ("webhook-signature".into(), signature),
    ])
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySummary {
    pub delivered: usize,
    /// Failed attempts that will be tried again.
    pub failed: usize,
    pub gave_up: usize,
    /// Endpoints disabled by this run's failures.
    pub disabled: usize,
}

/// Posts every delivery due at `at` (up to `limit`), signed, and stores each attempt. An
/// endpoint no longer in its campaign, or disabled, gets nothing: its deliveries are given up.
/// Endpoints are posted to side by side (`ENDPOINTS_AT_ONCE`), each endpoint's deliveries in
/// turn, so one slow endpoint (up to its 10 s timeout per attempt) holds up only its own.
pub async fn deliver_due(services: &Services, sender: &dyn WebhookSender, at: Timestamp, limit: usize) -> Result<DeliverySummary, FunctionError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let due = services.store.due_webhooks(at, limit).await?;
    let mut campaigns = Campaigns::new();
    let mut by_endpoint: Vec<((CampaignId, String), Vec<WebhookDelivery>)> = Vec::new();
    for delivery in due {
        read_campaign(services, &mut campaigns, &delivery.campaign_id).await?;
        let key = (delivery.campaign_id.clone(), delivery.endpoint.clone());
        match by_endpoint.iter_mut().find(|(k, _)| *k == key) {
            Some((_, deliveries)) => deliveries.push(delivery),
            None => by_endpoint.push((key, vec![delivery])),
        }
    }
    let campaigns = &campaigns;
    let summaries: Vec<DeliverySummary> = stream::iter(by_endpoint.into_iter().map(|(_, deliveries)| async move {
        let mut summary = DeliverySummary::default();
        for delivery in deliveries {
            deliver(services, sender, delivery, campaigns, &mut summary).await?;
        }
        Ok::<_, FunctionError>(summary)
    }))
    .buffer_unordered(ENDPOINTS_AT_ONCE)
    .try_collect()
    .await?;
    Ok(summaries.into_iter().fold(DeliverySummary::default(), |mut all, s| {
        all.delivered += s.delivered;
        all.failed += s.failed;
        all.gave_up += s.gave_up;
        all.disabled += s.disabled;
        all
    }))
}

/// Endpoints one run posts to at the same time.
pub const ENDPOINTS_AT_ONCE: usize = 8;

/// Reads a campaign into the run's cache, once.
async fn read_campaign(services: &Services, campaigns: &mut Campaigns, id: &CampaignId) -> Result<(), FunctionError> {
    if !campaigns.contains_key(id) {
        let campaign = services.store.campaign(id).await?;
        campaigns.insert(id.clone(), campaign);
    }
    Ok(())
}

/// The campaigns a run of deliveries has read, each once.
pub type Campaigns = HashMap<CampaignId, Option<Campaign>>;

/// One delivery by its id (a queue message on AWS): posted if it is still pending and due, else
/// left alone (delivered meanwhile, or not due yet). Returns it as stored afterwards.
/// `campaigns` is shared by a batch's messages, so each campaign is read once.
pub async fn deliver_one(
    services: &Services,
    sender: &dyn WebhookSender,
    campaign: &CampaignId,
    id: &str,
    at: Timestamp,
    campaigns: &mut Campaigns,
    summary: &mut DeliverySummary,
) -> Result<Option<WebhookDelivery>, FunctionError> {
    let Some(delivery) = services.store.webhook(campaign, id).await? else { return Ok(None) };
    if delivery.state != DeliveryState::Pending || delivery.next_at.is_none_or(|next| next > at) {
        return Ok(Some(delivery));
    }
    read_campaign(services, campaigns, campaign).await?;
    deliver(services, sender, delivery, campaigns, summary).await.map(Some)
}

/// Gives a delivery up without an attempt (its endpoint is gone or disabled, its invitation
/// too), stored so it is due no more.
async fn give_up(services: &Services, mut delivery: WebhookDelivery, summary: &mut DeliverySummary) -> Result<WebhookDelivery, FunctionError> {
    delivery.give_up();
    services.store.save_webhook(&delivery).await?;
    summary.gave_up += 1;
    Ok(delivery)
}

/// Where a delivery goes: a signed webhook, or a chat channel's incoming webhook.
enum Target {
    Webhook(closeloop_core::webhooks::WebhookEndpoint),
    Chat(closeloop_core::webhooks::ChatChannel),
}

impl Target {
    fn url(&self) -> &closeloop_core::webhooks::WebhookUrl {
        match self {
            Target::Webhook(e) => &e.url,
            Target::Chat(c) => &c.url,
        }
    }

    fn key(&self) -> String {
        match self {
            Target::Webhook(e) => e.key(),
            Target::Chat(c) => c.key(),
        }
    }

    /// The address as a mail may name it: a chat channel's is its secret, so its host only.
    fn shown(&self) -> String {
        match self {
            Target::Webhook(e) => e.url.as_str().to_owned(),
            Target::Chat(c) => c.hint(),
        }
    }
}

async fn deliver(
    services: &Services,
    sender: &dyn WebhookSender,
    mut delivery: WebhookDelivery,
    campaigns: &Campaigns,
    summary: &mut DeliverySummary,
) -> Result<WebhookDelivery, FunctionError> {
    let campaign = campaigns.get(&delivery.campaign_id).cloned().flatten();
    let endpoint = campaign.as_ref().and_then(|c| match delivery.chat {
        None => c.webhooks.iter().find(|e| e.key() == delivery.endpoint).cloned().map(Target::Webhook),
        Some(_) => c.chat.iter().find(|ch| ch.key() == delivery.endpoint).cloned().map(Target::Chat),
    });
    let (Some(campaign), Some(endpoint)) = (campaign, endpoint) else {
        return give_up(services, delivery, summary).await;
    };
    let mut health = services.store.webhook_health(&campaign.id, &delivery.endpoint).await?.unwrap_or_default();
    if health.disabled_at.is_some() {
        return give_up(services, delivery, summary).await;
    }
    let outcome = match attempt(services, sender, &campaign, &endpoint, &delivery).await {
        Ok(outcome) => outcome,
        Err(FunctionError::Missing(what)) => {
            // The invitation is gone: nothing to say, ever.
            tracing::warn!(delivery = %delivery.id, %what, "webhook delivery given up");
            return give_up(services, delivery, summary).await;
        }
        Err(e) => return Err(e),
    };
    delivery.record(outcome.clone());
    match delivery.state {
        DeliveryState::Delivered => summary.delivered += 1,
        DeliveryState::Pending => summary.failed += 1,
        DeliveryState::GaveUp => summary.gave_up += 1,
    }
    services.store.save_webhook(&delivery).await?;
    let before = health.clone();
    if health.after(&outcome) {
        summary.disabled += 1;
        tracing::error!(campaign = %campaign.id, endpoint = %endpoint.url().host(), failures = health.consecutive_failures, "webhook endpoint disabled after repeated failures");
        tell_manager(services, &campaign, &endpoint, &health, &outcome).await?;
    }
    if health != before {
        services.store.set_webhook_health(&campaign.id, &delivery.endpoint, &health).await?;
    }
    Ok(delivery)
}

/// Mails the campaign's manager that an endpoint was switched off, once per time it is.
async fn tell_manager(
    services: &Services,
    campaign: &Campaign,
    endpoint: &Target,
    health: &EndpointHealth,
    outcome: &AttemptOutcome,
) -> Result<(), FunctionError> {
    let Some(manager) = &campaign.manager_email else {
        tracing::warn!(campaign = %campaign.id, "a webhook was disabled and the campaign has no manager_email to tell");
        return Ok(());
    };
    let last = match (&outcome.status, &outcome.error) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(error)) => error.clone(),
        (None, None) => "no answer".to_owned(),
    };
    let dashboard = format!("{}/webhooks", services.links.dashboard(&campaign.id));
    let rendered = closeloop_views::render::webhook_disabled_mail(campaign, &endpoint.shown(), endpoint.url().host(), health.consecutive_failures, &last, &dashboard)?;
    let mail = crate::messages::to_staff(closeloop_core::ports::MessageKind::WebhookDisabled, campaign, manager.as_str(), rendered);
    let disabled_at = health.disabled_at.map_or(0, |t| t.millis());
    let key = format!("webhook_disabled:{}:{}:{disabled_at}", campaign.id, endpoint.key());
    crate::messages::send_once(services, &key, crate::messages::Outgoing::Mail(mail)).await?;
    Ok(())
}

async fn attempt(services: &Services, sender: &dyn WebhookSender, campaign: &Campaign, target: &Target, delivery: &WebhookDelivery) -> Result<AttemptOutcome, FunctionError> {
    let started = services.clock.now();
    let outcome = |status: Option<u16>, error: Option<String>| {
        let at = services.clock.now();
        AttemptOutcome { at, status, millis: u32::try_from((at.millis() - started.millis()).max(0)).unwrap_or(u32::MAX), error }
    };
    let unserialisable = |e: serde_json::Error| FunctionError::Missing(format!("a payload for {}: {e}", delivery.id));
    let (body, headers) = match target {
        Target::Webhook(endpoint) => {
            let message = WebhookMessage::new(delivery.event, delivery.created_at, data(services, campaign, delivery).await?);
            let body = serde_json::to_string(&message).map_err(unserialisable)?;
            let secret = match endpoint.secret.parameter() {
                None => endpoint.secret.expose().to_owned(),
                // Read from the parameter store (the sender caches it); it must itself be a
                // whsec_ secret. A failure is this attempt's outcome, retried like any other.
                // Signed with the value as parsed (trimmed: a parameter put from a file ends
                // with a newline).
                Some(name) => match sender.parameter(name).await.map(|v| closeloop_core::webhooks::WebhookSecret::parse(&v).ok().filter(|s| s.parameter().is_none())) {
                    Ok(Some(secret)) => secret.expose().to_owned(),
                    Ok(None) => return Ok(outcome(None, Some(format!("the parameter {name} holds no whsec_ secret")))),
                    Err(e) => return Ok(outcome(None, Some(e.to_string()))),
                },
            };
            match signed_headers(&secret, &delivery.id, started, &body) {
                Ok(headers) => (body, headers),
                // The secret was checked when the campaign was read: this cannot happen, and is logged.
                Err(e) => return Ok(outcome(None, Some(format!("could not sign: {e}")))),
            }
        }
        // Incoming webhooks take no signature: their URL is the secret.
        Target::Chat(channel) => {
            let body = serde_json::to_string(&chat_body(services, campaign, channel, delivery).await?).map_err(unserialisable)?;
            (body, vec![("content-type".to_owned(), "application/json".to_owned()), ("user-agent".to_owned(), "closeloop-webhooks/1".to_owned())])
        }
    };
    Ok(match sender.post(target.url(), &headers, &body).await {
        Ok(response) => outcome(Some(response.status), None),
        Err(e @ (WebhookSendError::Refused(_) | WebhookSendError::Timeout | WebhookSendError::Connect(_) | WebhookSendError::Secret(_))) => outcome(None, Some(e.to_string())),
    })
}

/// A chat message: the alert about a case, or a digest's figures.
async fn chat_body(services: &Services, campaign: &Campaign, channel: &closeloop_core::webhooks::ChatChannel, delivery: &WebhookDelivery) -> Result<Value, FunctionError> {
    use closeloop_core::webhooks::ChatKind;
    use closeloop_views::chat;
    if let Some(digest) = &delivery.digest {
        return Ok(match channel.kind {
            ChatKind::Slack => chat::slack_digest(campaign, digest),
            ChatKind::Teams => chat::teams_digest(campaign, digest),
        });
    }
    let id = &delivery.invitation_id;
    let invitation = services.store.invitation(id).await?.ok_or_else(|| FunctionError::Missing(format!("invitation {id}")))?;
    let answer = services.store.answer(id).await?.ok_or_else(|| FunctionError::Missing(format!("answer of {id}")))?;
    let case = services.store.case(id).await?.ok_or_else(|| FunctionError::Missing(format!("case of {id}")))?;
    let case_url = format!("{}/cases?status=all#case-{}", services.links.dashboard(&campaign.id), id.0);
    Ok(match channel.kind {
        ChatKind::Slack => chat::slack_alert(campaign, &invitation, &answer, case.due_at, &case_url),
        ChatKind::Teams => chat::teams_alert(campaign, &invitation, &answer, case.due_at, &case_url),
    })
}

/// Queues an alert for every chat channel of `campaign` that gets alerts about `owner`'s
/// contacts, once per case.
pub async fn queue_chat_alert(
    store: &dyn closeloop_core::ports::Store,
    campaign: &Campaign,
    invitation_id: &InvitationId,
    owner: Option<&closeloop_core::Email>,
    at: Timestamp,
) -> Result<usize, FunctionError> {
    let deliveries: Vec<WebhookDelivery> = campaign
        .chat
        .iter()
        .filter(|c| c.wants(closeloop_core::webhooks::ChatEvent::Alert, owner))
        .map(|c| WebhookDelivery::for_chat(&campaign.id, c, WebhookEvent::CaseOpened, &format!("case-{invitation_id}"), invitation_id, at))
        .collect();
    enqueue(store, &deliveries).await
}

/// Queues a week's digest for the chat channels and webhooks that want it: `owner` none for the
/// campaign's, else one owner's (only their channels).
pub async fn queue_digest(
    store: &dyn closeloop_core::ports::Store,
    campaign: &Campaign,
    owner: Option<&closeloop_core::Email>,
    summary: &closeloop_core::webhooks::DigestSummary,
    at: Timestamp,
) -> Result<usize, FunctionError> {
    let scope = owner.map_or("all", |o| o.as_str());
    let source = format!("digest-{}-{scope}", summary.week);
    let placeholder = InvitationId(format!("digest-{}", summary.week));
    let mut deliveries: Vec<WebhookDelivery> = campaign
        .chat
        .iter()
        .filter(|c| c.events.contains(&closeloop_core::webhooks::ChatEvent::Digest) && c.owner.as_ref() == owner)
        .map(|c| WebhookDelivery::for_chat(&campaign.id, c, WebhookEvent::DigestWeekly, &source, &placeholder, at))
        .collect();
    if owner.is_none() {
        deliveries.extend(
            campaign.webhooks.iter().filter(|w| w.wants(WebhookEvent::DigestWeekly)).map(|w| WebhookDelivery::new(&campaign.id, w, WebhookEvent::DigestWeekly, &source, &placeholder, 0, at)),
        );
    }
    for d in &mut deliveries {
        d.digest = Some(summary.clone());
    }
    enqueue(store, &deliveries).await
}

/// A delivery from the log, due again at `at` (the dashboard's "redeliver"). Its id stays, so
/// a receiver that had it already can tell. False when the campaign has no such delivery.
pub async fn redeliver(store: &dyn closeloop_core::ports::Store, campaign: &CampaignId, id: &str, at: Timestamp) -> Result<bool, FunctionError> {
    let Some(mut delivery) = store.webhook(campaign, id).await? else { return Ok(false) };
    delivery.redeliver(at);
    store.save_webhook(&delivery).await?;
    // A manual redelivery is someone's decision to try again: a disabled endpoint is enabled.
    if store.webhook_health(campaign, &delivery.endpoint).await?.is_some_and(|h| h.disabled_at.is_some()) {
        store.set_webhook_health(campaign, &delivery.endpoint, &EndpointHealth::default()).await?;
    }
    Ok(true)
}

/// `launch.completed` for the endpoints that want it, once per launch: its counts, no rows.
pub async fn queue_launch_completed(store: &dyn closeloop_core::ports::Store, campaign: &Campaign, job: &closeloop_core::launch::LaunchJob, at: Timestamp) -> Result<usize, FunctionError> {
    let wanting: Vec<_> = campaign.webhooks.iter().filter(|w| w.wants(WebhookEvent::LaunchCompleted)).collect();
    if wanting.is_empty() {
        return Ok(0);
    }
    let counts = json!({
        "id": job.id.as_str(),
        "source": job.source,
        "state": job.state.as_str(),
        "total_rows": job.total_rows,
        "invited": job.invited,
        "skipped": job.skipped,
        "bad_rows": job.bad_row_count,
        "started_at": job.started_at.to_rfc3339(),
        "finished_at": job.finished_at.map(|t| t.to_rfc3339()),
    });
    let source = format!("launch-{}", job.id.as_str());
    let placeholder = InvitationId(source.clone());
    let deliveries: Vec<WebhookDelivery> = wanting
        .into_iter()
        .map(|w| {
            let mut d = WebhookDelivery::new(&campaign.id, w, WebhookEvent::LaunchCompleted, &source, &placeholder, 0, at);
            d.launch = Some(counts.clone());
            d
        })
        .collect();
    enqueue(store, &deliveries).await
}
