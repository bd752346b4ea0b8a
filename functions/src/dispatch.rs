//! Reactions to events: the invitation goes out; an answer is thanked, promoters are invited to
//! review, detractors and "contact me" answers open a follow-up case and alert its owner.
//! Every message has a key, so a redelivered event sends nothing twice.

use closeloop_core::campaign::{Campaign, CampaignId};
use closeloop_core::lifecycle::{CampaignState, CampaignStatus};
use closeloop_core::model::{Event, EventKind, FollowUpCase, InvitationId};
use closeloop_core::ports::MessageKind;
use closeloop_core::{render, rules};

use crate::messages::{ask, send_once, to_respondent, to_staff, Outgoing};
use crate::{FunctionError, Services};

/// Campaigns (and their states) read once per batch of events: a stream batch of 100 answers to
/// one campaign reads it once, not 100 times.
#[derive(Default)]
pub struct CampaignCache(
    std::sync::Mutex<std::collections::HashMap<CampaignId, Campaign>>,
    std::sync::Mutex<std::collections::HashMap<CampaignId, CampaignStatus>>,
);

impl CampaignCache {
    /// Whether the campaign sends now (see `core::lifecycle`).
    pub async fn status(&self, services: &Services, id: &CampaignId) -> Result<CampaignStatus, FunctionError> {
        if let Some(status) = self.1.lock().ok().and_then(|cached| cached.get(id).cloned()) {
            return Ok(status);
        }
        let status = services.store.campaign_status(id).await?.unwrap_or_default();
        if let Ok(mut cached) = self.1.lock() {
            cached.insert(id.clone(), status.clone());
        }
        Ok(status)
    }

    pub async fn get(&self, services: &Services, id: &CampaignId) -> Result<Campaign, FunctionError> {
        if let Some(campaign) = self.0.lock().ok().and_then(|cached| cached.get(id).cloned()) {
            return Ok(campaign);
        }
        let campaign = services.store.campaign(id).await?.ok_or_else(|| FunctionError::Missing(format!("campaign {id}")))?;
        if let Ok(mut cached) = self.0.lock() {
            cached.insert(id.clone(), campaign.clone());
        }
        Ok(campaign)
    }
}

/// The invitation an event concerns: events of one invitation must be handled in order.
pub fn event_invitation(event: &Event) -> &InvitationId {
    match &event.kind {
        EventKind::InvitationCreated { invitation_id }
        | EventKind::AnswerRecorded { invitation_id, .. }
        | EventKind::PageOpened { invitation_id }
        | EventKind::ReviewClicked { invitation_id, .. }
        | EventKind::InvitationSuppressed { invitation_id, .. } => invitation_id,
    }
}

pub async fn handle_event(services: &Services, event: &Event) -> Result<(), FunctionError> {
    handle_event_with(services, event, &CampaignCache::default()).await
}

pub async fn handle_event_with(services: &Services, event: &Event, campaigns: &CampaignCache) -> Result<(), FunctionError> {
    match &event.kind {
        EventKind::InvitationCreated { invitation_id } => send_invitation(services, invitation_id, campaigns).await,
        EventKind::AnswerRecorded { invitation_id, .. } => react_to_answer(services, invitation_id, campaigns).await,
        // Counted, with no message to send.
        EventKind::PageOpened { .. } | EventKind::ReviewClicked { .. } | EventKind::InvitationSuppressed { .. } => Ok(()),
    }
}

async fn load(services: &Services, id: &InvitationId, campaigns: &CampaignCache) -> Result<(closeloop_core::Invitation, Campaign), FunctionError> {
    let invitation = services.store.invitation(id).await?.ok_or_else(|| FunctionError::Missing(format!("invitation {id}")))?;
    let campaign = campaigns.get(services, &invitation.campaign_id).await?;
    Ok((invitation, campaign))
}

async fn send_invitation(services: &Services, id: &InvitationId, campaigns: &CampaignCache) -> Result<(), FunctionError> {
    let (invitation, campaign) = load(services, id, campaigns).await?;
    let status = campaigns.status(services, &campaign.id).await?;
    if !status.sends() {
        // Paused: it waits for the resume (`release_held`); ended: it never goes out.
        if status.state == CampaignState::Paused {
            services.store.hold_invitation(&campaign.id, id, services.clock.now()).await?;
        }
        return Ok(());
    }
    if services.store.is_suppressed(&invitation.contact.keys()).await? {
        return Ok(());
    }
    let message = ask(MessageKind::Invitation, &campaign, &invitation, services)?;
    send_once(services, &format!("invitation:{id}"), message).await?;
    Ok(())
}

async fn react_to_answer(services: &Services, id: &InvitationId, campaigns: &CampaignCache) -> Result<(), FunctionError> {
    let (invitation, campaign) = load(services, id, campaigns).await?;
    // The current answer decides: a later change has its own event, and keys keep each
    // message to one per invitation.
    let answer = services.store.answer(id).await?.ok_or_else(|| FunctionError::Missing(format!("answer of {id}")))?;
    let links = &services.links;

    let respondent_reachable = !services.store.is_suppressed(&invitation.contact.keys()).await?;
    if respondent_reachable {
        let thanks = render::thank_you_mail(&campaign, &invitation, &answer, links)?;
        if let Some(mail) = to_respondent(MessageKind::ThankYou, &campaign, &invitation, thanks, services) {
            send_once(services, &format!("thank_you:{id}"), Outgoing::Mail(mail)).await?;
        }
        if rules::gets_review_push(&answer) && !campaign.review_sites.is_empty() {
            let review = render::review_mail(&campaign, &invitation, &answer, links)?;
            if let Some(mail) = to_respondent(MessageKind::ReviewInvitation, &campaign, &invitation, review, services) {
                send_once(services, &format!("review_invitation:{id}"), Outgoing::Mail(mail)).await?;
            }
        }
    }

    if rules::needs_follow_up(&campaign, &answer) {
        let owner = invitation.contact.owner_email.clone().or_else(|| campaign.manager_email.clone());
        let case = FollowUpCase::new(
            id.clone(),
            campaign.id.clone(),
            owner.clone(),
            answer.answered_at,
            rules::follow_up_due(&campaign, answer.answered_at),
        );
        // A case opened before (a redelivered event) keeps its own deadline: read it only then.
        let case = if services.store.open_case(&case).await? { case } else { services.store.case(id).await?.unwrap_or(case) };
        match owner {
            Some(owner) => {
                let alert = render::follow_up_mail(MessageKind::Alert, &campaign, &invitation, &answer, case.due_at)?;
                let mail = to_staff(MessageKind::Alert, &campaign, owner.as_str(), alert);
                send_once(services, &format!("alert:{id}"), Outgoing::Mail(mail)).await?;
            }
            None => {
                tracing::warn!(invitation = %id, "follow-up case has no owner and the campaign no manager_email")
            }
        }
    }
    Ok(())
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchSummary {
    pub handled: usize,
    /// Events given up on: retrying could not help; the error was logged.
    pub dropped: usize,
    /// Events left pending after a temporary failure.
    pub deferred: usize,
}

/// Invitations the local dispatcher handles at the same time: rendering runs on both cores while
/// another invitation's send waits for the store.
pub const DISPATCH_CONCURRENCY: usize = 8;

/// Invitations held at most per campaign and call: a schedule run sends this many of a resumed
/// campaign's backlog, the next run the next.
pub const RELEASED_PER_RUN: usize = 500;

/// Sends the invitations of every campaign that waited while it was paused, now that it sends
/// again; each goes out once (its send key) and leaves the held list after its send.
pub async fn release_held(services: &Services) -> Result<usize, FunctionError> {
    let campaigns = CampaignCache::default();
    let mut released = 0;
    for campaign in services.store.campaigns().await? {
        if !campaigns.status(services, &campaign.id).await?.sends() {
            continue;
        }
        for id in services.store.held_invitations(&campaign.id, RELEASED_PER_RUN).await? {
            match send_invitation(services, &id, &campaigns).await {
                Ok(()) => {}
                Err(e) if e.is_retryable() => return Err(e),
                // A held invitation whose row is gone cannot be sent; it leaves the list.
                Err(e) => tracing::error!(invitation = %id, error = %e, "dropped from the held invitations"),
            }
            services.store.release_invitation(&campaign.id, &id).await?;
            released += 1;
        }
    }
    Ok(released)
}

/// Handles pending events until none are left or some fail temporarily (they stay pending and
/// are tried again on the next call). Events of one invitation are handled in order, different
/// invitations at the same time, as the stream consumer does on AWS.
pub async fn dispatch_pending(services: &Services) -> Result<DispatchSummary, FunctionError> {
    use futures_util::StreamExt;
    let mut summary = DispatchSummary::default();
    let campaigns = CampaignCache::default();
    loop {
        let events = services.store.pending_events(500).await?;
        if events.is_empty() {
            return Ok(summary);
        }
        // What the stream consumer does on AWS: count exactly these events first, then react.
        services.store.count_events(&events).await?;
        let mut groups: Vec<Vec<Event>> = Vec::new();
        let mut slot_of: std::collections::HashMap<InvitationId, usize> = std::collections::HashMap::new();
        for event in events {
            let slot = *slot_of.entry(event_invitation(&event).clone()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[slot].push(event);
        }
        let results: Vec<(DispatchSummary, Vec<String>)> = futures_util::stream::iter(groups)
            .map(|group| dispatch_in_order(services, group, &campaigns))
            .buffer_unordered(DISPATCH_CONCURRENCY)
            .collect()
            .await;
        let mut done = Vec::new();
        for (part, completed) in results {
            summary.handled += part.handled;
            summary.dropped += part.dropped;
            summary.deferred += part.deferred;
            done.extend(completed);
        }
        // Completed together: a crash before this only handles them again, and every send is
        // claimed once, so nothing goes out twice.
        services.store.complete_events(&done, services.clock.now()).await?;
        if summary.deferred > 0 {
            return Ok(summary);
        }
    }
}

/// One invitation's events, in order; a temporary failure leaves it and the rest pending.
/// Returns the ids of the events to complete (handled, or dropped for good).
async fn dispatch_in_order(services: &Services, group: Vec<Event>, campaigns: &CampaignCache) -> (DispatchSummary, Vec<String>) {
    let mut summary = DispatchSummary::default();
    let mut done = Vec::with_capacity(group.len());
    for event in group {
        match handle_event_with(services, &event, campaigns).await {
            Ok(()) => summary.handled += 1,
            Err(e) if e.is_retryable() => {
                tracing::warn!(event = %event.id, error = %e, "deferred");
                summary.deferred += 1;
                return (summary, done);
            }
            Err(e) => {
                tracing::error!(event = %event.id, error = %e, "dropped");
                summary.dropped += 1;
            }
        }
        done.push(event.id);
    }
    (summary, done)
}
