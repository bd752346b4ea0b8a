//! The local server over real TCP: the outbox's pages, and the read timeouts that keep a slow
//! client from holding a connection.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use closeloop::{serve_with_timeouts, LocalApp, Running, Settings, Timeouts};
use closeloop_core::ports::{MessageKind, OutgoingSms, SmsSender, SystemClock};
use closeloop_embedded::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Only a guard against hanging forever: each wait below ends long before it when the server
/// behaves, and a server that never answers or never closes fails the test here instead.
const NEVER: Duration = Duration::from_secs(30);

struct Server {
    app: LocalApp,
    running: Running,
    _dir: tempfile::TempDir,
}

async fn start(timeouts: Timeouts) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("closeloop.db")).unwrap();
    let settings = Settings { data_dir: dir.path().to_owned(), public_url: "http://closeloop.test".into(), api_token: None };
    let app = LocalApp::with_store(store, &settings, Arc::new(SystemClock)).with_open_outbox();
    let running = serve_with_timeouts(app.clone(), SocketAddr::from(([127, 0, 0, 1], 0)), None, false, timeouts).await.unwrap();
    Server { app, running, _dir: dir }
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
    }
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Reply { status, headers: head.to_owned(), body: body.to_owned() }
}

/// One request on its own connection, read until the server closes it.
async fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(NEVER, stream.read_to_end(&mut raw)).await.expect("the server answered").unwrap();
    parse(&raw)
}

fn ids(reply: &Reply) -> Vec<i64> {
    let messages: Vec<serde_json::Value> = serde_json::from_str(&reply.body).expect("a JSON array of messages");
    messages.iter().map(|m| m["id"].as_i64().expect("an id")).collect()
}

/// The query string of the `rel` link in the Link header.
fn link(reply: &Reply, rel: &str) -> Option<String> {
    reply.header("link")?.split(", ").find(|l| l.ends_with(&format!("rel=\"{rel}\""))).and_then(|l| {
        let target = l.strip_prefix('<')?.split('>').next()?;
        Some(target.split_once('?')?.1.to_owned())
    })
}

async fn send(app: &LocalApp, n: usize) {
    for i in 0..n {
        let sms = OutgoingSms { kind: MessageKind::Reminder, to: "+46700000000".into(), text: format!("message {i}") };
        app.outbox.send_sms(&sms).await.unwrap();
    }
}

#[tokio::test]
async fn the_outbox_pages_newest_first_and_a_cursor_reaches_every_older_message_once() {
    let server = start(Timeouts::default()).await;
    let addr = server.running.addr;
    send(&server.app, 120).await;

    let first = get(addr, "/outbox.json").await;
    assert_eq!(first.status, 200);
    let first_ids = ids(&first);
    assert_eq!(first_ids.len(), 50, "50 messages a page");
    assert_eq!(first_ids, (71..=120).rev().collect::<Vec<_>>(), "the newest first");
    assert_eq!(first.header("x-outbox-total"), Some("120"));
    assert_eq!(link(&first, "prev"), None, "nothing is newer than the first page");

    // Messages that arrive while someone pages do not shift the pages: cursors are ids.
    send(&server.app, 7).await;
    let mut seen: Vec<i64> = first_ids.clone();
    let mut next = link(&first, "next");
    assert_eq!(next.as_deref(), Some("before=71"));
    assert_eq!(first.header("x-outbox-next-before"), Some("71"));
    let mut pages = 1;
    let mut second_page = None;
    while let Some(query) = next {
        let page = get(addr, &format!("/outbox.json?{query}")).await;
        assert_eq!(page.status, 200);
        let page_ids = ids(&page);
        assert!(!page_ids.is_empty() && page_ids.len() <= 50);
        second_page.get_or_insert_with(|| (page_ids.clone(), link(&page, "prev")));
        seen.extend(page_ids);
        next = link(&page, "next");
        pages += 1;
        assert!(pages < 10, "paging ends");
    }
    assert_eq!(pages, 3);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "strictly newest first across pages: nothing repeated");
    assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), (1..=120).collect(), "nothing lost");

    // Back from the second page: the page just newer is the first one again (the 7 new
    // messages are on the page before that).
    let (second_ids, prev) = second_page.expect("a second page");
    assert_eq!(second_ids, (21..=70).rev().collect::<Vec<_>>());
    let back = get(addr, &format!("/outbox.json?{}", prev.expect("a newer page"))).await;
    assert_eq!(ids(&back), first_ids);
    let newest = get(addr, &format!("/outbox.json?{}", link(&back, "prev").expect("the new messages"))).await;
    assert_eq!(ids(&newest), (121..=127).rev().collect::<Vec<_>>());
    assert_eq!(link(&newest, "prev"), None);

    let small = get(addr, "/outbox.json?limit=5").await;
    assert_eq!(ids(&small), (123..=127).rev().collect::<Vec<_>>());
    assert_eq!(link(&small, "next").as_deref(), Some("before=123&limit=5"), "the asked-for size is kept");
    for bad in ["/outbox.json?limit=0", "/outbox.json?limit=201", "/outbox.json?before=abc", "/outbox.json?before=5&after=2", "/outbox?limit=0"] {
        assert_eq!(get(addr, bad).await.status, 400, "{bad}");
    }
    server.running.stop().await;
}

#[tokio::test]
async fn the_outbox_page_links_to_older_and_newer_messages() {
    let server = start(Timeouts::default()).await;
    let addr = server.running.addr;
    send(&server.app, 60).await;
    let first = get(addr, "/outbox").await;
    assert_eq!(first.status, 200);
    assert!(first.body.contains("60 messages, newest first; this page shows 50"), "{}", &first.body[..first.body.len().min(2000)]);
    assert!(first.body.contains("id=\"m60\"") && first.body.contains("id=\"m11\"") && !first.body.contains("id=\"m10\""));
    assert!(first.body.contains("href=\"/outbox?before=11\">Older messages</a>"));
    assert!(!first.body.contains("Newer messages"));
    let older = get(addr, "/outbox?before=11").await;
    assert!(older.body.contains("id=\"m10\"") && older.body.contains("id=\"m1\"") && !older.body.contains("id=\"m11\""));
    assert!(older.body.contains("href=\"/outbox?after=10\">Newer messages</a>"));
    assert!(!older.body.contains("Older messages"));
    server.running.stop().await;
}

/// Reads until the server closes the connection; what it sent before closing.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    match tokio::time::timeout(NEVER, stream.read_to_end(&mut raw)).await {
        Ok(Ok(_)) => raw,
        // A reset is the server closing too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => raw,
        Ok(Err(e)) => panic!("reading failed: {e}"),
        Err(_) => panic!("the server kept the connection open: {:?}", String::from_utf8_lossy(&raw)),
    }
}

const SHORT: Timeouts = Timeouts { header_read: Duration::from_millis(200), body_read: Duration::from_millis(300) };

#[tokio::test]
async fn a_client_that_sends_half_its_headers_is_disconnected_after_the_header_timeout() {
    let server = start(SHORT).await;
    let addr = server.running.addr;
    // The same server answers a whole request at once: the timeout is about slow clients only.
    assert_eq!(get(addr, "/healthz").await.status, 200);

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Still-Typing: ").await.unwrap();
    let sent = read_until_closed(&mut slow).await;
    assert!(!String::from_utf8_lossy(&sent).contains("200 OK"), "half a request is not served");

    // A connection that sends nothing at all is closed the same way.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    read_until_closed(&mut silent).await;

    // And the server still serves everyone else.
    assert_eq!(get(addr, "/healthz").await.status, 200);
    server.running.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_body_gets_408_and_is_disconnected() {
    let server = start(SHORT).await;
    let addr = server.running.addr;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    // An answer form promising 100 bytes and sending 10.
    slow.write_all(
        b"POST /s/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nscore=9&co",
    )
    .await
    .unwrap();
    let reply = parse(&read_until_closed(&mut slow).await);
    assert_eq!(reply.status, 408, "{}", reply.headers);
    assert_eq!(reply.header("connection"), Some("close"));
    server.running.stop().await;
}

#[tokio::test]
async fn a_request_for_another_host_name_is_refused_so_a_rebound_page_cannot_read_the_server() {
    let server = start(Timeouts::default()).await;
    let ask = |host: &'static str| async move {
        let mut stream = TcpStream::connect(server.running.addr).await.unwrap();
        stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(NEVER, stream.read_to_end(&mut raw)).await.expect("the server answered").unwrap();
        parse(&raw)
    };
    for host in ["evil.example", "127.0.0.1.evil.example:8787", "localhost.evil.example"] {
        let reply = ask(host).await;
        assert_eq!(reply.status, 421, "{host}: {}", reply.body);
    }
    for host in ["127.0.0.1", "localhost:8787", "[::1]:8787"] {
        assert_eq!(ask(host).await.status, 200, "{host}");
    }
}

#[tokio::test]
async fn outside_the_demo_the_outbox_is_for_signed_in_admins_only() {
    use closeloop_core::accounts::{Accounts, Role};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("closeloop.db")).unwrap();
    let settings = Settings { data_dir: dir.path().to_owned(), public_url: "http://closeloop.test".into(), api_token: None };
    let accounts = Accounts::default()
        .with("Admin", Role::Admin, None, "an admin token of some length")
        .with("Vera", Role::Viewer, None, "a viewer token of some length");
    let app = LocalApp::with_store(store, &settings, Arc::new(SystemClock)).with_accounts(accounts, "a session secret for the server test").unwrap();
    send(&app, 1).await;
    let running = serve_with_timeouts(app.clone(), SocketAddr::from(([127, 0, 0, 1], 0)), None, false, Timeouts::default()).await.unwrap();
    let base = format!("http://localhost:{}", running.addr.port());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in ["/outbox", "/outbox.json"] {
        let anonymous = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(anonymous.status(), 303, "{path}: off to sign in");
        assert_eq!(anonymous.headers()["location"], "/admin/sign-in");
    }
    let session = |token: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let form = http.get(format!("{base}/admin/sign-in")).send().await.unwrap();
            let cookie = |r: &reqwest::Response, name: &str| {
                r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| v.strip_prefix(&format!("{name}=")).map(|x| x.split(';').next().unwrap().to_owned())).unwrap()
            };
            let nonce = cookie(&form, "cl_signin");
            let html = form.text().await.unwrap();
            let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
            let signed = http.post(format!("{base}/admin/sign-in")).header("cookie", format!("cl_signin={nonce}")).form(&[("csrf", csrf.as_str()), ("token", token)]).send().await.unwrap();
            format!("cl_session={}", cookie(&signed, "cl_session"))
        }
    };
    let viewer = session("a viewer token of some length").await;
    assert_eq!(http.get(format!("{base}/outbox.json")).header("cookie", &viewer).send().await.unwrap().status(), 403, "viewers do not read tokens");
    let admin = session("an admin token of some length").await;
    let page = http.get(format!("{base}/outbox.json")).header("cookie", &admin).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.json::<serde_json::Value>().await.unwrap().as_array().unwrap().len(), 1);
    running.stop().await;
}
