//! The local outbox: mail and SMS land in a table you can read at `/outbox`, instead of SES/SNS.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Connection};
use serde::Serialize;

use closeloop_core::ports::{Clock, Mailer, OutgoingMail, OutgoingSms, SendError, SmsSender, StoreError};
use closeloop_core::Timestamp;

use crate::SqliteStore;

#[derive(Clone)]
pub struct Outbox {
    db: SqliteStore,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub channel: String,
    pub to: String,
    pub kind: String,
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    pub headers: Vec<(String, String)>,
    pub created_at: String,
}

/// One page of the outbox, newest first, with the cursors of its neighbours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxPage {
    pub messages: Vec<OutboxMessage>,
    /// `before` for the next page (older messages), if there are any.
    pub older: Option<i64>,
    /// `after` for the previous page (newer messages), if there are any.
    pub newer: Option<i64>,
    /// Messages in the whole outbox.
    pub total: u64,
}

/// Where a page starts: the newest messages, those older than a message, or those just newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Newest,
    Before(i64),
    After(i64),
}

const MESSAGE_COLUMNS: &str = "id, channel, to_addr, kind, subject, text, html, headers, created_at";

fn message_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<(OutboxMessage, String)> {
    Ok((
        OutboxMessage {
            id: r.get(0)?,
            channel: r.get(1)?,
            to: r.get(2)?,
            kind: r.get(3)?,
            subject: r.get(4)?,
            text: r.get(5)?,
            html: r.get(6)?,
            headers: Vec::new(),
            created_at: Timestamp::from_millis(r.get(8)?).to_rfc3339(),
        },
        r.get(7)?,
    ))
}

fn messages_where(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<OutboxMessage>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(StoreError::unavailable)?;
    let rows = stmt.query_map(params, message_from).map_err(StoreError::unavailable)?;
    rows.map(|row| {
        let (mut message, headers) = row.map_err(StoreError::unavailable)?;
        message.headers = serde_json::from_str(&headers).map_err(StoreError::corrupt)?;
        Ok(message)
    })
    .collect()
}

fn page_of(conn: &Connection, cursor: Cursor, limit: usize) -> Result<OutboxPage, StoreError> {
    // One snapshot: the page, its neighbours and the total agree with each other.
    let snapshot = conn.unchecked_transaction().map_err(StoreError::unavailable)?;
    let limit = limit as i64;
    let messages = match cursor {
        Cursor::Newest => {
            messages_where(&snapshot, &format!("SELECT {MESSAGE_COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?1"), params![limit])?
        }
        Cursor::Before(before) => messages_where(
            &snapshot,
            &format!("SELECT {MESSAGE_COLUMNS} FROM outbox WHERE id < ?1 ORDER BY id DESC LIMIT ?2"),
            params![before, limit],
        )?,
        Cursor::After(after) => {
            let mut newer = messages_where(
                &snapshot,
                &format!("SELECT {MESSAGE_COLUMNS} FROM outbox WHERE id > ?1 ORDER BY id ASC LIMIT ?2"),
                params![after, limit],
            )?;
            newer.reverse();
            newer
        }
    };
    let exists = |sql: &str, id: i64| -> Result<bool, StoreError> {
        snapshot.prepare_cached(sql).and_then(|mut s| s.exists([id])).map_err(StoreError::unavailable)
    };
    let (older, newer) = match (messages.first(), messages.last()) {
        (Some(newest), Some(oldest)) => (
            exists("SELECT 1 FROM outbox WHERE id < ?1", oldest.id)?.then_some(oldest.id),
            exists("SELECT 1 FROM outbox WHERE id > ?1", newest.id)?.then_some(newest.id),
        ),
        // Past either end: only the way back.
        _ => match cursor {
            Cursor::Newest => (None, None),
            Cursor::Before(before) => (None, exists("SELECT 1 FROM outbox WHERE id >= ?1", before)?.then_some(before - 1)),
            Cursor::After(after) => (exists("SELECT 1 FROM outbox WHERE id <= ?1", after)?.then_some(after + 1), None),
        },
    };
    let total: i64 = snapshot.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)).map_err(StoreError::unavailable)?;
    Ok(OutboxPage { messages, older, newer, total: total as u64 })
}

impl Outbox {
    pub(crate) fn new(db: SqliteStore, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert(
        &self,
        channel: &'static str,
        to: String,
        kind: &'static str,
        subject: Option<String>,
        text: String,
        html: Option<String>,
        headers: &[(String, String)],
    ) -> Result<String, SendError> {
        let headers = serde_json::to_string(headers).map_err(SendError::permanent)?;
        let at = self.clock.now().millis();
        self.db
            .write("outbox_insert", move |conn| {
                conn.execute(
                    "INSERT INTO outbox (channel, to_addr, kind, subject, text, html, headers, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![channel, to, kind, subject, text, html, headers, at],
                )
                .map_err(StoreError::unavailable)?;
                Ok(format!("outbox-{}", conn.last_insert_rowid()))
            })
            .await
            .map_err(SendError::transient)
    }

    /// One page of at most `limit` messages, newest first, read on a reader connection.
    pub async fn page(&self, cursor: Cursor, limit: usize) -> Result<OutboxPage, StoreError> {
        self.db.read("outbox_page", move |conn| page_of(conn, cursor, limit)).await
    }

    /// Every message, newest first, read on the calling thread: for tests and small outboxes.
    /// The pages use [`Outbox::page`].
    pub fn messages(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        self.db.read_here("outbox_messages", |conn| {
            messages_where(conn, &format!("SELECT {MESSAGE_COLUMNS} FROM outbox ORDER BY id DESC"), [])
        })
    }
}

/// `Name <address>` as a mail header holds it: control characters dropped, and a name with a
/// character that means something in an address (`,` `<` `>` `"` `@` …) quoted, so a CRM name
/// such as `evil@example.com, Bob` stays one display name and never becomes a second recipient.
fn mailbox(name: Option<&str>, address: &str) -> String {
    let name: String = name.unwrap_or("").chars().filter(|c| !c.is_control()).collect::<String>().trim().to_owned();
    if name.is_empty() {
        return address.to_owned();
    }
    if name.chars().all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '\'') {
        return format!("{name} <{address}>");
    }
    format!("\"{}\" <{address}>", name.replace('\\', "\\\\").replace('"', "\\\""))
}

#[async_trait]
impl Mailer for Outbox {
    async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        let to = mailbox(mail.to_name.as_deref(), &mail.to_email);
        self.insert("email", to, mail.kind.as_str(), Some(mail.subject.clone()), mail.text.clone(), Some(mail.html.clone()), &mail.headers)
            .await
    }
}

#[async_trait]
impl SmsSender for Outbox {
    async fn send_sms(&self, sms: &OutgoingSms) -> Result<String, SendError> {
        self.insert("sms", sms.to.clone(), sms.kind.as_str(), None, sms.text.clone(), None, &[]).await
    }
}

#[cfg(test)]
mod tests {
    use super::mailbox;

    #[test]
    fn a_crm_name_never_adds_a_recipient_or_breaks_the_header() {
        assert_eq!(mailbox(Some("Åsa Öberg"), "a@x.example"), "Åsa Öberg <a@x.example>");
        assert_eq!(mailbox(Some("evil@attacker.example, Bob"), "v@x.example"), "\"evil@attacker.example, Bob\" <v@x.example>");
        assert_eq!(mailbox(Some("Eve <eve@a.example>"), "v@x.example"), "\"Eve <eve@a.example>\" <v@x.example>");
        assert_eq!(mailbox(Some("N\r1 L\n1\0"), "n@x.example"), "N1 L1 <n@x.example>");
        assert_eq!(mailbox(Some("say \"hi\" \\o/"), "n@x.example"), "\"say \\\"hi\\\" \\\\o/\" <n@x.example>");
        assert_eq!(mailbox(Some("\r\n"), "n@x.example"), "n@x.example");
    }
}
