//! The audit log as admins read it: a page newest first, and the whole log as CSV.

use serde::Serialize;

use closeloop_core::audit::AuditEntry;
use closeloop_core::time::Zone;

use crate::dashboard::Viewer;
use crate::export::quoted;
use crate::render::{render_admin, RenderError};

#[derive(Debug, Serialize)]
struct AuditPageView<'a> {
    title: &'static str,
    viewer: &'a Viewer,
    zone: &'a str,
    entries: Vec<EntryView<'a>>,
    older: Option<String>,
}

#[derive(Debug, Serialize)]
struct EntryView<'a> {
    at: String,
    who: &'a str,
    action: &'static str,
    subject: &'a str,
    client: &'a str,
}

/// One page, in `zone`; `older` is the query of the next page, if there is one.
pub fn audit_page(viewer: &Viewer, entries: &[AuditEntry], zone: &Zone, older: Option<String>) -> Result<String, RenderError> {
    let entries = entries
        .iter()
        .map(|e| EntryView { at: e.at.display_in(zone), who: &e.who, action: e.action.as_str(), subject: &e.subject, client: e.client.as_deref().unwrap_or("") })
        .collect();
    render_admin("admin/audit.html", &AuditPageView { title: "Audit log", viewer, zone: zone.name(), entries, older })
}

/// The CSV's first line.
pub fn audit_csv_header() -> String {
    "at,who,action,subject,client\r\n".to_owned()
}

/// Entries as CSV rows: the time with its offset in `zone`, every cell quoted and formula-safe.
pub fn audit_csv_rows(entries: &[AuditEntry], zone: &Zone) -> String {
    entries
        .iter()
        .map(|e| {
            let cells = [e.at.rfc3339_in(zone), e.who.clone(), e.action.as_str().to_owned(), e.subject.clone(), e.client.clone().unwrap_or_default()];
            cells.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(",") + "\r\n"
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use closeloop_core::audit::AuditAction;
    use closeloop_core::Timestamp;

    #[test]
    fn a_forged_who_cannot_break_a_row_or_start_a_formula() {
        let entry = AuditEntry::new(Timestamp::from_millis(0), "=HYPERLINK(\"x\")", AuditAction::SignInFailed, "", Some("1.2.3.4"));
        let row = audit_csv_rows(&[entry], &Zone::parse("Europe/Stockholm").unwrap());
        assert!(row.starts_with("\"1970-01-01T01:00:00+01:00\",\"'=HYPERLINK(\"\"x\"\")\","), "{row}");
        assert_eq!(row.matches("\r\n").count(), 1);
    }
}
