//! The connections behind a `SqliteStore`: one writer and a few WAL readers, used only from
//! blocking threads (`spawn_blocking`), so no SQLite call ever runs on an async worker thread.
//!
//! SQLite allows one writer at a time; in WAL mode readers never wait for it and it never waits
//! for them. So writes queue for the writer connection (behind a mutex, `BEGIN IMMEDIATE` for
//! transactions), while reads take any idle reader: a 20,000-row export on one reader leaves the
//! writer and the other readers free for survey pages. An in-memory database has no WAL and no
//! second connection to the same data, so there every read uses the writer.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use closeloop_core::ports::StoreError;

/// Readers a file-backed store opens: enough for a few long reads (exports, reports) at once
/// with room left for survey pages. A read waits for an idle reader only beyond that.
pub const READERS: usize = 4;

/// Each reader's page cache, in KiB (negative: SQLite's unit for a size in KiB).
const READER_CACHE_KIB: i64 = -16_384;

/// How long a connection waits for a lock another process holds (`up` and `launch` share the
/// file) before the call fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Db {
    writer: Mutex<Connection>,
    /// None for an in-memory database: reads use the writer.
    readers: Option<ReaderPool>,
    #[cfg(test)]
    pub(crate) hook: Mutex<Option<Arc<dyn Fn(&'static str) + Send + Sync>>>,
}

struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

/// A reader taken from the pool; goes back on drop, also when the read panicked.
struct Lease<'a> {
    pool: &'a ReaderPool,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.pool.idle).push(conn);
            self.pool.returned.notify_one();
        }
    }
}

/// A panic inside a call leaves the connection usable (an open `Transaction` rolls back while
/// unwinding), so a poisoned mutex is taken over instead of failing every later call.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ReaderPool {
    fn lease(&self) -> Lease<'_> {
        let mut idle = lock(&self.idle);
        loop {
            if let Some(conn) = idle.pop() {
                return Lease { pool: self, conn: Some(conn) };
            }
            idle = self.returned.wait(idle).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Db {
    /// `writer` has the schema already; for a file, `path` is where the readers open it.
    pub(crate) fn new(writer: Connection, path: Option<&Path>) -> Result<Self, StoreError> {
        writer.busy_timeout(BUSY_TIMEOUT).map_err(StoreError::unavailable)?;
        let readers = match path {
            Some(path) => {
                let mut idle = Vec::with_capacity(READERS);
                for _ in 0..READERS {
                    let conn = Connection::open_with_flags(
                        path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                    )
                    .map_err(StoreError::unavailable)?;
                    conn.busy_timeout(BUSY_TIMEOUT).map_err(StoreError::unavailable)?;
                    // Beyond SQLite's 2 MiB default, so a dispatcher's batch of reads across a
                    // 100,000-invitation campaign hits the cache rather than the file.
                    conn.pragma_update(None, "cache_size", READER_CACHE_KIB).map_err(StoreError::unavailable)?;
                    idle.push(conn);
                }
                Some(ReaderPool { idle: Mutex::new(idle), returned: Condvar::new() })
            }
            None => None,
        };
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            #[cfg(test)]
            hook: Mutex::new(None),
        })
    }

    #[cfg(test)]
    fn run_hook(&self, op: &'static str) {
        let hook = lock(&self.hook).clone();
        if let Some(hook) = hook {
            hook(op);
        }
    }

    /// Runs `f` on the writer, on this thread: blocks until the writer is free.
    pub(crate) fn with_writer<T>(&self, op: &'static str, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = lock(&self.writer);
        #[cfg(test)]
        self.run_hook(op);
        let _ = op;
        f(&mut conn)
    }

    /// Runs `f` on an idle reader (the writer for an in-memory database), on this thread.
    pub(crate) fn with_reader<T>(&self, op: &'static str, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match &self.readers {
            Some(pool) => {
                let lease = pool.lease();
                #[cfg(test)]
                self.run_hook(op);
                let _ = op;
                match &lease.conn {
                    Some(conn) => f(conn),
                    None => Err(StoreError::unavailable("a reader connection went missing")),
                }
            }
            None => self.with_writer(op, |conn| f(conn)),
        }
    }
}

/// Moves a call onto tokio's blocking threads: the async caller only awaits. If the caller is
/// dropped midway, the call still runs to its end (a transaction is never cut in half).
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(StoreError::unavailable)?
}

/// The writer and readers, shared by every clone of a store and its outbox.
pub(crate) type SharedDb = Arc<Db>;
