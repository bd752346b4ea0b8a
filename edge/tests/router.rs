//! The router in process, against the embedded store: every response a respondent or a CRM can get.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use closeloop_testkit::T0;
use closeloop_core::ports::{ManualClock, Store};
use closeloop_core::{Campaign, Invitation};
use closeloop_edge::{router, AppState};
use closeloop_embedded::{Outbox, SqliteStore};
use closeloop_functions::{dispatch, launch, Services};

const API_TOKEN: &str = "test-token-that-is-long-enough";

struct TestApp {
    router: Router,
    store: SqliteStore,
    outbox: Outbox,
    services: Services,
    campaign: Campaign,
    clock: Arc<ManualClock>,
}

const CAMPAIGN: &str = r#"
id = "router"
name = "Router test"
company = "Acme <Bikes>"
sender_name = "Sam"
sender_email = "sam@acme.example"
manager_email = "boss@acme.example"
[[drivers]]
key = "ease"
label = "Ease"
[[review_sites]]
key = "trustpilot"
name = "Trustpilot"
url = "https://trustpilot.example/review/acme"
[[review_sites]]
key = "shop"
name = "Shop"
url = "https://shop.example/review"
audience = "promoters_only"
"#;

async fn spawn_app() -> TestApp {
    let closeloop_testkit::Local { store, outbox, clock, services } = closeloop_testkit::local();
    let campaign = Campaign::from_toml(CAMPAIGN).unwrap();
    let csv = "email,first_name,owner_email\nasa@example.se,Åsa,owner@acme.example\nbo@example.se,Bo,\n";
    launch::launch(&services, &campaign, csv.as_bytes()).await.unwrap();
    dispatch::dispatch_pending(&services).await.unwrap();
    let router = router(AppState::new(&services, Some(API_TOKEN)));
    TestApp { router, store, outbox, services, campaign, clock }
}

impl TestApp {
    async fn invitation(&self, n: usize) -> Invitation {
        self.store.campaign_rows(&self.campaign.id).await.unwrap().into_iter().map(|r| r.invitation).nth(n).unwrap()
    }

    async fn send(&self, request: Request<Body>) -> Response {
        self.router.clone().oneshot(request).await.unwrap()
    }

    async fn get(&self, uri: &str) -> Response {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, body: &str) -> Response {
        self.send(
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(Body::from(body.to_owned())).unwrap(),
        )
        .await
    }

    async fn post_api(&self, auth: Option<&str>, content_type: &str, body: &str) -> Response {
        let mut request = Request::post("/api/v1/invitations").header(header::CONTENT_TYPE, content_type);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        self.send(request.body(Body::from(body.to_owned())).unwrap()).await
    }
}

async fn text(response: Response) -> String {
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

async fn json(response: Response) -> serde_json::Value {
    serde_json::from_str(&text(response).await).unwrap()
}

#[tokio::test]
async fn an_unknown_or_malformed_token_gets_the_same_friendly_404() {
    let app = spawn_app().await;
    let unknown = text(app.get("/s/0000000000000000000000").await).await;
    let malformed_response = app.get("/s/..%2f..%2fetc").await;
    assert_eq!(malformed_response.status(), StatusCode::NOT_FOUND);
    let malformed = text(malformed_response).await;
    assert_eq!(unknown, malformed, "nothing tells a wrong token from a garbled one");
    assert!(unknown.contains("This link does not work"));
    assert!(!unknown.contains("Acme"), "the 404 names no company");
}

#[tokio::test]
async fn the_404_speaks_the_browsers_language() {
    let app = spawn_app().await;
    let response = app.send(Request::get("/s/nope").header(header::ACCEPT_LANGUAGE, "da-DK,da;q=0.9").body(Body::empty()).unwrap()).await;
    assert!(text(response).await.contains("Linket virker ikke"));
}

#[tokio::test]
async fn a_score_link_preselects_but_never_records_an_answer() {
    let app = spawn_app().await;
    let inv = app.invitation(0).await;
    let response = app.get(&format!("/s/{}?score=9", inv.token.as_str())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = text(response).await;
    assert!(html.contains("value=\"9\" checked"));
    assert!(app.store.answer(&inv.id).await.unwrap().is_none(), "a mail scanner's GET must not answer");
    let junk = text(app.get(&format!("/s/{}?score=99&score=x", inv.token.as_str())).await).await;
    assert!(!junk.contains("\" checked"), "a bad score in the link is ignored");
}

#[tokio::test]
async fn personal_pages_are_never_cached_framed_or_referred() {
    let app = spawn_app().await;
    let inv = app.invitation(0).await;
    let response = app.get(&format!("/s/{}", inv.token.as_str())).await;
    let h = response.headers();
    assert_eq!(h[header::CACHE_CONTROL], "private, no-store");
    assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'sha256-"));
}

#[tokio::test]
async fn posting_the_form_records_the_answer_once_and_redirects_to_thanks() {
    let app = spawn_app().await;
    let inv = app.invitation(0).await;
    let response = app.post_form(&format!("/s/{}", inv.token.as_str()), "score=0&comment=Too+slow+%3Cb%3E&contact_ok=yes&rating.ease=2").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], format!("/s/{}/thanks", inv.token.as_str()));
    let answer = app.store.answer(&inv.id).await.unwrap().unwrap();
    assert_eq!(answer.score.value(), 0, "zero is a real answer");
    assert_eq!(answer.comment.as_deref(), Some("Too slow <b>"));
    assert!(answer.contact_ok);
    assert_eq!(answer.ratings["ease"], 2);
    assert_eq!(answer.version, 1);
    let thanks = text(app.get(&format!("/s/{}/thanks", inv.token.as_str())).await).await;
    assert!(thanks.contains("Thank you!"));
    assert!(thanks.contains("/r/") && thanks.contains("trustpilot") && !thanks.contains("/shop"), "a detractor sees only ungated sites");
}

#[tokio::test]
async fn an_answered_page_shows_the_answer_and_an_edit_bumps_the_version() {
    let app = spawn_app().await;
    let inv = app.invitation(0).await;
    let url = format!("/s/{}", inv.token.as_str());
    app.post_form(&url, "score=6&comment=meh").await;
    let page = text(app.get(&url).await).await;
    assert!(page.contains("You answered 6"));
    assert!(page.contains("value=\"6\" checked") && page.contains(">meh</textarea>"));
    assert!(page.contains("Update my answer"));
    app.post_form(&url, "score=9").await;
    let answer = app.store.answer(&inv.id).await.unwrap().unwrap();
    assert_eq!((answer.score.value(), answer.version), (9, 2));
}

#[tokio::test]
async fn an_invalid_form_gets_a_400_page_with_what_was_typed_and_loses_nothing_recorded() {
    let app = spawn_app().await;
    let inv = app.invitation(0).await;
    let url = format!("/s/{}", inv.token.as_str());
    app.post_form(&url, "score=8&comment=first").await;
    let response = app.post_form(&url, "score=11&comment=Keep+me&rating.ease=7").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = text(response).await;
    assert!(html.contains("A score is a whole number from 0 to 10."));
    assert!(html.contains("Please choose a rating from 1 to 5"));
    assert!(html.contains(">Keep me</textarea>"));
    let answer = app.store.answer(&inv.id).await.unwrap().unwrap();
    assert_eq!((answer.score.value(), answer.comment.as_deref()), (8, Some("first")), "the earlier answer stands");
}

#[tokio::test]
async fn a_body_that_is_not_a_form_gets_a_friendly_400() {
    let app = spawn_app().await;
    let inv = app.invitation(0).await;
    let response = app
        .send(Request::post(format!("/s/{}", inv.token.as_str())).header(header::CONTENT_TYPE, "application/json").body(Body::from("{}")).unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(text(response).await.contains("We could not read the form"));
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_and_a_wrong_method_with_405() {
    let app = spawn_app().await;
    let inv = app.invitation(0).await;
    let huge = format!("score=5&comment={}", "x".repeat(closeloop_edge::MAX_BODY_BYTES + 1));
    assert_eq!(app.post_form(&format!("/s/{}", inv.token.as_str()), &huge).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(app.store.answer(&inv.id).await.unwrap().is_none());
    let delete = app.send(Request::builder().method(Method::DELETE).uri(format!("/s/{}", inv.token.as_str())).body(Body::empty()).unwrap()).await;
    assert_eq!(delete.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_review_redirect_goes_only_to_the_configured_site_for_an_eligible_answer() {
    let app = spawn_app().await;
    let inv = app.invitation(0).await;
    let token = inv.token.as_str();
    let link = app.get(&format!("/r/{token}/trustpilot")).await;
    assert_eq!(link.status(), StatusCode::SEE_OTHER, "the link itself records nothing");
    assert_eq!(link.headers()[header::LOCATION], format!("/r/{token}/trustpilot/go"));
    let before = app.get(&format!("/r/{token}/trustpilot/go")).await;
    assert_eq!(before.status(), StatusCode::SEE_OTHER, "no answer yet: back to the survey");
    app.post_form(&format!("/s/{token}"), "score=3").await;
    assert_eq!(app.get(&format!("/r/{token}/shop/go")).await.status(), StatusCode::NOT_FOUND, "promoters-only site");
    assert_eq!(app.get(&format!("/r/{token}/evil/go")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/r/%2E%2E/%2E%2E").await.status(), StatusCode::NOT_FOUND, "no dot segments echoed into a Location");
    assert_eq!(app.get(&format!("/r/{token}/Trust%20pilot")).await.status(), StatusCode::NOT_FOUND);
    let head = app.send(Request::builder().method(Method::HEAD).uri(format!("/r/{token}/trustpilot/go")).body(Body::empty()).unwrap()).await;
    assert_eq!(head.status(), StatusCode::FOUND);
    let clicks = || async { app.store.campaign_rows(&app.campaign.id).await.unwrap().into_iter().find(|r| r.invitation.id == inv.id).unwrap().review_clicks };
    assert_eq!(clicks().await, 0, "a HEAD is a scanner's, not a click");
    let response = app.get(&format!("/r/{token}/trustpilot/go")).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()[header::LOCATION], "https://trustpilot.example/review/acme");
    assert_eq!(response.headers()[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(clicks().await, 1);
}

#[tokio::test]
async fn a_head_request_never_counts_as_an_open_and_an_answer_does() {
    let app = spawn_app().await;
    let (first, second) = (app.invitation(0).await, app.invitation(1).await);
    let head = app.send(Request::builder().method(Method::HEAD).uri(format!("/s/{}", first.token.as_str())).body(Body::empty()).unwrap()).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(app.store.invitation(&first.id).await.unwrap().unwrap().opened_at.is_none(), "a HEAD is a link checker");
    let answered = app.post_form(&format!("/s/{}", second.token.as_str()), "score=8").await;
    assert_eq!(answered.status(), StatusCode::SEE_OTHER);
    assert!(app.store.invitation(&second.id).await.unwrap().unwrap().opened_at.is_some(), "answering without a GET still opened");
    app.get(&format!("/s/{}", first.token.as_str())).await;
    assert!(app.store.invitation(&first.id).await.unwrap().unwrap().opened_at.is_some());
}

#[tokio::test]
async fn unsubscribe_confirms_on_get_and_suppresses_on_post_idempotently() {
    let app = spawn_app().await;
    let inv = app.invitation(0).await;
    let url = format!("/u/{}", inv.token.as_str());
    let confirm = text(app.get(&url).await).await;
    assert!(confirm.contains("Yes, unsubscribe me"));
    assert!(!app.store.is_suppressed(&inv.contact.keys()).await.unwrap(), "a GET changes nothing");
    let done = app.post_form(&url, "List-Unsubscribe=One-Click").await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(text(done).await.contains("You are unsubscribed"));
    assert!(app.store.is_suppressed(&inv.contact.keys()).await.unwrap());
    assert_eq!(app.post_form(&url, "").await.status(), StatusCode::OK, "twice is fine");
}

#[tokio::test]
async fn the_api_refuses_requests_without_the_right_bearer_token() {
    let app = spawn_app().await;
    let body = r#"{"campaign_id":"router","contact":{"email":"new@example.com"}}"#;
    let missing = app.post_api(None, "application/json", body).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(json(missing).await["error"]["code"], "unauthorized");
    let wrong = app.post_api(Some("Bearer nope"), "application/json", body).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_api_explains_every_bad_request_in_json() {
    let app = spawn_app().await;
    let auth = Some(format!("Bearer {API_TOKEN}"));
    let auth = auth.as_deref();
    let cases = [
        ("text/plain", "{}", StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("application/json", "{not json", StatusCode::BAD_REQUEST, "malformed_json"),
        ("application/json", r#"{"campaign_id":"router","contact":{"emial":"x@y.se"}}"#, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("application/json", r#"{"campaign_id":"router","contact":{"email":"not-an-email"}}"#, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        ("application/json", r#"{"campaign_id":"router","contact":{"first_name":"Nobody"}}"#, StatusCode::UNPROCESSABLE_ENTITY, "invalid_contact"),
        ("application/json", r#"{"campaign_id":"nope","contact":{"email":"x@y.se"}}"#, StatusCode::NOT_FOUND, "unknown_campaign"),
    ];
    for (content_type, body, status, code) in cases {
        let response = app.post_api(auth, content_type, body).await;
        assert_eq!(response.status(), status, "{body}");
        let error = json(response).await;
        assert_eq!(error["error"]["code"], code, "{body}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    let field = json(app.post_api(auth, "application/json", r#"{"campaign_id":"router","contact":{"email":"not-an-email"}}"#).await).await;
    assert!(field["error"]["message"].as_str().unwrap().contains("contact.email"));
}

#[tokio::test]
async fn the_api_creates_and_sends_one_invitation_and_skips_a_repeat() {
    let app = spawn_app().await;
    let auth = format!("Bearer {API_TOKEN}");
    let body = r#"{"campaign_id":"router","touchpoint":"support case","contact":{"email":"Kim@Example.com","first_name":"Kim","properties":{"case":"C-1"}}}"#;
    let response = app.post_api(Some(&auth), "application/json; charset=utf-8", body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = json(response).await;
    assert_eq!(created["status"], "created");
    assert!(created["survey_url"].as_str().unwrap().starts_with("https://nps.example/s/"));
    dispatch::dispatch_pending(&app.services).await.unwrap();
    let sent: Vec<_> = app.outbox.messages().unwrap().into_iter().filter(|m| m.to.contains("kim@example.com")).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, "invitation");
    let again = app.post_api(Some(&auth), "application/json", body).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(json(again).await, serde_json::json!({"status": "skipped", "reason": "throttled"}));
}

#[tokio::test]
async fn api_names_with_line_breaks_controls_and_bidi_overrides_reach_the_mail_as_one_clean_line() {
    let app = spawn_app().await;
    let auth = format!("Bearer {API_TOKEN}");
    let body = r#"{"campaign_id":"router","contact":{"email":"eve@example.com","first_name":"Eve\r\nBcc: victim@example.com\u0000","last_name":"\u202eLund","company":"A\u2028B","properties":{"note":"x\u0085y"}}}"#;
    let response = app.post_api(Some(&auth), "application/json", body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    dispatch::dispatch_pending(&app.services).await.unwrap();
    let sent = app.outbox.messages().unwrap().into_iter().find(|m| m.to.contains("eve@example.com")).unwrap();
    assert!(sent.to.starts_with("\"Eve Bcc: victim@example.com Lund\" <"), "{}", sent.to);
    let raw = sent.raw.unwrap();
    let headers = raw.split("\r\n\r\n").next().unwrap();
    assert!(!headers.lines().any(|l| l.starts_with("Bcc")), "{headers}");
    assert!(!sent.to.contains('\u{202e}') && !sent.text.contains('\u{202e}') && !sent.html.unwrap().contains('\u{202e}'), "the override is gone from the name everywhere");
}

#[tokio::test]
async fn a_cancelled_invitation_never_goes_out_and_one_already_sent_cannot_be_cancelled() {
    let app = spawn_app().await;
    let auth = format!("Bearer {API_TOKEN}");
    let create = |email: &str| format!(r#"{{"campaign_id":"router","contact":{{"email":"{email}","first_name":"K"}}}}"#);
    let cancel = |id: &str, auth: Option<&str>| {
        let mut request = Request::delete(format!("/api/v1/invitations/{id}"));
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        request.body(Body::empty()).unwrap()
    };
    let returned = json(app.post_api(Some(&auth), "application/json", &create("returned@example.com")).await).await;
    let returned_id = returned["invitation_id"].as_str().unwrap().to_owned();
    assert_eq!(app.send(cancel(&returned_id, None)).await.status(), StatusCode::UNAUTHORIZED);
    let response = app.send(cancel(&returned_id, Some(&auth))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["status"], "cancelled");
    dispatch::dispatch_pending(&app.services).await.unwrap();
    let to_returned = || app.outbox.messages().unwrap().into_iter().filter(|m| m.to.contains("returned@example.com")).count();
    assert_eq!(to_returned(), 0, "cancelled before the dispatcher got to it");
    assert_eq!(app.send(cancel(&returned_id, Some(&auth))).await.status(), StatusCode::OK, "cancelling twice is fine");
    let sent = json(app.post_api(Some(&auth), "application/json", &create("sent@example.com")).await).await;
    dispatch::dispatch_pending(&app.services).await.unwrap();
    let response = app.send(cancel(sent["invitation_id"].as_str().unwrap(), Some(&auth))).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(json(response).await["error"]["code"], "already_sent");
    let reminders = closeloop_functions::schedule::run(&app.services, &Default::default(), T0.plus_days(30)).await.unwrap();
    let to_sent = app.outbox.messages().unwrap().into_iter().filter(|m| m.to.contains("sent@example.com") && m.kind == "reminder").count();
    assert!(reminders.reminders_sent >= 1 && to_sent == 1, "the one not cancelled is reminded: {reminders:?}");
    assert_eq!(to_returned(), 0, "the cancelled one is not");
    assert_eq!(app.send(cancel("no-such-invitation", Some(&auth))).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.send(cancel("..%2F..%2Fetc", Some(&auth))).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_storage_failure_gives_a_503_page_that_keeps_what_the_person_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("closeloop.db");
    let closeloop_testkit::Local { store, services, .. } = closeloop_testkit::Local::over(SqliteStore::open(&path).unwrap());
    let campaign = Campaign::from_toml(CAMPAIGN).unwrap();
    launch::launch(&services, &campaign, b"email\nasa@example.se\n").await.unwrap();
    let token = store.campaign_rows(&campaign.id).await.unwrap()[0].invitation.token.clone();
    let router = router(AppState::new(&services, None));
    // The database loses the answers table under the running app: every answer write fails.
    rusqlite::Connection::open(&path).unwrap().execute_batch("DROP TABLE answers").unwrap();
    let response = router
        .oneshot(
            Request::post(format!("/s/{}", token.as_str()))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("score=4&comment=Mitt+svar+%C3%A5%C3%A4%C3%B6&contact_ok=yes"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = text(response).await;
    assert!(html.contains("We could not save your answer just now"));
    assert!(html.contains(">Mitt svar åäö</textarea>"), "the comment survives the failure");
    assert!(html.contains("value=\"4\" checked") && html.contains("name=\"contact_ok\" value=\"yes\" checked"));
}

#[tokio::test]
async fn a_batch_invites_each_contact_and_reports_each_one_in_order() {
    let app = spawn_app().await;
    let auth = format!("Bearer {API_TOKEN}");
    let body = serde_json::json!({
        "campaign_id": "router",
        "touchpoint": "purchase",
        "contacts": [
            {"email": "one@example.com", "first_name": "Ett"},
            {"email": "not-an-email"},
            {"phone": "+45 20 11 22 33"},
            {"email": "ONE@example.com"},
            {"email": "asa@example.se"}
        ]
    });
    let response = app.post_api(Some(&auth), "application/json", &body.to_string()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let results = json(response).await["results"].as_array().unwrap().clone();
    let statuses: Vec<&str> = results.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["created", "invalid", "created", "skipped", "skipped"]);
    assert!(results[1]["error"]["message"].as_str().unwrap().contains("contact.email"));
    assert_eq!(results[3]["reason"], "throttled", "the same person twice in one batch");
    assert_eq!(results[4]["reason"], "throttled", "invited by the launch just before");
    dispatch::dispatch_pending(&app.services).await.unwrap();
    let sms = app.outbox.messages().unwrap().into_iter().filter(|m| m.channel == "sms").count();
    assert_eq!(sms, 1);
    let too_many = serde_json::json!({"campaign_id": "router", "contacts": vec![serde_json::json!({"email": "x@example.com"}); 101]});
    let response = app.post_api(Some(&auth), "application/json", &too_many.to_string()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let both = r#"{"campaign_id":"router","contact":{"email":"a@example.com"},"contacts":[]}"#;
    assert_eq!(app.post_api(Some(&auth), "application/json", both).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_invitation_asked_for_later_goes_out_at_its_time_once_and_its_reminder_counts_from_then() {
    let app = spawn_app().await;
    let auth = format!("Bearer {API_TOKEN}");
    let body = |extra: &str| format!(r#"{{"campaign_id":"router","contact":{{"email":"later@example.com","first_name":"Lo"}}{extra}}}"#);
    for (extra, why) in [
        (r#","send_at":"2026-09-21T18:00:00Z","delay_minutes":5"#, "both"),
        (r#","delay_minutes":50000"#, "beyond 30 days"),
        (r#","send_at":"tomorrow at six""#, "not a time"),
        (r#","send_at":"2027-09-21T18:00:00Z""#, "a year ahead"),
        (r#","delay_minutes":-5"#, "negative"),
    ] {
        let response = app.post_api(Some(&auth), "application/json", &body(extra)).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{why}");
    }
    let response = app.post_api(Some(&auth), "application/json", &body(r#","delay_minutes":120"#)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = json(response).await;
    // T0 is 14:13:20 UTC; the campaign is English-first, so on UTC's clock.
    assert_eq!(created["send_at"], "2026-09-21T16:13:20+00:00");
    let to_later = || app.outbox.messages().unwrap().into_iter().filter(|m| m.to.contains("later@example.com")).collect::<Vec<_>>();
    dispatch::dispatch_pending(&app.services).await.unwrap();
    assert!(to_later().is_empty(), "not before its time");
    let accounts = closeloop_core::accounts::Accounts::default();
    let almost = closeloop_core::Timestamp::from_millis(T0.plus_hours(2).millis() - 60_000);
    app.clock.set(almost);
    closeloop_functions::schedule::run(&app.services, &accounts, almost).await.unwrap();
    assert!(to_later().is_empty(), "a minute early");
    let due = T0.plus_hours(2);
    app.clock.set(due);
    let summary = closeloop_functions::schedule::run(&app.services, &accounts, due).await.unwrap();
    assert_eq!((summary.invitations_released, summary.reminders_sent), (1, 0), "{summary:?}");
    closeloop_functions::schedule::run(&app.services, &accounts, due).await.unwrap();
    let sent = to_later();
    assert_eq!(sent.len(), 1, "once");
    assert_eq!(sent[0].kind, "invitation");
    // A run cut off after the send but before it moved the slot on leaves the slot in place:
    // the next run sends no reminder for it, it only moves the slot on.
    let id = closeloop_core::model::InvitationId(created["invitation_id"].as_str().unwrap().to_owned());
    let moved_on = app.store.invitation(&id).await.unwrap().unwrap().next_reminder_at;
    app.store.reminder_sent(&id, 0, Some(due)).await.unwrap();
    closeloop_functions::schedule::run(&app.services, &accounts, due).await.unwrap();
    assert_eq!(to_later().len(), 1, "no reminder right after the invitation");
    assert_eq!(app.store.invitation(&id).await.unwrap().unwrap().next_reminder_at, moved_on);
    // Its reminder counts from the send, not from the request.
    let stored = app.store.invitation(&id).await.unwrap().unwrap();
    assert_eq!(stored.next_reminder_at, closeloop_core::rules::next_reminder_at(&app.campaign.reminders, due, 0, due));
    let reminder_at = stored.next_reminder_at.unwrap();
    app.clock.set(reminder_at);
    let summary = closeloop_functions::schedule::run(&app.services, &accounts, reminder_at).await.unwrap();
    assert_eq!(summary.invitations_released, 0, "{summary:?}");
    let kinds: Vec<String> = to_later().into_iter().map(|m| m.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "reminder").count(), 1, "then its one reminder: {kinds:?}");

    // Cancelled before the dispatcher saw it (the dispatcher then puts its send slot back), a
    // later invitation never goes out, and is never reminded.
    let response = app.post_api(Some(&auth), "application/json", r#"{"campaign_id":"router","contact":{"email":"returned.later@example.com"},"delay_minutes":60}"#).await;
    let returned = json(response).await["invitation_id"].as_str().unwrap().to_owned();
    let cancelled = app.send(Request::delete(format!("/api/v1/invitations/{returned}")).header(header::AUTHORIZATION, &auth).body(Body::empty()).unwrap()).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let later = reminder_at.plus_hours(2);
    app.clock.set(later);
    dispatch::dispatch_pending(&app.services).await.unwrap();
    closeloop_functions::schedule::run(&app.services, &accounts, later).await.unwrap();
    let much_later = later.plus_days(10);
    app.clock.set(much_later);
    closeloop_functions::schedule::run(&app.services, &accounts, much_later).await.unwrap();
    assert!(app.outbox.messages().unwrap().iter().all(|m| !m.to.contains("returned.later@example.com")));
    let returned = app.store.invitation(&closeloop_core::model::InvitationId(returned)).await.unwrap().unwrap();
    assert_eq!(returned.next_reminder_at, None, "its slot is gone");
}
