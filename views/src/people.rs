//! The dashboard's person pages (admins only): look a person up by address or phone, read
//! everything held about them, download it as JSON, and erase it.

use serde::Serialize;

use closeloop_core::privacy::{ErasureReport, InvitationRecord, PersonExport};
use closeloop_core::time::Zone;

use crate::dashboard::Viewer;
use crate::render::{render_admin, RenderError};

#[derive(Debug, Serialize)]
struct PeoplePage<'a> {
    title: &'static str,
    viewer: &'a Viewer,
    email: &'a str,
    phone: &'a str,
    error: Option<&'a str>,
    person: Option<PersonView>,
    erased: Option<ErasedView<'a>>,
}

#[derive(Debug, Serialize)]
struct ErasedView<'a> {
    person: &'a str,
    invitations: usize,
}

#[derive(Debug, Serialize)]
struct PersonView {
    label: String,
    json_href: String,
    invitations: Vec<InvitationView>,
    suppressions: Vec<SuppressionView>,
}

#[derive(Debug, Serialize)]
struct InvitationView {
    campaign: String,
    invited_at: String,
    channel: &'static str,
    erased_at: Option<String>,
    fields: Vec<(String, String)>,
    answers: Vec<AnswerView>,
    case: Option<CaseView>,
    messages: Vec<(&'static str, String)>,
}

#[derive(Debug, Serialize)]
struct AnswerView {
    version: u32,
    at: String,
    score: u8,
    comment: Option<String>,
}

#[derive(Debug, Serialize)]
struct CaseView {
    status: &'static str,
    due: String,
    notes: Vec<(String, String, String)>,
    closed: Option<String>,
}

#[derive(Debug, Serialize)]
struct SuppressionView {
    what: String,
    reason: &'static str,
    at: String,
}

/// The look-up form, with what was typed and why it was refused.
pub fn search_page(viewer: &Viewer, email: &str, phone: &str, error: Option<&str>) -> Result<String, RenderError> {
    render_admin("admin/people.html", &PeoplePage { title: "People", viewer, email, phone, error, person: None, erased: None })
}

/// Everything held about the person, each time in its campaign's zone (or the reader's own).
pub fn person_page(viewer: &Viewer, export: &PersonExport, query: &str) -> Result<String, RenderError> {
    let zone_of = |record: &InvitationRecord| viewer.time_zone.clone().unwrap_or_else(|| Zone::parse(&record.time_zone).unwrap_or_else(|_| Zone::utc()));
    let invitations = export
        .invitations
        .iter()
        .map(|record| {
            let zone = zone_of(record);
            let contact = &record.contact;
            let mut fields: Vec<(String, String)> = [
                ("Email", contact.email.as_ref().map(|e| e.as_str().to_owned())),
                ("Phone", contact.phone.as_ref().map(|p| p.as_str().to_owned())),
                ("First name", contact.first_name.clone()),
                ("Last name", contact.last_name.clone()),
                ("Company", contact.company.clone()),
                ("Segment", contact.segment.clone()),
                ("Store", contact.store.clone()),
                ("Owner", contact.owner_email.as_ref().map(|e| e.as_str().to_owned())),
                ("Touchpoint", record.touchpoint.clone()),
            ]
            .into_iter()
            .filter_map(|(label, value)| Some((label.to_owned(), value?)))
            .collect();
            fields.extend(contact.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
            InvitationView {
                campaign: record.campaign_name.clone().unwrap_or_else(|| record.campaign.to_string()),
                invited_at: record.invited_at.display_in(&zone),
                channel: record.channel.as_str(),
                erased_at: record.erased_at.map(|at| at.display_in(&zone)),
                fields,
                answers: record
                    .answers
                    .iter()
                    .map(|a| AnswerView { version: a.version, at: a.answered_at.display_in(&zone), score: a.score.value(), comment: a.comment.clone() })
                    .collect(),
                case: record.case.as_ref().map(|case| CaseView {
                    status: if case.closed.is_some() { "closed" } else { "open" },
                    due: case.due_at.display_in(&zone),
                    notes: case.notes.iter().map(|n| (n.by.clone(), n.at.display_in(&zone), n.text.clone())).collect(),
                    closed: case.closed.as_ref().map(|c| format!("{} by {}, {}", c.outcome, c.by, c.at.display_in(&zone))),
                }),
                messages: record.messages.iter().map(|m| (m.kind.as_str(), m.sent_at.display_in(&zone))).collect(),
            }
        })
        .collect();
    // Suppressions belong to no campaign: the reader's zone, else the person's first campaign's.
    let reader_zone = viewer.time_zone.clone().unwrap_or_else(|| export.invitations.first().map_or_else(Zone::utc, zone_of));
    let suppressions = export
        .suppressions
        .iter()
        .map(|s| SuppressionView {
            what: if s.key.as_str().starts_with(closeloop_core::privacy::ERASED_KEY_PREFIX) {
                "a keyed hash of a contact key (left by an erasure)".to_owned()
            } else {
                s.key.as_str().to_owned()
            },
            reason: s.reason.as_str(),
            at: s.at.display_in(&reader_zone),
        })
        .collect();
    let person = PersonView { label: export.person.clone(), json_href: format!("/admin/people.json?{query}"), invitations, suppressions };
    let (email, phone) = if export.person.contains('@') { (export.person.as_str(), "") } else { ("", export.person.as_str()) };
    render_admin(
        "admin/people.html",
        &PeoplePage { title: "People", viewer, email, phone, error: None, person: Some(person), erased: None },
    )
}

/// What an erasure did.
pub fn erased_page(viewer: &Viewer, person: &str, report: &ErasureReport) -> Result<String, RenderError> {
    render_admin(
        "admin/people.html",
        &PeoplePage {
            title: "People",
            viewer,
            email: "",
            phone: "",
            error: None,
            person: None,
            erased: Some(ErasedView { person, invitations: report.invitations_erased }),
        },
    )
}
