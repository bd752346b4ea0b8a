//! Turning rendered templates into outgoing messages, each sent at most once.

use closeloop_core::campaign::Campaign;
use closeloop_core::model::{Channel, Invitation};
use closeloop_core::ports::{MessageKind, OutgoingMail, OutgoingSms, SendError};
use closeloop_views::render::{self, RenderedMail};

use crate::{FunctionError, Services};

pub enum Outgoing {
    Mail(OutgoingMail),
    Sms(OutgoingSms),
}

/// Sends `message` unless a message with the same `key` was sent before. The claim is taken
/// first and given back if the send fails, so a retry after a failure sends, and a retry after
/// a success does not. Returns whether this call sent.
pub async fn send_once(services: &Services, key: &str, mut message: Outgoing) -> Result<bool, FunctionError> {
    if let Outgoing::Mail(mail) = &mut message {
        mail.key = key.to_owned();
    }
    if !services.store.claim_send(key, services.clock.now()).await? {
        tracing::debug!(key = %loggable(key), "already sent");
        return Ok(false);
    }
    let sent = match &message {
        Outgoing::Mail(mail) => services.mailer.send_mail(mail).await,
        Outgoing::Sms(sms) => services.sms.send_sms(sms).await,
    };
    settle(services, key, sent).await
}

/// `send_once` for a batch, with one outcome per message in order (`Ok(true)`: sent now;
/// `Ok(false)`: sent before). The claims are one store write and the mails one `send_mails`
/// call; SMS go one by one. A failed claim write fails the whole batch (nothing was sent).
pub async fn send_once_many(services: &Services, messages: Vec<(String, Outgoing)>) -> Result<Vec<Result<bool, FunctionError>>, FunctionError> {
    let keys: Vec<String> = messages.iter().map(|(key, _)| key.clone()).collect();
    let claimed = services.store.claim_sends(&keys, services.clock.now()).await?;
    let mut outcomes: Vec<Option<Result<bool, FunctionError>>> = Vec::with_capacity(messages.len());
    let mut mails = Vec::new();
    let mut mail_slots = Vec::new();
    for ((key, message), claimed) in messages.into_iter().zip(claimed) {
        if !claimed {
            tracing::debug!(key = %loggable(&key), "already sent");
            outcomes.push(Some(Ok(false)));
            continue;
        }
        match message {
            Outgoing::Mail(mut mail) => {
                mail.key = key;
                mail_slots.push(outcomes.len());
                mails.push(mail);
                outcomes.push(None);
            }
            Outgoing::Sms(sms) => {
                let sent = services.sms.send_sms(&sms).await;
                outcomes.push(Some(settle(services, &key, sent).await));
            }
        }
    }
    let mut sent = services.mailer.send_mails(&mails).await.into_iter();
    for (slot, mail) in mail_slots.into_iter().zip(&mails) {
        // A mailer that answers for fewer mails than it was given: the rest count as failed
        // for now, so their claims are given back and a retry sends them.
        let outcome = sent.next().unwrap_or_else(|| Err(SendError::transient(NoOutcome)));
        outcomes[slot] = Some(settle(services, &mail.key, outcome).await);
    }
    Ok(outcomes.into_iter().map(|o| o.unwrap_or_else(|| Err(FunctionError::Send(SendError::transient(NoOutcome))))).collect())
}

/// The mailer gave no outcome for a mail it was handed.
#[derive(Debug, thiserror::Error)]
#[error("the mailer reported no outcome for this mail")]
struct NoOutcome;

/// After one send: logged if it went out; its claim given back if it may succeed later (a
/// permanent failure keeps the claim: sending again would fail the same way).
async fn settle(services: &Services, key: &str, sent: Result<String, SendError>) -> Result<bool, FunctionError> {
    match sent {
        Ok(id) => {
            tracing::info!(key = %loggable(key), provider_id = %id, "sent");
            Ok(true)
        }
        Err(e) => {
            if matches!(e, SendError::Transient(_)) {
                if let Err(release) = services.store.release_send(key).await {
                    // The claim stays: this message will not be retried by itself.
                    tracing::error!(key = %loggable(key), error = %release, "a failed send's claim could not be given back");
                    return Err(release.into());
                }
            }
            Err(e.into())
        }
    }
}

/// A send key as a log line may show it: a part holding an address (a digest's recipient) is
/// left out (a hash of an address is still personal data: anyone can hash a guess).
fn loggable(key: &str) -> String {
    key.split(':')
        .map(|part| if part.contains('@') { "(address)".to_owned() } else { part.to_owned() })
        .collect::<Vec<_>>()
        .join(":")
}

/// Mail to the respondent: from the campaign's sender, with one-click unsubscribe headers.
pub fn to_respondent(kind: MessageKind, campaign: &Campaign, invitation: &Invitation, rendered: RenderedMail, services: &Services) -> Option<OutgoingMail> {
    let email = invitation.contact.email.as_ref()?;
    let unsubscribe = services.links.unsubscribe(&invitation.token);
    Some(OutgoingMail {
        kind,
        key: String::new(),
        from_name: campaign.sender_name.clone(),
        from_email: campaign.sender_email.as_str().to_owned(),
        to_name: Some(invitation.contact.full_name()).filter(|n| !n.is_empty()),
        to_email: email.as_str().to_owned(),
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        headers: list_headers(campaign, &unsubscribe, invitation.token.as_str()),
    })
}

/// The list headers of survey mail: `List-Id` (the campaign, under the sender's domain), and
/// `List-Unsubscribe` with the one-click https target (RFC 8058: what Gmail and Yahoo use) and a
/// mailto target (RFC 2369) for clients without it. A mailto request reaches the sender's
/// address, whose team honours it by hand.
fn list_headers(campaign: &Campaign, unsubscribe: &str, token: &str) -> Vec<(String, String)> {
    let sender = campaign.sender_email.as_str();
    let domain = sender.rsplit_once('@').map_or("closeloop.invalid", |(_, d)| d);
    let label: String = campaign.id.as_str().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let company: String = campaign.company.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\').collect();
    vec![
        ("List-Id".into(), format!("\"{company}\" <{label}.{domain}>")),
        ("List-Unsubscribe".into(), format!("<{unsubscribe}>, <mailto:{sender}?subject=unsubscribe%20{token}>")),
        ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
    ]
}

/// Mail to staff (owner, manager): no unsubscribe headers, they are not survey mail.
pub fn to_staff(kind: MessageKind, campaign: &Campaign, to: &str, rendered: RenderedMail) -> OutgoingMail {
    OutgoingMail {
        kind,
        key: String::new(),
        from_name: format!("closeloop · {}", campaign.name),
        from_email: campaign.sender_email.as_str().to_owned(),
        to_name: None,
        to_email: to.to_owned(),
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        headers: Vec::new(),
    }
}

/// The invitation or a reminder, by the invitation's channel.
/// Subjects of test mails start with this, and their `X-Closeloop-Test` header says who asked.
pub const TEST_SUBJECT_PREFIX: &str = "[Test] ";

/// "Send me a test": the invitation mail for `locale`, filled in with the campaign's first
/// contact (or a made-up one before any upload), to a staff address. Sent once per request
/// (`test:{event id}`); no invitation is made and nothing is counted. Its links carry a token
/// no invitation has, as in the preview, so clicking them records nothing.
pub async fn send_test_mail(
    services: &Services,
    event_id: &str,
    campaigns: &crate::dispatch::CampaignCache,
    campaign_id: &closeloop_core::CampaignId,
    locale: closeloop_core::Locale,
    to: &closeloop_core::Email,
    requested_by: &str,
) -> Result<(), FunctionError> {
    use closeloop_views::preview;
    let campaign = campaigns.get(services, campaign_id).await?;
    let now = services.clock.now();
    let first = services.store.rows_page(closeloop_core::ports::RowQuery::campaign(&campaign.id, 1)).await?;
    let contact = first.rows.into_iter().next().map(|r| r.invitation.contact).unwrap_or_else(|| preview::sample_contact(&campaign));
    let invitation = preview::sample_invitation(&campaign, contact, locale, now)
        .or_else(|_| preview::sample_invitation(&campaign, preview::sample_contact(&campaign), locale, now))
        .map_err(|e| FunctionError::Missing(format!("a sample contact for campaign {campaign_id}: {e}")))?;
    let rendered = render::ask_mail(MessageKind::Invitation, &campaign, &invitation, &services.links)?;
    let mail = OutgoingMail {
        kind: MessageKind::Invitation,
        key: String::new(),
        from_name: campaign.sender_name.clone(),
        from_email: campaign.sender_email.as_str().to_owned(),
        to_name: Some(requested_by.to_owned()),
        to_email: to.as_str().to_owned(),
        subject: format!("{TEST_SUBJECT_PREFIX}{}", rendered.subject),
        text: rendered.text,
        html: rendered.html,
        headers: vec![("X-Closeloop-Test".to_owned(), format!("requested by {}", requested_by.chars().filter(|c| !c.is_control()).collect::<String>()))],
    };
    send_once(services, &format!("test:{event_id}"), Outgoing::Mail(mail)).await.map(|_| ())
}

pub fn ask(kind: MessageKind, campaign: &Campaign, invitation: &Invitation, services: &Services) -> Result<Outgoing, FunctionError> {
    match invitation.channel {
        Channel::Email => {
            let rendered = render::ask_mail(kind, campaign, invitation, &services.links)?;
            to_respondent(kind, campaign, invitation, rendered, services)
                .map(Outgoing::Mail)
                .ok_or_else(|| FunctionError::Missing(format!("email address of invitation {}", invitation.id)))
        }
        Channel::Sms => {
            let text = render::sms(kind, campaign, invitation, &services.links)?;
            let to = invitation
                .contact
                .phone
                .as_ref()
                .ok_or_else(|| FunctionError::Missing(format!("phone of invitation {}", invitation.id)))?;
            Ok(Outgoing::Sms(OutgoingSms { kind, to: to.as_str().to_owned(), text }))
        }
    }
}
