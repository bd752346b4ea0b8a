//! The `closeloop` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_closeloop");

fn closeloop(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--data-dir").arg(data_dir).args(args).output().expect("closeloop runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `up` and waits for its "is up" line; the child is killed by its own PID on drop.
struct Up {
    child: Child,
    lines: Vec<String>,
    port: u16,
}

impl Up {
    fn start(data_dir: &Path, demo: bool) -> Up {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(data_dir).args(["up", "--port", &port.to_string()]).stdout(Stdio::piped()).stderr(Stdio::null());
        if demo {
            cmd.arg("--demo");
        }
        let mut child = cmd.spawn().expect("closeloop up starts");
        let mut lines = Vec::new();
        let reader = BufReader::new(child.stdout.take().unwrap());
        for line in reader.lines() {
            let line = line.unwrap();
            let done = line.contains("closeloop is up");
            lines.push(line);
            if done {
                return Up { child, lines, port };
            }
        }
        let _ = child.kill();
        panic!("closeloop up exited early:\n{}", lines.join("\n"));
    }

    fn get(&self, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{}{path}", self.port)]).output().expect("curl");
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(Instant::now() < deadline, "GET {path} kept failing");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn up_demo_launches_once_serves_the_outbox_and_keeps_data_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Up::start(dir.path(), true);
    assert!(first.lines.iter().any(|l| l.contains("20 invited")), "{:?}", first.lines);
    let links = first.lines.iter().filter(|l| l.contains(&format!("http://127.0.0.1:{}/s/", first.port))).count();
    assert_eq!(links, 20);
    assert_eq!(first.get("/healthz"), "ok");
    let outbox: serde_json::Value = serde_json::from_str(&first.get("/outbox.json")).unwrap();
    let messages = outbox.as_array().unwrap();
    assert_eq!(messages.len(), 20);
    assert_eq!(messages.iter().filter(|m| m["channel"] == "sms").count(), 2);
    for field in ["id", "channel", "to", "kind", "subject", "text", "html", "headers", "created_at"] {
        assert!(messages[0].get(field).is_some(), "outbox.json lacks {field}");
    }
    assert!(first.get("/outbox").contains("<h1>Outbox</h1>"));
    drop(first);

    let second = Up::start(dir.path(), true);
    assert!(second.lines.iter().any(|l| l.contains("already launched")), "{:?}", second.lines);
    let outbox: serde_json::Value = serde_json::from_str(&second.get("/outbox.json")).unwrap();
    assert_eq!(outbox.as_array().unwrap().len(), 20, "a restart sends nothing again");
}

#[test]
fn launch_reports_bad_rows_by_line_and_report_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    std::fs::write(&csv, "\u{feff}email;first_name;store\nåsa@example.se;Åsa;Malmö\nnope;Bad;Malmö\n;NoChannel;Malmö\nbo@example.se;Bo;Lund\n").unwrap();
    let campaign = concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/campaign.toml");
    let out = closeloop(dir.path(), &["launch", "--campaign", campaign, "--contacts", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert!(text.contains("2 invited") && text.contains("2 bad rows"), "{text}");
    assert!(text.contains("line 3: email: \"nope\" is not an email address"), "{text}");
    assert!(text.contains("line 4: needs an email address or a mobile phone number"), "{text}");

    let schedule = closeloop(dir.path(), &["run-schedule", "--at", "2099-01-01T00:00:00Z"]);
    assert!(stdout(&schedule).contains("2 reminders sent"), "{}", stdout(&schedule));

    let report = closeloop(dir.path(), &["report", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&report)).unwrap();
    assert_eq!(json[0]["total"]["sent"], 2);
    assert_eq!(json[0]["total"]["answered"], 0);
    assert!(json[0]["by"]["store"]["Malmö"].is_object());
    let human = stdout(&closeloop(dir.path(), &["report"]));
    assert!(human.contains("sent 2, answered 0"), "{human}");
}

#[test]
fn a_broken_campaign_file_or_time_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let campaign = dir.path().join("campaign.toml");
    std::fs::write(&campaign, "id = \"x\"\nname = \"n\"\ncompany = \"c\"\nsender_name = \"s\"\nsender_email = \"s@c.example\"\nalert_threshold = 42\n").unwrap();
    let csv = dir.path().join("c.csv");
    std::fs::write(&csv, "email\na@b.example\n").unwrap();
    let out = closeloop(dir.path(), &["launch", "--campaign", campaign.to_str().unwrap(), "--contacts", csv.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("alert_threshold 42 must be 0 to 10"));
    let out = closeloop(dir.path(), &["run-schedule", "--at", "tomorrow"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}

#[test]
fn a_launch_killed_midway_resumes_when_run_again_and_invites_everyone_exactly_once() {
    use closeloop_core::ports::Store;
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("big.csv");
    let mut csv = String::from("email;first_name;store\n");
    for i in 0..20_000 {
        csv.push_str(&format!("p{i}@resume.example;P{i};Store {}\n", i % 9));
    }
    std::fs::write(&csv_path, &csv).unwrap();
    let campaign_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/campaign.toml");
    let campaign = closeloop_core::Campaign::from_toml(include_str!("../../demo/campaign.toml")).unwrap();
    let launch_id = closeloop_core::launch::LaunchId::of(&campaign.id, csv.as_bytes());
    let args = ["launch", "--campaign", campaign_path, "--contacts", csv_path.to_str().unwrap()];

    let mut child = Command::new(BIN).arg("--data-dir").arg(dir.path()).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let db = dir.path().join("closeloop.db");
    let deadline = Instant::now() + Duration::from_secs(120);
    // Killed (SIGKILL, no chance to clean up) while its chunks are being written.
    let seen = loop {
        assert!(Instant::now() < deadline, "the launch never showed progress");
        if db.exists() {
            let store = closeloop_embedded::SqliteStore::open(&db).unwrap();
            if let Some(job) = runtime.block_on(store.launch(&launch_id)).unwrap() {
                if job.rows_processed > 0 {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    break job;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(seen.state, closeloop_core::launch::LaunchState::Running, "killed midway: {seen:?}");
    assert!(seen.rows_processed < 20_000);

    let again = closeloop(dir.path(), &args);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let text = stdout(&again);
    assert!(text.contains(&format!("Resuming launch {launch_id}")), "{text}");
    assert!(text.contains("20000 invited") && text.contains("0 surveyed within"), "{text}");
    let store = closeloop_embedded::SqliteStore::open(&db).unwrap();
    let job = runtime.block_on(store.launch(&launch_id)).unwrap().unwrap();
    assert_eq!((job.state, job.invited, job.rows_processed), (closeloop_core::launch::LaunchState::Done, 20_000, 20_000));
    let rows = runtime.block_on(store.campaign_rows(&campaign.id)).unwrap();
    assert_eq!(rows.len(), 20_000, "everyone invited exactly once");
    let outbox = store.outbox(std::sync::Arc::new(closeloop_core::ports::SystemClock)).messages().unwrap();
    let invitations: std::collections::BTreeSet<String> = outbox.iter().filter(|m| m.kind == "invitation").map(|m| m.to.clone()).collect();
    assert_eq!(invitations.len(), 20_000, "every invitation sent");
    assert_eq!(outbox.iter().filter(|m| m.kind == "invitation").count(), 20_000, "none sent twice");
}
