//! The EventBridge schedule: reminders and overdue follow-ups as of now.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use closeloop_functions::schedule::{self, ScheduleSummary};
use closeloop_functions::Services;

use crate::{retry_or_log, Retryable};

pub async fn handle(
    services: &Services,
    accounts: &closeloop_core::accounts::Accounts,
    _event: EventBridgeEvent<serde_json::Value>,
) -> Result<ScheduleSummary, Retryable> {
    retry_or_log(schedule::run(services, accounts, services.clock.now()).await)
}
