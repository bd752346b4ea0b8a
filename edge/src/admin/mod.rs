//! The dashboard at `/admin`: sign-in, campaign overview, segments, comments, drivers, follow-up
//! cases and the CSV export. Served by the same router locally and on the Worker.
//!
//! Every page needs a session; every form a CSRF token bound to it. Owners see only their own
//! contacts: their figures are folded from their rows, everyone else's come from the counters.

mod rows;
mod session;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use closeloop_core::accounts::{Account, Accounts, Scope};
use closeloop_core::audit::{AuditAction, AuditEntry};
use closeloop_core::counters::{Aggregates, View};
use closeloop_core::lifecycle::{CampaignState, Transition};
use closeloop_views::dashboard::{self, CaseLine, CaseList, CaseView, CommentFilter, SegmentFilter, SegmentSort, Viewer};
use closeloop_core::model::{CaseClosure, CaseNote, Email, InvitationId, MAX_NOTE_CHARS};
use closeloop_views::export::AnswersCsv;
use closeloop_core::ports::{InvitationRow, RowCursor, RowQuery, StoreError};
use closeloop_core::{Campaign, CampaignId};

pub use rows::{ReadLimits, ROWS_PER_PAGE};
use rows::{read_rows, RowBudget};
pub use session::{SessionKeys, WeakSecret, MIN_SECRET_CHARS};
use session::{cookie, same_origin, set_cookie, SESSION_COOKIE, SESSION_HOURS, SIGN_IN_COOKIE};

use crate::AppState;

/// Who may sign in, and the key their sessions are signed with.
pub struct AdminConfig {
    pub accounts: Accounts,
    pub keys: SessionKeys,
    /// Single sign-on through Cloudflare Access, where the dashboard is behind it.
    pub access: Option<access::AccessVerifier>,
}

impl AdminConfig {
    pub fn new(accounts: Accounts, session_secret: &str) -> Result<Self, WeakSecret> {
        Ok(Self { accounts, keys: SessionKeys::new(session_secret)?, access: None })
    }

    pub fn with_access(mut self, verifier: access::AccessVerifier) -> Self {
        self.access = Some(verifier);
        self
    }
}

/// Cases shown at once on the case list, each with its respondent read alongside.
const CASES_SHOWN: usize = 100;
const MAX_OUTCOME_CHARS: usize = 200;

fn html(status: StatusCode, result: Result<String, closeloop_views::render::RenderError>) -> Response {
    match result {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            log_error!("dashboard render failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

fn message(status: StatusCode, viewer: Option<&Viewer>, title: &str, text: &str) -> Response {
    html(status, dashboard::message_page(viewer, title, text))
}

fn store_failed(e: StoreError, viewer: &Viewer) -> Response {
    log_error!("dashboard store call failed: {e}");
    message(StatusCode::SERVICE_UNAVAILABLE, Some(viewer), "Storage is unavailable", "The figures could not be read. Try again in a moment.")
}

/// Appends a staff action to the audit log. Where the action hands out personal data (an
/// export, a person's record) the caller goes on only once this succeeded; elsewhere a failed
/// write is logged and the action stands (`audit_or_log`).
pub(crate) async fn audit(state: &AppState, who: &str, client: &str, action: AuditAction, subject: &str) -> Result<(), StoreError> {
    let entry = AuditEntry::new(state.services.clock.now(), who, action, subject, Some(client));
    state.services.store.append_audit(&entry).await
}

pub(crate) async fn audit_or_log(state: &AppState, who: &str, client: &str, action: AuditAction, subject: &str) {
    if let Err(e) = audit(state, who, client, action, subject).await {
        log_error!("an audit entry ({}) was not written: {e}", action.as_str());
    }
}

fn query_map(query: Option<&str>) -> BTreeMap<String, String> {
    query.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

fn form_map(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn config(state: &AppState) -> Result<&Arc<AdminConfig>, Response> {
    state.admin.as_ref().ok_or_else(|| {
        message(StatusCode::NOT_FOUND, None, "The dashboard is not set up", "Give this deployment accounts and a session secret to use the dashboard.")
    })
}

/// The signed-in account, or the response to give instead: pages send strangers to sign in,
/// forms refuse them.
/// The account a request's session belongs to, read from the store each time: a disabled
/// account, a changed role and a sign-out (which moves the account's session generation on)
/// take effect on the next request, wherever the session was issued.
async fn signed_in(config: &AdminConfig, state: &AppState, headers: &HeaderMap) -> Option<(Account, Viewer, session::Session)> {
    let account = session_account(config, state.services.store.as_ref(), headers, state.services.clock.now()).await?;
    let session = config.keys.check(cookie(headers, SESSION_COOKIE)?, state.services.clock.now())?;
    let viewer = Viewer::new(&account, config.keys.csrf_for(&session));
    Some((account, viewer, session))
}

/// The account a request's session cookie belongs to, if the session is valid at `now` and of
/// the account's current generation: also for pages outside this router that admit only staff
/// (the local outbox). A store that cannot be read signs nobody in.
pub async fn session_account(config: &AdminConfig, store: &dyn closeloop_core::ports::Store, headers: &HeaderMap, now: closeloop_core::Timestamp) -> Option<Account> {
    let session = config.keys.check(cookie(headers, SESSION_COOKIE)?, now)?;
    let account = match store.account(&session.account).await {
        Ok(account) => account?,
        Err(e) => {
            log_error!("reading the account of a session failed: {e}");
            return None;
        }
    };
    (!account.disabled && account.generation == session.generation).then_some(account)
}

/// A warning where operators look (the Workers console on the Worker).
fn tracing_warn(text: &str) {
    #[cfg(target_arch = "wasm32")]
    worker::console_warn!("{text}");
    #[cfg(not(target_arch = "wasm32"))]
    tracing::warn!("{text}");
}

fn to_sign_in() -> Response {
    Redirect::to("/admin/sign-in").into_response()
}

/// A page's guard: signed in, or off to the sign-in form.
macro_rules! page_guard {
    ($state:expr, $headers:expr) => {{
        let config = match config(&$state) {
            Ok(c) => c.clone(),
            Err(r) => return r,
        };
        match signed_in(&config, &$state, &$headers).await {
            Some((account, viewer, _)) => (config.clone(), account, viewer),
            None => return to_sign_in(),
        }
    }};
}

/// A form's guard: signed in, same origin, and carrying this session's CSRF token.
macro_rules! form_guard {
    ($state:expr, $headers:expr, $form:expr) => {{
        let config = match config(&$state) {
            Ok(c) => c.clone(),
            Err(r) => return r,
        };
        let Some((account, viewer, session)) = signed_in(&config, &$state, &$headers).await else {
            return message(StatusCode::FORBIDDEN, None, "Signed out", "Your session has ended. Sign in again and repeat the change.");
        };
        let token = $form.get("csrf").map(String::as_str).unwrap_or("");
        if !same_origin(&$headers) || !config.keys.csrf_ok(&session, token) {
            return message(StatusCode::FORBIDDEN, Some(&viewer), "Refused", "This form did not come from this dashboard. Reload the page and try again.");
        }
        (account, viewer)
    }};
}

/// A signed-in account, as an extractor: a page handler that takes it is never reached by a
/// stranger, who is sent to the sign-in form instead.
pub struct SignedIn {
    pub account: Account,
    pub viewer: Viewer,
    /// The client's address, for the audit log.
    pub client: String,
}

impl axum::extract::FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, Response> {
        let config = config(state)?;
        match signed_in(config, state, &parts.headers).await {
            Some((account, viewer, _)) => Ok(Self { account, viewer, client: state.client_of(&parts.headers) }),
            None => Err(to_sign_in()),
        }
    }
}

/// A form posted by a signed-in account from this dashboard, with this session's CSRF token,
/// as an extractor: its fields, and who sent it.
pub struct CheckedForm {
    pub account: Account,
    pub viewer: Viewer,
    pub fields: BTreeMap<String, String>,
    /// The client's address, for the audit log.
    pub client: String,
}

impl axum::extract::FromRequest<AppState> for CheckedForm {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        let config = config(state)?.clone();
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        let fields = form_map(&body);
        let Some((account, viewer, session)) = signed_in(&config, state, &headers).await else {
            return Err(message(StatusCode::FORBIDDEN, None, "Signed out", "Your session has ended. Sign in again and repeat the change."));
        };
        let token = fields.get("csrf").map(String::as_str).unwrap_or("");
        if !same_origin(&headers) || !config.keys.csrf_ok(&session, token) {
            return Err(message(StatusCode::FORBIDDEN, Some(&viewer), "Refused", "This form did not come from this dashboard. Reload the page and try again."));
        }
        Ok(Self { account, viewer, fields, client: state.client_of(&headers) })
    }
}

pub mod access;
mod accounts;
pub use accounts::{accounts, add_account, change_account};
mod audit_log;
pub use audit_log::{audit_csv, audit_log};
mod people;
pub use people::{erase_person, json_download as people_json_response, people, people_json};
mod upload;
pub use upload::{dry_run, launch_upload, upload, upload_form};
mod updates;
pub use updates::{post_update, updates_form};
mod workspace;
pub use workspace::{campaign_changes, campaign_webhooks, redeliver_webhook, create_campaign, edit_campaign_form, import_campaign, import_campaign_form, new_campaign_form, update_campaign};

pub async fn sign_in_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let config = match config(&state) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if signed_in(config, &state, &headers).await.is_some() {
        return Redirect::to("/admin").into_response();
    }
    if let (Some(verifier), Some(assertion)) = (&config.access, headers.get(access::ASSERTION_HEADER).and_then(|v| v.to_str().ok())) {
        let client = state.client_of(&headers);
        match single_sign_on(config, verifier, &state, assertion).await {
            Ok(account) => {
                audit_or_log(&state, &account.name, &client, AuditAction::SignedIn, "Cloudflare Access").await;
                let nonce = uuid::Uuid::new_v4().simple().to_string();
                let session = config.keys.issue(&account.name, account.generation, &nonce, state.services.clock.now());
                let mut response = Redirect::to("/admin").into_response();
                response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &session, u64::from(SESSION_HOURS) * 3600));
                return response;
            }
            Err(why) => {
                // The token form stays available; the failure is on record.
                tracing_warn(&format!("Cloudflare Access sign-in refused: {why}"));
                audit_or_log(&state, "unknown", &client, AuditAction::SignInFailed, "Cloudflare Access").await;
            }
        }
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mut response = html(StatusCode::OK, dashboard::sign_in_page(&config.keys.sign_in_csrf(&nonce), None));
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SIGN_IN_COOKIE, &nonce, 3600));
    response
}

pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let config = match config(&state) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let form = form_map(&body);
    let nonce = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    let csrf = form.get("csrf").map(String::as_str).unwrap_or("");
    if !same_origin(&headers) || !config.keys.sign_in_csrf_ok(nonce, csrf) {
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        let mut response = html(
            StatusCode::FORBIDDEN,
            dashboard::sign_in_page(&config.keys.sign_in_csrf(&fresh), Some("The sign-in form had expired. Please try again.")),
        );
        response.headers_mut().append(header::SET_COOKIE, set_cookie(SIGN_IN_COOKIE, &fresh, 3600));
        return response;
    }
    let client = state.client_of(&headers);
    let now = state.services.clock.now();
    // The count lives in the store, so every isolate and instance sees the same one; a store
    // that cannot be read throttles nobody (and then signs nobody in either).
    let previous = match state.services.store.sign_in_failures(&client).await {
        Ok(previous) => previous,
        Err(e) => {
            log_error!("reading a client's sign-in failures failed: {e}");
            None
        }
    };
    if let Some(wait_ms) = previous.and_then(|p| p.wait_ms(now)) {
        let seconds = (wait_ms + 999) / 1000;
        tracing_warn(&format!("sign-in throttled for client {client}: {seconds} s to wait"));
        audit_or_log(&state, "unknown", &client, AuditAction::SignInThrottled, "").await;
        let mut response = html(
            StatusCode::TOO_MANY_REQUESTS,
            dashboard::sign_in_page(
                &config.keys.sign_in_csrf(nonce),
                Some(&format!("Too many wrong tokens. Try again in {seconds} second{}.", if seconds == 1 { "" } else { "s" })),
            ),
        );
        if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let token = form.get("token").map(String::as_str).unwrap_or("");
    let account = match account_for_token(config, &state, token).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            let failures = closeloop_core::accounts::SignInFailures::after_failure(previous, now);
            if let Err(e) = state.services.store.set_sign_in_failures(&client, Some(&failures)).await {
                log_error!("counting a wrong sign-in failed: {e}");
            }
            // Never the token typed: a near miss of a real one is a secret too.
            audit_or_log(&state, "unknown", &client, AuditAction::SignInFailed, "").await;
            return html(
                StatusCode::UNAUTHORIZED,
                dashboard::sign_in_page(&config.keys.sign_in_csrf(nonce), Some("That token is not valid. Check it and try again.")),
            );
        }
        Err(e) => {
            log_error!("sign-in could not read the accounts: {e}");
            return html(
                StatusCode::SERVICE_UNAVAILABLE,
                dashboard::sign_in_page(&config.keys.sign_in_csrf(nonce), Some("Signing in is not possible right now. Try again in a moment.")),
            );
        }
    };
    if previous.is_some() {
        if let Err(e) = state.services.store.set_sign_in_failures(&client, None).await {
            log_error!("clearing a client's sign-in failures failed: {e}");
        }
    }
    audit_or_log(&state, &account.name, &client, AuditAction::SignedIn, "").await;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let session = config.keys.issue(&account.name, account.generation, &nonce, state.services.clock.now());
    let mut response = Redirect::to("/admin").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &session, u64::from(SESSION_HOURS) * 3600));
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SIGN_IN_COOKIE, "", 0));
    response
}

/// The enabled account whose email the Access identity is.
async fn single_sign_on(config: &AdminConfig, verifier: &access::AccessVerifier, state: &AppState, assertion: &str) -> Result<Account, String> {
    let email = verifier.email(assertion, state.services.clock.now()).await.map_err(|e| e.to_string())?;
    let stored = state.services.store.accounts().await.map_err(|e| e.to_string())?;
    let live = Accounts::live(stored.clone(), &config.accounts);
    let account = live.by_email(&email).cloned().ok_or_else(|| "no enabled account has the email of this Access identity".to_owned())?;
    if stored.iter().any(|a| a.name == account.name) {
        return Ok(account);
    }
    // A bootstrap account: stored now, as a token sign-in would.
    state.services.store.put_account(&account).await.map_err(|e| e.to_string())?;
    state.services.store.account(&account.name).await.map_err(|e| e.to_string())?.ok_or_else(|| "the account vanished".to_owned())
}

/// The enabled account whose token this is: a stored one, else a bootstrap account (the file,
/// the Worker secret) whose name the store does not hold yet, which this first sign-in stores.
/// Once stored, the store's copy decides: a disabled bootstrap account stays out.
async fn account_for_token(config: &AdminConfig, state: &AppState, token: &str) -> Result<Option<Account>, StoreError> {
    let store = state.services.store.as_ref();
    let stored = store.accounts().await?;
    // Every account is compared, found or not, so the time taken says nothing.
    let found = stored.iter().fold(None, |found, a| if a.has_token(token) && !a.disabled { Some(a) } else { found });
    if let Some(account) = found {
        return Ok(Some(account.clone()));
    }
    let Some(bootstrap) = config.accounts.by_token(token) else { return Ok(None) };
    if let Some(existing) = stored.iter().find(|a| a.name == bootstrap.name) {
        if existing.disabled {
            return Ok(None);
        }
        // The file or the secret rotated this account's token (a leaked one, say): the new
        // token signs in and the stored copy takes it, so the old one stops working.
        let mut rotated = existing.clone();
        rotated.take_token_of(bootstrap);
        rotated.generation += 1;
        return match store.put_account(&rotated).await? {
            true => store.account(&rotated.name).await,
            false => Ok(None),
        };
    }
    if store.put_account(bootstrap).await? {
        return store.account(&bootstrap.name).await;
    }
    // Stored at the same moment by another sign-in: that copy decides.
    Ok(store.account(&bootstrap.name).await?.filter(|a| a.has_token(token) && !a.disabled))
}

pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_map(&body);
    let (account, viewer) = form_guard!(state, headers, form);
    // Every session of the account ends here, on every device and runtime.
    if let Err(e) = end_sessions(&state, &account.name).await {
        return store_failed(e, &viewer);
    }
    audit_or_log(&state, &account.name, &state.client_of(&headers), AuditAction::SignedOut, "").await;
    let mut response = Redirect::to("/admin/sign-in").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    response
}

/// Moves the account's session generation on, so every session issued before ends.
pub(crate) async fn end_sessions(state: &AppState, name: &str) -> Result<(), StoreError> {
    let store = state.services.store.as_ref();
    for _ in 0..5 {
        let Some(mut account) = store.account(name).await? else { return Ok(()) };
        account.generation += 1;
        if store.put_account(&account).await? {
            return Ok(());
        }
    }
    Err(StoreError::Conflict)
}

/// The owner whose rows an account sees, if it sees only some.
fn owner_scope(account: &Account) -> Option<&Email> {
    match account.scope() {
        Scope::Everything => None,
        Scope::OwnedBy(owner) => Some(owner),
    }
}

/// Whole-campaign figures come from counters; an owner's or a drill-down's from their rows.
fn reads_counters(account: &Account, filter: Option<&SegmentFilter>) -> bool {
    account.scope() == Scope::Everything && filter.is_none()
}

/// The figures an account sees: the page's counter buckets for the whole campaign, rows folded
/// the same way for an owner (through the owner index) or a segment drill-down, as many as the
/// request's budget reads; figures from part of the rows say so.
async fn aggregates_for(
    state: &AppState,
    campaign: &Campaign,
    account: &Account,
    filter: Option<&SegmentFilter>,
    view: View<'_>,
    budget: &mut RowBudget,
) -> Result<Aggregates, StoreError> {
    let store = &state.services.store;
    if reads_counters(account, filter) {
        return Ok(Aggregates::from_buckets(store.counter_buckets(&campaign.id, &view.prefixes()).await?));
    }
    let query = RowQuery { owner: owner_scope(account), ..RowQuery::campaign(&campaign.id, ROWS_PER_PAGE) };
    let read = read_rows(store.as_ref(), query, budget, |r| filter.is_none_or(|f| f.matches(&r.invitation)), |_| false).await?;
    let aggregates = Aggregates::from_rows(campaign, &read.rows);
    Ok(if read.complete { aggregates } else { aggregates.partial_after(read.rows.len()) })
}

async fn find_campaign(state: &AppState, id: &str, viewer: &Viewer) -> Result<Campaign, Response> {
    let missing = || message(StatusCode::NOT_FOUND, Some(viewer), "No such campaign", "There is no campaign with that id.");
    let id = CampaignId::parse(id).map_err(|_| missing())?;
    match state.services.store.campaign(&id).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(missing()),
        Err(e) => Err(store_failed(e, viewer)),
    }
}

pub async fn campaigns(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (_, account, viewer) = page_guard!(state, headers);
    let list = match state.services.store.campaigns().await {
        Ok(list) => list,
        Err(e) => return store_failed(e, &viewer),
    };
    let mut shown = Vec::with_capacity(list.len());
    let mut budget = RowBudget::new(state.limits);
    for campaign in list {
        // The list needs each campaign's state, last launch and totals: three reads, while the
        // budget lasts.
        if !budget.spend(2) {
            shown.push(dashboard::CampaignLine { campaign, status: None, figures: None, last_launch: None });
            continue;
        }
        let status = match state.services.store.campaign_status(&campaign.id).await {
            Ok(status) => Some(status.unwrap_or_default().at(state.services.clock.now())),
            Err(e) => return store_failed(e, &viewer),
        };
        let last_launch = match state.services.store.launches(&campaign.id, 1).await {
            Ok(mut launches) => launches.pop(),
            Err(e) => return store_failed(e, &viewer),
        };
        if reads_counters(&account, None) && !budget.spend(1) {
            shown.push(dashboard::CampaignLine { campaign, status, figures: None, last_launch });
            continue;
        }
        match aggregates_for(&state, &campaign, &account, None, View::Totals, &mut budget).await {
            Ok(agg) => shown.push(dashboard::CampaignLine { campaign, status, figures: Some(agg), last_launch }),
            Err(e) => return store_failed(e, &viewer),
        }
    }
    html(StatusCode::OK, dashboard::campaigns_page(&viewer, &shown))
}

/// The most recent launches the overview lists (one query).
const LAUNCHES_SHOWN: usize = 5;

pub async fn overview(State(state): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let (_, account, viewer) = page_guard!(state, headers);
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_map(query.as_deref());
    let filter = SegmentFilter::parse(q.get("by").map(String::as_str), q.get("value").map(String::as_str));
    let launches = match state.services.store.launches(&campaign.id, LAUNCHES_SHOWN).await {
        Ok(l) => l,
        Err(e) => return store_failed(e, &viewer),
    };
    let status = match state.services.store.campaign_status(&campaign.id).await {
        Ok(status) => status.unwrap_or_default().at(state.services.clock.now()),
        Err(e) => return store_failed(e, &viewer),
    };
    match aggregates_for(&state, &campaign, &account, filter.as_ref(), View::Overview, &mut RowBudget::new(state.limits)).await {
        Ok(agg) => html(StatusCode::OK, dashboard::overview_page(&viewer, &campaign, &agg, filter.as_ref(), &launches, &status)),
        Err(e) => store_failed(e, &viewer),
    }
}

pub async fn segments(State(state): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let (_, account, viewer) = page_guard!(state, headers);
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_map(query.as_deref());
    let asked = q.get("by").map(String::as_str).unwrap_or("");
    let mut budget = RowBudget::new(state.limits);
    let mut agg = match aggregates_for(&state, &campaign, &account, None, View::Segments(asked), &mut budget).await {
        Ok(agg) => agg,
        Err(e) => return store_failed(e, &viewer),
    };
    // No field asked for (or an unknown one): the first field there is. Figures folded from rows
    // hold every field already; only counters are read again, for that field's buckets.
    let dimensions = agg.dimensions();
    if !dimensions.iter().any(|d| d == asked) && reads_counters(&account, None) {
        if let Some(first) = dimensions.first() {
            agg = match aggregates_for(&state, &campaign, &account, None, View::Segments(first), &mut budget).await {
                Ok(agg) => agg,
                Err(e) => return store_failed(e, &viewer),
            };
        }
    }
    html(StatusCode::OK, dashboard::segments_page(&viewer, &campaign, &agg, Some(asked), SegmentSort::parse(q.get("sort").map(String::as_str))))
}

/// Comments one page shows before it offers the next.
const COMMENTS_PER_PAGE: usize = 100;

pub async fn comments(State(state): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let (_, account, viewer) = page_guard!(state, headers);
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_map(query.as_deref());
    let filter = CommentFilter::parse(q.get("group").map(String::as_str), q.get("q").map(String::as_str), q.get("theme").map(String::as_str));
    let after = match q.get("after").map(|a| RowCursor::parse(a)).transpose() {
        Ok(after) => after,
        Err(e) => return message(StatusCode::BAD_REQUEST, Some(&viewer), "Bad page link", &e.to_string()),
    };
    // Pages through the rows (an owner's through the owner index) until a page of comments is
    // found, the budget is spent or the rows end; the page links to where it stopped.
    let store = state.services.store.as_ref();
    let query = RowQuery { owner: owner_scope(&account), after: after.as_ref(), ..RowQuery::campaign(&campaign.id, ROWS_PER_PAGE) };
    let shows = |r: &InvitationRow| r.answer.as_ref().is_some_and(|a| filter.matches(&campaign, a));
    let enough = |rows: &[InvitationRow]| rows.len() >= COMMENTS_PER_PAGE;
    let read = match read_rows(store, query, &mut RowBudget::new(state.limits), shows, enough).await {
        Ok(read) => read,
        Err(e) => return store_failed(e, &viewer),
    };
    let agg = if reads_counters(&account, None) {
        match state.services.store.counter_buckets(&campaign.id, &View::Themes.prefixes()).await {
            Ok(buckets) => Aggregates::from_buckets(buckets),
            Err(e) => return store_failed(e, &viewer),
        }
    } else {
        // An owner's theme counts: from the comments this page read.
        let agg = Aggregates::from_rows(&campaign, &read.rows);
        if read.complete && after.is_none() { agg } else { agg.partial_after(read.rows.len()) }
    };
    let more = if read.complete { None } else { read.next.as_ref().map(RowCursor::as_str) };
    html(StatusCode::OK, dashboard::comments_page(&viewer, &campaign, &agg, &read.rows, &filter, more))
}

pub async fn drivers(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let (_, account, viewer) = page_guard!(state, headers);
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match aggregates_for(&state, &campaign, &account, None, View::Drivers, &mut RowBudget::new(state.limits)).await {
        Ok(agg) => html(StatusCode::OK, dashboard::drivers_page(&viewer, &campaign, &agg)),
        Err(e) => store_failed(e, &viewer),
    }
}

pub async fn cases(State(state): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let (_, account, viewer) = page_guard!(state, headers);
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_map(query.as_deref());
    let view = CaseView::parse(q.get("status").map(String::as_str));
    let asked_owner = q.get("owner").and_then(|o| Email::parse(o).ok());
    let owner = match account.scope() {
        Scope::OwnedBy(own) => Some(own.clone()),
        Scope::Everything => asked_owner,
    };
    let store = &state.services.store;
    let all = match store.cases(&campaign.id, owner.as_ref()).await {
        Ok(all) => all,
        Err(e) => return store_failed(e, &viewer),
    };
    let all_owners = owners_of(&all);
    let now = state.services.clock.now();
    let counts: BTreeMap<&'static str, usize> = [CaseView::Open, CaseView::Overdue, CaseView::Closed, CaseView::All]
        .into_iter()
        .map(|v| (v.as_str(), all.iter().filter(|c| v.includes(c, now)).count()))
        .collect();
    let shown: Vec<closeloop_core::FollowUpCase> = all.into_iter().filter(|c| view.includes(c, now)).take(CASES_SHOWN).collect();
    let ids: Vec<closeloop_core::InvitationId> = shown.iter().map(|c| c.invitation_id.clone()).collect();
    let found = match store.invitations_with_answers(&ids).await {
        Ok(found) => found,
        Err(e) => return store_failed(e, &viewer),
    };
    let lines: Vec<CaseLine> =
        shown.into_iter().zip(found).map(|(case, (invitation, answer))| CaseLine { case, invitation, answer }).collect();
    // The owner list for admins and viewers: everyone who has a case in this campaign.
    let owners: Vec<String> = if account.scope() == Scope::Everything {
        let everyone = if owner.is_none() { Ok(all_owners) } else { store.cases(&campaign.id, None).await.map(|c| owners_of(&c)) };
        match everyone {
            Ok(owners) => owners,
            Err(e) => return store_failed(e, &viewer),
        }
    } else {
        Vec::new()
    };
    let may_work = |case: &closeloop_core::FollowUpCase| account.may_work_case(case.owner_email.as_ref());
    html(
        StatusCode::OK,
        dashboard::cases_page(
            &viewer,
            &campaign,
            &CaseList { lines: &lines, counts: &counts, view, owners: &owners, owner: owner.as_ref().map(Email::as_str), at: now, may_work: &may_work },
        ),
    )
}

fn owners_of(cases: &[closeloop_core::FollowUpCase]) -> Vec<String> {
    let mut owners: Vec<String> = cases.iter().filter_map(|c| c.owner_email.as_ref().map(|e| e.as_str().to_owned())).collect();
    owners.sort();
    owners.dedup();
    owners
}

/// Finds a case of this campaign the account may work on, or the response to give instead.
async fn workable_case(state: &AppState, campaign_id: &str, invitation: &str, account: &Account, viewer: &Viewer) -> Result<InvitationId, Response> {
    let id = InvitationId(invitation.to_owned());
    let missing = || message(StatusCode::NOT_FOUND, Some(viewer), "No such case", "There is no follow-up case with that id in this campaign.");
    let case = match state.services.store.case(&id).await {
        Ok(Some(case)) if case.campaign_id.as_str() == campaign_id => case,
        Ok(_) => return Err(missing()),
        Err(e) => return Err(store_failed(e, viewer)),
    };
    if !account.may_work_case(case.owner_email.as_ref()) {
        // An owner probing another owner's case learns nothing more than "not found".
        return Err(match account.scope() {
            Scope::OwnedBy(_) => missing(),
            Scope::Everything => {
                message(StatusCode::FORBIDDEN, Some(viewer), "Read only", "Your account can read the dashboard but not change cases.")
            }
        });
    }
    Ok(id)
}

fn back_to_case(campaign: &str, invitation: &InvitationId) -> Response {
    Redirect::to(&format!("/admin/c/{campaign}/cases?status=all#case-{}", dashboard::form_encode(&invitation.0))).into_response()
}

pub async fn add_note(State(state): State<AppState>, Path((campaign, invitation)): Path<(String, String)>, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_map(&body);
    let (account, viewer) = form_guard!(state, headers, form);
    let id = match workable_case(&state, &campaign, &invitation, &account, &viewer).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let text = form.get("text").map(|t| t.trim()).unwrap_or("");
    if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&viewer),
            "The note was not saved",
            &format!("A note needs some text, at most {MAX_NOTE_CHARS} characters. Go back to keep what you typed."),
        );
    }
    let note = CaseNote { by: account.name.clone(), at: state.services.clock.now(), text: text.to_owned() };
    match state.services.store.add_case_note(&id, &note).await {
        Ok(false) => message(StatusCode::CONFLICT, Some(&viewer), "The note was not saved", "This person was erased: nothing more is written about them."),
        Ok(true) => {
            audit_or_log(&state, &account.name, &state.client_of(&headers), AuditAction::CaseNoteAdded, &id.0).await;
            back_to_case(&campaign, &id)
        }
        Err(e) => store_failed(e, &viewer),
    }
}

pub async fn close_case(State(state): State<AppState>, Path((campaign, invitation)): Path<(String, String)>, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_map(&body);
    let (account, viewer) = form_guard!(state, headers, form);
    let id = match workable_case(&state, &campaign, &invitation, &account, &viewer).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let outcome = form.get("outcome").map(|t| t.trim()).unwrap_or("");
    if outcome.is_empty() || outcome.chars().count() > MAX_OUTCOME_CHARS {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&viewer),
            "The case was not closed",
            &format!("Say how the case ended, in at most {MAX_OUTCOME_CHARS} characters."),
        );
    }
    let follow_up = form.get("follow_up").map(|t| closeloop_core::clean::comment(t).trim().to_owned()).filter(|t| !t.is_empty());
    if follow_up.as_ref().is_some_and(|t| t.chars().count() > closeloop_core::model::MAX_FOLLOW_UP_CHARS) {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&viewer),
            "The case was not closed",
            &format!("A personal follow-up is at most {} characters. Go back to keep what you typed.", closeloop_core::model::MAX_FOLLOW_UP_CHARS),
        );
    }
    let closure = CaseClosure { by: account.name.clone(), at: state.services.clock.now(), outcome: outcome.to_owned(), follow_up };
    match state.services.store.close_case(&id, &closure).await {
        Ok(true) => {
            audit_or_log(&state, &account.name, &state.client_of(&headers), AuditAction::CaseClosed, &id.0).await;
            if closure.follow_up.is_some() {
                // The reactions have the mailer: one request event, named by the case, so once.
                let request = format!("case-follow-up-{}", id.0);
                let event = closeloop_core::model::Event { id: request, at: closure.at, kind: closeloop_core::model::EventKind::CaseFollowUpRequested { invitation_id: id.clone() } };
                let campaign_id = closeloop_core::CampaignId::parse(&campaign).ok();
                let asked = match campaign_id {
                    Some(c) => state.services.store.append_event(&closeloop_core::changes::Change { event, campaign: c, deltas: Default::default() }).await.map(|_| ()),
                    None => Ok(()),
                };
                if let Err(e) = asked {
                    log_error!("the follow-up's request was not written: {e}");
                    return message(StatusCode::SERVICE_UNAVAILABLE, Some(&viewer), "Closed, but the follow-up was not sent", "The case is closed with its outcome. The personal follow-up could not be queued: write to the respondent directly.");
                }
            }
            // The case is closed either way; a lost webhook is logged, not the closing's failure.
            if let Err(e) = queue_case_closed(&state, &campaign, &id, closure.at).await {
                log_error!("queueing the case.closed webhook failed: {e}");
            }
            back_to_case(&campaign, &id)
        }
        Ok(false) => message(StatusCode::CONFLICT, Some(&viewer), "Already closed", "Someone closed this case first; their outcome stands."),
        Err(e) => store_failed(e, &viewer),
    }
}

/// `case.closed` for the endpoints that want it (one read of the campaign, one write each).
async fn queue_case_closed(state: &AppState, campaign: &str, id: &InvitationId, at: closeloop_core::Timestamp) -> Result<(), closeloop_functions::FunctionError> {
    let Ok(campaign_id) = closeloop_core::CampaignId::parse(campaign) else { return Ok(()) };
    let Some(campaign) = state.services.store.campaign(&campaign_id).await? else { return Ok(()) };
    let source = format!("closed-{}", id.0);
    closeloop_functions::webhooks::queue(state.services.store.as_ref(), &campaign, closeloop_core::webhooks::WebhookEvent::CaseClosed, &source, id, 0, at).await.map(|_| ())
}

/// The export's figures before its first row: the custom properties (for its columns) and the
/// number of invitations (for how many parts it needs).
async fn export_plan(state: &AppState, campaign: &Campaign) -> Result<(AnswersCsv, u64), StoreError> {
    use closeloop_core::counters::{DIMENSIONS, TOTAL};
    let buckets = state.services.store.counter_buckets(&campaign.id, &[TOTAL.to_owned(), DIMENSIONS.to_owned()]).await?;
    let aggregates = Aggregates::from_buckets(buckets);
    let properties = aggregates.dimensions().into_iter().filter_map(|d| d.strip_prefix("prop:").map(str::to_owned)).collect::<Vec<_>>();
    Ok((AnswersCsv::new(campaign, properties), aggregates.funnel().invited))
}

/// What a respondent of this campaign will receive, in one locale, for one group's answer,
/// filled in with the first of the account's contacts (or a made-up one before any launch).
pub async fn preview(State(state): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    use closeloop_views::preview;
    let (_, account, viewer) = page_guard!(state, headers);
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_map(query.as_deref());
    let locale = q
        .get("locale")
        .and_then(|l| closeloop_core::Locale::parse(l))
        .filter(|l| campaign.locales.contains(l))
        .unwrap_or(campaign.locales[0]);
    let group = match q.get("group").map(String::as_str) {
        Some("passive") => closeloop_core::Group::Passive,
        Some("detractor") => closeloop_core::Group::Detractor,
        _ => closeloop_core::Group::Promoter,
    };
    let first = RowQuery { owner: owner_scope(&account), ..RowQuery::campaign(&campaign.id, 1) };
    let (contact, sample_note) = match state.services.store.rows_page(first).await {
        Ok(page) => match page.rows.into_iter().next() {
            Some(row) => (row.invitation.contact, "Filled in with the first contact of the campaign's uploads."),
            None => (preview::sample_contact(&campaign), "Filled in with a made-up contact: the campaign has no contacts yet."),
        },
        Err(e) => return store_failed(e, &viewer),
    };
    let now = state.services.clock.now();
    let invitation = match preview::sample_invitation(&campaign, contact, locale, now)
        .or_else(|_| preview::sample_invitation(&campaign, preview::sample_contact(&campaign), locale, now))
    {
        Ok(invitation) => invitation,
        Err(e) => return message(StatusCode::INTERNAL_SERVER_ERROR, Some(&viewer), "No sample contact", &e.to_string()),
    };
    let test_to = account.email.as_ref().filter(|_| account.may_manage_campaigns()).map(|e| e.as_str());
    let test_sent = q.get("test").is_some_and(|t| t == "sent");
    let rendered = preview::preview(&campaign, &invitation, group, &state.services.links, now)
        .and_then(|p| dashboard::preview_page(&viewer, &campaign, &p, sample_note, test_to, test_sent));
    html(StatusCode::OK, rendered)
}

/// Asks the reactions (which have the mailer; the edge has none) to do something, through a
/// request event of its own (`{prefix}-{uuid}`, no counters): a test mail, a release of what
/// waited.
async fn ask_reactions(
    state: &AppState,
    campaign: &CampaignId,
    prefix: &str,
    kind: impl FnOnce(InvitationId) -> closeloop_core::model::EventKind,
) -> Result<bool, StoreError> {
    let id = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    let event = closeloop_core::model::Event { id: id.clone(), at: state.services.clock.now(), kind: kind(InvitationId(id)) };
    state.services.store.append_event(&closeloop_core::changes::Change { event, campaign: campaign.clone(), deltas: Default::default() }).await
}

/// "Send me a test": asks the reactions (which have the mailer; the edge has none) for the
/// invitation in the chosen language, to the signed-in admin's or editor's own address. One
/// write: the request's event.
pub async fn send_test(State(state): State<AppState>, Path(id): Path<String>, posted: CheckedForm) -> Response {
    use closeloop_core::model::EventKind;
    let CheckedForm { account, viewer, fields, .. } = posted;
    if !account.may_manage_campaigns() {
        return message(StatusCode::FORBIDDEN, Some(&viewer), "Not allowed", "Only admins and editors send test mails.");
    }
    let Some(to) = account.email.clone() else {
        return message(StatusCode::UNPROCESSABLE_ENTITY, Some(&viewer), "No address", "Your account has no email address to send a test to. Ask an admin to add one (closeloop account add --email).");
    };
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let locale = fields.get("locale").and_then(|l| closeloop_core::Locale::parse(l)).filter(|l| campaign.locales.contains(l)).unwrap_or(campaign.locales[0]);
    let test = |request_id| EventKind::TestMailRequested { request_id, campaign_id: campaign.id.clone(), locale, to, requested_by: account.name.clone() };
    match ask_reactions(&state, &campaign.id, "test", test).await {
        Ok(_) => Redirect::to(&format!("/admin/c/{}/preview?locale={}&test=sent", campaign.id, locale.code())).into_response(),
        Err(e) => store_failed(e, &viewer),
    }
}

/// The campaign as its file (`Campaign::to_toml`), to keep, edit and launch again: admins and
/// editors only (it names owners and the manager). One read: the campaign.
pub async fn campaign_file(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let (_, account, viewer) = page_guard!(state, headers);
    if !account.may_manage_campaigns() {
        return message(StatusCode::FORBIDDEN, Some(&viewer), "Not allowed", "Only admins and editors download a campaign's file.");
    }
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match campaign.to_toml() {
        Ok(file) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/toml; charset=utf-8".to_owned()),
                // The id is a-z, 0-9 and dashes: safe in the header as it is.
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.toml\"", campaign.id)),
            ],
            file,
        )
            .into_response(),
        Err(e) => message(StatusCode::INTERNAL_SERVER_ERROR, Some(&viewer), "The file could not be written", &e.to_string()),
    }
}

/// Starts, schedules, pauses, resumes or ends a campaign: admins and editors only, from the
/// state the page showed (`expected`), so two people clicking at once cannot undo each other
/// unseen. A start time (`starts_at`) is on the campaign's clock.
pub async fn change_state(State(state): State<AppState>, Path(id): Path<String>, posted: CheckedForm) -> Response {
    let CheckedForm { account, viewer, fields: form, client } = posted;
    if !account.may_manage_campaigns() {
        return message(StatusCode::FORBIDDEN, Some(&viewer), "Not allowed", "Only admins and editors start, pause, resume or end a campaign.");
    }
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    // The start time is read on the clock the form showed: the reader's (`Viewer::zone_for`).
    // Only a schedule reads it: the form always sends the field, and a stray value there must
    // not stop a start or an end.
    let scheduling = form.get("action").map(String::as_str) == Some("schedule");
    let starts_at = match form.get("starts_at").map(|t| t.trim()).filter(|t| !t.is_empty() && scheduling) {
        Some(text) => match closeloop_core::Timestamp::from_local(text, &viewer.zone_for(&campaign)) {
            Ok(at) => Some(at),
            Err(e) => return message(StatusCode::UNPROCESSABLE_ENTITY, Some(&viewer), "Nothing changed", &e.to_string()),
        },
        None => None,
    };
    let Some(transition) = form.get("action").and_then(|a| Transition::parse(a, starts_at)) else {
        let why = if form.get("action").map(String::as_str) == Some("schedule") { "Choose the date and time to start at." } else { "Choose start, pause, resume or end." };
        return message(StatusCode::UNPROCESSABLE_ENTITY, Some(&viewer), "Nothing changed", why);
    };
    let store = &state.services.store;
    let current = match store.campaign_status(&campaign.id).await {
        Ok(status) => status.unwrap_or_default(),
        Err(e) => return store_failed(e, &viewer),
    };
    let now = state.services.clock.now();
    // The page showed the state as it stood (a scheduled campaign past its start as active).
    let shown = current.state_at(now);
    let seen = form.get("expected").map(String::as_str).unwrap_or("");
    let next = match current.after(transition, now, &account.name) {
        Ok(next) if seen == shown.as_str() => next,
        Ok(_) => return message(StatusCode::CONFLICT, Some(&viewer), "Changed meanwhile", &format!("Someone else made the campaign {} first. Reload and decide again.", shown.as_str())),
        Err(e) => return message(StatusCode::CONFLICT, Some(&viewer), "Nothing changed", &e.to_string()),
    };
    let expected: CampaignState = current.state;
    match store.set_campaign_status(&campaign.id, &next, expected).await {
        Ok(true) => {
            audit_or_log(&state, &account.name, &client, AuditAction::CampaignStateChanged, &format!("{}: {}", campaign.id, next.state.as_str())).await;
            if next.sends_at(now) && !current.sends_at(now) {
                // What waited goes now rather than at the schedule's next run. If this write
                // fails, the schedule still sends it: the change itself stands.
                let release = |request_id| closeloop_core::model::EventKind::HeldReleaseRequested { request_id, campaign_id: campaign.id.clone() };
                if let Err(e) = ask_reactions(&state, &campaign.id, "release", release).await {
                    log_error!("asking for the held invitations of {} failed; the schedule sends them: {e}", campaign.id);
                }
            }
            Redirect::to(&format!("/admin/c/{}", campaign.id)).into_response()
        }
        Ok(false) => message(StatusCode::CONFLICT, Some(&viewer), "Changed meanwhile", "Someone else changed the campaign's state first. Reload and decide again."),
        Err(e) => store_failed(e, &viewer),
    }
}

/// One part of an export too large for one request: the rows after a cursor, through an id.
#[derive(Debug, Clone, Default)]
struct ExportPart {
    number: usize,
    after: Option<RowCursor>,
    through: Option<String>,
}

/// Whether this runtime exports a campaign of `invited` invitations in parts, for an owner or
/// for the whole campaign.
fn needs_parts(state: &AppState, invited: u64, owner: bool) -> bool {
    state.limits.rows_per_request(owner).is_some_and(|rows| invited > rows)
}

/// The part a query names (`part`, `after`, `through`), if it names one.
fn asked_part(q: &BTreeMap<String, String>) -> Result<Option<ExportPart>, String> {
    let Some(number) = q.get("part") else {
        // A part's bounds without its number are a broken link, not a whole export.
        if q.contains_key("after") || q.contains_key("through") {
            return Err("a part is part=N with its after and through".to_owned());
        }
        return Ok(None);
    };
    let number = number.parse().ok().filter(|n| *n >= 1).ok_or("part is a number from 1")?;
    let after = q.get("after").map(|a| RowCursor::parse(a)).transpose().map_err(|e| e.to_string())?;
    let through = q.get("through").map(|t| RowCursor::parse(t).map(|t| t.as_str().to_owned())).transpose().map_err(|e| e.to_string())?;
    Ok(Some(ExportPart { number, after, through }))
}

/// The segment filter of an export as the start of a query string.
fn segment_query(q: &BTreeMap<String, String>) -> String {
    ["by", "value"].iter().filter_map(|k| q.get(*k).map(|v| format!("{k}={}&", dashboard::form_encode(v)))).collect()
}

/// Streams the answers as CSV, a page of rows at a time. A campaign larger than one request can
/// read (on the Worker) is exported in parts, which `/export` lists one after another.
pub async fn export(State(state): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let (_, account, viewer) = page_guard!(state, headers);
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_map(query.as_deref());
    let filter = SegmentFilter::parse(q.get("by").map(String::as_str), q.get("value").map(String::as_str));
    let (csv, invited) = match export_plan(&state, &campaign).await {
        Ok(plan) => plan,
        Err(e) => return store_failed(e, &viewer),
    };
    let part = match asked_part(&q) {
        Ok(Some(part)) => part,
        Ok(None) if needs_parts(&state, invited, owner_scope(&account).is_some()) => {
            return Redirect::to(&format!("/admin/c/{}/export?{}part=1", campaign.id, segment_query(&q))).into_response()
        }
        Ok(None) => ExportPart::default(),
        Err(e) => return message(StatusCode::BAD_REQUEST, Some(&viewer), "No such part", &e),
    };
    let name = if part.number == 0 { format!("{}-answers.csv", campaign.id) } else { format!("{}-answers-part-{}.csv", campaign.id, part.number) };
    // No export leaves without its entry in the log.
    if let Err(e) = audit(&state, &account.name, &state.client_of(&headers), AuditAction::CsvExported, &name).await {
        return store_failed(e, &viewer);
    }
    let stream = ExportStream {
        store: state.services.store.clone(),
        campaign: campaign.id.clone(),
        owner: owner_scope(&account).cloned(),
        filter,
        csv,
        part,
        budget: RowBudget::new(state.limits),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))],
        axum::body::Body::from_stream(stream.into_stream()),
    )
        .into_response()
}

/// The rows of one export (part), read page after page as the client takes them.
struct ExportStream {
    store: Arc<dyn closeloop_core::ports::Store>,
    campaign: CampaignId,
    owner: Option<Email>,
    filter: Option<SegmentFilter>,
    csv: AnswersCsv,
    part: ExportPart,
    budget: RowBudget,
}

/// An export part that needs more reads than one request has (rows were added to its range
/// since it was listed): the download fails rather than end early, so a short file is never
/// taken for the whole.
#[derive(Debug, thiserror::Error)]
#[error("this export part needs more reads than one request may make; list the parts again")]
struct ExportTooLarge;

impl ExportStream {
    fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, axum::BoxError>> + Send + 'static {
        let header = Bytes::from(self.csv.header());
        let after = self.part.after.clone();
        let rows = futures_util::stream::try_unfold((self, after, false), |(mut export, after, done)| async move {
            if done {
                return Ok(None);
            }
            let query = RowQuery {
                owner: export.owner.as_ref(),
                after: after.as_ref(),
                through: export.part.through.as_deref(),
                ..RowQuery::campaign(&export.campaign, ROWS_PER_PAGE)
            };
            let filter = export.filter.clone();
            let keep = |r: &InvitationRow| filter.as_ref().is_none_or(|f| f.matches(&r.invitation));
            let read = read_rows(export.store.as_ref(), query, &mut export.budget, keep, |_| true).await.map_err(axum::BoxError::from)?;
            if !read.complete && read.next == after {
                return Err(axum::BoxError::from(ExportTooLarge));
            }
            let chunk = Bytes::from(export.csv.rows(&read.rows));
            let complete = read.complete;
            Ok(Some((chunk, (export, read.next, complete))))
        });
        futures_util::StreamExt::chain(futures_util::stream::once(async move { Ok(header) }), rows)
    }
}

/// One part of an export too large for one request, and the link to the next: the page reads
/// the part's rows ahead, as many as one download may, to fix where the part ends.
pub async fn export_parts(State(state): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let (_, account, viewer) = page_guard!(state, headers);
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_map(query.as_deref());
    let part = match asked_part(&q) {
        Ok(part) => part.unwrap_or(ExportPart { number: 1, ..ExportPart::default() }),
        Err(e) => return message(StatusCode::BAD_REQUEST, Some(&viewer), "No such part", &e),
    };
    // Only the count: the columns are the download's business.
    let invited = match state.services.store.campaign_counters(&campaign.id).await {
        Ok(counters) => counters.invited,
        Err(e) => return store_failed(e, &viewer),
    };
    let query = RowQuery { owner: owner_scope(&account), after: part.after.as_ref(), ..RowQuery::campaign(&campaign.id, ROWS_PER_PAGE) };
    let ahead = match read_rows(state.services.store.as_ref(), query, &mut RowBudget::new(state.limits), |_| true, |_| false).await {
        Ok(read) => read,
        Err(e) => return store_failed(e, &viewer),
    };
    let segment = segment_query(&q);
    let after = part.after.as_ref().map(|a| format!("after={}&", dashboard::form_encode(a.as_str()))).unwrap_or_default();
    let download = ahead.rows.last().map(|last| {
        format!(
            "/admin/c/{}/export.csv?{segment}{after}through={}&part={}",
            campaign.id,
            dashboard::form_encode(&last.invitation.id.0),
            part.number
        )
    });
    let next = match (&ahead.next, ahead.complete) {
        (Some(next), false) => Some(format!("/admin/c/{}/export?{segment}after={}&part={}", campaign.id, dashboard::form_encode(next.as_str()), part.number + 1)),
        _ => None,
    };
    let part_view = dashboard::ExportPartView { number: part.number, contacts: ahead.rows.len(), download: download.as_deref(), next: next.as_deref() };
    html(StatusCode::OK, dashboard::export_parts_page(&viewer, &campaign, invited, &part_view))
}
