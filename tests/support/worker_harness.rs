//! Shared by the Worker test and the edge benchmark: a seeded DynamoDB Local table and
//! `wrangler dev` serving the built Worker against it.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use closeloop_core::ports::{Links, ManualClock, Store};
use closeloop_core::{Campaign, Timestamp};
use closeloop_dynamodb::{create_table, local_client, DynamoStore, TableSettings};
use closeloop_embedded::SqliteStore;
use closeloop_functions::{dispatch, launch, Services};

pub const API_TOKEN: &str = "worker-test-token";
pub const ADMIN_TOKEN: &str = "worker-test-admin-token-0123456789";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// `wrangler dev` on a free port, killed by its PID (and its process group) when dropped.
pub struct Wrangler {
    child: Child,
    pub base: String,
    pub started_in: Duration,
    _dir: tempfile::TempDir,
}

impl Drop for Wrangler {
    fn drop(&mut self) {
        // wrangler runs workerd as a child: stop the process group we created for it, by its
        // own id (never through `kill(1)`, whose parsing of negative ids varies).
        let group = self.child.id() as libc::pid_t;
        if group > 1 {
            // SAFETY: plain signal delivery to the group this test spawned.
            unsafe { libc::kill(-group, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if group > 1 {
            // SAFETY: as above; whatever of the group is still alive is ours.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

pub fn start_wrangler(table: &str, public_url: Option<&str>) -> Wrangler {
    let shim = repo().join("edge/build/worker/shim.mjs");
    assert!(shim.exists(), "{} is missing: build the Worker with scripts/build-edge (scripts/test does)", shim.display());
    let wrangler = repo().join("tools/node_modules/.bin/wrangler");
    assert!(wrangler.exists(), "wrangler is missing: scripts/setup-tests installs it");
    let endpoint = std::env::var("DYNAMODB_ENDPOINT").expect("DYNAMODB_ENDPOINT: run through scripts/test, which starts DynamoDB Local");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let inspector = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "name = \"closeloop-edge-test\"\nmain = \"{}\"\ncompatibility_date = \"2026-04-01\"\nsend_metrics = false\n\n[vars]\nAWS_REGION = \"eu-north-1\"\nDYNAMODB_TABLE = \"{table}\"\nDYNAMODB_ENDPOINT = \"{endpoint}\"\nPUBLIC_URL = \"{}\"\n",
        shim.display(),
        public_url.unwrap_or(&base)
    );
    std::fs::write(dir.path().join("wrangler.toml"), config).unwrap();
    let mut vars = std::fs::File::create(dir.path().join(".dev.vars")).unwrap();
    writeln!(vars, "AWS_ACCESS_KEY_ID=local\nAWS_SECRET_ACCESS_KEY=local\nAPI_TOKEN={API_TOKEN}").unwrap();
    // The dashboard's secrets: the accounts as one line of TOML (an inline array of tables).
    writeln!(
        vars,
        "ACCOUNTS='account = [{{ name = \"Admin\", role = \"admin\", token_sha256 = \"{}\" }}]'\nSESSION_SECRET=worker-test-session-secret-of-some-length",
        closeloop_core::accounts::token_hash_hex(ADMIN_TOKEN)
    )
    .unwrap();
    let started = Instant::now();
    let mut cmd = Command::new(wrangler);
    cmd.current_dir(dir.path())
        .args(["dev", "--local", "--ip", "127.0.0.1", "--port", &port.to_string(), "--inspector-port", &inspector.to_string()])
        .args(["--show-interactive-dev-session=false", "--log-level", "warn"])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("XDG_CONFIG_HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().expect("wrangler starts");
    let mut w = Wrangler { child, base, started_in: Duration::ZERO, _dir: dir };
    loop {
        let ok = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("{}/healthz", w.base)])
            .output()
            .map(|o| o.stdout == b"200")
            .unwrap_or(false);
        if ok {
            w.started_in = started.elapsed();
            return w;
        }
        if let Ok(Some(status)) = w.child.try_wait() {
            panic!("wrangler exited with {status}");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "wrangler did not serve /healthz within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Seeded {
    pub store: DynamoStore,
    pub campaign: Campaign,
    pub tokens: Vec<(String, String)>,
}

/// A table with a campaign and invitations, launched by the same code the Lambda runs.
pub async fn seed(table: &str, public_url: &str, contacts: usize) -> Seeded {
    let client = local_client().unwrap();
    create_table(&client, &TableSettings { name: table.to_owned() }).await.unwrap();
    let store = DynamoStore::new(client, table);
    let outbox_db = SqliteStore::open_in_memory().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_795_000_000_000)));
    let outbox = outbox_db.outbox(clock.clone());
    let services = Services {
        store: Arc::new(store.clone()),
        mailer: Arc::new(outbox.clone()),
        sms: Arc::new(outbox.clone()),
        clock,
        links: Links::new(public_url),
    };
    let campaign = Campaign::from_toml(include_str!("../../demo/campaign.toml")).unwrap();
    let mut csv = String::from("email;first_name;store;owner_email\n");
    for i in 0..contacts {
        csv.push_str(&format!("person{i}@example.se;Åsa{i};Malmö;owner@example.se\n"));
    }
    launch::launch(&services, &campaign, csv.as_bytes()).await.unwrap();
    dispatch::dispatch_pending(&services).await.unwrap();
    let tokens = store
        .campaign_rows(&campaign.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.invitation.id.0.clone(), r.invitation.token.as_str().to_owned()))
        .collect();
    Seeded { store, campaign, tokens }
}

