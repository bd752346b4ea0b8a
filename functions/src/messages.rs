//! Turning rendered templates into outgoing messages, each sent at most once.

use closeloop_core::campaign::Campaign;
use closeloop_core::model::{Channel, Invitation};
use closeloop_core::ports::{MessageKind, OutgoingMail, OutgoingSms};
use closeloop_core::render::{self, RenderedMail};

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
        tracing::debug!(key, "already sent");
        return Ok(false);
    }
    let sent = match &message {
        Outgoing::Mail(mail) => services.mailer.send_mail(mail).await,
        Outgoing::Sms(sms) => services.sms.send_sms(sms).await,
    };
    match sent {
        Ok(id) => {
            tracing::info!(key, provider_id = %id, "sent");
            Ok(true)
        }
        Err(e) => {
            // A permanent failure keeps the claim: sending again would fail the same way.
            if matches!(e, closeloop_core::ports::SendError::Transient(_)) {
                services.store.release_send(key).await?;
            }
            Err(e.into())
        }
    }
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
        headers: vec![
            ("List-Unsubscribe".into(), format!("<{unsubscribe}>")),
            ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
        ],
    })
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
