//! SES bounce and complaint notifications (through SNS) suppress the address for every campaign.

use aws_lambda_events::event::sns::SnsEvent;
use closeloop_core::model::{ContactKey, Email, SuppressionReason};
use closeloop_functions::{FunctionError, Services};
use serde::Deserialize;
use tracing::Instrument;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    notification_type: String,
    bounce: Option<Bounce>,
    complaint: Option<Complaint>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    bounced_recipients: Vec<Recipient>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    complained_recipients: Vec<Recipient>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
}

#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeedbackSummary {
    pub suppressed: usize,
    /// Transient bounces, deliveries and unreadable messages: nothing to do.
    pub ignored: usize,
}

pub async fn handle(
    services: &Services,
    event: SnsEvent,
) -> Result<FeedbackSummary, crate::Retryable> {
    crate::retry_or_log(suppress_all(services, event).await)
}

async fn suppress_all(
    services: &Services,
    event: SnsEvent,
) -> Result<FeedbackSummary, FunctionError> {
    let mut summary = FeedbackSummary::default();
    for record in event.records {
        // The SNS message id only: the notification itself names the recipients.
        let span = tracing::info_span!("notification", message_id = %record.sns.message_id);
        let Ok(notification) = serde_json::from_str::<Notification>(&record.sns.message) else {
            span.in_scope(|| tracing::warn!("not an SES notification"));
            summary.ignored += 1;
            continue;
        };
        let (reason, recipients) = match (
            notification.notification_type.as_str(),
            notification.bounce,
            notification.complaint,
        ) {
            // Only a permanent bounce means the address is gone; a full mailbox may recover.
            ("Bounce", Some(b), _) if b.bounce_type == "Permanent" => {
                (SuppressionReason::Bounced, b.bounced_recipients)
            }
            ("Complaint", _, Some(c)) => (SuppressionReason::Complained, c.complained_recipients),
            _ => {
                summary.ignored += 1;
                continue;
            }
        };
        for recipient in recipients {
            // SES reports "Name <address>" at times.
            let address = recipient
                .email_address
                .rsplit('<')
                .next()
                .unwrap_or_default()
                .trim_end_matches('>');
            match Email::parse(address) {
                Ok(email) => {
                    services
                        .store
                        .suppress(&ContactKey::email(&email), reason, services.clock.now())
                        .instrument(span.clone())
                        .await?;
                    span.in_scope(|| tracing::info!(?reason, "address suppressed"));
                    summary.suppressed += 1;
                }
                // Not the parse error: it quotes the address.
                Err(_) => {
                    span.in_scope(|| tracing::warn!("bounced address unreadable"));
                    summary.ignored += 1;
                }
            }
        }
    }
    Ok(summary)
}
