//! `POST /api/v1/invitations`: a CRM creates and sends one invitation. Errors are JSON with a
//! code a program can branch on and a message a person can act on.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use closeloop_core::model::{Contact, Email, Locale, Phone};
use closeloop_core::Timestamp;
use closeloop_core::ports::CreateOutcome;
use closeloop_core::CampaignId;
use closeloop_core::{rules, Campaign};
use closeloop_functions::launch::{invite_one, new_invitation, InviteError};

use crate::AppState;

/// A JSON API error: `{"error": {"code", "message"}}`.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = Json(json!({ "error": { "code": code, "message": message.into() } }));
    if status == StatusCode::UNAUTHORIZED {
        return (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
    }
    (status, body).into_response()
}

/// One contact (`contact`) or a batch (`contacts`, at most [`MAX_BATCH`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvitationRequest {
    campaign_id: String,
    #[serde(default)]
    touchpoint: Option<String>,
    contact: Option<ContactRequest>,
    contacts: Option<Vec<ContactRequest>>,
    /// Not before this time (RFC 3339, e.g. "2026-12-02T16:00:00+01:00").
    #[serde(default)]
    send_at: Option<String>,
    /// Or this many minutes from now (two hours after the service visit: 120).
    #[serde(default)]
    delay_minutes: Option<u32>,
}

/// How far ahead an invitation may be asked to go: a survey about a visit asked a month later
/// asks about something else.
pub const MAX_DELAY_MINUTES: u32 = 30 * 24 * 60;

/// The time an invitation may go out, from `send_at` or `delay_minutes` (one of them at most);
/// a time already past means now.
fn send_after(request: &InvitationRequest, now: Timestamp) -> Result<Option<Timestamp>, Invalid> {
    let at = match (&request.send_at, request.delay_minutes) {
        (Some(_), Some(_)) => return Err(("invalid_send_time", "give send_at or delay_minutes, not both".into())),
        (None, None) => return Ok(None),
        (None, Some(minutes)) if minutes > MAX_DELAY_MINUTES => {
            return Err(("invalid_send_time", format!("delay_minutes must be at most {MAX_DELAY_MINUTES} (30 days)")))
        }
        (None, Some(minutes)) => Timestamp::from_millis(now.millis() + i64::from(minutes) * 60_000),
        (Some(text), None) => Timestamp::parse_rfc3339(text).map_err(|e| ("invalid_send_time", format!("send_at: {e}")))?,
    };
    if at.millis() > now.millis() + i64::from(MAX_DELAY_MINUTES) * 60_000 {
        return Err(("invalid_send_time", "send_at must be within 30 days".into()));
    }
    Ok((at > now).then_some(at))
}

/// Keeps one request's work (and a Worker's subrequests) bounded.
pub const MAX_BATCH: usize = 100;

/// Fields arrive as plain strings and are validated one by one, so each error names its field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactRequest {
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    company: Option<String>,
    segment: Option<String>,
    store: Option<String>,
    owner_email: Option<String>,
    touchpoint: Option<String>,
    locale: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// A rejected contact: the error code and a message naming the field.
type Invalid = (&'static str, String);

fn contact_from(request: ContactRequest, touchpoint: Option<String>) -> Result<Contact, Invalid> {
    let invalid = |field: &str, e: closeloop_core::ContactError| ("invalid_field", format!("contact.{field}: {e}"));
    let email = non_empty(request.email).map(|v| Email::parse(&v)).transpose().map_err(|e| invalid("email", e))?;
    let phone = non_empty(request.phone).map(|v| Phone::parse(&v)).transpose().map_err(|e| invalid("phone", e))?;
    let owner_email = non_empty(request.owner_email).map(|v| Email::parse(&v)).transpose().map_err(|e| invalid("owner_email", e))?;
    let locale = match non_empty(request.locale) {
        Some(l) => Some(Locale::parse(&l).ok_or_else(|| ("invalid_field", format!("contact.locale: {l:?} is not one of en, sv, da")))?),
        None => None,
    };
    let contact = Contact {
        email,
        phone,
        first_name: non_empty(request.first_name),
        last_name: non_empty(request.last_name),
        company: non_empty(request.company),
        segment: non_empty(request.segment),
        store: non_empty(request.store),
        owner_email,
        touchpoint: non_empty(request.touchpoint).or(touchpoint),
        locale,
        properties: request.properties,
    }
    .cleaned();
    contact.validate().map_err(|e| ("invalid_contact", format!("contact: {e}")))?;
    Ok(contact)
}

/// Checks the bearer token of an API request. Compares hashes, so the comparison takes the same
/// time however much of a guess is right.
pub fn authorised(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(expected) = &state.api_token_sha256 else {
        return Err(error(StatusCode::UNAUTHORIZED, "api_disabled", "the invitation API is disabled: start closeloop with CLOSELOOP_API_TOKEN set"));
    };
    bearer_matches(expected, headers)
}

/// The people endpoints' own token.
fn authorised_for_people(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(expected) = &state.people_token_sha256 else {
        return Err(error(StatusCode::UNAUTHORIZED, "people_api_disabled", "the people API is disabled: set CLOSELOOP_PEOPLE_API_TOKEN (PEOPLE_API_TOKEN on AWS and the Worker)"));
    };
    bearer_matches(expected, headers)
}

fn bearer_matches(expected: &[u8; 32], headers: &HeaderMap) -> Result<(), Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "unauthorized", "send the API token as: Authorization: Bearer <token>"))?;
    let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
    if digest.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        return Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "the API token is not valid"));
    }
    Ok(())
}

pub async fn create_invitation(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorised(&state, &headers) {
        return response;
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as Content-Type: application/json");
    }
    let request: InvitationRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) if e.is_data() => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e.to_string()),
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {e}")),
    };
    let Ok(campaign_id) = CampaignId::parse(&request.campaign_id) else {
        return error(StatusCode::NOT_FOUND, "unknown_campaign", format!("no campaign {:?}", request.campaign_id));
    };
    let services = &state.services;
    let campaign = match services.store.campaign(&campaign_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return error(StatusCode::NOT_FOUND, "unknown_campaign", format!("no campaign {campaign_id:?}")),
        Err(e) => {
            log_error!("reading the campaign failed: {e}");
            return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later");
        }
    };
    let send_at = match send_after(&request, services.clock.now()) {
        Ok(at) => at,
        Err((code, message)) => return error(StatusCode::UNPROCESSABLE_ENTITY, code, message),
    };
    let touchpoint = non_empty(request.touchpoint);
    let contact = match (request.contact, request.contacts) {
        (Some(contact), None) => contact,
        (None, Some(contacts)) => return invite_batch(&state, &campaign, contacts, touchpoint, send_at).await,
        _ => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", "send either \"contact\" or \"contacts\""),
    };
    let contact = match contact_from(contact, touchpoint) {
        Ok(c) => c,
        Err((code, message)) => return error(StatusCode::UNPROCESSABLE_ENTITY, code, message),
    };
    match invite_one(services.store.as_ref(), &campaign, contact, services.clock.now(), send_at).await {
        Ok((CreateOutcome::Created, invitation)) => (
            StatusCode::CREATED,
            Json(json!({
                "status": "created",
                "invitation_id": invitation.id,
                "channel": invitation.channel,
                "survey_url": services.links.survey(&invitation.token),
                "send_at": invitation.send_after.map(|at| at.rfc3339_in(&campaign.zone())),
            })),
        )
            .into_response(),
        // Not errors: the CRM did nothing wrong, the contact is just not to be asked now.
        Ok((skipped, _)) => (StatusCode::OK, Json(json!({ "status": "skipped", "reason": skipped }))).into_response(),
        Err(InviteError::Contact(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_contact", format!("contact: {e}")),
        Err(InviteError::Function(e)) => {
            log_error!("creating the invitation failed: {e}");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later")
        }
    }
}

/// A batch answers 200 with one result per contact, in order: a bad contact is reported and the
/// others go on, as with a CSV.
async fn invite_batch(state: &AppState, campaign: &Campaign, contacts: Vec<ContactRequest>, touchpoint: Option<String>, send_at: Option<Timestamp>) -> Response {
    if contacts.is_empty() || contacts.len() > MAX_BATCH {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", format!("\"contacts\" must hold 1 to {MAX_BATCH} contacts"));
    }
    let services = &state.services;
    let now = services.clock.now();
    let mut results: Vec<serde_json::Value> = Vec::with_capacity(contacts.len());
    let mut invitations = Vec::new();
    let mut positions = Vec::new();
    for (index, request) in contacts.into_iter().enumerate() {
        match contact_from(request, touchpoint.clone()).and_then(|c| new_invitation(campaign, c, now).map_err(|e| ("invalid_contact", format!("contact: {e}")))) {
            Ok(mut invitation) => {
                if let Some(at) = send_at {
                    invitation.send_after = Some(at);
                    invitation.next_reminder_at = rules::first_reminder_at(&campaign.reminders, at);
                }
                positions.push(index);
                invitations.push(invitation);
                results.push(serde_json::Value::Null);
            }
            Err((code, message)) => results.push(json!({ "index": index, "status": "invalid", "error": { "code": code, "message": message } })),
        }
    }
    let outcomes = match services.store.create_invitations(&invitations, rules::throttle_since(campaign, now)).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            log_error!("creating invitations failed: {e}");
            return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later");
        }
    };
    for ((index, invitation), outcome) in positions.into_iter().zip(&invitations).zip(outcomes) {
        results[index] = match outcome {
            CreateOutcome::Created => json!({
                "index": index,
                "status": "created",
                "invitation_id": invitation.id,
                "channel": invitation.channel,
                "survey_url": services.links.survey(&invitation.token),
            }),
            skipped => json!({ "index": index, "status": "skipped", "reason": skipped }),
        };
    }
    (StatusCode::OK, Json(json!({ "results": results }))).into_response()
}

/// `DELETE /api/v1/invitations/{id}`: cancels an invitation that has not gone out (the order was
/// returned, the visit called off). It takes the invitation's own send key, which every send
/// claims first, so no dispatcher, retry or release of held invitations can send it after this;
/// its reminders stop. 200 `cancelled`; the same again is 200 too; 409 `already_sent` when it
/// went out first. Four store calls at most, on the Worker too.
pub async fn cancel_invitation(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = authorised(&state, &headers) {
        return response;
    }
    let unavailable = |e: closeloop_core::ports::StoreError| {
        tracing::error!(error = %e, "cancelling an invitation failed");
        error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later")
    };
    let well_formed = !id.is_empty() && id.len() <= 80 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let id = closeloop_core::model::InvitationId(id);
    let store = &state.services.store;
    let invitation = match well_formed {
        true => match store.invitation(&id).await {
            Ok(found) => found,
            Err(e) => return unavailable(e),
        },
        false => None,
    };
    let Some(invitation) = invitation else {
        return error(StatusCode::NOT_FOUND, "unknown_invitation", "no invitation has this id");
    };
    let now = state.services.clock.now();
    let cancelled = Json(json!({ "status": "cancelled", "invitation_id": id.0 }));
    match store.claim_send(&format!("invitation:{id}"), now).await {
        // Nothing sent it, and now nothing will: mark it cancelled and stop its reminders. (Cut
        // short before the mark, a retry answers `already_sent` for an invitation that never
        // went out: the safe side of that window; marking first would risk the opposite.)
        Ok(true) => {
            if let Err(e) = store.claim_send(&format!("cancelled:{id}"), now).await {
                return unavailable(e);
            }
            match store.reminder_sent(&id, invitation.reminders_sent, None).await {
                Ok(()) => (StatusCode::OK, cancelled).into_response(),
                Err(e) => unavailable(e),
            }
        }
        // Taken before: by a cancel (the mark is there) or by the send.
        Ok(false) => match store.claim_send(&format!("cancelled:{id}"), now).await {
            Ok(false) => (StatusCode::OK, cancelled).into_response(),
            Ok(true) => match store.release_send(&format!("cancelled:{id}")).await {
                Ok(()) => error(StatusCode::CONFLICT, "already_sent", "the invitation went out before it could be cancelled"),
                Err(e) => unavailable(e),
            },
            Err(e) => unavailable(e),
        },
        Err(e) => unavailable(e),
    }
}

/// A person request's body: `{"email": "..."}` or `{"phone": "..."}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonRequest {
    email: Option<String>,
    phone: Option<String>,
}

fn person_unavailable(e: closeloop_core::ports::StoreError) -> Response {
    log_error!("a person request failed: {e}");
    error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later")
}

/// The API's entry in the audit log, written before the data is read or erased.
async fn audit_person(
    state: &AppState,
    headers: &HeaderMap,
    action: closeloop_core::audit::AuditAction,
    person: &closeloop_core::privacy::Person,
) -> Result<(), closeloop_core::ports::StoreError> {
    let subject = closeloop_functions::privacy::pseudonym(state.services.store.as_ref(), person).await?;
    let client = state.client_of(headers);
    let entry = closeloop_core::audit::AuditEntry::new(state.services.clock.now(), "api", action, &subject, Some(&client));
    state.services.store.append_audit(&entry).await
}

fn person_from(email: Option<&str>, phone: Option<&str>) -> Result<closeloop_core::privacy::Person, Response> {
    closeloop_core::privacy::Person::parse(email, phone).map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_person", e.to_string()))
}

/// `GET /api/v1/people?email=` (or `?phone=`): everything held about the person, as JSON
/// (`core::privacy::PersonExport`). On the Worker a person with more invitations than one
/// request reads gets 409 `too_many_invitations`, with the count.
pub async fn person_export(State(state): State<AppState>, headers: HeaderMap, axum::extract::RawQuery(query): axum::extract::RawQuery) -> Response {
    if let Err(response) = authorised_for_people(&state, &headers) {
        return response;
    }
    let fields: BTreeMap<String, String> = query.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let person = match person_from(fields.get("email").map(String::as_str), fields.get("phone").map(String::as_str)) {
        Ok(person) => person,
        Err(response) => return response,
    };
    let store = state.services.store.as_ref();
    if let Err(e) = audit_person(&state, &headers, closeloop_core::audit::AuditAction::PersonExported, &person).await {
        return person_unavailable(e);
    }
    let (ids, keys) = match closeloop_functions::privacy::find(store, &person).await {
        Ok(found) => found,
        Err(e) => return person_unavailable(e),
    };
    if let Some(limit) = state.limits.person_invitations.filter(|limit| ids.len() > *limit) {
        let text = format!("the person has {} invitations; this runtime reads {limit} in one request: use the launch function's API", ids.len());
        return error(StatusCode::CONFLICT, "too_many_invitations", text);
    }
    match closeloop_functions::privacy::export_found(store, &person, &ids, &keys, state.services.clock.now()).await {
        Ok(export) => crate::admin::people_json_response(&export),
        Err(e) => person_unavailable(e),
    }
}

/// `POST /api/v1/people/erase` with `{"email": ...}`: erases the person (`core::privacy` says
/// what goes and what stays). 200 with the counts when done, the same again when repeated;
/// 202 with `remaining` when a bounded runtime (the Worker) erased part: call again.
pub async fn person_erase(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorised_for_people(&state, &headers) {
        return response;
    }
    let request: PersonRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_json", format!("body: {e}")),
    };
    let person = match person_from(request.email.as_deref(), request.phone.as_deref()) {
        Ok(person) => person,
        Err(response) => return response,
    };
    let at = state.services.clock.now();
    if let Err(e) = audit_person(&state, &headers, closeloop_core::audit::AuditAction::PersonErased, &person).await {
        return person_unavailable(e);
    }
    match closeloop_functions::privacy::erase_some(state.services.store.as_ref(), &person, at, state.limits.person_erasures).await {
        Ok(report) => {
            let status = if report.remaining > 0 { StatusCode::ACCEPTED } else { StatusCode::OK };
            (status, Json(json!({ "status": if report.remaining > 0 { "partial" } else { "erased" }, "report": report }))).into_response()
        }
        Err(e) => person_unavailable(e),
    }
}
