//! Every kind of mail, in every locale, as the mailer sends it (the outbox's raw message), run
//! through SpamAssassin (`spamassassin -t -L`: local rules only, no network) and the Nu HTML
//! Checker. Each must score 0.5 or less and have no HTML error. Both tools are installed by
//! `scripts/setup-tests`; a missing tool fails the test, it is never skipped.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use closeloop_core::model::{Answer, Contact, Email, InvitationId, Locale, Token};
use closeloop_core::nps::{Score, Tally};
use closeloop_core::ports::MessageKind;
use closeloop_core::report::{DigestEntry, WeeklyDigest};
use closeloop_core::{Campaign, Invitation, Timestamp};
use closeloop_functions::messages::{self, Outgoing};
use closeloop_views::render::{self, RenderedMail};

const T0: Timestamp = Timestamp::from_millis(1_790_000_000_000);

/// SpamAssassin's own threshold is 5; ours is a tenth of that, so a mail keeps margin for the
/// network tests (DNS blocklists, SPF, DKIM) a receiving server adds.
const MAX_SCORE: f64 = 0.5;

fn campaign(locale: Locale) -> Campaign {
    let mut campaign = Campaign::from_toml(
        r#"
        id = "spring-visit"
        name = "Spring service visit"
        company = "Nordhavn Cykler"
        sender_name = "Karin Lund"
        sender_email = "karin@nordhavn-cykler.example"
        manager_email = "chef@nordhavn-cykler.example"
        privacy_url = "https://nordhavn-cykler.example/privacy"
        reminders = { delay_days = 3, max = 1 }
        [[drivers]]
        key = "staff"
        label = { en = "Friendly staff", sv = "Vänlig personal", da = "Venligt personale" }
        [[review_sites]]
        key = "trustpilot"
        name = "Trustpilot"
        url = "https://www.trustpilot.com/evaluate/nordhavn-cykler.example"
        "#,
    )
    .expect("the test campaign parses");
    campaign.locales = vec![locale];
    campaign
}

fn invitation(campaign: &Campaign, locale: Locale) -> Invitation {
    let contact = Contact {
        email: Some(Email::parse("asa.lindqvist@example.se").unwrap()),
        first_name: Some("Åsa".into()),
        last_name: Some("Lindqvist".into()),
        company: Some("Lindqvist Bygg AB".into()),
        store: Some("Malmö".into()),
        owner_email: Some(Email::parse("erik@nordhavn-cykler.example").unwrap()),
        ..Contact::default()
    };
    let mut invitation = Invitation::new(InvitationId(format!("inv-{}", locale.code())), Token::from_random_bytes([9; 16]), campaign, contact, T0).unwrap();
    invitation.locale = locale;
    invitation
}

fn answer(invitation: &Invitation, score: u8, contact_ok: bool, comment: &str) -> Answer {
    Answer {
        invitation_id: invitation.id.clone(),
        campaign_id: invitation.campaign_id.clone(),
        score: Score::new(score).unwrap(),
        comment: Some(comment.to_owned()),
        contact_ok,
        ratings: [("staff".to_owned(), 4)].into_iter().collect(),
        version: 1,
        first_answered_at: T0,
        answered_at: T0,
    }
}

/// Every kind of mail closeloop sends, for one locale: (name, mail).
fn every_mail(local: &closeloop_testkit::Local, locale: Locale) -> Vec<(String, Outgoing)> {
    let c = campaign(locale);
    let inv = invitation(&c, locale);
    let links = &local.services.links;
    let detractor = answer(&inv, 3, true, "The repair took two weeks longer than promised.");
    let promoter = answer(&inv, 10, false, "Quick and friendly service.");
    let request = answer(&inv, 9, true, "Happy, but please call me about the warranty.");
    let respondent = |kind, rendered: RenderedMail| Outgoing::Mail(messages::to_respondent(kind, &c, &inv, rendered, &local.services).unwrap());
    let staff = |kind, rendered: RenderedMail| Outgoing::Mail(messages::to_staff(kind, &c, "erik@nordhavn-cykler.example", rendered));
    let due = T0.plus_hours(48);
    let digest = WeeklyDigest {
        this_week: Tally { promoters: 12, passives: 5, detractors: 3 },
        last_week: Tally { promoters: 10, passives: 6, detractors: 4 },
        new_detractors: vec![DigestEntry { invitation_id: inv.id.clone(), name: "Åsa Lindqvist".into(), score: 3, comment: detractor.comment.clone(), answered_at: T0 }],
        comments: vec![DigestEntry { invitation_id: inv.id.clone(), name: "Åsa Lindqvist".into(), score: 10, comment: promoter.comment.clone(), answered_at: T0 }],
    };
    let mut mails = vec![
        ("invitation", respondent(MessageKind::Invitation, render::ask_mail(MessageKind::Invitation, &c, &inv, links).unwrap())),
        ("reminder", respondent(MessageKind::Reminder, render::ask_mail(MessageKind::Reminder, &c, &inv, links).unwrap())),
        ("heads_up", respondent(MessageKind::HeadsUp, render::heads_up_mail(&c, &inv, "Erik Berg", "2026-05-04", links).unwrap())),
        ("thank_you (detractor)", respondent(MessageKind::ThankYou, render::thank_you_mail(&c, &inv, &detractor, links).unwrap())),
        ("thank_you (contact request)", respondent(MessageKind::ThankYou, render::thank_you_mail(&c, &inv, &request, links).unwrap())),
        ("review_invitation", respondent(MessageKind::ReviewInvitation, render::review_mail(&c, &inv, &promoter, links).unwrap())),
        ("alert (detractor)", staff(MessageKind::Alert, render::follow_up_mail(MessageKind::Alert, &c, &inv, &detractor, due).unwrap())),
        ("alert (contact request)", staff(MessageKind::Alert, render::follow_up_mail(MessageKind::Alert, &c, &inv, &request, due).unwrap())),
        ("escalation", staff(MessageKind::Escalation, render::follow_up_mail(MessageKind::Escalation, &c, &inv, &detractor, due).unwrap())),
    ];
    let zone = c.zone();
    let digest_mail = render::digest_mail(locale, &zone, "Erik Berg", &digest, &[Some((due, false))], (2, 1), "https://nps.example/admin/c/spring-visit").unwrap();
    mails.push(("digest", staff(MessageKind::Digest, digest_mail)));
    let disabled = render::webhook_disabled_mail(&c, "https://crm.nordhavn-cykler.example/hooks/nps", "crm.nordhavn-cykler.example", 20, "HTTP 503", "https://nps.example/admin/c/spring-visit/webhooks").unwrap();
    mails.push(("webhook_disabled", staff(MessageKind::WebhookDisabled, disabled)));
    mails.into_iter().map(|(name, mail)| (format!("{name} [{}]", locale.code()), mail)).collect()
}

/// The raw messages, sent through the outbox exactly as the dispatcher sends them.
async fn raw_messages() -> Result<Vec<(String, String)>> {
    let local = closeloop_testkit::local();
    let mut named = Vec::new();
    for locale in [Locale::En, Locale::Sv, Locale::Da] {
        for (i, (name, mail)) in every_mail(&local, locale).into_iter().enumerate() {
            let key = format!("{}:{}:{i}", locale.code(), name.split(' ').next().unwrap_or("mail"));
            assert!(messages::send_once(&local.services, &key, mail).await?, "{name} was sent");
            named.push(name);
        }
    }
    // The outbox lists newest first.
    let mut stored = local.outbox.messages()?;
    stored.reverse();
    assert_eq!(stored.len(), named.len());
    Ok(named.into_iter().zip(stored).map(|(name, m)| (name, m.raw.expect("every mail keeps its raw message"))).collect())
}

fn spam_score(raw: &str) -> Result<(f64, String)> {
    let mut child = Command::new("spamassassin")
        .args(["-t", "-L"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spamassassin is not installed: run scripts/setup-tests")?;
    child.stdin.take().context("spamassassin's stdin")?.write_all(raw.as_bytes())?;
    let out = child.wait_with_output()?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    // "X-Spam-Status: No, score=0.1 required=5.0 tests=A,B,\n\tC autolearn=…", folded.
    let status: String = report
        .split("\nX-Spam-Status: ")
        .nth(1)
        .context("no X-Spam-Status in SpamAssassin's output")?
        .split('\n')
        .enumerate()
        .take_while(|(i, line)| *i == 0 || line.starts_with([' ', '\t']))
        .map(|(_, line)| line.trim())
        .collect::<Vec<_>>()
        .join(" ");
    let score = status.split("score=").nth(1).and_then(|s| s.split(' ').next()).context("no score")?.parse()?;
    Ok((score, status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_mail_in_every_locale_scores_half_a_point_or_less_with_spamassassin() -> Result<()> {
    let messages = raw_messages().await?;
    assert_eq!(messages.len(), 33, "eleven kinds of mail in three locales");
    for (name, raw) in &messages {
        for line in raw.split("\r\n\r\n").next().unwrap_or_default().split("\r\n") {
            // A URL cannot fold; everything else does, and encoded words must.
            let limit = if line.contains("=?") { 76 } else if line.contains("<mailto:") || line.contains("<http") { 998 } else { 78 };
            assert!(line.len() <= limit, "{name}: a header line of {} characters, over {limit}: {line}", line.len());
        }
    }
    // Two at a time: each run is a second of Perl start-up.
    let mut scored = Vec::new();
    for pair in messages.chunks(2) {
        let handles: Vec<_> = pair.iter().cloned().map(|(name, raw)| tokio::task::spawn_blocking(move || spam_score(&raw).map(|s| (name, s)))).collect();
        for handle in handles {
            scored.push(handle.await??);
        }
    }
    let mut failed = Vec::new();
    for (name, (score, status)) in &scored {
        println!("spamassassin {score:>5.1}  {name}  ({status})");
        if *score > MAX_SCORE {
            failed.push(format!("{name}: {status}"));
        }
    }
    if !failed.is_empty() {
        bail!("{} of {} mails score above {MAX_SCORE}:\n{}", failed.len(), scored.len(), failed.join("\n"));
    }
    Ok(())
}

#[tokio::test]
async fn every_kind_of_mail_in_every_locale_has_html_without_errors_in_the_nu_checker() -> Result<()> {
    let messages = raw_messages().await?;
    let jar = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/node_modules/vnu-jar/build/dist/vnu.jar");
    if !jar.exists() {
        bail!("{} is missing: run scripts/setup-tests", jar.display());
    }
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for (i, (name, raw)) in messages.iter().enumerate() {
        let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).context("the raw message parses")?;
        let html = parsed.body_html(0).with_context(|| format!("{name} has an HTML part"))?;
        let path = dir.path().join(format!("{i:02}.html"));
        std::fs::write(&path, html.as_bytes())?;
        files.push((name.clone(), path));
    }
    let out = Command::new("java")
        .arg("-jar")
        .arg(&jar)
        .args(["--errors-only", "--format", "text"])
        .args(files.iter().map(|(_, p)| p))
        .output()
        .context("java is not installed: run scripts/setup-tests")?;
    let report = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let mut named = report.clone();
    for (name, path) in &files {
        named = named.replace(&format!("file:{}", path.display()), name);
    }
    println!("vnu checked {} mails", files.len());
    if !out.status.success() || report.contains("Error:") {
        bail!("the Nu HTML Checker found errors:\n{named}");
    }
    Ok(())
}
