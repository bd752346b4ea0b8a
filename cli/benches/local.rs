//! `cargo bench -p closeloop`: figures of the local process, measured side by side in one run
//! against the real binary. Prints; asserts nothing about time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_closeloop");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 request on a fresh connection; returns status and body.
fn request(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(&response[9..12]).ok()?.parse().ok()?;
    let headers = String::from_utf8_lossy(&response[..split]).to_lowercase();
    let mut body = response[split + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Some((status, body))
}

fn dechunk(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = input.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&input[..line_end]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&input[line_end + 2..line_end + 2 + size]);
        input = &input[line_end + 4 + size..];
    }
    out
}

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `up` and returns it with the time to the first 200 from /healthz.
fn start(data_dir: &Path, port: u16, demo: bool) -> (Up, Duration) {
    let started = Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(data_dir).args(["up", "--port", &port.to_string()]).stdout(Stdio::null()).stderr(Stdio::null());
    if demo {
        cmd.arg("--demo");
    }
    let up = Up(cmd.spawn().expect("closeloop up"));
    loop {
        if let Some((200, _)) = request(port, "GET", "/healthz", "") {
            return (up, started.elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(30), "closeloop up did not answer");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn timed(n: usize, mut f: impl FnMut(usize)) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    (percentile(&mut samples, 0.5), percentile(&mut samples, 0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn contacts_csv(n: usize) -> String {
    let stores = ["Malmö", "Göteborg", "København", "Aarhus"];
    let mut csv = String::from("first_name;last_name;email;store;owner_email;locale;customer_number\n");
    for i in 0..n {
        csv.push_str(&format!(
            "Åsa{i};Lindqvist;person{i}@example.se;{};owner{}@example.se;{};{}\n",
            stores[i % 4],
            i % 20,
            ["sv", "da", "en"][i % 3],
            100_000 + i
        ));
    }
    csv
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!("closeloop local benchmarks ({})", BIN);

    // Start time of `up --demo`: first start launches the demo (20 invitations), a restart only opens.
    let mut first = Vec::new();
    let mut restart = Vec::new();
    for i in 0..5 {
        let data = dir.path().join(format!("start-{i}"));
        let port = free_port();
        first.push(start(&data, port, true).1);
        restart.push(start(&data, free_port(), true).1);
    }
    let (first_median, restart_median) = (percentile(&mut first, 0.5), percentile(&mut restart, 0.5));
    println!("up --demo, time to first 200 on /healthz (median of 5): first start {:.1} ms, restart {:.1} ms", ms(first_median), ms(restart_median));

    let data = dir.path().join("serve");
    let port = free_port();
    let (_up, _) = start(&data, port, true);
    std::thread::sleep(Duration::from_millis(500));
    let (_, outbox) = request(port, "GET", "/outbox.json", "").unwrap();
    let outbox = String::from_utf8(outbox).unwrap();
    let tokens: Vec<String> = outbox
        .match_indices("/s/")
        .filter_map(|(i, _)| outbox.get(i + 3..i + 25).map(str::to_owned))
        .filter(|t| t.bytes().all(|b| b.is_ascii_alphanumeric()))
        .collect();
    let token = &tokens[0];

    let (status, page) = request(port, "GET", &format!("/s/{token}?score=9"), "").unwrap();
    assert_eq!(status, 200);
    let mut gzip = Command::new("gzip").arg("-9c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    gzip.stdin.take().unwrap().write_all(&page).unwrap();
    let gzipped = gzip.wait_with_output().unwrap().stdout.len();
    println!("survey page HTML with inline CSS: {} bytes ({} gzipped); budget 14,336", page.len(), gzipped);

    let n = 400;
    let (floor_p50, floor_p99) = timed(n, |_| assert_eq!(request(port, "GET", "/healthz", "").unwrap().0, 200));
    let (view_p50, view_p99) = timed(n, |_| assert_eq!(request(port, "GET", &format!("/s/{token}"), "").unwrap().0, 200));
    let (answer_p50, answer_p99) = timed(n, |i| {
        let body = format!("score={}&comment=bench+{i}", i % 11);
        assert_eq!(request(port, "POST", &format!("/s/{token}"), &body).unwrap().0, 303);
    });
    println!("latency over {n} sequential requests, new connection each (p50 / p99):");
    println!("  /healthz (floor)     {:.3} / {:.3} ms", ms(floor_p50), ms(floor_p99));
    println!("  page view            {:.3} / {:.3} ms   ratio to floor {:.1}x / {:.1}x", ms(view_p50), ms(view_p99), ms(view_p50) / ms(floor_p50), ms(view_p99) / ms(floor_p99));
    println!("  answer (POST + 303)  {:.3} / {:.3} ms   ratio to floor {:.1}x / {:.1}x", ms(answer_p50), ms(answer_p99), ms(answer_p50) / ms(floor_p50), ms(answer_p99) / ms(floor_p99));

    let campaign = concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/campaign.toml");
    let mut per_contact = Vec::new();
    for size in [1_000usize, 10_000] {
        let launch_dir = dir.path().join(format!("launch-{size}"));
        let csv = dir.path().join(format!("contacts-{size}.csv"));
        std::fs::write(&csv, contacts_csv(size)).unwrap();
        let t = Instant::now();
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(&launch_dir)
            .args(["launch", "--campaign", campaign, "--contacts", csv.to_str().unwrap()])
            .output()
            .unwrap();
        let elapsed = t.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let summary = String::from_utf8_lossy(&out.stdout);
        let invited = summary.lines().next().unwrap_or("").to_owned();
        per_contact.push(elapsed.as_secs_f64() / size as f64);
        println!("launch {size:>6} contacts (parse, store, render and send to the outbox): {:.2} s  [{invited}]", elapsed.as_secs_f64());
        let sent = BufReader::new(Command::new(BIN).arg("--data-dir").arg(&launch_dir).args(["report", "--json"]).output().unwrap().stdout.as_slice())
            .lines()
            .map_while(Result::ok)
            .find(|l| l.trim_start().starts_with("\"sent\""))
            .unwrap_or_default();
        println!("    report: {}", sent.trim());
    }
    println!("launch cost per contact, 10,000 vs 1,000: {:.2}x", per_contact[1] / per_contact[0]);
}
