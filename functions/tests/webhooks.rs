//! Webhooks end to end on the embedded store: queued by the reactions, posted by the real HTTP
//! sender, and verified by a receiver that uses the official Standard Webhooks library
//! (`tests/webhooks/receiver.py`, PyPI `standardwebhooks`, installed by `scripts/setup-tests`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use closeloop_core::model::{Answer, Event, EventKind, InvitationId};
use closeloop_core::nps::Score;
use closeloop_core::ports::{Clock, Store, SystemClock};
use closeloop_core::webhooks::{AddressPolicy, DeliveryState, EndpointHealth, WebhookEvent, DISABLE_AFTER_FAILURES};
use closeloop_core::{Campaign, Timestamp};
use closeloop_functions::{dispatch, launch, webhooks};
use closeloop_webhooks::HttpWebhookSender;
use serde_json::Value;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The receiver, stopped (by its PID) when the test ends.
struct Receiver {
    child: Child,
    port: u16,
}

impl Receiver {
    fn start() -> Result<Self> {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/webhooks/receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .env("WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::piped())
            .spawn()
            .context("python3 with standardwebhooks (tools/requirements.txt) is needed: run scripts/setup-tests")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("the receiver's stdout")?).read_line(&mut line)?;
        let port = line.trim().parse().with_context(|| format!("the receiver printed {line:?}, not its port: is standardwebhooks installed?"))?;
        Ok(Self { child, port })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn received(&self) -> Result<Vec<Value>> {
        Ok(reqwest::get(self.url("/received")).await?.json().await?)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn campaign(receiver: &Receiver, paths: &[&str]) -> Campaign {
    let hooks: String = paths
        .iter()
        .map(|p| format!("[[webhooks]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\nevents = [\"response.created\", \"response.updated\", \"case.opened\", \"contact.unsubscribed\"]\n", receiver.url(p)))
        .collect();
    Campaign::from_toml(&format!(
        "id = \"hooks\"\nname = \"Hooks\"\ncompany = \"Acme\"\nsender_name = \"Sam\"\nsender_email = \"sam@acme.example\"\nmanager_email = \"boss@acme.example\"\n{hooks}"
    ))
    .unwrap()
}

/// A local world at the real time (receivers refuse signatures more than 5 minutes off).
async fn world(campaign: &Campaign) -> closeloop_testkit::Local {
    let local = closeloop_testkit::local();
    local.clock.set(SystemClock.now());
    launch::launch(&local.services, campaign, b"email,first_name\nkim@example.com,Kim\n").await.unwrap();
    dispatch::dispatch_pending(&local.services).await.unwrap();
    local
}

async fn answer(local: &closeloop_testkit::Local, campaign: &Campaign, score: u8) -> InvitationId {
    let inv = local.store.campaign_rows(&campaign.id).await.unwrap().remove(0).invitation;
    let now = local.clock.now();
    let previous = local.store.answer(&inv.id).await.unwrap();
    let version = previous.as_ref().map_or(1, |p| p.version + 1);
    let answer = Answer {
        invitation_id: inv.id.clone(),
        campaign_id: campaign.id.clone(),
        score: Score::new(score).unwrap(),
        comment: Some("The delivery was late".into()),
        contact_ok: true,
        ratings: Default::default(),
        version,
        first_answered_at: now,
        answered_at: now,
    };
    let event = Event { id: format!("answer-{}-{version}", inv.id), at: now, kind: EventKind::AnswerRecorded { invitation_id: inv.id.clone(), version, previous_score: None, score: answer.score } };
    local.store.record_answer(&answer, &event, &Default::default()).await.unwrap();
    dispatch::dispatch_pending(&local.services).await.unwrap();
    inv.id
}

fn sender(timeout: Duration) -> HttpWebhookSender {
    HttpWebhookSender::new(AddressPolicy::Local, timeout).unwrap()
}

#[tokio::test]
async fn an_answer_reaches_the_receiver_signed_and_a_retry_after_500s_keeps_its_webhook_id() -> Result<()> {
    let receiver = Receiver::start()?;
    let campaign = campaign(&receiver, &["/ok", "/fail-twice"]);
    let local = world(&campaign).await;
    answer(&local, &campaign, 3).await;
    let sender = sender(Duration::from_secs(5));
    let first = webhooks::deliver_due(&local.services, &sender, local.clock.now(), 100).await?;
    assert_eq!((first.delivered, first.failed), (2, 2), "response.created and case.opened to /ok; both fail at /fail-twice: {first:?}");
    // The retries come due on the back-off schedule: 5 s, then 1 min.
    for wait in [6_000, 61_000] {
        local.clock.set(local.clock.now().plus_millis(wait));
        webhooks::deliver_due(&local.services, &sender, local.clock.now(), 100).await?;
    }
    let received = receiver.received().await?;
    assert!(received.iter().all(|r| r["verified"] == true), "every signature verifies with the official library: {received:#?}");
    let at = |path: &str| received.iter().filter(|r| r["path"] == path).collect::<Vec<_>>();
    assert_eq!(at("/ok").len(), 2);
    let mut types: Vec<&str> = at("/ok").iter().map(|r| r["payload"]["type"].as_str().unwrap()).collect();
    types.sort_unstable();
    assert_eq!(types, ["case.opened", "response.created"]);
    let created = at("/ok").into_iter().find(|r| r["payload"]["type"] == "response.created").unwrap()["payload"]["data"].clone();
    assert_eq!(created["response"]["score"], 3);
    assert_eq!(created["contact"]["email"], "kim@example.com");
    assert_eq!(created["response"]["comment"], "The delivery was late");
    let retried = at("/fail-twice");
    assert_eq!(retried.len(), 6, "two events, three attempts each");
    for id in retried.iter().map(|r| r["id"].as_str().unwrap()) {
        assert_eq!(retried.iter().filter(|r| r["id"] == id).count(), 3, "the same webhook-id on every attempt of one event");
    }
    let log = local.store.webhook_log(&campaign.id, 10).await?;
    assert!(log.iter().all(|d| d.state == DeliveryState::Delivered), "{log:#?}");
    assert!(log.iter().any(|d| d.attempts == 3 && d.last.as_ref().and_then(|l| l.status) == Some(204)));
    Ok(())
}

#[tokio::test]
async fn an_event_handled_twice_is_delivered_once_and_an_edit_is_a_response_updated() -> Result<()> {
    let receiver = Receiver::start()?;
    let campaign = campaign(&receiver, &["/ok"]);
    let local = world(&campaign).await;
    let id = answer(&local, &campaign, 9).await;
    // The stream redelivers the answer's event: the reaction runs again.
    let event = Event { id: format!("answer-{id}-1"), at: local.clock.now(), kind: EventKind::AnswerRecorded { invitation_id: id.clone(), version: 1, previous_score: None, score: Score::new(9).unwrap() } };
    dispatch::handle_event(&local.services, &event).await?;
    answer(&local, &campaign, 10).await;
    let sender = sender(Duration::from_secs(5));
    webhooks::deliver_due(&local.services, &sender, local.clock.now(), 100).await?;
    let received = receiver.received().await?;
    let mut types: Vec<String> = received.iter().map(|r| r["payload"]["type"].as_str().unwrap().to_owned()).collect();
    types.sort_unstable();
    assert_eq!(types, ["case.opened", "response.created", "response.updated"], "once each; 9 with contact me is a contact request case");
    let response = |t: &str| received.iter().find(|r| r["payload"]["type"] == t).unwrap()["payload"]["data"]["response"].clone();
    assert_eq!((response("response.created")["version"].clone(), response("response.created")["score"].clone()), (1.into(), 9.into()), "the answer it was queued for, though the edit came first");
    assert_eq!((response("response.updated")["version"].clone(), response("response.updated")["score"].clone()), (2.into(), 10.into()));
    Ok(())
}

#[tokio::test]
async fn a_slow_endpoint_times_out_a_redirect_is_not_followed_and_both_are_retried() -> Result<()> {
    let receiver = Receiver::start()?;
    let campaign = campaign(&receiver, &["/slow", "/redirect"]);
    let local = world(&campaign).await;
    answer(&local, &campaign, 8).await;
    let summary = webhooks::deliver_due(&local.services, &sender(Duration::from_secs(1)), local.clock.now(), 100).await?;
    assert_eq!((summary.delivered, summary.failed), (0, 4), "two events (the answer, its contact request case) to two endpoints: {summary:?}");
    let log = local.store.webhook_log(&campaign.id, 10).await?;
    let last = |host_path: &str| log.iter().find(|d| campaign.webhooks.iter().any(|w| w.key() == d.endpoint && w.url.as_str().ends_with(host_path))).unwrap().last.clone().unwrap();
    assert_eq!(last("/slow").error.as_deref(), Some("timed out"));
    assert_eq!(last("/redirect").status, Some(302), "a 3xx is the endpoint's answer");
    let received = receiver.received().await?;
    assert!(!received.iter().any(|r| r["path"] == "/ok"), "the redirect was not followed");
    assert!(log.iter().all(|d| d.state == DeliveryState::Pending && d.next_at.is_some()));
    Ok(())
}

#[tokio::test]
async fn a_slow_endpoint_holds_up_only_its_own_deliveries_in_a_run() -> Result<()> {
    let receiver = Receiver::start()?;
    let campaign = campaign(&receiver, &["/slow", "/ok"]);
    let local = world(&campaign).await;
    answer(&local, &campaign, 8).await;
    let summary = webhooks::deliver_due(&local.services, &sender(Duration::from_secs(5)), local.clock.now(), 100).await?;
    assert_eq!(summary.delivered, 4, "two events to two endpoints: {summary:?}");
    let received = receiver.received().await?;
    let at = |path: &str| received.iter().filter(|r| r["path"] == path).map(|r| r["at"].as_f64().unwrap()).collect::<Vec<_>>();
    let (slow, ok) = (at("/slow"), at("/ok"));
    let first_slow = slow.iter().copied().fold(f64::INFINITY, f64::min);
    // /slow answers each request after 3 s: both /ok deliveries arrived while the first of
    // them was still waiting for its answer, so the endpoints were posted to side by side.
    assert!(ok.iter().all(|t| *t < first_slow + 2.5), "/ok at {ok:?}, /slow at {slow:?}");
    assert_eq!(slow.len(), 2, "the slow endpoint's own deliveries still go, one after the other");
    assert!(slow[1] - slow[0] >= 2.5, "in turn: {slow:?}");
    Ok(())
}

#[tokio::test]
async fn repeated_failures_disable_the_endpoint_and_a_redelivery_enables_it() -> Result<()> {
    let receiver = Receiver::start()?;
    let campaign = campaign(&receiver, &["/always-500"]);
    let local = world(&campaign).await;
    answer(&local, &campaign, 9).await;
    let endpoint = campaign.webhooks[0].key();
    // One short of the limit already.
    local.store.set_webhook_health(&campaign.id, &endpoint, &EndpointHealth { consecutive_failures: DISABLE_AFTER_FAILURES - 1, disabled_at: None }).await?;
    let sender = sender(Duration::from_secs(5));
    let summary = webhooks::deliver_due(&local.services, &sender, local.clock.now(), 1).await?;
    assert_eq!(summary.disabled, 1, "{summary:?}");
    assert!(local.store.webhook_health(&campaign.id, &endpoint).await?.unwrap().disabled_at.is_some());
    let told: Vec<_> = local.outbox.messages()?.into_iter().filter(|m| m.kind == "webhook_disabled").collect();
    assert_eq!(told.len(), 1, "the manager is told once");
    assert!(told[0].to.contains("boss@acme.example") && told[0].text.contains("HTTP 500") && told[0].text.contains("/admin/c/hooks/webhooks"), "{}", told[0].text);
    // What is still queued for it is given up, not posted.
    local.clock.set(local.clock.now().plus_millis(10 * 60_000));
    let later = webhooks::deliver_due(&local.services, &sender, local.clock.now(), 100).await?;
    assert_eq!((later.delivered, later.failed, later.gave_up), (0, 0, 2), "{later:?}");
    assert_eq!(receiver.received().await?.len(), 1);
    let id = local.store.webhook_log(&campaign.id, 10).await?.last().unwrap().id.clone();
    assert!(webhooks::redeliver(local.services.store.as_ref(), &campaign.id, &id, local.clock.now()).await?);
    assert_eq!(local.store.webhook_health(&campaign.id, &endpoint).await?.unwrap().disabled_at, None, "someone chose to try again");
    webhooks::deliver_due(&local.services, &sender, local.clock.now(), 100).await?;
    let received = receiver.received().await?;
    assert_eq!(received.len(), 2);
    assert_eq!(received[0]["id"], received[1]["id"], "a redelivery keeps its webhook-id");
    Ok(())
}

#[tokio::test]
async fn private_and_link_local_addresses_are_refused_before_connecting_off_the_local_machine() -> Result<()> {
    let receiver = Receiver::start()?;
    let campaign = campaign(&receiver, &["/ok"]);
    let local = world(&campaign).await;
    answer(&local, &campaign, 9).await;
    let public_only = HttpWebhookSender::new(AddressPolicy::PublicOnly, Duration::from_secs(2))?;
    let summary = webhooks::deliver_due(&local.services, &public_only, local.clock.now(), 100).await?;
    assert_eq!(summary.failed, 2);
    assert!(receiver.received().await?.is_empty(), "nothing reached the loopback receiver");
    let log = local.store.webhook_log(&campaign.id, 10).await?;
    assert!(log.iter().all(|d| d.last.as_ref().and_then(|l| l.error.as_deref()).is_some_and(|e| e.starts_with("refused"))), "{log:#?}");
    // A name that resolves to loopback is refused after resolution, as an address is.
    use closeloop_core::ports::WebhookSender;
    let by_name = closeloop_core::webhooks::WebhookUrl::parse(&format!("http://localhost:{}/ok", receiver.port))?;
    let refused = public_only.post(&by_name, &[], "{}").await;
    assert!(matches!(refused, Err(closeloop_core::ports::WebhookSendError::Refused(_))), "{refused:?}");
    for metadata in ["https://169.254.169.254/latest", "https://10.0.0.1/x", "https://[fd00::1]/x"] {
        let url = closeloop_core::webhooks::WebhookUrl::parse(metadata)?;
        assert!(matches!(public_only.post(&url, &[], "{}").await, Err(closeloop_core::ports::WebhookSendError::Refused(_))), "{metadata}");
    }
    Ok(())
}

#[test]
fn signed_headers_are_what_standard_webhooks_specifies() {
    let headers = webhooks::signed_headers(SECRET, "msg_1", Timestamp::from_millis(1_700_000_000_123), "{\"a\":1}").unwrap();
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("webhook-id"), "msg_1");
    assert_eq!(get("webhook-timestamp"), "1700000000");
    assert!(get("webhook-signature").starts_with("v1,"));
    let _ = WebhookEvent::ALL;
}

#[tokio::test]
async fn slack_and_teams_get_the_alert_and_the_weekly_digest_and_an_owners_channel_only_their_contacts() -> Result<()> {
    let receiver = Receiver::start()?;
    let chat = format!(
        "[[chat]]\nkind = \"slack\"\nurl = \"{}\"\n[[chat]]\nkind = \"teams\"\nurl = \"{}\"\n[[chat]]\nkind = \"slack\"\nurl = \"{}\"\nowner = \"someone.else@acme.example\"\n",
        receiver.url("/chat/slack"),
        receiver.url("/chat/teams"),
        receiver.url("/chat/other-owner")
    );
    let campaign = Campaign::from_toml(&format!(
        "id = \"hooks\"\nname = \"Hooks\"\ncompany = \"Acme\"\nsender_name = \"Sam\"\nsender_email = \"sam@acme.example\"\nmanager_email = \"boss@acme.example\"\ntime_zone = \"Europe/Stockholm\"\n{chat}"
    ))?;
    let local = world(&campaign).await;
    answer(&local, &campaign, 2).await;
    let sender = sender(Duration::from_secs(5));
    webhooks::deliver_due(&local.services, &sender, local.clock.now(), 100).await?;
    let got = receiver.received().await?;
    let at = |path: &str| got.iter().filter(|r| r["path"] == path).map(|r| r["payload"].clone()).collect::<Vec<_>>();
    assert_eq!(at("/chat/slack").len(), 1);
    let slack = &at("/chat/slack")[0];
    assert!(slack["blocks"].as_array().is_some_and(|b| b.iter().any(|b| b["type"] == "header")), "{slack}");
    assert!(slack.to_string().contains("The delivery was late"));
    let teams = &at("/chat/teams")[0];
    assert_eq!(teams["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    assert!(at("/chat/other-owner").is_empty(), "another owner's channel gets none of this contact's alerts");
    // The next Monday morning on the campaign's clock: the digest, in figures.
    let now = local.clock.now();
    let monday = (1..=7).map(|d| now.plus_days(d)).find(|t| t.week_day_hour_in(&campaign.zone()).1 == 1).unwrap();
    let (_, _, hour) = monday.week_day_hour_in(&campaign.zone());
    let monday_morning = monday.plus_millis((i64::from(closeloop_functions::schedule::DIGEST_HOUR) + 1 - i64::from(hour)) * 3_600_000);
    local.clock.set(monday_morning);
    closeloop_functions::schedule::run(&local.services, &Default::default(), monday_morning).await?;
    closeloop_functions::schedule::run(&local.services, &Default::default(), monday_morning.plus_millis(60_000)).await?;
    webhooks::deliver_due(&local.services, &sender, local.clock.now(), 100).await?;
    let got = receiver.received().await?;
    let digests: Vec<&Value> = got.iter().filter(|r| r["path"] == "/chat/slack" && r["payload"].to_string().contains("Your week in NPS")).collect();
    assert_eq!(digests.len(), 1, "once a week, however often the schedule runs: {got:#?}");
    assert!(!digests[0]["payload"].to_string().contains("Kim"), "a digest in chat names nobody");
    Ok(())
}

#[tokio::test]
async fn a_finished_launch_sends_launch_completed_with_its_counts_once() -> Result<()> {
    let receiver = Receiver::start()?;
    let campaign = Campaign::from_toml(&format!(
        "id = \"hooks\"\nname = \"Hooks\"\ncompany = \"Acme\"\nsender_name = \"Sam\"\nsender_email = \"sam@acme.example\"\n[[webhooks]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\nevents = [\"launch.completed\"]\n",
        receiver.url("/ok")
    ))?;
    let local = closeloop_testkit::local();
    local.clock.set(SystemClock.now());
    launch::launch(&local.services, &campaign, b"email,first_name\nkim@example.com,Kim\nkim@example.com,Kim again\nnope,Bad\n").await.unwrap();
    // The same file again is the same launch: nothing more is queued.
    launch::launch(&local.services, &campaign, b"email,first_name\nkim@example.com,Kim\nkim@example.com,Kim again\nnope,Bad\n").await.unwrap();
    webhooks::deliver_due(&local.services, &sender(Duration::from_secs(5)), local.clock.now(), 100).await?;
    let got = receiver.received().await?;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["verified"], true);
    let launch = &got[0]["payload"]["data"]["launch"];
    assert_eq!(got[0]["payload"]["type"], "launch.completed");
    assert_eq!((launch["invited"].clone(), launch["bad_rows"].clone(), launch["state"].clone()), (1.into(), 1.into(), "done".into()), "{launch}");
    assert!(!got[0]["payload"].to_string().contains("kim@example.com"), "counts, not rows");
    Ok(())
}
