//! Answer changes reach the same reaction handlers through the table's stream
//! (NEW_AND_OLD_IMAGES) as through the local dispatcher; a redelivered batch sends nothing twice.

use std::sync::Arc;

use closeloop_core::model::{Answer, Event, EventKind};
use closeloop_core::ports::{Clock, Links, ManualClock, Store};
use closeloop_core::{Campaign, Score, Timestamp};
use closeloop_dynamodb::stream::{local_streams_client, read_all, Operation as OperationType, StreamRecord};
use closeloop_dynamodb::{create_table, local_client, DynamoStore, TableSettings};
use closeloop_embedded::SqliteStore;
use closeloop_functions::{dispatch, launch, Services};

const T0: Timestamp = Timestamp::from_millis(1_795_000_000_000);

fn events_in(records: &[StreamRecord]) -> Vec<Event> {
    records.iter().filter_map(StreamRecord::event).collect()
}

async fn answer(store: &DynamoStore, campaign: &Campaign, invitation_id: &closeloop_core::InvitationId, score: u8, at: Timestamp) {
    let previous = store.answer(invitation_id).await.unwrap();
    let version = previous.as_ref().map_or(1, |p| p.version + 1);
    let answer = Answer {
        invitation_id: invitation_id.clone(),
        campaign_id: campaign.id.clone(),
        score: Score::new(score).unwrap(),
        comment: Some(format!("score {score}")),
        contact_ok: false,
        ratings: Default::default(),
        version,
        first_answered_at: previous.as_ref().map_or(at, |p| p.first_answered_at),
        answered_at: at,
    };
    let event = Event {
        id: format!("answer-{invitation_id}-{version}"),
        at,
        kind: EventKind::AnswerRecorded { invitation_id: invitation_id.clone(), version, previous_score: previous.map(|p| p.score), score: answer.score },
    };
    // The stream test is about events; the counters are the contract suite's business.
    store.record_answer(&answer, &event, &Default::default()).await.unwrap();
}

#[tokio::test]
async fn stream_records_drive_the_reactions_exactly_once() {
    let client = local_client().unwrap();
    let table = format!("closeloop-stream-{}", std::process::id());
    create_table(&client, &TableSettings { name: table.clone() }).await.unwrap();
    let store = DynamoStore::new(client, table);
    let outbox_db = SqliteStore::open_in_memory().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let outbox = outbox_db.outbox(clock.clone());
    let services = Services {
        store: Arc::new(store.clone()),
        mailer: Arc::new(outbox.clone()),
        sms: Arc::new(outbox.clone()),
        clock: clock.clone(),
        links: Links::new("https://nps.example"),
    };
    let campaign = Campaign::from_toml(
        "id = \"stream\"\nname = \"Stream\"\ncompany = \"Acme\"\nsender_name = \"Sam\"\nsender_email = \"sam@acme.example\"\nmanager_email = \"boss@acme.example\"\n",
    )
    .unwrap();
    let csv = "email,first_name\npia@example.com,Pia\ndag@example.com,Dag\nuna@example.com,Una\n";
    launch::launch(&services, &campaign, csv.as_bytes()).await.unwrap();
    let rows = store.campaign_rows(&campaign.id).await.unwrap();
    let id = |name: &str| rows.iter().find(|r| r.invitation.contact.first_name.as_deref() == Some(name)).unwrap().invitation.id.clone();

    clock.set(T0.plus_hours(1));
    answer(&store, &campaign, &id("Pia"), 10, clock.now()).await;
    answer(&store, &campaign, &id("Dag"), 2, clock.now()).await;
    answer(&store, &campaign, &id("Dag"), 3, clock.now()).await;

    let records = read_all(&store, &local_streams_client().unwrap()).await.unwrap();
    let events = events_in(&records);
    assert_eq!(events.iter().filter(|e| matches!(e.kind, EventKind::InvitationCreated { .. })).count(), 3);
    let answer_events: Vec<_> = events.iter().filter(|e| matches!(e.kind, EventKind::AnswerRecorded { .. })).collect();
    assert_eq!(answer_events.len(), 3, "one event per answer change, each exactly once in the stream");
    // Answer items: Pia's inserted once, Dag's inserted then modified once; nothing else touched them.
    let answer_records: Vec<_> = records
        .iter()
        .filter(|r| r.key().1 == "ANSWER")
        .collect();
    assert_eq!(answer_records.len(), 3);
    assert_eq!(answer_records.iter().filter(|r| r.operation == OperationType::Insert).count(), 2);
    let modify = answer_records.iter().find(|r| r.operation == OperationType::Modify).unwrap();
    assert_eq!(modify.old_image.as_ref().unwrap()["version"].as_n().unwrap(), "1");
    assert_eq!(modify.new_image.as_ref().unwrap()["version"].as_n().unwrap(), "2");

    for event in &events {
        dispatch::handle_event(&services, event).await.unwrap();
    }
    let first_pass = outbox.messages().unwrap();
    // The platform delivers the same batch again: nobody gets a second message.
    for event in &events {
        dispatch::handle_event(&services, event).await.unwrap();
    }
    let messages = outbox.messages().unwrap();
    assert_eq!(messages.len(), first_pass.len());
    let count = |kind: &str| messages.iter().filter(|m| m.kind == kind).count();
    assert_eq!(count("invitation"), 3);
    assert_eq!(count("thank_you"), 2);
    assert_eq!(count("alert"), 1);
    assert_eq!(messages.len(), 6);
    assert_eq!(store.answer(&id("Dag")).await.unwrap().unwrap().version, 2);
}
