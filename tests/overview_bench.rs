//! How long the dashboard's campaign overview takes at 1,000 and at 100,000 answers, on the
//! embedded store and on DynamoDB Local, measured side by side in one run.
//!
//! Each campaign is seeded through the store's own calls (`create_invitations`, `record_answer`
//! with its counter deltas), so the counters are exactly what production writes. The overview is
//! then requested through the router, signed in as an admin, like a browser would.
//! Run with `scripts/bench-overview` (it starts DynamoDB Local). `OVERVIEW_SIZES=1000,10000`
//! changes the sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use closeloop_core::accounts::{Accounts, Role};
use closeloop_core::counters::answer_deltas;
use closeloop_core::model::{Answer, Contact, Email, Event, EventKind, Invitation, InvitationId, Token};
use closeloop_core::ports::{Links, ManualClock, Store};
use closeloop_core::{Campaign, Score, Timestamp};
use closeloop_dynamodb::{create_table, local_client, DynamoStore, TableSettings};
use closeloop_edge::admin::AdminConfig;
use closeloop_edge::{router, AppState, EdgeServices};
use closeloop_embedded::SqliteStore;

const T0: Timestamp = Timestamp::from_millis(1_795_000_000_000);
const ADMIN: &str = "bench-admin-token-0123456789";
const RENDERS: usize = 30;
/// Writers at once while seeding (`OVERVIEW_CONCURRENCY`); DynamoDB Local is slow per transaction.
fn concurrency() -> usize {
    std::env::var("OVERVIEW_CONCURRENCY").ok().and_then(|v| v.parse().ok()).filter(|&c| c > 0).unwrap_or(16)
}
const STORES: [&str; 10] = ["Malmö", "Lund", "Göteborg", "Stockholm", "Uppsala", "København", "Aarhus", "Odense", "Aalborg", "Helsingborg"];
const COMMENTS: [&str; 6] = ["Priset var för högt", "Fick vänta länge", "Trevlig personal", "Bra reparation", "", "Dyrt men bra"];

fn campaign(id: &str) -> Campaign {
    let demo = include_str!("../demo/campaign.toml");
    Campaign::from_toml(&demo.replacen("id = \"demo-service-visit\"", &format!("id = \"{id}\""), 1)).expect("demo campaign")
}

fn invitation(campaign: &Campaign, i: usize) -> Invitation {
    let contact = Contact {
        email: Some(Email::parse(&format!("p{i}@{}.example", campaign.id)).expect("valid")),
        first_name: Some(format!("Person {i}")),
        store: Some(STORES[i % STORES.len()].into()),
        segment: Some(["private", "business", "fleet"][i % 3].into()),
        owner_email: Some(Email::parse(&format!("owner{}@nordhavn.example", i % 20)).expect("valid")),
        // A customer number is a CRM field with a value per contact: its buckets must not slow
        // the overview down.
        properties: [("region".to_owned(), ["Syd", "Väst", "Öst"][i % 3].to_owned()), ("customer_number".to_owned(), format!("{}", 100_000 + i))]
            .into(),
        ..Contact::default()
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
    // Tokens differ per campaign too: the token index is global.
    let salt = campaign.id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    bytes[8..16].copy_from_slice(&salt.to_be_bytes());
    Invitation::new(InvitationId(format!("{}-{i}", campaign.id)), Token::from_random_bytes(bytes), campaign, contact, T0).expect("valid")
}

fn answer(invitation: &Invitation, i: usize) -> (Answer, Event) {
    // Spread over 26 weeks so the trend has a full half year to draw.
    let at = T0.plus_hours((i % (26 * 7 * 24)) as u32);
    let score = Score::new([10, 9, 9, 8, 7, 10, 6, 3, 9, 0, 8][i % 11]).expect("0..=10");
    let comment = COMMENTS[i % COMMENTS.len()];
    let answer = Answer {
        invitation_id: invitation.id.clone(),
        campaign_id: invitation.campaign_id.clone(),
        score,
        comment: (!comment.is_empty()).then(|| comment.to_owned()),
        contact_ok: i % 5 == 0,
        ratings: [("ease".to_owned(), (1 + i % 5) as u8), ("quality".to_owned(), (1 + (i / 3) % 5) as u8)].into(),
        version: 1,
        first_answered_at: at,
        answered_at: at,
    };
    let event = Event {
        id: format!("answer-{}-1", invitation.id),
        at,
        kind: EventKind::AnswerRecorded { invitation_id: invitation.id.clone(), version: 1, previous_score: None, score },
    };
    (answer, event)
}

/// Seeds `n` answered invitations through the store's own calls, several writers at a time.
async fn seed(store: Arc<dyn Store>, campaign: &Campaign, n: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    store.put_campaign(campaign).await?;
    let invitations: Arc<Vec<Invitation>> = Arc::new((0..n).map(|i| invitation(campaign, i)).collect());
    let mut tasks = tokio::task::JoinSet::new();
    let writers = concurrency();
    for worker in 0..writers {
        let (store, invitations, campaign) = (store.clone(), invitations.clone(), campaign.clone());
        tasks.spawn(async move {
            let mine: Vec<usize> = (worker..invitations.len()).step_by(writers).collect();
            for chunk in mine.chunks(500) {
                let batch: Vec<Invitation> = chunk.iter().map(|&i| invitations[i].clone()).collect();
                store.create_invitations(&batch, T0.minus_days(3650)).await?;
            }
            for i in mine {
                let inv = &invitations[i];
                let (answer, event) = answer(inv, i);
                let deltas = answer_deltas(&campaign, inv, None, &answer);
                store.record_answer(&answer, &event, &deltas).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

async fn signed_in(app: &axum::Router) -> anyhow::Result<String> {
    let cookie_of = |r: &axum::response::Response, name: &str| {
        r.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned()))
    };
    let form = app.clone().oneshot(Request::get("/admin/sign-in").body(Body::empty())?).await?;
    let nonce = cookie_of(&form, "cl_signin").ok_or_else(|| anyhow::anyhow!("no sign-in cookie"))?;
    let html = String::from_utf8(form.into_body().collect().await?.to_bytes().to_vec())?;
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("").to_owned();
    let response = app
        .clone()
        .oneshot(
            Request::post("/admin/sign-in")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, format!("cl_signin={nonce}"))
                .body(Body::from(format!("csrf={csrf}&token={ADMIN}")))?,
        )
        .await?;
    Ok(format!("cl_session={}", cookie_of(&response, "cl_session").ok_or_else(|| anyhow::anyhow!("sign-in failed"))?))
}

fn overview_app(store: Arc<dyn Store>) -> anyhow::Result<axum::Router> {
    let services = EdgeServices { store, clock: Arc::new(ManualClock::new(T0.plus_days(200))), links: Links::new("https://nps.example") };
    let accounts = Accounts::default().with("Admin", Role::Admin, None, ADMIN);
    Ok(router(AppState::new(services, None).with_admin(AdminConfig::new(accounts, "a benchmark session secret, long enough")?)))
}

/// One overview request, read to the end: its time and the page's size.
async fn render_overview(app: &axum::Router, cookie: &str, campaign: &Campaign) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let request = Request::get(format!("/admin/c/{}", campaign.id)).header(header::COOKIE, cookie).body(Body::empty())?;
    let response = app.clone().oneshot(request).await?;
    anyhow::ensure!(response.status() == StatusCode::OK, "overview answered {}", response.status());
    let body = response.into_body().collect().await?.to_bytes();
    let elapsed = started.elapsed();
    anyhow::ensure!(body.windows(13).any(|w| w == b"id=\"nps-value"), "no NPS on the page");
    Ok((elapsed, body.len()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::var("OVERVIEW_SIZES")
        .unwrap_or_else(|_| "1000,100000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let dir = tempfile::tempdir()?;
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("bench.db"))?);
    let table = format!("closeloop-overview-bench-{}", std::process::id());
    let client = local_client()?;
    create_table(&client, &TableSettings { name: table.clone() }).await?;
    let dynamo: Arc<dyn Store> = Arc::new(DynamoStore::new(client, table));

    // Seed everything first, then measure every campaign in alternation, so the figures of all
    // sizes and both stores come from the same minutes of the same machine.
    let mut seeded = Vec::new();
    for (name, store) in [("embedded SQLite", sqlite), ("DynamoDB Local", dynamo)] {
        for &n in &sizes {
            let campaign = campaign(&format!("bench-{n}"));
            let took = seed(store.clone(), &campaign, n).await?;
            // What the stream consumer does on AWS: fold the events' deltas into the counters
            // (SQLite counted them in the writes already).
            store.settle_counters().await?;
            let counters = store.campaign_counters(&campaign.id).await?;
            anyhow::ensure!(counters.tally.answered() == n as u64, "{name}: {} answers counted, {n} seeded", counters.tally.answered());
            eprintln!("seeded {n} answers on {name} in {:.1} s", took.as_secs_f64());
            seeded.push((name, n, store.clone(), campaign, took));
        }
    }
    let mut apps = Vec::new();
    for (name, n, store, campaign, took) in seeded {
        let app = overview_app(store)?;
        let cookie = signed_in(&app).await?;
        apps.push((name, n, app, cookie, campaign, took, Vec::new(), 0usize));
    }
    for round in 0..RENDERS + 3 {
        for (_, _, app, cookie, campaign, _, times, bytes) in apps.iter_mut() {
            let (elapsed, size) = render_overview(app, cookie, campaign).await?;
            if round >= 3 {
                times.push(elapsed);
            }
            *bytes = size;
        }
    }
    println!("Campaign overview through the router, signed in as an admin; {RENDERS} renders each after 3 warm-ups, in alternation.");
    println!("{:<18} {:>9} {:>12} {:>12} {:>12} {:>10}", "store", "answers", "seeded in", "median ms", "p90 ms", "page bytes");
    let mut medians = Vec::new();
    for (name, n, _, _, _, took, times, bytes) in apps.iter_mut() {
        times.sort();
        let (median, p90) = (times[times.len() / 2], times[times.len() * 9 / 10]);
        println!("{name:<18} {n:>9} {:>10.1} s {:>12.2} {:>12.2} {bytes:>10}", took.as_secs_f64(), ms(median), ms(p90));
        medians.push((*name, *n, median));
    }
    for name in ["embedded SQLite", "DynamoDB Local"] {
        let of = |n: usize| medians.iter().find(|(s, m, _)| *s == name && *m == n).map(|(.., d)| ms(*d));
        if let (Some(small), Some(large)) = (of(sizes[0]), of(*sizes.last().unwrap_or(&sizes[0]))) {
            println!("{name}: {} answers take {:.2}x the time of {}", sizes.last().unwrap_or(&0), large / small, sizes[0]);
        }
    }
    Ok(())
}
