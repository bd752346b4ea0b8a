//! The one HTTP router: survey pages, answers, review redirects, unsubscribe and the CRM API.
//! The local process serves it natively; the Worker serves the same router from WASM.

/// Logs a failure where operators look: the tracing subscriber natively, the Workers console
/// (`wrangler tail`, `wrangler dev` output) on the Worker, where no subscriber runs. The text
/// goes through `scrubbed` first: the errors logged here may quote what a person typed.
macro_rules! log_error {
    ($($arg:tt)*) => {{
        let text = $crate::scrubbed(&format!($($arg)*));
        #[cfg(target_arch = "wasm32")]
        worker::console_error!("{text}");
        #[cfg(not(target_arch = "wasm32"))]
        tracing::error!("{text}");
    }};
}

/// A log line's text without personal data an error may quote: a word holding an `@` (an
/// address), or one of six digits or more and no letters (a phone number), is left out. Ids
/// (letters and digits) stay.
#[doc(hidden)]
pub fn scrubbed(text: &str) -> String {
    let phone_like = |word: &str| word.chars().filter(char::is_ascii_digit).count() >= 6 && !word.chars().any(char::is_alphabetic);
    text.split(' ')
        .map(|word| {
            if word.contains('@') {
                "(address)"
            } else if phone_like(word) {
                "(number)"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub mod admin;
pub mod api;
pub mod campaign_cache;
mod headers;
mod pages;
#[cfg(target_arch = "wasm32")]
mod worker;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};

use closeloop_core::ports::{Clock, Links, Store};
use closeloop_functions::Services;

/// Forms and API bodies are small; anything larger is refused with 413 before it is read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The campaign form and a pasted campaign file: a campaign with its 1,000 owners and 200
/// column mappings, URL-encoded, with room to spare.
pub const MAX_FORM_BYTES: usize = 512 * 1024;

/// The largest body the Worker reads for a path before routing (it takes no uploads).
pub fn worker_body_limit(path: &str) -> usize {
    let workspace_form = path == "/admin/new" || path == "/admin/import" || (path.starts_with("/admin/c/") && path.ends_with("/edit"));
    if workspace_form {
        MAX_FORM_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// The client's address from `header`'s last entry, or "local".
fn client_from(headers: &axum::http::HeaderMap, header: Option<&str>) -> String {
    header
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|ip| ip.trim().chars().take(64).collect::<String>())
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| "local".to_owned())
}

/// A contacts file uploaded in the dashboard: some 50,000 contacts (a Lambda function URL takes
/// at most 6 MB).
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;

/// What the edge needs: it records and reads, and never sends mail or SMS itself (the
/// reactions do, from the events it writes).
#[derive(Clone)]
pub struct EdgeServices {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub links: Links,
}

impl From<&Services> for EdgeServices {
    fn from(s: &Services) -> Self {
        Self { store: s.store.clone(), clock: s.clock.clone(), links: s.links.clone() }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub services: EdgeServices,
    api_token_sha256: Option<Arc<[u8; 32]>>,
    /// A token of its own for `/api/v1/people`: a CRM integration that creates invitations is
    /// not thereby allowed to read or erase anyone. `None` switches those endpoints off.
    people_token_sha256: Option<Arc<[u8; 32]>>,
    /// The dashboard's accounts and session key; `None` leaves `/admin` switched off.
    pub admin: Option<Arc<admin::AdminConfig>>,
    pub campaigns: Arc<campaign_cache::CampaignCache>,
    /// How many store reads a dashboard request may spend on rows (the Worker's budget).
    pub limits: admin::ReadLimits,
    /// Where the dashboard's contact uploads are kept and launched; `None` (the Worker) takes none.
    pub launcher: Option<Arc<dyn closeloop_functions::launch::Launcher>>,
    /// The header the platform puts the client's address in (`cf-connecting-ip` on the Worker,
    /// `x-forwarded-for` behind a function URL); `None` locally, where every client is loopback.
    pub client_ip_header: Option<&'static str>,
}

impl AppState {
    /// `api_token`: the bearer token CRMs use for the invitation API; `None` disables the API.
    pub fn new(services: impl Into<EdgeServices>, api_token: Option<&str>) -> Self {
        let services = services.into();
        let api_token_sha256 = api_token.filter(|t| !t.is_empty()).map(|t| Arc::new(Sha256::digest(t.as_bytes()).into()));
        Self {
            services,
            api_token_sha256,
            people_token_sha256: None,
            admin: None,
            campaigns: Arc::default(),
            limits: admin::ReadLimits::UNBOUNDED,
            launcher: None,
            client_ip_header: None,
        }
    }

    /// Enables `GET /api/v1/people` and `POST /api/v1/people/erase` for this bearer token.
    pub fn with_people_api_token(mut self, token: Option<&str>) -> Self {
        self.people_token_sha256 = token.filter(|t| !t.is_empty()).map(|t| Arc::new(Sha256::digest(t.as_bytes()).into()));
        self
    }

    pub fn with_admin(mut self, admin: admin::AdminConfig) -> Self {
        self.admin = Some(Arc::new(admin));
        self
    }

    /// Tells clients apart by this header, which the platform sets (and a client cannot).
    pub fn with_client_ip_header(mut self, header: &'static str) -> Self {
        self.client_ip_header = Some(header);
        self
    }

    /// The client a request comes from, for throttling: the last address of the platform's
    /// header (a proxy appends the address it saw, after any a client sent), else one shared name.
    pub fn client_of(&self, headers: &axum::http::HeaderMap) -> String {
        client_from(headers, self.client_ip_header)
    }

    pub fn with_launcher(mut self, launcher: Arc<dyn closeloop_functions::launch::Launcher>) -> Self {
        self.launcher = Some(launcher);
        self
    }

    pub fn with_limits(mut self, limits: admin::ReadLimits) -> Self {
        self.limits = limits;
        self
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/s/{token}", get(pages::survey).post(pages::answer))
        .route("/s/{token}/thanks", get(pages::thanks))
        .route("/r/{token}/{site}", get(pages::review_link))
        .route("/r/{token}/{site}/go", get(pages::review_redirect))
        .route("/n/{token}/{update}/{link}", get(pages::update_link))
        .route("/n/{token}/{update}/{link}/go", get(pages::update_redirect))
        .route("/u/{token}", get(pages::unsubscribe_form).post(pages::unsubscribe))
        .route("/api/v1/invitations", post(api::create_invitation))
        .route("/api/v1/invitations/{id}", axum::routing::delete(api::cancel_invitation))
        .route("/admin", get(admin::campaigns))
        .route("/admin/sign-in", get(admin::sign_in_form).post(admin::sign_in))
        .route("/admin/sign-out", post(admin::sign_out))
        .route("/admin/c/{id}/changes", get(admin::campaign_changes))
        .route("/admin/c/{id}/webhooks", get(admin::campaign_webhooks))
        .route("/admin/c/{id}/webhooks/redeliver", post(admin::redeliver_webhook))
        .route("/admin/accounts", get(admin::accounts).post(admin::add_account))
        .route("/admin/accounts/change", post(admin::change_account))
        .route("/admin/audit", get(admin::audit_log))
        .route("/admin/audit.csv", get(admin::audit_csv))
        .route("/admin/people", get(admin::people))
        .route("/admin/people.json", get(admin::people_json))
        .route("/admin/people/erase", post(admin::erase_person))
        .route("/api/v1/people", get(api::person_export))
        .route("/api/v1/people/erase", post(api::person_erase))
        .route("/admin/c/{id}", get(admin::overview))
        .route("/admin/c/{id}/segments", get(admin::segments))
        .route("/admin/c/{id}/comments", get(admin::comments))
        .route("/admin/c/{id}/drivers", get(admin::drivers))
        .route("/admin/c/{id}/cases", get(admin::cases))
        .route("/admin/c/{id}/cases/{invitation}/notes", post(admin::add_note))
        .route("/admin/c/{id}/cases/{invitation}/close", post(admin::close_case))
        .route("/admin/c/{id}/export.csv", get(admin::export))
        .route("/admin/c/{id}/export", get(admin::export_parts))
        .route("/admin/c/{id}/preview", get(admin::preview))
        .route("/admin/c/{id}/preview/test", post(admin::send_test))
        .route("/admin/c/{id}/campaign.toml", get(admin::campaign_file))
        .route("/admin/c/{id}/state", post(admin::change_state))
        .route("/admin/c/{id}/upload/{launch}", get(admin::dry_run))
        .route("/admin/c/{id}/upload/{launch}/launch", post(admin::launch_upload))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A campaign with every owner and column it may have is larger than other forms.
        .merge(
            Router::new()
                .route("/admin/new", get(admin::new_campaign_form).post(admin::create_campaign))
                .route("/admin/import", get(admin::import_campaign_form).post(admin::import_campaign))
                .route("/admin/c/{id}/edit", get(admin::edit_campaign_form).post(admin::update_campaign))
                .route("/admin/c/{id}/updates", get(admin::updates_form).post(admin::post_update))
                .layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
        )
        // A contacts file is larger than any form: its route alone takes up to MAX_UPLOAD_BYTES.
        .merge(Router::new().route("/admin/c/{id}/upload", get(admin::upload_form).post(admin::upload)).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)))
        .layer(axum::middleware::map_response(headers::security_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_told_apart_only_by_the_platforms_header_and_its_last_address() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        headers.insert("cf-connecting-ip", "198.51.100.2".parse().unwrap());
        assert_eq!(client_from(&headers, Some("x-forwarded-for")), "203.0.113.7", "a spoofed first address is ignored");
        assert_eq!(client_from(&headers, Some("cf-connecting-ip")), "198.51.100.2");
        assert_eq!(client_from(&headers, None), "local", "locally a sent header means nothing");
        assert_eq!(client_from(&axum::http::HeaderMap::new(), Some("cf-connecting-ip")), "local");
    }
}
