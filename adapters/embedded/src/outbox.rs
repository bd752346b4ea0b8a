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
    /// The mail's raw RFC 5322 message, exactly the bytes SES would be given (7-bit ASCII, so a
    /// string); none for an SMS, and none once an erasure blanked a digest's parts.
    pub raw: Option<String>,
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

const MESSAGE_COLUMNS: &str = "id, channel, to_addr, kind, subject, text, html, headers, created_at, raw";

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
            raw: r.get::<_, Option<Vec<u8>>>(9)?.map(|raw| String::from_utf8_lossy(&raw).into_owned()),
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

    /// Stores the messages in one transaction (a dispatcher's batch is one commit, not one per
    /// message) and returns their outbox ids in order.
    async fn insert(&self, rows: Vec<NewMessage>) -> Result<Vec<String>, SendError> {
        let at = self.clock.now().millis();
        self.db
            .write("outbox_insert", move |conn| {
                let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(StoreError::unavailable)?;
                let mut ids = Vec::with_capacity(rows.len());
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO outbox (channel, to_addr, kind, subject, text, html, headers, created_at, send_key, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        )
                        .map_err(StoreError::unavailable)?;
                    for row in &rows {
                        insert
                            .execute(params![row.channel, row.to, row.kind, row.subject, row.text, row.html, row.headers, at, row.key, row.raw])
                            .map_err(StoreError::unavailable)?;
                        ids.push(format!("outbox-{}", tx.last_insert_rowid()));
                    }
                }
                tx.commit().map_err(StoreError::unavailable)?;
                Ok(ids)
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

/// One message as the outbox table stores it.
struct NewMessage {
    channel: &'static str,
    to: String,
    kind: &'static str,
    subject: Option<String>,
    text: String,
    html: Option<String>,
    headers: String,
    /// The send key it went out under (`thank_you:{id}`); none for an SMS, which names its
    /// number instead.
    key: Option<String>,
    raw: Option<Vec<u8>>,
}

impl NewMessage {
    fn mail(mail: &OutgoingMail, at: Timestamp) -> Result<Self, SendError> {
        Ok(Self {
            channel: "email",
            to: mailbox(mail.to_name.as_deref(), &mail.to_email),
            kind: mail.kind.as_str(),
            subject: Some(mail.subject.clone()),
            text: mail.text.clone(),
            html: Some(mail.html.clone()),
            headers: serde_json::to_string(&mail.headers).map_err(SendError::permanent)?,
            key: Some(mail.key.clone()).filter(|k| !k.is_empty()),
            raw: Some(closeloop_mail::build(mail, at).map_err(SendError::permanent)?),
        })
    }
}

/// An insert returned fewer ids than it was given messages: cannot happen with SQLite, which
/// either stores every row of the transaction or none.
#[derive(Debug, thiserror::Error)]
#[error("the outbox returned no id for a message it was given")]
struct MissingId;

fn only(mut ids: Vec<String>) -> Result<String, SendError> {
    ids.pop().ok_or_else(|| SendError::transient(MissingId))
}

#[async_trait]
impl Mailer for Outbox {
    async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        only(self.insert(vec![NewMessage::mail(mail, self.clock.now())?]).await?)
    }

    async fn send_mails(&self, mails: &[OutgoingMail]) -> Vec<Result<String, SendError>> {
        // A mail that cannot be stored fails alone; the rest go in one transaction.
        let mut outcomes: Vec<Option<Result<String, SendError>>> = Vec::with_capacity(mails.len());
        let mut rows = Vec::with_capacity(mails.len());
        let at = self.clock.now();
        for mail in mails {
            match NewMessage::mail(mail, at) {
                Ok(row) => {
                    rows.push(row);
                    outcomes.push(None);
                }
                Err(e) => outcomes.push(Some(Err(e))),
            }
        }
        match self.insert(rows).await {
            Ok(ids) => {
                let mut ids = ids.into_iter();
                outcomes.into_iter().map(|o| o.unwrap_or_else(|| ids.next().ok_or_else(|| SendError::transient(MissingId)))).collect()
            }
            Err(e) => {
                // The one failed transaction is every stored mail's failure, source included.
                let shared = Arc::new(e);
                outcomes.into_iter().map(|o| o.unwrap_or_else(|| Err(SendError::transient(shared.clone())))).collect()
            }
        }
    }
}

#[async_trait]
impl SmsSender for Outbox {
    async fn send_sms(&self, sms: &OutgoingSms) -> Result<String, SendError> {
        let row = NewMessage { channel: "sms", to: sms.to.clone(), kind: sms.kind.as_str(), subject: None, text: sms.text.clone(), html: None, headers: "[]".to_owned(), key: None, raw: None };
        only(self.insert(vec![row]).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::mailbox;
    use closeloop_core::ports::{Mailer, ManualClock, MessageKind, OutgoingMail};
    use std::sync::Arc;

    fn mail(to: &str) -> OutgoingMail {
        OutgoingMail {
            kind: MessageKind::Invitation,
            key: format!("invitation:{to}"),
            from_name: "Sam".into(),
            from_email: "sam@acme.example".into(),
            to_name: None,
            to_email: to.into(),
            subject: format!("Hello {to}"),
            text: "text".into(),
            html: "<p>html</p>".into(),
            headers: vec![("List-Unsubscribe".into(), "<https://x.example/u>".into())],
        }
    }

    #[tokio::test]
    async fn a_batch_of_mails_is_stored_in_order_each_with_its_own_id() {
        let store = crate::SqliteStore::open_in_memory().unwrap();
        let outbox = store.outbox(Arc::new(ManualClock::new(closeloop_core::Timestamp::from_millis(1_790_000_000_000))));
        let first = outbox.send_mail(&mail("a@x.example")).await.unwrap();
        let sent = outbox.send_mails(&[mail("b@x.example"), mail("c@x.example")]).await;
        let ids: Vec<String> = sent.into_iter().map(Result::unwrap).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids[0] != ids[1] && !ids.contains(&first));
        let stored: Vec<String> = outbox.messages().unwrap().into_iter().map(|m| m.to).collect();
        assert_eq!(stored.len(), 3);
        for to in ["a@x.example", "b@x.example", "c@x.example"] {
            assert!(stored.iter().any(|s| s.contains(to)), "{to} in {stored:?}");
        }
        assert!(outbox.send_mails(&[]).await.is_empty());
    }

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
