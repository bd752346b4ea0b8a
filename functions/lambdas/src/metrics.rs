//! Metrics in CloudWatch's embedded metric format (EMF): each handler writes one JSON document a
//! invocation to stdout, beside its log lines, and CloudWatch Logs turns it into metrics in the
//! `Closeloop` namespace. No dimensions: the template's alarms (`WebhookFailures`) watch the
//! metrics as they are, across functions.
//!
//! A small module rather than `metrics_cloudwatch_embedded`: that crate needs a process-wide
//! recorder and a flush wired around each `lambda_runtime::run`, while the figures here are known
//! at the end of each handler.
//!
//! Sends are counted where they go out (`Counted`, around the handler's mailer and SMS sender),
//! so a redelivered record that sends nothing counts nothing. Throttles are counted by the send
//! rate limiter, which every handler of an execution environment shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use closeloop_core::ports::{Mailer, MessageKind, OutgoingMail, OutgoingSms, SendError, SmsSender};
use closeloop_functions::Services;
use serde_json::{json, Value};

pub const NAMESPACE: &str = "Closeloop";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Invitations handed to SES or SNS (fresh, released from the held list).
    InvitationsSent,
    /// Answers (and changed answers) reacted to.
    Answers,
    /// Detractor and contact-request alerts mailed to owners.
    Alerts,
    /// Sends refused by the account's send rate (`send_rate`), to be retried by the stream.
    SendsThrottled,
    /// Webhook posts that failed (to be retried, or given up).
    WebhookFailures,
}

impl Metric {
    pub const ALL: [Metric; 5] = [Metric::InvitationsSent, Metric::Answers, Metric::Alerts, Metric::SendsThrottled, Metric::WebhookFailures];

    pub fn name(self) -> &'static str {
        match self {
            Metric::InvitationsSent => "InvitationsSent",
            Metric::Answers => "Answers",
            Metric::Alerts => "Alerts",
            Metric::SendsThrottled => "SendsThrottled",
            Metric::WebhookFailures => "WebhookFailures",
        }
    }
}

/// The EMF document of `figures` at `timestamp_ms` (milliseconds since the epoch): the `_aws`
/// metadata with one directive in `Closeloop` and an empty dimension set, and each value as a
/// top-level member named after its metric.
pub fn document(figures: &[(Metric, u64)], timestamp_ms: u64) -> Value {
    let definitions: Vec<Value> = figures.iter().map(|(m, _)| json!({"Name": m.name(), "Unit": "Count"})).collect();
    let mut document = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [[]], "Metrics": definitions}],
        }
    });
    if let Value::Object(members) = &mut document {
        for (metric, value) in figures {
            members.insert(metric.name().to_owned(), json!(value));
        }
    }
    document
}

type Sink = Box<dyn Fn(&[u8]) + Send + Sync>;
static SINK: OnceLock<Sink> = OnceLock::new();

/// Where the documents go (`init_logging` sets it, to the log lines' writer); stdout otherwise.
pub fn write_to<W>(writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let _ = SINK.set(Box::new(move |bytes| {
        use std::io::Write;
        // A lost metric must never fail an invocation.
        let _ = writer.make_writer().write_all(bytes);
    }));
}

/// Writes one document of `figures` (a line of its own, so CloudWatch reads it as one event).
/// Nothing when there is nothing to count: missing data is no failure to the alarms.
pub fn emit(figures: &[(Metric, u64)]) {
    let figures: Vec<(Metric, u64)> = figures.iter().copied().filter(|(_, v)| *v > 0).collect();
    if figures.is_empty() {
        return;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut line = document(&figures, now).to_string();
    line.push('\n');
    match SINK.get() {
        Some(sink) => sink(line.as_bytes()),
        None => print!("{line}"),
    }
}

static THROTTLED: AtomicU64 = AtomicU64::new(0);

/// A send the rate limiter refused.
pub fn count_throttled() {
    THROTTLED.fetch_add(1, Ordering::Relaxed);
}

/// The throttles since the last call (every handler's document carries those of its invocation).
pub fn take_throttled() -> u64 {
    THROTTLED.swap(0, Ordering::Relaxed)
}

/// What an invocation sent, by kind.
#[derive(Debug, Default)]
pub struct Sends {
    invitations: AtomicU64,
    alerts: AtomicU64,
}

impl Sends {
    pub fn invitations(&self) -> u64 {
        self.invitations.load(Ordering::Relaxed)
    }

    pub fn alerts(&self) -> u64 {
        self.alerts.load(Ordering::Relaxed)
    }

    fn count(&self, kind: MessageKind) {
        match kind {
            MessageKind::Invitation => self.invitations.fetch_add(1, Ordering::Relaxed),
            MessageKind::Alert => self.alerts.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// The sends and this invocation's throttles, with `others`, as one document.
    pub fn emit_with(&self, others: &[(Metric, u64)]) {
        let mut figures = vec![
            (Metric::InvitationsSent, self.invitations()),
            (Metric::Alerts, self.alerts()),
            (Metric::SendsThrottled, take_throttled()),
        ];
        figures.extend_from_slice(others);
        emit(&figures);
    }
}

/// A mailer or SMS sender that counts what it sent.
pub struct Counted<T: ?Sized> {
    inner: Arc<T>,
    sends: Arc<Sends>,
}

#[async_trait]
impl Mailer for Counted<dyn Mailer> {
    async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        let sent = self.inner.send_mail(mail).await;
        if sent.is_ok() {
            self.sends.count(mail.kind);
        }
        sent
    }

    async fn send_mails(&self, mails: &[OutgoingMail]) -> Vec<Result<String, SendError>> {
        // The inner mailer's own batching (the outbox's one transaction) is kept.
        let sent = self.inner.send_mails(mails).await;
        for (mail, outcome) in mails.iter().zip(&sent) {
            if outcome.is_ok() {
                self.sends.count(mail.kind);
            }
        }
        sent
    }
}

#[async_trait]
impl SmsSender for Counted<dyn SmsSender> {
    async fn send_sms(&self, sms: &OutgoingSms) -> Result<String, SendError> {
        let sent = self.inner.send_sms(sms).await;
        if sent.is_ok() {
            self.sends.count(sms.kind);
        }
        sent
    }
}

/// `services` with its mailer and SMS sender counting into the returned `Sends`: one pair per
/// invocation, so concurrent invocations never mix their figures.
pub fn counted(services: &Services) -> (Services, Arc<Sends>) {
    let sends = Arc::new(Sends::default());
    let mut counted = services.clone();
    counted.mailer = Arc::new(Counted { inner: services.mailer.clone(), sends: sends.clone() });
    counted.sms = Arc::new(Counted { inner: services.sms.clone(), sends: sends.clone() });
    (counted, sends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_has_the_members_the_emf_specification_requires_and_no_dimensions() {
        let doc = document(&[(Metric::InvitationsSent, 3), (Metric::WebhookFailures, 1)], 1_795_000_000_000);
        // Read back from its text, as CloudWatch does.
        let doc: Value = serde_json::from_str(&doc.to_string()).expect("one JSON object");
        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], json!(1_795_000_000_000u64), "milliseconds since the epoch, a number");
        let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics is an array");
        assert_eq!(directives.len(), 1);
        assert_eq!(directives[0]["Namespace"], "Closeloop");
        assert_eq!(directives[0]["Dimensions"], json!([[]]), "one empty dimension set: metrics without dimensions");
        let metrics = directives[0]["Metrics"].as_array().expect("Metrics is an array");
        assert_eq!(metrics, &vec![json!({"Name": "InvitationsSent", "Unit": "Count"}), json!({"Name": "WebhookFailures", "Unit": "Count"})]);
        // Every metric's value is a member of the root, a number, under its name.
        for metric in metrics {
            let name = metric["Name"].as_str().unwrap_or_default();
            assert!(doc[name].is_u64(), "{name} has a value");
        }
        assert_eq!((doc["InvitationsSent"].as_u64(), doc["WebhookFailures"].as_u64()), (Some(3), Some(1)));
    }

    #[test]
    fn every_metric_name_is_distinct_and_within_the_specification_s_limits() {
        let names: std::collections::BTreeSet<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Metric::ALL.len());
        assert!(names.iter().all(|n| !n.is_empty() && n.len() <= 255 && n.is_ascii()));
    }

    #[tokio::test]
    async fn the_counted_mailer_counts_invitations_and_alerts_that_went_out_and_nothing_that_failed() {
        struct FailsReminders;
        #[async_trait]
        impl Mailer for FailsReminders {
            async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError> {
                match mail.kind {
                    MessageKind::Alert => Err(SendError::transient(std::io::Error::other("down"))),
                    _ => Ok("id".into()),
                }
            }
        }
        let sends = Arc::new(Sends::default());
        let mailer = Counted::<dyn Mailer> { inner: Arc::new(FailsReminders), sends: sends.clone() };
        let mail = |kind| OutgoingMail {
            kind,
            key: String::new(),
            from_name: String::new(),
            from_email: String::new(),
            to_name: None,
            to_email: String::new(),
            subject: String::new(),
            text: String::new(),
            html: String::new(),
            headers: Vec::new(),
        };
        let batch = [mail(MessageKind::Invitation), mail(MessageKind::Invitation), mail(MessageKind::ThankYou)];
        assert!(mailer.send_mails(&batch).await.iter().all(Result::is_ok));
        assert!(mailer.send_mail(&mail(MessageKind::Alert)).await.is_err());
        assert_eq!((sends.invitations(), sends.alerts()), (2, 0));
    }
}
