//! How long erasing one person takes in a campaign of 1,000 and of 100,000 invitations, on the
//! embedded store (a file, with its WAL checkpointed after each erasure) and on DynamoDB Local,
//! side by side in one run. Each erased person has an answer with a comment, a follow-up case
//! with a note, a claimed send and CRM fields. Prints figures; asserts only that each person
//! was found and erased. Run with `scripts/bench-erasure` (it starts DynamoDB Local);
//! `ERASURE_SIZES=1000,10000` for a quicker run, `ERASURE_PEOPLE` people per size (default 20).

use std::sync::Arc;
use std::time::{Duration, Instant};

use closeloop_core::counters::answer_deltas;
use closeloop_core::model::{Answer, CaseNote, Contact, Email, Event, EventKind, FollowUpCase, Invitation, InvitationId, Token};
use closeloop_core::ports::Store;
use closeloop_core::privacy::Person;
use closeloop_core::{Campaign, Score, Timestamp};
use closeloop_dynamodb::{create_table, local_client, DynamoStore, TableSettings};
use closeloop_embedded::SqliteStore;

const T0: Timestamp = Timestamp::from_millis(1_795_000_000_000);

fn campaign(id: &str) -> Campaign {
    let demo = include_str!("../demo/campaign.toml");
    Campaign::from_toml(&demo.replacen("id = \"demo-service-visit\"", &format!("id = \"{id}\""), 1)).expect("demo campaign")
}

fn email(campaign: &Campaign, i: usize) -> String {
    format!("p{i}@{}.example", campaign.id)
}

fn invitation(campaign: &Campaign, i: usize) -> Invitation {
    let contact = Contact {
        email: Some(Email::parse(&email(campaign, i)).expect("valid")),
        first_name: Some(format!("Person {i}")),
        last_name: Some("Benchsson".into()),
        store: Some(["Malmö", "Lund", "Göteborg"][i % 3].into()),
        properties: [("customer_number".to_owned(), format!("{}", 100_000 + i))].into(),
        ..Contact::default()
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
    let salt = campaign.id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    bytes[8..16].copy_from_slice(&salt.to_be_bytes());
    Invitation::new(InvitationId(format!("{}-{i}", campaign.id)), Token::from_random_bytes(bytes), campaign, contact, T0).expect("valid")
}

/// `n` invitations, the first `people` of them answered, with a case, a note and a send.
async fn seed(store: Arc<dyn Store>, campaign: &Campaign, n: usize, people: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    store.put_campaign(campaign).await?;
    let invitations: Arc<Vec<Invitation>> = Arc::new((0..n).map(|i| invitation(campaign, i)).collect());
    let writers = 16;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..writers {
        let (store, invitations) = (store.clone(), invitations.clone());
        tasks.spawn(async move {
            let mine: Vec<usize> = (worker..invitations.len()).step_by(writers).collect();
            for chunk in mine.chunks(500) {
                let batch: Vec<Invitation> = chunk.iter().map(|&i| invitations[i].clone()).collect();
                store.create_invitations(&batch, T0.minus_days(3650)).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    for inv in invitations.iter().take(people) {
        let answer = Answer {
            invitation_id: inv.id.clone(),
            campaign_id: campaign.id.clone(),
            score: Score::new(2).expect("0..=10"),
            comment: Some("Fick vänta länge på cykeln".into()),
            contact_ok: true,
            ratings: Default::default(),
            version: 1,
            first_answered_at: T0,
            answered_at: T0,
        };
        let event = Event { id: format!("answer-{}-1", inv.id), at: T0, kind: EventKind::AnswerRecorded { invitation_id: inv.id.clone(), version: 1, previous_score: None, score: answer.score } };
        store.record_answer(&answer, &event, &answer_deltas(campaign, inv, None, &answer)).await?;
        store.open_case(&FollowUpCase::new(inv.id.clone(), campaign.id.clone(), None, T0, T0.plus_hours(48))).await?;
        store.add_case_note(&inv.id, &CaseNote { by: "Karin".into(), at: T0, text: "Ringde, lämnade meddelande".into() }).await?;
        store.claim_send(&format!("invitation:{}", inv.id), T0).await?;
    }
    store.settle_counters().await?;
    Ok(started.elapsed())
}

/// Erases each of the first `people` one after another; their times, sorted.
async fn erase_each(store: &dyn Store, campaign: &Campaign, people: usize) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(people);
    for i in 0..people {
        let person = Person::parse(Some(&email(campaign, i)), None)?;
        let started = Instant::now();
        let report = closeloop_functions::privacy::erase(store, &person, T0.plus_days(1)).await?;
        times.push(started.elapsed());
        anyhow::ensure!(report.invitations_erased == 1, "person {i} was not erased: {report:?}");
    }
    times.sort();
    Ok(times)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::var("ERASURE_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000]);
    let people: usize = std::env::var("ERASURE_PEOPLE").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir()?;
    let client = local_client()?;
    let table = format!("closeloop-erasure-bench-{}", std::process::id());
    create_table(&client, &TableSettings { name: table.clone() }).await?;
    println!("erasing one person (an answer, a case with a note, a send, CRM fields), {people} people per size, one after another");
    println!("{:<10} {:>12} {:>10} {:>14} {:>14} {:>14}", "store", "invitations", "seed s", "median ms", "p90 ms", "max ms");
    for &n in &sizes {
        let stores: Vec<(&str, Arc<dyn Store>)> = vec![
            ("sqlite", Arc::new(SqliteStore::open(&dir.path().join(format!("erasure-{n}.db")))?)),
            ("dynamodb", Arc::new(DynamoStore::new(client.clone(), table.clone()))),
        ];
        for (name, store) in stores {
            let campaign = campaign(&format!("erase-{name}-{n}"));
            let seeded = seed(store.clone(), &campaign, n, people).await?;
            let times = erase_each(store.as_ref(), &campaign, people).await?;
            let p90 = times[(times.len() * 9 / 10).min(times.len() - 1)];
            println!(
                "{name:<10} {n:>12} {:>10.1} {:>14.1} {:>14.1} {:>14.1}",
                seeded.as_secs_f64(),
                ms(times[times.len() / 2]),
                ms(p90),
                ms(*times.last().expect("people > 0"))
            );
        }
    }
    Ok(())
}
