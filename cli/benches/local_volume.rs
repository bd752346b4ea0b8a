//! `scripts/bench-local-volume`: the embedded store at a real programme's size, measured in one
//! run. Prints figures; asserts nothing about time (only that the work was done).
//!
//! 1. Launches of 10,000 and 100,000 contacts through the real path: `functions::launch` into
//!    SQLite, then the dispatcher renders every invitation into the outbox.
//! 2. A campaign of 20,000 invitations and 5,000 answers (answers, review clicks and unsubscribes
//!    posted over HTTP to the local server): the dashboard's comments page, the CSV export and
//!    the report (`closeloop report`'s code), each the median of a few runs, beside the
//!    campaign-rows query as it was before (kept here only) and as it is now.
//! 3. Survey page latency (GET /s/{token}, sequential, a new connection each) with no other load,
//!    and while a client downloads that export in a loop.
//!
//! Sizes: `LOCAL_VOLUME_SIZES=1000,10000` (launches), `LOCAL_VOLUME_INVITATIONS`,
//! `LOCAL_VOLUME_ANSWERS`, `LOCAL_VOLUME_RUNS` (medians), `LOCAL_VOLUME_REQUESTS` (survey pages per
//! series); `LOCAL_VOLUME_OLD_QUERY=0` skips the old query (33 s at full size).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use closeloop::commands::{describe_reports, reports, DEMO_CAMPAIGN};
use closeloop::{serve, LocalApp, Running, Settings};
use closeloop_core::accounts::{Accounts, Role};
use closeloop_core::ports::{Store, SystemClock};
use closeloop_core::Campaign;
use closeloop_embedded::OutboxCursor;

const ADMIN: &str = "local-volume-bench-admin-token";
const SESSION_SECRET: &str = "a benchmark session secret, long enough";

/// The campaign-rows query before it was made linear: suppression through the contact links,
/// whose key starts with the contact, so each invitation's lookup scanned the whole table.
const OLD_CAMPAIGN_ROWS: &str = "SELECT i.body, i.reminders_sent, i.next_reminder_at, i.answered_at, i.opened_at, i.suppressed, a.body,
        (SELECT COUNT(*) FROM review_clicks r WHERE r.invitation_id = i.id),
        EXISTS (SELECT 1 FROM contact_invitations ci JOIN suppressions s ON s.contact_key = ci.contact_key
                WHERE ci.invitation_id = i.id)
 FROM invitations i LEFT JOIN answers a ON a.invitation_id = i.id
 WHERE i.campaign_id = ?1 ORDER BY i.created_at, i.id";

/// Today's, as the store runs it (`adapters/embedded/src/store.rs`).
const NEW_CAMPAIGN_ROWS: &str = "SELECT i.body, i.reminders_sent, i.next_reminder_at, i.answered_at, i.opened_at, i.suppressed, a.body,
        (SELECT COUNT(*) FROM review_clicks r WHERE r.invitation_id = i.id), i.suppressed IS NOT NULL
 FROM invitations i LEFT JOIN answers a ON a.invitation_id = i.id
 WHERE i.campaign_id = ?1 ORDER BY i.created_at, i.id";

const COMMENTS: [&str; 8] = [
    "Priset var för högt",
    "Fick vänta länge på cykeln",
    "Trevlig personal, bra reparation",
    "",
    "Dyrt men bra",
    "Mekanikern var otrevlig",
    "",
    "Snabbt och lagad som ny",
];

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn contacts_csv(n: usize, salt: &str) -> String {
    let stores = ["Malmö", "Göteborg", "København", "Aarhus", "Lund", "Odense"];
    let mut csv = String::from("first_name;last_name;email;store;segment;owner_email;locale;customer_number\n");
    for i in 0..n {
        csv.push_str(&format!(
            "Åsa{i};Lindqvist;person{i}.{salt}@example.se;{};{};owner{}@nordhavn-cykler.example;{};{}\n",
            stores[i % stores.len()],
            ["private", "business", "fleet"][i % 3],
            i % 20,
            ["sv", "da", "en"][i % 3],
            100_000 + i
        ));
    }
    csv
}

fn campaign(id: &str) -> anyhow::Result<Campaign> {
    Ok(Campaign::from_toml(&DEMO_CAMPAIGN.replacen("id = \"demo-service-visit\"", &format!("id = \"{id}\""), 1))?)
}

fn open_app(dir: &std::path::Path) -> anyhow::Result<LocalApp> {
    let settings = Settings { data_dir: dir.to_owned(), public_url: "http://127.0.0.1:1".into(), api_token: None };
    LocalApp::open(&settings, Arc::new(SystemClock))
}

/// A reply: status, head as sent, body.
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn cookie(&self, name: &str) -> Option<String> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.trim()))
            .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned()))
    }
}

/// One HTTP/1.1 request on a fresh connection, read to the end.
fn http(addr: SocketAddr, method: &str, path: &str, cookie: Option<&str>, body: &str) -> anyhow::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of head")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).context("no status")?;
    let mut body = raw[split + 4..].to_vec();
    if head.to_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok(Reply { status, head, body })
}

fn dechunk(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = input.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&input[..line_end]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 || input.len() < line_end + 4 + size {
            break;
        }
        out.extend_from_slice(&input[line_end + 2..line_end + 2 + size]);
        input = &input[line_end + 4 + size..];
    }
    out
}

fn sign_in(addr: SocketAddr) -> anyhow::Result<String> {
    let form = http(addr, "GET", "/admin/sign-in", None, "")?;
    let nonce = form.cookie("cl_signin").context("no sign-in cookie")?;
    let html = String::from_utf8_lossy(&form.body).into_owned();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).context("no csrf field")?;
    let signed = http(addr, "POST", "/admin/sign-in", Some(&format!("cl_signin={nonce}")), &format!("csrf={csrf}&token={ADMIN}"))?;
    Ok(format!("cl_session={}", signed.cookie("cl_session").context("sign-in failed")?))
}

/// Runs blocking client code off the runtime, which serves the requests.
async fn client<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

async fn outbox_total(app: &LocalApp) -> anyhow::Result<u64> {
    Ok(app.outbox.page(OutboxCursor::Newest, 1).await?.total)
}

async fn launches(root: &std::path::Path, sizes: &[usize]) -> anyhow::Result<()> {
    println!("\n1. Launch on SQLite: parse, store, then render every invitation into the outbox (functions::launch + dispatch)");
    for &size in sizes {
        let dir = root.join(format!("launch-{size}"));
        let app = open_app(&dir)?;
        let c = campaign(&format!("launch-{size}"))?;
        let csv = contacts_csv(size, &format!("l{size}"));
        // The dry run the workspace shows before a launch: every row validated, the store asked
        // by key for suppressions and the throttle window, nothing written.
        let checking = Instant::now();
        let report = closeloop_functions::launch::dry_run(&app.services, &c, &closeloop_functions::launch::ContactsFile::new(csv.as_bytes())).await?;
        let dry_run = checking.elapsed();
        ensure!(report.would_invite as usize == size, "the dry run would invite {} of {size}", report.would_invite);
        let started = Instant::now();
        let summary = closeloop_functions::launch::launch(&app.services, &c, csv.as_bytes()).await?;
        let stored = started.elapsed();
        let dispatched = app.dispatch().await?;
        let total = started.elapsed();
        ensure!(summary.invited == size, "{} of {size} invited: {summary:?}", summary.invited);
        let messages = outbox_total(&app).await?;
        ensure!(messages as usize >= size, "{messages} messages in the outbox for {size} invitations ({dispatched:?})");
        println!(
            "   {size:>7} contacts: {:>6.2} s  ({:>6.0} invitations/s; stored in {:.2} s, {messages} messages rendered into the outbox in {:.2} s)",
            total.as_secs_f64(),
            size as f64 / total.as_secs_f64(),
            stored.as_secs_f64(),
            (total - stored).as_secs_f64()
        );
        let checking = Instant::now();
        let again = closeloop_functions::launch::dry_run(&app.services, &c, &closeloop_functions::launch::ContactsFile::new(csv.as_bytes())).await?;
        ensure!(again.launched_before.is_some(), "the launched file is known to its dry run");
        println!(
            "   {size:>7} contacts: dry run {:>6.2} s before the launch, {:.2} s of the same file after it ({} would be invited)",
            dry_run.as_secs_f64(),
            checking.elapsed().as_secs_f64(),
            again.would_invite
        );
    }
    Ok(())
}

/// A campaign as a real one looks after a while: every invitation rendered and sent, answers
/// (with comments and ratings), review clicks and unsubscribes posted to the server, and every
/// reaction (thank-you, review invitation, alerts, cases) dispatched.
async fn seed_campaign(app: &LocalApp, addr: SocketAddr, c: &Campaign, invitations: usize, answers: usize) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let summary = closeloop_functions::launch::launch(&app.services, c, contacts_csv(invitations, "c").as_bytes()).await?;
    ensure!(summary.invited == invitations, "{summary:?}");
    app.dispatch().await?;
    let tokens: Vec<String> = app.store.campaign_rows(&c.id).await?.into_iter().map(|r| r.invitation.token.as_str().to_owned()).collect();
    let launched = started.elapsed();
    let answering = tokens[..answers.min(tokens.len())].to_vec();
    let posted = client(move || {
        for (i, token) in answering.iter().enumerate() {
            let comment = COMMENTS[i % COMMENTS.len()].replace(' ', "+");
            let body = format!("score={}&comment={comment}&rating.ease={}&rating.quality={}{}", [10, 9, 9, 8, 7, 10, 6, 3, 9, 0, 8][i % 11], 1 + i % 5, 1 + (i / 3) % 5, if i % 7 == 0 { "&contact_ok=yes" } else { "" });
            let reply = http(addr, "POST", &format!("/s/{token}"), None, &body)?;
            ensure!(reply.status == 303, "answer {i} got {}", reply.status);
            if i % 5 == 0 {
                http(addr, "GET", &format!("/r/{token}/google"), None, "")?;
            }
            if i % 40 == 1 {
                http(addr, "POST", &format!("/u/{token}"), None, "")?;
            }
        }
        Ok(answering.len())
    })
    .await?;
    // Also unsubscribes of people who never answered.
    let silent = tokens[answers.min(tokens.len())..].iter().step_by(97).cloned().collect::<Vec<_>>();
    client(move || {
        for token in silent {
            http(addr, "POST", &format!("/u/{token}"), None, "")?;
        }
        Ok(())
    })
    .await?;
    app.dispatch().await?;
    let rows = app.store.campaign_rows(&c.id).await?;
    let answered = rows.iter().filter(|r| r.answer.is_some()).count();
    let suppressed = rows.iter().filter(|r| r.suppressed).count();
    let clicks: u32 = rows.iter().map(|r| r.review_clicks).sum();
    ensure!(answered == posted, "{answered} answers stored, {posted} posted");
    println!(
        "   seeded {} invitations (launched and sent in {:.1} s), {answered} answers, {clicks} review clicks, {suppressed} suppressed, over HTTP in {:.1} s",
        rows.len(),
        launched.as_secs_f64(),
        (started.elapsed() - launched).as_secs_f64()
    );
    Ok(tokens)
}

/// Median time of `runs` GETs of `path`, each read to the end, and the size of the last.
async fn time_page(addr: SocketAddr, cookie: &str, path: &str, runs: usize, must_contain: &'static str) -> anyhow::Result<(Duration, usize)> {
    let (cookie, path) = (cookie.to_owned(), path.to_owned());
    client(move || {
        let mut samples = Vec::new();
        let mut size = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let reply = http(addr, "GET", &path, Some(&cookie), "")?;
            samples.push(t.elapsed());
            ensure!(reply.status == 200, "{path} answered {}", reply.status);
            ensure!(String::from_utf8_lossy(&reply.body).contains(must_contain), "{path} lacks {must_contain:?}");
            size = reply.body.len();
        }
        Ok((median(samples), size))
    })
    .await
}

/// The campaign-rows query on its own connection, every column read (no JSON decoding).
fn raw_query(path: &std::path::Path, sql: &str, campaign: &str) -> anyhow::Result<(Duration, usize, usize)> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let started = Instant::now();
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([campaign])?;
    let (mut n, mut suppressed) = (0, 0);
    while let Some(row) = rows.next()? {
        let _: (String, u32, Option<i64>, Option<i64>, Option<i64>, Option<String>, Option<String>, u32) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?);
        if row.get::<_, bool>(8)? {
            suppressed += 1;
        }
        n += 1;
    }
    Ok((started.elapsed(), n, suppressed))
}

/// GET /s/{token} for each token, one after another: p50, p99 and max.
fn survey_series(addr: SocketAddr, tokens: &[String]) -> anyhow::Result<(Duration, Duration, Duration)> {
    let mut samples = Vec::with_capacity(tokens.len());
    for token in tokens {
        let t = Instant::now();
        let reply = http(addr, "GET", &format!("/s/{token}"), None, "")?;
        samples.push(t.elapsed());
        ensure!(reply.status == 200, "survey page answered {}", reply.status);
    }
    let max = *samples.iter().max().context("no requests")?;
    Ok((percentile(&mut samples, 0.5), percentile(&mut samples, 0.99), max))
}

struct Sizes {
    launches: Vec<usize>,
    invitations: usize,
    answers: usize,
    runs: usize,
    requests: usize,
    old_query: bool,
}

async fn campaign_pages(root: &std::path::Path, sizes: &Sizes) -> anyhow::Result<()> {
    let (invitations, answers, runs) = (sizes.invitations, sizes.answers, sizes.runs);
    println!("\n2. A SQLite campaign with {invitations} invitations and {answers} answers (median of {runs} runs each)");
    let dir = root.join("campaign");
    let accounts = Accounts::default().with("Admin", Role::Admin, None, ADMIN);
    let app = open_app(&dir)?.with_accounts(accounts, SESSION_SECRET)?;
    let running: Running = serve(app.clone(), SocketAddr::from(([127, 0, 0, 1], 0)), None, false).await?;
    let addr = running.addr;
    let c = campaign("volume")?;
    let tokens = seed_campaign(&app, addr, &c, invitations, answers).await?;
    let cookie = client(move || sign_in(addr)).await?;

    let db = dir.join("closeloop.db");
    let id = c.id.as_str().to_owned();
    let (new_query, rows, new_suppressed) = {
        let (db, id) = (db.clone(), id.clone());
        let mut samples = Vec::new();
        let mut last = (0, 0);
        for _ in 0..runs {
            let (db, id) = (db.clone(), id.clone());
            let (t, n, s) = client(move || raw_query(&db, NEW_CAMPAIGN_ROWS, &id)).await?;
            samples.push(t);
            last = (n, s);
        }
        (median(samples), last.0, last.1)
    };
    let store_read = {
        let mut samples = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let rows = app.store.campaign_rows(&c.id).await?;
            samples.push(t.elapsed());
            ensure!(rows.len() == invitations);
        }
        median(samples)
    };
    let (comments, comments_size) = time_page(addr, &cookie, &format!("/admin/c/{id}/comments"), runs, "Comments").await?;
    let (export, export_size) = time_page(addr, &cookie, &format!("/admin/c/{id}/export.csv"), runs, "score").await?;
    let report = {
        let mut samples = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let text = describe_reports(&reports(&app, Some(&id)).await?);
            samples.push(t.elapsed());
            ensure!(text.contains(&format!("answered {answers}")), "the report counts the answers: {}", text.lines().take(3).collect::<Vec<_>>().join(" / "));
        }
        median(samples)
    };
    println!("   campaign-rows query alone (raw SQLite, {rows} rows, {new_suppressed} suppressed):");
    if sizes.old_query {
        let (db, id) = (db.clone(), id.clone());
        let (old, old_rows, old_suppressed) = client(move || raw_query(&db, OLD_CAMPAIGN_ROWS, &id)).await?;
        ensure!((old_rows, old_suppressed) == (rows, new_suppressed), "the old and the new query disagree");
        println!("     before (contact links scanned per invitation, 1 run): {:>9.1} ms", ms(old));
        println!("     now (the invitation's suppressed mark):               {:>9.1} ms   {:.0}x faster", ms(new_query), old.as_secs_f64() / new_query.as_secs_f64());
        println!("   each page below read the campaign once through that query, so before this change each took about {:.1} s longer", old.saturating_sub(new_query).as_secs_f64());
    } else {
        println!("     now: {:.1} ms (LOCAL_VOLUME_OLD_QUERY=0: the old query was not run)", ms(new_query));
    }
    println!("   SqliteStore::campaign_rows (query, JSON decoding, on a reader): {:>8.1} ms", ms(store_read));
    println!("   dashboard comments page (HTTP, signed in):    {:>8.1} ms  ({comments_size} bytes)", ms(comments));
    println!("   CSV export (HTTP, signed in):                 {:>8.1} ms  ({export_size} bytes)", ms(export));
    println!("   report (closeloop report's code path):        {:>8.1} ms", ms(report));

    println!("\n3. Survey page GET /s/{{token}}, {} sequential requests, a new connection each (p50 / p99 / max)", sizes.requests);
    let unanswered: Vec<String> = tokens[answers.min(tokens.len())..].to_vec();
    ensure!(unanswered.len() >= 2 * sizes.requests, "not enough unanswered invitations for two series of {}", sizes.requests);
    let quiet_tokens = unanswered[..sizes.requests].to_vec();
    let busy_tokens = unanswered[sizes.requests..2 * sizes.requests].to_vec();
    let (q50, q99, qmax) = client(move || survey_series(addr, &quiet_tokens)).await?;
    println!("   no other load:                       {:>7.2} / {:>7.2} / {:>7.2} ms", ms(q50), ms(q99), ms(qmax));

    let stop = Arc::new(AtomicBool::new(false));
    let exports = Arc::new(AtomicUsize::new(0));
    let exporter = {
        let (stop, exports, cookie, path) = (stop.clone(), exports.clone(), cookie.clone(), format!("/admin/c/{id}/export.csv"));
        std::thread::spawn(move || -> anyhow::Result<()> {
            while !stop.load(Ordering::SeqCst) {
                let reply = http(addr, "GET", &path, Some(&cookie), "")?;
                ensure!(reply.status == 200, "export answered {}", reply.status);
                exports.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
    };
    // Let the first export get going before the first survey request.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let busy = client(move || survey_series(addr, &busy_tokens)).await;
    let busy_for = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let exported = tokio::task::spawn_blocking(move || exporter.join()).await?;
    match exported {
        Ok(result) => result?,
        Err(_) => bail!("the export client panicked"),
    }
    let (b50, b99, bmax) = busy?;
    let done = exports.load(Ordering::SeqCst);
    println!(
        "   while the CSV export runs in a loop:  {:>7.2} / {:>7.2} / {:>7.2} ms   ({done} exports finished in those {:.1} s)",
        ms(b50),
        ms(b99),
        ms(bmax),
        busy_for.as_secs_f64()
    );
    running.stop().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let launches_sizes: Vec<usize> = std::env::var("LOCAL_VOLUME_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().with_context(|| format!("LOCAL_VOLUME_SIZES: {s:?} is not a number")))
        .collect::<Result<_, _>>()?;
    let sizes = Sizes {
        launches: launches_sizes,
        invitations: env_number("LOCAL_VOLUME_INVITATIONS", 20_000)?,
        answers: env_number("LOCAL_VOLUME_ANSWERS", 5_000)?,
        runs: env_number("LOCAL_VOLUME_RUNS", 5)?.max(1),
        requests: env_number("LOCAL_VOLUME_REQUESTS", 2_000)?.max(1),
        old_query: std::env::var("LOCAL_VOLUME_OLD_QUERY").map_or(true, |v| v != "0"),
    };
    ensure!(sizes.answers <= sizes.invitations, "more answers than invitations");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("closeloop embedded store at volume: {cores} cores, SQLite {}, {} WAL readers", rusqlite::version(), closeloop_embedded::READERS);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let root = tempfile::tempdir()?;
    runtime.block_on(async {
        launches(root.path(), &sizes.launches).await?;
        campaign_pages(root.path(), &sizes).await
    })
}
