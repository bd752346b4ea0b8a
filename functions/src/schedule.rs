//! Scheduled work as of a given moment: due reminders, then overdue follow-ups.

use closeloop_core::lifecycle::CampaignState;
use closeloop_core::accounts::{Accounts, Role};
use closeloop_core::ports::{MessageKind, SendError};
use closeloop_core::{rules, Timestamp};
use closeloop_views::render;

use crate::messages::{ask, send_once, to_staff, Outgoing};
use crate::{FunctionError, Services};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ScheduleSummary {
    pub reminders_sent: usize,
    /// Due reminders dropped because the contact unsubscribed meanwhile or the campaign ended.
    pub reminders_skipped: usize,
    /// Due reminders put off: of paused campaigns by `PAUSED_REMINDER_DELAY_HOURS`, outside a
    /// campaign's send window until it opens.
    pub reminders_put_off: usize,
    /// Invitations of resumed campaigns sent after waiting.
    pub invitations_released: usize,
    pub escalations_sent: usize,
    pub digests_sent: usize,
    /// Heads-up mails to the contacts of campaigns that start within their `heads_up_days`.
    pub heads_ups_sent: usize,
    /// Invitations whose personal data was erased for being older than their campaign's
    /// `retention_months`.
    pub invitations_retained: usize,
    /// "You said, we did" mails sent by this run (updates still going out).
    pub updates_sent: usize,
}

/// A campaign's digests go out on Monday from 08:00 on its clock, once per ISO week, whichever
/// schedule run comes first. Returns that week when they are due.
fn digest_week(campaign: &closeloop_core::Campaign, at: Timestamp) -> Option<String> {
    let (week, day, hour) = at.week_day_hour_in(&campaign.zone());
    (day == 1 && hour >= DIGEST_HOUR).then_some(week)
}

/// The hour of Monday, on the campaign's clock, from which its weekly digests go out.
pub const DIGEST_HOUR: u8 = 8;

const PAGE: usize = 200;

/// `accounts` gives the digests their recipients' languages and the admins' addresses.
pub async fn run(services: &Services, accounts: &Accounts, at: Timestamp) -> Result<ScheduleSummary, FunctionError> {
    let mut summary = ScheduleSummary::default();
    let statuses = crate::dispatch::CampaignCache::default();
    // Invitations that waited (a send window opening, a resume) go first: their reminders
    // start only once they are sent.
    summary.invitations_released = crate::dispatch::release_held(services).await?;
    loop {
        let due = services.store.due_reminders(at, PAGE).await?;
        if due.is_empty() {
            break;
        }
        for invitation in due {
            let Some(campaign) = services.store.campaign(&invitation.campaign_id).await? else {
                services.store.reminder_sent(&invitation.id, invitation.reminders_sent, None).await?;
                continue;
            };
            let status = statuses.status(services, &campaign.id).await?;
            match status.state_at(at) {
                CampaignState::Active => {}
                // Out of the way of other campaigns' reminders, and looked at again later.
                CampaignState::Paused | CampaignState::Draft | CampaignState::Scheduled => {
                    let later = at.plus_hours(PAUSED_REMINDER_DELAY_HOURS);
                    services.store.reminder_sent(&invitation.id, invitation.reminders_sent, Some(later)).await?;
                    summary.reminders_put_off += 1;
                    continue;
                }
                CampaignState::Ended => {
                    services.store.reminder_sent(&invitation.id, invitation.reminders_sent, None).await?;
                    summary.reminders_skipped += 1;
                    continue;
                }
            }
            // An invitation asked to go later waits on this index at exactly its send time (its
            // send slot); once sent, its entry is its first reminder, at another time. The slot
            // sends the invitation itself (once: its send key), never a reminder.
            let send_slot = invitation.reminders_sent == 0 && invitation.send_after.is_some() && invitation.next_reminder_at == invitation.send_after;
            if send_slot {
                use crate::dispatch::Sending;
                let next = match crate::dispatch::send_invitation(services, &invitation.id, &statuses).await? {
                    Sending::Sent { now: true } => {
                        summary.invitations_released += 1;
                        rules::next_reminder_at(&campaign.reminders, at, 0, at)
                    }
                    // Sent by a run cut off before it moved the slot on, or cancelled: a cancel
                    // leaves its mark, and a cancelled invitation is never reminded.
                    Sending::Sent { now: false } if cancelled(services, &invitation.id, at).await? => None,
                    Sending::Sent { now: false } => rules::next_reminder_at(&campaign.reminders, at, 0, at),
                    // Held (its list clears its reminders) or later: nothing to change here.
                    Sending::Held | Sending::Later => continue,
                    Sending::Dropped => None,
                };
                services.store.reminder_sent(&invitation.id, 0, next).await?;
                continue;
            }
            if !campaign.may_send_at(at) {
                // Outside the send window: due again when it next opens.
                let opens = campaign.next_send_time(at);
                services.store.reminder_sent(&invitation.id, invitation.reminders_sent, Some(opens)).await?;
                summary.reminders_put_off += 1;
                continue;
            }
            if services.store.is_suppressed(&invitation.contact.keys()).await? {
                services.store.reminder_sent(&invitation.id, invitation.reminders_sent, None).await?;
                summary.reminders_skipped += 1;
                continue;
            }
            let number = invitation.reminders_sent + 1;
            let message = ask(MessageKind::Reminder, &campaign, &invitation, services)?;
            match send_once(services, &format!("reminder:{}:{number}", invitation.id), message).await {
                Ok(true) => summary.reminders_sent += 1,
                Ok(false) => {}
                // An address the mail service will never take fails this reminder, not the run:
                // the others still go, and this one is not tried again.
                Err(FunctionError::Send(SendError::Permanent(e))) => {
                    tracing::error!(invitation = %invitation.id, error = %e, "reminder refused for good");
                    summary.reminders_skipped += 1;
                }
                Err(e) => return Err(e),
            }
            let next = rules::next_reminder_at(&campaign.reminders, invitation.created_at, number, at);
            services.store.reminder_sent(&invitation.id, number, next).await?;
        }
    }
    loop {
        let overdue = services.store.overdue_cases(at, PAGE).await?;
        if overdue.is_empty() {
            break;
        }
        for case in overdue {
            let id = &case.invitation_id;
            let invitation = services.store.invitation(id).await?;
            let campaign = services.store.campaign(&case.campaign_id).await?;
            let answer = services.store.answer(id).await?;
            let (Some(invitation), Some(campaign), Some(answer)) = (invitation, campaign, answer) else {
                services.store.case_escalated(id, at).await?;
                continue;
            };
            crate::webhooks::queue(services.store.as_ref(), &campaign, closeloop_core::webhooks::WebhookEvent::CaseOverdue, &format!("overdue-{id}"), id, 0, at).await?;
            // Escalation goes up to the manager; without one, back to the owner as a warning.
            if let Some(to) = campaign.manager_email.clone().or(case.owner_email.clone()) {
                let rendered = render::follow_up_mail(MessageKind::Escalation, &campaign, &invitation, &answer, case.due_at)?;
                let mail = to_staff(MessageKind::Escalation, &campaign, to.as_str(), rendered);
                if send_once(services, &format!("escalation:{id}"), Outgoing::Mail(mail)).await? {
                    summary.escalations_sent += 1;
                }
            }
            services.store.case_escalated(id, at).await?;
        }
    }
    summary.digests_sent = send_digests(services, accounts, at).await?;
    // Last: a heads-up walk is the longest step, and the others must not wait on it.
    summary.heads_ups_sent = send_heads_ups(services, &statuses, at).await?;
    summary.invitations_retained = apply_retention(services, at).await?;
    summary.updates_sent = crate::updates::continue_updates(services).await?;
    Ok(summary)
}

/// Invitations retention erases in one run: each is a read and a transaction, so a run stays
/// well inside the schedule function's timeout; the rest go in the next runs.
pub const RETAINED_PER_RUN: usize = 500;

/// Erases, as `privacy` does, the personal data of invitations older than their campaign's
/// `retention_months` (GDPR Art. 5(1)(e)). Counts stay. Unlike a person's erasure it leaves no
/// suppression: the person may be asked again in a later campaign.
pub async fn apply_retention(services: &Services, at: Timestamp) -> Result<usize, FunctionError> {
    let mut erased = 0;
    for campaign in services.store.campaigns().await? {
        if erased >= RETAINED_PER_RUN {
            break;
        }
        let cutoff = at.minus_months(campaign.retention_months);
        for id in services.store.invitations_to_retain(&campaign.id, cutoff, RETAINED_PER_RUN - erased).await? {
            if services.store.erase_invitation(&id, at).await? {
                erased += 1;
            }
        }
    }
    if erased > 0 {
        services.store.purge_erased().await?;
    }
    Ok(erased)
}

/// How long a paused campaign's due reminder is put off before it is looked at again.
pub const PAUSED_REMINDER_DELAY_HOURS: u32 = 1;

/// One digest per owner, and one per campaign to its manager and to each admin account with an
/// email address, for the week before `at`: for each campaign whose Monday morning it is.
pub async fn send_digests(services: &Services, accounts: &Accounts, at: Timestamp) -> Result<usize, FunctionError> {
    // The accounts as they stand in the store (roles and addresses changed in the dashboard),
    // with bootstrap accounts not stored yet; a disabled account gets no digest.
    let accounts = &Accounts::live(services.store.accounts().await?, accounts);
    let mut sent = 0;
    let mut first_error = None;
    for campaign in services.store.campaigns().await? {
        let Some(week) = digest_week(&campaign, at) else { continue };
        // A campaign whose digests all went out this week is skipped without a scan. The marker
        // is set only after the last digest, so a run cut short (a Lambda timeout) leaves the
        // campaign to the next run, whose per-recipient keys skip what went out already.
        let done_key = format!("digest-done:{}:{week}", campaign.id);
        if marked(services, &done_key, at).await? {
            continue;
        }
        match campaign_digests(services, accounts, &campaign, at, &week).await {
            Ok(n) => {
                sent += n;
                services.store.claim_send(&done_key, at).await?;
            }
            // One campaign's failure does not hold back the others' digests.
            Err(e) => {
                tracing::warn!(campaign = %campaign.id, error = %e, "digests not finished; the next run goes on");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(sent),
    }
}

async fn campaign_digests(
    services: &Services,
    accounts: &Accounts,
    campaign: &closeloop_core::Campaign,
    at: Timestamp,
    week: &str,
) -> Result<usize, FunctionError> {
    use closeloop_core::ports::InvitationRow;
    let rows = services.store.campaign_rows(&campaign.id).await?;
    let mut by_owner: std::collections::BTreeMap<&closeloop_core::Email, Vec<&InvitationRow>> = Default::default();
    for row in &rows {
        if let Some(owner) = &row.invitation.contact.owner_email {
            by_owner.entry(owner).or_default().push(row);
        }
    }
    // (to, scope shown in the mail, whose cases, rows)
    let mut recipients: Vec<(String, String, Option<&closeloop_core::Email>, Vec<&InvitationRow>)> =
        by_owner.into_iter().map(|(owner, rows)| (owner.as_str().to_owned(), owner.as_str().to_owned(), Some(owner), rows)).collect();
    let campaign_scope = format!("{} ({})", campaign.name, campaign.id);
    let admins = accounts.iter().filter(|a| a.role == Role::Admin).filter_map(|a| a.email.clone());
    let mut everyone: Vec<closeloop_core::Email> = campaign.manager_email.iter().cloned().chain(admins).collect();
    everyone.sort();
    everyone.dedup();
    for to in everyone {
        if recipients.iter().all(|(r, ..)| *r != to.as_str()) {
            recipients.push((to.as_str().to_owned(), campaign_scope.clone(), None, rows.iter().collect()));
        }
    }
    let all_cases = services.store.cases(&campaign.id, None).await?;
    queue_chat_digests(services, campaign, &rows, &all_cases, at, week).await?;
    let mut sent = 0;
    for (to, scope, owner, rows) in recipients {
        let digest = closeloop_core::report::weekly_digest(rows.iter().copied(), at);
        if digest.is_empty() {
            continue;
        }
        let mut cases = Vec::with_capacity(digest.new_detractors.len());
        for entry in &digest.new_detractors {
            let case = all_cases.iter().find(|c| c.invitation_id == entry.invitation_id);
            cases.push(case.filter(|c| c.status == closeloop_core::CaseStatus::Open).map(|c| (c.due_at, c.due_at <= at)));
        }
        let theirs = all_cases.iter().filter(|c| owner.is_none() || c.owner_email.as_ref() == owner);
        let open: Vec<_> = theirs.filter(|c| c.status == closeloop_core::CaseStatus::Open).collect();
        let open_cases = (open.len(), open.iter().filter(|c| c.is_overdue(at)).count());
        // The recipient's own language and clock if they have an account that says so, else
        // the campaign's.
        let account = closeloop_core::Email::parse(&to).ok().and_then(|e| accounts.by_email(&e).cloned());
        let locale = account.as_ref().and_then(|a| a.locale).unwrap_or(campaign.locales[0]);
        let zone = account.as_ref().map_or_else(|| campaign.zone(), |a| a.zone_for(campaign));
        let rendered = render::digest_mail(locale, &zone, &scope, &digest, &cases, open_cases, &services.links.dashboard(&campaign.id))?;
        let mail = to_staff(MessageKind::Digest, campaign, &to, rendered);
        if send_once(services, &format!("digest:{}:{to}:{week}", campaign.id), Outgoing::Mail(mail)).await? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// The week in figures for the campaign's digest webhooks and chat channels, and for each owner
/// a channel is theirs. Queued once a week per scope: the deliveries' ids say so.
async fn queue_chat_digests(
    services: &Services,
    campaign: &closeloop_core::Campaign,
    rows: &[closeloop_core::ports::InvitationRow],
    cases: &[closeloop_core::FollowUpCase],
    at: Timestamp,
    week: &str,
) -> Result<(), FunctionError> {
    let wants_digest = campaign.chat.iter().any(|c| c.events.contains(&closeloop_core::webhooks::ChatEvent::Digest))
        || campaign.webhooks.iter().any(|w| w.wants(closeloop_core::webhooks::WebhookEvent::DigestWeekly));
    if !wants_digest {
        return Ok(());
    }
    let mut scopes: Vec<Option<&closeloop_core::Email>> = vec![None];
    for channel in &campaign.chat {
        if let Some(owner) = &channel.owner {
            if !scopes.contains(&Some(owner)) {
                scopes.push(Some(owner));
            }
        }
    }
    for owner in scopes {
        let theirs = rows.iter().filter(|r| owner.is_none() || r.invitation.contact.owner_email.as_ref() == owner);
        let digest = closeloop_core::report::weekly_digest(theirs, at);
        if digest.is_empty() {
            continue;
        }
        let open: Vec<_> = cases.iter().filter(|c| (owner.is_none() || c.owner_email.as_ref() == owner) && c.status == closeloop_core::CaseStatus::Open).collect();
        let estimate = digest.this_week.estimate();
        let summary = closeloop_core::webhooks::DigestSummary {
            week: week.to_owned(),
            nps: estimate.map(|e| e.nps.round() as i32),
            margin_95: estimate.map(|e| e.margin_95.round().max(0.0) as u32),
            answered: digest.this_week.answered(),
            promoters: digest.this_week.promoters,
            passives: digest.this_week.passives,
            detractors: digest.this_week.detractors,
            new_detractors: digest.new_detractors.len(),
            open_cases: open.len(),
            overdue_cases: open.iter().filter(|c| c.is_overdue(at)).count(),
            dashboard_url: services.links.dashboard(&campaign.id),
        };
        crate::webhooks::queue_digest(services.store.as_ref(), campaign, owner, &summary, at).await?;
    }
    Ok(())
}

/// Whether a mark (a send key claimed as a flag: a finished walk, a cancel) is set. Marks are
/// read by claiming them: a claim that succeeds was no mark yet, and is given back.
async fn marked(services: &Services, key: &str, at: Timestamp) -> Result<bool, FunctionError> {
    if services.store.claim_send(key, at).await? {
        services.store.release_send(key).await?;
        return Ok(false);
    }
    Ok(true)
}

/// Whether an invitation was cancelled (the API's `cancelled:{id}` mark).
async fn cancelled(services: &Services, id: &closeloop_core::model::InvitationId, at: Timestamp) -> Result<bool, FunctionError> {
    marked(services, &format!("cancelled:{id}"), at).await
}

/// Held invitations a heads-up walk reads at once.
const HEADS_UP_PAGE: usize = 100;

/// Heads-ups one run sends at most; the next run goes on where the mails' keys say.
const HEADS_UPS_PER_RUN: usize = 2_000;

/// Heads-up mails for every scheduled campaign with `heads_up_days` whose start is that close:
/// one to each contact with an address whose invitation waits for the start, from their owner
/// (the name `[owners]` gives their address, replies to them) or the sender. Each mail once
/// (`heads_up:{invitation}`); a campaign's walk is marked done (`heads_up_done:{campaign}:{start}`)
/// only once it has reached the end of the held list, so a run cut off or over its share leaves
/// the rest to the next run. A campaign whose walk fails is logged and skipped: the rest of the
/// run goes on.
async fn send_heads_ups(services: &Services, statuses: &crate::dispatch::CampaignCache, at: Timestamp) -> Result<usize, FunctionError> {
    let mut sent = 0;
    for campaign in services.store.campaigns().await? {
        let Some(days) = campaign.heads_up_days else { continue };
        let status = statuses.status(services, &campaign.id).await?;
        let (CampaignState::Scheduled, Some(start)) = (status.state_at(at), status.starts_at) else { continue };
        if at < start.minus_days(days) || sent >= HEADS_UPS_PER_RUN {
            continue;
        }
        let done = format!("heads_up_done:{}:{}", campaign.id, start.millis());
        if marked(services, &done, at).await? {
            continue;
        }
        match walk_heads_ups(services, &campaign, start, HEADS_UPS_PER_RUN - sent).await {
            Ok((n, finished)) => {
                sent += n;
                if finished {
                    services.store.claim_send(&done, at).await?;
                }
            }
            Err(e) => tracing::error!(campaign = %campaign.id, error = %e, "heads-ups failed; the next run goes on"),
        }
    }
    Ok(sent)
}

/// Sends up to `budget` heads-ups; the count, and whether the walk reached the end of the list.
async fn walk_heads_ups(services: &Services, campaign: &closeloop_core::Campaign, start: Timestamp, budget: usize) -> Result<(usize, bool), FunctionError> {
    let zone = campaign.zone();
    let starts = start.display_date_in(&zone);
    let names: std::collections::HashMap<&str, &str> = campaign.owners.iter().map(|(name, email)| (email.as_str(), name.as_str())).collect();
    let mut sent = 0;
    let mut page = services.store.held_invitations(&campaign.id, HEADS_UP_PAGE).await?;
    while let Some(last) = page.last().cloned() {
        let found = services.store.invitations_with_answers(&page).await?;
        let invitations: Vec<closeloop_core::Invitation> = found.into_iter().filter_map(|(invitation, _)| invitation).filter(|i| i.contact.email.is_some()).collect();
        let people: Vec<_> = invitations.iter().map(|i| i.contact.keys()).collect();
        let suppressed = services.store.are_suppressed(&people).await?;
        let mut mails = Vec::new();
        for (invitation, suppressed) in invitations.iter().zip(suppressed) {
            if suppressed {
                continue;
            }
            let owner = invitation.contact.owner_email.as_ref();
            let signer = owner.and_then(|o| names.get(o.as_str()).copied()).unwrap_or(&campaign.sender_name);
            let rendered = render::heads_up_mail(campaign, invitation, signer, &starts, &services.links)?;
            let Some(mut mail) = crate::messages::to_respondent(MessageKind::HeadsUp, campaign, invitation, rendered, services) else { continue };
            mail.from_name = signer.to_owned();
            if let Some(owner) = owner {
                mail.headers.push(("Reply-To".to_owned(), owner.as_str().to_owned()));
            }
            mails.push((format!("heads_up:{}", invitation.id), Outgoing::Mail(mail)));
        }
        for outcome in crate::messages::send_once_many(services, mails).await? {
            if outcome? {
                sent += 1;
            }
        }
        if sent >= budget {
            return Ok((sent, false));
        }
        page = services.store.held_invitations_after(&campaign.id, &last, HEADS_UP_PAGE).await?;
    }
    Ok((sent, true))
}
