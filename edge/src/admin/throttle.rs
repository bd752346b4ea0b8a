//! Sign-in throttling: wrong tokens from one client cost it time, doubling with each one past a
//! few free ones, so guessing a token is slow wherever the dashboard runs.
//!
//! Kept per process (per isolate on the Worker, per instance on the launch function): a guesser
//! spread over isolates gets a bucket in each, which still bounds each one. Clients are told
//! apart by the address header the platform sets (`AppState::client_ip_header`); locally the
//! server answers only on loopback, so every local client shares one bucket.

use std::collections::HashMap;
use std::sync::Mutex;

use closeloop_core::Timestamp;

/// Wrong tokens a client may send before it must wait.
pub const FREE_FAILURES: u32 = 5;
/// A client's failures are forgotten this long after its last one.
pub const FORGET_AFTER_MS: i64 = 15 * 60 * 1000;
/// The longest wait.
pub const MAX_WAIT_MS: i64 = 15 * 60 * 1000;
/// Clients tracked at once; beyond it the table starts afresh (memory stays bounded).
const MAX_CLIENTS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_ms: i64,
    blocked_until_ms: i64,
}

#[derive(Default)]
pub struct SignInThrottle(Mutex<HashMap<String, Record>>);

impl SignInThrottle {
    /// `Err(ms)`: the client must wait this long before it may try again.
    pub fn check(&self, client: &str, now: Timestamp) -> Result<(), i64> {
        let Ok(records) = self.0.lock() else { return Ok(()) };
        match records.get(client) {
            Some(r) if r.blocked_until_ms > now.millis() => Err(r.blocked_until_ms - now.millis()),
            _ => Ok(()),
        }
    }

    /// Counts a wrong token; past `FREE_FAILURES` the client waits 1 s, 2 s, 4 s… up to `MAX_WAIT_MS`.
    pub fn failed(&self, client: &str, now: Timestamp) {
        let Ok(mut records) = self.0.lock() else { return };
        if records.len() >= MAX_CLIENTS && !records.contains_key(client) {
            records.clear();
        }
        let now_ms = now.millis();
        let record = records.entry(client.to_owned()).or_insert(Record { failures: 0, last_ms: now_ms, blocked_until_ms: 0 });
        if now_ms - record.last_ms > FORGET_AFTER_MS {
            *record = Record { failures: 0, last_ms: now_ms, blocked_until_ms: 0 };
        }
        record.failures += 1;
        record.last_ms = now_ms;
        if record.failures > FREE_FAILURES {
            let doublings = (record.failures - FREE_FAILURES - 1).min(20);
            record.blocked_until_ms = now_ms + (1000i64 << doublings).min(MAX_WAIT_MS);
        }
    }

    /// A right token: the client starts afresh.
    pub fn succeeded(&self, client: &str) {
        if let Ok(mut records) = self.0.lock() {
            records.remove(client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_wrong_tokens_are_free_then_each_one_doubles_the_wait_up_to_a_cap() {
        let throttle = SignInThrottle::default();
        let t = Timestamp::from_millis(1_000_000);
        for _ in 0..FREE_FAILURES {
            assert!(throttle.check("a", t).is_ok());
            throttle.failed("a", t);
        }
        assert!(throttle.check("a", t).is_ok(), "five wrong tokens cost nothing yet");
        throttle.failed("a", t);
        assert_eq!(throttle.check("a", t), Err(1000));
        throttle.failed("a", t);
        assert_eq!(throttle.check("a", t), Err(2000));
        for _ in 0..30 {
            throttle.failed("a", t);
        }
        assert_eq!(throttle.check("a", t), Err(MAX_WAIT_MS));
        assert!(throttle.check("b", t).is_ok(), "another client has its own count");
        throttle.succeeded("a");
        assert!(throttle.check("a", t).is_ok());
        let later = Timestamp::from_millis(t.millis() + FORGET_AFTER_MS + 1);
        throttle.failed("b", t);
        throttle.failed("b", later);
        assert!(throttle.check("b", later).is_ok(), "old failures are forgotten");
    }
}
