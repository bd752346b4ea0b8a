//! The audit log for admins: a page at a time, newest first, and the whole log as CSV.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use closeloop_core::accounts::Role;
use closeloop_core::audit::AuditAction;
use closeloop_core::time::Zone;
use closeloop_views::audit as views;

use super::{audit, html, message, query_map, store_failed, SignedIn};
use crate::AppState;

/// Entries one page shows.
const PER_PAGE: usize = 100;
/// Entries one read of the CSV asks for.
const PER_READ: usize = 500;

/// A page's `next` as the stores write it: SQLite's sequence number (digits), or DynamoDB's
/// sort key (15 digits, `#`, 12 digits, `#`, 8 hex digits).
fn well_formed_cursor(cursor: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !cursor.is_empty() && cursor.len() <= 19 && cursor.bytes().all(|b| b.is_ascii_digit()) {
        return cursor.parse::<i64>().is_ok();
    }
    let parts: Vec<&str> = cursor.split('#').collect();
    parts.len() == 3 && digits(parts[0], 15) && digits(parts[1], 12) && parts[2].len() == 8 && parts[2].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The reader's zone, else the first campaign's: the log belongs to no campaign.
async fn zone(state: &AppState, who: &SignedIn) -> Zone {
    if let Some(zone) = who.viewer.time_zone.clone() {
        return zone;
    }
    match state.services.store.campaigns().await {
        Ok(campaigns) => campaigns.first().map_or_else(Zone::utc, |c| c.zone()),
        Err(_) => Zone::utc(),
    }
}

pub async fn audit_log(State(state): State<AppState>, RawQuery(query): RawQuery, who: SignedIn) -> Response {
    if who.account.role != Role::Admin {
        return message(StatusCode::FORBIDDEN, Some(&who.viewer), "Not allowed", "Only admins read the audit log.");
    }
    let q = query_map(query.as_deref());
    let before = q.get("before");
    if before.is_some_and(|b| !well_formed_cursor(b)) {
        return message(StatusCode::BAD_REQUEST, Some(&who.viewer), "No such page", "That page of the log does not exist: start again from the newest entries.");
    }
    let page = match state.services.store.audit_log(before.map(String::as_str), PER_PAGE).await {
        Ok(page) => page,
        Err(closeloop_core::ports::StoreError::Rejected(_)) => {
            return message(StatusCode::BAD_REQUEST, Some(&who.viewer), "No such page", "That page of the log does not exist: start again from the newest entries.")
        }
        Err(e) => return store_failed(e, &who.viewer),
    };
    let older = page.next.map(|next| form_urlencoded::Serializer::new(String::new()).append_pair("before", &next).finish());
    let zone = zone(&state, &who).await;
    html(StatusCode::OK, views::audit_page(&who.viewer, &page.entries, &zone, older))
}

/// The whole log. Read before the first byte is sent, so a log larger than one request may read
/// (the Worker's budget) is refused whole instead of ending early.
pub async fn audit_csv(State(state): State<AppState>, who: SignedIn) -> Response {
    if who.account.role != Role::Admin {
        return message(StatusCode::FORBIDDEN, Some(&who.viewer), "Not allowed", "Only admins read the audit log.");
    }
    if let Err(e) = audit(&state, &who.account.name, &who.client, AuditAction::AuditLogExported, "").await {
        return store_failed(e, &who.viewer);
    }
    let zone = zone(&state, &who).await;
    let mut reads_left = state.limits.row_reads;
    let mut body = views::audit_csv_header();
    let mut before: Option<String> = None;
    loop {
        if reads_left == Some(0) {
            return message(
                StatusCode::CONFLICT,
                Some(&who.viewer),
                "The log is too long to read here",
                "It has more entries than this runtime reads in one request. Download it from the dashboard on the launch function.",
            );
        }
        reads_left = reads_left.map(|left| left - 1);
        let page = match state.services.store.audit_log(before.as_deref(), PER_READ).await {
            Ok(page) => page,
            Err(e) => return store_failed(e, &who.viewer),
        };
        body.push_str(&views::audit_csv_rows(&page.entries, &zone));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"audit-log.csv\""),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("\u{feff}{body}"),
    )
        .into_response()
}
