//! The Lambda handlers with real event payloads, against DynamoDB Local and the local SES
//! endpoint: a stream batch read from the table's stream (delivered twice), an SNS bounce and
//! complaint from SES, and an EventBridge schedule.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sns::SnsEvent;
use closeloop_core::contract;
use closeloop_core::changes::Change;
use closeloop_core::counters::{Aggregates, View};
use closeloop_core::model::Answer;
use closeloop_core::ports::Store;
use closeloop_core::{ContactKey, Email, Score, Timestamp};
use closeloop_dynamodb::stream::{local_streams_client, read_all};
use closeloop_functions::launch;
use closeloop_lambdas::{mail_feedback, on_answer, schedule, SystemClock};
use serde_json::json;

mod support;
use support::{lambda_batch, sent_to, world};

#[tokio::test]
async fn a_stream_batch_delivered_twice_mails_nobody_twice() {
    let (services, store, _) = world("stream").await;
    let marker = format!("m{}", std::process::id());
    let campaign =
        closeloop_core::Campaign::from_toml(include_str!("../../../demo/campaign.toml")).unwrap();
    let phone = format!("+4673{:07}", std::process::id() % 10_000_000);
    let csv = format!(
        "email;phone;first_name;owner_email\npia.{marker}@example.se;;Pia;owner.{marker}@example.se\ndag.{marker}@example.se;;Dag;owner.{marker}@example.se\n;{phone};Sid;\n"
    );
    launch::launch(&services, &campaign, csv.as_bytes())
        .await
        .unwrap();
    let rows = store.campaign_rows(&campaign.id).await.unwrap();
    let now = services.clock.now();
    for (name, score) in [("Pia", 10u8), ("Dag", 1)] {
        let row = rows.iter().find(|r| r.invitation.contact.first_name.as_deref() == Some(name)).unwrap();
        let id = row.invitation.id.clone();
        let answer = Answer {
            invitation_id: id.clone(),
            campaign_id: campaign.id.clone(),
            score: Score::new(score).unwrap(),
            comment: Some("via the stream".into()),
            contact_ok: false,
            ratings: Default::default(),
            version: 1,
            first_answered_at: now,
            answered_at: now,
        };
        let change = Change::answer_recorded(&campaign, &row.invitation, None, &answer);
        store.record_answer(&answer, &change.event, &change.deltas).await.unwrap();
    }
    let batch = lambda_batch(
        &read_all(&store, &local_streams_client().unwrap())
            .await
            .unwrap(),
    );
    assert!(
        batch.records.len() > 4,
        "the batch holds invitations, answers, events and counters"
    );

    let counted = || async {
        let rows = store.campaign_rows(&campaign.id).await.unwrap();
        let buckets = store.counter_buckets(&campaign.id, &View::Everything.prefixes()).await.unwrap();
        (Aggregates::from_buckets(buckets), Aggregates::from_rows(&campaign, &rows))
    };
    let first = on_answer::handle(&services, batch.clone(), None).await.unwrap();
    assert!(first.batch_item_failures.is_empty());
    let (counters, rows) = counted().await;
    assert_eq!(counters, rows, "the batch's counter deltas were applied");
    assert_eq!(counters.tally().answered(), 2);
    let pending = store.pending_events(10_000).await.unwrap();
    let ids = rows_ids(&store, &campaign).await;
    assert!(
        pending.iter().all(|e| !ids.iter().any(|id| e.id.contains(id.as_str()))),
        "handled events left the work index: {pending:?}"
    );
    let after_first = sent_to(&marker).await;
    // 2 invitations, 2 thank-yous, 1 review invitation (the promoter), 1 alert (the detractor).
    assert_eq!(after_first.len(), 6, "{after_first:#?}");
    let second = on_answer::handle(&services, batch, None).await.unwrap();
    assert!(second.batch_item_failures.is_empty());
    assert_eq!(counted().await.0, counters, "a redelivered batch counts nothing twice");
    assert_eq!(
        sent_to(&marker).await.len(),
        6,
        "the redelivered batch sent nothing"
    );
    let subjects: Vec<String> = after_first
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        subjects.iter().any(|s| s.starts_with("Hur gick det?")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("Dag svarade 1")),
        "the alert, in the campaign's first language: {subjects:?}"
    );
}

#[tokio::test]
async fn an_sns_bounce_or_complaint_from_ses_suppresses_the_address() {
    let (services, store, _) = world("feedback").await;
    let notification = |kind: &str, address: &str| {
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
               "Sns": {"Type": "Notification", "MessageId": "n1", "TopicArn": "arn:aws:sns:eu-north-1:000000000000:ses-feedback",
                       "Subject": null, "Message": message.to_string(), "Timestamp": "2026-11-22T10:00:01.000Z",
                       "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "https://x", "UnsubscribeUrl": "https://x",
                       "MessageAttributes": {}}})
    };
    let transient = {
        let mut n = notification("Bounce", "full@example.se");
        let message = n["Sns"]["Message"]
            .as_str()
            .unwrap()
            .replace("\"Permanent\"", "\"Transient\"");
        n["Sns"]["Message"] = json!(message);
        n
    };
    let event: SnsEvent = serde_json::from_value(json!({"Records": [
        notification("Bounce", "gone@example.se"),
        notification("Complaint", "Angry Person <angry@example.se>"),
        transient,
    ]}))
    .unwrap();
    let summary = mail_feedback::handle(&services, event).await.unwrap();
    assert_eq!((summary.suppressed, summary.ignored), (2, 1));
    let suppressed = |a: &str| {
        let store = store.clone();
        let key = ContactKey::email(&Email::parse(a).unwrap());
        async move { store.is_suppressed(&[key]).await.unwrap() }
    };
    assert!(suppressed("gone@example.se").await);
    assert!(suppressed("angry@example.se").await);
    assert!(
        !suppressed("full@example.se").await,
        "a full mailbox may recover"
    );
}

#[tokio::test]
async fn the_scheduled_event_sends_due_reminders_once() {
    let (services, store, _) = world("schedule").await;
    let campaign = contract::campaign("lambda-schedule");
    store.put_campaign(&campaign).await.unwrap();
    // Invited four days ago by the clock the function itself reads.
    let invited_at = Timestamp::from_millis(
        closeloop_core::ports::Clock::now(&SystemClock).millis() - 4 * closeloop_core::time::DAY_MS,
    );
    let inv = contract::invitation(&campaign, 7, invited_at);
    store
        .create_invitations(std::slice::from_ref(&inv), invited_at.minus_days(90))
        .await
        .unwrap();
    let event: EventBridgeEvent<serde_json::Value> = serde_json::from_value(json!({
        "version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events", "account": "000000000000",
        "time": "2026-11-22T09:00:00Z", "region": "eu-north-1", "resources": ["arn:aws:events:eu-north-1:000000000000:rule/closeloop"],
        "detail": {}
    }))
    .unwrap();
    let first = schedule::handle(&services, &Default::default(), event.clone()).await.unwrap();
    assert_eq!(first.reminders_sent, 1);
    assert_eq!(
        schedule::handle(&services, &Default::default(), event)
            .await
            .unwrap()
            .reminders_sent,
        0
    );
    let reminders = sent_to(inv.contact.email.as_ref().unwrap().as_str()).await;
    assert_eq!(reminders.len(), 1);
    assert!(reminders[0]["body"]["text"]
        .as_str()
        .unwrap()
        .contains("https://nps.example/s/"));
}

async fn rows_ids(store: &closeloop_dynamodb::DynamoStore, campaign: &closeloop_core::Campaign) -> Vec<String> {
    store.campaign_rows(&campaign.id).await.unwrap().into_iter().map(|r| r.invitation.id.0).collect()
}

#[tokio::test]
async fn near_its_deadline_the_stream_handler_starts_nothing_and_reports_every_record_for_retry() {
    let (services, store, _) = world("deadline").await;
    let marker = format!("d{}", std::process::id());
    let campaign = closeloop_core::Campaign::from_toml(include_str!("../../../demo/campaign.toml")).unwrap();
    let csv = format!("email;first_name\nula.{marker}@example.se;Ula\nolle.{marker}@example.se;Olle\n");
    launch::launch(&services, &campaign, csv.as_bytes()).await.unwrap();
    let batch = lambda_batch(&read_all(&store, &local_streams_client().unwrap()).await.unwrap());
    let response = on_answer::handle(&services, batch, Some(std::time::Instant::now())).await.unwrap();
    assert!(response.batch_item_failures.len() >= 2, "{:?}", response.batch_item_failures);
    assert!(sent_to(&marker).await.is_empty(), "nothing was started");
}

#[tokio::test]
async fn a_suppression_the_worker_wrote_is_marked_once_when_the_stream_delivers_it() {
    let (services, store, _) = world("deferred").await;
    let marker = format!("w{}", std::process::id());
    let campaign = closeloop_core::Campaign::from_toml(include_str!("../../../demo/campaign.toml")).unwrap();
    let csv = format!("email;first_name\numa.{marker}@example.se;Uma\nvic.{marker}@example.se;Vic\n");
    launch::launch(&services, &campaign, csv.as_bytes()).await.unwrap();
    // The Worker's unsubscribe: the suppression only, two writes at most whatever the person's history.
    let worker_store = store.clone().with_deferred_suppression_marks();
    let email = Email::parse(&format!("uma.{marker}@example.se")).unwrap();
    let key = ContactKey::email(&email);
    let now = services.clock.now();
    assert!(worker_store.suppress(&key, closeloop_core::SuppressionReason::Unsubscribed, now).await.unwrap());
    let uma = |rows: &[closeloop_core::ports::InvitationRow]| {
        rows.iter().find(|r| r.invitation.contact.email.as_ref() == Some(&email)).cloned().unwrap()
    };
    let before = uma(&store.campaign_rows(&campaign.id).await.unwrap());
    assert!(!before.suppressed && before.invitation.next_reminder_at.is_some(), "not marked yet");
    assert!(store.is_suppressed(&[key.clone()]).await.unwrap(), "yet no mail goes out: sending checks the suppression");

    for delivery in 0..2 {
        let batch = lambda_batch(&read_all(&store, &local_streams_client().unwrap()).await.unwrap());
        let handled = on_answer::handle(&services, batch, None).await.unwrap();
        assert!(handled.batch_item_failures.is_empty(), "delivery {delivery}");
    }
    let rows = store.campaign_rows(&campaign.id).await.unwrap();
    let after = uma(&rows);
    assert!(after.suppressed, "marked when the stream delivered the suppression");
    assert!(after.invitation.next_reminder_at.is_none(), "and its reminders are off");
    assert!(!rows.iter().find(|r| r.invitation.id != after.invitation.id).unwrap().suppressed, "Vic is not");
    let buckets = store.counter_buckets(&campaign.id, &View::Everything.prefixes()).await.unwrap();
    assert_eq!(Aggregates::from_buckets(buckets), Aggregates::from_rows(&campaign, &rows), "counted once, though delivered twice");
    assert_eq!(Aggregates::from_rows(&campaign, &rows).funnel().unsubscribed, 1);
}

/// Every item in the table, as text: what a scan for erased data reads.
async fn table_text(store: &closeloop_dynamodb::DynamoStore) -> String {
    let mut text = String::new();
    let mut start = None;
    loop {
        let page = store.client().scan().table_name(store.table()).set_exclusive_start_key(start).send().await.unwrap();
        for item in page.items.unwrap_or_default() {
            text.push_str(&serde_json::to_string(&serde_dynamo::Item::from(item)).unwrap());
            text.push('\n');
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return text;
        }
    }
}

#[tokio::test]
async fn an_erased_person_is_in_no_item_of_the_table_and_the_stream_handles_the_erasure_as_nothing_to_do() {
    let (services, store, _) = world("erase").await;
    let marker = format!("e{}", std::process::id());
    let mut campaign = closeloop_core::Campaign::from_toml(include_str!("../../../demo/campaign.toml")).unwrap();
    campaign.id = closeloop_core::CampaignId::parse(&format!("erase-{marker}")).unwrap();
    let phone = format!("+4676{:07}", std::process::id() % 10_000_000);
    let email = format!("ingrid.{marker}@example.se");
    let csv = format!("email;phone;first_name;last_name;owner_email;bike_model\n{email};{phone};Ingrid;Sjöberg{marker};owner.{marker}@example.se;Crescent {marker}\npia.{marker}@example.se;;Pia;Persson;;Monark\n");
    launch::launch(&services, &campaign, csv.as_bytes()).await.unwrap();
    let rows = store.campaign_rows(&campaign.id).await.unwrap();
    let ingrid = rows.iter().find(|r| r.invitation.contact.first_name.as_deref() == Some("Ingrid")).unwrap().invitation.clone();
    let comments = [format!("Kedjan hoppade av {marker}"), format!("Igen, ring mig {marker}")];
    let mut previous: Option<Answer> = None;
    for (version, comment) in comments.iter().enumerate() {
        let now = services.clock.now();
        let answer = Answer {
            invitation_id: ingrid.id.clone(),
            campaign_id: campaign.id.clone(),
            score: Score::new(2).unwrap(),
            comment: Some(comment.clone()),
            contact_ok: true,
            ratings: Default::default(),
            version: version as u32 + 1,
            first_answered_at: previous.as_ref().map_or(now, |p| p.first_answered_at),
            answered_at: now,
        };
        let change = Change::answer_recorded(&campaign, &ingrid, previous.as_ref(), &answer);
        store.record_answer(&answer, &change.event, &change.deltas).await.unwrap();
        previous = Some(answer);
    }
    let streams = local_streams_client().unwrap();
    let handled = on_answer::handle(&services, lambda_batch(&read_all(&store, &streams).await.unwrap()), None).await.unwrap();
    assert!(handled.batch_item_failures.is_empty());
    let note = format!("Ringde Ingrid {marker}");
    let entry = closeloop_core::model::CaseNote { by: format!("owner.{marker}@example.se"), at: services.clock.now(), text: note.clone() };
    assert!(store.add_case_note(&ingrid.id, &entry).await.unwrap(), "the detractor's case was opened by the stream");
    let sent_before = sent_to(&marker).await.len();
    assert!(sent_before >= 4, "invitations, a thank-you and an alert went out");
    let every_bucket = View::Everything.prefixes();
    let counted_before = store.counter_buckets(&campaign.id, &every_bucket).await.unwrap();
    // The CRM value too: in counter bucket names and in the events' deltas until the erasure.
    let personal = [email.clone(), phone.clone(), format!("Sjöberg{marker}"), comments[0].clone(), comments[1].clone(), note.clone(), format!("Crescent {marker}")];
    let before = table_text(&store).await;
    assert!(personal.iter().all(|p| before.contains(p.as_str())), "the data is in the table before");

    let person = closeloop_core::privacy::Person::parse(Some(&email), None).unwrap();
    let report = closeloop_functions::privacy::erase(&store, &person, services.clock.now()).await.unwrap();
    assert_eq!((report.invitations_erased, report.keys_suppressed), (1, 2));
    let after = table_text(&store).await;
    for p in &personal {
        assert!(!after.contains(p.as_str()), "{p} is still in the table");
    }

    // The stream now holds the erasure's records (rewritten items, deleted links, the hashed
    // suppression) behind everything before them: delivered twice, nothing is sent or counted.
    for delivery in 0..2 {
        let handled = on_answer::handle(&services, lambda_batch(&read_all(&store, &streams).await.unwrap()), None).await.unwrap();
        assert!(handled.batch_item_failures.is_empty(), "delivery {delivery}");
    }
    assert_eq!(sent_to(&marker).await.len(), sent_before, "nothing more was sent");
    let counted_after = store.counter_buckets(&campaign.id, &every_bucket).await.unwrap();
    assert_eq!(counted_after.get("total"), counted_before.get("total"), "the totals stay");
    assert!(counted_after.contains_key("seg\u{1f}prop:bike_model\u{1f}(erased)"), "her bike model counts as erased");
    assert_eq!(Aggregates::from_buckets(counted_after), Aggregates::from_rows(&campaign, &store.campaign_rows(&campaign.id).await.unwrap()), "counters equal the rows");
    assert!(!table_text(&store).await.contains(email.as_str()), "and nothing brought the address back");

    let mut again = campaign.clone();
    again.id = closeloop_core::CampaignId::parse(&format!("erase-again-{marker}")).unwrap();
    let relaunch = launch::launch(&services, &again, csv.as_bytes()).await.unwrap();
    assert_eq!(relaunch.suppressed, 1, "a relaunch does not invite her");
}
