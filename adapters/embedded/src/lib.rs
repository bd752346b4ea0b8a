//! The embedded default: everything in one SQLite file, and a local outbox instead of SES/SMS.

mod outbox;
mod store;

pub use outbox::{Outbox, OutboxMessage};
pub use store::SqliteStore;

use closeloop_core::ports::Clock;
use closeloop_core::Timestamp;

/// Wall-clock time for the local process.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }
}
