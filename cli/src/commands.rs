//! What each subcommand does, apart from argument parsing.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use closeloop_core::ports::{Clock, ManualClock, Store};
use closeloop_core::report::{build_report, Figures, Report};
use closeloop_core::{Campaign, CampaignId, Timestamp};
use closeloop_embedded::SystemClock;
use closeloop_functions::launch::{dry_run, launch, launch_file_with_progress, ContactsFile, DryRunReport, LaunchSummary};
use closeloop_functions::schedule::{self, ScheduleSummary};

use crate::{serve, LocalApp, Settings};

pub const DEMO_CAMPAIGN: &str = include_str!("../../demo/campaign.toml");
pub const DEMO_CONTACTS: &str = include_str!("../../demo/contacts.csv");

pub fn read_campaign(path: &Path) -> anyhow::Result<Campaign> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Campaign::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

/// Launches and sends the invitations before returning.
pub async fn launch_campaign(app: &LocalApp, campaign: &Campaign, csv: &[u8]) -> anyhow::Result<LaunchSummary> {
    closeloop_functions::launch::save_campaign_file(&app.services, campaign, "closeloop launch").await?;
    let summary = launch(&app.services, campaign, csv).await?;
    app.dispatch().await?;
    Ok(summary)
}

pub fn describe_launch(campaign: &Campaign, s: &LaunchSummary) -> String {
    let mut out = format!(
        "Campaign {} launched: {} invited, {} duplicates, {} suppressed, {} surveyed within {} days, {} bad rows\n",
        campaign.id,
        s.invited,
        s.duplicates,
        s.suppressed,
        s.throttled,
        campaign.throttle_days,
        s.bad_rows.len()
    );
    for problem in &s.bad_rows {
        let _ = writeln!(out, "  line {}: {}", problem.line, problem.reason);
    }
    out
}

/// `closeloop launch` beyond the two files.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// `--map "Header=field"`, over the campaign's `[columns]`.
    pub map: Vec<String>,
    pub sheet: Option<String>,
    pub dry_run: bool,
    pub json: bool,
}

pub async fn cmd_launch(settings: &Settings, campaign_path: &Path, contacts_path: &Path, options: &LaunchOptions) -> anyhow::Result<()> {
    let campaign = read_campaign(campaign_path)?;
    let columns = closeloop_core::import::parse_mapping_pairs(&options.map).context("in --map")?;
    let csv = std::fs::read(contacts_path).with_context(|| format!("reading {}", contacts_path.display()))?;
    let file = ContactsFile { bytes: &csv, sheet: options.sheet.as_deref(), columns: Some(&columns) };
    if options.dry_run {
        let report = dry_run_here(settings, &campaign, &file).await.with_context(|| format!("in {}", contacts_path.display()))?;
        if options.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", describe_dry_run(&contacts_path.display().to_string(), &report));
        }
        return Ok(());
    }
    let app = LocalApp::open(settings, Arc::new(SystemClock))?;
    let started = Instant::now();
    // The job's rows as they are written; hidden when stderr is not a terminal (scripts, tests).
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("Launching {}", campaign.id));
    let source = contacts_path.display().to_string();
    // The file's settings become the campaign's, in its change log like any edit.
    closeloop_functions::launch::save_campaign_file(&app.services, &campaign, "closeloop launch").await?;
    let launch_id = closeloop_core::launch::LaunchId::of(&campaign.id, &csv);
    cli_audit(&app.services, closeloop_core::audit::AuditAction::CampaignLaunched, &format!("{}: launch {launch_id}", campaign.id)).await?;
    let before = app.store.launch(&launch_id).await?;
    match &before {
        Some(job) if job.is_finished() => println!("This file was launched before (launch {}); reporting it as it stands.", job.id),
        Some(job) => println!("Resuming launch {}: {} of {} rows written before.", job.id, job.rows_processed, job.total_rows),
        None => {}
    }
    let job = launch_file_with_progress(&app.services, &campaign, &source, &file, &|job| {
        bar.set_length(job.total_rows);
        bar.set_position(job.rows_processed);
    })
    .await?;
    bar.finish_and_clear();
    app.dispatch().await?;
    print!("{}", describe_launch(&campaign, &LaunchSummary::from(&job)));
    println!("Launch {} {}; done in {:.2} s; the messages are in the outbox.", job.id, job_state(&job), started.elapsed().as_secs_f64());
    Ok(())
}

/// The dry run against the local store if there is one, else against an empty one in memory:
/// a dry run creates no database.
async fn dry_run_here(settings: &Settings, campaign: &Campaign, file: &ContactsFile<'_>) -> anyhow::Result<DryRunReport> {
    let app = if settings.data_dir.join("closeloop.db").exists() {
        LocalApp::open(settings, Arc::new(SystemClock))?
    } else {
        LocalApp::with_store(closeloop_embedded::SqliteStore::open_in_memory()?, settings, Arc::new(SystemClock))
    };
    Ok(dry_run(&app.services, campaign, file).await?)
}

pub fn describe_dry_run(source: &str, r: &DryRunReport) -> String {
    use closeloop_core::import::MappedBy;
    let mut out = format!("Dry run of {source} for campaign {}: nothing was written.\n", r.campaign);
    let _ = writeln!(out, "Read as {}.", r.file);
    let _ = writeln!(out, "Columns:");
    let width = r.mapping.iter().map(|c| c.header.chars().count()).max().unwrap_or(0) + 2;
    for c in &r.mapping {
        let header = format!("{:?}", c.header);
        let target = match (c.field, &c.property) {
            (Some(field), _) => field.as_str().to_owned(),
            (None, Some(property)) => format!("custom property {property}"),
            (None, None) => "ignored (no header)".to_owned(),
        };
        let by = match c.by {
            MappedBy::Explicit => " (--map or [columns])",
            MappedBy::Suggested => " (suggested)",
            MappedBy::Custom => "",
        };
        let _ = writeln!(out, "  {header:<width$} -> {target}{by}");
    }
    if !r.unused_mapping.is_empty() {
        let unused: Vec<String> = r.unused_mapping.iter().map(|h| format!("{h:?}")).collect();
        let _ = writeln!(out, "Mapped columns not in the file: {}", unused.join(", "));
    }
    let _ = writeln!(
        out,
        "{} rows: {} would be invited, {} skipped ({} duplicates in the file, {} suppressed, {} surveyed within {} days), {} bad rows",
        r.rows,
        r.would_invite,
        r.duplicates + r.suppressed + r.throttled,
        r.duplicates,
        r.suppressed,
        r.throttled,
        r.throttle_days,
        r.bad_rows.len()
    );
    for problem in &r.bad_rows {
        let _ = writeln!(out, "  line {}: {}", problem.line, problem.reason);
    }
    match r.launched_before {
        Some(closeloop_core::launch::LaunchState::Done | closeloop_core::launch::LaunchState::Failed) => {
            let _ = writeln!(out, "This file was launched before (launch {}): launching it again reports that launch as it stands.", r.launch_id);
        }
        Some(_) => {
            let _ = writeln!(out, "This file's launch {} was started before: launching it again resumes it.", r.launch_id);
        }
        None => {}
    }
    out
}

fn job_state(job: &closeloop_core::launch::LaunchJob) -> &'static str {
    match job.state {
        closeloop_core::launch::LaunchState::Validating => "validating",
        closeloop_core::launch::LaunchState::Running => "still running",
        closeloop_core::launch::LaunchState::Done => "done",
        closeloop_core::launch::LaunchState::Failed => "failed",
    }
}

pub async fn cmd_up(settings: &Settings, port: u16, demo: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let (_, new_admin_token) = crate::accounts_file::load_or_create(settings)?;
    let mut app = LocalApp::open(settings, Arc::new(SystemClock))?;
    // The demo's outbox is open to the machine (it is how the demo is read); otherwise it holds
    // every survey and unsubscribe token sent, for signed-in admins only.
    app.outbox_open = demo;
    if demo {
        let campaign = Campaign::from_toml(DEMO_CAMPAIGN).context("the demo campaign file")?;
        if app.store.campaign(&campaign.id).await?.is_none() {
            let summary = launch_campaign(&app, &campaign, DEMO_CONTACTS.as_bytes()).await?;
            print!("{}", describe_launch(&campaign, &summary));
        } else {
            println!("Demo campaign {} already launched in {}; keeping its data.", campaign.id, settings.data_dir.display());
        }
        println!("Survey links:");
        for row in app.store.campaign_rows(&campaign.id).await? {
            let inv = &row.invitation;
            println!("  {:<24} {:<5} {}", inv.contact.full_name(), inv.channel.as_str(), app.services.links.survey(&inv.token));
        }
    }
    let api_token = settings.api_token.clone();
    let app = app.with_people_api_token(std::env::var("CLOSELOOP_PEOPLE_API_TOKEN").ok());
    let people_api = app.people_api_token.is_some();
    let running = serve(app, SocketAddr::from(([127, 0, 0, 1], port)), api_token.clone(), true).await?;
    if demo {
        println!("Outbox:    http://{}/outbox", running.addr);
    } else {
        println!("Outbox:    http://localhost:{}/outbox (signed-in admins)", running.addr.port());
    }
    // localhost rather than 127.0.0.1: browsers keep the dashboard's Secure cookie over plain
    // http only for localhost.
    println!("Dashboard: http://localhost:{}/admin", running.addr.port());
    if let Some(token) = new_admin_token {
        println!(
            "           sign in with the admin token {token} (shown once; {} keeps only its hash)",
            crate::accounts_file::accounts_path(settings).display()
        );
    }
    if !people_api {
        println!("People API: disabled (set CLOSELOOP_PEOPLE_API_TOKEN to enable GET /api/v1/people and POST /api/v1/people/erase)");
    }
    if api_token.is_none() {
        println!("API:       disabled (set CLOSELOOP_API_TOKEN to enable POST /api/v1/invitations)");
    }
    println!("closeloop is up on http://{} ({} ms). Ctrl-C stops it.", running.addr, started.elapsed().as_millis());
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    running.stop().await;
    Ok(())
}

/// `closeloop account add`: prints the new account's sign-in token, once.
pub fn cmd_account_add(settings: &Settings, name: &str, role: &str, email: Option<&str>, locale: Option<&str>, time_zone: Option<&str>) -> anyhow::Result<String> {
    use closeloop_core::accounts::Role;
    let role = match role {
        "admin" => Role::Admin,
        "editor" => Role::Editor,
        "viewer" => Role::Viewer,
        "owner" => Role::Owner,
        other => bail!("role {other:?} must be admin, editor, viewer or owner"),
    };
    let email = email.map(closeloop_core::Email::parse).transpose()?;
    let locale = match locale {
        Some(code) => Some(closeloop_core::Locale::parse(code).with_context(|| format!("locale {code:?} must be en, sv or da"))?),
        None => None,
    };
    let time_zone = time_zone.map(closeloop_core::time::Zone::parse).transpose()?;
    let account = crate::accounts_file::NewAccount { name, role, email: email.as_ref(), locale, time_zone: time_zone.as_ref() };
    let token = crate::accounts_file::add_account(settings, &account)?;
    println!("Account {name:?} ({}) added. Sign-in token, shown only now: {token}", role.as_str());
    Ok(token)
}

pub async fn cmd_run_schedule(settings: &Settings, at: &str) -> anyhow::Result<ScheduleSummary> {
    let at = Timestamp::parse_rfc3339(at)?;
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(at));
    let app = LocalApp::open(settings, clock)?;
    // Events first, so an answer that arrived just before counts as answered.
    app.dispatch().await?;
    let summary = schedule::run(&app.services, &app.accounts, at).await?;
    println!(
        "Schedule as of {}: {} reminders sent, {} skipped (unsubscribed), {} overdue follow-ups escalated",
        at.to_rfc3339(),
        summary.reminders_sent,
        summary.reminders_skipped,
        summary.escalations_sent
    );
    Ok(summary)
}

#[derive(serde::Serialize)]
pub struct CampaignReport {
    pub campaign: CampaignId,
    pub name: String,
    #[serde(flatten)]
    pub report: Report,
}

pub async fn reports(app: &LocalApp, campaign: Option<&str>) -> anyhow::Result<Vec<CampaignReport>> {
    let campaigns = match campaign {
        Some(id) => {
            let id = CampaignId::parse(id)?;
            match app.store.campaign(&id).await? {
                Some(c) => vec![c],
                None => bail!("no campaign {id}"),
            }
        }
        None => app.store.campaigns().await?,
    };
    let mut out = Vec::with_capacity(campaigns.len());
    for c in campaigns {
        let rows = app.store.campaign_rows(&c.id).await?;
        out.push(CampaignReport { campaign: c.id, name: c.name, report: build_report(&rows) });
    }
    Ok(out)
}

fn figures_line(f: &Figures) -> String {
    let rate = f.response_rate.map_or("-".to_owned(), |r| format!("{:.1} %", r * 100.0));
    let nps = match (f.nps, f.margin_95) {
        (Some(nps), Some(m)) => format!("NPS {nps:+.0} ± {m:.0}{}", if f.small_sample { " (small sample)" } else { "" }),
        _ => "NPS -".to_owned(),
    };
    format!(
        "sent {}, answered {} ({rate}), promoters {}, passives {}, detractors {}, {nps}",
        f.sent, f.answered, f.promoters, f.passives, f.detractors
    )
}

pub fn describe_reports(reports: &[CampaignReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let t = &r.report.total;
        let _ = writeln!(out, "{} ({})", r.campaign, r.name);
        let _ = writeln!(out, "  total: {}", figures_line(t));
        let _ = writeln!(out, "  unsubscribed {}, review-site clicks {}", t.unsubscribed, t.review_clicks);
        for (dimension, groups) in &r.report.by {
            let _ = writeln!(out, "  by {dimension}:");
            for (value, f) in groups {
                let _ = writeln!(out, "    {value:<40} {}", figures_line(f));
            }
        }
    }
    out
}

pub async fn cmd_report(settings: &Settings, campaign: Option<&str>, json: bool) -> anyhow::Result<()> {
    let app = LocalApp::open(settings, Arc::new(SystemClock))?;
    let reports = reports(&app, campaign).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else if reports.is_empty() {
        println!("No campaigns yet: launch one with `closeloop launch` or `closeloop up --demo`.");
    } else {
        print!("{}", describe_reports(&reports));
    }
    Ok(())
}

/// `closeloop person export`: the person's data as JSON on stdout.
pub async fn cmd_person_export(settings: &Settings, email: Option<&str>, phone: Option<&str>) -> anyhow::Result<()> {
    let person = closeloop_core::privacy::Person::parse(email, phone)?;
    let app = LocalApp::open(settings, Arc::new(SystemClock))?;
    let services = &app.services;
    cli_audit(services, closeloop_core::audit::AuditAction::PersonExported, &closeloop_functions::privacy::pseudonym(services.store.as_ref(), &person).await?).await?;
    let export = closeloop_functions::privacy::export(services.store.as_ref(), &person, services.clock.now()).await?;
    println!("{}", serde_json::to_string_pretty(&export)?);
    Ok(())
}

/// `closeloop person erase`: without `--yes` only says what would go.
pub async fn cmd_person_erase(settings: &Settings, email: Option<&str>, phone: Option<&str>, yes: bool) -> anyhow::Result<()> {
    let person = closeloop_core::privacy::Person::parse(email, phone)?;
    let app = LocalApp::open(settings, Arc::new(SystemClock))?;
    let services = &app.services;
    let store = services.store.as_ref();
    if !yes {
        let (ids, _) = closeloop_functions::privacy::find(store, &person).await?;
        anyhow::bail!("{} invitation(s) of {} would be erased; this cannot be undone: run again with --yes", ids.len(), person.as_str());
    }
    cli_audit(services, closeloop_core::audit::AuditAction::PersonErased, &closeloop_functions::privacy::pseudonym(store, &person).await?).await?;
    let report = closeloop_functions::privacy::erase(store, &person, services.clock.now()).await?;
    println!(
        "Erased {}: {} invitation(s) anonymised, {} contact key(s) kept only as a keyed hash on the suppression list.",
        person.as_str(),
        report.invitations_erased,
        report.keys_suppressed
    );
    Ok(())
}

/// The command line's entry in the audit log: `cli` and the login name, no client address.
async fn cli_audit(services: &closeloop_functions::Services, action: closeloop_core::audit::AuditAction, subject: &str) -> anyhow::Result<()> {
    let user = std::env::var("USER").unwrap_or_default();
    let who = if user.is_empty() { "cli".to_owned() } else { format!("cli ({user})") };
    let entry = closeloop_core::audit::AuditEntry::new(services.clock.now(), &who, action, subject, None);
    services.store.append_audit(&entry).await?;
    Ok(())
}
