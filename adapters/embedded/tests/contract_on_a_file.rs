//! The storage contract on a database file, where reads go to the WAL reader connections and
//! writes to the writer (the unit tests run it in memory, where one connection does both).

use std::sync::atomic::{AtomicUsize, Ordering};

use closeloop_embedded::SqliteStore;

static NEXT: AtomicUsize = AtomicUsize::new(0);

async fn file_store() -> SqliteStore {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("embedded-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for the test databases");
    let path = dir.join(format!("{}.db", NEXT.fetch_add(1, Ordering::SeqCst)));
    for stale in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{stale}", path.display()));
    }
    SqliteStore::open(&path).expect("SQLite file")
}

closeloop_core::store_contract_tests!(file_store);
