//! The log output of a full run, as CloudWatch would receive it: the functions' JSON subscriber
//! (`init_logging_to`) writing into a buffer while the handlers run against DynamoDB Local, the
//! local SES endpoint and moto's SNS: a launch and its invitations by mail and SMS, answers with
//! comments, a detractor's alert, a send SES refuses for good, sends the rate limiter throttles,
//! a bounce and a complaint through `mail_feedback`, and a schedule run. Every line must be JSON,
//! carry its invocation's request id and the ids it is about, and hold no address, phone number,
//! survey token or comment; the metric documents must be among the lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sns::SnsEvent;
use closeloop_core::changes::Change;
use closeloop_core::model::Answer;
use closeloop_core::ports::Store;
use closeloop_core::{Campaign, CampaignId, Score};
use closeloop_dynamodb::stream::{local_streams_client, read_all};
use closeloop_dynamodb::DynamoStore;
use closeloop_functions::{launch, Services};
use closeloop_lambdas::{mail_feedback, on_answer, schedule};
use serde_json::{json, Value};
use tracing::Instrument;

mod support;
use support::{lambda_batch, world};

/// The log output: every write appended, as stdout would take it.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())).into_owned()
    }
}

/// The span `lambda_runtime` 1.x opens around each invocation (layers/trace.rs), with the
/// request id under the same name.
fn invocation(request_id: &str) -> tracing::Span {
    tracing::info_span!("Lambda runtime invoke", requestId = request_id)
}

/// Hands the records the table's stream gained since the last call to the stream handler, as
/// one invocation (each record once, as the platform does when nothing fails; one shard).
async fn stream_invocation(services: &Services, store: &DynamoStore, delivered: &mut usize, request_id: &str) -> anyhow::Result<()> {
    let records = read_all(store, &local_streams_client()?).await?;
    let fresh = records.get(*delivered..).unwrap_or_default();
    *delivered = records.len();
    on_answer::handle(services, lambda_batch(fresh), None).instrument(invocation(request_id)).await?;
    Ok(())
}

fn answer(campaign: &Campaign, invitation: &closeloop_core::Invitation, score: u8, comment: &str, at: closeloop_core::Timestamp) -> anyhow::Result<Answer> {
    // A detractor asks to be contacted; a promoter does not, so only the detractor is alerted on.
    let contact_ok = score <= 6;
    Ok(Answer {
        invitation_id: invitation.id.clone(),
        campaign_id: campaign.id.clone(),
        score: Score::new(score).context("a score")?,
        comment: Some(comment.to_owned()),
        contact_ok,
        ratings: Default::default(),
        version: 1,
        first_answered_at: at,
        answered_at: at,
    })
}

fn ses_notification(kind: &str, address: &str) -> Value {
    let message = if kind == "Bounce" {
        json!({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
               "bouncedRecipients": [{"emailAddress": address}], "timestamp": "2026-11-22T10:00:00.000Z", "feedbackId": "f"},
               "mail": {"messageId": "m", "source": "karin@nordhavn.example", "destination": [address]}})
    } else {
        json!({"notificationType": "Complaint", "complaint": {"complainedRecipients": [{"emailAddress": address}],
               "timestamp": "2026-11-22T10:00:00.000Z", "feedbackId": "f"},
               "mail": {"messageId": "m", "source": "karin@nordhavn.example", "destination": [address]}})
    };
    json!({"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:eu-north-1:000000000000:ses-feedback:1",
           "Sns": {"Type": "Notification", "MessageId": format!("n-{kind}"), "TopicArn": "arn:aws:sns:eu-north-1:000000000000:ses-feedback",
                   "Subject": null, "Message": message.to_string(), "Timestamp": "2026-11-22T10:00:01.000Z",
                   "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "https://x", "UnsubscribeUrl": "https://x",
                   "MessageAttributes": {}}})
}

#[tokio::test]
async fn a_full_run_logs_json_lines_with_request_and_campaign_ids_its_metrics_and_no_personal_data() -> anyhow::Result<()> {
    let output = Buffer::default();
    let writer = output.clone();
    closeloop_lambdas::init_logging_to(move || writer.clone());

    let (services, store, table) = world("logs").await;
    let marker = format!("l{}", std::process::id());
    let mut campaign = Campaign::from_toml(include_str!("../../../demo/campaign.toml"))?;
    campaign.id = CampaignId::parse(&format!("logs-{marker}"))?;
    let phone = format!("+4670{:07}", std::process::id() % 10_000_000);
    let owner = format!("owner.{marker}@example.se");
    let emails = [format!("pia.{marker}@example.se"), format!("dag.{marker}@example.se"), format!("åsa.{marker}@example.se")];
    // Åsa's address has a letter beyond ASCII before the @: SES refuses it for good.
    let csv = format!(
        "email;phone;first_name;owner_email\n{};;Pia;{owner}\n{};;Dag;{owner}\n{};;Åsa;{owner}\n;{phone};Sid;\n",
        emails[0], emails[1], emails[2]
    );
    launch::launch(&services, &campaign, csv.as_bytes()).await?;
    let mut delivered = 0;
    stream_invocation(&services, &store, &mut delivered, "req-invitations").await?;

    let rows = store.campaign_rows(&campaign.id).await?;
    let by_name = |name: &str| rows.iter().find(|r| r.invitation.contact.first_name.as_deref() == Some(name)).map(|r| r.invitation.clone()).context(name.to_owned());
    let comments = [format!("Bra service, tack {marker}"), format!("Kedjan hoppade av igen {marker}")];
    let now = services.clock.now();
    for (name, score, comment) in [("Pia", 10, &comments[0]), ("Dag", 1, &comments[1])] {
        let invitation = by_name(name)?;
        let answer = answer(&campaign, &invitation, score, comment, now)?;
        let change = Change::answer_recorded(&campaign, &invitation, None, &answer);
        store.record_answer(&answer, &change.event, &change.deltas).await?;
    }
    stream_invocation(&services, &store, &mut delivered, "req-answers").await?;

    // Sends beyond the account's rate: one goes, the others are throttled and left for a retry.
    let throttled = closeloop_lambdas::services(&closeloop_lambdas::LambdaConfig { ses_max_send_rate: Some(0.01), ..support::config(&table) });
    let mut second = campaign.clone();
    second.id = CampaignId::parse(&format!("logs-throttled-{marker}"))?;
    let throttled_emails = [format!("ulf.{marker}@example.se"), format!("vera.{marker}@example.se"), format!("ylva.{marker}@example.se")];
    let csv = format!("email;first_name\n{};Ulf\n{};Vera\n{};Ylva\n", throttled_emails[0], throttled_emails[1], throttled_emails[2]);
    launch::launch(&throttled, &second, csv.as_bytes()).await?;
    stream_invocation(&throttled, &store, &mut delivered, "req-throttled").await?;

    let feedback: SnsEvent = serde_json::from_value(json!({"Records": [
        ses_notification("Bounce", &emails[0]),
        ses_notification("Complaint", &format!("Dag Person <{}>", emails[1])),
        ses_notification("Bounce", &format!("not an address {marker}")),
    ]}))?;
    let summary = mail_feedback::handle(&services, feedback).instrument(invocation("req-feedback")).await?;
    ensure!((summary.suppressed, summary.ignored) == (2, 1), "{summary:?}");

    let event: EventBridgeEvent<Value> = serde_json::from_value(json!({
        "version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events", "account": "000000000000",
        "time": "2026-11-22T09:00:00Z", "region": "eu-north-1", "resources": ["arn:aws:events:eu-north-1:000000000000:rule/closeloop"],
        "detail": {}
    }))?;
    schedule::handle(&services, &Default::default(), event).instrument(invocation("req-schedule")).await?;

    let rows: Vec<_> = [store.campaign_rows(&campaign.id).await?, store.campaign_rows(&second.id).await?].concat();
    let tokens: Vec<String> = rows.iter().map(|r| r.invitation.token.as_str().to_owned()).collect();
    ensure!(tokens.len() == 7, "every invitation's token is looked for: {}", tokens.len());
    let mut personal: Vec<String> = emails.iter().chain(&throttled_emails).cloned().collect();
    personal.extend([owner.clone(), phone.clone(), phone.trim_start_matches('+').to_owned()]);
    personal.extend(comments.iter().cloned());
    personal.extend(tokens);

    let text = output.text();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(lines.len() > 10, "the run logged: {text}");
    let mut parsed = Vec::new();
    for line in &lines {
        let value: Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        ensure!(value.is_object(), "not a JSON object: {line}");
        for p in &personal {
            ensure!(!line.contains(p.as_str()), "a log line holds {p:?}: {line}");
        }
        ensure!(!line.contains('@'), "a log line holds an address: {line}");
        parsed.push(value);
    }

    let logs: Vec<&Value> = parsed.iter().filter(|v| v.get("_aws").is_none()).collect();
    let in_span = |v: &Value, field: &str, wanted: &str| v["spans"].as_array().is_some_and(|spans| spans.iter().any(|s| s[field] == wanted));
    for request in ["req-invitations", "req-answers", "req-throttled", "req-feedback"] {
        ensure!(logs.iter().any(|v| in_span(v, "requestId", request)), "no line of {request}: {text}");
    }
    ensure!(logs.iter().any(|v| in_span(v, "campaign", campaign.id.as_str()) && v["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["invitation"].is_string()))), "no line carries the campaign and an invitation id: {text}");
    ensure!(logs.iter().any(|v| v["message"] == "sent" && in_span(v, "requestId", "req-answers")), "the sends are logged: {text}");
    ensure!(logs.iter().any(|v| v["message"] == "address suppressed" && in_span(v, "message_id", "n-Bounce")), "the bounce is logged, by its message id: {text}");
    let asa = by_name("Åsa")?.id.0;
    ensure!(logs.iter().any(|v| v["level"] == "ERROR" && (v["invitation"] == asa.as_str() || in_span(v, "invitation", asa.as_str()))), "the send SES refused is logged, by id: {text}");

    // The metric documents, among the log lines as CloudWatch reads them.
    let documents: Vec<&Value> = parsed.iter().filter(|v| v.get("_aws").is_some()).collect();
    for document in &documents {
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        ensure!(document["_aws"]["Timestamp"].is_u64() && directive["Namespace"] == "Closeloop" && directive["Dimensions"] == json!([[]]), "{document}");
    }
    let total = |name: &str| documents.iter().filter_map(|d| d[name].as_u64()).sum::<u64>();
    // Pia, Dag and Sid's SMS; of the throttled campaign one at least.
    ensure!(total("InvitationsSent") >= 4, "{documents:?}");
    ensure!(total("Answers") == 2, "{documents:?}");
    ensure!(total("Alerts") == 1, "Dag's detractor alert: {documents:?}");
    ensure!(total("SendsThrottled") >= 1, "{documents:?}");
    Ok(())
}
