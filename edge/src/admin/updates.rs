//! "You said, we did" in the workspace: write an update, preview it per language with its
//! audience count and exclusions, send it. Admins and editors only. Sending is one write of the
//! update and one of its request event: the reactions (which have the mailer) send it.
//! Reads: the page 2-3 (the campaign, its updates and their click counters, the segment
//! counters); a preview adds the audience count, one read per page of rows (bounded on the
//! Worker by `ReadLimits::row_reads`).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use closeloop_core::audit::AuditAction;
use closeloop_core::counters::{Aggregates, View};
use closeloop_core::model::{Event, EventKind, InvitationId};
use closeloop_core::nps::Group;
use closeloop_core::updates::{clicks_bucket, AudienceCount, CampaignUpdate, UpdateAudience, UpdateId, UpdateProblem, UpdateText};
use closeloop_core::Campaign;
use closeloop_views::dashboard::Viewer;
use closeloop_views::workspace::{self, Choice, Composer, ComposerText, UpdateMailPreview, UpdatePreview};

use super::{audit_or_log, find_campaign, html, message, query_map, store_failed, CheckedForm, SignedIn};
use crate::AppState;

/// Updates the page lists.
const UPDATES_SHOWN: usize = 20;
/// Segment values offered as checkboxes.
const SEGMENTS_OFFERED: usize = 50;

fn not_allowed(viewer: &Viewer) -> Response {
    message(StatusCode::FORBIDDEN, Some(viewer), "Not allowed", "Only admins and editors write updates.")
}

const GROUPS: [(Group, &str); 3] = [(Group::Promoter, "Promoters (9-10)"), (Group::Passive, "Passives (7-8)"), (Group::Detractor, "Detractors (0-6)")];

/// The campaign's segment values (from its counters), for the audience checkboxes.
async fn segment_values(state: &AppState, campaign: &Campaign) -> Result<Vec<String>, closeloop_core::ports::StoreError> {
    let buckets = state.services.store.counter_buckets(&campaign.id, &View::Segments("segment").prefixes()).await?;
    let mut values: Vec<String> = Aggregates::from_buckets(buckets).segments("segment").into_iter().map(|s| s.value).collect();
    values.truncate(SEGMENTS_OFFERED);
    Ok(values)
}

/// The composer from a posted form (or blank: `fields` empty), and what it asks for.
fn read_composer(campaign: &Campaign, segments: &[String], fields: &BTreeMap<String, String>, id: &UpdateId) -> (Composer, BTreeMap<closeloop_core::Locale, UpdateText>, UpdateAudience) {
    let on = |name: &str| fields.get(name).is_some_and(|v| !v.is_empty());
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let mut texts = BTreeMap::new();
    let composer_texts = campaign
        .locales
        .iter()
        .map(|locale| {
            let code = locale.code();
            let (subject, body) = (field(&format!("subject_{code}")), field(&format!("body_{code}")));
            texts.insert(*locale, UpdateText { subject: subject.clone(), body: body.clone() });
            ComposerText { locale: code, subject, body }
        })
        .collect();
    let mut audience = UpdateAudience { non_respondents: on("non_respondents"), ..Default::default() };
    let groups = GROUPS
        .iter()
        .map(|(group, label)| {
            let name = format!("group_{}", group.as_str());
            let checked = on(&name);
            if checked {
                audience.groups.insert(*group);
            }
            Choice { name, label: (*label).to_owned(), checked }
        })
        .collect();
    // Checkboxes are named by position, so a theme or segment value never becomes a field name.
    let themes = campaign
        .themes
        .keys()
        .enumerate()
        .map(|(i, theme)| {
            let name = format!("theme_{i}");
            let checked = on(&name);
            if checked {
                audience.themes.insert(theme.clone());
            }
            Choice { name, label: theme.clone(), checked }
        })
        .collect();
    let segments = segments
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let name = format!("segment_{i}");
            let checked = on(&name);
            if checked {
                audience.segments.insert(value.clone());
            }
            Choice { name, label: value.clone(), checked }
        })
        .collect();
    (Composer { id: id.to_string(), texts: composer_texts, groups, themes, segments, non_respondents: audience.non_respondents }, texts, audience)
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    campaign: &Campaign,
    status: StatusCode,
    composer: &Composer,
    problems: &[UpdateProblem],
    preview: Option<&UpdatePreview>,
    notice: Option<&str>,
) -> Response {
    let store = &state.services.store;
    let updates = match store.updates(&campaign.id, UPDATES_SHOWN).await {
        Ok(u) => u,
        Err(e) => return store_failed(e, viewer),
    };
    let buckets: Vec<String> = updates.iter().map(|u| clicks_bucket(&u.id)).collect();
    let clicks = if buckets.is_empty() {
        BTreeMap::new()
    } else {
        match store.counter_buckets(&campaign.id, &buckets).await {
            Ok(c) => c,
            Err(e) => return store_failed(e, viewer),
        }
    };
    let listed: Vec<_> = updates.into_iter().map(|u| {
        let c = clicks.get(&clicks_bucket(&u.id)).cloned().unwrap_or_default();
        (u, c)
    }).collect();
    html(status, workspace::updates_page(viewer, campaign, composer, problems, preview, &listed, notice))
}

pub async fn updates_form(State(state): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery, who: SignedIn) -> Response {
    if !who.account.may_manage_campaigns() {
        return not_allowed(&who.viewer);
    }
    let campaign = match find_campaign(&state, &id, &who.viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let segments = match segment_values(&state, &campaign).await {
        Ok(s) => s,
        Err(e) => return store_failed(e, &who.viewer),
    };
    let draft = UpdateId::new(&campaign.id, &who.account.name, state.services.clock.now());
    let (composer, _, _) = read_composer(&campaign, &segments, &BTreeMap::new(), &draft);
    let notice = query_map(query.as_deref()).get("sent").map(|_| "Sent: the first mails are going out now, the rest within the next schedule runs.");
    page(&state, &who.viewer, &campaign, StatusCode::OK, &composer, &[], None, notice).await
}

/// "Preview" or "Send", from the composer.
pub async fn post_update(State(state): State<AppState>, Path(id): Path<String>, posted: CheckedForm) -> Response {
    let CheckedForm { account, viewer, fields, client } = posted;
    if !account.may_manage_campaigns() {
        return not_allowed(&viewer);
    }
    let campaign = match find_campaign(&state, &id, &viewer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let segments = match segment_values(&state, &campaign).await {
        Ok(s) => s,
        Err(e) => return store_failed(e, &viewer),
    };
    let now = state.services.clock.now();
    // The draft's id comes back with the form, so a form posted twice is one update.
    let draft = fields.get("id").and_then(|i| UpdateId::parse(i).ok()).unwrap_or_else(|| UpdateId::new(&campaign.id, &account.name, now));
    let (composer, texts, audience) = read_composer(&campaign, &segments, &fields, &draft);
    let mut update = match CampaignUpdate::compose(draft, &campaign, &account.name, now, texts, audience) {
        Ok(u) => u,
        Err(problems) => return page(&state, &viewer, &campaign, StatusCode::UNPROCESSABLE_ENTITY, &composer, &problems, None, None).await,
    };
    // With non-respondents each page also reads their send claims (up to four batch reads).
    let pages = state.limits.row_reads.map(|reads| if update.audience.non_respondents { (reads / 5).max(1) } else { reads });
    let (count, complete) = match closeloop_functions::updates::count_audience(state.services.store.as_ref(), &campaign, &update.audience, pages).await {
        Ok(c) => c,
        Err(closeloop_functions::FunctionError::Store(e)) => return store_failed(e, &viewer),
        Err(e) => return store_failed(closeloop_core::ports::StoreError::unavailable(e), &viewer),
    };
    if fields.get("action").map(String::as_str) != Some("send") {
        let preview = match previews(&state, &campaign, &update, count, complete) {
            Ok(p) => p,
            Err(e) => return message(StatusCode::INTERNAL_SERVER_ERROR, Some(&viewer), "The preview failed", &e.to_string()),
        };
        return page(&state, &viewer, &campaign, StatusCode::OK, &composer, &[], Some(&preview), None).await;
    }
    update.planned = count;
    let store = &state.services.store;
    match store.create_update(&update).await {
        Ok(_) => {}
        Err(e) => return store_failed(e, &viewer),
    }
    // Idempotent too: the event's id is the update's.
    let request = format!("update-{}", update.id);
    let event = Event {
        id: request.clone(),
        at: now,
        kind: EventKind::UpdateRequested { request_id: InvitationId(request), campaign_id: campaign.id.clone(), update_id: update.id.clone() },
    };
    if let Err(e) = store.append_event(&closeloop_core::changes::Change { event, campaign: campaign.id.clone(), deltas: Default::default() }).await {
        // The update is stored: the schedule sends it even without the request.
        log_error!("the update's request event was not written (the schedule sends it): {e}");
    }
    audit_or_log(&state, &account.name, &client, AuditAction::UpdateSent, &format!("{}: update {}", campaign.id, update.id)).await;
    Redirect::to(&format!("/admin/c/{}/updates?sent={}", campaign.id, update.id)).into_response()
}

/// Each campaign language's mail, filled in with a made-up contact and the preview token
/// (its links lead nowhere).
fn previews(state: &AppState, campaign: &Campaign, update: &CampaignUpdate, count: AudienceCount, complete: bool) -> Result<UpdatePreview, closeloop_views::render::RenderError> {
    use closeloop_views::preview;
    let now = state.services.clock.now();
    let mut mails = Vec::new();
    for locale in &campaign.locales {
        let Ok(invitation) = preview::sample_invitation(campaign, preview::sample_contact(campaign), *locale, now) else { continue };
        let rendered = closeloop_views::render::update_mail(campaign, &invitation, update, &state.services.links)?;
        let note = match update.text_for(*locale) {
            Some((used, _)) if used != *locale => Some(format!("No text in {}: these readers get the {} one.", locale.code(), used.code())),
            _ => None,
        };
        mails.push(UpdateMailPreview { locale: locale.code(), note, subject: rendered.subject, text: rendered.text, html: rendered.html });
    }
    Ok(UpdatePreview { count, complete, mails })
}
