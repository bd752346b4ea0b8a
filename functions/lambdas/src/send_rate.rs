//! Mail goes out no faster than SES accepts for the account (`SES_MAX_SEND_RATE` per second):
//! each send waits for its slot. The rate is per execution environment, so the template gives
//! the sending functions a reserved concurrency and each instance its share of the quota.
//! SES's own throttling beyond that is retried by the SDK with backoff, then by the stream
//! (the send's claim is given back, so the retry sends once).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use closeloop_core::ports::{Mailer, OutgoingMail, SendError};

pub struct RateLimited<M> {
    inner: M,
    interval: Duration,
    next_slot: Mutex<Instant>,
}

impl<M> RateLimited<M> {
    pub fn new(inner: M, per_second: f64) -> Self {
        let interval = Duration::from_secs_f64(1.0 / per_second.max(0.001));
        Self { inner, interval, next_slot: Mutex::new(Instant::now()) }
    }

    /// The moment this send may go (slots are handed out `interval` apart), or `None` when the
    /// next free slot is more than `MAX_WAIT` away.
    fn reserve(&self) -> Option<Instant> {
        let mut next = self.next_slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let slot = (*next).max(now);
        if slot > now + MAX_WAIT {
            return None;
        }
        *next = slot + self.interval;
        Some(slot)
    }
}

#[async_trait]
impl<M: Mailer> Mailer for RateLimited<M> {
    async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        // A send never waits long enough to straddle the function's deadline with its claim
        // taken: past `MAX_WAIT` it fails temporarily, the claim is given back and the stream
        // retries the record later.
        let Some(slot) = self.reserve() else {
            crate::metrics::count_throttled();
            return Err(SendError::transient(NoSlot { within: MAX_WAIT }));
        };
        tokio::time::sleep_until(slot).await;
        self.inner.send_mail(mail).await
    }
}

/// A send may wait this long for its slot.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
#[error("no SES send slot free within {within:?} at the account's rate")]
pub struct NoSlot {
    pub within: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Mailer for Counting {
        async fn send_mail(&self, _: &OutgoingMail) -> Result<String, SendError> {
            Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst).to_string())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sends_are_spaced_to_the_quota_even_when_asked_for_at_once() {
        let limited = RateLimited::new(Counting(Default::default()), 10.0);
        let mail = mail();
        let start = tokio::time::Instant::now();
        let sends = (0..21).map(|_| limited.send_mail(&mail));
        let results = futures_util::future::join_all(sends).await;
        assert!(results.iter().all(Result::is_ok));
        // 21 sends at 10 a second: the last goes two seconds after the first (paused clock).
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(limited.inner.0.load(std::sync::atomic::Ordering::SeqCst), 21);
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_whose_slot_is_too_far_off_fails_temporarily_without_sending() {
        let limited = RateLimited::new(Counting(Default::default()), 1.0);
        let mail = mail();
        let results = futures_util::future::join_all((0..5).map(|_| limited.send_mail(&mail))).await;
        // Slots at 0, 1 and 2 s are within the wait; the 4th and 5th would wait 3 and 4 s.
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(SendError::Transient(_)))));
        assert_eq!(limited.inner.0.load(std::sync::atomic::Ordering::SeqCst), 3);
        // Other tests of this binary throttle nothing, so the two refusals are these.
        assert!(crate::metrics::take_throttled() >= 2, "each refusal is counted for SendsThrottled");
    }

    fn mail() -> OutgoingMail {
        OutgoingMail {
            kind: closeloop_core::ports::MessageKind::Invitation,
            key: String::new(),
            from_name: String::new(),
            from_email: String::new(),
            to_name: None,
            to_email: String::new(),
            subject: String::new(),
            text: String::new(),
            html: String::new(),
            headers: Vec::new(),
        }
    }
}
