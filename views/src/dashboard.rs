//! The dashboard's pages: figures worked out from counters or rows, rendered from
//! `templates/admin/`. The edge fetches; everything shown is decided here, where it is testable.
//!
//! Staff pages are in English for now; respondent-facing text is localised.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use closeloop_core::accounts::Account;
use closeloop_core::campaign::Campaign;
use crate::charts::{self, MatrixPoint};
use closeloop_core::counters::{themes_of, Aggregates, Funnel};
use closeloop_core::model::{Answer, CaseStatus, FollowUpCase, Invitation};
use closeloop_core::nps::{change, Group, Tally};
use closeloop_core::ports::InvitationRow;
use crate::render::{render_admin, RenderError};
use closeloop_core::time::Timestamp;

/// Below this many answers a segment's NPS is flagged as uncertain.
pub const UNCERTAIN_BELOW: u64 = 30;
/// Comments shown at once; the export has them all.
pub const COMMENTS_SHOWN: usize = 200;
/// Segment rows shown at once: a field like a customer number has a value per contact.
pub const SEGMENTS_SHOWN: usize = 500;

/// The signed-in person, as every page's header shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Viewer {
    pub name: String,
    pub role: &'static str,
    pub scope: Option<String>,
    pub csrf: String,
    pub may_work_cases: bool,
    pub may_manage_campaigns: bool,
    /// The reader's own zone, if their account names one; else each campaign's.
    #[serde(skip)]
    pub time_zone: Option<closeloop_core::time::Zone>,
}

impl Viewer {
    /// The zone this reader sees the campaign's times in.
    pub fn zone_for(&self, campaign: &Campaign) -> closeloop_core::time::Zone {
        self.time_zone.clone().unwrap_or_else(|| campaign.zone())
    }

    pub fn new(account: &Account, csrf: String) -> Self {
        let scope = match account.scope() {
            closeloop_core::accounts::Scope::OwnedBy(email) => Some(email.as_str().to_owned()),
            closeloop_core::accounts::Scope::Everything => None,
        };
        let may_work_cases = matches!(account.role, closeloop_core::accounts::Role::Admin | closeloop_core::accounts::Role::Owner);
        let may_manage_campaigns = account.may_manage_campaigns();
        let time_zone = account.time_zone.clone();
        Self { name: account.name.clone(), role: account.role.as_str(), scope, csrf, may_work_cases, may_manage_campaigns, time_zone }
    }
}

/// A drill-down to one value of one CRM field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SegmentFilter {
    pub by: String,
    pub value: String,
}

impl SegmentFilter {
    pub fn parse(by: Option<&str>, value: Option<&str>) -> Option<Self> {
        let (by, value) = (by?.trim(), value?.trim());
        (!by.is_empty() && !value.is_empty()).then(|| Self { by: by.to_owned(), value: value.to_owned() })
    }

    pub fn matches(&self, invitation: &Invitation) -> bool {
        closeloop_core::counters::segment_values(invitation).iter().any(|(d, v)| *d == self.by && *v == self.value)
    }

    pub fn query(&self) -> String {
        let enc = |s: &str| form_encode(s);
        format!("by={}&value={}", enc(&self.by), enc(&self.value))
    }
}

/// `application/x-www-form-urlencoded` for a query value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn signed(v: f64) -> String {
    let r = v.round();
    if r == 0.0 {
        "0".into()
    } else {
        format!("{r:+.0}")
    }
}

fn percent(part: u64, whole: u64) -> Option<String> {
    (whole > 0).then(|| format!("{:.1} %", 100.0 * part as f64 / whole as f64))
}

/// NPS, margin and group split of a tally, ready to show.
/// A group split with its NPS, as every page shows one: each name is always there (null when
/// nobody answered), so a template never meets an undefined one.
#[derive(Debug, Default, Serialize)]
struct NpsView {
    answered: u64,
    nps: Option<String>,
    margin: Option<String>,
    small_sample: bool,
    uncertain: bool,
    promoters: u64,
    passives: u64,
    detractors: u64,
    promoters_pct: Option<String>,
    passives_pct: Option<String>,
    detractors_pct: Option<String>,
    promoters_w: Option<String>,
    passives_w: Option<String>,
    detractors_w: Option<String>,
}

fn nps_view(tally: &Tally) -> Value {
    let answered = tally.answered();
    let view = match tally.estimate() {
        Some(e) => {
            let width = |n: u64| Some(format!("{:.1}", 100.0 * n as f64 / answered as f64));
            NpsView {
                answered,
                nps: Some(signed(e.nps)),
                margin: Some(format!("{:.0}", e.margin_95)),
                small_sample: e.small_sample,
                uncertain: answered < UNCERTAIN_BELOW,
                promoters: tally.promoters,
                passives: tally.passives,
                detractors: tally.detractors,
                promoters_pct: percent(tally.promoters, answered),
                passives_pct: percent(tally.passives, answered),
                detractors_pct: percent(tally.detractors, answered),
                promoters_w: width(tally.promoters),
                passives_w: width(tally.passives),
                detractors_w: width(tally.detractors),
            }
        }
        None => NpsView { answered, ..NpsView::default() },
    };
    json!(view)
}

fn funnel_view(funnel: &Funnel) -> Value {
    let step = |label: &str, n: u64| json!({ "label": label, "count": n, "share": percent(n, funnel.invited) });
    json!([
        step("Invited", funnel.invited),
        step("Opened the page", funnel.opened),
        step("Answered", funnel.answered),
        step("Went on to a review site", funnel.review_clickers),
        step("Unsubscribed", funnel.unsubscribed),
        step("Bounced or complained", funnel.bounced + funnel.complained),
    ])
}

fn response_view(campaign: &Campaign, funnel: &Funnel) -> Value {
    let (avg_lo, avg_hi, best_lo, best_hi) = campaign.market.response_benchmarks();
    let rate = (funnel.invited > 0).then(|| funnel.answered as f64 / funnel.invited as f64);
    let verdict = rate.map(|r| {
        if r >= best_lo {
            "among the best"
        } else if r > avg_hi {
            "above average"
        } else if r >= avg_lo {
            "average"
        } else {
            "below average"
        }
    });
    json!({
        "rate": rate.map(|r| format!("{:.1} %", 100.0 * r)),
        "verdict": verdict,
        "market": campaign.market.as_str(),
        "average": format!("{:.0}–{:.0} %", 100.0 * avg_lo, 100.0 * avg_hi),
        "best": format!("{:.0}–{:.0} %", 100.0 * best_lo, 100.0 * best_hi),
    })
}

fn campaign_view(campaign: &Campaign) -> Value {
    json!({ "id": campaign.id.as_str(), "name": campaign.name, "company": campaign.company })
}

fn page(template: &str, viewer: &Viewer, title: &str, mut ctx: Value) -> Result<String, RenderError> {
    if let Value::Object(map) = &mut ctx {
        map.insert("viewer".into(), json!(viewer));
        map.insert("title".into(), json!(title));
    }
    render_admin(template, &ctx)
}

/// Where the figures came from, said on the page so nobody mistakes an owner's view for the total.
fn scope_note(viewer: &Viewer, filter: Option<&SegmentFilter>, aggregates: &Aggregates) -> Option<String> {
    let scope = match (filter, &viewer.scope) {
        (Some(f), Some(owner)) => Some(format!("Your contacts ({owner}) with {} = {}", f.by, f.value)),
        (Some(f), None) => Some(format!("Only contacts with {} = {}", f.by, f.value)),
        (None, Some(owner)) => Some(format!("Your contacts only ({owner})")),
        (None, None) => None,
    };
    // Said on the page, so that nobody takes a part for the whole.
    let partial = aggregates.partial().map(|rows| format!("Figures from the first {rows} contacts only: one page reads no more. The export has them all."));
    match (scope, partial) {
        (Some(scope), Some(partial)) => Some(format!("{scope}. {partial}")),
        (scope, partial) => scope.or(partial),
    }
}

/// A campaign on the campaign list: its state (if read) and figures; `None` where the request's
/// read budget ran out first.
pub struct CampaignLine {
    pub campaign: Campaign,
    pub status: Option<closeloop_core::lifecycle::CampaignStatus>,
    pub figures: Option<Aggregates>,
    /// The most recent launch, if it was read (`None` also when the page's reads ran out).
    pub last_launch: Option<closeloop_core::launch::LaunchJob>,
}

pub fn campaigns_page(viewer: &Viewer, campaigns: &[CampaignLine]) -> Result<String, RenderError> {
    let list: Vec<Value> = campaigns
        .iter()
        .map(|line| {
            let state = line.status.as_ref().map(|s| s.state.as_str());
            let zone = viewer.zone_for(&line.campaign);
            let launch = line.last_launch.as_ref().map(|job| format!("{} ({}, {} invited)", job.started_at.display_in(&zone), job.state.as_str(), job.invited));
            match &line.figures {
                Some(agg) => {
                    let funnel = agg.funnel();
                    json!({ "campaign": campaign_view(&line.campaign), "state": state, "launch": launch, "figures": true, "partial": agg.partial().is_some(), "nps": nps_view(&agg.tally()), "invited": funnel.invited, "rate": percent(funnel.answered, funnel.invited) })
                }
                None => json!({ "campaign": campaign_view(&line.campaign), "state": state, "launch": launch, "figures": false, "partial": false, "nps": null, "invited": null, "rate": null }),
            }
        })
        .collect();
    let unread = campaigns.iter().filter(|line| line.figures.is_none()).count();
    let partial = campaigns.iter().filter(|line| line.figures.as_ref().is_some_and(|a| a.partial().is_some())).count();
    page("admin/campaigns.html", viewer, "Campaigns", json!({ "campaigns": list, "unread": unread, "partial": partial }))
}

pub fn overview_page(
    viewer: &Viewer,
    campaign: &Campaign,
    aggregates: &Aggregates,
    filter: Option<&SegmentFilter>,
    launches: &[closeloop_core::launch::LaunchJob],
    status: &closeloop_core::lifecycle::CampaignStatus,
) -> Result<String, RenderError> {
    let funnel = aggregates.funnel();
    let zone = viewer.zone_for(campaign);
    let running = launches.iter().any(|l| !l.is_finished());
    let launches: Vec<Value> = launches
        .iter()
        .map(|job| {
            use closeloop_core::launch::{LaunchState, SkipReason};
            json!({
                "id": job.id.as_str(),
                "source": job.source,
                "started": job.started_at.display_in(&zone),
                "finished": job.finished_at.map(|t| t.display_in(&zone)),
                "state": match job.state {
                    LaunchState::Validating => "validating",
                    LaunchState::Running => "running",
                    LaunchState::Done => "done",
                    LaunchState::Failed => "failed",
                },
                "processed": job.rows_processed,
                "total": job.total_rows,
                "invited": job.invited,
                "suppressed": job.skipped(SkipReason::Suppressed),
                "throttled": job.skipped(SkipReason::Throttled),
                "duplicates": job.skipped(SkipReason::Duplicate),
                "bad_rows": job.bad_row_count,
            })
        })
        .collect();
    let points = charts::trend_points(&aggregates.weeks());
    let weeks: Vec<Value> = points
        .iter()
        .rev()
        .take(12)
        .map(|p| json!({ "week": p.week, "nps": signed(p.nps), "margin": format!("{:.0}", p.margin), "answers": p.answers }))
        .collect();
    let answered_weeks: Vec<(String, Tally)> = aggregates.weeks().into_iter().filter(|(_, t)| t.answered() > 0).collect();
    let period_change = match answered_weeks.as_slice() {
        [.., (before_week, before), (after_week, after)] => change(before, after).map(|c| {
            json!({
                "after": after_week, "before": before_week,
                "delta": signed(c.delta), "margin": format!("{:.0}", c.margin_95), "significant": c.significant,
            })
        }),
        _ => None,
    };
    let trend = charts::trend_svg(&points.iter().rev().take(26).rev().cloned().collect::<Vec<_>>());
    let dimensions = aggregates.dimensions();
    page(
        "admin/overview.html",
        viewer,
        &format!("{} – overview", campaign.name),
        json!({
            "campaign": campaign_view(campaign),
            "nps": nps_view(&aggregates.tally()),
            "funnel": funnel_view(&funnel),
            "response": response_view(campaign, &funnel),
            "trend_svg": trend,
            "weeks": weeks,
            "change": period_change,
            "dimensions": dimensions,
            "filter": filter,
            "filter_query": filter.map(SegmentFilter::query),
            "scope_note": scope_note(viewer, filter, aggregates),
            "section": "overview",
            "launches": launches,
            // No self-reloading page (WCAG 2.2.1): a link to the progress so far instead.
            "launch_running": running,
            "status": status_view(status, &viewer.zone_for(campaign)),
        }),
    )
}

/// A campaign's state as pages show it (as it stands now: `CampaignStatus::at`), with the
/// changes the viewer may make.
fn status_view(status: &closeloop_core::lifecycle::CampaignStatus, zone: &closeloop_core::time::Zone) -> Value {
    use closeloop_core::lifecycle::CampaignState;
    let actions: &[(&str, &str)] = match status.state {
        CampaignState::Draft => &[("start", "Start sending now"), ("end", "End the campaign")],
        CampaignState::Scheduled => &[("start", "Start now"), ("unschedule", "Back to draft"), ("end", "End the campaign")],
        CampaignState::Active => &[("pause", "Pause sending"), ("end", "End the campaign")],
        CampaignState::Paused => &[("resume", "Resume sending"), ("end", "End the campaign")],
        CampaignState::Ended => &[],
    };
    let schedulable = matches!(status.state, CampaignState::Draft | CampaignState::Scheduled);
    json!({
        "state": status.state.as_str(),
        "changed_at": status.changed_at.map(|t| t.display_in(zone)),
        "changed_by": status.changed_by,
        "starts_at": status.starts_at.filter(|_| status.state == CampaignState::Scheduled).map(|t| t.display_in(zone)),
        "starts_input": status.starts_at.map(|t| t.to_local_input(zone)).unwrap_or_default(),
        "schedulable": schedulable,
        "zone": zone.name(),
        "actions": actions.iter().map(|(action, label)| json!({ "action": action, "label": label })).collect::<Vec<_>>(),
    })
}

/// How the segment table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentSort {
    Nps,
    Answers,
    Name,
}

impl SegmentSort {
    pub fn parse(input: Option<&str>) -> Self {
        match input {
            Some("answers") => SegmentSort::Answers,
            Some("name") => SegmentSort::Name,
            _ => SegmentSort::Nps,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            SegmentSort::Nps => "nps",
            SegmentSort::Answers => "answers",
            SegmentSort::Name => "name",
        }
    }
}

pub fn segments_page(
    viewer: &Viewer,
    campaign: &Campaign,
    aggregates: &Aggregates,
    dimension: Option<&str>,
    sort: SegmentSort,
) -> Result<String, RenderError> {
    let dimensions = aggregates.dimensions();
    let chosen =
        dimension.filter(|d| dimensions.iter().any(|x| x == d)).or(dimensions.first().map(String::as_str)).map(str::to_owned);
    let mut segments = chosen.as_deref().map(|d| aggregates.segments(d)).unwrap_or_default();
    match sort {
        SegmentSort::Nps => segments.sort_by(|a, b| b.tally.nps().unwrap_or(f64::NEG_INFINITY).total_cmp(&a.tally.nps().unwrap_or(f64::NEG_INFINITY))),
        SegmentSort::Answers => segments.sort_by_key(|s| std::cmp::Reverse(s.tally.answered())),
        SegmentSort::Name => segments.sort_by(|a, b| a.value.cmp(&b.value)),
    }
    let total = aggregates.tally();
    let segment_count = segments.len();
    let rows: Vec<Value> = segments
        .iter()
        .take(SEGMENTS_SHOWN)
        .map(|s| {
            let filter = SegmentFilter { by: chosen.clone().unwrap_or_default(), value: s.value.clone() };
            json!({
                "value": s.value, "invited": s.invited, "rate": percent(s.tally.answered(), s.invited),
                "nps": nps_view(&s.tally), "query": filter.query(),
            })
        })
        .collect();
    page(
        "admin/segments.html",
        viewer,
        &format!("{} – segments", campaign.name),
        json!({
            "campaign": campaign_view(campaign),
            "dimensions": dimensions,
            "dimension": chosen,
            "sort": sort.as_str(),
            "shown": rows.len(),
            "segment_count": segment_count,
            "segments": rows,
            "total": nps_view(&total),
            "total_invited": aggregates.funnel().invited,
            "uncertain_below": UNCERTAIN_BELOW,
            "filter_query": null,
            "scope_note": scope_note(viewer, None, aggregates),
            "section": "segments",
        }),
    )
}

/// What the comment list is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct CommentFilter {
    pub group: Option<Group>,
    pub query: String,
    pub theme: Option<String>,
}

impl CommentFilter {
    pub fn parse(group: Option<&str>, query: Option<&str>, theme: Option<&str>) -> Self {
        let group = match group {
            Some("promoter") => Some(Group::Promoter),
            Some("passive") => Some(Group::Passive),
            Some("detractor") => Some(Group::Detractor),
            _ => None,
        };
        Self {
            group,
            query: query.unwrap_or("").trim().chars().take(100).collect(),
            theme: theme.map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned),
        }
    }

    pub fn matches(&self, campaign: &Campaign, answer: &Answer) -> bool {
        let Some(comment) = answer.comment.as_deref() else { return false };
        self.group.is_none_or(|g| answer.score.group() == g)
            && (self.query.is_empty() || comment.to_lowercase().contains(&self.query.to_lowercase()))
            && self.theme.as_deref().is_none_or(|t| themes_of(&campaign.themes, comment).contains(&t))
    }
}

fn display_name(invitation: &Invitation) -> String {
    let c = &invitation.contact;
    Some(c.full_name())
        .filter(|n| !n.is_empty())
        .or_else(|| c.email.as_ref().map(|e| e.as_str().to_owned()))
        .or_else(|| c.phone.as_ref().map(|p| p.as_str().to_owned()))
        .unwrap_or_default()
}

pub fn comments_page(
    viewer: &Viewer,
    campaign: &Campaign,
    aggregates: &Aggregates,
    rows: &[InvitationRow],
    filter: &CommentFilter,
    more: Option<&str>,
) -> Result<String, RenderError> {
    let mut matching: Vec<(&InvitationRow, &Answer)> =
        rows.iter().filter_map(|r| r.answer.as_ref().map(|a| (r, a))).filter(|(_, a)| filter.matches(campaign, a)).collect();
    matching.sort_by_key(|(_, a)| std::cmp::Reverse(a.answered_at));
    let total = matching.len();
    // Paged (`more`): every comment the page read is shown, so the next page starts after them.
    let zone = viewer.zone_for(campaign);
    let comments: Vec<Value> = matching
        .iter()
        .take(if more.is_some() { usize::MAX } else { COMMENTS_SHOWN })
        .map(|(row, a)| {
            let c = &row.invitation.contact;
            json!({
                "name": display_name(&row.invitation),
                "company": c.company, "store": c.store,
                "score": a.score.value(), "group": a.score.group().as_str(),
                "comment": a.comment,
                "themes": a.comment.as_deref().map(|t| themes_of(&campaign.themes, t).join(", ")).unwrap_or_default(),
                "at": a.answered_at.display_in(&zone),
            })
        })
        .collect();
    let themes: Vec<Value> = aggregates
        .themes()
        .into_iter()
        .map(|(name, t)| json!({ "query": format!("theme={}", form_encode(&name)), "name": name, "total": t.answered(), "promoters": t.promoters, "passives": t.passives, "detractors": t.detractors }))
        .collect();
    let configured: Vec<&String> = campaign.themes.keys().collect();
    page(
        "admin/comments.html",
        viewer,
        &format!("{} – comments", campaign.name),
        json!({
            "campaign": campaign_view(campaign),
            "comments": comments,
            "total": total,
            "shown": comments.len(),
            "more": more.map(|after| format!("{}after={}", filter_query_prefix(filter), form_encode(after))),
            "themes": themes,
            "configured_themes": configured,
            "group": filter.group.map(Group::as_str),
            "q": filter.query,
            "theme": filter.theme,
            "filter_query": null,
            "scope_note": scope_note(viewer, None, aggregates),
            "section": "comments",
        }),
    )
}

/// The comment filter as the start of a query string (`group=…&q=…&theme=…&`), for the next page.
fn filter_query_prefix(filter: &CommentFilter) -> String {
    let mut query = String::new();
    for (name, value) in [("group", filter.group.map(|g| g.as_str().to_owned())), ("q", Some(filter.query.clone())), ("theme", filter.theme.clone())] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            query.push_str(&format!("{name}={}&", form_encode(&value)));
        }
    }
    query
}

pub fn drivers_page(viewer: &Viewer, campaign: &Campaign, aggregates: &Aggregates) -> Result<String, RenderError> {
    let stats: Vec<(String, closeloop_core::counters::DriverStat)> =
        campaign.drivers.iter().map(|d| (d.label.get(campaign.locales[0]).to_owned(), aggregates.driver(&d.key))).collect();
    let points: Vec<MatrixPoint> = stats
        .iter()
        .filter_map(|(label, s)| Some(MatrixPoint { label: label.clone(), mean: s.mean?, correlation: s.correlation? }))
        .collect();
    let table: Vec<Value> = stats
        .iter()
        .map(|(label, s)| {
            json!({
                "label": label, "answers": s.answers,
                "mean": s.mean.map(|m| format!("{m:.2}")),
                "correlation": s.correlation.map(|c| format!("{c:.2}")),
            })
        })
        .collect();
    page(
        "admin/drivers.html",
        viewer,
        &format!("{} – drivers", campaign.name),
        json!({
            "campaign": campaign_view(campaign),
            "drivers": table,
            "matrix_svg": if points.is_empty() { None } else { Some(charts::priority_matrix_svg(&points)) },
            "filter_query": null,
            "scope_note": scope_note(viewer, None, aggregates),
            "section": "drivers",
        }),
    )
}

/// Which cases the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseView {
    Open,
    Overdue,
    Closed,
    All,
}

impl CaseView {
    pub fn parse(input: Option<&str>) -> Self {
        match input {
            Some("overdue") => CaseView::Overdue,
            Some("closed") => CaseView::Closed,
            Some("all") => CaseView::All,
            _ => CaseView::Open,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CaseView::Open => "open",
            CaseView::Overdue => "overdue",
            CaseView::Closed => "closed",
            CaseView::All => "all",
        }
    }
    pub fn includes(self, case: &FollowUpCase, at: Timestamp) -> bool {
        match self {
            CaseView::Open => case.status == CaseStatus::Open,
            CaseView::Overdue => case.is_overdue(at),
            CaseView::Closed => case.status == CaseStatus::Closed,
            CaseView::All => true,
        }
    }
}

/// A case with what the list shows of its respondent.
pub struct CaseLine {
    pub case: FollowUpCase,
    pub invitation: Option<Invitation>,
    pub answer: Option<Answer>,
}

/// What the case list shows, besides the signed-in person and the campaign.
pub struct CaseList<'a> {
    pub lines: &'a [CaseLine],
    /// Cases per view (open, overdue, closed, all), for the view picker.
    pub counts: &'a BTreeMap<&'static str, usize>,
    pub view: CaseView,
    /// Everyone with a case, for the owner picker (empty for owners).
    pub owners: &'a [String],
    pub owner: Option<&'a str>,
    pub at: Timestamp,
    pub may_work: &'a dyn Fn(&FollowUpCase) -> bool,
}

pub fn cases_page(viewer: &Viewer, campaign: &Campaign, list: &CaseList<'_>) -> Result<String, RenderError> {
    let CaseList { lines, counts, view, owners, owner, at, may_work } = *list;
    let zone = viewer.zone_for(campaign);
    let cases: Vec<Value> = lines
        .iter()
        .map(|line| {
            let case = &line.case;
            let status = if case.status == CaseStatus::Closed {
                "closed"
            } else if case.is_overdue(at) {
                "overdue"
            } else {
                "open"
            };
            let c = line.invitation.as_ref().map(|i| &i.contact);
            json!({
                "id": case.invitation_id.0,
                "name": line.invitation.as_ref().map(display_name),
                "company": c.and_then(|c| c.company.clone()),
                "email": c.and_then(|c| c.email.as_ref().map(|e| e.as_str().to_owned())),
                "phone": c.and_then(|c| c.phone.as_ref().map(|p| p.as_str().to_owned())),
                "score": line.answer.as_ref().map(|a| a.score.value()),
                "comment": line.answer.as_ref().and_then(|a| a.comment.clone()),
                "contact_ok": line.answer.as_ref().is_some_and(|a| a.contact_ok),
                "owner": case.owner_email.as_ref().map(|e| e.as_str()),
                "due": case.due_at.display_in(&zone),
                "escalated": case.escalated_at.map(|t| t.display_in(&zone)),
                "status": status,
                "notes": case.notes.iter().map(|n| json!({ "by": n.by, "at": n.at.display_in(&zone), "text": n.text })).collect::<Vec<_>>(),
                "closed": case.closed.as_ref().map(|c| json!({ "by": c.by, "at": c.at.display_in(&zone), "outcome": c.outcome, "follow_up": c.follow_up })),
                "may_work": may_work(case),
            })
        })
        .collect();
    page(
        "admin/cases.html",
        viewer,
        &format!("{} – follow-up cases", campaign.name),
        json!({
            "campaign": campaign_view(campaign),
            "cases": cases,
            "counts": counts,
            "view": view.as_str(),
            "owners": owners,
            "owner": owner,
            "filter_query": null,
            "scope_note": scope_note(viewer, None, &Aggregates::default()),
            "section": "cases",
        }),
    )
}

/// One part of an export too large for one request: its download, and the link to the next.
pub struct ExportPartView<'a> {
    pub number: usize,
    pub contacts: usize,
    pub download: Option<&'a str>,
    pub next: Option<&'a str>,
}

pub fn export_parts_page(viewer: &Viewer, campaign: &Campaign, invited: u64, part: &ExportPartView<'_>) -> Result<String, RenderError> {
    page(
        "admin/export.html",
        viewer,
        &format!("{} – export part {}", campaign.name, part.number),
        json!({
            "campaign": campaign_view(campaign),
            "invited": invited,
            "number": part.number,
            "contacts": part.contacts,
            "download": part.download,
            "next": part.next,
            "filter_query": null,
            "scope_note": scope_note(viewer, None, &Aggregates::default()),
            "section": "export",
        }),
    )
}

/// A campaign's messages and pages for one locale and group, with where the sample came from.
/// `test_to`: where "Send me a test" sends (an admin's or editor's own address), if anywhere;
/// `test_sent`: one was just asked for.
pub fn preview_page(
    viewer: &Viewer,
    campaign: &Campaign,
    preview: &crate::preview::Preview,
    sample_note: &str,
    test_to: Option<&str>,
    test_sent: bool,
) -> Result<String, RenderError> {
    let locales: Vec<&str> = campaign.locales.iter().map(|l| l.code()).collect();
    page(
        "admin/preview.html",
        viewer,
        &format!("{} – preview", campaign.name),
        json!({
            "campaign": campaign_view(campaign),
            "preview": preview,
            "locales": locales,
            "sample_note": sample_note,
            "test_to": test_to,
            "test_sent": test_sent,
            "filter_query": null,
            "scope_note": scope_note(viewer, None, &Aggregates::default()),
            "section": "preview",
        }),
    )
}

pub fn sign_in_page(csrf: &str, error: Option<&str>) -> Result<String, RenderError> {
    render_admin("admin/sign_in.html", &json!({ "title": "Sign in", "csrf": csrf, "error": error, "viewer": null }))
}

pub fn message_page(viewer: Option<&Viewer>, title: &str, message: &str) -> Result<String, RenderError> {
    render_admin("admin/message.html", &json!({ "title": title, "message": message, "viewer": viewer }))
}
