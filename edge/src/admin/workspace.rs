//! The campaign workspace: create, duplicate, import, edit, and the change log. Admins and
//! editors only. Reads per request, all bounded: a form page 0-2, a save 2-3 (the campaign, the
//! save's one transaction, and on a lost race the latest entry to say whose save won).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use closeloop_core::campaign_form::{CampaignForm, FieldError};
use closeloop_core::changelog::{CampaignChange, ChangeKind};
use closeloop_core::{Campaign, CampaignId};
use closeloop_views::dashboard::Viewer;
use closeloop_views::workspace::{self, FormMode};

use super::{audit_or_log, find_campaign, html, message, query_map, store_failed, CheckedForm, SignedIn};
use closeloop_core::audit::AuditAction;
use crate::AppState;

/// Change-log entries one page shows.
const CHANGES_SHOWN: usize = 50;

fn not_allowed(viewer: &Viewer) -> Response {
    message(StatusCode::FORBIDDEN, Some(viewer), "Not allowed", "Only admins and editors create and change campaigns.")
}

fn form_page(status: StatusCode, viewer: &Viewer, campaign: Option<&Campaign>, mode: &FormMode, form: &CampaignForm, errors: &[FieldError], notice: Option<&str>) -> Response {
    html(status, workspace::campaign_form_page(viewer, campaign, mode, form, errors, notice))
}

/// The new-campaign form, blank or (`?from=id`) filled in from another campaign.
pub async fn new_campaign_form(State(state): State<AppState>, RawQuery(query): RawQuery, who: SignedIn) -> Response {
    if !who.account.may_manage_campaigns() {
        return not_allowed(&who.viewer);
    }
    let Some(from) = query_map(query.as_deref()).remove("from") else {
        return form_page(StatusCode::OK, &who.viewer, None, &FormMode::New, &CampaignForm::blank(), &[], None);
    };
    let source = match find_campaign(&state, &from, &who.viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut form = CampaignForm::from_campaign(&source);
    // A copy needs an id of its own; the name says where it came from until someone renames it.
    form.id = String::new();
    form.name = format!("{} (copy)", source.name);
    form_page(StatusCode::OK, &who.viewer, None, &FormMode::Duplicate { from: source.id.to_string() }, &form, &[], None)
}

/// Saves a new campaign (made with the form, from another, or from a file) as revision 1.
pub async fn create_campaign(State(state): State<AppState>, posted: CheckedForm) -> Response {
    let CheckedForm { account, viewer, fields, client } = posted;
    if !account.may_manage_campaigns() {
        return not_allowed(&viewer);
    }
    let form = CampaignForm::from_fields(&fields);
    let (kind, mode) = match fields.get("kind").map(String::as_str) {
        Some("duplicated") => match fields.get("duplicate_of").and_then(|id| CampaignId::parse(id).ok()) {
            Some(from) => (ChangeKind::Duplicated { from: from.clone() }, FormMode::Duplicate { from: from.to_string() }),
            None => (ChangeKind::Created, FormMode::New),
        },
        Some("imported") => (ChangeKind::Imported, FormMode::FromFile),
        _ => (ChangeKind::Created, FormMode::New),
    };
    let campaign = match form.parse() {
        Ok(c) => c,
        Err(errors) => return form_page(StatusCode::UNPROCESSABLE_ENTITY, &viewer, None, &mode, &form, &errors, None),
    };
    let now = state.services.clock.now();
    let change = CampaignChange::new(kind, 1, &account.name, now, None, &campaign);
    // A draft until someone starts it: uploads and previews first, nothing sent.
    let draft = closeloop_core::lifecycle::CampaignStatus::draft(now, &account.name);
    match state.services.store.save_campaign(&campaign, &change, Some(&draft)).await {
        Ok(true) => {
            audit_or_log(&state, &account.name, &client, AuditAction::CampaignCreated, campaign.id.as_str()).await;
            Redirect::to(&format!("/admin/c/{}", campaign.id)).into_response()
        }
        Ok(false) => {
            let taken = FieldError { field: "id", message: format!("A campaign with the id {} exists already: choose another id.", campaign.id) };
            form_page(StatusCode::CONFLICT, &viewer, None, &mode, &form, &[taken], None)
        }
        Err(e) => store_failed(e, &viewer),
    }
}

/// The campaign's settings as the form, with the revision they are at.
pub async fn edit_campaign_form(State(state): State<AppState>, Path(id): Path<String>, who: SignedIn) -> Response {
    if !who.account.may_manage_campaigns() {
        return not_allowed(&who.viewer);
    }
    // The revision before the campaign: a save landing between the two reads then makes this
    // form's save conflict, instead of letting it write over that save unseen.
    let Ok(campaign_id) = CampaignId::parse(&id) else {
        return message(StatusCode::NOT_FOUND, Some(&who.viewer), "No such campaign", "There is no campaign with that id.");
    };
    let revision = match state.services.store.campaign_changes(&campaign_id, 1).await {
        Ok(latest) => latest.first().map_or(0, |c| c.revision),
        Err(e) => return store_failed(e, &who.viewer),
    };
    let campaign = match find_campaign(&state, &id, &who.viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    form_page(StatusCode::OK, &who.viewer, Some(&campaign), &FormMode::Edit { revision }, &CampaignForm::from_campaign(&campaign), &[], None)
}

/// Saves an edit over the revision its form showed; a save that lost to someone else's keeps
/// what this person typed on the page, unsaved, and says whose save won.
pub async fn update_campaign(State(state): State<AppState>, Path(id): Path<String>, posted: CheckedForm) -> Response {
    let CheckedForm { account, viewer, fields, client } = posted;
    if !account.may_manage_campaigns() {
        return not_allowed(&viewer);
    }
    let current = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut form = CampaignForm::from_fields(&fields);
    // The id is the campaign's for good: links, files and every stored item carry it.
    form.id = current.id.to_string();
    let Some(seen) = fields.get("revision").and_then(|r| r.parse::<u32>().ok()) else {
        return message(StatusCode::UNPROCESSABLE_ENTITY, Some(&viewer), "Nothing saved", "The form lacks the revision it was opened at. Reload the settings and try again.");
    };
    let mode = FormMode::Edit { revision: seen };
    let campaign = match form.parse() {
        Ok(c) => c,
        Err(errors) => return form_page(StatusCode::UNPROCESSABLE_ENTITY, &viewer, Some(&current), &mode, &form, &errors, None),
    };
    let Some(revision) = seen.checked_add(1) else {
        return message(StatusCode::UNPROCESSABLE_ENTITY, Some(&viewer), "Nothing saved", "The form's revision is not one this campaign has. Reload the settings and try again.");
    };
    let change = CampaignChange::new(ChangeKind::Edited, revision, &account.name, state.services.clock.now(), Some(&current), &campaign);
    if change.settings.is_empty() {
        return Redirect::to(&format!("/admin/c/{}", campaign.id)).into_response();
    }
    match state.services.store.save_campaign(&campaign, &change, None).await {
        Ok(true) => {
            audit_or_log(&state, &account.name, &client, AuditAction::CampaignEdited, campaign.id.as_str()).await;
            Redirect::to(&format!("/admin/c/{}/changes", campaign.id)).into_response()
        }
        Ok(false) => {
            let winner = match state.services.store.campaign_changes(&campaign.id, 1).await {
                Ok(latest) => latest.into_iter().next(),
                Err(e) => return store_failed(e, &viewer),
            };
            let notice = match winner {
                Some(w) => format!(
                    "{} saved this campaign at {} after you opened it. Nothing of yours was saved: your version is below. Open the settings again to see theirs, then make your change there.",
                    w.by,
                    w.at.display_in(&viewer.zone_for(&current))
                ),
                None => "Someone else saved this campaign after you opened it. Nothing of yours was saved: your version is below.".to_owned(),
            };
            form_page(StatusCode::CONFLICT, &viewer, Some(&current), &mode, &form, &[], Some(&notice))
        }
        Err(e) => store_failed(e, &viewer),
    }
}

pub async fn import_campaign_form(who: SignedIn) -> Response {
    if !who.account.may_manage_campaigns() {
        return not_allowed(&who.viewer);
    }
    html(StatusCode::OK, workspace::import_page(&who.viewer, "", None))
}

/// Reads a pasted campaign file by the file's rules (an unknown key is named with its line) and
/// shows its settings as the new-campaign form, to check and save.
pub async fn import_campaign(posted: CheckedForm) -> Response {
    let CheckedForm { account, viewer, fields, .. } = posted;
    if !account.may_manage_campaigns() {
        return not_allowed(&viewer);
    }
    let file = fields.get("file").map(String::as_str).unwrap_or("");
    match Campaign::from_toml(file) {
        Ok(campaign) => form_page(StatusCode::OK, &viewer, None, &FormMode::FromFile, &CampaignForm::from_campaign(&campaign), &[], None),
        Err(e) => html(StatusCode::UNPROCESSABLE_ENTITY, workspace::import_page(&viewer, file, Some(&e.to_string()))),
    }
}

/// Who changed the campaign's settings, what, and when. Two reads: the campaign and the log.
/// Deliveries shown on the webhooks page.
const DELIVERIES_SHOWN: usize = 50;

/// The webhook endpoints and their delivery log: admins and editors (the log names endpoints and
/// their failures). Reads: the campaign, one health item per webhook and chat channel (at most
/// 10 each), one page of the log.
pub async fn campaign_webhooks(State(state): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery, who: SignedIn) -> Response {
    if !who.account.may_manage_campaigns() {
        return not_allowed(&who.viewer);
    }
    let campaign = match find_campaign(&state, &id, &who.viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let store = &state.services.store;
    let keys: Vec<String> = campaign.webhooks.iter().map(|w| w.key()).chain(campaign.chat.iter().map(|c| c.key())).collect();
    let mut health = Vec::with_capacity(keys.len());
    for key in &keys {
        match store.webhook_health(&campaign.id, key).await {
            Ok(h) => health.push(h),
            Err(e) => return store_failed(e, &who.viewer),
        }
    }
    match store.webhook_log(&campaign.id, DELIVERIES_SHOWN + 1).await {
        Ok(mut deliveries) => {
            let more = deliveries.len() > DELIVERIES_SHOWN;
            deliveries.truncate(DELIVERIES_SHOWN);
            let redelivered = query.as_deref() == Some("redelivered=1");
            html(StatusCode::OK, workspace::webhooks_page(&who.viewer, &campaign, &health, &deliveries, more, redelivered))
        }
        Err(e) => store_failed(e, &who.viewer),
    }
}

/// Queues one delivery again, under its own webhook-id; a disabled endpoint is enabled by it.
pub async fn redeliver_webhook(State(state): State<AppState>, Path(id): Path<String>, posted: CheckedForm) -> Response {
    let CheckedForm { account, viewer, fields, client } = posted;
    if !account.may_manage_campaigns() {
        return not_allowed(&viewer);
    }
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let delivery = fields.get("id").map(String::as_str).unwrap_or_default();
    let found = closeloop_functions::webhooks::redeliver(state.services.store.as_ref(), &campaign.id, delivery, state.services.clock.now());
    match found.await {
        Ok(true) => {
            audit_or_log(&state, &account.name, &client, AuditAction::CampaignEdited, &format!("{}: webhook {delivery} redelivered", campaign.id)).await;
            Redirect::to(&format!("/admin/c/{}/webhooks?redelivered=1", campaign.id)).into_response()
        }
        Ok(false) => message(StatusCode::NOT_FOUND, Some(&viewer), "No such delivery", "That delivery is not in this campaign's log."),
        Err(closeloop_functions::FunctionError::Store(e)) => store_failed(e, &viewer),
        Err(e) => store_failed(closeloop_core::ports::StoreError::unavailable(e), &viewer),
    }
}

pub async fn campaign_changes(State(state): State<AppState>, Path(id): Path<String>, who: SignedIn) -> Response {
    if !who.account.may_manage_campaigns() {
        return not_allowed(&who.viewer);
    }
    let campaign = match find_campaign(&state, &id, &who.viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match state.services.store.campaign_changes(&campaign.id, CHANGES_SHOWN + 1).await {
        Ok(mut changes) => {
            let more = changes.len() > CHANGES_SHOWN;
            changes.truncate(CHANGES_SHOWN);
            html(StatusCode::OK, workspace::change_log_page(&who.viewer, &campaign, &changes, more))
        }
        Err(e) => store_failed(e, &who.viewer),
    }
}
