//! The whole loop over real HTTP against one in-process closeloop on the embedded store:
//! launch, invitations, answers from a promoter, a passive and a detractor, every message in the
//! outbox, reminders after time passes, an unsubscribe, and the report.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use closeloop::{serve, LocalApp, Running, Settings};
use closeloop_core::ports::{ManualClock, Store};
use closeloop_core::{Campaign, Timestamp};
use closeloop_embedded::SqliteStore;
use closeloop_functions::schedule;
use serde_json::Value;

const T0: Timestamp = Timestamp::from_millis(1_795_000_000_000);
const API_TOKEN: &str = "end-to-end-token";
const PEOPLE_TOKEN: &str = "end-to-end-people-token";

struct TestApp {
    app: LocalApp,
    running: Running,
    clock: Arc<ManualClock>,
    base: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

/// One closeloop on a free port, with a clock the test moves.
async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("closeloop.db")).unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    // The public URL is only known after binding; links are checked by path, so a placeholder host
    // is rewritten to the bound address below.
    let settings = Settings { data_dir: dir.path().to_owned(), public_url: "http://closeloop.test".into(), api_token: None };
    let app = LocalApp::with_store(store, &settings, clock.clone()).with_open_outbox().with_people_api_token(Some(PEOPLE_TOKEN.into()));
    let running = serve(app.clone(), SocketAddr::from(([127, 0, 0, 1], 0)), Some(API_TOKEN.into()), false).await.unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    TestApp { app, running, clock, base, http, dir }
}

impl TestApp {
    fn local(&self, public_link: &str) -> String {
        public_link.replace("http://closeloop.test", &self.base)
    }

    async fn outbox(&self) -> Vec<Value> {
        self.app.dispatch().await.unwrap();
        let messages: Vec<Value> = self.http.get(format!("{}/outbox.json", self.base)).send().await.unwrap().json().await.unwrap();
        messages
    }

    async fn answer(&self, token_link: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(self.local(token_link)).form(form).send().await.unwrap()
    }
}

fn of_kind<'a>(messages: &'a [Value], kind: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["kind"] == kind).collect()
}

fn survey_link(message: &Value) -> String {
    let text = message["text"].as_str().unwrap();
    let start = text.find("http://closeloop.test/s/").unwrap();
    text[start..start + "http://closeloop.test/s/".len() + 22].to_owned()
}

#[tokio::test]
async fn the_whole_loop_runs_from_launch_to_report() {
    let t = spawn_app().await;
    let campaign = Campaign::from_toml(include_str!("../demo/campaign.toml")).unwrap();
    let csv = "email;first_name;store;owner_email;locale\n\
               pia@example.se;Pia;Malmö;owner.malmo@example.se;sv\n\
               per@example.se;Per;Malmö;owner.malmo@example.se;sv\n\
               dag@example.dk;Dag;Aarhus;owner.aarhus@example.dk;da\n\
               una@example.com;Una;Aarhus;owner.aarhus@example.dk;en\n\
               sam@example.com;Sam;Aarhus;;en\n\
               broken-address;Bad;Malmö;;en\n\
               pia@example.se;Pia again;Malmö;;sv\n";
    let launched = closeloop::commands::launch_campaign(&t.app, &campaign, csv.as_bytes()).await.unwrap();
    assert_eq!(launched.invited, 5);
    assert_eq!(launched.duplicates, 1);
    assert_eq!(launched.bad_rows.len(), 1);
    assert_eq!(launched.bad_rows[0].line, 7);

    // Five invitations, each in its person's language, with the scale and one-click unsubscribe.
    let outbox = t.outbox().await;
    let invitations = of_kind(&outbox, "invitation");
    assert_eq!(invitations.len(), 5);
    assert_eq!(outbox.len(), 5, "nothing else was sent");
    let by_name = |name: &str| invitations.iter().find(|m| m["text"].as_str().unwrap().contains(&format!(" {name}"))).copied().unwrap();
    assert!(by_name("Pia")["subject"].as_str().unwrap().starts_with("Hur gick det?"));
    assert!(by_name("Dag")["subject"].as_str().unwrap().starts_with("Hvordan klarede vi os?"));
    for m in &invitations {
        let headers: BTreeMap<String, String> = serde_json::from_value(Value::Object(
            m["headers"].as_array().unwrap().iter().map(|h| (h[0].as_str().unwrap().to_owned(), h[1].clone())).collect(),
        ))
        .unwrap();
        assert_eq!(headers["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
        assert!(headers["List-Unsubscribe"].starts_with("<http://closeloop.test/u/"));
        assert_eq!(m["html"].as_str().unwrap().matches("?score=").count(), 11);
        // What the outbox shows is the message the mailer sends: parse its raw bytes back.
        let raw = m["raw"].as_str().expect("every mail keeps its raw message");
        let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
        assert_eq!(parsed.subject(), m["subject"].as_str());
        assert!(parsed.date().is_some(), "a Date header");
        assert!(parsed.header("List-Id").is_some(), "a List-Id");
        let unsubscribe: Vec<String> = match parsed.header("List-Unsubscribe") {
            Some(mail_parser::HeaderValue::Address(a)) => a.iter().filter_map(|a| a.address().map(str::to_owned)).collect(),
            other => panic!("List-Unsubscribe: {other:?}"),
        };
        assert!(unsubscribe[0].starts_with("http://closeloop.test/u/") && unsubscribe[1].starts_with("mailto:"), "{unsubscribe:?}");
        assert!(raw.contains("\r\nX-Closeloop-Send-Key: invitation:"), "the send key travels in our own header");
        assert_eq!(parsed.body_text(0).unwrap().replace("\r\n", "\n"), m["text"].as_str().unwrap());
    }

    // The email's score link only preselects; the answer needs the person's submit.
    let pia = survey_link(by_name("Pia"));
    let page = t.http.get(t.local(&format!("{pia}?score=10"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("value=\"10\" checked"));
    assert_eq!(t.outbox().await.len(), 5, "opening a link sends nothing and records nothing");

    t.clock.set(T0.plus_hours(2));
    let promoter = t.answer(&pia, &[("score", "10"), ("comment", "Snabbt och trevligt!"), ("rating.ease", "5")]).await;
    assert_eq!(promoter.status(), 303);
    let per = survey_link(by_name("Per"));
    t.answer(&per, &[("score", "8")]).await;
    let dag = survey_link(by_name("Dag"));
    t.answer(&dag, &[("score", "0"), ("comment", "Cyklen var ikke klar"), ("contact_ok", "yes")]).await;
    // A bad submission changes nothing that was recorded.
    let bad = t.answer(&dag, &[("score", "eleven")]).await;
    assert_eq!(bad.status(), 400);

    let outbox = t.outbox().await;
    let thanks = of_kind(&outbox, "thank_you");
    assert_eq!(thanks.len(), 3, "every respondent is thanked once");
    let reviews = of_kind(&outbox, "review_invitation");
    assert_eq!(reviews.len(), 1);
    assert!(reviews[0]["to"].as_str().unwrap().contains("pia@example.se"));
    assert!(reviews[0]["text"].as_str().unwrap().contains("/r/"));
    let alerts = of_kind(&outbox, "alert");
    assert_eq!(alerts.len(), 1, "only the detractor");
    assert_eq!(alerts[0]["to"], "owner.aarhus@example.dk");
    let alert_text = alerts[0]["text"].as_str().unwrap();
    assert!(alert_text.contains("Cyklen var ikke klar") && alert_text.contains("Aarhus"));
    let stockholm = closeloop_core::time::Zone::parse("Europe/Stockholm").unwrap();
    let deadline = T0.plus_hours(2).plus_hours(48).display_in(&stockholm);
    assert!(deadline.ends_with(" CET") || deadline.ends_with(" CEST"), "{deadline}");
    assert!(alert_text.contains(&deadline), "deadline is 48 hours after the answer, on the campaign's Stockholm time: {alert_text}");

    // The promoter follows the review link: tracked, then sent on to the site only.
    let review_link = t.local(&pia.replace("/s/", "/r/")) + "/trustpilot";
    let link = t.http.get(&review_link).send().await.unwrap();
    assert_eq!(link.status(), 303, "the link only sends the browser on");
    let redirect = t.http.get(format!("{review_link}/go")).send().await.unwrap();
    assert_eq!(redirect.status(), 302);
    assert_eq!(redirect.headers()["location"], "https://www.trustpilot.com/evaluate/nordhavn-cykler.example");

    // One of the silent ones unsubscribes by one-click.
    let sam = survey_link(by_name("Sam"));
    let unsubscribe = t
        .http
        .post(t.local(&sam.replace("/s/", "/u/")))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(unsubscribe.status(), 200);

    // Four days on, the reminder goes to the one who neither answered nor unsubscribed.
    let before = t.outbox().await.len();
    let run = schedule::run(&t.app.services, &Default::default(), T0.plus_days(4)).await.unwrap();
    assert_eq!(run.reminders_sent, 1);
    let outbox = t.outbox().await;
    let reminders = of_kind(&outbox, "reminder");
    assert_eq!(reminders.len(), 1);
    assert!(reminders[0]["to"].as_str().unwrap().contains("una@example.com"), "not Sam, who unsubscribed");
    assert_eq!(outbox.len(), before + 2, "one reminder and one escalation, nothing else");
    assert_eq!(schedule::run(&t.app.services, &Default::default(), T0.plus_days(4)).await.unwrap().reminders_sent, 0, "a rerun sends nothing");

    // The detractor's case was not closed in 48 hours: it escalates to the manager.
    assert_eq!(run.escalations_sent, 1);
    let escalations = of_kind(&outbox, "escalation");
    assert_eq!(escalations[0]["to"], "service.manager@nordhavn-cykler.example");

    let reports = closeloop::commands::reports(&t.app, Some(campaign.id.as_str())).await.unwrap();
    let total = &reports[0].report.total;
    assert_eq!((total.sent, total.answered), (5, 3));
    assert_eq!((total.promoters, total.passives, total.detractors), (1, 1, 1));
    assert_eq!(total.response_rate, Some(0.6));
    assert_eq!(total.nps, Some(0.0));
    assert!(total.small_sample && total.margin_95.unwrap() > 30.0);
    assert_eq!(total.unsubscribed, 1);
    assert_eq!(total.review_clicks, 1);
    let counters = t.app.store.campaign_counters(&campaign.id).await.unwrap();
    assert_eq!(counters.invited, 5);
    assert_eq!((counters.tally.promoters, counters.tally.passives, counters.tally.detractors), (1, 1, 1), "counters agree with the report");
    let malmo = &reports[0].report.by["store"]["Malmö"];
    assert_eq!((malmo.sent, malmo.answered, malmo.nps), (2, 2, Some(50.0)));
    let aarhus = &reports[0].report.by["store"]["Aarhus"];
    assert_eq!((aarhus.sent, aarhus.answered, aarhus.nps), (3, 1, Some(-100.0)));
    t.running.stop().await;
}

#[tokio::test]
async fn the_api_invitation_is_sent_by_the_running_dispatcher() {
    let t = spawn_app().await;
    let campaign = Campaign::from_toml(include_str!("../demo/campaign.toml")).unwrap();
    t.app.store.put_campaign(&campaign).await.unwrap();
    let response = t
        .http
        .post(format!("{}/api/v1/invitations", t.base))
        .bearer_auth(API_TOKEN)
        .json(&serde_json::json!({"campaign_id": campaign.id.as_str(), "touchpoint": "support case", "contact": {"phone": "+46 70 765 43 21", "first_name": "Lo"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // No explicit dispatch: the server's own background dispatcher must send it.
    let mut sms = Vec::new();
    for _ in 0..50 {
        let messages: Vec<Value> = t.http.get(format!("{}/outbox.json", t.base)).send().await.unwrap().json().await.unwrap();
        sms = messages.into_iter().filter(|m| m["channel"] == "sms").collect();
        if !sms.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(sms.len(), 1, "the dispatcher sent the SMS");
    assert_eq!(sms[0]["to"], "+46707654321");
    t.running.stop().await;
}

/// Every byte of the database and its WAL, to search for what an erasure must remove.
fn database_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["closeloop.db", "closeloop.db-wal"] {
        if let Ok(file) = std::fs::read(dir.join(name)) {
            bytes.extend(file);
        }
    }
    bytes
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn an_erased_person_leaves_no_byte_in_the_database_files_the_counts_stay_and_a_relaunch_skips_them() {
    let t = spawn_app().await;
    let mut campaign = Campaign::from_toml(include_str!("../demo/campaign.toml")).unwrap();
    campaign.id = closeloop_core::CampaignId::parse("erasure-e2e").unwrap();
    let csv = "email;phone;first_name;last_name;store;owner_email;locale;bike_model\n\
               ingrid.sjoberg@example.se;+46 70 123 45 67;Ingrid;Sjöberg;Malmö;owner.malmo@example.se;sv;Crescent Elda 1998\n\
               pia@example.se;;Pia;Persson;Malmö;owner.malmo@example.se;sv;Monark\n";
    assert_eq!(closeloop::commands::launch_campaign(&t.app, &campaign, csv.as_bytes()).await.unwrap().invited, 2);
    let outbox = t.outbox().await;
    let ingrid_link = survey_link(of_kind(&outbox, "invitation").into_iter().find(|m| m["to"].as_str().unwrap().contains("ingrid")).unwrap());
    t.clock.set(T0.plus_hours(1));
    let first = "Kedjan hoppade av på hemvägen";
    let second = "Kedjan hoppade av igen, ring mig";
    assert_eq!(t.answer(&ingrid_link, &[("score", "3"), ("comment", first)]).await.status(), 303);
    t.clock.set(T0.plus_hours(2));
    assert_eq!(t.answer(&ingrid_link, &[("score", "2"), ("comment", second), ("contact_ok", "yes")]).await.status(), 303);
    let outbox = t.outbox().await;
    assert_eq!(of_kind(&outbox, "alert").len(), 1, "the owner is alerted about the detractor");
    let store = &t.app.store;
    let invitation = store.invitation_by_token(&closeloop_core::Token::parse(&ingrid_link[ingrid_link.len() - 22..]).unwrap()).await.unwrap().unwrap();
    let note = "Ringde Ingrid om kedjan, ny kedja bokad";
    let note_entry = closeloop_core::model::CaseNote { by: "owner.malmo@example.se".into(), at: T0.plus_hours(3), text: note.into() };
    assert!(store.add_case_note(&invitation.id, &note_entry).await.unwrap());
    store.settle_counters().await.unwrap();
    let every_bucket = closeloop_core::counters::View::Everything.prefixes();
    let counted_before = store.counter_buckets(&campaign.id, &every_bucket).await.unwrap();
    let personal = ["ingrid.sjoberg@example.se", "+46701234567", "Ingrid", "Sjöberg", first, second, note, "Crescent Elda 1998"];
    let before = database_bytes(t.dir.path());
    assert!(personal.iter().all(|p| holds(&before, p)), "the test's data is in the files before the erasure");

    // Access: the API gives every answer version, the case note and the messages.
    let api = |path: &str| t.http.get(format!("{}{path}", t.base)).bearer_auth(PEOPLE_TOKEN);
    let crm = t.http.get(format!("{}/api/v1/people?email=pia@example.se", t.base)).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(crm.status(), 401, "the invitation API's token reads nobody");
    let export: Value = api("/api/v1/people?email=Ingrid.Sjoberg@example.se").send().await.unwrap().json().await.unwrap();
    let record = &export["invitations"][0];
    assert_eq!(record["answers"].as_array().unwrap().iter().map(|a| a["comment"].as_str().unwrap()).collect::<Vec<_>>(), vec![first, second]);
    assert_eq!(record["case"]["notes"][0]["text"], note);
    assert_eq!(record["contact"]["properties"]["bike_model"], "Crescent Elda 1998");
    let kinds: Vec<&str> = record["messages"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["invitation", "thank_you", "alert"]);
    assert!(record.get("token").is_none(), "the link token is a credential, not exported");
    assert_eq!(api("/api/v1/people?email=not-an-address").send().await.unwrap().status(), 400);
    assert_eq!(t.http.get(format!("{}/api/v1/people?email=pia@example.se", t.base)).send().await.unwrap().status(), 401);

    // Erasure, by phone: the email invitation of the same person goes too.
    let erase = || t.http.post(format!("{}/api/v1/people/erase", t.base)).bearer_auth(PEOPLE_TOKEN).json(&serde_json::json!({ "phone": "+46 70 123 45 67" }));
    let erased = erase().send().await.unwrap();
    assert_eq!(erased.status(), 200);
    let report: Value = erased.json().await.unwrap();
    assert_eq!((report["report"]["invitations_erased"].as_u64(), report["report"]["keys_suppressed"].as_u64()), (Some(1), Some(2)));

    let after = database_bytes(t.dir.path());
    for p in personal {
        assert!(!holds(&after, p), "{p:?} is still in the database files");
    }
    store.settle_counters().await.unwrap();
    let counted_after = store.counter_buckets(&campaign.id, &every_bucket).await.unwrap();
    assert_eq!(counted_after.get("total"), counted_before.get("total"), "the totals stay");
    assert_eq!(counted_after.get("seg\u{1f}store\u{1f}Malmö"), counted_before.get("seg\u{1f}store\u{1f}Malmö"), "and the store's breakdown");
    assert!(counted_after.contains_key("seg\u{1f}prop:bike_model\u{1f}(erased)"), "her bike model counts as erased");
    let unknown = t.http.get(format!("{}/s/AAAAAAAAAAAAAAAAAAAAAA", t.base)).send().await.unwrap();
    let gone = t.http.get(t.local(&ingrid_link)).send().await.unwrap();
    assert_eq!((gone.status(), unknown.status()), (reqwest::StatusCode::NOT_FOUND, reqwest::StatusCode::NOT_FOUND));
    assert_eq!(gone.text().await.unwrap(), unknown.text().await.unwrap(), "the same page as an unknown token");
    let row = store.invitation(&invitation.id).await.unwrap().unwrap();
    assert!(row.contact.properties.values().all(|v| v == "(erased)") && row.erased_at.is_some(), "the CRM values are gone from her row");
    let left = t.outbox().await;
    assert!(left.iter().all(|m| !m.to_string().contains("ingrid")), "no message to or about her is left");
    assert_eq!(of_kind(&left, "invitation").len(), 1, "Pia's invitation stays");

    // Repeating the erasure is harmless; a relaunch skips her as suppressed.
    assert_eq!(erase().send().await.unwrap().json::<Value>().await.unwrap()["report"]["invitations_erased"], 0);
    let mut again = campaign.clone();
    again.id = closeloop_core::CampaignId::parse("erasure-e2e-again").unwrap();
    t.clock.set(T0.plus_days(200));
    let relaunch = closeloop::commands::launch_campaign(&t.app, &again, csv.as_bytes()).await.unwrap();
    assert_eq!((relaunch.invited, relaunch.suppressed), (1, 1), "Pia is invited again, Ingrid is not");
    t.running.stop().await;
}
