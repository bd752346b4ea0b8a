//! The campaign workspace's pages: the campaign form (new, edit, duplicate, from a file), the
//! campaign file import, and the change log. Each page's view model is a typed struct.

use std::collections::BTreeMap;

use serde::Serialize;

use closeloop_core::campaign::Campaign;
use closeloop_core::campaign_form::{CampaignForm, FieldError};
use closeloop_core::changelog::{CampaignChange, ChangeKind, SettingChange};
use closeloop_core::launch::DryRunReport;
use closeloop_core::time::SendWindow;

use crate::dashboard::Viewer;
use crate::render::{render_admin, RenderError};

/// What the campaign navigation include needs from a page.
#[derive(Debug, Serialize)]
struct Nav<'a> {
    campaign: CampaignHeading<'a>,
    section: &'static str,
    filter_query: Option<String>,
    scope_note: Option<String>,
}

#[derive(Debug, Serialize)]
struct CampaignHeading<'a> {
    id: &'a str,
    name: &'a str,
    company: &'a str,
}

impl<'a> Nav<'a> {
    fn of(campaign: &'a Campaign, section: &'static str) -> Self {
        Self {
            campaign: CampaignHeading { id: campaign.id.as_str(), name: &campaign.name, company: &campaign.company },
            section,
            filter_query: None,
            scope_note: None,
        }
    }
}

/// One input of the form, with its label, help and problems.
#[derive(Debug, Serialize)]
struct Input {
    name: &'static str,
    label: &'static str,
    /// text, email, number, textarea, select, window
    kind: &'static str,
    value: String,
    help: &'static str,
    required: bool,
    readonly: bool,
    options: Vec<(&'static str, &'static str)>,
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Section {
    title: &'static str,
    inputs: Vec<Input>,
}

#[derive(Debug, Serialize)]
struct Day {
    name: &'static str,
    label: &'static str,
    checked: bool,
}

/// What a save does: the form's hidden `kind`, and how the page says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormMode {
    New,
    Duplicate { from: String },
    FromFile,
    Edit { revision: u32 },
}

#[derive(Debug, Serialize)]
struct FormPage<'a> {
    title: String,
    viewer: &'a Viewer,
    heading: String,
    action: String,
    kind: &'static str,
    duplicate_of: Option<String>,
    revision: Option<u32>,
    sections: Vec<Section>,
    window_from: String,
    window_to: String,
    days: Vec<Day>,
    window_errors: Vec<String>,
    summary: Vec<Summary>,
    summary_heading: String,
    notice: Option<String>,
    /// Only when editing: the campaign's navigation.
    #[serde(flatten)]
    nav: Option<Nav<'a>>,
}

/// The error summary at the top links each problem to its field.
#[derive(Debug, Serialize)]
struct Summary {
    field: &'static str,
    message: String,
}

const DAY_LABELS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// The campaign form with what was typed, each problem at its field, and a notice above it
/// (a save that lost to someone else's).
pub fn campaign_form_page(
    viewer: &Viewer,
    campaign: Option<&Campaign>,
    mode: &FormMode,
    form: &CampaignForm,
    errors: &[FieldError],
    notice: Option<&str>,
) -> Result<String, RenderError> {
    let mut by_field: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in errors {
        by_field.entry(e.field).or_default().push(e.message.clone());
    }
    let editing = matches!(mode, FormMode::Edit { .. });
    let mut input = |name: &'static str, label: &'static str, kind: &'static str, value: &str, help: &'static str, required: bool| Input {
        name,
        label,
        kind,
        value: value.to_owned(),
        help,
        required,
        readonly: editing && name == "id",
        options: if name == "market" { vec![("b2c", "Consumers (B2C)"), ("b2b", "Businesses (B2B)")] } else { Vec::new() },
        errors: by_field.remove(name).unwrap_or_default(),
    };
    let sections = vec![
        Section {
            title: "Campaign",
            inputs: vec![
                input("id", "Id", "text", &form.id, "Lower-case letters, digits and dashes; it names the campaign in links and files and never changes.", true),
                input("name", "Name", "text", &form.name, "What your team calls it.", true),
                input("company", "Company", "text", &form.company, "The name respondents know you by.", true),
                input("touchpoint", "Touchpoint", "text", &form.touchpoint, "What the survey asks about, e.g. \"service visit\"; a contact's own touchpoint column wins.", false),
                input("market", "Market", "select", &form.market, "Sets the response-rate benchmark the overview compares with.", true),
                input("privacy_url", "Privacy notice", "text", &form.privacy_url, "https:// address of your privacy notice: the survey page links it and every mail names it.", false),
            ],
        },
        Section {
            title: "Sender",
            inputs: vec![
                input("sender_name", "Sender name", "text", &form.sender_name, "The person the invitation comes from.", true),
                input("sender_email", "Sender address", "email", &form.sender_email, "A verified sending address.", true),
                input("manager_email", "Manager's address", "email", &form.manager_email, "Gets alerts without an owner, escalations and the weekly digest.", false),
            ],
        },
        Section {
            title: "Languages and time",
            inputs: vec![
                input("locales", "Languages", "text", &form.locales, "Codes in order, the first being the default: en, sv, da.", true),
                input("time_zone", "Time zone", "text", &form.time_zone, "An IANA name such as Europe/Stockholm. Empty: the first language's (sv Stockholm, da Copenhagen, en UTC).", false),
            ],
        },
        Section {
            title: "Rules",
            inputs: vec![
                input("throttle_days", "Days between surveys of one person", "number", &form.throttle_days, "0 to 3650; a contact surveyed more recently is skipped.", true),
                input("alert_threshold", "Alert at a score of at most", "number", &form.alert_threshold, "0 to 10: answers at or below it open a follow-up case.", true),
                input("follow_up_hours", "Hours to follow up a detractor", "number", &form.follow_up_hours, "1 to 336: a detractor case's deadline after the answer.", true),
                input("contact_request_hours", "Hours to answer a contact request", "number", &form.contact_request_hours, "1 to 336: the deadline when a passive or promoter asks to be contacted.", true),
                input("reminder_delay_days", "Days before a reminder", "number", &form.reminder_delay_days, "1 to 30.", true),
                input("reminder_max", "Reminders at most", "number", &form.reminder_max, "0 to 3; one is usually enough.", true),
                input("heads_up_days", "Heads-up mail, days before a scheduled start", "number", &form.heads_up_days, "1 to 14, or empty for none: each contact hears from their owner that a short survey is coming.", false),
                input("retention_months", "Months to keep personal data", "number", &form.retention_months, "1 to 120: then each invitation's names, contact fields and comment are erased; its score still counts.", true),
            ],
        },
        Section {
            title: "Questions",
            inputs: vec![
                input("drivers", "Driver questions (rated 1-5)", "textarea", &form.drivers, "One per line: key | label, or key | en: label | sv: label. At most 5.", false),
                input("follow_up", "Follow-up question per group", "textarea", &form.follow_up, "One per line: promoter, passive or detractor | question (or per language, as drivers).", false),
                input("themes", "Comment themes", "textarea", &form.themes, "One per line: name: keyword, keyword. A keyword matches words that begin with it.", false),
            ],
        },
        Section {
            title: "Review sites",
            inputs: vec![input("review_sites", "Review sites", "textarea", &form.review_sites, "One per line: key | name | https://address | everyone (or promoters_only).", false)],
        },
        Section {
            title: "Webhooks",
            inputs: vec![input(
                "webhooks",
                "Signed webhooks (Standard Webhooks)",
                "textarea",
                &form.webhooks,
                "One per line: https://address | events, comma-separated (response.created, response.updated, case.opened, case.overdue, case.closed, contact.unsubscribed, launch.completed, digest.weekly) | whsec_ secret. At most 10.",
                false,
            ),
            input(
                "chat",
                "Slack and Teams channels",
                "textarea",
                &form.chat,
                "One per line: slack (or teams) | the channel's incoming-webhook address | an owner's email for their contacts only, or nothing for everyone's | alert, digest. At most 10.",
                false,
            )],
        },
        Section {
            title: "Contacts files",
            inputs: vec![
                input("columns", "Column mapping", "textarea", &form.columns, "One per line: Column header = field (email, phone, first_name, last_name, company, segment, store, owner_email, touchpoint, locale or custom).", false),
                input("owners", "Owners by name", "textarea", &form.owners, "One per line: Name = email address, for an owner column that holds names.", false),
            ],
        },
    ];
    let window_errors = by_field.remove("send_window").unwrap_or_default();
    let days = SendWindow::DAYS
        .iter()
        .zip(DAY_LABELS)
        .map(|(name, label)| Day { name, label, checked: form.window_days.iter().any(|d| d == name) })
        .collect();
    let (heading, action, kind, duplicate_of, revision) = match (mode, campaign) {
        (FormMode::Edit { revision }, Some(c)) => {
            (format!("{}: settings", c.name), format!("/admin/c/{}/edit", c.id), "edited", None, Some(*revision))
        }
        (FormMode::Duplicate { from }, _) => ("New campaign, from another".to_owned(), "/admin/new".to_owned(), "duplicated", Some(from.clone()), None),
        (FormMode::FromFile, _) => ("New campaign, from a file".to_owned(), "/admin/new".to_owned(), "imported", None, None),
        _ => ("New campaign".to_owned(), "/admin/new".to_owned(), "created", None, None),
    };
    let summary = errors.iter().map(|e| Summary { field: if e.field == "send_window" { "window_from" } else { e.field }, message: e.message.clone() }).collect();
    render_admin(
        "admin/campaign_form.html",
        &FormPage {
            title: heading.clone(),
            viewer,
            heading,
            action,
            kind,
            duplicate_of,
            revision,
            sections,
            window_from: form.window_from.clone(),
            window_to: form.window_to.clone(),
            days,
            window_errors,
            summary,
            summary_heading: match errors.len() {
                1 => "1 thing needs fixing before the campaign is saved:".to_owned(),
                n => format!("{n} things need fixing before the campaign is saved:"),
            },
            notice: notice.map(str::to_owned),
            nav: campaign.filter(|_| editing).map(|c| Nav::of(c, "edit")),
        },
    )
}

#[derive(Debug, Serialize)]
struct ImportPage<'a> {
    title: &'static str,
    viewer: &'a Viewer,
    file: &'a str,
    error: Option<&'a str>,
}

/// The campaign-file import: paste a file, and its settings fill the new-campaign form.
pub fn import_page(viewer: &Viewer, file: &str, error: Option<&str>) -> Result<String, RenderError> {
    render_admin("admin/campaign_import.html", &ImportPage { title: "Import a campaign file", viewer, file, error })
}

#[derive(Debug, Serialize)]
struct Entry<'a> {
    revision: u32,
    at: String,
    by: &'a str,
    what: String,
    settings: &'a [SettingChange],
}

#[derive(Debug, Serialize)]
struct ChangeLogPage<'a> {
    title: String,
    viewer: &'a Viewer,
    #[serde(flatten)]
    nav: Nav<'a>,
    entries: Vec<Entry<'a>>,
    more: bool,
}

/// Who changed the campaign's settings, what and when, newest first, in the reader's zone.
pub fn change_log_page(viewer: &Viewer, campaign: &Campaign, changes: &[CampaignChange], more: bool) -> Result<String, RenderError> {
    let zone = viewer.zone_for(campaign);
    let entries = changes
        .iter()
        .map(|c| Entry {
            revision: c.revision,
            at: c.at.display_in(&zone),
            by: &c.by,
            what: match &c.kind {
                ChangeKind::Created => "Created".to_owned(),
                ChangeKind::Duplicated { from } => format!("Created from {from}"),
                ChangeKind::Imported => "Created from a campaign file".to_owned(),
                ChangeKind::Edited => "Edited".to_owned(),
            },
            settings: &c.settings,
        })
        .collect();
    render_admin(
        "admin/changes.html",
        &ChangeLogPage { title: format!("{}: change log", campaign.name), viewer, nav: Nav::of(campaign, "changes"), entries, more },
    )
}

#[derive(Debug, Serialize)]
struct UploadPage<'a> {
    title: String,
    viewer: &'a Viewer,
    #[serde(flatten)]
    nav: Nav<'a>,
    error: Option<&'a str>,
    /// False where this runtime takes no uploads (the Worker): the page says where to go.
    available: bool,
}

/// The contacts upload: a CSV (UTF-8, Windows-1252 or UTF-16) or an `.xlsx` workbook.
pub fn upload_page(viewer: &Viewer, campaign: &Campaign, error: Option<&str>, available: bool) -> Result<String, RenderError> {
    render_admin(
        "admin/upload.html",
        &UploadPage { title: format!("{}: upload contacts", campaign.name), viewer, nav: Nav::of(campaign, "upload"), error, available },
    )
}

/// One column of the uploaded file, where its values will go, and why.
#[derive(Debug, Clone, Serialize)]
struct ColumnChoice<'a> {
    header: &'a str,
    /// A field name, or `custom`.
    chosen: &'static str,
    /// How the choice was made: `explicit` (the campaign's mapping or this form), `suggested`,
    /// `custom`.
    by: &'static str,
}

/// What the dry-run page shows of a report: the file as read, the mapping, what a launch would do.
#[derive(Debug, Serialize)]
struct DryRunView<'a> {
    launch_id: String,
    file: String,
    sheet: Option<&'a str>,
    columns: Vec<ColumnChoice<'a>>,
    unused_mapping: &'a [String],
    rows: u64,
    would_invite: u64,
    duplicates: u64,
    suppressed: u64,
    throttled: u64,
    throttle_days: u32,
    bad_rows: &'a [closeloop_core::import::RowProblem],
    bad_row_count: usize,
    /// The state of an earlier launch of the same file, if there was one.
    launched_before: Option<&'static str>,
    elapsed_ms: u64,
}

/// Bad rows the dry-run page lists; all are counted.
pub const BAD_ROWS_SHOWN: usize = 200;

#[derive(Debug, Serialize)]
struct DryRunPage<'a> {
    title: String,
    viewer: &'a Viewer,
    #[serde(flatten)]
    nav: Nav<'a>,
    report: DryRunView<'a>,
    bad_rows_shown: usize,
    fields: Vec<(&'static str, &'static str)>,
}

const FIELD_CHOICES: [(&str, &str); 11] = [
    ("email", "Email"),
    ("phone", "Mobile phone"),
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("company", "Company"),
    ("segment", "Segment"),
    ("store", "Store"),
    ("owner_email", "Owner (email or a name from the owners list)"),
    ("touchpoint", "Touchpoint"),
    ("locale", "Language"),
    ("custom", "Keep as a CRM property"),
];

/// The dry run of an upload (`sheet`: the workbook's sheet asked for), with its mapping to
/// change and the launch button.
pub fn dry_run_page(viewer: &Viewer, campaign: &Campaign, report: &DryRunReport, sheet: Option<&str>, elapsed_ms: u64) -> Result<String, RenderError> {
    use closeloop_core::import::MappedBy;
    let shown = &report.bad_rows[..report.bad_rows.len().min(BAD_ROWS_SHOWN)];
    let view = DryRunView {
        launch_id: report.launch_id.to_string(),
        file: report.file.to_string(),
        sheet,
        columns: report
            .mapping
            .iter()
            .map(|c| ColumnChoice {
                header: &c.header,
                chosen: c.field.map_or("custom", |f| f.as_str()),
                by: match c.by {
                    MappedBy::Explicit => "explicit",
                    MappedBy::Suggested => "suggested",
                    MappedBy::Custom => "custom",
                },
            })
            .collect(),
        unused_mapping: &report.unused_mapping,
        rows: report.rows,
        would_invite: report.would_invite,
        duplicates: report.duplicates,
        suppressed: report.suppressed,
        throttled: report.throttled,
        throttle_days: report.throttle_days,
        bad_rows: shown,
        bad_row_count: report.bad_rows.len(),
        launched_before: report.launched_before.map(|s| s.as_str()),
        elapsed_ms,
    };
    render_admin(
        "admin/dry_run.html",
        &DryRunPage {
            title: format!("{}: check the upload", campaign.name),
            viewer,
            nav: Nav::of(campaign, "upload"),
            bad_rows_shown: shown.len(),
            report: view,
            fields: FIELD_CHOICES.to_vec(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use closeloop_core::accounts::{Accounts, Role};

    fn viewer() -> Viewer {
        let accounts = Accounts::default().with("Eda", Role::Editor, None, "an editor token of some length");
        Viewer::new(accounts.by_name("Eda").unwrap(), "csrf-token".into())
    }

    #[test]
    fn the_form_renders_each_problem_at_its_field_and_in_the_summary() {
        let errors = [
            FieldError { field: "throttle_days", message: "throttle_days must be a whole number".into() },
            FieldError { field: "send_window", message: "a send window needs both times".into() },
        ];
        let page = campaign_form_page(&viewer(), None, &FormMode::New, &CampaignForm::blank(), &errors, None).unwrap();
        assert!(page.contains("id=\"throttle_days-error\">throttle_days must be a whole number"), "{page}");
        assert!(page.contains("id=\"window-error\">a send window needs both times"), "{page}");
        assert!(page.contains("<a href=\"#window_from\">a send window needs both times</a>"), "{page}");
        assert!(page.contains("2 things need fixing"), "{page}");
    }

    #[test]
    fn the_edit_form_carries_its_revision_and_the_campaigns_navigation() {
        let campaign = Campaign::from_toml(include_str!("../../demo/campaign.toml")).unwrap();
        let form = CampaignForm::from_campaign(&campaign);
        let page = campaign_form_page(&viewer(), Some(&campaign), &FormMode::Edit { revision: 3 }, &form, &[], Some("notice")).unwrap();
        assert!(page.contains("name=\"revision\" value=\"3\"") && page.contains("aria-current=\"page\">Settings<"), "{page}");
        assert!(page.contains("role=\"alert\">notice<"));
    }
}

#[derive(Debug, Serialize)]
struct EndpointView {
    url: String,
    events: String,
    secret: String,
    state: String,
}

#[derive(Debug, Serialize)]
struct DeliveryView {
    id: String,
    created_at: String,
    event: &'static str,
    endpoint: String,
    state: &'static str,
    attempts: u32,
    last: String,
    millis: String,
}

#[derive(Debug, Serialize)]
struct WebhooksPage<'a> {
    title: String,
    viewer: &'a Viewer,
    #[serde(flatten)]
    nav: Nav<'a>,
    endpoints: Vec<EndpointView>,
    deliveries: Vec<DeliveryView>,
    more: bool,
    redelivered: bool,
}

/// The campaign's webhook endpoints and chat channels (secrets as hints) and its delivery log,
/// newest first, in the reader's time zone. `health` is the webhooks', then the channels'.
pub fn webhooks_page(
    viewer: &Viewer,
    campaign: &Campaign,
    health: &[Option<closeloop_core::webhooks::EndpointHealth>],
    deliveries: &[closeloop_core::webhooks::WebhookDelivery],
    more: bool,
    redelivered: bool,
) -> Result<String, RenderError> {
    use closeloop_core::webhooks::DeliveryState;
    let zone = viewer.zone_for(campaign);
    // `health` holds the webhooks' first, then the chat channels'.
    let state = |i: usize| match health.get(i).cloned().flatten() {
        Some(h) if h.disabled_at.is_some() => format!("disabled after {} failures in a row", h.consecutive_failures),
        Some(h) if h.consecutive_failures > 0 => format!("{} failures in a row", h.consecutive_failures),
        _ => "active".to_owned(),
    };
    let webhooks = campaign.webhooks.len();
    let endpoints = campaign
        .webhooks
        .iter()
        .enumerate()
        .map(|(i, w)| EndpointView {
            url: w.url.as_str().to_owned(),
            events: w.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", "),
            secret: w.secret.hint(),
            state: state(i),
        })
        .chain(campaign.chat.iter().enumerate().map(|(i, c)| EndpointView {
            url: c.hint(),
            events: {
                let kind = match c.kind {
                    closeloop_core::webhooks::ChatKind::Slack => "Slack",
                    closeloop_core::webhooks::ChatKind::Teams => "Teams",
                };
                let owner = c.owner.as_ref().map_or_else(String::new, |o| format!(", {}'s contacts", o.as_str()));
                let events: Vec<&str> = c.events.iter().map(|e| match e {
                    closeloop_core::webhooks::ChatEvent::Alert => "alerts",
                    closeloop_core::webhooks::ChatEvent::Digest => "digest",
                }).collect();
                format!("{kind}: {}{owner}", events.join(", "))
            },
            secret: "(the address is the secret)".to_owned(),
            state: state(webhooks + i),
        }))
        .collect();
    let host_of = |key: &str| {
        let webhook = campaign.webhooks.iter().find(|w| w.key() == key).map(|w| w.url.host().to_owned());
        let chat = || campaign.chat.iter().find(|c| c.key() == key).map(|c| c.url.host().to_owned());
        webhook.or_else(chat).unwrap_or_else(|| "(removed)".to_owned())
    };
    let deliveries = deliveries
        .iter()
        .map(|d| DeliveryView {
            id: d.id.clone(),
            created_at: d.created_at.display_in(&zone),
            event: d.event.as_str(),
            endpoint: host_of(&d.endpoint),
            state: match d.state {
                DeliveryState::Pending if d.attempts == 0 => "queued",
                DeliveryState::Pending => "retrying",
                DeliveryState::Delivered => "delivered",
                DeliveryState::GaveUp => "given up",
            },
            attempts: d.attempts,
            last: d.last.as_ref().map_or_else(String::new, |l| match (&l.status, &l.error) {
                (Some(status), _) => format!("HTTP {status}, {}", l.at.display_in(&zone)),
                (None, Some(error)) => format!("{error}, {}", l.at.display_in(&zone)),
                (None, None) => String::new(),
            }),
            millis: d.last.as_ref().map_or_else(String::new, |l| format!("{} ms", l.millis)),
        })
        .collect();
    render_admin(
        "admin/webhooks.html",
        &WebhooksPage { title: format!("{}: webhooks", campaign.name), viewer, nav: Nav::of(campaign, "webhooks"), endpoints, deliveries, more, redelivered },
    )
}

// "You said, we did": the composer, its preview and the updates sent.

/// One language's subject and text as typed.
#[derive(Debug, Clone, Serialize)]
pub struct ComposerText {
    pub locale: &'static str,
    pub subject: String,
    pub body: String,
}

/// A checkbox of the audience.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub name: String,
    pub label: String,
    pub checked: bool,
}

/// The composer as typed (or blank): its draft id, one text per campaign language, the audience.
#[derive(Debug, Clone, Serialize)]
pub struct Composer {
    pub id: String,
    pub texts: Vec<ComposerText>,
    pub groups: Vec<Choice>,
    pub themes: Vec<Choice>,
    pub segments: Vec<Choice>,
    pub non_respondents: bool,
}

/// A preview of one language's mail.
#[derive(Debug, Serialize)]
pub struct UpdateMailPreview {
    pub locale: &'static str,
    pub note: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What the preview shows before sending: who it reaches, who it leaves out and why, and the mail.
#[derive(Debug)]
pub struct UpdatePreview {
    pub count: closeloop_core::updates::AudienceCount,
    /// False when only the first pages were counted (the Worker's request limits).
    pub complete: bool,
    pub mails: Vec<UpdateMailPreview>,
}

#[derive(Debug, Serialize)]
struct ExclusionView {
    reason: &'static str,
    count: u64,
}

#[derive(Debug, Serialize)]
struct PreviewView<'a> {
    reached: u64,
    respondents: u64,
    complete: bool,
    excluded: Vec<ExclusionView>,
    excluded_total: u64,
    mails: &'a [UpdateMailPreview],
}

#[derive(Debug, Serialize)]
struct LinkClicks {
    url: String,
    clickers: i64,
}

#[derive(Debug, Serialize)]
struct SentUpdateView {
    id: String,
    subject: String,
    author: String,
    created_at: String,
    audience: String,
    planned: u64,
    sent: u64,
    excluded: u64,
    failed: u64,
    state: String,
    links: Vec<LinkClicks>,
}

#[derive(Debug, Serialize)]
struct UpdatesPage<'a> {
    title: String,
    viewer: &'a Viewer,
    #[serde(flatten)]
    nav: Nav<'a>,
    composer: &'a Composer,
    problems: Vec<String>,
    preview: Option<PreviewView<'a>>,
    updates: Vec<SentUpdateView>,
    notice: Option<&'a str>,
}

/// The "you said, we did" page: updates sent (with progress and clicks per link, times in the
/// reader's zone), then the composer, and after "Preview" the audience count with its
/// exclusions by reason and each language's mail.
pub fn updates_page(
    viewer: &Viewer,
    campaign: &Campaign,
    composer: &Composer,
    problems: &[closeloop_core::updates::UpdateProblem],
    preview: Option<&UpdatePreview>,
    updates: &[(closeloop_core::updates::CampaignUpdate, closeloop_core::counters::Fields)],
    notice: Option<&str>,
) -> Result<String, RenderError> {
    use closeloop_core::updates::{link_field, Exclusion};
    let zone = viewer.zone_for(campaign);
    let preview = preview.map(|p| PreviewView {
        reached: p.count.reached,
        respondents: p.count.respondents,
        complete: p.complete,
        excluded: Exclusion::ALL.iter().map(|e| ExclusionView { reason: e.label(), count: p.count.excluded.get(e).copied().unwrap_or(0) }).collect(),
        excluded_total: p.count.excluded_total(),
        mails: &p.mails,
    });
    let updates = updates
        .iter()
        .map(|(u, clicks)| SentUpdateView {
            id: u.id.to_string(),
            subject: u.text_for(campaign.locales[0]).map(|(_, t)| t.subject.clone()).unwrap_or_default(),
            author: u.author.clone(),
            created_at: u.created_at.display_in(&zone),
            audience: u.audience.describe(),
            planned: u.planned.reached,
            sent: u.progress.sent,
            excluded: u.progress.excluded.values().sum(),
            failed: u.progress.failed,
            state: match u.progress.finished_at {
                Some(at) => format!("sent, finished {}", at.display_in(&zone)),
                None => "going out".to_owned(),
            },
            links: u.links.iter().enumerate().map(|(i, url)| LinkClicks { url: url.clone(), clickers: clicks.get(&link_field(i)).copied().unwrap_or(0) }).collect(),
        })
        .collect();
    render_admin(
        "admin/updates.html",
        &UpdatesPage {
            title: format!("{}: you said, we did", campaign.name),
            viewer,
            nav: Nav::of(campaign, "updates"),
            composer,
            problems: problems.iter().map(problem_line).collect(),
            preview,
            updates,
            notice,
        },
    )
}

/// A composer problem as the page says it: which field (and language), then what is wrong.
fn problem_line(problem: &closeloop_core::updates::UpdateProblem) -> String {
    let field = match problem.field.split_once('_') {
        Some(("subject", code)) => format!("Subject ({code})"),
        Some(("body", code)) => format!("Text ({code})"),
        _ => match problem.field.as_str() {
            "themes" => "Themes".to_owned(),
            "links" => "Links".to_owned(),
            other => other.to_owned(),
        },
    };
    format!("{field}: {}", problem.message)
}
