//! `scripts/bench-lambdas`: bootstrap sizes, time from process start to the first handled event
//! (the real binary against a minimal runtime API on loopback), and handler time for a
//! 100-record stream batch against DynamoDB Local and the local SES endpoint. Prints figures.

// An example rather than a `cargo bench` target: it is built in the release profile, beside the
// binaries it measures, instead of rebuilding them in the bench profile.
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use closeloop_core::contract;
use closeloop_core::ports::Store;
use closeloop_dynamodb::stream::{local_streams_client, read_all};
use closeloop_lambdas::on_answer;

const BINARIES: [&str; 4] = ["launch", "on_answer", "schedule", "mail_feedback"];

/// The release binaries scripts/bench-lambdas set aside.
fn binary(name: &str) -> std::path::PathBuf {
    let dir = std::env::var("LAMBDA_BIN_DIR").expect("LAMBDA_BIN_DIR: run scripts/bench-lambdas");
    std::path::Path::new(&dir).join(name)
}

/// Reads one HTTP request (head and body) from a kept-alive connection; empty at its end.
fn read_request(reader: &mut BufReader<TcpStream>) -> String {
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    head
}

/// Spawns `name` against a one-event runtime API and returns the time to its response.
fn first_event_latency(name: &str, event: &str, env: &[(&str, String)]) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = listener.local_addr().unwrap().to_string();
    let started = Instant::now();
    let mut child = Command::new(binary(name))
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut handled = None;
    let mut served = false;
    'connections: for stream in listener.incoming() {
        let mut stream = stream.unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        loop {
            let head = read_request(&mut reader);
            if head.is_empty() {
                continue 'connections;
            }
            if head.starts_with("GET") && !served {
                served = true;
                let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: r1\r\nLambda-Runtime-Deadline-Ms: {}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:eu-north-1:0:function:{name}\r\nContent-Length: {}\r\n\r\n{event}",
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 30_000,
                event.len()
            );
                stream.write_all(reply.as_bytes()).unwrap();
            } else if head.starts_with("POST") {
                handled = Some(started.elapsed());
                stream
                    .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
                assert!(
                    head.contains("/response"),
                    "the function reported an error: {head}"
                );
                break 'connections;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    handled.expect("a response")
}

#[tokio::main]
async fn main() {
    println!("closeloop Lambda benchmarks");
    for name in BINARIES {
        let size = std::fs::metadata(binary(name))
            .map(|m| m.len())
            .unwrap_or(0);
        println!(
            "bootstrap {name:<14} {:>10} bytes (x86_64 release: opt-level z, LTO, debuginfo stripped)",
            size
        );
    }

    let (services, store, table) = support::world("bench").await;
    let env = [
        ("TABLE_NAME", table.clone()),
        ("AWS_REGION", "eu-north-1".to_owned()),
        (
            "DYNAMODB_ENDPOINT",
            std::env::var("DYNAMODB_ENDPOINT").unwrap(),
        ),
        ("SES_ENDPOINT", std::env::var("SES_ENDPOINT").unwrap()),
        ("SNS_ENDPOINT", std::env::var("SNS_ENDPOINT").unwrap()),
        ("PUBLIC_URL", "https://nps.example".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
    ];
    let scheduled = r#"{"version":"0","id":"e","detail-type":"Scheduled Event","source":"aws.events","account":"0","time":"2026-11-22T09:00:00Z","region":"eu-north-1","resources":[],"detail":{}}"#;
    let mut samples: Vec<Duration> = (0..5)
        .map(|_| first_event_latency("schedule", scheduled, &env))
        .collect();
    samples.sort();
    println!("schedule: process start to first handled event (runtime API on loopback, DynamoDB Local): median of 5 = {:.1} ms", samples[2].as_secs_f64() * 1000.0);

    // 100 answer events in one stream batch.
    let campaign = contract::campaign("bench-batch");
    store.put_campaign(&campaign).await.unwrap();
    let at = services.clock.now();
    let invitations: Vec<_> = (0..100u8)
        .map(|n| contract::invitation(&campaign, n, at))
        .collect();
    store
        .create_invitations(&invitations, at.minus_days(90))
        .await
        .unwrap();
    for pending in store.pending_events(1000).await.unwrap() {
        store.complete_event(&pending.id, at).await.unwrap();
    }
    for (i, inv) in invitations.iter().enumerate() {
        let (answer, event, counters) = contract::answer(inv, (i % 11) as u8, 1, at);
        store.record_answer(&answer, &event, &counters).await.unwrap();
    }
    let records = read_all(&store, &local_streams_client().unwrap())
        .await
        .unwrap();
    let answer_events: Vec<_> = records
        .into_iter()
        .filter(|r| r.event().is_some_and(|e| e.id.starts_with("answer-")))
        .collect();
    let batch = support::lambda_batch(&answer_events);
    println!("stream batch: {} answer-event records", batch.records.len());
    let t = Instant::now();
    let first = on_answer::handle(&services, batch.clone(), None).await.unwrap();
    let cold = t.elapsed();
    assert!(first.batch_item_failures.is_empty());
    let t = Instant::now();
    on_answer::handle(&services, batch, None).await.unwrap();
    let redelivered = t.elapsed();
    println!(
        "on_answer handler, 100-record batch (thank-yous, alerts, cases, sends claimed): {:.0} ms; the same batch redelivered (all sends already claimed): {:.0} ms; ratio {:.1}x",
        cold.as_secs_f64() * 1000.0,
        redelivered.as_secs_f64() * 1000.0,
        cold.as_secs_f64() / redelivered.as_secs_f64()
    );
}
