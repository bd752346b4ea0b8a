//! Contacts uploaded in the dashboard: the file is kept (`Launcher::stage`), read and dry-run
//! with its column mapping shown and changeable, and launched with the mapping chosen, which the
//! campaign remembers for its next upload. Admins and editors only, where a launcher runs (the
//! local process, the launch function); the Worker shows where to go instead.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use closeloop_core::changelog::{CampaignChange, ChangeKind};
use closeloop_core::import::ColumnTarget;
use closeloop_core::launch::LaunchId;
use closeloop_core::{Campaign, CampaignId};
use closeloop_functions::launch::{ContactsFile, LaunchError, Launcher};
use closeloop_views::dashboard::Viewer;
use closeloop_views::workspace;

use super::{audit_or_log, find_campaign, html, message, query_map, store_failed, CheckedForm, SignedIn};
use closeloop_core::audit::AuditAction;
use crate::AppState;

fn not_allowed(viewer: &Viewer) -> Response {
    message(StatusCode::FORBIDDEN, Some(viewer), "Not allowed", "Only admins and editors upload contacts and launch.")
}

fn launcher(state: &AppState, viewer: &Viewer) -> Result<Arc<dyn Launcher>, Response> {
    state.launcher.clone().ok_or_else(|| {
        message(StatusCode::NOT_FOUND, Some(viewer), "No uploads here", "This address does not take uploads: open the dashboard at the launch function's address.")
    })
}

fn launch_failed(e: LaunchError, viewer: &Viewer) -> Response {
    match e {
        LaunchError::Import(e) => message(StatusCode::UNPROCESSABLE_ENTITY, Some(viewer), "The file cannot be used", &e.to_string()),
        LaunchError::Function(closeloop_functions::FunctionError::Store(e)) => store_failed(e, viewer),
        other => {
            log_error!("dashboard launch failed: {}", with_sources(&other));
            message(StatusCode::SERVICE_UNAVAILABLE, Some(viewer), "Not launched", "The launch could not be started. Nothing was sent; try again in a moment.")
        }
    }
}

/// An error and every source under it, for the log: an SDK error's own text is only "service
/// error", its cause is below.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

pub async fn upload_form(State(state): State<AppState>, Path(id): Path<String>, who: SignedIn) -> Response {
    if !who.account.may_manage_campaigns() {
        return not_allowed(&who.viewer);
    }
    let campaign = match find_campaign(&state, &id, &who.viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    html(StatusCode::OK, workspace::upload_page(&who.viewer, &campaign, None, state.launcher.is_some()))
}

/// Takes the multipart form (`csrf`, `file`, `sheet`), keeps the file and sends the browser to
/// its dry run.
#[cfg(not(target_arch = "wasm32"))]
pub async fn upload(State(state): State<AppState>, Path(id): Path<String>, headers: axum::http::HeaderMap, mut form: axum::extract::Multipart) -> Response {
    let config = match super::config(&state) {
        Ok(c) => c.clone(),
        Err(r) => return r,
    };
    let Some((account, viewer, session)) = super::signed_in(&config, &state, &headers).await else {
        return message(StatusCode::FORBIDDEN, None, "Signed out", "Your session has ended. Sign in again and upload the file again.");
    };
    let (mut csrf, mut file, mut sheet) = (String::new(), None, None);
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_owned();
                let read = field.bytes().await;
                match (name.as_str(), read) {
                    ("csrf", Ok(bytes)) => csrf = String::from_utf8_lossy(&bytes).into_owned(),
                    ("file", Ok(bytes)) => file = Some(bytes),
                    ("sheet", Ok(bytes)) => sheet = Some(String::from_utf8_lossy(&bytes).trim().to_owned()).filter(|s| !s.is_empty()),
                    (_, Ok(_)) => {}
                    (_, Err(e)) => return message(e.status(), Some(&viewer), "The upload did not arrive", &e.body_text()),
                }
            }
            Ok(None) => break,
            Err(e) => return message(e.status(), Some(&viewer), "The upload did not arrive", &e.body_text()),
        }
    }
    if !super::same_origin(&headers) || !config.keys.csrf_ok(&session, &csrf) {
        return message(StatusCode::FORBIDDEN, Some(&viewer), "Refused", "This form did not come from this dashboard. Reload the page and try again.");
    }
    if !account.may_manage_campaigns() {
        return not_allowed(&viewer);
    }
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let launcher = match launcher(&state, &viewer) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return html(StatusCode::UNPROCESSABLE_ENTITY, workspace::upload_page(&viewer, &campaign, Some("Choose a file to upload: this one was empty."), true));
    };
    match launcher.stage(&campaign.id, &file).await {
        Ok(launch) => {
            let sheet = sheet.map(|s| format!("?sheet={}", closeloop_views::dashboard::form_encode(&s))).unwrap_or_default();
            Redirect::to(&format!("/admin/c/{}/upload/{launch}{sheet}", campaign.id)).into_response()
        }
        Err(e) => launch_failed(e, &viewer),
    }
}

/// The Worker takes no uploads (its requests are 64 KiB and 50 subrequests at most).
#[cfg(target_arch = "wasm32")]
pub async fn upload(who: SignedIn) -> Response {
    message(StatusCode::NOT_FOUND, Some(&who.viewer), "No uploads here", "This address does not take uploads: open the dashboard at the launch function's address.")
}

/// `map:{header}` fields: the mapping chosen on the dry-run page.
fn chosen_mapping(fields: &BTreeMap<String, String>) -> Result<BTreeMap<String, ColumnTarget>, String> {
    let mut mapping = BTreeMap::new();
    for (name, value) in fields {
        if let Some(header) = name.strip_prefix("map:") {
            let target = ColumnTarget::parse(value).map_err(|e| format!("column {header:?}: {e}"))?;
            mapping.insert(header.to_owned(), target);
        }
    }
    Ok(mapping)
}

/// The campaign, the launcher and the staged file a dry run or a launch works on.
async fn staged(state: &AppState, viewer: &Viewer, id: &str, launch: &str) -> Result<(Campaign, Arc<dyn Launcher>, LaunchId, Vec<u8>), Response> {
    let campaign = find_campaign(state, id, viewer).await?;
    let launcher = launcher(state, viewer)?;
    let gone = || message(StatusCode::NOT_FOUND, Some(viewer), "No such upload", "That upload is not kept here. Upload the file again.");
    let launch = LaunchId::parse(launch).map_err(|_| gone())?;
    match launcher.staged(&campaign.id, &launch).await {
        Ok(Some(bytes)) => Ok((campaign, launcher, launch, bytes)),
        Ok(None) => Err(gone()),
        Err(e) => Err(launch_failed(e, viewer)),
    }
}


/// The dry run of a staged upload, with the mapping in the query (`map:{header}=field`) over
/// the campaign's and the suggestions.
pub async fn dry_run(State(state): State<AppState>, Path((id, launch)): Path<(String, String)>, RawQuery(query): RawQuery, who: SignedIn) -> Response {
    if !who.account.may_manage_campaigns() {
        return not_allowed(&who.viewer);
    }
    let (campaign, launcher, _, bytes) = match staged(&state, &who.viewer, &id, &launch).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query = query_map(query.as_deref());
    let mapping = match chosen_mapping(&query) {
        Ok(m) => m,
        Err(e) => return message(StatusCode::UNPROCESSABLE_ENTITY, Some(&who.viewer), "Unknown field", &e),
    };
    let sheet = query.get("sheet").map(String::as_str);
    let file = ContactsFile { bytes: &bytes, sheet, columns: (!mapping.is_empty()).then_some(&mapping) };
    let started = state.services.clock.now();
    match launcher.dry_run(&campaign, &file).await {
        Ok(report) => {
            let elapsed = state.services.clock.now().millis().saturating_sub(started.millis());
            html(StatusCode::OK, workspace::dry_run_page(&who.viewer, &campaign, &report, sheet, elapsed.max(0) as u64))
        }
        Err(e) => launch_failed(e, &who.viewer),
    }
}

/// Launches a staged upload with the mapping its dry run showed; with `remember`, the campaign
/// keeps that mapping for the next upload (a change-log entry like any edit).
pub async fn launch_upload(State(state): State<AppState>, Path((id, launch)): Path<(String, String)>, posted: CheckedForm) -> Response {
    let CheckedForm { account, viewer, fields, client } = posted;
    if !account.may_manage_campaigns() {
        return not_allowed(&viewer);
    }
    // The change log's revision before the campaign (see `remember_mapping`).
    let revision_seen = match CampaignId::parse(&id) {
        Ok(campaign) => match state.services.store.campaign_changes(&campaign, 1).await {
            Ok(latest) => latest.first().map_or(0, |c| c.revision),
            Err(e) => return store_failed(e, &viewer),
        },
        Err(_) => 0,
    };
    let (mut campaign, launcher, _, bytes) = match staged(&state, &viewer, &id, &launch).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mapping = match chosen_mapping(&fields) {
        Ok(m) => m,
        Err(e) => return message(StatusCode::UNPROCESSABLE_ENTITY, Some(&viewer), "Unknown field", &e),
    };
    if fields.contains_key("remember") {
        if let Err(r) = remember_mapping(&state, &viewer, &account.name, &mut campaign, &mapping, revision_seen).await {
            return r;
        }
    }
    let file = ContactsFile { bytes: &bytes, sheet: fields.get("sheet").map(String::as_str), columns: (!mapping.is_empty()).then_some(&mapping) };
    match launcher.launch(&campaign, &format!("dashboard upload by {}", account.name), &file).await {
        Ok(job) => {
            audit_or_log(&state, &account.name, &client, AuditAction::CampaignLaunched, &format!("{}: launch {}", campaign.id, job.id)).await;
            Redirect::to(&format!("/admin/c/{}?launch={}#launches-h", campaign.id, job.id)).into_response()
        }
        Err(e) => launch_failed(e, &viewer),
    }
}

/// Stores the chosen mapping as the campaign's `[columns]`, unless that changes nothing, as the
/// revision after `revision_seen`, which was read before `campaign`: a save in between makes
/// this one conflict instead of undoing it.
async fn remember_mapping(
    state: &AppState,
    viewer: &Viewer,
    by: &str,
    campaign: &mut Campaign,
    mapping: &BTreeMap<String, ColumnTarget>,
    revision_seen: u32,
) -> Result<(), Response> {
    let before = campaign.clone();
    // One entry per column, whatever the header's case or spacing was before.
    for (header, target) in mapping {
        let key = closeloop_core::import::header_key(header);
        campaign.columns.retain(|h, _| closeloop_core::import::header_key(h) != key);
        campaign.columns.insert(header.clone(), *target);
    }
    if *campaign == before || campaign.validate().is_err() {
        *campaign = before;
        return Ok(());
    }
    let store = &state.services.store;
    let Some(revision) = revision_seen.checked_add(1) else {
        return Err(message(StatusCode::CONFLICT, Some(viewer), "Not remembered", "The campaign's change log is full. Nothing was launched."));
    };
    let change = CampaignChange::new(ChangeKind::Edited, revision, by, state.services.clock.now(), Some(&before), campaign);
    match store.save_campaign(campaign, &change, None).await {
        Ok(true) => Ok(()),
        // Someone saved the settings meanwhile: launch with their campaign, not over it.
        Ok(false) => Err(message(StatusCode::CONFLICT, Some(viewer), "Changed meanwhile", "Someone saved the campaign's settings while you checked the file. Nothing was launched: open the upload again to check it against their settings.")),
        Err(e) => Err(store_failed(e, viewer)),
    }
}
