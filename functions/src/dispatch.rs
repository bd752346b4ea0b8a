//! Reactions to events: the invitation goes out; an answer is thanked, promoters are invited to
//! review, detractors and "contact me" answers open a follow-up case and alert its owner.
//! Every message has a key, so a redelivered event sends nothing twice.

use closeloop_core::campaign::{Campaign, CampaignId};
use closeloop_core::lifecycle::CampaignStatus;
use closeloop_core::model::{Event, EventKind, FollowUpCase, InvitationId};
use closeloop_core::ports::MessageKind;
use closeloop_core::rules;
use closeloop_views::render;

use std::collections::HashMap;
use std::sync::Arc;

use closeloop_core::webhooks::WebhookEvent;
use crate::messages::{ask, send_once, send_once_many, to_respondent, to_staff, Outgoing};
use crate::{FunctionError, Services};

/// Campaigns (and their states) read once per batch of events: a stream batch of 100 answers to
/// one campaign reads it once, not 100 times. The batch's invitations, answers and suppressions
/// can be read up front too (`prefetch`): each is then used by its invitation's first event.
#[derive(Default)]
pub struct CampaignCache(
    std::sync::Mutex<std::collections::HashMap<CampaignId, Campaign>>,
    std::sync::Mutex<std::collections::HashMap<CampaignId, CampaignStatus>>,
    std::sync::Mutex<HashMap<InvitationId, Prefetched>>,
);

/// An invitation as read at the start of a batch: its answer, and whether its person is suppressed.
struct Prefetched {
    invitation: closeloop_core::Invitation,
    answer: Option<closeloop_core::model::Answer>,
    suppressed: bool,
}

impl CampaignCache {
    /// Reads these invitations, their answers and their people's suppressions in a few batched
    /// store calls (DynamoDB: BatchGetItem) instead of three reads per event. Each entry serves
    /// its invitation's first event only; a later event of the same invitation reads again, so
    /// it sees what the first one changed.
    pub async fn prefetch(&self, services: &Services, ids: &[InvitationId]) -> Result<(), FunctionError> {
        let found = services.store.invitations_with_answers(ids).await?;
        let found: Vec<(closeloop_core::Invitation, Option<closeloop_core::model::Answer>)> =
            found.into_iter().filter_map(|(invitation, answer)| invitation.map(|i| (i, answer))).collect();
        let people: Vec<_> = found.iter().map(|(invitation, _)| invitation.contact.keys()).collect();
        let suppressed = services.store.are_suppressed(&people).await?;
        let mut cached = self.2.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((invitation, answer), suppressed) in found.into_iter().zip(suppressed) {
            // An erased person is never written to again, whatever was pending for them.
            let suppressed = suppressed || invitation.erased_at.is_some();
            cached.insert(invitation.id.clone(), Prefetched { invitation, answer, suppressed });
        }
        Ok(())
    }

    fn take(&self, id: &InvitationId) -> Option<Prefetched> {
        self.2.lock().ok().and_then(|mut cached| cached.remove(id))
    }

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
        EventKind::TestMailRequested { request_id, .. } | EventKind::HeldReleaseRequested { request_id, .. } | EventKind::UpdateRequested { request_id, .. } => request_id,
        EventKind::UpdateLinkClicked { invitation_id, .. } | EventKind::CaseFollowUpRequested { invitation_id } => invitation_id,
    }
}

pub async fn handle_event(services: &Services, event: &Event) -> Result<(), FunctionError> {
    handle_event_with(services, event, &CampaignCache::default()).await
}

pub async fn handle_event_with(services: &Services, event: &Event, campaigns: &CampaignCache) -> Result<(), FunctionError> {
    use tracing::Instrument;
    // Ids only: every line logged while the event is handled carries them. The campaign is
    // recorded once it is known (`load`), unless the event names it.
    let span = tracing::info_span!("event", event = %event.id, invitation = %event_invitation(event), campaign = tracing::field::Empty);
    if let Some(campaign) = event_campaign(event) {
        span.record("campaign", campaign.as_str());
    }
    react(services, event, campaigns).instrument(span).await
}

/// The campaign an event names, when it names one.
fn event_campaign(event: &Event) -> Option<&closeloop_core::CampaignId> {
    match &event.kind {
        EventKind::TestMailRequested { campaign_id, .. } | EventKind::HeldReleaseRequested { campaign_id, .. } | EventKind::UpdateRequested { campaign_id, .. } => Some(campaign_id),
        _ => None,
    }
}

async fn react(services: &Services, event: &Event, campaigns: &CampaignCache) -> Result<(), FunctionError> {
    match &event.kind {
        EventKind::InvitationCreated { invitation_id } => send_invitation(services, invitation_id, campaigns).await.map(|_| ()),
        EventKind::AnswerRecorded { invitation_id, version, .. } => react_to_answer(services, invitation_id, campaigns, event, *version).await,
        EventKind::InvitationSuppressed { invitation_id, reason: closeloop_core::model::SuppressionReason::Unsubscribed } => {
            let (invitation, campaign) = load(services, invitation_id, campaigns).await?;
            if invitation.erased_at.is_none() {
                let source = format!("unsubscribed-{invitation_id}");
                crate::webhooks::queue(services.store.as_ref(), &campaign, WebhookEvent::ContactUnsubscribed, &source, invitation_id, 0, event.at).await?;
            }
            Ok(())
        }
        // Counted, with no message to send.
        EventKind::PageOpened { .. } | EventKind::ReviewClicked { .. } | EventKind::InvitationSuppressed { .. } | EventKind::UpdateLinkClicked { .. } => Ok(()),
        EventKind::UpdateRequested { campaign_id, update_id, .. } => {
            let campaign = campaigns.get(services, campaign_id).await?;
            crate::updates::start_update(services, &campaign, update_id).await
        }
        EventKind::CaseFollowUpRequested { invitation_id } => {
            let (_, campaign) = load(services, invitation_id, campaigns).await?;
            crate::updates::send_case_follow_up(services, &campaign, invitation_id).await.map(|_| ())
        }
        EventKind::HeldReleaseRequested { campaign_id, .. } => {
            // A campaign started or resumed: what waited goes now, not at the schedule's next run.
            let campaign = campaigns.get(services, campaign_id).await?;
            release_campaign(services, &campaign, campaigns, RELEASED_PER_REQUEST).await.map(|_| ())
        }
        EventKind::TestMailRequested { campaign_id, locale, to, requested_by, .. } => {
            crate::messages::send_test_mail(services, &event.id, campaigns, campaign_id, *locale, to, requested_by).await
        }
    }
}

async fn load(services: &Services, id: &InvitationId, campaigns: &CampaignCache) -> Result<(closeloop_core::Invitation, Campaign), FunctionError> {
    let invitation = services.store.invitation(id).await?.ok_or_else(|| FunctionError::Missing(format!("invitation {id}")))?;
    let campaign = campaigns.get(services, &invitation.campaign_id).await?;
    tracing::Span::current().record("campaign", campaign.id.as_str());
    Ok((invitation, campaign))
}

/// The invitation, its current answer and whether its person is suppressed: from the batch's
/// prefetch when there is one, else read now.
async fn load_answered(
    services: &Services,
    id: &InvitationId,
    campaigns: &CampaignCache,
) -> Result<(closeloop_core::Invitation, Campaign, Option<closeloop_core::model::Answer>, bool), FunctionError> {
    if let Some(Prefetched { invitation, answer, suppressed }) = campaigns.take(id) {
        let campaign = campaigns.get(services, &invitation.campaign_id).await?;
        tracing::Span::current().record("campaign", campaign.id.as_str());
        return Ok((invitation, campaign, answer, suppressed));
    }
    let (invitation, campaign) = load(services, id, campaigns).await?;
    let answer = services.store.answer(id).await?;
    let suppressed = invitation.erased_at.is_some() || services.store.is_suppressed(&invitation.contact.keys()).await?;
    Ok((invitation, campaign, answer, suppressed))
}

/// What became of an invitation handed to the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sending {
    /// Not yet: it goes at its `send_after`, through the schedule's due index.
    Later,
    /// Sent: by this call (`now`), or before (its send key was claimed: sent, or cancelled).
    Sent { now: bool },
    /// Waiting: its campaign is paused or outside its send window (`release_held` sends it).
    Held,
    /// Never goes out: the campaign ended, or the person is suppressed.
    Dropped,
}

/// Whether a campaign in this state sends now; if not, whether its invitations wait.
fn sending_now(status: &CampaignStatus, campaign: &Campaign, now: closeloop_core::Timestamp) -> Option<Sending> {
    if !status.sends_at(now) {
        // A draft, a campaign scheduled later or paused: it waits for the start or the resume;
        // ended: it never goes out.
        return Some(if status.state_at(now).holds() { Sending::Held } else { Sending::Dropped });
    }
    // Outside the send window (on the campaign's clock): it waits until the window opens.
    (!campaign.may_send_at(now)).then_some(Sending::Held)
}

pub(crate) async fn send_invitation(services: &Services, id: &InvitationId, campaigns: &CampaignCache) -> Result<Sending, FunctionError> {
    let (invitation, campaign) = load(services, id, campaigns).await?;
    let status = campaigns.status(services, &campaign.id).await?;
    let now = services.clock.now();
    if let Some(at) = not_yet(&invitation, now) {
        later(services, &invitation, at).await?;
        return Ok(Sending::Later);
    }
    if let Some(waiting) = sending_now(&status, &campaign, now) {
        if waiting == Sending::Held {
            hold(services, &campaign, &invitation, now).await?;
        }
        return Ok(waiting);
    }
    if invitation.erased_at.is_some() || services.store.is_suppressed(&invitation.contact.keys()).await? {
        return Ok(Sending::Dropped);
    }
    let message = ask(MessageKind::Invitation, &campaign, &invitation, services)?;
    let sent = send_once(services, &format!("invitation:{id}"), message).await?;
    Ok(Sending::Sent { now: sent })
}

/// When an invitation asked to go later is due, if that is still ahead.
fn not_yet(invitation: &closeloop_core::Invitation, now: closeloop_core::Timestamp) -> Option<closeloop_core::Timestamp> {
    invitation.send_after.filter(|at| *at > now)
}

/// Puts an invitation asked to go later on the due index at its send time (where reminders
/// wait too: the schedule sends it then, and its reminders count from that send).
async fn later(services: &Services, invitation: &closeloop_core::Invitation, at: closeloop_core::Timestamp) -> Result<(), FunctionError> {
    services.store.reminder_sent(&invitation.id, 0, Some(at)).await?;
    Ok(())
}

/// Puts an invitation on its campaign's held list, and its reminders off until it is sent: a
/// reminder must not reach someone before the invitation does.
async fn hold(services: &Services, campaign: &Campaign, invitation: &closeloop_core::Invitation, now: closeloop_core::Timestamp) -> Result<(), FunctionError> {
    services.store.hold_invitation(&campaign.id, &invitation.id, now).await?;
    services.store.reminder_sent(&invitation.id, invitation.reminders_sent, None).await?;
    Ok(())
}

/// Fresh invitations the dispatcher sends together: their reads, suppression checks, send
/// claims and (locally) outbox writes are one store call per batch instead of one per
/// invitation, and they are rendered on every core.
pub const INVITATION_BATCH: usize = 100;

/// Sends a batch of invitations as `send_invitation` sends each: one outcome per id, in order.
/// `Err` when the batch failed before anything was sent (its reads, or the claims' write).
pub async fn send_invitations(services: &Services, ids: &[InvitationId], campaigns: &CampaignCache) -> Result<Vec<Result<(), FunctionError>>, FunctionError> {
    let found = services.store.invitations_with_answers(ids).await?;
    let now = services.clock.now();
    let mut outcomes: Vec<Option<Result<(), FunctionError>>> = ids.iter().map(|_| None).collect();
    let mut loaded: HashMap<CampaignId, Arc<Campaign>> = HashMap::new();
    let mut due = Vec::with_capacity(ids.len());
    for (slot, (id, (invitation, _))) in ids.iter().zip(found).enumerate() {
        let Some(invitation) = invitation else {
            outcomes[slot] = Some(Err(FunctionError::Missing(format!("invitation {id}"))));
            continue;
        };
        let campaign = match loaded.get(&invitation.campaign_id) {
            Some(campaign) => campaign.clone(),
            None => match campaigns.get(services, &invitation.campaign_id).await {
                Ok(campaign) => loaded.entry(campaign.id.clone()).or_insert(Arc::new(campaign)).clone(),
                Err(e) => {
                    outcomes[slot] = Some(Err(e));
                    continue;
                }
            },
        };
        let status = match campaigns.status(services, &campaign.id).await {
            Ok(status) => status,
            Err(e) => {
                outcomes[slot] = Some(Err(e));
                continue;
            }
        };
        if let Some(at) = not_yet(&invitation, now) {
            outcomes[slot] = Some(later(services, &invitation, at).await);
            continue;
        }
        if let Some(waiting) = sending_now(&status, &campaign, now) {
            let held = match waiting {
                Sending::Held => hold(services, &campaign, &invitation, now).await,
                _ => Ok(()),
            };
            outcomes[slot] = Some(held);
            continue;
        }
        due.push((slot, invitation, campaign));
    }
    let people: Vec<_> = due.iter().map(|(_, invitation, _)| invitation.contact.keys()).collect();
    let suppressed = services.store.are_suppressed(&people).await?;
    let mut to_render = Vec::with_capacity(due.len());
    for (item, suppressed) in due.into_iter().zip(suppressed) {
        if suppressed || item.1.erased_at.is_some() {
            outcomes[item.0] = Some(Ok(()));
        } else {
            to_render.push(item);
        }
    }
    let mut slots = Vec::with_capacity(to_render.len());
    let mut messages = Vec::with_capacity(to_render.len());
    for (slot, key, message) in render_invitations(services, to_render).await? {
        match message {
            Ok(message) => {
                slots.push(slot);
                messages.push((key, message));
            }
            Err(e) => outcomes[slot] = Some(Err(e)),
        }
    }
    for (slot, sent) in slots.into_iter().zip(send_once_many(services, messages).await?) {
        outcomes[slot] = Some(sent.map(|_| ()));
    }
    Ok(outcomes
        .into_iter()
        .zip(ids)
        .map(|(outcome, id)| outcome.unwrap_or_else(|| Err(FunctionError::Missing(format!("an outcome for invitation {id}")))))
        .collect())
}

type Rendered = (usize, String, Result<Outgoing, FunctionError>);

fn render_part(services: &Services, part: Vec<(usize, closeloop_core::Invitation, Arc<Campaign>)>) -> Vec<Rendered> {
    part.into_iter()
        .map(|(slot, invitation, campaign)| {
            let message = ask(MessageKind::Invitation, &campaign, &invitation, services);
            (slot, format!("invitation:{}", invitation.id), message)
        })
        .collect()
}

/// Renders the invitations on blocking threads, one part per core: rendering is the CPU work
/// of a launch, and on the async thread it would run on one core only.
#[cfg(not(target_arch = "wasm32"))]
async fn render_invitations(services: &Services, items: Vec<(usize, closeloop_core::Invitation, Arc<Campaign>)>) -> Result<Vec<Rendered>, FunctionError> {
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, items.len().max(1));
    let per_part = items.len().div_ceil(parts).max(1);
    let mut items = items.into_iter();
    let mut running = Vec::with_capacity(parts);
    for _ in 0..parts {
        let part: Vec<_> = items.by_ref().take(per_part).collect();
        let services = services.clone();
        running.push(tokio::task::spawn_blocking(move || render_part(&services, part)));
    }
    let mut rendered = Vec::new();
    for part in running {
        match part.await {
            Ok(part) => rendered.extend(part),
            // A panic while rendering stays a panic, as it was on the async thread.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(FunctionError::Interrupted(Box::new(e))),
        }
    }
    Ok(rendered)
}

/// The Worker has one thread: rendered in place.
#[cfg(target_arch = "wasm32")]
async fn render_invitations(services: &Services, items: Vec<(usize, closeloop_core::Invitation, Arc<Campaign>)>) -> Result<Vec<Rendered>, FunctionError> {
    Ok(render_part(services, items))
}

async fn react_to_answer(services: &Services, id: &InvitationId, campaigns: &CampaignCache, event: &Event, version: u32) -> Result<(), FunctionError> {
    let (invitation, campaign, answer, suppressed) = load_answered(services, id, campaigns).await?;
    // The current answer decides: a later change has its own event, and keys keep each
    // message to one per invitation.
    let answer = answer.ok_or_else(|| FunctionError::Missing(format!("answer of {id}")))?;
    if invitation.erased_at.is_none() {
        let kind = if version <= 1 { WebhookEvent::ResponseCreated } else { WebhookEvent::ResponseUpdated };
        crate::webhooks::queue(services.store.as_ref(), &campaign, kind, &event.id, id, version, event.at).await?;
    }
    let links = &services.links;

    if !suppressed {
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

    // An erased person is followed up no more: no case to escalate about nobody, no alert.
    if let Some(kind) = rules::follow_up_kind(&campaign, &answer).filter(|_| invitation.erased_at.is_none()) {
        let owner = invitation.contact.owner_email.clone().or_else(|| campaign.manager_email.clone());
        let case = FollowUpCase::new(
            id.clone(),
            campaign.id.clone(),
            owner.clone(),
            answer.answered_at,
            rules::follow_up_due(&campaign, kind, answer.answered_at),
        );
        // A case opened before (a redelivered event) keeps its own deadline: read it only then.
        let case = if services.store.open_case(&case).await? { case } else { services.store.case(id).await?.unwrap_or(case) };
        // Once per case, whichever version of the answer opened it (the id says so).
        crate::webhooks::queue(services.store.as_ref(), &campaign, WebhookEvent::CaseOpened, &format!("case-{id}"), id, 0, case.opened_at).await?;
        // Slack and Teams: their own queue, so a chat outage never holds up the mail alert.
        crate::webhooks::queue_chat_alert(services.store.as_ref(), &campaign, id, case.owner_email.as_ref(), case.opened_at).await?;
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

/// Sends the invitations of every campaign that waited while it was paused or outside its send
/// window, now that it sends again; each goes out once (its send key) and leaves the held list after its send.
pub async fn release_held(services: &Services) -> Result<usize, FunctionError> {
    let campaigns = CampaignCache::default();
    let mut released = 0;
    for campaign in services.store.campaigns().await? {
        released += release_campaign(services, &campaign, &campaigns, RELEASED_PER_RUN).await?;
    }
    Ok(released)
}

/// Invitations a start or resume releases at once (`HeldReleaseRequested`), within a stream
/// handler's time budget; the schedule's next run releases the rest.
pub const RELEASED_PER_REQUEST: usize = 100;

/// Sends up to `limit` of one campaign's held invitations, if it sends now.
async fn release_campaign(services: &Services, campaign: &Campaign, campaigns: &CampaignCache, limit: usize) -> Result<usize, FunctionError> {
    let now = services.clock.now();
    if sending_now(&campaigns.status(services, &campaign.id).await?, campaign, now).is_some() {
        return Ok(0);
    }
    let mut released = 0;
    for id in services.store.held_invitations(&campaign.id, limit).await? {
        match send_invitation(services, &id, campaigns).await {
            // The window closed (or the campaign paused) meanwhile: it and the rest stay.
            Ok(Sending::Held) => break,
            // Its reminders start now, counted from when it went out.
            Ok(Sending::Sent { now: true }) => {
                let next = closeloop_core::rules::next_reminder_at(&campaign.reminders, now, 0, now);
                services.store.reminder_sent(&id, 0, next).await?;
            }
            // Sent before, never to go, or on the due index for its own later time.
            Ok(Sending::Sent { now: false } | Sending::Dropped | Sending::Later) => {}
            Err(e) if e.is_retryable() => return Err(e),
            // A held invitation whose row is gone cannot be sent; it leaves the list.
            Err(e) => tracing::error!(invitation = %id, error = %e, "dropped from the held invitations"),
        }
        services.store.release_invitation(&campaign.id, &id).await?;
        released += 1;
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
        // An invitation's only event being its creation (every row of a launch): sent in
        // batches. Any other invitation's events go one after another.
        let (fresh, others): (Vec<Vec<Event>>, Vec<Vec<Event>>) =
            groups.into_iter().partition(|group| matches!(group.as_slice(), [Event { kind: EventKind::InvitationCreated { .. }, .. }]));
        let answered: Vec<InvitationId> = others
            .iter()
            .filter(|group| group.iter().any(|event| matches!(event.kind, EventKind::AnswerRecorded { .. })))
            .map(|group| event_invitation(&group[0]).clone())
            .collect();
        // A failed prefetch (one unreadable row fails the whole read) only means each event
        // reads its own, as on AWS: one bad row must not stop every campaign's dispatch.
        if let Err(e) = campaigns.prefetch(services, &answered).await {
            tracing::warn!(error = %e, "prefetching the batch failed; each event reads its own");
        }
        let mut work: Vec<Work> = Vec::with_capacity(fresh.len() / INVITATION_BATCH + 1 + others.len());
        let mut fresh = fresh.into_iter().flatten().peekable();
        while fresh.peek().is_some() {
            work.push(Work::Fresh(fresh.by_ref().take(INVITATION_BATCH).collect()));
        }
        work.extend(others.into_iter().map(Work::InOrder));
        let results: Vec<(DispatchSummary, Vec<String>)> = futures_util::stream::iter(work)
            .map(|work| match work {
                Work::Fresh(batch) => futures_util::future::Either::Left(dispatch_fresh(services, batch, &campaigns)),
                Work::InOrder(group) => futures_util::future::Either::Right(dispatch_in_order(services, group, &campaigns)),
            })
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

enum Work {
    Fresh(Vec<Event>),
    InOrder(Vec<Event>),
}

/// A batch of invitations' creation events: sent together (`send_invitations`).
async fn dispatch_fresh(services: &Services, batch: Vec<Event>, campaigns: &CampaignCache) -> (DispatchSummary, Vec<String>) {
    let mut summary = DispatchSummary::default();
    let ids: Vec<InvitationId> = batch.iter().map(|event| event_invitation(event).clone()).collect();
    let outcomes = match send_invitations(services, &ids, campaigns).await {
        Ok(outcomes) => outcomes,
        Err(e) if e.is_retryable() => {
            tracing::warn!(events = batch.len(), error = %e, "invitation batch failed; it stays pending");
            summary.deferred = batch.len();
            return (summary, Vec::new());
        }
        // One unreadable row fails the batch's read for all: each invitation alone, so only
        // the bad one is dropped.
        Err(e) => {
            tracing::warn!(events = batch.len(), error = %e, "invitation batch failed; sending one by one");
            let mut one_by_one = Vec::with_capacity(ids.len());
            for id in &ids {
                one_by_one.push(send_invitation(services, id, campaigns).await.map(|_| ()));
            }
            one_by_one
        }
    };
    let mut done = Vec::with_capacity(batch.len());
    for (event, outcome) in batch.into_iter().zip(outcomes) {
        match outcome {
            Ok(()) => summary.handled += 1,
            Err(e) if e.is_retryable() => {
                tracing::warn!(event = %event.id, error = %e, "deferred");
                summary.deferred += 1;
                continue;
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
