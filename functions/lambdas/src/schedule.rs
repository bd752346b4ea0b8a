//! The EventBridge schedule: reminders and overdue follow-ups as of now, then the webhook
//! deliveries that are due onto their queue (`webhooks::sweep`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use closeloop_functions::schedule::{self, ScheduleSummary};
use closeloop_functions::Services;

use crate::{retry_or_log, Retryable};

pub async fn handle(
    services: &Services,
    accounts: &closeloop_core::accounts::Accounts,
    _event: EventBridgeEvent<serde_json::Value>,
) -> Result<ScheduleSummary, Retryable> {
    // What the run sends (released invitations among it) is counted for its metric document.
    let (counted, sends) = crate::metrics::counted(services);
    let summary = retry_or_log(schedule::run(&counted, accounts, services.clock.now()).await);
    sends.emit_with(&[]);
    if let Ok(summary) = &summary {
        // Figures only.
        tracing::info!(?summary, "schedule ran");
    }
    summary
}

/// `handle`, then the sweep of due webhook deliveries onto their queue.
pub async fn handle_with_webhooks(
    services: &Services,
    accounts: &closeloop_core::accounts::Accounts,
    queue: &crate::webhooks::WebhookQueue,
    event: EventBridgeEvent<serde_json::Value>,
) -> Result<ScheduleSummary, Retryable> {
    let summary = handle(services, accounts, event).await?;
    let swept = crate::webhooks::sweep(services, queue, services.clock.now()).await?;
    if swept > 0 {
        tracing::info!(swept, "due webhook deliveries queued");
    }
    Ok(summary)
}
