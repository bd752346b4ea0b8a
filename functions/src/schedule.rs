//! Scheduled work as of a given moment: due reminders, then overdue follow-ups.

use closeloop_core::ports::MessageKind;
use closeloop_core::{render, rules, Timestamp};

use crate::messages::{ask, send_once, to_staff, Outgoing};
use crate::{FunctionError, Services};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ScheduleSummary {
    pub reminders_sent: usize,
    /// Due reminders dropped because the contact unsubscribed meanwhile.
    pub reminders_skipped: usize,
    pub escalations_sent: usize,
    pub digests_sent: usize,
}

/// Digests go out on Monday mornings (UTC), once per ISO week, whichever schedule run comes first.
fn digest_due(at: Timestamp) -> bool {
    at.weekday_number() == 1 && at.hour() >= 7
}

const PAGE: usize = 200;

pub async fn run(services: &Services, at: Timestamp) -> Result<ScheduleSummary, FunctionError> {
    let mut summary = ScheduleSummary::default();
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
            if services.store.is_suppressed(&invitation.contact.keys()).await? {
                services.store.reminder_sent(&invitation.id, invitation.reminders_sent, None).await?;
                summary.reminders_skipped += 1;
                continue;
            }
            let number = invitation.reminders_sent + 1;
            let message = ask(MessageKind::Reminder, &campaign, &invitation, services)?;
            if send_once(services, &format!("reminder:{}:{number}", invitation.id), message).await? {
                summary.reminders_sent += 1;
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
    if digest_due(at) {
        summary.digests_sent = send_digests(services, at).await?;
    }
    Ok(summary)
}

/// One digest per owner, and one per campaign to its manager, for the week before `at`.
pub async fn send_digests(services: &Services, at: Timestamp) -> Result<usize, FunctionError> {
    let week = at.iso_week();
    let mut sent = 0;
    for campaign in services.store.campaigns().await? {
        // One pass per campaign and week: later runs on the same Monday skip the whole scan.
        let run_key = format!("digest-run:{}:{week}", campaign.id);
        if !services.store.claim_send(&run_key, at).await? {
            continue;
        }
        match campaign_digests(services, &campaign, at, &week).await {
            Ok(n) => sent += n,
            Err(e) => {
                services.store.release_send(&run_key).await?;
                return Err(e);
            }
        }
    }
    Ok(sent)
}

async fn campaign_digests(services: &Services, campaign: &closeloop_core::Campaign, at: Timestamp, week: &str) -> Result<usize, FunctionError> {
    let rows = services.store.campaign_rows(&campaign.id).await?;
    let mut by_owner: std::collections::BTreeMap<&str, Vec<&closeloop_core::ports::InvitationRow>> = Default::default();
    for row in &rows {
        if let Some(owner) = &row.invitation.contact.owner_email {
            by_owner.entry(owner.as_str()).or_default().push(row);
        }
    }
    let mut recipients: Vec<(String, String, Vec<&closeloop_core::ports::InvitationRow>)> =
        by_owner.into_iter().map(|(owner, rows)| (owner.to_owned(), owner.to_owned(), rows)).collect();
    if let Some(manager) = &campaign.manager_email {
        recipients.push((manager.as_str().to_owned(), format!("{} ({})", campaign.name, campaign.id), rows.iter().collect()));
    }
    let locale = campaign.locales[0];
    let mut sent = 0;
    for (to, scope, rows) in recipients {
        let digest = closeloop_core::report::weekly_digest(rows.iter().copied(), at);
        if digest.is_empty() {
            continue;
        }
        let mut cases = Vec::with_capacity(digest.new_detractors.len());
        for entry in &digest.new_detractors {
            let case = services.store.case(&entry.invitation_id).await?;
            cases.push(case.filter(|c| c.status == closeloop_core::CaseStatus::Open).map(|c| (c.due_at, c.due_at <= at)));
        }
        let rendered = render::digest_mail(locale, &scope, &digest, &cases)?;
        let mail = to_staff(MessageKind::Digest, campaign, &to, rendered);
        if send_once(services, &format!("digest:{}:{to}:{week}", campaign.id), Outgoing::Mail(mail)).await? {
            sent += 1;
        }
    }
    Ok(sent)
}
