//! The wiring every in-process test needs, once: an embedded store, its outbox as mailer and SMS
//! sender, a clock the test moves, and the reactions' `Services` over them.
//!
//! `local()` is the usual start; `Local::over` puts the same wiring over a store a test opened
//! itself (a file it later breaks on purpose), and `Local::with_mailer` swaps the mailer for
//! one that fails on cue.

use std::sync::Arc;

use closeloop_core::ports::{Links, Mailer, ManualClock};
use closeloop_core::Timestamp;
use closeloop_embedded::{Outbox, SqliteStore};
use closeloop_functions::Services;

/// The moment tests start at: 2026-09-21 14:13:20 UTC.
pub const T0: Timestamp = Timestamp::from_millis(1_790_000_000_000);

/// Where personal links point in tests.
pub const PUBLIC_URL: &str = "https://nps.example";

/// The embedded default as a test holds it: the concrete parts, and the services over them.
#[derive(Clone)]
pub struct Local {
    pub store: SqliteStore,
    pub outbox: Outbox,
    pub clock: Arc<ManualClock>,
    pub services: Services,
}

/// A fresh in-memory store at `T0`.
pub fn local() -> Local {
    Local::over(SqliteStore::open_in_memory().expect("an in-memory SQLite store opens"))
}

impl Local {
    /// The services over `store`, with its outbox and a clock at `T0`.
    pub fn over(store: SqliteStore) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let outbox = store.outbox(clock.clone());
        let services = Services {
            store: Arc::new(store.clone()),
            mailer: Arc::new(outbox.clone()),
            sms: Arc::new(outbox.clone()),
            clock: clock.clone(),
            links: Links::new(PUBLIC_URL),
        };
        Self { store, outbox, clock, services }
    }

    /// The same, sending mail through `mailer` (one that fails first, or hangs).
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.services.mailer = mailer;
        self
    }
}
