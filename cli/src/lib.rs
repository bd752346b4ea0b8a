//! The local process: the embedded store, the outbox, the router, the dispatcher and the
//! schedule in one binary. `main.rs` only parses arguments and calls into here.

pub mod accounts_file;
pub mod commands;
pub mod launcher;
pub mod outbox_page;
pub mod serve;
pub mod settings;

use std::sync::Arc;

use anyhow::Context;
use closeloop_core::accounts::Accounts;
use closeloop_core::ports::{Clock, Links};
use closeloop_edge::admin::AdminConfig;
use closeloop_embedded::{Outbox, SqliteStore};
use closeloop_functions::{dispatch, Services};

pub use serve::{serve, serve_with_timeouts, Running, Timeouts, DISPATCH_INTERVAL, SCHEDULE_INTERVAL};
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
    /// Where dashboard uploads wait and how they launch.
    pub launcher: Arc<launcher::LocalLauncher>,
    /// Whether `/outbox` is open to anyone on the machine (`up --demo`) or to signed-in admins.
    pub outbox_open: bool,
    /// The people API's bearer token (`CLOSELOOP_PEOPLE_API_TOKEN`); `None` switches it off.
    pub people_api_token: Option<String>,
    /// Posts the campaigns' webhooks. Locally loopback endpoints are allowed (a receiver on the
    /// same machine); private and link-local addresses are not.
    pub webhooks: Arc<dyn closeloop_core::ports::WebhookSender>,
}

/// Deliveries posted per run of the local webhook loop (every 500 ms, `serve::WEBHOOK_INTERVAL`).
const WEBHOOKS_PER_RUN: usize = 100;

/// A webhook sender that could not be built: every attempt fails with why.
struct Unavailable(String);

#[async_trait::async_trait]
impl closeloop_core::ports::WebhookSender for Unavailable {
    async fn post(&self, _: &closeloop_core::webhooks::WebhookUrl, _: &[(String, String)], _: &str) -> Result<closeloop_core::ports::WebhookResponse, closeloop_core::ports::WebhookSendError> {
        Err(closeloop_core::ports::WebhookSendError::Refused(format!("no HTTP client: {}", self.0)))
    }
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
        let launcher = Arc::new(launcher::LocalLauncher::new(&settings.data_dir, services.clone()));
        let webhooks: Arc<dyn closeloop_core::ports::WebhookSender> = match closeloop_webhooks::HttpWebhookSender::new(
            closeloop_core::webhooks::AddressPolicy::Local,
            closeloop_webhooks::DEFAULT_TIMEOUT,
        ) {
            Ok(sender) => Arc::new(sender),
            // Only a TLS backend that cannot start fails here; webhooks then fail, loudly, per attempt.
            Err(e) => Arc::new(Unavailable(e.to_string())),
        };
        Self { store, outbox, services, accounts: Arc::new(Accounts::default()), admin: None, launcher, outbox_open: false, people_api_token: None, webhooks }
    }

    /// Posts the webhooks that are due.
    pub async fn deliver_webhooks(&self) -> anyhow::Result<closeloop_functions::webhooks::DeliverySummary> {
        let now = self.services.clock.now();
        Ok(closeloop_functions::webhooks::deliver_due(&self.services, self.webhooks.as_ref(), now, WEBHOOKS_PER_RUN).await?)
    }

    /// `/outbox` open to anyone who reaches the server: the demo, and tests that read what was sent.
    pub fn with_open_outbox(mut self) -> Self {
        self.outbox_open = true;
        self
    }

    pub fn with_people_api_token(mut self, token: Option<String>) -> Self {
        self.people_api_token = token.filter(|t| !t.trim().is_empty());
        self
    }

    /// The edge router plus the local-only outbox pages.
    pub fn router(&self, api_token: Option<&str>) -> axum::Router {
        let mut state = closeloop_edge::AppState::new(&self.services, api_token).with_people_api_token(self.people_api_token.as_deref());
        state.admin = self.admin.clone();
        state.launcher = Some(self.launcher.clone());
        let access = if self.outbox_open {
            outbox_page::OutboxAccess::Open
        } else {
            outbox_page::OutboxAccess::Admins { config: self.admin.clone(), store: self.services.store.clone(), clock: self.services.clock.clone() }
        };
        closeloop_edge::router(state).merge(outbox_page::routes(self.outbox.clone(), access))
    }

    /// Sends what pending events call for, until none are left.
    pub async fn dispatch(&self) -> anyhow::Result<dispatch::DispatchSummary> {
        Ok(dispatch::dispatch_pending(&self.services).await?)
    }
}
