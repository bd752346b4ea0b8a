//! One person's data, for admins: look up, read, download as JSON, erase (GDPR Art. 15, 17).
//! Reads per request on the Worker stay within its budget: a person with more invitations than
//! `ReadLimits::person_invitations` is exported by the CLI or the launch function's dashboard,
//! and erased in several presses of the button, each erasing that many.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use closeloop_core::accounts::Role;
use closeloop_core::privacy::{Person, PersonExport};
use closeloop_functions::privacy;
use closeloop_views::dashboard::Viewer;
use closeloop_views::people;

use super::{audit, html, message, query_map, store_failed, CheckedForm, SignedIn};
use closeloop_core::audit::AuditAction;
use crate::AppState;

fn not_allowed(viewer: &Viewer) -> Response {
    message(StatusCode::FORBIDDEN, Some(viewer), "Not allowed", "Only admins look people up and erase them.")
}

/// The export, or the page that says why there is none. Nothing is shown unless the audit log
/// took its entry first.
async fn read_export(state: &AppState, who: &SignedIn, person: &Person) -> Result<PersonExport, Response> {
    let viewer = &who.viewer;
    let store = state.services.store.as_ref();
    let subject = privacy::pseudonym(store, person).await.map_err(|e| store_failed(e, viewer))?;
    audit(state, &who.account.name, &who.client, AuditAction::PersonExported, &subject).await.map_err(|e| store_failed(e, viewer))?;
    let (ids, keys) = privacy::find(store, person).await.map_err(|e| store_failed(e, viewer))?;
    if let Some(limit) = state.limits.person_invitations.filter(|limit| ids.len() > *limit) {
        let text = format!(
            "{} has {} invitations; this runtime reads {limit} in one request. Export them with `closeloop person export` or from the dashboard on the launch function.",
            person.as_str(),
            ids.len()
        );
        return Err(message(StatusCode::CONFLICT, Some(viewer), "Too many invitations to read here", &text));
    }
    privacy::export_found(store, person, &ids, &keys, state.services.clock.now()).await.map_err(|e| store_failed(e, viewer))
}

fn parse_person(fields: &std::collections::BTreeMap<String, String>) -> Option<Result<Person, closeloop_core::privacy::PersonError>> {
    let email = fields.get("email").map(String::as_str);
    let phone = fields.get("phone").map(String::as_str);
    if email.is_none_or(|e| e.trim().is_empty()) && phone.is_none_or(|p| p.trim().is_empty()) {
        return None;
    }
    Some(Person::parse(email, phone))
}

/// `GET /admin/people`: the look-up form; with `?email=` or `?phone=`, the person's data.
pub async fn people(State(state): State<AppState>, RawQuery(query): RawQuery, who: SignedIn) -> Response {
    if who.account.role != Role::Admin {
        return not_allowed(&who.viewer);
    }
    let fields = query_map(query.as_deref());
    let typed = |name: &str| fields.get(name).map(|v| v.chars().take(254).collect::<String>()).unwrap_or_default();
    let person = match parse_person(&fields) {
        None => return html(StatusCode::OK, people::search_page(&who.viewer, "", "", None)),
        Some(Err(e)) => return html(StatusCode::BAD_REQUEST, people::search_page(&who.viewer, &typed("email"), &typed("phone"), Some(&e.to_string()))),
        Some(Ok(person)) => person,
    };
    let export = match read_export(&state, &who, &person).await {
        Ok(export) => export,
        Err(response) => return response,
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair(if matches!(person, Person::Email(_)) { "email" } else { "phone" }, person.as_str())
        .finish();
    html(StatusCode::OK, people::person_page(&who.viewer, &export, &query))
}

/// `GET /admin/people.json?email=`: the same data as a download.
pub async fn people_json(State(state): State<AppState>, RawQuery(query): RawQuery, who: SignedIn) -> Response {
    if who.account.role != Role::Admin {
        return not_allowed(&who.viewer);
    }
    let person = match parse_person(&query_map(query.as_deref())) {
        Some(Ok(person)) => person,
        Some(Err(e)) => return message(StatusCode::BAD_REQUEST, Some(&who.viewer), "Not a person", &e.to_string()),
        None => return message(StatusCode::BAD_REQUEST, Some(&who.viewer), "Not a person", "give an email address or a phone number"),
    };
    match read_export(&state, &who, &person).await {
        Ok(export) => json_download(&export),
        Err(response) => response,
    }
}

pub fn json_download(export: &PersonExport) -> Response {
    match serde_json::to_string_pretty(export) {
        Ok(body) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"person.json\""),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            log_error!("a person export did not serialise: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the export could not be written").into_response()
        }
    }
}

/// `POST /admin/people/erase`: erases the person once the box is ticked.
pub async fn erase_person(State(state): State<AppState>, form: CheckedForm) -> Response {
    let CheckedForm { account, viewer, fields, client } = form;
    if account.role != Role::Admin {
        return not_allowed(&viewer);
    }
    let person = match parse_person(&fields) {
        Some(Ok(person)) => person,
        Some(Err(e)) => return html(StatusCode::BAD_REQUEST, people::search_page(&viewer, "", "", Some(&e.to_string()))),
        None => return html(StatusCode::BAD_REQUEST, people::search_page(&viewer, "", "", Some("give an email address or a phone number"))),
    };
    if fields.get("confirm").map(String::as_str) != Some("yes") {
        return message(StatusCode::BAD_REQUEST, Some(&viewer), "Not erased", "Tick the box to confirm: an erasure cannot be undone.");
    }
    let at = state.services.clock.now();
    // Logged before it happens: an erasure cut short is still on record, never the reverse.
    let store = state.services.store.as_ref();
    let logged = match privacy::pseudonym(store, &person).await {
        Ok(subject) => audit(&state, &account.name, &client, AuditAction::PersonErased, &subject).await,
        Err(e) => Err(e),
    };
    if let Err(e) = logged {
        return store_failed(e, &viewer);
    }
    match privacy::erase_some(state.services.store.as_ref(), &person, at, state.limits.person_erasures).await {
        Ok(report) if report.remaining > 0 => {
            let text = format!(
                "{} invitation(s) erased, {} to go: this runtime erases {} a request. Press erase again.",
                report.invitations_erased,
                report.remaining,
                state.limits.person_erasures.unwrap_or(report.invitations_erased)
            );
            message(StatusCode::ACCEPTED, Some(&viewer), "Erasure under way", &text)
        }
        Ok(report) => html(StatusCode::OK, people::erased_page(&viewer, person.as_str(), &report)),
        Err(e) => store_failed(e, &viewer),
    }
}
