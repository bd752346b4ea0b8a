//! The local process: the embedded store, the outbox, the router, the dispatcher and the
//! schedule in one binary. `main.rs` only parses arguments and calls into here.

pub mod accounts_file;
pub mod commands;
pub mod outbox_page;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use closeloop_core::accounts::Accounts;
use closeloop_core::ports::{Clock, Links};
use closeloop_edge::admin::AdminConfig;
use closeloop_embedded::{Outbox, SqliteStore};
use closeloop_functions::{dispatch, schedule, Services};

pub use settings::Settings;

/// Everything wired on the embedded default.
#[derive(Clone)]
pub struct LocalApp {
    pub store: SqliteStore,
    pub outbox: Outbox,
    pub services: Services,
    /// Dashboard accounts: sign-in, digest languages, admin digests.
    pub accounts: Arc<Accounts>,
    /// Set when there are accounts to sign in with.
    pub admin: Option<Arc<AdminConfig>>,
}

impl LocalApp {
    pub fn open(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating the data directory {}", settings.data_dir.display()))?;
        let path = settings.data_dir.join("closeloop.db");
        let store = SqliteStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut app = Self::with_store(store, settings, clock);
        let accounts_path = accounts_file::accounts_path(settings);
        if accounts_path.exists() {
            let text = std::fs::read_to_string(&accounts_path).with_context(|| format!("reading {}", accounts_path.display()))?;
            let accounts = Accounts::from_toml(&text).with_context(|| format!("in {}", accounts_path.display()))?;
            app = app.with_accounts(accounts, &accounts_file::session_secret(settings)?)?;
        }
        Ok(app)
    }

    /// Switches the dashboard on for these accounts.
    pub fn with_accounts(mut self, accounts: Accounts, session_secret: &str) -> anyhow::Result<Self> {
        if !accounts.is_empty() {
            self.admin = Some(Arc::new(AdminConfig::new(accounts.clone(), session_secret)?));
        }
        self.accounts = Arc::new(accounts);
        Ok(self)
    }

    pub fn with_store(store: SqliteStore, settings: &Settings, clock: Arc<dyn Clock>) -> Self {
        let outbox = store.outbox(clock.clone());
        let services = Services {
            store: Arc::new(store.clone()),
            mailer: Arc::new(outbox.clone()),
            sms: Arc::new(outbox.clone()),
            clock,
            links: Links::new(&settings.public_url),
        };
        Self { store, outbox, services, accounts: Arc::new(Accounts::default()), admin: None }
    }

    /// The edge router plus the local-only outbox pages.
    pub fn router(&self, api_token: Option<&str>) -> axum::Router {
        let mut state = closeloop_edge::AppState::new(&self.services, api_token);
        state.admin = self.admin.clone();
        closeloop_edge::router(state).merge(outbox_page::routes(self.outbox.clone()))
    }

    /// Sends what pending events call for, until none are left.
    pub async fn dispatch(&self) -> anyhow::Result<dispatch::DispatchSummary> {
        Ok(dispatch::dispatch_pending(&self.services).await?)
    }
}

/// A running local server: its address, and its background tasks for `stop`.
pub struct Running {
    pub addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// How often the local dispatcher looks for new events (answers, API invitations).
pub const DISPATCH_INTERVAL: Duration = Duration::from_millis(200);
/// How often `up` runs the scheduled work (reminders, overdue follow-ups).
pub const SCHEDULE_INTERVAL: Duration = Duration::from_secs(60);

/// Serves on `addr` (port 0 picks a free one) with the dispatcher, and the schedule if asked.
pub async fn serve(app: LocalApp, addr: SocketAddr, api_token: Option<String>, run_schedule: bool) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let addr = listener.local_addr()?;
    let router = app.router(api_token.as_deref());
    let mut tasks = vec![tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "server stopped");
        }
    })];
    let dispatcher = app.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            if let Err(e) = dispatcher.dispatch().await {
                tracing::error!(error = %e, "dispatch failed");
            }
            tokio::time::sleep(DISPATCH_INTERVAL).await;
        }
    }));
    if run_schedule {
        let scheduler = app.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let now = scheduler.services.clock.now();
                match schedule::run(&scheduler.services, &scheduler.accounts, now).await {
                    Ok(s) if s != schedule::ScheduleSummary::default() => tracing::info!(?s, "schedule ran"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "schedule failed"),
                }
                tokio::time::sleep(SCHEDULE_INTERVAL).await;
            }
        }));
    }
    Ok(Running { addr, tasks })
}
