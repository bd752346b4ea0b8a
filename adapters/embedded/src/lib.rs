//! The embedded default: everything in one SQLite file, and a local outbox instead of SES/SMS.

mod db;
mod outbox;
mod store;

pub use db::READERS;

pub use outbox::{Cursor as OutboxCursor, Outbox, OutboxMessage, OutboxPage};
pub use store::SqliteStore;

/// Re-exported for the local process, which wires it with the embedded store.
pub use closeloop_core::ports::SystemClock;
