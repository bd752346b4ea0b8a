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
    Ok(summary)
}
