//! The local outbox: mail and SMS land in a table you can read at `/outbox`, instead of SES/SNS.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::params;
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

impl Outbox {
    pub(crate) fn new(db: SqliteStore, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        channel: &str,
        to: &str,
        kind: &str,
        subject: Option<&str>,
        text: &str,
        html: Option<&str>,
        headers: &[(String, String)],
    ) -> Result<String, SendError> {
        let headers = serde_json::to_string(headers).map_err(SendError::permanent)?;
        let conn = self.db.lock().map_err(SendError::transient)?;
        conn.execute(
            "INSERT INTO outbox (channel, to_addr, kind, subject, text, html, headers, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![channel, to, kind, subject, text, html, headers, self.clock.now().millis()],
        )
        .map_err(SendError::transient)?;
        Ok(format!("outbox-{}", conn.last_insert_rowid()))
    }

    /// Newest first.
    pub fn messages(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        let conn = self.db.lock()?;
        let mut stmt = conn
            .prepare("SELECT id, channel, to_addr, kind, subject, text, html, headers, created_at FROM outbox ORDER BY id DESC")
            .map_err(StoreError::unavailable)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            })
            .map_err(StoreError::unavailable)?;
        rows.map(|row| {
            let (id, channel, to, kind, subject, text, html, headers, created_at) =
                row.map_err(StoreError::unavailable)?;
            Ok(OutboxMessage {
                id,
                channel,
                to,
                kind,
                subject,
                text,
                html,
                headers: serde_json::from_str(&headers).map_err(StoreError::corrupt)?,
                created_at: Timestamp::from_millis(created_at).to_rfc3339(),
            })
        })
        .collect()
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        let to = match &mail.to_name {
            Some(name) => format!("{name} <{}>", mail.to_email),
            None => mail.to_email.clone(),
        };
        self.insert("email", &to, mail.kind.as_str(), Some(&mail.subject), &mail.text, Some(&mail.html), &mail.headers)
    }
}

#[async_trait]
impl SmsSender for Outbox {
    async fn send_sms(&self, sms: &OutgoingSms) -> Result<String, SendError> {
        self.insert("sms", &sms.to, sms.kind.as_str(), None, &sms.text, None, &[])
    }
}
