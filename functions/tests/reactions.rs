//! Reactions against the embedded store: who gets what, and nothing twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use closeloop_core::model::{Answer, Event, EventKind};
use closeloop_core::ports::{Clock, Mailer, ManualClock, OutgoingMail, SendError, Store};
use closeloop_core::{Campaign, Invitation, Score, Timestamp};
use closeloop_embedded::{Outbox, SqliteStore};
use closeloop_functions::{dispatch, launch, schedule, Services};

const T0: Timestamp = Timestamp::from_millis(1_790_000_000_000);

const CAMPAIGN: &str = r#"
id = "reactions"
name = "Reactions"
company = "Acme"
sender_name = "Sam"
sender_email = "sam@acme.example"
manager_email = "boss@acme.example"
alert_threshold = 6
follow_up_hours = 24
reminders = { delay_days = 3, max = 1 }
[[review_sites]]
key = "google"
name = "Google"
url = "https://g.example/review"
"#;

/// Fails the first `failures` sends with a temporary error, then delivers to the outbox.
struct FlakyMailer {
    inner: Outbox,
    failures: AtomicUsize,
}

#[async_trait]
impl Mailer for FlakyMailer {
    async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(SendError::transient("throttled"));
        }
        self.inner.send_mail(mail).await
    }
}

struct World {
    services: Services,
    store: SqliteStore,
    outbox: Outbox,
    clock: Arc<ManualClock>,
    invitations: Vec<Invitation>,
    campaign: Campaign,
}

async fn world(mail_failures: usize) -> World {
    world_with(CAMPAIGN, mail_failures).await
}

/// The reactions' adapters over `store`, its outbox as mailer (failing `mail_failures` times
/// first) and SMS sender, at T0 on a clock the test moves.
fn services_over(store: &SqliteStore, mail_failures: usize) -> (Services, Outbox, Arc<ManualClock>) {
    let local = closeloop_testkit::Local::over(store.clone());
    let flaky = Arc::new(FlakyMailer { inner: local.outbox.clone(), failures: AtomicUsize::new(mail_failures) });
    let local = local.with_mailer(flaky);
    (local.services, local.outbox, local.clock)
}

async fn world_with(campaign_toml: &str, mail_failures: usize) -> World {
    let store = SqliteStore::open_in_memory().unwrap();
    let (services, outbox, clock) = services_over(&store, mail_failures);
    let campaign = Campaign::from_toml(campaign_toml).unwrap();
    let csv = "email,phone,first_name,owner_email\npro@example.com,,Pia,owner@acme.example\npas@example.com,,Per,owner@acme.example\ndet@example.com,,Dag,owner@acme.example\n,+4520123456,Sid,\n";
    launch::launch(&services, &campaign, csv.as_bytes()).await.unwrap();
    let invitations = store.campaign_rows(&campaign.id).await.unwrap().into_iter().map(|r| r.invitation).collect();
    World { services, store, outbox, clock, invitations, campaign }
}

impl World {
    fn invitation(&self, first_name: &str) -> &Invitation {
        self.invitations.iter().find(|i| i.contact.first_name.as_deref() == Some(first_name)).unwrap()
    }

    async fn answer(&self, first_name: &str, score: u8) -> Event {
        let inv = self.invitation(first_name);
        let previous = self.store.answer(&inv.id).await.unwrap();
        let version = previous.as_ref().map_or(1, |p| p.version + 1);
        let now = self.clock.now();
        let answer = Answer {
            invitation_id: inv.id.clone(),
            campaign_id: self.campaign.id.clone(),
            score: Score::new(score).unwrap(),
            comment: None,
            contact_ok: false,
            ratings: Default::default(),
            version,
            first_answered_at: previous.map_or(now, |p| p.first_answered_at),
            answered_at: now,
        };
        let event = Event {
            id: format!("answer-{}-{version}", inv.id),
            at: now,
            kind: EventKind::AnswerRecorded { invitation_id: inv.id.clone(), version, previous_score: None, score: answer.score },
        };
        // These tests are about reactions; the counters are the contract suite's business.
        self.store.record_answer(&answer, &event, &Default::default()).await.unwrap();
        event
    }

    fn sent(&self, to: &str, kind: &str) -> usize {
        self.outbox.messages().unwrap().iter().filter(|m| m.to.contains(to) && m.kind == kind).count()
    }
}

#[tokio::test]
async fn invitations_go_out_by_email_or_sms_once_each() {
    let w = world(0).await;
    let summary = dispatch::dispatch_pending(&w.services).await.unwrap();
    assert_eq!(summary.handled, 4);
    assert_eq!(w.sent("pro@example.com", "invitation"), 1);
    let sms: Vec<_> = w.outbox.messages().unwrap().into_iter().filter(|m| m.channel == "sms").collect();
    assert_eq!(sms.len(), 1);
    assert!(sms[0].text.contains("https://nps.example/s/"));
    assert_eq!(dispatch::dispatch_pending(&w.services).await.unwrap().handled, 0);
}

#[tokio::test]
async fn a_redelivered_event_sends_nothing_twice() {
    let w = world(0).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    let event = w.answer("Dag", 2).await;
    dispatch::handle_event(&w.services, &event).await.unwrap();
    let before = w.outbox.messages().unwrap().len();
    dispatch::handle_event(&w.services, &event).await.unwrap();
    dispatch::handle_event(&w.services, &event).await.unwrap();
    assert_eq!(w.outbox.messages().unwrap().len(), before);
    assert_eq!(w.sent("det@example.com", "thank_you"), 1);
    assert_eq!(w.sent("owner@acme.example", "alert"), 1);
}

#[tokio::test]
async fn a_temporary_send_failure_is_retried_and_then_sent_exactly_once() {
    let w = world(1).await;
    let first = dispatch::dispatch_pending(&w.services).await.unwrap();
    assert_eq!(first.deferred, 1, "the failed invitation stays pending");
    let second = dispatch::dispatch_pending(&w.services).await.unwrap();
    assert_eq!(second.deferred, 0);
    for to in ["pro@", "pas@", "det@"] {
        assert_eq!(w.sent(to, "invitation"), 1, "{to}");
    }
}

#[tokio::test]
async fn a_batch_of_invitations_redone_after_a_crash_sends_only_what_was_not_sent() {
    let w = world(0).await;
    // A run that sent Pia's invitation, then died before completing its events.
    let pia = w.invitation("Pia").id.clone();
    assert!(w.store.claim_send(&format!("invitation:{pia}"), T0).await.unwrap());
    let summary = dispatch::dispatch_pending(&w.services).await.unwrap();
    assert_eq!((summary.handled, summary.deferred, summary.dropped), (4, 0, 0));
    assert_eq!(w.sent("pro@example.com", "invitation"), 0, "claimed before: not sent again");
    for to in ["pas@", "det@", "+4520123456"] {
        assert_eq!(w.sent(to, "invitation"), 1, "{to}");
    }
    assert!(w.store.pending_events(10).await.unwrap().is_empty(), "every event completed");
}

#[tokio::test]
async fn answers_dispatched_together_are_read_in_one_go_and_still_honour_an_unsubscribe() {
    let w = world(0).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    w.answer("Pia", 10).await;
    w.answer("Dag", 2).await;
    // Dag unsubscribed after answering: no thank-you, but the owner still hears of the detractor.
    let dag = w.invitation("Dag").contact.email.clone().unwrap();
    w.store.suppress(&closeloop_core::model::ContactKey::email(&dag), closeloop_core::model::SuppressionReason::Unsubscribed, T0).await.unwrap();
    let summary = dispatch::dispatch_pending(&w.services).await.unwrap();
    assert_eq!((summary.deferred, summary.dropped), (0, 0));
    assert_eq!(w.sent("pro@example.com", "thank_you"), 1);
    assert_eq!(w.sent("pro@example.com", "review_invitation"), 1);
    assert_eq!(w.sent("det@example.com", "thank_you"), 0, "suppressed since");
    assert_eq!(w.sent("owner@acme.example", "alert"), 1);
}

#[tokio::test]
async fn one_unreadable_invitation_in_a_batch_costs_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("closeloop.db");
    let store = SqliteStore::open(&path).unwrap();
    let (services, outbox, _) = services_over(&store, 0);
    let campaign = Campaign::from_toml(CAMPAIGN).unwrap();
    launch::launch(&services, &campaign, b"email,first_name\na@example.com,A\nb@example.com,B\nc@example.com,C\n").await.unwrap();
    // A row no reader can decode, as a broken hand edit or a bad migration leaves it.
    let broken = rusqlite::Connection::open(&path).unwrap().execute(r#"UPDATE invitations SET body = '{"broken": true}' WHERE body LIKE '%b@example.com%'"#, []).unwrap();
    assert_eq!(broken, 1);
    let summary = dispatch::dispatch_pending(&services).await.unwrap();
    assert_eq!((summary.handled, summary.dropped, summary.deferred), (2, 1, 0), "{summary:?}");
    let sent: Vec<String> = outbox.messages().unwrap().into_iter().map(|m| m.to).collect();
    assert!(sent.iter().any(|t| t.contains("a@example.com")) && sent.iter().any(|t| t.contains("c@example.com")), "{sent:?}");
    assert_eq!(sent.len(), 2);
}

#[tokio::test]
async fn each_group_gets_its_own_reactions() {
    let w = world(0).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    w.answer("Pia", 10).await;
    w.answer("Per", 7).await;
    w.answer("Dag", 0).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    assert_eq!(w.sent("pro@", "thank_you"), 1);
    assert_eq!(w.sent("pro@", "review_invitation"), 1, "promoters are pushed to review");
    assert_eq!(w.sent("pas@", "thank_you"), 1);
    assert_eq!(w.sent("pas@", "review_invitation"), 0);
    assert_eq!(w.sent("det@", "review_invitation"), 0);
    let alerts: Vec<_> = w.outbox.messages().unwrap().into_iter().filter(|m| m.kind == "alert").collect();
    assert_eq!(alerts.len(), 1, "only the detractor raises an alert");
    assert!(alerts[0].text.contains("Dag") && alerts[0].text.contains("Score: 0"));
    let case = w.store.case(&w.invitation("Dag").id).await.unwrap().unwrap();
    assert_eq!(case.due_at, T0.plus_hours(24));
    let thanks = w.outbox.messages().unwrap().into_iter().find(|m| m.to.contains("pas@") && m.kind == "thank_you").unwrap();
    assert!(thanks.headers.contains(&("List-Unsubscribe-Post".to_owned(), "List-Unsubscribe=One-Click".to_owned())));
    assert!(thanks.text.contains("/r/") && thanks.text.contains("/google"), "passives see the site open to everyone");
}

#[tokio::test]
async fn changing_to_a_detractor_score_raises_the_alert_then() {
    let w = world(0).await;
    w.answer("Pia", 9).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    assert_eq!(w.sent("owner@", "alert"), 0);
    w.answer("Pia", 3).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    assert_eq!(w.sent("owner@", "alert"), 1);
    assert_eq!(w.sent("pro@", "thank_you"), 1, "thanked once per invitation, not per edit");
}

#[tokio::test]
async fn reminders_reach_only_the_silent_and_only_once() {
    let w = world(0).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    w.answer("Pia", 9).await;
    for key in w.invitation("Per").contact.keys() {
        w.store.suppress(&key, closeloop_core::SuppressionReason::Unsubscribed, T0).await.unwrap();
    }
    dispatch::dispatch_pending(&w.services).await.unwrap();
    let early = schedule::run(&w.services, &Default::default(), T0.plus_days(2)).await.unwrap();
    assert_eq!(early.reminders_sent, 0, "not before the delay");
    let due = schedule::run(&w.services, &Default::default(), T0.plus_days(3)).await.unwrap();
    assert_eq!(due.reminders_sent, 2, "Dag by email and Sid by SMS");
    assert_eq!(w.sent("det@", "reminder"), 1);
    assert_eq!(w.sent("pro@", "reminder") + w.sent("pas@", "reminder"), 0);
    let later = schedule::run(&w.services, &Default::default(), T0.plus_days(30)).await.unwrap();
    assert_eq!(later.reminders_sent, 0, "max one reminder");
}

#[tokio::test]
async fn an_overdue_follow_up_escalates_to_the_manager_once() {
    let w = world(0).await;
    w.answer("Dag", 1).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    assert_eq!(schedule::run(&w.services, &Default::default(), T0.plus_hours(23)).await.unwrap().escalations_sent, 0);
    assert_eq!(schedule::run(&w.services, &Default::default(), T0.plus_hours(25)).await.unwrap().escalations_sent, 1);
    assert_eq!(schedule::run(&w.services, &Default::default(), T0.plus_hours(50)).await.unwrap().escalations_sent, 0);
    let escalation = w.outbox.messages().unwrap().into_iter().find(|m| m.kind == "escalation").unwrap();
    assert_eq!(escalation.to, "boss@acme.example");
}

/// T0 is a Monday afternoon (2026-09-21 14:13 UTC): the next Monday 08:00 UTC, when digests go.
fn next_monday_morning() -> Timestamp {
    let monday = (1..=7).map(|d| T0.plus_days(d)).find(|t| t.weekday_number() == 1).unwrap();
    Timestamp::from_millis(monday.millis() - (monday.millis() % closeloop_core::time::DAY_MS) + 8 * closeloop_core::time::HOUR_MS)
}

#[tokio::test]
async fn monday_morning_brings_each_owner_one_digest_of_their_week() {
    let w = world(0).await;
    w.answer("Pia", 10).await;
    w.answer("Dag", 2).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    let monday_morning = next_monday_morning();
    let sunday = monday_morning.minus_days(1);
    assert_eq!(schedule::run(&w.services, &Default::default(), sunday).await.unwrap().digests_sent, 0, "not on Sundays");
    let run = schedule::run(&w.services, &Default::default(), monday_morning).await.unwrap();
    assert_eq!(run.digests_sent, 2, "the owner of Pia's and Dag's contacts, and the campaign's manager");
    let digests: Vec<_> = w.outbox.messages().unwrap().into_iter().filter(|m| m.kind == "digest").collect();
    let owner = digests.iter().find(|m| m.to == "owner@acme.example").unwrap();
    assert!(owner.subject.as_deref().unwrap().contains("NPS: +0 from 2 answers"), "{:?}", owner.subject);
    assert!(owner.text.contains("Dag: 2"), "the new detractor with the follow-up: {}", owner.text);
    assert!(owner.text.contains("overdue since") || owner.text.contains("follow-up due"));
    assert!(digests.iter().any(|m| m.to == "boss@acme.example"));
    let later = schedule::run(&w.services, &Default::default(), monday_morning.plus_hours(1)).await.unwrap();
    assert_eq!(later.digests_sent, 0, "once a week");
}

#[tokio::test]
async fn digests_speak_the_owners_language_reach_admin_accounts_and_count_open_cases() {
    use closeloop_core::accounts::{Accounts, Role};
    use closeloop_core::Email;
    let w = world(0).await;
    w.answer("Pia", 10).await;
    w.answer("Dag", 2).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    let monday_morning = next_monday_morning();
    let accounts = Accounts::from_toml(&format!(
        "[[account]]\nname = \"O\"\nrole = \"owner\"\nemail = \"owner@acme.example\"\nlocale = \"sv\"\ntoken_sha256 = \"{h}\"\n\
         [[account]]\nname = \"A\"\nrole = \"admin\"\nemail = \"cx@acme.example\"\ntoken_sha256 = \"{h}\"\n",
        h = closeloop_core::accounts::token_hash_hex("x")
    ))
    .unwrap();
    assert!(accounts.by_email(&Email::parse("cx@acme.example").unwrap()).is_some_and(|a| a.role == Role::Admin));
    let run = schedule::run(&w.services, &accounts, monday_morning).await.unwrap();
    assert_eq!(run.digests_sent, 3, "the owner, the manager and the admin account");
    let digests: Vec<_> = w.outbox.messages().unwrap().into_iter().filter(|m| m.kind == "digest").collect();
    let owner = digests.iter().find(|m| m.to == "owner@acme.example").unwrap();
    assert!(owner.text.contains("Öppna uppföljningsärenden: 1, varav 1 försenade"), "Swedish, with the open case: {}", owner.text);
    assert!(owner.text.contains("https://nps.example/admin/c/"), "links to the dashboard");
    let admin = digests.iter().find(|m| m.to == "cx@acme.example").unwrap();
    assert!(admin.text.contains("Open follow-up cases: 1"), "{}", admin.text);
}

#[tokio::test]
async fn a_launch_stopped_midway_and_run_again_invites_everyone_exactly_once() {
    let w = world(0).await;
    let mut csv = String::from("email,first_name\n");
    for i in 0..1100 {
        csv.push_str(&format!("p{i}@resume.example,P{i}\n"));
    }
    // The first run writes one chunk of three, then the process dies.
    let started = launch::start(&w.services, &w.campaign, "contacts.csv", csv.as_bytes()).await.unwrap();
    assert_eq!(started.chunks.len(), 3);
    launch::process_chunk(&w.services, &w.campaign, &started.chunks[0]).await.unwrap();
    let midway = w.store.launch(&started.job.id).await.unwrap().unwrap();
    assert_eq!((midway.rows_processed, midway.invited), (500, 500));

    // Run again: the same job resumes; nobody counts as throttled by the first run.
    let summary = launch::launch(&w.services, &w.campaign, csv.as_bytes()).await.unwrap();
    assert_eq!((summary.invited, summary.throttled), (1100, 0), "{summary:?}");
    assert_eq!(summary.launch_id.as_ref(), Some(&started.job.id));
    let job = w.store.launch(&started.job.id).await.unwrap().unwrap();
    assert_eq!((job.state, job.rows_processed, job.chunks_done), (closeloop_core::launch::LaunchState::Done, 1100, 3));
    let invited = w.store.campaign_rows(&w.campaign.id).await.unwrap().iter().filter(|r| r.invitation.id.0.starts_with(job.id.as_str())).count();
    assert_eq!(invited, 1100);
    let dispatched = dispatch::dispatch_pending(&w.services).await.unwrap();
    let sent = w.outbox.messages().unwrap().into_iter().filter(|m| m.to.contains("@resume.example")).count();
    assert_eq!(dispatched.dropped, 0, "{dispatched:?}");
    assert_eq!(sent, 1100, "one invitation each");
    // A third run changes nothing and reports the finished job.
    assert_eq!(launch::launch(&w.services, &w.campaign, csv.as_bytes()).await.unwrap(), summary);
}

/// Delivers to the outbox, except that digest number `hang_at` never completes: a run cut short.
struct HangingMailer {
    inner: Outbox,
    calls: AtomicUsize,
    hang_at: usize,
}

#[async_trait]
impl Mailer for HangingMailer {
    async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        if mail.kind == closeloop_core::ports::MessageKind::Digest && self.calls.fetch_add(1, Ordering::SeqCst) == self.hang_at {
            std::future::pending::<()>().await;
        }
        self.inner.send_mail(mail).await
    }
}

#[tokio::test]
async fn a_digest_run_cut_short_by_a_timeout_is_finished_by_the_next_run() {
    let w = world(0).await;
    w.answer("Pia", 10).await;
    w.answer("Dag", 2).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    let monday_morning = next_monday_morning();
    let hanging = Services { mailer: Arc::new(HangingMailer { inner: w.outbox.clone(), calls: AtomicUsize::new(0), hang_at: 0 }), ..w.services.clone() };
    // The function's timeout: the run is dropped while its first digest is being sent.
    let cut = tokio::time::timeout(std::time::Duration::from_millis(300), schedule::run(&hanging, &Default::default(), monday_morning)).await;
    assert!(cut.is_err(), "the run was cut short");
    let digests = |w: &World| w.outbox.messages().unwrap().into_iter().filter(|m| m.kind == "digest").count();
    assert_eq!(digests(&w), 0);
    // The next run sends the campaign's other digest. The one cut off mid-send stays claimed:
    // as with every message, a send interrupted after its claim is lost rather than doubled.
    let next = schedule::run(&w.services, &Default::default(), monday_morning.plus_hours(1)).await.unwrap();
    assert_eq!(next.digests_sent, 1, "the rest of the week's digests still go out");
    assert_eq!(digests(&w), 1, "nobody gets a digest twice");
    let after = schedule::run(&w.services, &Default::default(), monday_morning.plus_hours(2)).await.unwrap();
    assert_eq!(after.digests_sent, 0);
}

#[tokio::test]
async fn a_paused_campaign_sends_nothing_and_resuming_sends_what_waited_once() {
    use closeloop_core::lifecycle::{CampaignState, CampaignStatus, Transition};
    let w = world(0).await;
    let paused = CampaignStatus::default().after(Transition::Pause, T0, "Karin").unwrap();
    assert!(w.store.set_campaign_status(&w.campaign.id, &paused, CampaignState::Active).await.unwrap());
    // Paused before the launch's invitations went out: none goes, each waits once.
    assert_eq!(dispatch::dispatch_pending(&w.services).await.unwrap().handled, 4);
    assert_eq!(w.outbox.messages().unwrap().len(), 0, "nothing sent while paused");
    assert_eq!(w.store.held_invitations(&w.campaign.id, 10).await.unwrap().len(), 4);
    // Answers still count and are thanked: the page takes them.
    w.answer("Pia", 10).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    assert_eq!(w.sent("pro@example.com", "thank_you"), 1);
    let run = schedule::run(&w.services, &Default::default(), T0.plus_hours(1)).await.unwrap();
    assert_eq!((run.invitations_released, w.sent("pas@example.com", "invitation")), (0, 0), "still paused");

    let resumed = paused.after(Transition::Resume, T0.plus_hours(2), "Karin").unwrap();
    assert!(w.store.set_campaign_status(&w.campaign.id, &resumed, CampaignState::Paused).await.unwrap());
    let run = schedule::run(&w.services, &Default::default(), T0.plus_hours(2)).await.unwrap();
    assert_eq!(run.invitations_released, 4);
    for to in ["pro@example.com", "pas@example.com", "det@example.com"] {
        assert_eq!(w.sent(to, "invitation"), 1, "{to}");
    }
    assert_eq!(w.outbox.messages().unwrap().iter().filter(|m| m.channel == "sms").count(), 1);
    let again = schedule::run(&w.services, &Default::default(), T0.plus_hours(3)).await.unwrap();
    assert_eq!(again.invitations_released, 0, "released once");

    // Paused again when reminders fall due: put off, then sent after the resume, once.
    let paused = resumed.after(Transition::Pause, T0.plus_days(1), "Karin").unwrap();
    assert!(w.store.set_campaign_status(&w.campaign.id, &paused, CampaignState::Active).await.unwrap());
    let due = schedule::run(&w.services, &Default::default(), T0.plus_days(3)).await.unwrap();
    assert_eq!((due.reminders_sent, due.reminders_put_off), (0, 3), "Per, Dag and Sid have not answered");
    let resumed = paused.after(Transition::Resume, T0.plus_days(3), "Karin").unwrap();
    assert!(w.store.set_campaign_status(&w.campaign.id, &resumed, CampaignState::Paused).await.unwrap());
    let later = schedule::run(&w.services, &Default::default(), T0.plus_days(3).plus_hours(1)).await.unwrap();
    assert_eq!(later.reminders_sent, 3);
    assert_eq!(w.sent("det@example.com", "reminder"), 1);

    // Ended: no invitation or reminder ever again.
    let ended = resumed.after(Transition::End, T0.plus_days(4), "Karin").unwrap();
    assert!(w.store.set_campaign_status(&w.campaign.id, &ended, CampaignState::Active).await.unwrap());
    let after_end = schedule::run(&w.services, &Default::default(), T0.plus_days(60)).await.unwrap();
    assert_eq!(after_end.reminders_sent, 0);
}

#[tokio::test]
async fn outside_its_send_window_a_campaign_holds_invitations_and_reminders_until_it_opens() {
    // T0 is Monday 2026-09-21 16:13 in Stockholm, after this window's 16:00.
    let windowed = CAMPAIGN.replace(
        "alert_threshold = 6",
        "alert_threshold = 6\ntime_zone = \"Europe/Stockholm\"\nsend_window = { from = \"09:00\", to = \"16:00\", days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"] }",
    );
    let w = world_with(&windowed, 0).await;
    let at = |rfc3339: &str| Timestamp::parse_rfc3339(rfc3339).unwrap();
    let accounts = closeloop_core::accounts::Accounts::default();
    let run = |when: Timestamp| {
        w.clock.set(when);
        schedule::run(&w.services, &accounts, when)
    };
    assert_eq!(dispatch::dispatch_pending(&w.services).await.unwrap().handled, 4);
    assert_eq!(w.outbox.messages().unwrap().len(), 0, "nothing goes out after 16:00");
    assert_eq!(w.store.held_invitations(&w.campaign.id, 10).await.unwrap().len(), 4, "every invitation waits, the SMS too");
    assert_eq!(run(T0.plus_hours(4)).await.unwrap().invitations_released, 0, "still closed at 20:13");
    // Thursday 16:13, closed again, three days on: the reminders are not due before the
    // invitations have gone out.
    let thursday = run(T0.plus_days(3)).await.unwrap();
    assert_eq!((thursday.invitations_released, thursday.reminders_sent, w.outbox.messages().unwrap().len()), (0, 0, 0));
    // Friday 09:00 in Stockholm (summer time) is 07:00 UTC: the window opens.
    let friday = run(at("2026-09-25T07:00:00Z")).await.unwrap();
    assert_eq!((friday.invitations_released, friday.reminders_sent), (4, 0), "{friday:?}");
    for to in ["pro@example.com", "pas@example.com", "det@example.com"] {
        assert_eq!(w.sent(to, "invitation"), 1, "{to}");
    }
    assert_eq!(w.outbox.messages().unwrap().iter().filter(|m| m.channel == "sms").count(), 1);
    assert_eq!(run(at("2026-09-25T08:00:00Z")).await.unwrap().invitations_released, 0, "once");

    // The weekly digest: Monday from 08:00 on the campaign's clock (06:00 UTC in summer time).
    w.answer("Dag", 2).await;
    dispatch::dispatch_pending(&w.services).await.unwrap();
    let before_eight = run(at("2026-09-28T05:30:00Z")).await.unwrap();
    assert_eq!((before_eight.digests_sent, before_eight.reminders_sent), (0, 0), "07:30 in Stockholm");
    assert!(run(at("2026-09-28T06:30:00Z")).await.unwrap().digests_sent > 0, "08:30 in Stockholm");
    // The reminders count from Friday's send: due Monday 09:00, when the window is open.
    assert_eq!(w.sent("pas@", "reminder"), 0);
    let monday = run(at("2026-09-28T07:00:00Z")).await.unwrap();
    assert!(monday.reminders_sent >= 2, "{monday:?}");
    assert_eq!((w.sent("pas@", "reminder"), w.sent("det@", "reminder")), (1, 0), "Per is reminded; Dag answered");
}

#[tokio::test]
async fn the_schedule_erases_invitations_older_than_the_campaigns_retention_and_keeps_their_counts() {
    let closeloop_testkit::Local { store, clock, services, .. } = closeloop_testkit::local();
    let mut campaign = Campaign::from_toml(include_str!("../../demo/campaign.toml")).unwrap();
    campaign.retention_months = 6;
    launch::launch(&services, &campaign, b"email;first_name\nold.one@example.se;Olle\n").await.unwrap();
    dispatch::dispatch_pending(&services).await.unwrap();
    let start = clock.now();
    clock.set(start.plus_days(150));
    launch::launch(&services, &campaign, b"email;first_name\nnew.one@example.se;Nina\n").await.unwrap();
    dispatch::dispatch_pending(&services).await.unwrap();
    store.settle_counters().await.unwrap();
    let counted = store.counter_buckets(&campaign.id, &closeloop_core::counters::View::Everything.prefixes()).await.unwrap();

    // Five months on, nothing is old enough.
    let five_months = schedule::run(&services, &Default::default(), start.plus_days(152)).await.unwrap();
    assert_eq!(five_months.invitations_retained, 0);
    // Seven months after the first launch: the first invitation goes, the second stays.
    let later = start.plus_days(214);
    clock.set(later);
    let summary = schedule::run(&services, &Default::default(), later).await.unwrap();
    assert_eq!(summary.invitations_retained, 1);
    let rows = store.campaign_rows(&campaign.id).await.unwrap();
    let names: Vec<Option<String>> = rows.iter().map(|r| r.invitation.contact.first_name.clone()).collect();
    assert!(names.contains(&Some("Nina".into())) && !names.contains(&Some("Olle".into())), "{names:?}");
    assert!(rows.iter().any(|r| r.invitation.erased_at == Some(later)));
    store.settle_counters().await.unwrap();
    assert_eq!(store.counter_buckets(&campaign.id, &closeloop_core::counters::View::Everything.prefixes()).await.unwrap(), counted, "counts stay");
    assert_eq!(schedule::run(&services, &Default::default(), later).await.unwrap().invitations_retained, 0, "once");
    // Retention is not an objection: the person may be asked again later.
    assert!(!store.is_suppressed(&[closeloop_core::ContactKey::email(&closeloop_core::Email::parse("old.one@example.se").unwrap())]).await.unwrap());
}

/// Refuses mail to one address for good, as SES does an address it can never send to.
struct RefusesOne {
    inner: Outbox,
    refused: &'static str,
}

#[async_trait]
impl Mailer for RefusesOne {
    async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        if mail.to_email == self.refused {
            return Err(SendError::permanent("no SMTPUTF8"));
        }
        self.inner.send_mail(mail).await
    }
}

#[tokio::test]
async fn a_reminder_refused_for_good_is_skipped_and_the_other_reminders_still_go() {
    let store = SqliteStore::open_in_memory().unwrap();
    let local = closeloop_testkit::Local::over(store.clone());
    let refuses = Arc::new(RefusesOne { inner: local.outbox.clone(), refused: "pas@example.com" });
    let local = local.with_mailer(refuses);
    let campaign = Campaign::from_toml(CAMPAIGN).unwrap();
    launch::launch(&local.services, &campaign, "email,first_name\npro@example.com,Pia\npas@example.com,Per\n".as_bytes()).await.unwrap();
    dispatch::dispatch_pending(&local.services).await.unwrap();
    let summary = schedule::run(&local.services, &Default::default(), T0.plus_days(4)).await.unwrap();
    assert_eq!((summary.reminders_sent, summary.reminders_skipped), (1, 1), "{summary:?}");
    let reminded: Vec<String> = local.outbox.messages().unwrap().into_iter().filter(|m| m.kind == "reminder").map(|m| m.to).collect();
    assert_eq!(reminded.len(), 1);
    assert!(reminded[0].contains("pro@example.com"));
    let again = schedule::run(&local.services, &Default::default(), T0.plus_days(5)).await.unwrap();
    assert_eq!(again.reminders_sent + again.reminders_skipped, 0, "the refused one is not tried again");
}
