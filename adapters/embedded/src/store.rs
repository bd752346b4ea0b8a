//! The storage port on SQLite. Every multi-row change is one transaction; WAL mode lets the
//! `up` server and a `launch` in another process share the file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use closeloop_core::campaign::{Campaign, CampaignId};
use closeloop_core::changes::Change;
use closeloop_core::launch::{ChunkResult, LaunchId, LaunchJob};
use closeloop_core::counters::{self, CounterDeltas, Fields, OPENED, REVIEW_CLICKERS, TOTAL};
use closeloop_core::model::*;
use closeloop_core::ports::{CreateOutcome, InvitationRow, Malformed, RowCursor, RowPage, RowQuery, Store, StoreError};
use closeloop_core::lifecycle::{CampaignState, CampaignStatus};
use closeloop_core::Timestamp;
use closeloop_core::privacy::{self, ErasureKey, SuppressionRecord};

use crate::db::{blocking, Db, SharedDb};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS campaigns (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invitations (
    id TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    campaign_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    reminders_sent INTEGER NOT NULL DEFAULT 0,
    next_reminder_at INTEGER,
    answered_at INTEGER,
    opened_at INTEGER,
    suppressed TEXT
);
-- (campaign_id, id) serves every read by campaign, so the older (campaign_id) index goes: one
-- index fewer to write per invitation.
DROP INDEX IF EXISTS invitations_by_campaign;
CREATE INDEX IF NOT EXISTS invitations_by_campaign_id ON invitations(campaign_id, id);
CREATE INDEX IF NOT EXISTS invitations_by_owner ON invitations(campaign_id, json_extract(body, '$.contact.owner_email'), id);
CREATE INDEX IF NOT EXISTS invitations_due ON invitations(next_reminder_at) WHERE next_reminder_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS contact_invitations (
    contact_key TEXT NOT NULL,
    invitation_id TEXT NOT NULL,
    invited_at INTEGER NOT NULL,
    PRIMARY KEY (contact_key, invitation_id)
);
CREATE INDEX IF NOT EXISTS contact_invitations_latest ON contact_invitations(contact_key, invited_at);
CREATE TABLE IF NOT EXISTS answers (
    invitation_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    at INTEGER NOT NULL,
    body TEXT NOT NULL,
    done_at INTEGER
);
CREATE INDEX IF NOT EXISTS events_pending ON events(seq) WHERE done_at IS NULL;
CREATE TABLE IF NOT EXISTS sends (key TEXT PRIMARY KEY, claimed_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS suppressions (contact_key TEXT PRIMARY KEY, reason TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS review_clicks (invitation_id TEXT NOT NULL, site TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS review_clicks_by_invitation ON review_clicks(invitation_id);
CREATE TABLE IF NOT EXISTS cases (
    invitation_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    escalated_at INTEGER,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS cases_overdue ON cases(due_at) WHERE status = 'open' AND escalated_at IS NULL;
CREATE TABLE IF NOT EXISTS counters (
    campaign_id TEXT NOT NULL,
    bucket TEXT NOT NULL,
    field TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, bucket, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS launches (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS campaign_status (campaign_id TEXT PRIMARY KEY, state TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS held_invitations (
    campaign_id TEXT NOT NULL,
    invitation_id TEXT NOT NULL,
    held_at INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, invitation_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS campaign_changes (
    campaign_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (campaign_id, revision)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (name TEXT PRIMARY KEY, version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sign_in_failures (client TEXT PRIMARY KEY, body TEXT NOT NULL);
-- Webhook deliveries: `next_at` only while pending, so the due index holds only what is due.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_at INTEGER,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries(next_at) WHERE next_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS webhook_deliveries_log ON webhook_deliveries(campaign_id, created_at);
-- "You said, we did": one row per update; `progress` is written by its sender alone.
CREATE TABLE IF NOT EXISTS campaign_updates (
    campaign_id TEXT NOT NULL,
    id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    progress TEXT NOT NULL,
    PRIMARY KEY (campaign_id, id)
) WITHOUT ROWID;
-- Messages besides invitations that count toward the throttle window (an update): the latest per key.
CREATE TABLE IF NOT EXISTS contact_touches (contact_key TEXT PRIMARY KEY, touched_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_endpoints (campaign_id TEXT NOT NULL, endpoint TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (campaign_id, endpoint)) WITHOUT ROWID;
-- The audit log is append-only: the file itself refuses a change or a removal.
CREATE TABLE IF NOT EXISTS audit_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- Every version of every answer (the current one too), for a person's export.
CREATE TABLE IF NOT EXISTS answer_versions (
    invitation_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (invitation_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS launch_chunks (launch_id TEXT NOT NULL, chunk INTEGER NOT NULL, PRIMARY KEY (launch_id, chunk)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    text TEXT NOT NULL,
    html TEXT,
    headers TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    send_key TEXT,
    raw BLOB
);
"#;

/// The store on one SQLite file: a writer connection and a pool of WAL readers (`db.rs`), every
/// call on tokio's blocking threads. Clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    db: SharedDb,
    erasure: Arc<ErasureKey>,
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::unavailable(e)
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::corrupt(e)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

/// An update with the progress kept beside it (the body's own is the one it was created with).
fn stored_update(body: &str, progress: &str) -> Result<closeloop_core::updates::CampaignUpdate, StoreError> {
    let mut update: closeloop_core::updates::CampaignUpdate = from_json(body)?;
    update.progress = from_json(progress)?;
    Ok(update)
}

fn from_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(corrupt)
}

/// A campaign's report rows in one indexed pass: invitations by `invitations_by_campaign_id`, the
/// answer by its primary key, the review clicks through `review_clicks_by_invitation`. Whether
/// the person is suppressed is the invitation's own `suppressed` column, which `suppress` sets
/// on every invitation of that person (and the version 3 migration on older files), so no
/// contact link is read. (The link table's key starts with the contact: looking its rows up by
/// invitation scanned the table once per invitation, 33 s for 20,000 invitations.)
const CAMPAIGN_ROWS: &str = "SELECT i.body, i.reminders_sent, i.next_reminder_at, i.answered_at, i.opened_at, i.suppressed, a.body,
        (SELECT COUNT(*) FROM review_clicks r WHERE r.invitation_id = i.id)
 FROM invitations i LEFT JOIN answers a ON a.invitation_id = i.id
 WHERE i.campaign_id = ?1 ORDER BY i.created_at, i.id";

/// A page of the same rows in id order after a cursor (the last id of the page before), through
/// `invitations_by_campaign_id`, or `invitations_by_owner` for one owner's page, up to an id if
/// the page ends a part of an export.
const ROWS_PAGE: &str = "SELECT i.body, i.reminders_sent, i.next_reminder_at, i.answered_at, i.opened_at, i.suppressed, a.body,
        (SELECT COUNT(*) FROM review_clicks r WHERE r.invitation_id = i.id)
 FROM invitations i LEFT JOIN answers a ON a.invitation_id = i.id
 WHERE i.campaign_id = ?1 AND i.id > ?2 AND (?4 IS NULL OR i.id <= ?4) ORDER BY i.id LIMIT ?3";
const OWNER_ROWS_PAGE: &str = "SELECT i.body, i.reminders_sent, i.next_reminder_at, i.answered_at, i.opened_at, i.suppressed, a.body,
        (SELECT COUNT(*) FROM review_clicks r WHERE r.invitation_id = i.id)
 FROM invitations i LEFT JOIN answers a ON a.invitation_id = i.id
 WHERE i.campaign_id = ?1 AND json_extract(i.body, '$.contact.owner_email') = ?5
   AND i.id > ?2 AND (?4 IS NULL OR i.id <= ?4) ORDER BY i.id LIMIT ?3";

const INVITATION_COLUMNS: &str = "body, reminders_sent, next_reminder_at, answered_at, opened_at, suppressed";

type InvitationColumns = (String, u32, Option<i64>, Option<i64>, Option<i64>, Option<String>);

fn invitation_columns(row: &rusqlite::Row<'_>) -> rusqlite::Result<InvitationColumns> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
}

/// Adds counter deltas, creating rows on first use.
fn apply_counters(tx: &rusqlite::Transaction<'_>, campaign: &str, deltas: &CounterDeltas) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO counters (campaign_id, bucket, field, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(campaign_id, bucket, field) DO UPDATE SET value = value + excluded.value",
        )
        .map_err(unavailable)?;
    for (bucket, fields) in deltas.buckets() {
        for (field, delta) in fields {
            stmt.execute(params![campaign, bucket, field, delta]).map_err(unavailable)?;
        }
    }
    Ok(())
}

/// The body holds what never changes; the columns hold what does.
fn invitation_from((body, reminders_sent, next, answered, opened, suppressed): InvitationColumns) -> Result<Invitation, StoreError> {
    let mut inv: Invitation = from_json(&body)?;
    inv.reminders_sent = reminders_sent;
    inv.next_reminder_at = next.map(Timestamp::from_millis);
    inv.answered_at = answered.map(Timestamp::from_millis);
    inv.opened_at = opened.map(Timestamp::from_millis);
    inv.suppressed = suppressed.as_deref().and_then(SuppressionReason::parse);
    Ok(inv)
}

fn case_from((body, escalated, status): (String, Option<i64>, String)) -> Result<FollowUpCase, StoreError> {
    let mut case: FollowUpCase = from_json(&body)?;
    case.escalated_at = escalated.map(Timestamp::from_millis);
    case.status = if status == "closed" { CaseStatus::Closed } else { CaseStatus::Open };
    Ok(case)
}

/// Brings a file written by an earlier version up to this schema (`user_version` 5).
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(unavailable)?;
    if version < 2 {
        migrate_to_2(conn)?;
    }
    if version < 3 {
        migrate_to_3(conn)?;
    }
    if version < 4 {
        migrate_to_4(conn)?;
    }
    if version < 5 {
        migrate_to_5(conn)?;
    }
    Ok(())
}

/// Version 5: each mail's raw message, as the mailer sends it.
fn migrate_to_5(conn: &Connection) -> Result<(), StoreError> {
    let has_raw: bool = conn.prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'raw'").and_then(|mut s| s.exists([])).map_err(unavailable)?;
    if !has_raw {
        conn.execute_batch("ALTER TABLE outbox ADD COLUMN raw BLOB").map_err(unavailable)?;
    }
    conn.execute_batch("PRAGMA user_version = 5;").map_err(unavailable)
}

/// Version 4: the outbox's send keys; when an invitation was erased, as a column, so retention finds the invitations
/// still to erase through an index (`invitations_to_retain`) that drops each one once erased.
fn migrate_to_4(conn: &Connection) -> Result<(), StoreError> {
    let has_column: bool =
        conn.prepare("SELECT 1 FROM pragma_table_info('invitations') WHERE name = 'erased_at'").and_then(|mut s| s.exists([])).map_err(unavailable)?;
    if !has_column {
        conn.execute_batch("ALTER TABLE invitations ADD COLUMN erased_at INTEGER").map_err(unavailable)?;
    }
    // The send key a message went out under, so an erasure deletes exactly that person's.
    let outbox_keyed: bool =
        conn.prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'send_key'").and_then(|mut s| s.exists([])).map_err(unavailable)?;
    if !outbox_keyed {
        conn.execute_batch("ALTER TABLE outbox ADD COLUMN send_key TEXT").map_err(unavailable)?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS invitations_to_retain ON invitations(campaign_id, created_at) WHERE erased_at IS NULL;
         PRAGMA user_version = 4;",
    )
    .map_err(unavailable)
}

/// Version 3: report rows read suppression from the invitation's `suppressed` mark. A file from
/// before the mark existed has suppressed people whose invitations carry none: they get the
/// reason of their first suppression, and it is counted once, as `suppress` does.
fn migrate_to_3(conn: &Connection) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction().map_err(unavailable)?;
    let marked: Vec<(String, String)> = {
        let mut stmt = tx
            .prepare(
                "UPDATE invitations SET suppressed = (
                     SELECT s.reason FROM contact_invitations ci JOIN suppressions s ON s.contact_key = ci.contact_key
                     WHERE ci.invitation_id = invitations.id ORDER BY s.at LIMIT 1)
                 WHERE suppressed IS NULL
                   AND id IN (SELECT ci.invitation_id FROM suppressions s JOIN contact_invitations ci ON ci.contact_key = s.contact_key)
                 RETURNING campaign_id, suppressed",
            )
            .map_err(unavailable)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(unavailable)?;
        rows.collect::<Result<_, _>>().map_err(unavailable)?
    };
    for (campaign, reason) in marked {
        let reason = SuppressionReason::parse(&reason).ok_or_else(|| StoreError::corrupt(Malformed("suppression reason")))?;
        apply_counters(&tx, &campaign, &CounterDeltas::single(TOTAL, counters::suppression_field(reason), 1))?;
    }
    tx.pragma_update(None, "user_version", 3).map_err(unavailable)?;
    tx.commit().map_err(unavailable)
}

/// Version 2: the opened and suppressed columns, case owners, counters in buckets.
fn migrate_to_2(conn: &Connection) -> Result<(), StoreError> {
    let has_column = |table: &str, column: &str| -> Result<bool, StoreError> {
        let mut stmt = conn.prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1")).map_err(unavailable)?;
        stmt.exists([column]).map_err(unavailable)
    };
    for (table, column, declaration) in
        [("invitations", "opened_at", "INTEGER"), ("invitations", "suppressed", "TEXT"), ("cases", "owner", "TEXT")]
    {
        if !has_column(table, column)? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}")).map_err(unavailable)?;
        }
    }
    conn.execute_batch(
        "UPDATE cases SET owner = json_extract(body, '$.owner_email') WHERE owner IS NULL;
         CREATE INDEX IF NOT EXISTS cases_by_owner ON cases(campaign_id, owner, due_at);",
    )
    .map_err(unavailable)?;
    let old_counters: bool = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'campaign_counters'", [], |_| Ok(true))
        .optional()
        .map_err(unavailable)?
        .unwrap_or(false);
    if old_counters {
        // Version 1 kept four counters per campaign in columns; they become the `total` bucket.
        conn.execute_batch(
            "INSERT OR IGNORE INTO counters SELECT campaign_id, 'total', 'invited', invited FROM campaign_counters;
             INSERT OR IGNORE INTO counters SELECT campaign_id, 'total', 'promoters', promoters FROM campaign_counters;
             INSERT OR IGNORE INTO counters SELECT campaign_id, 'total', 'passives', passives FROM campaign_counters;
             INSERT OR IGNORE INTO counters SELECT campaign_id, 'total', 'detractors', detractors FROM campaign_counters;
             DROP TABLE campaign_counters;",
        )
        .map_err(unavailable)?;
    }
    conn.pragma_update(None, "user_version", 2).map_err(unavailable)
}

/// The writer's page cache, in KiB (SQLite takes a negative `cache_size` as KiB).
const WRITER_CACHE_KIB: i64 = -65_536;

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(unavailable)?;
        // WAL + NORMAL: durable at checkpoints, no fsync per commit; a power cut may lose the
        // last moments, never corrupt the file.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(unavailable)?;
        // A launch inserts into indexes keyed by random tokens and ids: with SQLite's default
        // 2 MiB page cache, the writer rereads index pages from the file once a campaign passes
        // some 20,000 invitations, and a 100,000-row launch slows to a third of its speed.
        conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB).map_err(unavailable)?;
        Self::init(conn, Some(path))
    }

    /// A private database in memory (tests): one connection, which serves reads too.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(unavailable)?, None)
    }

    /// Creates the schema on the writer first: the readers open the file read-only.
    fn init(conn: Connection, path: Option<&Path>) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        migrate(&conn)?;
        // Erased data is overwritten with zeros, not only unlinked: a byte search of the file
        // finds none of it (the WAL is truncated after an erasure, `purge_erased`).
        conn.pragma_update(None, "secure_delete", "ON").map_err(unavailable)?;
        let erasure = Arc::new(erasure_key(&conn)?);
        Ok(Self { db: Arc::new(Db::new(conn, path)?), erasure })
    }

    /// Runs `f` on the writer connection, on a blocking thread; `op` names the call.
    pub(crate) async fn write<T, F>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || db.with_writer(op, f)).await
    }

    /// Runs `f` on an idle reader connection, on a blocking thread; `op` names the call.
    pub(crate) async fn read<T, F>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || db.with_reader(op, f)).await
    }

    /// A read on the calling thread, for callers that are not async (tests, tools).
    pub(crate) fn read_here<T>(&self, op: &'static str, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.db.with_reader(op, f)
    }

    pub fn outbox(&self, clock: Arc<dyn closeloop_core::ports::Clock>) -> crate::Outbox {
        crate::Outbox::new(self.clone(), clock)
    }

    async fn invitation_where(&self, op: &'static str, clause: &'static str, value: String) -> Result<Option<Invitation>, StoreError> {
        self.read(op, move |conn| invitation_row(conn, clause, &value)).await
    }
}

/// The invitation whose `clause` column (`id`, `token`) is `value`, on this connection.
fn invitation_row(conn: &Connection, clause: &'static str, value: &str) -> Result<Option<Invitation>, StoreError> {
    let row = conn
        .prepare_cached(&format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE {clause} = ?1"))
        .and_then(|mut stmt| stmt.query_row([value], invitation_columns).optional())
        .map_err(unavailable)?;
    row.map(invitation_from).transpose()
}

/// The store's erasure key: made from SQLite's own random source the first time, then read.
fn erasure_key(conn: &Connection) -> Result<ErasureKey, StoreError> {
    conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('erasure_key', lower(hex(randomblob(32))))", []).map_err(unavailable)?;
    let hex: String = conn.query_row("SELECT value FROM meta WHERE name = 'erasure_key'", [], |r| r.get(0)).map_err(unavailable)?;
    ErasureKey::from_hex(&hex).ok_or_else(|| StoreError::corrupt(Malformed("erasure key")))
}

/// Texts shorter than this are not blanked in digests: a two-letter word would match other
/// people's lines.
const MIN_NEEDLE_CHARS: usize = 4;

/// The WAL could not be truncated after an erasure: a reader held an old snapshot throughout.
#[derive(Debug, thiserror::Error)]
#[error("the WAL is still in use by a reader; repeat the erasure to checkpoint it again")]
struct WalBusy;

/// A text as the templates escape it into HTML, so the digest's HTML part is blanked too.
fn html_escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#x27;").replace('/', "&#x2f;")
}

/// The current answer of an invitation, on this connection.
fn answer_row(conn: &Connection, invitation: &InvitationId) -> Result<Option<Answer>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM answers WHERE invitation_id = ?1")
        .and_then(|mut stmt| stmt.query_row([&invitation.0], |r| r.get(0)).optional())
        .map_err(unavailable)?;
    body.map(|b| from_json(&b)).transpose()
}

#[async_trait]
impl Store for SqliteStore {
    async fn put_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        let body = to_json(campaign)?;
        let id = campaign.id.as_str().to_owned();
        self.write("put_campaign", move |conn| {
            conn.execute(
                "INSERT INTO campaigns (id, body) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                params![id, body],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn save_campaign(
        &self,
        campaign: &Campaign,
        change: &closeloop_core::changelog::CampaignChange,
        first_status: Option<&CampaignStatus>,
    ) -> Result<bool, StoreError> {
        let (body, entry) = (to_json(campaign)?, to_json(change)?);
        let status = first_status.filter(|_| change.kind.creates()).map(|s| Ok::<_, StoreError>((s.state.as_str(), to_json(s)?))).transpose()?;
        let (id, revision, creates) = (campaign.id.as_str().to_owned(), change.revision, change.kind.creates());
        self.write("save_campaign", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = ?1)", [&id], |r| r.get(0)).map_err(unavailable)?;
            // The next revision exactly: a revision taken, or one past a gap, is not this save's.
            let latest: u32 =
                tx.query_row("SELECT COALESCE(MAX(revision), 0) FROM campaign_changes WHERE campaign_id = ?1", [&id], |r| r.get(0)).map_err(unavailable)?;
            if exists == creates || Some(revision) != latest.checked_add(1) {
                return Ok(false);
            }
            tx.execute("INSERT INTO campaign_changes (campaign_id, revision, body) VALUES (?1, ?2, ?3)", params![id, revision, entry])
                .map_err(unavailable)?;
            tx.execute(
                "INSERT INTO campaigns (id, body) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                params![id, body],
            )
            .map_err(unavailable)?;
            if let Some((state, status)) = status {
                tx.execute(
                    "INSERT INTO campaign_status (campaign_id, state, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT(campaign_id) DO UPDATE SET state = excluded.state, body = excluded.body",
                    params![id, state, status],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn append_event(&self, change: &closeloop_core::changes::Change) -> Result<bool, StoreError> {
        let event = change.event.clone();
        let kind = to_json(&event.kind)?;
        let (campaign, deltas) = (change.campaign.as_str().to_owned(), change.deltas.clone());
        self.write("append_event", move |conn| {
            // The deltas with the event, in one transaction, and only the first time.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let added = tx
                .execute("INSERT OR IGNORE INTO events (id, at, body) VALUES (?1, ?2, ?3)", params![event.id, event.at.millis(), kind])
                .map_err(unavailable)?;
            if added == 1 && !deltas.is_empty() {
                apply_counters(&tx, &campaign, &deltas)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(added == 1)
        })
        .await
    }

    async fn campaign_changes(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<closeloop_core::changelog::CampaignChange>, StoreError> {
        let campaign = campaign.clone();
        self.read("campaign_changes", move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM campaign_changes WHERE campaign_id = ?1 ORDER BY revision DESC LIMIT ?2")
                .map_err(unavailable)?;
            let bodies = stmt
                .query_map(params![campaign.as_str(), limit as i64], |r| r.get::<_, String>(0))
                .map_err(unavailable)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable)?;
            bodies.iter().map(|b| from_json(b)).collect()
        })
        .await
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError> {
        let id = id.clone();
        self.read("campaign", move |conn| {
            let body: Option<String> = conn
                .query_row("SELECT body FROM campaigns WHERE id = ?1", [id.as_str()], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        self.read("campaigns", |conn| {
            let mut stmt = conn.prepare("SELECT body FROM campaigns ORDER BY id").map_err(unavailable)?;
            let bodies = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            bodies.map(|b| from_json(&b.map_err(unavailable)?)).collect()
        })
        .await
    }

    async fn create_invitations(&self, invitations: &[Invitation], throttle_since: Timestamp) -> Result<Vec<CreateOutcome>, StoreError> {
        let invitations = invitations.to_vec();
        let erasure = self.erasure.clone();
        self.write("create_invitations", move |conn| {
            let invitations = &invitations[..];
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let mut outcomes = Vec::with_capacity(invitations.len());
            {
                let mut suppressed = tx.prepare_cached("SELECT 1 FROM suppressions WHERE contact_key = ?1").map_err(unavailable)?;
                let mut recent = tx
                    .prepare_cached(
                        "SELECT 1 FROM contact_invitations WHERE contact_key = ?1 AND invited_at >= ?2
                         UNION ALL SELECT 1 FROM contact_touches WHERE contact_key = ?1 AND touched_at >= ?2 LIMIT 1",
                    )
                    .map_err(unavailable)?;
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO invitations (id, token, campaign_id, body, created_at, reminders_sent, next_reminder_at, answered_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .map_err(unavailable)?;
                let mut link = tx
                    .prepare_cached("INSERT OR IGNORE INTO contact_invitations (contact_key, invitation_id, invited_at) VALUES (?1, ?2, ?3)")
                    .map_err(unavailable)?;
                let mut event = tx.prepare_cached("INSERT INTO events (id, at, body) VALUES (?1, ?2, ?3)").map_err(unavailable)?;
                let mut exists = tx.prepare_cached("SELECT 1 FROM invitations WHERE id = ?1").map_err(unavailable)?;
                let mut folded: std::collections::BTreeMap<String, CounterDeltas> = std::collections::BTreeMap::new();
                for inv in invitations {
                    let keys = inv.contact.keys();
                    let checked = erasure.with_hashes(&keys);
                    // A retried chunk or a resumed launch: the first write stands.
                    if exists.exists([&inv.id.0]).map_err(unavailable)? {
                        outcomes.push(CreateOutcome::AlreadyCreated);
                        continue;
                    }
                    let mut outcome = CreateOutcome::Created;
                    for key in &checked {
                        if suppressed.exists([key.as_str()]).map_err(unavailable)? {
                            outcome = CreateOutcome::Suppressed;
                            break;
                        }
                    }
                    let unsuppressed = outcome == CreateOutcome::Created;
                    for key in keys.iter().filter(|_| unsuppressed) {
                        if recent.exists(params![key.as_str(), throttle_since.millis()]).map_err(unavailable)? {
                            outcome = CreateOutcome::Throttled;
                        }
                    }
                    if outcome == CreateOutcome::Created {
                        insert
                            .execute(params![
                                inv.id.0,
                                inv.token.as_str(),
                                inv.campaign_id.as_str(),
                                to_json(inv)?,
                                inv.created_at.millis(),
                                inv.reminders_sent,
                                inv.next_reminder_at.map(Timestamp::millis),
                                inv.answered_at.map(Timestamp::millis),
                            ])
                            .map_err(unavailable)?;
                        for key in &keys {
                            link.execute(params![key.as_str(), inv.id.0, inv.created_at.millis()]).map_err(unavailable)?;
                        }
                        let change = Change::invitation_created(inv);
                        // Counted once per chunk and campaign below: one upsert per counter field
                        // instead of one per invitation and field.
                        folded.entry(change.campaign.as_str().to_owned()).or_default().merge(&change.deltas);
                        event.execute(params![change.event.id, change.event.at.millis(), to_json(&change.event.kind)?]).map_err(unavailable)?;
                    }
                    outcomes.push(outcome);
                }
                for (campaign, deltas) in &folded {
                    apply_counters(&tx, campaign, deltas)?;
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(outcomes)
        })
        .await
    }

    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, StoreError> {
        self.invitation_where("invitation", "id", id.0.clone()).await
    }

    async fn invitation_by_token(&self, token: &Token) -> Result<Option<Invitation>, StoreError> {
        self.invitation_where("invitation_by_token", "token", token.as_str().to_owned()).await
    }

    /// One pass over the campaign's invitations by index: the answer by primary key, review clicks
    /// through their index, suppression from the invitation's own `suppressed` mark (set on every
    /// invitation of a person when they are suppressed, like the DynamoDB store's).
    async fn campaign_rows(&self, campaign: &CampaignId) -> Result<Vec<InvitationRow>, StoreError> {
        let campaign = campaign.clone();
        self.read("campaign_rows", move |conn| {
            let mut stmt = conn.prepare_cached(CAMPAIGN_ROWS).map_err(unavailable)?;
            let rows = stmt
                .query_map([campaign.as_str()], |r| Ok((invitation_columns(r)?, r.get::<_, Option<String>>(6)?, r.get::<_, u32>(7)?)))
                .map_err(unavailable)?;
            rows.map(|row| {
                let (columns, answer, review_clicks) = row.map_err(unavailable)?;
                let suppressed = columns.5.is_some();
                Ok(InvitationRow {
                    invitation: invitation_from(columns)?,
                    answer: answer.map(|a| from_json(&a)).transpose()?,
                    suppressed,
                    review_clicks,
                })
            })
            .collect()
        })
        .await
    }

    async fn rows_page(&self, query: RowQuery<'_>) -> Result<RowPage, StoreError> {
        let campaign = query.campaign.clone();
        let owner = query.owner.map(|o| o.as_str().to_owned());
        let after = query.after.map_or(String::new(), |c| c.as_str().to_owned());
        let through = query.through.map(str::to_owned);
        let limit = query.limit.max(1);
        self.read("rows_page", move |conn| {
            let mut stmt = conn.prepare_cached(if owner.is_some() { OWNER_ROWS_PAGE } else { ROWS_PAGE }).map_err(unavailable)?;
            let read = |r: &rusqlite::Row<'_>| Ok((invitation_columns(r)?, r.get::<_, Option<String>>(6)?, r.get::<_, u32>(7)?));
            // One row more than asked tells whether another page follows.
            let fetch = (limit + 1) as i64;
            let found = match &owner {
                Some(owner) => stmt.query_map(params![campaign.as_str(), after, fetch, through, owner], read),
                None => stmt.query_map(params![campaign.as_str(), after, fetch, through], read),
            }
            .map_err(unavailable)?;
            let mut rows = Vec::with_capacity(limit);
            for row in found {
                let (columns, answer, review_clicks) = row.map_err(unavailable)?;
                let suppressed = columns.5.is_some();
                rows.push(InvitationRow {
                    invitation: invitation_from(columns)?,
                    answer: answer.map(|a| from_json(&a)).transpose()?,
                    suppressed,
                    review_clicks,
                });
            }
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next = match rows.last() {
                Some(last) if more => Some(RowCursor::parse(&last.invitation.id.0).map_err(StoreError::corrupt)?),
                _ => None,
            };
            Ok(RowPage { rows, next })
        })
        .await
    }

    async fn answer(&self, invitation: &InvitationId) -> Result<Option<Answer>, StoreError> {
        let invitation = invitation.clone();
        self.read("answer", move |conn| answer_row(conn, &invitation)).await
    }

    /// One read for the whole list (a dispatcher's batch), on one snapshot.
    async fn invitations_with_answers(&self, ids: &[InvitationId]) -> Result<Vec<(Option<Invitation>, Option<Answer>)>, StoreError> {
        let ids = ids.to_vec();
        self.read("invitations_with_answers", move |conn| {
            let tx = conn.unchecked_transaction().map_err(unavailable)?;
            ids.iter().map(|id| Ok((invitation_row(&tx, "id", &id.0)?, answer_row(&tx, id)?))).collect()
        })
        .await
    }

    async fn record_answer(&self, answer: &Answer, event: &Event, deltas: &CounterDeltas) -> Result<(), StoreError> {
        let (answer, event, deltas) = (answer.clone(), event.clone(), deltas.clone());
        self.write("record_answer", move |conn| {
            let (answer, event, deltas) = (&answer, &event, &deltas);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let stored: Option<u32> = tx
                .query_row("SELECT version FROM answers WHERE invitation_id = ?1", [&answer.invitation_id.0], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            if stored.unwrap_or(0) + 1 != answer.version {
                return Err(StoreError::Conflict);
            }
            tx.execute(
                "INSERT INTO answers (invitation_id, campaign_id, version, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(invitation_id) DO UPDATE SET version = excluded.version, body = excluded.body",
                params![answer.invitation_id.0, answer.campaign_id.as_str(), answer.version, to_json(answer)?],
            )
            .map_err(unavailable)?;
            tx.execute(
                "INSERT OR REPLACE INTO answer_versions (invitation_id, version, body) VALUES (?1, ?2, ?3)",
                params![answer.invitation_id.0, answer.version, to_json(answer)?],
            )
            .map_err(unavailable)?;
            let updated = tx
                .execute(
                    "UPDATE invitations SET answered_at = COALESCE(answered_at, ?2), next_reminder_at = NULL WHERE id = ?1 AND erased_at IS NULL",
                    params![answer.invitation_id.0, answer.first_answered_at.millis()],
                )
                .map_err(unavailable)?;
            if updated != 1 {
                return Err(StoreError::Conflict);
            }
            apply_counters(&tx, answer.campaign_id.as_str(), deltas)?;
            tx.execute("INSERT INTO events (id, at, body) VALUES (?1, ?2, ?3)", params![event.id, event.at.millis(), to_json(&event.kind)?])
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn counter_buckets(&self, campaign: &CampaignId, prefixes: &[String]) -> Result<BTreeMap<String, Fields>, StoreError> {
        let (campaign, prefixes) = (campaign.clone(), prefixes.to_vec());
        self.read("counter_buckets", move |conn| {
            // One read transaction: every prefix from the same snapshot, as one item set.
            let snapshot = conn.unchecked_transaction().map_err(unavailable)?;
            // A range on the primary key per prefix; U+10FFFF sorts after every bucket name.
            let mut stmt = snapshot
                .prepare_cached("SELECT bucket, field, value FROM counters WHERE campaign_id = ?1 AND bucket >= ?2 AND bucket < ?3")
                .map_err(unavailable)?;
            let mut buckets: BTreeMap<String, Fields> = BTreeMap::new();
            for prefix in &prefixes {
                let upper = format!("{prefix}\u{10FFFF}");
                let rows = stmt
                    .query_map(params![campaign.as_str(), prefix, upper], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                    })
                    .map_err(unavailable)?;
                for row in rows {
                    let (bucket, field, value) = row.map_err(unavailable)?;
                    buckets.entry(bucket).or_default().insert(field, value);
                }
            }
            Ok(buckets)
        })
        .await
    }

    async fn record_open(&self, invitation: &InvitationId, _campaign: &CampaignId, at: Timestamp) -> Result<bool, StoreError> {
        let invitation = invitation.clone();
        self.write("record_open", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let campaign: Option<String> = tx
                .query_row(
                    "UPDATE invitations SET opened_at = ?2 WHERE id = ?1 AND opened_at IS NULL RETURNING campaign_id",
                    params![invitation.0, at.millis()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            let Some(campaign) = campaign else {
                return Ok(false);
            };
            apply_counters(&tx, &campaign, &CounterDeltas::single(TOTAL, OPENED, 1))?;
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn pending_events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read("pending_events", move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT id, at, body FROM events WHERE done_at IS NULL ORDER BY seq LIMIT ?1").map_err(unavailable)?;
            let rows = stmt
                .query_map([limit as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))
                .map_err(unavailable)?;
            rows.map(|row| {
                let (id, at, body) = row.map_err(unavailable)?;
                Ok(Event { id, at: Timestamp::from_millis(at), kind: from_json(&body)? })
            })
            .collect()
        })
        .await
    }

    async fn complete_event(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write("complete_event", move |conn| {
            conn.execute("UPDATE events SET done_at = ?2 WHERE id = ?1 AND done_at IS NULL", params![id, at.millis()])
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn campaign_status(&self, campaign: &CampaignId) -> Result<Option<CampaignStatus>, StoreError> {
        let campaign = campaign.clone();
        self.read("campaign_status", move |conn| {
            let body: Option<String> = conn
                .query_row("SELECT body FROM campaign_status WHERE campaign_id = ?1", [campaign.as_str()], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn set_campaign_status(&self, campaign: &CampaignId, status: &CampaignStatus, expected: CampaignState) -> Result<bool, StoreError> {
        let (campaign, status) = (campaign.clone(), status.clone());
        self.write("set_campaign_status", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let stored: Option<String> = tx
                .query_row("SELECT state FROM campaign_status WHERE campaign_id = ?1", [campaign.as_str()], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            if stored.as_deref().unwrap_or(CampaignState::Active.as_str()) != expected.as_str() {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO campaign_status (campaign_id, state, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(campaign_id) DO UPDATE SET state = excluded.state, body = excluded.body",
                params![campaign.as_str(), status.state.as_str(), to_json(&status)?],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn last_invited(&self, keys: &[ContactKey]) -> Result<std::collections::HashMap<ContactKey, Timestamp>, StoreError> {
        let keys: Vec<ContactKey> = keys.to_vec();
        self.read("last_invited", move |conn| {
            // `contact_invitations_latest` answers each key with one index seek.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT MAX(at) FROM (SELECT MAX(invited_at) AS at FROM contact_invitations WHERE contact_key = ?1
                     UNION ALL SELECT touched_at FROM contact_touches WHERE contact_key = ?1)",
                )
                .map_err(unavailable)?;
            let mut last = std::collections::HashMap::new();
            for key in keys {
                let at: Option<i64> = stmt.query_row([key.as_str()], |r| r.get(0)).map_err(unavailable)?;
                if let Some(at) = at {
                    last.insert(key, Timestamp::from_millis(at));
                }
            }
            Ok(last)
        })
        .await
    }

    async fn hold_invitation(&self, campaign: &CampaignId, invitation: &InvitationId, at: Timestamp) -> Result<(), StoreError> {
        let (campaign, invitation) = (campaign.clone(), invitation.clone());
        self.write("hold_invitation", move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO held_invitations (campaign_id, invitation_id, held_at) VALUES (?1, ?2, ?3)",
                params![campaign.as_str(), invitation.0, at.millis()],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn held_invitations(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<InvitationId>, StoreError> {
        let campaign = campaign.clone();
        self.read("held_invitations", move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT invitation_id FROM held_invitations WHERE campaign_id = ?1 ORDER BY invitation_id LIMIT ?2")
                .map_err(unavailable)?;
            let ids = stmt.query_map(params![campaign.as_str(), limit as i64], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            ids.map(|id| id.map(InvitationId).map_err(unavailable)).collect()
        })
        .await
    }

    async fn held_invitations_after(&self, campaign: &CampaignId, after: &InvitationId, limit: usize) -> Result<Vec<InvitationId>, StoreError> {
        let (campaign, after) = (campaign.clone(), after.clone());
        self.read("held_invitations_after", move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT invitation_id FROM held_invitations WHERE campaign_id = ?1 AND invitation_id > ?2 ORDER BY invitation_id LIMIT ?3")
                .map_err(unavailable)?;
            let ids = stmt.query_map(params![campaign.as_str(), after.0, limit as i64], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            ids.map(|id| id.map(InvitationId).map_err(unavailable)).collect()
        })
        .await
    }

    async fn release_invitation(&self, campaign: &CampaignId, invitation: &InvitationId) -> Result<(), StoreError> {
        let (campaign, invitation) = (campaign.clone(), invitation.clone());
        self.write("release_invitation", move |conn| {
            conn.execute("DELETE FROM held_invitations WHERE campaign_id = ?1 AND invitation_id = ?2", params![campaign.as_str(), invitation.0])
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn complete_events(&self, ids: &[String], at: Timestamp) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.write("complete_events", move |conn| {
            // One transaction for a dispatcher batch: one commit instead of one per event.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            {
                let mut stmt = tx.prepare_cached("UPDATE events SET done_at = ?2 WHERE id = ?1 AND done_at IS NULL").map_err(unavailable)?;
                for id in &ids {
                    stmt.execute(params![id, at.millis()]).map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn claim_send(&self, key: &str, at: Timestamp) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.write("claim_send", move |conn| {
            let inserted = conn
                .execute("INSERT OR IGNORE INTO sends (key, claimed_at) VALUES (?1, ?2)", params![key, at.millis()])
                .map_err(unavailable)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn claim_sends(&self, keys: &[String], at: Timestamp) -> Result<Vec<bool>, StoreError> {
        let keys = keys.to_vec();
        self.write("claim_sends", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let mut claimed = Vec::with_capacity(keys.len());
            {
                let mut claim = tx.prepare_cached("INSERT OR IGNORE INTO sends (key, claimed_at) VALUES (?1, ?2)").map_err(unavailable)?;
                for key in &keys {
                    claimed.push(claim.execute(params![key, at.millis()]).map_err(unavailable)? == 1);
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(claimed)
        })
        .await
    }

    async fn release_send(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write("release_send", move |conn| {
            conn.execute("DELETE FROM sends WHERE key = ?1", [key]).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn suppress(&self, key: &ContactKey, reason: SuppressionReason, at: Timestamp) -> Result<bool, StoreError> {
        let key = key.clone();
        let erasure = self.erasure.clone();
        self.write("suppress", move |conn| {
            let key = &key;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            // An erased person stays on the list as a hash only: a late bounce or a redelivered
            // unsubscribe does not bring the address back.
            let erased = !key.as_str().starts_with(privacy::ERASED_KEY_PREFIX)
                && tx.prepare_cached("SELECT 1 FROM suppressions WHERE contact_key = ?1").and_then(|mut s| s.exists([erasure.hash(key).as_str()])).map_err(unavailable)?;
            if erased {
                return Ok(false);
            }
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO suppressions (contact_key, reason, at) VALUES (?1, ?2, ?3)",
                    params![key.as_str(), reason.as_str(), at.millis()],
                )
                .map_err(unavailable)?;
            tx.execute(
                "UPDATE invitations SET next_reminder_at = NULL
                 WHERE id IN (SELECT invitation_id FROM contact_invitations WHERE contact_key = ?1)",
                [key.as_str()],
            )
            .map_err(unavailable)?;
            // Each invitation of this person counts once, under the first reason it was suppressed for.
            let newly_marked: Vec<String> = {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE invitations SET suppressed = ?2
                         WHERE suppressed IS NULL AND id IN (SELECT invitation_id FROM contact_invitations WHERE contact_key = ?1)
                         RETURNING campaign_id",
                    )
                    .map_err(unavailable)?;
                let rows = stmt.query_map(params![key.as_str(), reason.as_str()], |r| r.get(0)).map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)?
            };
            for campaign in newly_marked {
                apply_counters(&tx, &campaign, &CounterDeltas::single(TOTAL, counters::suppression_field(reason), 1))?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn is_suppressed(&self, keys: &[ContactKey]) -> Result<bool, StoreError> {
        let keys = self.erasure.with_hashes(keys);
        self.read("is_suppressed", move |conn| {
            let mut stmt = conn.prepare_cached("SELECT 1 FROM suppressions WHERE contact_key = ?1").map_err(unavailable)?;
            for key in &keys {
                if stmt.exists([key.as_str()]).map_err(unavailable)? {
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await
    }

    async fn are_suppressed(&self, people: &[Vec<ContactKey>]) -> Result<Vec<bool>, StoreError> {
        let people: Vec<Vec<ContactKey>> = people.iter().map(|keys| self.erasure.with_hashes(keys)).collect();
        self.read("are_suppressed", move |conn| {
            let mut stmt = conn.prepare_cached("SELECT 1 FROM suppressions WHERE contact_key = ?1").map_err(unavailable)?;
            let mut suppressed = Vec::with_capacity(people.len());
            for keys in &people {
                let mut any = false;
                for key in keys {
                    if stmt.exists([key.as_str()]).map_err(unavailable)? {
                        any = true;
                        break;
                    }
                }
                suppressed.push(any);
            }
            Ok(suppressed)
        })
        .await
    }

    async fn due_reminders(&self, at: Timestamp, limit: usize) -> Result<Vec<Invitation>, StoreError> {
        self.read("due_reminders", move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {INVITATION_COLUMNS} FROM invitations
                     WHERE next_reminder_at IS NOT NULL AND next_reminder_at <= ?1 AND answered_at IS NULL
                     ORDER BY next_reminder_at, id LIMIT ?2"
                ))
                .map_err(unavailable)?;
            let rows = stmt.query_map(params![at.millis(), limit as i64], invitation_columns).map_err(unavailable)?;
            rows.map(|r| invitation_from(r.map_err(unavailable)?)).collect()
        })
        .await
    }

    async fn reminder_sent(&self, invitation: &InvitationId, sent: u32, next: Option<Timestamp>) -> Result<(), StoreError> {
        let invitation = invitation.clone();
        self.write("reminder_sent", move |conn| {
            conn.execute(
                // An invitation erased since its reminder was read goes back on no index.
                "UPDATE invitations SET reminders_sent = ?2, next_reminder_at = CASE WHEN answered_at IS NULL AND erased_at IS NULL THEN ?3 END WHERE id = ?1",
                params![invitation.0, sent, next.map(Timestamp::millis)],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn record_review_click(&self, invitation: &InvitationId, site: &str, at: Timestamp) -> Result<(), StoreError> {
        let (invitation, site) = (invitation.clone(), site.to_owned());
        self.write("record_review_click", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let first = !tx
                .prepare_cached("SELECT 1 FROM review_clicks WHERE invitation_id = ?1")
                .and_then(|mut s| s.exists([&invitation.0]))
                .map_err(unavailable)?;
            tx.execute("INSERT INTO review_clicks (invitation_id, site, at) VALUES (?1, ?2, ?3)", params![invitation.0, site, at.millis()])
                .map_err(unavailable)?;
            if first {
                let campaign: Option<String> = tx
                    .query_row("SELECT campaign_id FROM invitations WHERE id = ?1", [&invitation.0], |r| r.get(0))
                    .optional()
                    .map_err(unavailable)?;
                if let Some(campaign) = campaign {
                    apply_counters(&tx, &campaign, &CounterDeltas::single(TOTAL, REVIEW_CLICKERS, 1))?;
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn open_case(&self, case: &FollowUpCase) -> Result<bool, StoreError> {
        let body = to_json(case)?;
        let case = case.clone();
        self.write("open_case", move |conn| {
            let inserted = conn
                .execute(
                    "INSERT OR IGNORE INTO cases (invitation_id, campaign_id, due_at, escalated_at, status, body, owner)
                     VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6)",
                    params![
                        case.invitation_id.0,
                        case.campaign_id.as_str(),
                        case.due_at.millis(),
                        case.escalated_at.map(Timestamp::millis),
                        body,
                        case.owner_email.as_ref().map(Email::as_str)
                    ],
                )
                .map_err(unavailable)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn case(&self, invitation: &InvitationId) -> Result<Option<FollowUpCase>, StoreError> {
        let invitation = invitation.clone();
        self.read("case", move |conn| {
            let row = conn
                .query_row("SELECT body, escalated_at, status FROM cases WHERE invitation_id = ?1", [&invitation.0], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(unavailable)?;
            row.map(case_from).transpose()
        })
        .await
    }

    async fn overdue_cases(&self, at: Timestamp, limit: usize) -> Result<Vec<FollowUpCase>, StoreError> {
        self.read("overdue_cases", move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM cases WHERE status = 'open' AND escalated_at IS NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = stmt.query_map(params![at.millis(), limit as i64], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            rows.map(|b| from_json(&b.map_err(unavailable)?)).collect()
        })
        .await
    }

    async fn case_escalated(&self, invitation: &InvitationId, at: Timestamp) -> Result<(), StoreError> {
        let invitation = invitation.clone();
        self.write("case_escalated", move |conn| {
            conn.execute(
                "UPDATE cases SET escalated_at = ?2 WHERE invitation_id = ?1 AND escalated_at IS NULL",
                params![invitation.0, at.millis()],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn cases(&self, campaign: &CampaignId, owner: Option<&Email>) -> Result<Vec<FollowUpCase>, StoreError> {
        let (campaign, owner) = (campaign.clone(), owner.cloned());
        self.read("cases", move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body, escalated_at, status FROM cases
                     WHERE campaign_id = ?1 AND (?2 IS NULL OR owner = ?2) ORDER BY due_at, invitation_id",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![campaign.as_str(), owner.as_ref().map(Email::as_str)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(unavailable)?;
            rows.map(|r| case_from(r.map_err(unavailable)?)).collect()
        })
        .await
    }

    async fn add_case_note(&self, invitation: &InvitationId, note: &CaseNote) -> Result<bool, StoreError> {
        let note = note.clone();
        self.change_case("add_case_note", invitation, move |case| case.add_note(&note))
        .await
    }

    async fn create_launch(&self, job: &LaunchJob) -> Result<LaunchJob, StoreError> {
        let (id, body) = (job.id.as_str().to_owned(), to_json(job)?);
        self.write("create_launch", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            tx.execute("INSERT OR IGNORE INTO launches (id, body) VALUES (?1, ?2)", params![id, body]).map_err(unavailable)?;
            let stored: String = tx.query_row("SELECT body FROM launches WHERE id = ?1", [&id], |r| r.get(0)).map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            from_json(&stored)
        })
        .await
    }

    async fn launch(&self, id: &LaunchId) -> Result<Option<LaunchJob>, StoreError> {
        let id = id.as_str().to_owned();
        self.read("launch", move |conn| {
            let body: Option<String> =
                conn.query_row("SELECT body FROM launches WHERE id = ?1", [id], |r| r.get(0)).optional().map_err(unavailable)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn launches(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<LaunchJob>, StoreError> {
        let campaign = campaign.as_str().to_owned();
        self.read("launches", move |conn| {
            // A campaign has a handful of launches: a scan of the launches table is fine.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM launches WHERE json_extract(body, '$.campaign') = ?1
                     ORDER BY json_extract(body, '$.started_at') DESC, id LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = stmt.query_map(params![campaign, limit as i64], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            rows.map(|b| from_json(&b.map_err(unavailable)?)).collect()
        })
        .await
    }

    async fn record_launch_chunk(&self, id: &LaunchId, chunk: u32, result: &ChunkResult, at: Timestamp) -> Result<Option<LaunchJob>, StoreError> {
        let (id, result) = (id.as_str().to_owned(), result.clone());
        self.write("record_launch_chunk", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let body: Option<String> =
                tx.query_row("SELECT body FROM launches WHERE id = ?1", [&id], |r| r.get(0)).optional().map_err(unavailable)?;
            let Some(body) = body else { return Ok(None) };
            let mut job: LaunchJob = from_json(&body)?;
            let first_time = tx
                .execute("INSERT OR IGNORE INTO launch_chunks (launch_id, chunk) VALUES (?1, ?2)", params![id, chunk])
                .map_err(unavailable)?
                == 1;
            if first_time {
                job.add_chunk(chunk, &result, at);
            }
            if first_time || job.recover_chunk(chunk, &result, at) {
                tx.execute("UPDATE launches SET body = ?2 WHERE id = ?1", params![id, to_json(&job)?]).map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(Some(job))
        })
        .await
    }

    async fn close_case(&self, invitation: &InvitationId, closure: &CaseClosure) -> Result<bool, StoreError> {
        let closure = closure.clone();
        self.change_case("close_case", invitation, move |case| case.close(&closure)).await
    }

    async fn accounts(&self) -> Result<Vec<closeloop_core::accounts::Account>, StoreError> {
        self.read("accounts", |conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM accounts ORDER BY name").map_err(unavailable)?;
            let bodies = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            bodies.map(|b| from_json(&b.map_err(unavailable)?)).collect()
        })
        .await
    }

    async fn account(&self, name: &str) -> Result<Option<closeloop_core::accounts::Account>, StoreError> {
        let name = name.to_owned();
        self.read("account", move |conn| {
            let body: Option<String> =
                conn.prepare_cached("SELECT body FROM accounts WHERE name = ?1").and_then(|mut s| s.query_row([&name], |r| r.get(0)).optional()).map_err(unavailable)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn put_account(&self, account: &closeloop_core::accounts::Account) -> Result<bool, StoreError> {
        let expected = account.version;
        let mut stored = account.clone();
        stored.version = expected + 1;
        let (name, body) = (stored.name.clone(), to_json(&stored)?);
        self.write("put_account", move |conn| {
            let changed = if expected == 0 {
                conn.execute("INSERT OR IGNORE INTO accounts (name, version, body) VALUES (?1, 1, ?2)", params![name, body])
            } else {
                conn.execute("UPDATE accounts SET version = ?2, body = ?3 WHERE name = ?1 AND version = ?4", params![name, expected + 1, body, expected])
            }
            .map_err(unavailable)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn sign_in_failures(&self, client: &str) -> Result<Option<closeloop_core::accounts::SignInFailures>, StoreError> {
        let client = client.to_owned();
        self.read("sign_in_failures", move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM sign_in_failures WHERE client = ?1")
                .and_then(|mut s| s.query_row([&client], |r| r.get(0)).optional())
                .map_err(unavailable)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn set_sign_in_failures(&self, client: &str, failures: Option<&closeloop_core::accounts::SignInFailures>) -> Result<(), StoreError> {
        let client = client.to_owned();
        let body = failures.map(to_json).transpose()?;
        self.write("set_sign_in_failures", move |conn| {
            match body {
                Some(body) => conn.execute(
                    "INSERT INTO sign_in_failures (client, body) VALUES (?1, ?2) ON CONFLICT(client) DO UPDATE SET body = excluded.body",
                    params![client, body],
                ),
                None => conn.execute("DELETE FROM sign_in_failures WHERE client = ?1", [&client]),
            }
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn enqueue_webhooks(&self, deliveries: &[closeloop_core::webhooks::WebhookDelivery]) -> Result<usize, StoreError> {
        let rows: Vec<(String, String, i64, Option<i64>, String)> = deliveries
            .iter()
            .map(|d| Ok((d.id.clone(), d.campaign_id.as_str().to_owned(), d.created_at.millis(), d.next_at.map(|t| t.millis()), to_json(d)?)))
            .collect::<Result<_, StoreError>>()?;
        self.write("enqueue_webhooks", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let mut inserted = 0;
            {
                let mut insert = tx
                    .prepare_cached("INSERT OR IGNORE INTO webhook_deliveries (id, campaign_id, created_at, next_at, body) VALUES (?1, ?2, ?3, ?4, ?5)")
                    .map_err(unavailable)?;
                for row in &rows {
                    inserted += insert.execute(params![row.0, row.1, row.2, row.3, row.4]).map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(inserted)
        })
        .await
    }

    async fn due_webhooks(&self, at: Timestamp, limit: usize) -> Result<Vec<closeloop_core::webhooks::WebhookDelivery>, StoreError> {
        self.read("due_webhooks", move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM webhook_deliveries WHERE next_at IS NOT NULL AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2")
                .map_err(unavailable)?;
            let bodies = stmt.query_map(params![at.millis(), limit as i64], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            bodies.map(|b| from_json(&b.map_err(unavailable)?)).collect()
        })
        .await
    }

    async fn save_webhook(&self, delivery: &closeloop_core::webhooks::WebhookDelivery) -> Result<(), StoreError> {
        let pending = delivery.state == closeloop_core::webhooks::DeliveryState::Pending;
        let (id, next_at, body) = (delivery.id.clone(), delivery.next_at.filter(|_| pending).map(|t| t.millis()), to_json(delivery)?);
        self.write("save_webhook", move |conn| {
            conn.execute("UPDATE webhook_deliveries SET next_at = ?2, body = ?3 WHERE id = ?1", params![id, next_at, body]).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn webhook_log(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<closeloop_core::webhooks::WebhookDelivery>, StoreError> {
        let campaign = campaign.as_str().to_owned();
        self.read("webhook_log", move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM webhook_deliveries WHERE campaign_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2")
                .map_err(unavailable)?;
            let bodies = stmt.query_map(params![campaign, limit as i64], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            bodies.map(|b| from_json(&b.map_err(unavailable)?)).collect()
        })
        .await
    }

    async fn webhook(&self, campaign: &CampaignId, id: &str) -> Result<Option<closeloop_core::webhooks::WebhookDelivery>, StoreError> {
        let (campaign, id) = (campaign.as_str().to_owned(), id.to_owned());
        self.read("webhook", move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM webhook_deliveries WHERE id = ?1 AND campaign_id = ?2")
                .and_then(|mut s| s.query_row(params![id, campaign], |r| r.get(0)).optional())
                .map_err(unavailable)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn webhook_health(&self, campaign: &CampaignId, endpoint: &str) -> Result<Option<closeloop_core::webhooks::EndpointHealth>, StoreError> {
        let (campaign, endpoint) = (campaign.as_str().to_owned(), endpoint.to_owned());
        self.read("webhook_health", move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM webhook_endpoints WHERE campaign_id = ?1 AND endpoint = ?2")
                .and_then(|mut s| s.query_row(params![campaign, endpoint], |r| r.get(0)).optional())
                .map_err(unavailable)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn set_webhook_health(&self, campaign: &CampaignId, endpoint: &str, health: &closeloop_core::webhooks::EndpointHealth) -> Result<(), StoreError> {
        let (campaign, endpoint, body) = (campaign.as_str().to_owned(), endpoint.to_owned(), to_json(health)?);
        self.write("set_webhook_health", move |conn| {
            conn.execute(
                "INSERT INTO webhook_endpoints (campaign_id, endpoint, body) VALUES (?1, ?2, ?3) ON CONFLICT(campaign_id, endpoint) DO UPDATE SET body = excluded.body",
                params![campaign, endpoint, body],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn append_audit(&self, entry: &closeloop_core::audit::AuditEntry) -> Result<(), StoreError> {
        let (at, body) = (entry.at.millis(), to_json(entry)?);
        self.write("append_audit", move |conn| {
            conn.execute("INSERT INTO audit_log (at, body) VALUES (?1, ?2)", params![at, body]).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, before: Option<&str>, limit: usize) -> Result<closeloop_core::audit::AuditPage, StoreError> {
        let before: i64 = match before {
            Some(cursor) => cursor.parse().map_err(|_| StoreError::rejected(Malformed("audit cursor")))?,
            None => i64::MAX,
        };
        let limit = limit.max(1);
        self.read("audit_log", move |conn| {
            let mut stmt = conn.prepare_cached("SELECT seq, body FROM audit_log WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2").map_err(unavailable)?;
            let rows = stmt.query_map(params![before, limit as i64 + 1], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).map_err(unavailable)?;
            let rows: Vec<(i64, String)> = rows.collect::<Result<_, _>>().map_err(unavailable)?;
            // One row more than asked for says whether an older page follows.
            let next = (rows.len() > limit).then(|| rows[limit - 1].0.to_string());
            let entries = rows.iter().take(limit).map(|(_, body)| from_json(body)).collect::<Result<_, _>>()?;
            Ok(closeloop_core::audit::AuditPage { entries, next })
        })
        .await
    }

    async fn invitations_to_retain(&self, campaign: &CampaignId, created_before: Timestamp, limit: usize) -> Result<Vec<InvitationId>, StoreError> {
        let campaign = campaign.as_str().to_owned();
        self.read("invitations_to_retain", move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM invitations INDEXED BY invitations_to_retain
                     WHERE campaign_id = ?1 AND created_at < ?2 AND erased_at IS NULL ORDER BY created_at LIMIT ?3",
                )
                .map_err(unavailable)?;
            let ids = stmt.query_map(params![campaign, created_before.millis(), limit as i64], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            ids.map(|id| id.map(InvitationId).map_err(unavailable)).collect()
        })
        .await
    }

    async fn create_update(&self, update: &closeloop_core::updates::CampaignUpdate) -> Result<bool, StoreError> {
        let (campaign, id, at) = (update.campaign_id.as_str().to_owned(), update.id.as_str().to_owned(), update.created_at.millis());
        let (body, progress) = (to_json(update)?, to_json(&update.progress)?);
        self.write("create_update", move |conn| {
            let added = conn
                .execute(
                    "INSERT OR IGNORE INTO campaign_updates (campaign_id, id, created_at, body, progress) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![campaign, id, at, body, progress],
                )
                .map_err(unavailable)?;
            Ok(added == 1)
        })
        .await
    }

    async fn update(&self, campaign: &CampaignId, id: &closeloop_core::updates::UpdateId) -> Result<Option<closeloop_core::updates::CampaignUpdate>, StoreError> {
        let (campaign, id) = (campaign.as_str().to_owned(), id.as_str().to_owned());
        self.read("update", move |conn| {
            let row: Option<(String, String)> = conn
                .prepare_cached("SELECT body, progress FROM campaign_updates WHERE campaign_id = ?1 AND id = ?2")
                .and_then(|mut s| s.query_row(params![campaign, id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(unavailable)?;
            row.map(|(body, progress)| stored_update(&body, &progress)).transpose()
        })
        .await
    }

    async fn updates(&self, campaign: &CampaignId, limit: usize) -> Result<Vec<closeloop_core::updates::CampaignUpdate>, StoreError> {
        let campaign = campaign.as_str().to_owned();
        self.read("updates", move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body, progress FROM campaign_updates WHERE campaign_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![campaign, limit as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(unavailable)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable)?;
            rows.iter().map(|(body, progress)| stored_update(body, progress)).collect()
        })
        .await
    }

    async fn save_update_progress(
        &self,
        campaign: &CampaignId,
        id: &closeloop_core::updates::UpdateId,
        progress: &closeloop_core::updates::UpdateProgress,
    ) -> Result<(), StoreError> {
        let (campaign, id, progress) = (campaign.as_str().to_owned(), id.as_str().to_owned(), to_json(progress)?);
        self.write("save_update_progress", move |conn| {
            conn.execute("UPDATE campaign_updates SET progress = ?3 WHERE campaign_id = ?1 AND id = ?2", params![campaign, id, progress]).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn record_contact(&self, keys: &[ContactKey], at: Timestamp) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        self.write("record_contact", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            for key in &keys {
                tx.execute(
                    "INSERT INTO contact_touches (contact_key, touched_at) VALUES (?1, ?2)
                     ON CONFLICT(contact_key) DO UPDATE SET touched_at = MAX(touched_at, excluded.touched_at)",
                    params![key.as_str(), at.millis()],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn erasure_key(&self) -> Result<ErasureKey, StoreError> {
        Ok((*self.erasure).clone())
    }

    async fn person_invitations(&self, keys: &[ContactKey]) -> Result<Vec<InvitationId>, StoreError> {
        let keys = keys.to_vec();
        self.read("person_invitations", move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT invitation_id FROM contact_invitations WHERE contact_key = ?1 ORDER BY invited_at, invitation_id")
                .map_err(unavailable)?;
            let mut found: Vec<InvitationId> = Vec::new();
            for key in &keys {
                let ids = stmt.query_map([key.as_str()], |r| r.get::<_, String>(0)).map_err(unavailable)?;
                for id in ids {
                    let id = InvitationId(id.map_err(unavailable)?);
                    if !found.contains(&id) {
                        found.push(id);
                    }
                }
            }
            Ok(found)
        })
        .await
    }

    async fn answer_versions(&self, invitation: &InvitationId) -> Result<Vec<Answer>, StoreError> {
        let invitation = invitation.clone();
        self.read("answer_versions", move |conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM answer_versions WHERE invitation_id = ?1 ORDER BY version").map_err(unavailable)?;
            let bodies = stmt.query_map([&invitation.0], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            let versions: Vec<Answer> = bodies.map(|b| from_json(&b.map_err(unavailable)?)).collect::<Result<_, _>>()?;
            if versions.is_empty() {
                return Ok(answer_row(conn, &invitation)?.into_iter().collect());
            }
            Ok(versions)
        })
        .await
    }

    async fn suppressions(&self, keys: &[ContactKey]) -> Result<Vec<SuppressionRecord>, StoreError> {
        let keys = keys.to_vec();
        self.read("suppressions", move |conn| {
            let mut stmt = conn.prepare_cached("SELECT reason, at FROM suppressions WHERE contact_key = ?1").map_err(unavailable)?;
            let mut found = Vec::new();
            for key in keys {
                let row: Option<(String, i64)> = stmt.query_row([key.as_str()], |r| Ok((r.get(0)?, r.get(1)?))).optional().map_err(unavailable)?;
                if let Some((reason, at)) = row {
                    let reason = SuppressionReason::parse(&reason).ok_or_else(|| StoreError::corrupt(Malformed("suppression reason")))?;
                    found.push(SuppressionRecord { key, reason, at: Timestamp::from_millis(at) });
                }
            }
            Ok(found)
        })
        .await
    }

    async fn send_claims(&self, keys: &[String]) -> Result<Vec<Option<Timestamp>>, StoreError> {
        let keys = keys.to_vec();
        self.read("send_claims", move |conn| {
            let mut stmt = conn.prepare_cached("SELECT claimed_at FROM sends WHERE key = ?1").map_err(unavailable)?;
            keys.iter()
                .map(|key| stmt.query_row([key], |r| r.get::<_, i64>(0)).optional().map(|at| at.map(Timestamp::from_millis)).map_err(unavailable))
                .collect()
        })
        .await
    }

    async fn erase_invitation(&self, id: &InvitationId, at: Timestamp) -> Result<bool, StoreError> {
        let id = id.clone();
        self.write("erase_invitation", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let Some(invitation) = invitation_row(&tx, "id", &id.0)? else { return Ok(false) };
            // What identifies the person in a message: looked for in the outbox below.
            let mut needles: Vec<String> = vec![invitation.token.as_str().to_owned(), invitation.contact.full_name()];
            needles.extend(invitation.contact.email.iter().map(|e| e.as_str().to_owned()));
            needles.extend(invitation.contact.phone.iter().map(|p| p.as_str().to_owned()));

            let erased = privacy::erase_invitation(&invitation, at);
            let campaign: Option<Campaign> = tx
                .query_row("SELECT body FROM campaigns WHERE id = ?1", [invitation.campaign_id.as_str()], |r| r.get::<_, String>(0))
                .optional()
                .map_err(unavailable)?
                .map(|body| from_json(&body))
                .transpose()?;
            let deltas = privacy::erasure_deltas(campaign.as_ref(), &invitation, &erased, answer_row(&tx, &id)?.as_ref());
            apply_counters(&tx, invitation.campaign_id.as_str(), &deltas)?;
            // A bucket left at zero would still carry the value in its name.
            for (bucket, _) in deltas.buckets() {
                tx.execute("DELETE FROM counters WHERE campaign_id = ?1 AND bucket = ?2 AND value = 0", params![invitation.campaign_id.as_str(), bucket])
                    .map_err(unavailable)?;
            }
            tx.execute(
                "UPDATE invitations SET token = ?2, body = ?3, next_reminder_at = NULL, erased_at = ?4 WHERE id = ?1",
                params![id.0, erased.token.as_str(), to_json(&erased)?, erased.erased_at.map(Timestamp::millis)],
            )
            .map_err(unavailable)?;
            let versions: Vec<(u32, String)> = {
                let mut stmt = tx.prepare("SELECT version, body FROM answer_versions WHERE invitation_id = ?1").map_err(unavailable)?;
                let rows = stmt.query_map([&id.0], |r| Ok((r.get(0)?, r.get(1)?))).map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)?
            };
            for (version, body) in versions {
                let answer: Answer = from_json(&body)?;
                needles.extend(answer.comment.clone());
                tx.execute(
                    "UPDATE answer_versions SET body = ?3 WHERE invitation_id = ?1 AND version = ?2",
                    params![id.0, version, to_json(&privacy::erase_answer(&answer))?],
                )
                .map_err(unavailable)?;
            }
            if let Some(answer) = answer_row(&tx, &id)? {
                needles.extend(answer.comment.clone());
                tx.execute("UPDATE answers SET body = ?2 WHERE invitation_id = ?1", params![id.0, to_json(&privacy::erase_answer(&answer))?])
                    .map_err(unavailable)?;
            }
            let case: Option<String> =
                tx.query_row("SELECT body FROM cases WHERE invitation_id = ?1", [&id.0], |r| r.get(0)).optional().map_err(unavailable)?;
            if let Some(body) = case {
                let case: FollowUpCase = from_json(&body)?;
                needles.extend(case.notes.iter().map(|n| n.text.clone()));
                needles.extend(case.closed.iter().map(|c| c.outcome.clone()));
                tx.execute("UPDATE cases SET body = ?2, status = 'closed' WHERE invitation_id = ?1", params![id.0, to_json(&privacy::erase_case(&case, at))?])
                    .map_err(unavailable)?;
            }
            tx.execute("DELETE FROM contact_invitations WHERE invitation_id = ?1", [&id.0]).map_err(unavailable)?;
            // The local outbox is the person's mailbox here. Every message sent under one of the
            // invitation's send keys goes (to them, or about them: an alert, an escalation), and
            // every one to their address or number; in the digests, which speak of several
            // people, only their name, comments and notes are blanked.
            let sent_under: Vec<String> = privacy::send_keys(&invitation).into_iter().map(|(_, key)| key).collect();
            let mut by_key = tx.prepare("DELETE FROM outbox WHERE send_key = ?1").map_err(unavailable)?;
            for key in &sent_under {
                by_key.execute([key]).map_err(unavailable)?;
            }
            drop(by_key);
            if let Some(email) = &invitation.contact.email {
                tx.execute("DELETE FROM outbox WHERE channel = 'email' AND (to_addr = ?1 OR instr(to_addr, '<' || ?1 || '>') > 0)", [email.as_str()])
                    .map_err(unavailable)?;
            }
            if let Some(phone) = &invitation.contact.phone {
                tx.execute("DELETE FROM outbox WHERE channel = 'sms' AND to_addr = ?1", [phone.as_str()]).map_err(unavailable)?;
            }
            let full_name = invitation.contact.full_name();
            needles.retain(|n| *n != full_name);
            needles.retain(|n| !n.starts_with("erased-") && Some(n.as_str()) != invitation.contact.email.as_ref().map(|e| e.as_str()));
            // A first name alone would blank every other Anna's: the full name, or a name long
            // enough to be one person's.
            if full_name.contains(' ') || full_name.chars().count() >= MIN_NEEDLE_CHARS * 2 {
                needles.push(full_name);
            }
            let mut blank = tx
                .prepare(
                    // The raw copy is encoded (quoted-printable, encoded words), so a name cannot be
                    // replaced in it: it goes, and the page shows the blanked parts.
                    "UPDATE outbox SET text = replace(text, ?1, ?3), html = replace(COALESCE(html, ''), ?2, ?3), subject = replace(COALESCE(subject, ''), ?1, ?3), raw = NULL
                     WHERE kind = 'digest' AND (instr(text, ?1) > 0 OR instr(COALESCE(html, ''), ?2) > 0)",
                )
                .map_err(unavailable)?;
            for needle in needles.iter().map(|n| n.trim()).filter(|n| *n != privacy::ERASED_TEXT && n.chars().count() >= MIN_NEEDLE_CHARS) {
                blank.execute(params![needle, html_escaped(needle), privacy::ERASED_TEXT]).map_err(unavailable)?;
            }
            drop(blank);
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn forget_contact_keys(&self, keys: &[ContactKey], at: Timestamp) -> Result<usize, StoreError> {
        let keys: Vec<ContactKey> = keys.iter().filter(|k| !k.as_str().starts_with(privacy::ERASED_KEY_PREFIX)).cloned().collect();
        let erasure = self.erasure.clone();
        self.write("forget_contact_keys", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let mut added = 0;
            for key in &keys {
                let reason: Option<String> =
                    tx.query_row("SELECT reason FROM suppressions WHERE contact_key = ?1", [key.as_str()], |r| r.get(0)).optional().map_err(unavailable)?;
                added += tx
                    .execute(
                        "INSERT OR IGNORE INTO suppressions (contact_key, reason, at) VALUES (?1, ?2, ?3)",
                        params![erasure.hash(key).as_str(), reason.as_deref().unwrap_or(SuppressionReason::Erased.as_str()), at.millis()],
                    )
                    .map_err(unavailable)?;
                tx.execute("DELETE FROM suppressions WHERE contact_key = ?1", [key.as_str()]).map_err(unavailable)?;
                tx.execute("DELETE FROM contact_invitations WHERE contact_key = ?1", [key.as_str()]).map_err(unavailable)?;
                tx.execute("DELETE FROM contact_touches WHERE contact_key = ?1", [key.as_str()]).map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(added)
        })
        .await
    }

    async fn purge_erased(&self) -> Result<(), StoreError> {
        self.write("purge_erased", |conn| {
            // TRUNCATE: every frame goes into the file and the WAL is cut to nothing, so the
            // pages from before the erasure are nowhere on disk. An in-memory database has no WAL.
            // A reader in the middle of a long read keeps its snapshot, and with it the old
            // frames: wait for it a little, then say so (the erasure is done; repeating it
            // checkpoints again).
            for _ in 0..50 {
                let (busy, _, _): (i64, i64, i64) =
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(unavailable)?;
                if busy == 0 {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(StoreError::unavailable(WalBusy))
        })
        .await
    }
}

impl SqliteStore {
    /// Reads, changes and writes a case in one transaction; `change` says whether to write.
    async fn change_case(
        &self,
        op: &'static str,
        invitation: &InvitationId,
        change: impl FnOnce(&mut FollowUpCase) -> bool + Send + 'static,
    ) -> Result<bool, StoreError> {
        let invitation = invitation.clone();
        self.write(op, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let row = tx
                .query_row("SELECT body, escalated_at, status FROM cases WHERE invitation_id = ?1", [&invitation.0], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(unavailable)?;
            let Some(row) = row else { return Ok(false) };
            let mut case = case_from(row)?;
            if !change(&mut case) {
                return Ok(false);
            }
            let status = if case.status == CaseStatus::Closed { "closed" } else { "open" };
            tx.execute("UPDATE cases SET body = ?2, status = ?3 WHERE invitation_id = ?1", params![invitation.0, to_json(&case)?, status])
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use closeloop_core::ports::{OutgoingSms, SmsSender};

    async fn fresh_store() -> SqliteStore {
        SqliteStore::open_in_memory().expect("in-memory SQLite")
    }

    closeloop_core::store_contract_tests!(fresh_store);

    #[tokio::test]
    async fn an_erasure_takes_the_persons_messages_and_their_lines_in_digests_and_leaves_everyone_elses() {
        use closeloop_core::ports::{Clock, ManualClock, Mailer, MessageKind, OutgoingMail};
        let store = fresh_store().await;
        let c = closeloop_core::contract::campaign("outbox-erase");
        store.put_campaign(&c).await.unwrap();
        let person = |n: u8, first: &str, last: &str| {
            let mut inv = closeloop_core::contract::invitation(&c, n, closeloop_core::contract::T0);
            inv.contact.first_name = Some(first.into());
            inv.contact.last_name = Some(last.into());
            inv
        };
        let (anna, annabel) = (person(1, "Anna", "Berg"), person(2, "Annabel", "Lind"));
        store.create_invitations(&[anna.clone(), annabel.clone()], closeloop_core::contract::T0.minus_days(400)).await.unwrap();
        let (answer, event, deltas) = closeloop_core::contract::answer(&anna, 2, 1, closeloop_core::contract::T0);
        store.record_answer(&answer, &event, &deltas).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(closeloop_core::contract::T0));
        let outbox = store.outbox(clock);
        let mail = |kind: MessageKind, key: String, to: &Email, text: String| OutgoingMail {
            kind,
            key,
            from_name: "Sam".into(),
            from_email: "sam@acme.example".into(),
            to_name: None,
            to_email: to.as_str().into(),
            subject: "Hello".into(),
            text,
            html: "<p>html</p>".into(),
            headers: vec![],
        };
        let owner = Email::parse("owner@acme.example").unwrap();
        let comment = answer.comment.clone().unwrap();
        let sent = outbox
            .send_mails(&[
                mail(MessageKind::Invitation, format!("invitation:{}", anna.id), anna.contact.email.as_ref().unwrap(), "Hi Anna".into()),
                mail(MessageKind::Invitation, format!("invitation:{}", annabel.id), annabel.contact.email.as_ref().unwrap(), "Hi Annabel".into()),
                mail(MessageKind::Alert, format!("alert:{}", anna.id), &owner, format!("Anna Berg answered 2: {comment}")),
                mail(MessageKind::Digest, "digest:outbox-erase:owner:2026-W40".into(), &owner, format!("Anna Berg: {comment}\nAnnabel Lind: Lovely")),
            ])
            .await;
        assert!(sent.iter().all(Result::is_ok));
        assert!(store.erase_invitation(&anna.id, closeloop_core::contract::T0.plus_days(1)).await.unwrap());
        let left = outbox.messages().unwrap();
        let texts: Vec<&str> = left.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts.len(), 2, "her invitation and the alert about her went: {texts:?}");
        assert!(texts.contains(&"Hi Annabel"), "Annabel's mail stays, though her name begins with Anna");
        let digest = texts.iter().find(|t| t.contains("Annabel Lind")).expect("the digest stays");
        assert!(!digest.contains("Anna Berg") && !digest.contains(&comment), "her line is blanked: {digest}");
        assert!(digest.contains("Annabel Lind: Lovely"));
    }

    #[tokio::test]
    async fn the_file_itself_refuses_to_change_or_remove_an_audit_entry() {
        let store = fresh_store().await;
        let entry = closeloop_core::audit::AuditEntry::new(Timestamp::from_millis(1), "Karin", closeloop_core::audit::AuditAction::SignedIn, "", None);
        store.append_audit(&entry).await.unwrap();
        for sql in ["UPDATE audit_log SET body = '{}'", "DELETE FROM audit_log"] {
            let refused = store.write("tamper", move |conn| conn.execute(sql, []).map_err(unavailable)).await;
            assert!(refused.is_err(), "{sql} was allowed");
        }
        assert_eq!(store.audit_log(None, 10).await.unwrap().entries, vec![entry]);
    }

    #[tokio::test]
    async fn a_file_from_the_first_schema_keeps_its_counters_and_gains_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("closeloop.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE invitations (id TEXT PRIMARY KEY, token TEXT NOT NULL UNIQUE, campaign_id TEXT NOT NULL, body TEXT NOT NULL,
                     created_at INTEGER NOT NULL, reminders_sent INTEGER NOT NULL DEFAULT 0, next_reminder_at INTEGER, answered_at INTEGER);
                 CREATE TABLE cases (invitation_id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL, due_at INTEGER NOT NULL,
                     escalated_at INTEGER, status TEXT NOT NULL, body TEXT NOT NULL);
                 INSERT INTO cases VALUES ('i1', 'old', 5, NULL, 'open', '{\"invitation_id\":\"i1\",\"campaign_id\":\"old\",\"owner_email\":\"anna@acme.example\",\"opened_at\":1,\"due_at\":5,\"status\":\"open\",\"escalated_at\":null}');
                 CREATE TABLE campaign_counters (campaign_id TEXT PRIMARY KEY, invited INTEGER NOT NULL DEFAULT 0,
                     promoters INTEGER NOT NULL DEFAULT 0, passives INTEGER NOT NULL DEFAULT 0, detractors INTEGER NOT NULL DEFAULT 0);
                 INSERT INTO campaign_counters VALUES ('old', 7, 3, 2, 1);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let old = CampaignId::parse("old").unwrap();
        let counters = store.campaign_counters(&old).await.unwrap();
        assert_eq!((counters.invited, counters.tally.promoters, counters.tally.detractors), (7, 3, 1));
        let anna = Email::parse("anna@acme.example").unwrap();
        assert_eq!(store.cases(&old, Some(&anna)).await.unwrap().len(), 1, "old cases are found by owner");
        drop(store);
        assert_eq!(SqliteStore::open(&path).unwrap().campaign_counters(&old).await.unwrap(), counters, "migrating twice changes nothing");
    }

    /// A file from version 2 had people suppressed before their invitations carried the mark
    /// (a version 1 file, migrated): the report must still count them, and only once.
    #[tokio::test]
    async fn invitations_of_people_suppressed_before_the_mark_existed_are_marked_and_counted_once() {
        use closeloop_core::contract::{campaign, invitation, T0};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("closeloop.db");
        let c = campaign("premark");
        let invs: Vec<Invitation> = (1..=3).map(|n| invitation(&c, n, T0)).collect();
        {
            let store = SqliteStore::open(&path).unwrap();
            store.put_campaign(&c).await.unwrap();
            store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
            store.suppress(&invs[1].contact.keys()[0], SuppressionReason::Unsubscribed, T0.plus_hours(1)).await.unwrap();
        }
        {
            // What the older version left: the suppression, but no mark and no count.
            let old = Connection::open(&path).unwrap();
            old.execute_batch("UPDATE invitations SET suppressed = NULL; DELETE FROM counters WHERE field = 'unsubscribed'; PRAGMA user_version = 2;")
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let rows = store.campaign_rows(&c.id).await.unwrap();
        let suppressed: Vec<bool> = rows.iter().map(|r| r.suppressed).collect();
        assert_eq!(suppressed, vec![false, true, false]);
        assert_eq!(rows[1].invitation.suppressed, Some(SuppressionReason::Unsubscribed));
        let unsubscribed = |buckets: BTreeMap<String, Fields>| buckets.get(TOTAL).and_then(|f| f.get("unsubscribed").copied());
        assert_eq!(unsubscribed(store.counter_buckets(&c.id, &[TOTAL.to_owned()]).await.unwrap()), Some(1));
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(unsubscribed(again.counter_buckets(&c.id, &[TOTAL.to_owned()]).await.unwrap()), Some(1), "migrating twice counts nothing twice");
    }

    fn many_invitations(c: &Campaign, n: usize) -> Vec<Invitation> {
        (0..n)
            .map(|i| {
                let contact = Contact {
                    email: Some(Email::parse(&format!("p{i}@{}.example", c.id)).unwrap()),
                    first_name: Some(format!("Person {i}")),
                    ..Contact::default()
                };
                let mut bytes = [7u8; 16];
                bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
                Invitation::new(InvitationId(format!("{}-{i}", c.id)), Token::from_random_bytes(bytes), c, contact, closeloop_core::contract::T0)
                    .unwrap()
            })
            .collect()
    }

    /// Makes the store's `op` calls wait, on their connection, until the returned sender says go;
    /// `entered` hears each time one starts waiting.
    fn hold(store: &SqliteStore, op: &'static str) -> (tokio::sync::mpsc::UnboundedReceiver<()>, std::sync::mpsc::Sender<()>) {
        let (entered_tx, entered) = tokio::sync::mpsc::unbounded_channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = std::sync::Mutex::new(release_rx);
        *store.db.hook.lock().unwrap() = Some(Arc::new(move |called| {
            if called == op {
                let _ = entered_tx.send(());
                let _ = release_rx.lock().unwrap().recv();
            }
        }));
        (entered, release)
    }

    /// Only a deadlock guard: the calls under test never wait for the held read, so they finish
    /// at once; a store that made them wait would hang here and fail instead.
    const DEADLOCK: std::time::Duration = std::time::Duration::from_secs(60);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_campaign_read_does_not_delay_a_survey_page_read_a_write_or_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("closeloop.db")).unwrap();
        let c = closeloop_core::contract::campaign("long-read");
        store.put_campaign(&c).await.unwrap();
        let invs = many_invitations(&c, 2_000);
        for chunk in invs.chunks(500) {
            store.create_invitations(chunk, closeloop_core::contract::T0.minus_days(90)).await.unwrap();
        }
        let outbox = store.outbox(Arc::new(closeloop_core::ports::SystemClock));

        let (mut entered, release) = hold(&store, "campaign_rows");
        let long = tokio::spawn({
            let (store, id) = (store.clone(), c.id.clone());
            async move { store.campaign_rows(&id).await }
        });
        entered.recv().await.expect("the campaign read started");
        // The campaign read now holds a reader and cannot finish until released. Meanwhile, on
        // other tasks: survey page reads (more at once than the readers left), a first open
        // (a write), a message into the outbox and a page of it.
        let quick = async {
            let mut pages = Vec::new();
            for inv in &invs[..8] {
                let (store, token) = (store.clone(), inv.token.clone());
                pages.push(tokio::spawn(async move { store.invitation_by_token(&token).await }));
            }
            let open = tokio::spawn({
                let (store, id, campaign) = (store.clone(), invs[3].id.clone(), invs[3].campaign_id.clone());
                async move { store.record_open(&id, &campaign, closeloop_core::contract::T0.plus_hours(1)).await }
            });
            let sms = OutgoingSms { kind: closeloop_core::ports::MessageKind::Reminder, to: "+46700000000".into(), text: "hej".into() };
            let sent = outbox.send_sms(&sms).await;
            let page = outbox.page(crate::outbox::Cursor::Newest, 10).await;
            let mut found = Vec::new();
            for p in pages {
                found.push(p.await.unwrap().unwrap().map(|i| i.id));
            }
            (found, open.await.unwrap(), sent, page)
        };
        let (found, opened, sent, page) = tokio::time::timeout(DEADLOCK, quick).await.expect("the quick calls waited for the long read");
        assert!(!long.is_finished(), "the campaign read is still held: the quick calls finished first");
        assert_eq!(found, invs[..8].iter().map(|i| Some(i.id.clone())).collect::<Vec<_>>());
        assert_eq!(opened.unwrap(), true, "the first open was written");
        assert!(sent.is_ok());
        assert_eq!(page.unwrap().messages.len(), 1);

        release.send(()).unwrap();
        let rows = long.await.unwrap().unwrap();
        assert_eq!(rows.len(), invs.len(), "the long read completes with every row");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_that_panics_gives_its_reader_back_and_the_store_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("closeloop.db")).unwrap();
        *store.db.hook.lock().unwrap() = Some(Arc::new(|op| assert_ne!(op, "campaigns", "a read that panics")));
        let failed = store.campaigns().await;
        assert!(matches!(failed, Err(StoreError::Unavailable(_))), "a panic is an unavailable store, not a crash: {failed:?}");
        // Every reader is still there: READERS reads hold one each at the same moment.
        let barrier = Arc::new(std::sync::Barrier::new(crate::READERS));
        *store.db.hook.lock().unwrap() = Some(Arc::new(move |op| {
            if op == "campaign" {
                barrier.wait();
            }
        }));
        let id = CampaignId::parse("none").unwrap();
        let reads = (0..crate::READERS).map(|_| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.campaign(&id).await })
        });
        let all = tokio::time::timeout(DEADLOCK, futures_join(reads.collect())).await.expect("a reader was lost");
        assert!(all.iter().all(|r| matches!(r, Ok(None))), "{all:?}");
    }

    async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<Result<T, StoreError>>>) -> Vec<Result<T, StoreError>> {
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.map_err(StoreError::unavailable).and_then(|r| r));
        }
        out
    }

    #[tokio::test]
    async fn data_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("closeloop.db");
        let c = closeloop_core::contract::campaign("persisted");
        SqliteStore::open(&path).unwrap().put_campaign(&c).await.unwrap();
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.campaign(&c.id).await.unwrap(), Some(c));
    }
}
