//! Backoff for transactions DynamoDB cancels because another transaction touched one of their
//! items at the same moment: full jitter (a random pause up to an exponentially growing cap),
//! so writers that collided do not collide again in step.

use std::time::Duration;

use aws_sdk_dynamodb::config::AsyncSleep;
use aws_sdk_dynamodb::Client;

#[derive(Debug, Clone, Copy)]
pub struct ConflictRetry {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for ConflictRetry {
    fn default() -> Self {
        Self { attempts: 8, base: Duration::from_millis(10), cap: Duration::from_millis(800) }
    }
}

impl ConflictRetry {
    /// The pause before try number `attempt + 1`.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.cap);
        let millis = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(random % (millis + 1))
    }

    /// Sleeps with the client's own sleep (tokio natively, the Worker's timer on wasm); without
    /// one it retries at once.
    pub async fn pause(&self, client: &Client, attempt: u32) {
        let random = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or_default());
        if let Some(sleep) = client.config().sleep_impl() {
            sleep.sleep(self.delay(attempt, random)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_with_each_attempt_up_to_the_cap_and_vary_with_chance() {
        let retry = ConflictRetry::default();
        assert!(retry.delay(1, u64::MAX) <= Duration::from_millis(20));
        assert!(retry.delay(3, u64::MAX - 1) <= Duration::from_millis(80));
        assert!(retry.delay(12, u64::MAX) <= retry.cap);
        let pauses: std::collections::BTreeSet<Duration> = (0..50u64).map(|r| retry.delay(4, r * 7919)).collect();
        assert!(pauses.len() > 10, "jitter spreads the pauses: {pauses:?}");
    }
}
