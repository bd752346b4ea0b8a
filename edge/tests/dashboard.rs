//! The dashboard in process, against the embedded store: who may see and change what, and that
//! nothing a customer or a CRM typed reaches a page or a spreadsheet unescaped.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use closeloop_core::accounts::{Accounts, Role};
use closeloop_core::model::{CaseStatus, Email, InvitationId};
use closeloop_core::ports::{Clock, ManualClock, Store};
use closeloop_core::{Campaign, Timestamp};
use closeloop_edge::admin::{AdminConfig, ReadLimits};
use closeloop_edge::{router, AppState};
use closeloop_embedded::SqliteStore;
use closeloop_functions::{dispatch, launch, Services};

use closeloop_testkit::T0;
const ADMIN: &str = "admin-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";
const ANNA: &str = "anna-token-0123456789abcdef";
const BO: &str = "bo-token-0123456789abcdef";
const EDITOR: &str = "editor-token-0123456789abcdef";
const SECRET: &str = "a test session secret of some length";

const CAMPAIGN: &str = r#"
id = "dash"
name = "Dashboard <test>"
company = "Acme"
sender_name = "Sam"
sender_email = "sam@acme.example"
time_zone = "Europe/Copenhagen"
[[drivers]]
key = "ease"
label = "Ease"
[themes]
price = ["price", "pris"]
"#;

/// Hostile values in every kind of field: markup, a formula, quotes.
const XSS: &str = "<script>alert(1)</script>";
const CSV: &str = "email,first_name,company,store,owner_email,region\n\
    asa@example.se,Åsa,\"<script>alert(1)</script>\",=cmd|' /C calc'!A0,anna@acme.example,\"<b>Syd</b>\"\n\
    bo@example.se,Bosse,Bo AB,Lund,bo@acme.example,Nord\n\
    cy@example.se,Cy,Cy AB,Lund,bo@acme.example,Nord\n";

struct TestApp {
    router: Router,
    store: SqliteStore,
    services: Services,
    campaign: Campaign,
    clock: Arc<ManualClock>,
}

/// A signed-in browser: its cookie and the CSRF token the pages give it.
struct Session {
    cookie: String,
    csrf: String,
}

async fn spawn_app() -> TestApp {
    let closeloop_testkit::Local { store, clock, services, .. } = closeloop_testkit::local();
    let campaign = Campaign::from_toml(CAMPAIGN).unwrap();
    launch::launch(&services, &campaign, CSV.as_bytes()).await.unwrap();
    let accounts = Accounts::default()
        .with("Admin", Role::Admin, None, ADMIN)
        .with("Vera Viewer", Role::Viewer, None, VIEWER)
        .with("Eda Editor", Role::Editor, None, EDITOR)
        .with("Anna", Role::Owner, Some(Email::parse("anna@acme.example").unwrap()), ANNA)
        .with("Bo", Role::Owner, Some(Email::parse("bo@acme.example").unwrap()), BO)
        .with_time_zone("Vera Viewer", closeloop_core::time::Zone::parse("America/New_York").unwrap());
    let state = AppState::new(&services, None).with_admin(AdminConfig::new(accounts, SECRET).unwrap());
    let app = TestApp { router: router(state), store, services, campaign, clock };
    // Everyone answers through the real page; all three are detractors, so each gets a case.
    app.answer("Åsa", "2", &format!("The price! {XSS}")).await;
    app.answer("Bosse", "4", "Bo's secret complaint").await;
    app.answer("Cy", "10", "Lovely").await;
    dispatch::dispatch_pending(&app.services).await.unwrap();
    app
}

/// `n` contacts (every third owned by Anna, the rest by Bo), each of whom answered with a
/// numbered comment, on a dashboard whose requests may each make only `limits` reads of rows.
async fn spawn_answered(n: usize, limits: ReadLimits) -> TestApp {
    let closeloop_testkit::Local { store, clock, services, .. } = closeloop_testkit::local();
    let campaign = Campaign::from_toml(CAMPAIGN).unwrap();
    let mut csv = String::from("email,first_name,owner_email\n");
    for i in 0..n {
        let owner = if i % 3 == 0 { "anna@acme.example" } else { "bo@acme.example" };
        csv.push_str(&format!("p{i}@example.se,P{i},{owner}\n"));
    }
    launch::launch(&services, &campaign, csv.as_bytes()).await.unwrap();
    let accounts = Accounts::default()
        .with("Admin", Role::Admin, None, ADMIN)
        .with("Anna", Role::Owner, Some(Email::parse("anna@acme.example").unwrap()), ANNA);
    let state = AppState::new(&services, None).with_admin(AdminConfig::new(accounts, SECRET).unwrap()).with_limits(limits);
    let app = TestApp { router: router(state), store, services, campaign, clock };
    for row in app.store.campaign_rows(&app.campaign.id).await.unwrap() {
        let first_name = row.invitation.contact.first_name.clone().unwrap();
        let number = &first_name[1..];
        app.answer(&first_name, "9", &format!("comment #{number}")).await;
    }
    app
}

/// The numbers of the comments a page or an export shows.
fn comment_numbers(text: &str, marker: &str) -> Vec<usize> {
    text.split(marker).skip(1).map(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()).collect()
}

/// The target of the link labelled `label`, unescaped.
fn link_to(html: &str, label: &str) -> Option<String> {
    let label_at = html.find(&format!(">{label}"))?;
    let start = html[..label_at].rfind("href=\"")? + 6;
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&"))
}

fn set_cookie_value(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned()))
}

fn csrf_in(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

async fn text(response: Response) -> String {
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

impl TestApp {
    async fn send(&self, request: Request<Body>) -> Response {
        self.router.clone().oneshot(request).await.unwrap()
    }

    async fn token_of(&self, first_name: &str) -> String {
        let rows = self.store.campaign_rows(&self.campaign.id).await.unwrap();
        let row = rows.iter().find(|r| r.invitation.contact.first_name.as_deref() == Some(first_name)).unwrap();
        row.invitation.token.as_str().to_owned()
    }

    async fn id_of(&self, first_name: &str) -> InvitationId {
        let rows = self.store.campaign_rows(&self.campaign.id).await.unwrap();
        rows.into_iter().find(|r| r.invitation.contact.first_name.as_deref() == Some(first_name)).unwrap().invitation.id
    }

    async fn answer(&self, first_name: &str, score: &str, comment: &str) {
        let token = self.token_of(first_name).await;
        let body = format!("score={score}&rating.ease=3&comment={}", closeloop_views::dashboard::form_encode(comment));
        let response = self
            .send(
                Request::post(format!("/s/{token}"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "answer of {first_name} recorded");
    }

    async fn sign_in(&self, token: &str) -> Session {
        let form = self.send(Request::get("/admin/sign-in").body(Body::empty()).unwrap()).await;
        let nonce = set_cookie_value(&form, "cl_signin").expect("the sign-in form sets its nonce cookie");
        let csrf = csrf_in(&text(form).await);
        let response = self
            .send(
                Request::post("/admin/sign-in")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::COOKIE, format!("cl_signin={nonce}"))
                    .body(Body::from(format!("csrf={}&token={token}", closeloop_views::dashboard::form_encode(&csrf))))
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "signed in");
        let cookie = format!("cl_session={}", set_cookie_value(&response, "cl_session").expect("a session cookie"));
        let page = self.get_as(&cookie, "/admin").await;
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = csrf_in(&text(page).await);
        Session { cookie, csrf }
    }

    /// A sign-in with `token` through a fresh form, as a browser would post it: its status.
    async fn sign_in_status(&self, token: &str) -> StatusCode {
        let form = self.send(Request::get("/admin/sign-in").body(Body::empty()).unwrap()).await;
        let nonce = set_cookie_value(&form, "cl_signin").unwrap();
        let csrf = csrf_in(&text(form).await);
        let attempt = Request::post("/admin/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, format!("cl_signin={nonce}"))
            .body(Body::from(format!("csrf={}&token={token}", closeloop_views::dashboard::form_encode(&csrf))))
            .unwrap();
        self.send(attempt).await.status()
    }

    async fn get_as(&self, cookie: &str, uri: &str) -> Response {
        self.send(Request::get(uri).header(header::COOKIE, cookie).body(Body::empty()).unwrap()).await
    }

    async fn page(&self, session: &Session, uri: &str) -> String {
        let response = self.get_as(&session.cookie, uri).await;
        let status = response.status();
        let body = text(response).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        body
    }

    async fn post_as(&self, session: &Session, uri: &str, body: &str) -> Response {
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, &session.cookie)
                .body(Body::from(format!("csrf={}&{body}", closeloop_views::dashboard::form_encode(&session.csrf))))
                .unwrap(),
        )
        .await
    }

    async fn case_status(&self, first_name: &str) -> CaseStatus {
        self.store.case(&self.id_of(first_name).await).await.unwrap().expect("a case").status
    }
}

const PAGES: [&str; 8] = [
    "/admin",
    "/admin/c/dash",
    "/admin/c/dash/segments",
    "/admin/c/dash/comments",
    "/admin/c/dash/drivers",
    "/admin/c/dash/cases",
    "/admin/c/dash/export.csv",
    "/admin/c/dash/preview",
];

#[tokio::test]
async fn no_dashboard_page_is_served_without_sign_in() {
    let app = spawn_app().await;
    for uri in PAGES {
        let response = app.send(Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(response.headers()[header::LOCATION], "/admin/sign-in");
        let forged = app.get_as("cl_session=QWRtaW4.99999999999999.n.bad", uri).await;
        assert_eq!(forged.status(), StatusCode::SEE_OTHER, "a forged session is no session: {uri}");
    }
    let asa = app.id_of("Åsa").await;
    let response = app
        .send(
            Request::post(format!("/admin/c/dash/cases/{}/close", asa.0))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("outcome=done"))
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.case_status("Åsa").await, CaseStatus::Open);
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_so_is_a_sign_in_posted_from_elsewhere() {
    let app = spawn_app().await;
    let form = app.send(Request::get("/admin/sign-in").body(Body::empty()).unwrap()).await;
    let nonce = set_cookie_value(&form, "cl_signin").unwrap();
    let csrf = csrf_in(&text(form).await);
    let post = |cookie: String, body: String| {
        Request::post("/admin/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookie)
            .body(Body::from(body))
            .unwrap()
    };
    let wrong = app.send(post(format!("cl_signin={nonce}"), format!("csrf={csrf}&token=not-the-admin-token-at-all"))).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie_value(&wrong, "cl_session").is_none());
    assert!(text(wrong).await.contains("not valid"));
    // Login CSRF: a page elsewhere cannot sign this browser in, lacking the nonce cookie.
    let forged = app.send(post(String::new(), format!("csrf={csrf}&token={ADMIN}"))).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie_value(&forged, "cl_session").is_none());
}

#[tokio::test]
async fn the_session_cookie_is_secure_http_only_and_strict() {
    let app = spawn_app().await;
    let form = app.send(Request::get("/admin/sign-in").body(Body::empty()).unwrap()).await;
    let nonce = set_cookie_value(&form, "cl_signin").unwrap();
    let csrf = csrf_in(&text(form).await);
    let response = app
        .send(
            Request::post("/admin/sign-in")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, format!("cl_signin={nonce}"))
                .body(Body::from(format!("csrf={csrf}&token={ADMIN}")))
                .unwrap(),
        )
        .await;
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cl_session="))
        .unwrap()
        .to_owned();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{attribute} missing from {cookie}");
    }
}

#[tokio::test]
async fn an_owner_never_sees_another_owners_answers_or_cases() {
    let app = spawn_app().await;
    let anna = app.sign_in(ANNA).await;
    let comments = app.page(&anna, "/admin/c/dash/comments").await;
    assert!(comments.contains("The price!"));
    assert!(!comments.contains("secret complaint"), "Bo's contact's comment leaked to Anna");
    let overview = app.page(&anna, "/admin/c/dash").await;
    assert!(overview.contains("Your contacts only (anna@acme.example)"));
    assert!(overview.contains("<span class=\"big\" id=\"nps-value\">-100</span>"), "one detractor of her own");
    let cases = app.page(&anna, "/admin/c/dash/cases?status=all").await;
    assert!(cases.contains("Åsa"));
    assert!(!cases.contains("Bosse"));
    let cases_of_bo = app.page(&anna, "/admin/c/dash/cases?status=all&owner=bo%40acme.example").await;
    assert!(!cases_of_bo.contains("Bosse"), "asking for Bo's cases still shows only her own");
    let export = app.page(&anna, "/admin/c/dash/export.csv").await;
    assert!(export.contains("asa@example.se") && !export.contains("bo@example.se"));
    let segments = app.page(&anna, "/admin/c/dash/segments?by=store").await;
    assert!(!segments.contains("Lund"), "Bo's contacts' stores are not Anna's segments");

    let bosse = app.id_of("Bosse").await;
    let response = app.post_as(&anna, &format!("/admin/c/dash/cases/{}/close", bosse.0), "outcome=mine+now").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app.post_as(&anna, &format!("/admin/c/dash/cases/{}/notes", bosse.0), "text=peek").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let case = app.store.case(&bosse).await.unwrap().unwrap();
    assert_eq!((case.status, case.notes.len()), (CaseStatus::Open, 0), "Bo's case is untouched");
}

#[tokio::test]
async fn a_viewer_reads_everything_but_cannot_change_a_case() {
    let app = spawn_app().await;
    let vera = app.sign_in(VIEWER).await;
    let comments = app.page(&vera, "/admin/c/dash/comments").await;
    assert!(comments.contains("The price!") && comments.contains("secret complaint"));
    let cases = app.page(&vera, "/admin/c/dash/cases?status=all").await;
    assert!(cases.contains("Åsa") && cases.contains("Bosse"));
    assert!(!cases.contains("Close case"), "no case forms for a viewer");
    let asa = app.id_of("Åsa").await;
    let response = app.post_as(&vera, &format!("/admin/c/dash/cases/{}/close", asa.0), "outcome=viewed").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app.post_as(&vera, &format!("/admin/c/dash/cases/{}/notes", asa.0), "text=hello").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let case = app.store.case(&asa).await.unwrap().unwrap();
    assert_eq!((case.status, case.notes.len()), (CaseStatus::Open, 0));
}

#[tokio::test]
async fn closing_a_case_records_who_and_when_and_the_first_closure_stands() {
    let app = spawn_app().await;
    let anna = app.sign_in(ANNA).await;
    let asa = app.id_of("Åsa").await;
    let noted = app.post_as(&anna, &format!("/admin/c/dash/cases/{}/notes", asa.0), "text=Called+her%2C+refund+agreed").await;
    assert_eq!(noted.status(), StatusCode::SEE_OTHER);
    let closed = app.post_as(&anna, &format!("/admin/c/dash/cases/{}/close", asa.0), "outcome=Refunded").await;
    assert_eq!(closed.status(), StatusCode::SEE_OTHER);
    let admin = app.sign_in(ADMIN).await;
    let again = app.post_as(&admin, &format!("/admin/c/dash/cases/{}/close", asa.0), "outcome=Other").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let case = app.store.case(&asa).await.unwrap().unwrap();
    let closure = case.closed.expect("closed");
    assert_eq!((closure.by.as_str(), closure.outcome.as_str(), closure.at), ("Anna", "Refunded", T0));
    assert_eq!(case.notes[0].text, "Called her, refund agreed");
    let page = app.page(&admin, "/admin/c/dash/cases?status=closed").await;
    assert!(page.contains("Closed by Anna"));
    assert!(page.contains("2026-09-21 16:13 CEST"), "when, on the campaign's Copenhagen clock");
    assert!(!page.contains(" UTC"), "no time in bare UTC");
    let vera = app.sign_in(VIEWER).await;
    let page = app.page(&vera, "/admin/c/dash/cases?status=closed").await;
    assert!(page.contains("2026-09-21 10:13 EDT"), "a reader with a zone of her own sees her clock");
    let empty = app.post_as(&admin, &format!("/admin/c/dash/cases/{}/notes", asa.0), "text=+++").await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_form_without_this_sessions_token_or_from_another_origin_is_refused() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let other = app.sign_in(ADMIN).await;
    let asa = app.id_of("Åsa").await;
    let uri = format!("/admin/c/dash/cases/{}/close", asa.0);
    let stolen = Session { cookie: admin.cookie.clone(), csrf: other.csrf.clone() };
    assert_eq!(app.post_as(&stolen, &uri, "outcome=x").await.status(), StatusCode::FORBIDDEN);
    let missing = Session { cookie: admin.cookie.clone(), csrf: String::new() };
    assert_eq!(app.post_as(&missing, &uri, "outcome=x").await.status(), StatusCode::FORBIDDEN);
    let cross_site = app
        .send(
            Request::post(&uri)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, &admin.cookie)
                .header(header::HOST, "nps.example")
                .header(header::ORIGIN, "https://evil.example")
                .body(Body::from(format!("csrf={}&outcome=x", closeloop_views::dashboard::form_encode(&admin.csrf))))
                .unwrap(),
        )
        .await;
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.case_status("Åsa").await, CaseStatus::Open);
}

#[tokio::test]
async fn every_crm_field_and_comment_is_escaped_on_every_page() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    for uri in [
        "/admin",
        "/admin/c/dash",
        "/admin/c/dash?by=prop%3Aregion&value=%3Cb%3ESyd%3C%2Fb%3E",
        "/admin/c/dash/segments?by=company",
        "/admin/c/dash/segments?by=prop:region",
        "/admin/c/dash/comments",
        "/admin/c/dash/comments?q=%3Cscript%3E",
        "/admin/c/dash/drivers",
        "/admin/c/dash/cases?status=all",
    ] {
        let html = app.page(&admin, uri).await;
        assert!(!html.contains("<script>"), "raw script on {uri}");
        assert!(!html.contains("<b>Syd"), "raw CRM markup on {uri}");
        assert!(!html.contains("Dashboard <test>"), "raw campaign name on {uri}");
    }
    let comments = app.page(&admin, "/admin/c/dash/comments").await;
    assert!(comments.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the comment is shown, escaped");
    let segments = app.page(&admin, "/admin/c/dash/segments?by=prop:region").await;
    assert!(segments.contains("&lt;b&gt;Syd&lt;/b&gt;"));
}

#[tokio::test]
async fn the_export_is_excel_ready_and_neutralises_formulas() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let response = app.get_as(&admin.cookie, "/admin/c/dash/export.csv").await;
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(response.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().contains("attachment"));
    let csv = text(response).await;
    assert!(csv.starts_with('\u{feff}'), "a BOM, so Excel reads UTF-8");
    assert!(csv.contains("\"'=cmd|' /C calc'!A0\""), "the formula store name is neutralised: {csv}");
    assert!(!csv.contains(",\"=cmd"));
    assert!(csv.contains("Åsa"));
    assert_eq!(csv.lines().count(), 4, "a header and three answers");
    assert!(csv.contains("2026-09-21T16:13:20+02:00"), "answered_at with the campaign zone's offset: {csv}");
}

#[tokio::test]
async fn admins_and_editors_download_the_campaign_as_the_file_it_came_from() {
    let app = spawn_app().await;
    let editor = app.sign_in(EDITOR).await;
    assert!(app.page(&editor, "/admin/c/dash").await.contains("/admin/c/dash/campaign.toml"), "the editor sees the link");
    let response = app.get_as(&editor.cookie, "/admin/c/dash/campaign.toml").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/toml; charset=utf-8");
    assert_eq!(response.headers()[header::CONTENT_DISPOSITION], "attachment; filename=\"dash.toml\"");
    let file = text(response).await;
    assert_eq!(Campaign::from_toml(&file).unwrap(), app.campaign, "the file reads back as the campaign: {file}");
    for token in [VIEWER, ANNA] {
        let session = app.sign_in(token).await;
        assert!(!app.page(&session, "/admin/c/dash").await.contains("campaign.toml"), "no link for viewers and owners");
        assert_eq!(app.get_as(&session.cookie, "/admin/c/dash/campaign.toml").await.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(app.get_as(&editor.cookie, "/admin/c/no-such/campaign.toml").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_overview_counts_opens_and_a_segment_filter_narrows_it() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let overview = app.page(&admin, "/admin/c/dash").await;
    // Two detractors and one promoter of three: NPS -33; they posted without a GET, and an
    // answer counts as an open.
    assert!(overview.contains("id=\"nps-value\">-33<"), "{overview}");
    assert!(overview.contains("<th scope=\"row\">Opened the page</th><td class=\"num\">3</td>"), "{overview}");
    // The launch that invited them, read from its job.
    assert!(overview.contains("<h2 id=\"launches-h\">Launches</h2>"), "{overview}");
    assert!(overview.contains("<td>file</td><td>done"), "{overview}");
    let token = app.token_of("Åsa").await;
    app.send(Request::get(format!("/s/{token}")).body(Body::empty()).unwrap()).await;
    app.send(Request::get(format!("/s/{token}?score=3")).body(Body::empty()).unwrap()).await;
    let overview = app.page(&admin, "/admin/c/dash").await;
    assert!(overview.contains("<th scope=\"row\">Opened the page</th><td class=\"num\">3</td>"), "opened once, counted once");
    let lund = app.page(&admin, "/admin/c/dash?by=store&value=Lund").await;
    assert!(lund.contains("Only contacts with store = Lund"));
    assert!(lund.contains("id=\"nps-value\">0<"), "Lund: one detractor, one promoter");
}

#[tokio::test]
async fn comments_come_a_page_at_a_time_and_the_pages_show_each_comment_once() {
    let app = spawn_answered(450, ReadLimits { row_reads: Some(2), ..ReadLimits::UNBOUNDED }).await;
    for (token, expected) in [(ADMIN, (0..450).collect::<Vec<usize>>()), (ANNA, (0..450).step_by(3).collect())] {
        let session = app.sign_in(token).await;
        let (mut seen, mut pages) = (Vec::new(), 0);
        let mut uri = Some("/admin/c/dash/comments".to_owned());
        while let Some(next) = uri {
            let html = app.page(&session, &next).await;
            pages += 1;
            seen.extend(comment_numbers(&html, "<p class=\"comment\">comment #"));
            uri = link_to(&html, "More comments →");
        }
        // A request stops at the first store page (200 rows) that fills it with comments; Anna's
        // 150 fit one page of the owner index.
        assert_eq!(pages, if token == ADMIN { 3 } else { 1 }, "{token}: pages of comments");
        seen.sort_unstable();
        assert_eq!(seen, expected, "{token}: every comment once, none of another owner's");
    }
    let admin = app.sign_in(ADMIN).await;
    let bad = app.get_as(&admin.cookie, "/admin/c/dash/comments?after=%00").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "a broken page link is refused");
}

#[tokio::test]
async fn an_export_larger_than_one_request_comes_in_parts_that_hold_every_answer_once() {
    let app = spawn_answered(450, ReadLimits { row_reads: Some(2), ..ReadLimits::UNBOUNDED }).await;
    for (token, expected) in [(ADMIN, (0..450).collect::<Vec<usize>>()), (ANNA, (0..450).step_by(3).collect())] {
        let session = app.sign_in(token).await;
        let whole = app.get_as(&session.cookie, "/admin/c/dash/export.csv").await;
        assert_eq!(whole.status(), StatusCode::SEE_OTHER, "{token}: too large for one download");
        let mut uri = Some(whole.headers()[header::LOCATION].to_str().unwrap().to_owned());
        let (mut seen, mut parts, mut header_line) = (Vec::new(), 0, None::<String>);
        while let Some(next) = uri {
            let html = app.page(&session, &next).await;
            parts += 1;
            let download = link_to(&html, &format!("Download part {parts}")).expect("each part has its download");
            let response = app.get_as(&session.cookie, &download).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert!(response.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().contains(&format!("part-{parts}.csv")));
            let csv = text(response).await;
            let first = csv.lines().next().unwrap().to_owned();
            assert_eq!(header_line.get_or_insert(first.clone()), &first, "every part has the same columns");
            seen.extend(comment_numbers(&csv, "\"comment #"));
            uri = link_to(&html, &format!("Part {} →", parts + 1));
        }
        seen.sort_unstable();
        assert_eq!(seen, expected, "{token}: the parts hold every answer once");
        assert!(token == ANNA || parts >= 2, "450 rows at 400 a request: two parts at least");
    }
    // A part whose range holds more rows than one request reads fails; it never ends early.
    let admin = app.sign_in(ADMIN).await;
    let rows = app.store.campaign_rows(&app.campaign.id).await.unwrap();
    let last = rows.iter().map(|r| r.invitation.id.0.clone()).max().unwrap();
    let response = app.get_as(&admin.cookie, &format!("/admin/c/dash/export.csv?part=1&through={last}")).await;
    assert_eq!(response.status(), StatusCode::OK, "the stream starts");
    assert!(response.into_body().collect().await.is_err(), "and breaks off instead of ending short");
}

#[tokio::test]
async fn figures_from_part_of_the_rows_say_so() {
    let app = spawn_answered(450, ReadLimits { row_reads: Some(2), ..ReadLimits::UNBOUNDED }).await;
    let admin = app.sign_in(ADMIN).await;
    let whole = app.page(&admin, "/admin/c/dash").await;
    assert!(!whole.contains("Figures from the first"), "the whole campaign's figures come from counters");
    let drill_down = app.page(&admin, "/admin/c/dash?by=owner&value=bo%40acme.example").await;
    assert!(drill_down.contains("Figures from the first"), "a drill-down reads rows, 400 at most here: {drill_down}");
    let anna = app.sign_in(ANNA).await;
    let own = app.page(&anna, "/admin/c/dash").await;
    assert!(!own.contains("Figures from the first"), "Anna's 150 contacts fit one request through the owner index");
    assert!(own.contains("Your contacts only"));
}

#[tokio::test]
async fn a_preview_shows_every_message_with_a_sample_contact_and_links_that_record_nothing() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let page = app.page(&admin, "/admin/c/dash/preview?group=detractor").await;
    for label in ["Invitation mail", "Reminder mail", "Thank-you mail", "Invitation SMS", "Reminder SMS", "Survey page", "Thank-you page"] {
        assert!(page.contains(&format!("aria-label=\"{label}")), "{label} is previewed");
    }
    assert!(page.contains("segment"), "the SMS says how many segments it takes");
    assert!(page.contains("<iframe class=\"mail\" title=\"Invitation mail, HTML\" sandbox srcdoc=\""), "the HTML mail in a sandboxed frame");
    assert!(!page.contains(XSS), "a CRM value never reaches the page unescaped");
    let token = closeloop_views::preview::preview_token();
    assert!(page.contains(token.as_str()), "links carry the preview token");
    let answered = app
        .send(
            Request::post(format!("/s/{}", token.as_str()))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("score=3"))
                .unwrap(),
        )
        .await;
    assert_eq!(answered.status(), StatusCode::NOT_FOUND, "a click in a preview records nothing");
    // An owner's sample is one of their own contacts.
    let bo = app.sign_in(BO).await;
    let theirs = app.page(&bo, "/admin/c/dash/preview").await;
    assert!(!theirs.contains("Åsa"), "Bo never sees Anna's contact");
    assert!(theirs.contains("Bosse") || theirs.contains("Cy"));
}

#[tokio::test]
async fn only_admins_and_editors_pause_a_campaign_and_a_paused_one_sends_nothing_until_resumed() {
    let app = spawn_app().await;
    for token in [VIEWER, ANNA] {
        let session = app.sign_in(token).await;
        let refused = app.post_as(&session, "/admin/c/dash/state", "action=pause&expected=active").await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{token} may not pause");
        assert!(!app.page(&session, "/admin/c/dash").await.contains("Pause sending"), "{token} is offered no button");
    }
    let editor = app.sign_in(EDITOR).await;
    assert!(app.page(&editor, "/admin/c/dash").await.contains("Pause sending"));
    let no_csrf = app
        .send(
            Request::post("/admin/c/dash/state")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, &editor.cookie)
                .body(Body::from("action=pause&expected=active"))
                .unwrap(),
        )
        .await;
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN, "a form without this session's token");
    let paused = app.post_as(&editor, "/admin/c/dash/state", "action=pause&expected=active").await;
    assert_eq!(paused.status(), StatusCode::SEE_OTHER);
    let overview = app.page(&editor, "/admin/c/dash").await;
    assert!(overview.contains("<strong class=\"state-paused\">paused</strong>") && overview.contains("by Eda Editor"), "{overview}");
    let stale = app.post_as(&editor, "/admin/c/dash/state", "action=pause&expected=active").await;
    assert_eq!(stale.status(), StatusCode::CONFLICT, "a form from before the change changes nothing");
    assert!(app.page(&editor, "/admin").await.contains("<td>paused</td>"), "the campaign list shows the state");

    // A launch into the paused campaign invites, but nothing goes out until it resumes.
    let before = app.services.store.as_ref().campaign_rows(&app.campaign.id).await.unwrap().len();
    launch::launch(&app.services, &app.campaign, b"email,first_name\nnew@example.se,Nea\n").await.unwrap();
    dispatch::dispatch_pending(&app.services).await.unwrap();
    assert_eq!(app.store.campaign_rows(&app.campaign.id).await.unwrap().len(), before + 1);
    let outbox = app.store.outbox(app.services.clock.clone());
    let invited = |o: &closeloop_embedded::Outbox| o.messages().unwrap().iter().filter(|m| m.to.contains("new@example.se")).count();
    assert_eq!(invited(&outbox), 0, "nothing sent while paused");
    let admin = app.sign_in(ADMIN).await;
    let resumed = app.post_as(&admin, "/admin/c/dash/state", "action=resume&expected=paused").await;
    assert_eq!(resumed.status(), StatusCode::SEE_OTHER);
    closeloop_functions::schedule::run(&app.services, &Default::default(), T0.plus_hours(1)).await.unwrap();
    assert_eq!(invited(&outbox), 1, "sent once the campaign resumed");
}

/// A campaign form as a browser posts it (every field, ticked days as `day_mon=on`), then `extra`.
fn form_body(form: &closeloop_core::campaign_form::CampaignForm, extra: &[(&str, &str)]) -> String {
    let encode = closeloop_views::dashboard::form_encode;
    let mut pairs: Vec<String> = Vec::new();
    let serde_json::Value::Object(fields) = serde_json::to_value(form).unwrap() else { unreachable!("a struct") };
    for (name, value) in fields {
        match value {
            serde_json::Value::String(v) => pairs.push(format!("{name}={}", encode(&v))),
            serde_json::Value::Array(days) => pairs.extend(days.iter().map(|d| format!("day_{}=on", d.as_str().unwrap()))),
            other => panic!("{name}: {other}"),
        }
    }
    pairs.extend(extra.iter().map(|(k, v)| format!("{k}={}", encode(v))));
    pairs.join("&")
}

fn new_form() -> closeloop_core::campaign_form::CampaignForm {
    let mut form = closeloop_core::campaign_form::CampaignForm::blank();
    form.id = "spring-visit".into();
    form.name = "Spring visit".into();
    form.company = "Nordhavn Cykler".into();
    form.sender_name = "Karin Lund".into();
    form.sender_email = "karin@nordhavn.example".into();
    form.locales = "sv, en".into();
    form.window_from = "09:00".into();
    form.window_to = "19:00".into();
    form.window_days = ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec();
    form.drivers = "ease | en: Ease of booking | sv: Hur enkelt det var att boka".into();
    form
}

#[tokio::test]
async fn an_editor_creates_a_campaign_with_the_form_and_the_log_says_who_and_when() {
    let app = spawn_app().await;
    let editor = app.sign_in(EDITOR).await;
    let list = app.page(&editor, "/admin").await;
    assert!(list.contains("href=\"/admin/new\""), "the list offers a new campaign");
    assert!(list.contains("<td>2026-09-21 16:13 CEST (done, 3 invited)</td>"), "each campaign's last launch: {list}");
    let blank = app.page(&editor, "/admin/new").await;
    assert!(blank.contains("name=\"throttle_days\"") && blank.contains("value=\"90\""), "the file's defaults are filled in");
    let response = app.post_as(&editor, "/admin/new", &form_body(&new_form(), &[("kind", "created")])).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", text(response).await);
    assert_eq!(response.headers()[header::LOCATION], "/admin/c/spring-visit");
    let saved = app.store.campaign(&closeloop_core::CampaignId::parse("spring-visit").unwrap()).await.unwrap().expect("saved");
    assert_eq!(saved, new_form().parse().unwrap());
    assert_eq!(saved.send_window.as_ref().map(|w| w.parts().2.len()), Some(5));
    let log = app.page(&editor, "/admin/c/spring-visit/changes").await;
    // T0 is 2026-09-21 14:13 UTC: the campaign's first language is Swedish, so Stockholm's clock.
    assert!(log.contains("Created by Eda Editor, 2026-09-21 16:13 CEST"), "{log}");
    assert!(log.contains("<td>throttle_days</td><td>–</td><td>90</td>"), "{log}");
    let again = app.post_as(&editor, "/admin/new", &form_body(&new_form(), &[("kind", "created")])).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(text(again).await.contains("A campaign with the id spring-visit exists already"));
}

#[tokio::test]
async fn every_problem_with_the_form_shows_at_its_field_and_nothing_is_saved() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let mut form = new_form();
    form.throttle_days = "ninety".into();
    form.sender_email = "karin".into();
    form.time_zone = "Europe/Stokholm".into();
    form.window_days.clear();
    form.review_sites = "g | Google | http://g.example".into();
    form.name = format!("{XSS}");
    let response = app.post_as(&admin, "/admin/new", &form_body(&form, &[("kind", "created")])).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(response).await;
    for field in ["throttle_days", "sender_email", "time_zone"] {
        assert!(page.contains(&format!("id=\"{field}-error\"")), "{field} has its error: {page}");
        assert!(page.contains(&format!("<a href=\"#{field}\">")), "the summary links to {field}");
    }
    assert!(page.contains("id=\"window-error\""), "the send window has its error");
    assert!(page.contains("value=\"ninety\""), "what was typed stays");
    assert!(!page.contains(XSS) && page.contains("&lt;script&gt;"), "typed markup is escaped");
    assert!(app.store.campaign(&closeloop_core::CampaignId::parse("spring-visit").unwrap()).await.unwrap().is_none());
    // The file's own rules, once every field reads, speak at their field too.
    let mut form = new_form();
    form.review_sites = "g | Google | http://g.example".into();
    let page = text(app.post_as(&admin, "/admin/new", &form_body(&form, &[])).await).await;
    assert!(page.contains("id=\"review_sites-error\"") && page.contains("needs an https:// url"), "{page}");
}

#[tokio::test]
async fn an_edit_over_a_stale_revision_is_refused_and_keeps_what_was_typed() {
    let app = spawn_app().await;
    let editor = app.sign_in(EDITOR).await;
    let admin = app.sign_in(ADMIN).await;
    let opened = app.page(&editor, "/admin/c/dash/edit").await;
    assert!(opened.contains("name=\"revision\" value=\"0\""), "launched from a file: no entry yet");
    assert!(opened.contains("id=\"id\" name=\"id\" type=\"text\" value=\"dash\" readonly"), "the id is fixed");
    let mut theirs = closeloop_core::campaign_form::CampaignForm::from_campaign(&app.campaign);
    theirs.throttle_days = "30".into();
    let saved = app.post_as(&admin, "/admin/c/dash/edit", &form_body(&theirs, &[("revision", "0")])).await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let mut mine = closeloop_core::campaign_form::CampaignForm::from_campaign(&app.campaign);
    mine.name = "Editor's name".into();
    mine.id = "renamed-id".into();
    let stale = app.post_as(&editor, "/admin/c/dash/edit", &form_body(&mine, &[("revision", "0")])).await;
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let page = text(stale).await;
    assert!(page.contains("Admin saved this campaign at 2026-09-21 16:13 CEST after you opened it"), "{page}");
    assert!(page.contains("value=\"Editor&#39;s name\""), "the editor's version is kept on the page");
    let stored = app.store.campaign(&app.campaign.id).await.unwrap().unwrap();
    assert_eq!((stored.throttle_days, stored.name.as_str()), (30, app.campaign.name.as_str()), "the admin's save stands");
    // Saved again over the revision that won, the editor's change lands, under the same id.
    let reopened = app.page(&editor, "/admin/c/dash/edit").await;
    assert!(reopened.contains("name=\"revision\" value=\"1\""));
    let mut again = closeloop_core::campaign_form::CampaignForm::from_campaign(&stored);
    again.name = "Editor's name".into();
    again.id = "renamed-id".into();
    assert_eq!(app.post_as(&editor, "/admin/c/dash/edit", &form_body(&again, &[("revision", "1")])).await.status(), StatusCode::SEE_OTHER);
    let stored = app.store.campaign(&app.campaign.id).await.unwrap().unwrap();
    assert_eq!((stored.throttle_days, stored.name.as_str()), (30, "Editor's name"));
    let log = app.page(&admin, "/admin/c/dash/changes").await;
    let editor_at = log.find("Edited by Eda Editor").expect("the editor's entry");
    let admin_at = log.find("Edited by Admin").expect("the admin's entry");
    assert!(editor_at < admin_at, "newest first: {log}");
    assert!(log.contains("<td>throttle_days</td><td>90</td><td>30</td>"), "{log}");
}

#[tokio::test]
async fn viewers_and_owners_cannot_create_edit_import_or_read_the_log() {
    let app = spawn_app().await;
    for token in [VIEWER, ANNA] {
        let session = app.sign_in(token).await;
        assert!(!app.page(&session, "/admin").await.contains("/admin/new"), "no link for viewers and owners");
        assert!(!app.page(&session, "/admin/c/dash").await.contains("/admin/c/dash/edit"));
        for uri in ["/admin/new", "/admin/new?from=dash", "/admin/import", "/admin/c/dash/edit", "/admin/c/dash/changes"] {
            assert_eq!(app.get_as(&session.cookie, uri).await.status(), StatusCode::FORBIDDEN, "{uri}");
        }
        let mut form = closeloop_core::campaign_form::CampaignForm::from_campaign(&app.campaign);
        form.throttle_days = "1".into();
        assert_eq!(app.post_as(&session, "/admin/c/dash/edit", &form_body(&form, &[("revision", "0")])).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.post_as(&session, "/admin/new", &form_body(&new_form(), &[])).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.post_as(&session, "/admin/import", "file=id%3D%22x%22").await.status(), StatusCode::FORBIDDEN);
    }
    let admin = app.sign_in(ADMIN).await;
    let forged = Session { cookie: admin.cookie.clone(), csrf: String::new() };
    assert_eq!(app.post_as(&forged, "/admin/new", &form_body(&new_form(), &[])).await.status(), StatusCode::FORBIDDEN, "CSRF");
    assert_eq!(app.store.campaign(&app.campaign.id).await.unwrap().unwrap().throttle_days, 90);
    assert!(app.store.campaign(&closeloop_core::CampaignId::parse("spring-visit").unwrap()).await.unwrap().is_none());
    assert!(app.store.campaign_changes(&app.campaign.id, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_duplicate_starts_from_the_campaign_and_needs_an_id_of_its_own() {
    let app = spawn_app().await;
    let editor = app.sign_in(EDITOR).await;
    let form_page = app.page(&editor, "/admin/new?from=dash").await;
    assert!(form_page.contains("value=\"Dashboard &lt;test&gt; (copy)\""), "{form_page}");
    assert!(form_page.contains("id=\"id\" name=\"id\" type=\"text\" value=\"\""), "the copy's id is blank");
    assert!(form_page.contains("name=\"duplicate_of\" value=\"dash\""));
    let mut copy = closeloop_core::campaign_form::CampaignForm::from_campaign(&app.campaign);
    copy.id = "dash".into();
    let taken = app.post_as(&editor, "/admin/new", &form_body(&copy, &[("kind", "duplicated"), ("duplicate_of", "dash")])).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert!(text(taken).await.contains("id=\"id-error\""));
    copy.id = "dash-autumn".into();
    let made = app.post_as(&editor, "/admin/new", &form_body(&copy, &[("kind", "duplicated"), ("duplicate_of", "dash")])).await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let log = app.page(&editor, "/admin/c/dash-autumn/changes").await;
    assert!(log.contains("Created from dash by Eda Editor"), "{log}");
    let stored = app.store.campaign(&closeloop_core::CampaignId::parse("dash-autumn").unwrap()).await.unwrap().unwrap();
    assert_eq!((stored.drivers.clone(), stored.themes.clone()), (app.campaign.drivers.clone(), app.campaign.themes.clone()));
}

#[tokio::test]
async fn an_imported_file_fills_the_form_and_an_unknown_key_is_named_with_its_line() {
    let app = spawn_app().await;
    let editor = app.sign_in(EDITOR).await;
    assert!(app.page(&editor, "/admin/import").await.contains("<textarea id=\"file\""));
    let typo = CAMPAIGN.replace("id = \"dash\"", "id = \"from-file\"\nthrottle_dayz = 30");
    let encode = closeloop_views::dashboard::form_encode;
    let refused = app.post_as(&editor, "/admin/import", &format!("file={}", encode(&typo))).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(refused).await;
    assert!(page.contains("line 3 of the campaign file: unknown field `throttle_dayz`"), "{page}");
    let good = CAMPAIGN.replace("id = \"dash\"", "id = \"from-file\"");
    let filled = app.post_as(&editor, "/admin/import", &format!("file={}", encode(&good))).await;
    assert_eq!(filled.status(), StatusCode::OK);
    let page = text(filled).await;
    assert!(page.contains("value=\"from-file\"") && page.contains("name=\"kind\" value=\"imported\""), "{page}");
    assert!(app.store.campaign(&closeloop_core::CampaignId::parse("from-file").unwrap()).await.unwrap().is_none(), "nothing saved yet");
    let form = closeloop_core::campaign_form::CampaignForm::from_campaign(&Campaign::from_toml(&good).unwrap());
    assert_eq!(app.post_as(&editor, "/admin/new", &form_body(&form, &[("kind", "imported")])).await.status(), StatusCode::SEE_OTHER);
    assert!(app.page(&editor, "/admin/c/from-file/changes").await.contains("Created from a campaign file by Eda Editor"));
}

/// A launcher that keeps staged files in memory and writes a launch's chunks before it
/// answers, so a test sees the launch done when the response comes.
struct InlineLauncher {
    services: Services,
    staged: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

#[async_trait::async_trait]
impl closeloop_functions::launch::Launcher for InlineLauncher {
    async fn stage(&self, campaign: &closeloop_core::CampaignId, bytes: &[u8]) -> Result<closeloop_core::launch::LaunchId, launch::LaunchError> {
        let id = closeloop_core::launch::LaunchId::of(campaign, bytes);
        self.staged.lock().unwrap().insert(id.to_string(), bytes.to_vec());
        Ok(id)
    }
    async fn staged(&self, _: &closeloop_core::CampaignId, id: &closeloop_core::launch::LaunchId) -> Result<Option<Vec<u8>>, launch::LaunchError> {
        Ok(self.staged.lock().unwrap().get(id.as_str()).cloned())
    }
    async fn dry_run(&self, campaign: &Campaign, file: &launch::ContactsFile<'_>) -> Result<launch::DryRunReport, launch::LaunchError> {
        launch::dry_run(&self.services, campaign, file).await
    }
    async fn launch(&self, campaign: &Campaign, source: &str, file: &launch::ContactsFile<'_>) -> Result<closeloop_core::launch::LaunchJob, launch::LaunchError> {
        let started = launch::start_file(&self.services, campaign, source, file).await?;
        for chunk in &started.chunks {
            launch::process_chunk(&self.services, campaign, chunk).await?;
        }
        Ok(self.services.store.launch(&started.job.id).await?.unwrap_or(started.job))
    }
}

impl TestApp {
    /// The same dashboard with uploads, as the local process and the launch function serve it.
    fn with_launcher(mut self) -> Self {
        let accounts = Accounts::default()
            .with("Admin", Role::Admin, None, ADMIN)
            .with("Eda Editor", Role::Editor, Some(Email::parse("eda@acme.example").unwrap()), EDITOR)
            .with("Vera Viewer", Role::Viewer, Some(Email::parse("vera@acme.example").unwrap()), VIEWER);
        let launcher = Arc::new(InlineLauncher { services: self.services.clone(), staged: Default::default() });
        let state = AppState::new(&self.services, None).with_admin(AdminConfig::new(accounts, SECRET).unwrap()).with_launcher(launcher);
        self.router = router(state);
        self
    }

    /// Posts a file as the upload form does (multipart), with this session's CSRF token.
    async fn upload(&self, session: &Session, campaign: &str, csrf: &str, file: &[u8]) -> Response {
        let boundary = "----closeloop-test-boundary";
        let mut body = Vec::new();
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n").as_bytes());
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"export.csv\"\r\nContent-Type: text/csv\r\n\r\n").as_bytes());
        body.extend(file);
        body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.send(
            Request::post(format!("/admin/c/{campaign}/upload"))
                .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
                .header(header::COOKIE, &session.cookie)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }
}

/// A HubSpot export saved by Excel on Windows: semicolons, Windows-1252 (0xC5 is Å, 0xF6 ö),
/// "Preferred language" in words, and an unterminated quote on line 4 that must not swallow line 5.
const HUBSPOT_1252: &[u8] = b"First Name;Last Name;Email;Company Name;Preferred language\r\n\
    \xC5sa;Lindstr\xF6m;asa.l@example.se;Nordhavn \xC5keri;Swedish\r\n\
    Bo;Berg;bo.b@example.se;Berg AB;svenska\r\n\
    Cy;\"Broken;cy@example.se;Cy AB;English\r\n\
    Dan;Dahl;dan.d@example.dk;Dahl ApS;Danish\r\n";

#[tokio::test]
async fn an_upload_is_read_mapped_and_dry_run_before_anything_is_written_then_launched_with_its_mapping() {
    let app = spawn_app().await.with_launcher();
    let editor = app.sign_in(EDITOR).await;
    let invited_before = app.store.campaign_rows(&app.campaign.id).await.unwrap().len();
    let form = app.page(&editor, "/admin/c/dash/upload").await;
    assert!(form.contains("enctype=\"multipart/form-data\""), "{form}");
    let staged = app.upload(&editor, "dash", &editor.csrf, HUBSPOT_1252).await;
    assert_eq!(staged.status(), StatusCode::SEE_OTHER, "{}", text(staged).await);
    let dry_run_at = staged.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(dry_run_at.starts_with("/admin/c/dash/upload/"), "{dry_run_at}");
    let page = app.page(&editor, &dry_run_at).await;
    assert!(page.contains("id=\"file-format\">CSV, Windows-1252, semicolon-separated<"), "{page}");
    assert!(page.contains("name=\"map:Company Name\"><option value=\"email\">"), "a select per column");
    let selected = |page: &str, header: &str| -> String {
        let start = page.find(&format!("name=\"map:{header}\"")).unwrap();
        let select = &page[start..start + page[start..].find("</select>").unwrap()];
        let at = select.find("\" selected>").expect("one option selected");
        select[select[..at].rfind("value=\"").unwrap() + 7..at].to_owned()
    };
    assert_eq!(selected(&page, "Company Name"), "company");
    assert_eq!(selected(&page, "Preferred language"), "locale");
    assert!(page.contains("id=\"would-invite\">3<"), "Åsa, Bo and Dan: {page}");
    assert!(page.contains("<td class=\"num\">4</td><td>"), "the unterminated quote is reported at its line: {page}");
    assert_eq!(app.store.campaign_rows(&app.campaign.id).await.unwrap().len(), invited_before, "a dry run writes nothing");

    // Another mapping, through the page's own form: the company kept as a CRM property.
    let remapped = app.page(&editor, &format!("{dry_run_at}?map%3ACompany+Name=custom")).await;
    assert_eq!(selected(&remapped, "Company Name"), "custom");
    assert_eq!(app.post_as(&editor, &format!("{dry_run_at}/launch"), "map%3ACompany+Name=compnay").await.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let launched = app.post_as(&editor, &format!("{dry_run_at}/launch"), "map%3ACompany+Name=company&map%3APreferred+language=locale&remember=on").await;
    assert_eq!(launched.status(), StatusCode::SEE_OTHER, "{}", text(launched).await);
    let rows = app.store.campaign_rows(&app.campaign.id).await.unwrap();
    assert_eq!(rows.len(), invited_before + 3);
    let asa = rows.iter().find(|r| r.invitation.contact.email.as_ref().is_some_and(|e| e.as_str() == "asa.l@example.se")).unwrap();
    assert_eq!(asa.invitation.contact.company.as_deref(), Some("Nordhavn Åkeri"), "decoded from Windows-1252");
    assert_eq!(asa.invitation.locale.code(), "en", "the campaign offers only English: Swedish falls back to it");
    let campaign = app.store.campaign(&app.campaign.id).await.unwrap().unwrap();
    assert_eq!(campaign.columns.get("Company Name").map(|t| t.as_str()), Some("company"), "the mapping is remembered");
    let log = app.page(&editor, "/admin/c/dash/changes").await;
    assert!(log.contains("Edited by Eda Editor") && log.contains("<td>columns</td>"), "{log}");
    let overview = app.page(&editor, "/admin/c/dash").await;
    assert!(overview.contains("dashboard upload by Eda Editor") && overview.contains("<progress max=\"3\" value=\"3\""), "{overview}");
    // The same file again is the same launch: nobody twice.
    let again = app.upload(&editor, "dash", &editor.csrf, HUBSPOT_1252).await;
    let again_at = again.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(again_at, dry_run_at);
    assert!(app.page(&editor, &again_at).await.contains("This file was launched before (done)"));
    app.post_as(&editor, &format!("{again_at}/launch"), "").await;
    assert_eq!(app.store.campaign_rows(&app.campaign.id).await.unwrap().len(), invited_before + 3);
}

#[tokio::test]
async fn only_admins_and_editors_upload_and_an_upload_needs_this_sessions_token() {
    let app = spawn_app().await.with_launcher();
    let viewer = app.sign_in(VIEWER).await;
    assert_eq!(app.get_as(&viewer.cookie, "/admin/c/dash/upload").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.upload(&viewer, "dash", &viewer.csrf, HUBSPOT_1252).await.status(), StatusCode::FORBIDDEN);
    let admin = app.sign_in(ADMIN).await;
    assert_eq!(app.upload(&admin, "dash", "not-the-token", HUBSPOT_1252).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.upload(&admin, "dash", &admin.csrf, b"").await.status(), StatusCode::UNPROCESSABLE_ENTITY, "an empty file");
    let unknown = app.get_as(&admin.cookie, "/admin/c/dash/upload/0123456789abcdef0123456789abcdef").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get_as(&admin.cookie, "/admin/c/dash/upload/..%2F..%2Fetc").await.status(), StatusCode::NOT_FOUND);
    // Where no launcher runs (the Worker), the page says where uploads go.
    let worker_like = spawn_app().await;
    let admin = worker_like.sign_in(ADMIN).await;
    assert!(worker_like.page(&admin, "/admin/c/dash/upload").await.contains("does not take uploads"));
    assert_eq!(worker_like.upload(&admin, "dash", &admin.csrf, HUBSPOT_1252).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_campaign_made_in_the_workspace_is_a_draft_that_sends_nothing_until_its_scheduled_start() {
    let app = spawn_app().await.with_launcher();
    let editor = app.sign_in(EDITOR).await;
    let mut form = new_form();
    (form.window_from, form.window_to, form.window_days) = (String::new(), String::new(), Vec::new());
    form.time_zone = "Europe/Stockholm".into();
    assert_eq!(app.post_as(&editor, "/admin/new", &form_body(&form, &[("kind", "created")])).await.status(), StatusCode::SEE_OTHER);
    let overview = app.page(&editor, "/admin/c/spring-visit").await;
    assert!(overview.contains("<strong class=\"state-draft\">draft</strong>") && overview.contains(">Start sending now<"), "{overview}");
    // Contacts uploaded into the draft are stored, and their invitations wait.
    let csv = b"email,first_name\nnils@example.se,Nils\nstina@example.se,Stina\n";
    let staged = app.upload(&editor, "spring-visit", &editor.csrf, csv).await;
    let at = staged.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(app.post_as(&editor, &format!("{at}/launch"), "").await.status(), StatusCode::SEE_OTHER);
    dispatch::dispatch_pending(&app.services).await.unwrap();
    let id = closeloop_core::CampaignId::parse("spring-visit").unwrap();
    assert_eq!(app.store.held_invitations(&id, 10).await.unwrap().len(), 2, "a draft sends nothing");
    // Scheduled on the campaign's clock (T0 is 16:13 in Stockholm): tomorrow at 09:00.
    let state = |action: &str, expected: &str, starts: &str| format!("action={action}&expected={expected}&starts_at={starts}");
    assert_eq!(app.post_as(&editor, "/admin/c/spring-visit/state", &state("schedule", "draft", "tomorrow")).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let past = app.post_as(&editor, "/admin/c/spring-visit/state", &state("schedule", "draft", "2026-09-20T09%3A00")).await;
    assert_eq!(past.status(), StatusCode::CONFLICT);
    assert!(text(past).await.contains("the start time has passed"));
    assert_eq!(app.post_as(&editor, "/admin/c/spring-visit/state", &state("schedule", "draft", "2026-09-22T09%3A00")).await.status(), StatusCode::SEE_OTHER);
    let overview = app.page(&editor, "/admin/c/spring-visit").await;
    assert!(overview.contains("<strong id=\"starts-at\">2026-09-22 09:00 CEST</strong>"), "{overview}");
    assert!(overview.contains("value=\"2026-09-22T09:00\""), "the form shows the start time to move it");
    let accounts = Accounts::default();
    closeloop_functions::schedule::run(&app.services, &accounts, app.clock.now()).await.unwrap();
    assert_eq!(app.store.held_invitations(&id, 10).await.unwrap().len(), 2, "before its start nothing goes");
    // 09:00 in Stockholm is 07:00 UTC; T0 is 14:13 UTC the day before.
    let start = Timestamp::parse_rfc3339("2026-09-22T07:00:00Z").unwrap();
    app.clock.set(start);
    let summary = closeloop_functions::schedule::run(&app.services, &accounts, start).await.unwrap();
    assert_eq!(summary.invitations_released, 2, "started by itself: {summary:?}");
    assert!(app.store.held_invitations(&id, 10).await.unwrap().is_empty());
    // A new day, a new session (they last 12 hours).
    let editor = app.sign_in(EDITOR).await;
    let overview = app.page(&editor, "/admin/c/spring-visit").await;
    assert!(overview.contains("<strong class=\"state-active\">active</strong>") && overview.contains(">Pause sending<"), "{overview}");
    // The page showed it active: pausing it works from there, over the stored "scheduled".
    assert_eq!(app.post_as(&editor, "/admin/c/spring-visit/state", "action=pause&expected=active").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.store.campaign_status(&id).await.unwrap().unwrap().state.as_str(), "paused");
}

#[tokio::test]
async fn an_ended_campaigns_page_takes_answers_for_its_grace_period_then_says_it_has_closed() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    assert_eq!(app.post_as(&admin, "/admin/c/dash/state", "action=end&expected=active").await.status(), StatusCode::SEE_OTHER);
    let token = app.token_of("Cy").await;
    let open = app.send(Request::get(format!("/s/{token}")).body(Body::empty()).unwrap()).await;
    assert_eq!(open.status(), StatusCode::OK, "still open just after the end");
    let late = T0.plus_days(closeloop_core::lifecycle::CLOSED_AFTER_DAYS);
    app.clock.set(late);
    let closed = app.send(Request::get(format!("/s/{token}")).body(Body::empty()).unwrap()).await;
    assert_eq!(closed.status(), StatusCode::GONE);
    let page = text(closed).await;
    assert!(page.contains("This survey has closed") && !page.contains("Cy"), "a closed page names nobody: {page}");
    let before = app.store.answer(&app.id_of("Cy").await).await.unwrap().unwrap();
    let posted = app
        .send(
            Request::post(format!("/s/{token}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("score=0&comment=late"))
                .unwrap(),
        )
        .await;
    assert_eq!(posted.status(), StatusCode::GONE);
    assert_eq!(app.store.answer(&app.id_of("Cy").await).await.unwrap().unwrap(), before, "nothing recorded after closing");
}

#[tokio::test]
async fn the_largest_campaign_the_file_allows_is_saved_through_the_form() {
    let app = spawn_app().await;
    let editor = app.sign_in(EDITOR).await;
    let mut form = new_form();
    form.owners = (0..closeloop_core::campaign::MAX_OWNERS).map(|i| format!("Säljare Nummer {i} = saljare.nummer.{i}@nordhavn-cykler.example")).collect::<Vec<_>>().join("\n");
    form.columns = (0..closeloop_core::campaign::MAX_COLUMNS).map(|i| format!("Egen kolumn {i} = custom")).collect::<Vec<_>>().join("\n");
    let body = form_body(&form, &[("kind", "created")]);
    assert!(body.len() > closeloop_edge::MAX_BODY_BYTES, "larger than other forms: {} bytes", body.len());
    let response = app.post_as(&editor, "/admin/new", &body).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let saved = app.store.campaign(&closeloop_core::CampaignId::parse("spring-visit").unwrap()).await.unwrap().unwrap();
    assert_eq!((saved.owners.len(), saved.columns.len()), (closeloop_core::campaign::MAX_OWNERS, closeloop_core::campaign::MAX_COLUMNS));
    // Other forms keep their small limit.
    let asa = app.id_of("Åsa").await;
    let note = app.post_as(&editor, &format!("/admin/c/dash/cases/{}/notes", asa.0), &format!("text={}", "x".repeat(closeloop_edge::MAX_BODY_BYTES))).await;
    assert_eq!(note.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_launch_from_the_dashboard_never_writes_an_older_copy_of_the_campaign_over_an_edit() {
    let app = spawn_app().await.with_launcher();
    let editor = app.sign_in(EDITOR).await;
    let staged = app.upload(&editor, "dash", &editor.csrf, b"email\nnew.person@example.se\n").await;
    let at = staged.headers()[header::LOCATION].to_str().unwrap().to_owned();
    // Someone changes the settings while the file is being checked.
    let mut theirs = closeloop_core::campaign_form::CampaignForm::from_campaign(&app.campaign);
    theirs.throttle_days = "30".into();
    assert_eq!(app.post_as(&editor, "/admin/c/dash/edit", &form_body(&theirs, &[("revision", "0")])).await.status(), StatusCode::SEE_OTHER);
    // The launch (without remembering a mapping) leaves their edit standing.
    assert_eq!(app.post_as(&editor, &format!("{at}/launch"), "").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.store.campaign(&app.campaign.id).await.unwrap().unwrap().throttle_days, 30);
    // A forged revision far ahead is refused: it would leave a gap a stale form could fill.
    let mut forged = theirs.clone();
    forged.throttle_days = "7".into();
    assert_eq!(app.post_as(&editor, "/admin/c/dash/edit", &form_body(&forged, &[("revision", "41")])).await.status(), StatusCode::CONFLICT);
    assert_eq!(app.post_as(&editor, "/admin/c/dash/edit", &form_body(&forged, &[("revision", "4294967295")])).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.store.campaign(&app.campaign.id).await.unwrap().unwrap().throttle_days, 30);
}

#[tokio::test]
async fn send_me_a_test_mails_the_invitation_to_the_editor_marked_as_a_test_once_and_counts_nowhere() {
    let app = spawn_app().await.with_launcher();
    let outbox = app.store.outbox(app.clock.clone());
    let sent_to = |to: &'static str| {
        let outbox = outbox.clone();
        async move {
            let page = outbox.page(closeloop_embedded::OutboxCursor::Newest, 500).await.unwrap();
            page.messages.into_iter().filter(|m| m.to.contains(to)).collect::<Vec<_>>()
        }
    };
    let counted = app.store.campaign_counters(&app.campaign.id).await.unwrap().invited;
    let rows = app.store.campaign_rows(&app.campaign.id).await.unwrap().len();
    let editor = app.sign_in(EDITOR).await;
    let preview = app.page(&editor, "/admin/c/dash/preview").await;
    assert!(preview.contains(">Send me a test invitation<") && preview.contains("to eda@acme.example"), "{preview}");
    let asked = app.post_as(&editor, "/admin/c/dash/preview/test", "locale=en").await;
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    let back = asked.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(app.page(&editor, &back).await.contains("A test invitation in en is on its way to eda@acme.example"));
    dispatch::dispatch_pending(&app.services).await.unwrap();
    dispatch::dispatch_pending(&app.services).await.unwrap();
    let mails = sent_to("eda@acme.example").await;
    assert_eq!(mails.len(), 1, "sent once");
    let subject = mails[0].subject.clone().unwrap();
    assert!(subject.starts_with("[Test] "), "{subject}");
    assert!(mails[0].headers.iter().any(|(k, v)| k == "X-Closeloop-Test" && v == "requested by Eda Editor"), "{:?}", mails[0].headers);
    assert!(mails[0].text.contains("/s/"), "the invitation with its survey link");
    assert_eq!(app.store.campaign_rows(&app.campaign.id).await.unwrap().len(), rows, "no invitation made");
    assert_eq!(app.store.campaign_counters(&app.campaign.id).await.unwrap().invited, counted, "nothing counted");
    // Viewers get no button and are refused; an account without an address is told why.
    let viewer = app.sign_in(VIEWER).await;
    assert!(!app.page(&viewer, "/admin/c/dash/preview").await.contains("Send me a test"));
    assert_eq!(app.post_as(&viewer, "/admin/c/dash/preview/test", "locale=en").await.status(), StatusCode::FORBIDDEN);
    let admin = app.sign_in(ADMIN).await;
    assert!(!app.page(&admin, "/admin/c/dash/preview").await.contains("Send me a test"), "no address, no button");
    assert_eq!(app.post_as(&admin, "/admin/c/dash/preview/test", "locale=en").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let forged = Session { cookie: editor.cookie.clone(), csrf: String::new() };
    assert_eq!(app.post_as(&forged, "/admin/c/dash/preview/test", "locale=en").await.status(), StatusCode::FORBIDDEN);
    dispatch::dispatch_pending(&app.services).await.unwrap();
    assert!(sent_to("vera@acme.example").await.is_empty());
    assert_eq!(sent_to("eda@acme.example").await.len(), 1);
}

#[tokio::test]
async fn starting_or_resuming_sends_what_waited_at_once_not_at_the_schedules_next_run() {
    let app = spawn_app().await;
    let outbox = app.store.outbox(app.clock.clone());
    let admin = app.sign_in(ADMIN).await;
    assert_eq!(app.post_as(&admin, "/admin/c/dash/state", "action=pause&expected=active").await.status(), StatusCode::SEE_OTHER);
    launch::launch(&app.services, &app.campaign, b"email,first_name\nwaiting@example.se,Wanda\n").await.unwrap();
    dispatch::dispatch_pending(&app.services).await.unwrap();
    let to_wanda = || {
        let outbox = outbox.clone();
        async move { outbox.page(closeloop_embedded::OutboxCursor::Newest, 500).await.unwrap().messages.into_iter().filter(|m| m.to.contains("waiting@example.se")).count() }
    };
    assert_eq!(to_wanda().await, 0, "paused: it waits");
    assert_eq!(app.store.held_invitations(&app.campaign.id, 10).await.unwrap().len(), 1);
    assert_eq!(app.post_as(&admin, "/admin/c/dash/state", "action=resume&expected=paused").await.status(), StatusCode::SEE_OTHER);
    dispatch::dispatch_pending(&app.services).await.unwrap();
    assert_eq!(to_wanda().await, 1, "resumed: sent by the dispatcher, with no schedule run");
    assert!(app.store.held_invitations(&app.campaign.id, 10).await.unwrap().is_empty());
    dispatch::dispatch_pending(&app.services).await.unwrap();
    assert_eq!(to_wanda().await, 1, "once");
}

#[tokio::test]
async fn a_heads_up_goes_from_each_contacts_owner_the_chosen_days_before_a_scheduled_start_once() {
    let app = spawn_app().await.with_launcher();
    let outbox = app.store.outbox(app.clock.clone());
    let editor = app.sign_in(EDITOR).await;
    let mut form = new_form();
    (form.window_from, form.window_to, form.window_days) = (String::new(), String::new(), Vec::new());
    form.heads_up_days = "2".into();
    form.owners = "Karin Holm = karin.holm@nordhavn.example".into();
    form.locales = "en".into();
    assert_eq!(app.post_as(&editor, "/admin/new", &form_body(&form, &[("kind", "created")])).await.status(), StatusCode::SEE_OTHER);
    let csv = b"email,first_name,owner\nnils@example.se,Nils,Karin Holm\nstina@example.se,Stina,\n";
    let staged = app.upload(&editor, "spring-visit", &editor.csrf, csv).await;
    let at = staged.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(app.post_as(&editor, &format!("{at}/launch"), "map%3Aowner=owner_email").await.status(), StatusCode::SEE_OTHER);
    dispatch::dispatch_pending(&app.services).await.unwrap();
    // Starts in five days (T0 is 2026-09-21, 16:13 in Stockholm; the campaign is English-first: UTC).
    assert_eq!(app.post_as(&editor, "/admin/c/spring-visit/state", "action=schedule&expected=draft&starts_at=2026-09-26T09%3A00").await.status(), StatusCode::SEE_OTHER);
    let heads_ups = || {
        let outbox = outbox.clone();
        async move { outbox.page(closeloop_embedded::OutboxCursor::Newest, 500).await.unwrap().messages.into_iter().filter(|m| m.kind == "heads_up").collect::<Vec<_>>() }
    };
    let accounts = Accounts::default();
    closeloop_functions::schedule::run(&app.services, &accounts, T0).await.unwrap();
    assert!(heads_ups().await.is_empty(), "five days ahead: not yet");
    let two_days_before = Timestamp::parse_rfc3339("2026-09-24T09:00:00Z").unwrap();
    app.clock.set(two_days_before);
    let summary = closeloop_functions::schedule::run(&app.services, &accounts, two_days_before).await.unwrap();
    assert_eq!(summary.heads_ups_sent, 2, "{summary:?}");
    closeloop_functions::schedule::run(&app.services, &accounts, two_days_before.plus_hours(1)).await.unwrap();
    let mails = heads_ups().await;
    assert_eq!(mails.len(), 2, "once each");
    let nils = mails.iter().find(|m| m.to.contains("nils@example.se")).unwrap();
    assert!(nils.headers.iter().any(|(k, v)| k == "Reply-To" && v == "karin.holm@nordhavn.example"), "{:?}", nils.headers);
    assert!(nils.text.contains("Karin Holm") && nils.text.contains("On 2026-09-26 we will send you a short question"), "{}", nils.text);
    assert!(!nils.text.contains("/s/"), "no survey link before the survey");
    let stina = mails.iter().find(|m| m.to.contains("stina@example.se")).unwrap();
    assert!(stina.text.contains("Karin Lund"), "no owner: signed by the sender: {}", stina.text);
    // The invitations still wait for the start.
    let id = closeloop_core::CampaignId::parse("spring-visit").unwrap();
    assert_eq!(app.store.held_invitations(&id, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn every_workspace_form_refuses_a_post_without_this_sessions_token() {
    let app = spawn_app().await.with_launcher();
    let editor = app.sign_in(EDITOR).await;
    let staged = app.upload(&editor, "dash", &editor.csrf, b"email\nx@example.se\n").await;
    let dry_run = staged.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let forms = [
        ("/admin/new".to_owned(), form_body(&new_form(), &[])),
        ("/admin/import".to_owned(), "file=id%3D%22x%22".to_owned()),
        ("/admin/c/dash/edit".to_owned(), form_body(&closeloop_core::campaign_form::CampaignForm::from_campaign(&app.campaign), &[("revision", "0")])),
        ("/admin/c/dash/state".to_owned(), "action=pause&expected=active".to_owned()),
        ("/admin/c/dash/preview/test".to_owned(), "locale=en".to_owned()),
        (format!("{dry_run}/launch"), String::new()),
    ];
    let stolen = Session { cookie: editor.cookie.clone(), csrf: app.sign_in(EDITOR).await.csrf };
    for (uri, body) in &forms {
        for session in [&stolen, &Session { cookie: editor.cookie.clone(), csrf: String::new() }] {
            assert_eq!(app.post_as(session, uri, body).await.status(), StatusCode::FORBIDDEN, "{uri}");
        }
        let no_session = app.send(Request::post(uri.as_str()).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(Body::from(body.clone())).unwrap()).await;
        assert_eq!(no_session.status(), StatusCode::FORBIDDEN, "{uri} signed out");
    }
    assert_eq!(app.upload(&stolen, "dash", &stolen.csrf, b"email\nx@example.se\n").await.status(), StatusCode::FORBIDDEN, "the upload too");
    assert_eq!(app.store.campaign_status(&app.campaign.id).await.unwrap(), None, "nothing changed");
    assert_eq!(app.store.campaign_rows(&app.campaign.id).await.unwrap().len(), 3, "nothing launched");
}

#[tokio::test]
async fn an_excel_unicode_text_export_uploads_as_utf_16_tab_separated() {
    let app = spawn_app().await.with_launcher();
    let editor = app.sign_in(EDITOR).await;
    // Excel's "Unicode text": UTF-16 little-endian with a byte order mark, tab-separated.
    let text = "E-post\tFörnamn\tSpråk\r\nmarten@example.se\tMårten\tsvenska\r\n";
    let mut file = vec![0xFF, 0xFE];
    file.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let staged = app.upload(&editor, "dash", &editor.csrf, &file).await;
    assert_eq!(staged.status(), StatusCode::SEE_OTHER);
    let page = app.page(&editor, staged.headers()[header::LOCATION].to_str().unwrap()).await;
    assert!(page.contains("id=\"file-format\">CSV, UTF-16 LE, tab-separated<"), "{page}");
    assert!(page.contains("id=\"would-invite\">1<"), "{page}");
}

#[tokio::test]
async fn wrong_tokens_cost_a_guesser_time_and_a_throttled_attempt_gets_429_even_with_the_right_token() {
    let app = spawn_app().await;
    let form = app.send(Request::get("/admin/sign-in").body(Body::empty()).unwrap()).await;
    let nonce = set_cookie_value(&form, "cl_signin").unwrap();
    let csrf = csrf_in(&text(form).await);
    let try_token = |token: &str| {
        Request::post("/admin/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, format!("cl_signin={nonce}"))
            .body(Body::from(format!("csrf={csrf}&token={token}")))
            .unwrap()
    };
    for i in 0..closeloop_core::accounts::FREE_FAILURES {
        assert_eq!(app.send(try_token(&format!("guess-number-{i}-of-many"))).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.send(try_token("one-guess-too-many")).await.status(), StatusCode::UNAUTHORIZED, "the sixth counts and starts the wait");
    let throttled = app.send(try_token(ADMIN)).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS, "even the right token waits");
    assert_eq!(throttled.headers()[header::RETRY_AFTER], "1");
    assert!(text(throttled).await.contains("Too many wrong tokens. Try again in 1 second."));
    // Another isolate or instance over the same store: the count is the store's, not the process's.
    let elsewhere = router(
        AppState::new(&app.services, None).with_admin(AdminConfig::new(Accounts::default().with("Admin", Role::Admin, None, ADMIN), SECRET).unwrap()),
    );
    assert_eq!(elsewhere.oneshot(try_token(ADMIN)).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS, "throttled there too");
    let logged = app.store.audit_log(None, 100).await.unwrap().entries;
    assert_eq!(logged.iter().filter(|e| e.action == closeloop_core::audit::AuditAction::SignInThrottled).count(), 2, "each throttled attempt is logged");
    assert_eq!(logged.iter().filter(|e| e.action == closeloop_core::audit::AuditAction::SignInFailed).count(), 6);
    app.clock.set(Timestamp::from_millis(T0.millis() + 1_000));
    let signed_in = app.send(try_token(ADMIN)).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "after the wait the right token works");
}

#[tokio::test]
async fn only_an_admin_looks_a_person_up_downloads_them_or_erases_them() {
    let app = spawn_app().await;
    for token in [VIEWER, EDITOR, ANNA] {
        let session = app.sign_in(token).await;
        for uri in ["/admin/people", "/admin/people?email=bo%40example.se", "/admin/people.json?email=bo%40example.se"] {
            assert_eq!(app.get_as(&session.cookie, uri).await.status(), StatusCode::FORBIDDEN, "{token} at {uri}");
        }
        let refused = app.post_as(&session, "/admin/people/erase", "email=bo%40example.se&confirm=yes").await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }
    assert!(app.store.invitation(&app.id_of("Bosse").await).await.unwrap().unwrap().erased_at.is_none(), "nobody but an admin erased Bo");
    let admin = app.sign_in(ADMIN).await;
    let page = app.page(&admin, "/admin/people?email=BO%40example.se").await;
    assert!(page.contains("Bo&#x27;s secret complaint") || page.contains("Bo&#39;s secret complaint"), "{page}");
    let json = app.get_as(&admin.cookie, "/admin/people.json?email=bo%40example.se").await;
    assert_eq!(json.headers()[header::CONTENT_DISPOSITION], "attachment; filename=\"person.json\"");
    let export: serde_json::Value = serde_json::from_str(&text(json).await).unwrap();
    assert_eq!(export["invitations"][0]["answers"][0]["comment"], "Bo's secret complaint");
}

#[tokio::test]
async fn an_erasure_needs_the_tick_and_the_csrf_token_and_bad_input_erases_nothing() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let bo = app.id_of("Bosse").await;
    let not_erased = |app: &TestApp| {
        let bo = bo.clone();
        let store = app.store.clone();
        async move { store.invitation(&bo).await.unwrap().unwrap().erased_at.is_none() }
    };
    let unticked = app.post_as(&admin, "/admin/people/erase", "email=bo%40example.se").await;
    assert_eq!(unticked.status(), StatusCode::BAD_REQUEST);
    let forged = Session { cookie: admin.cookie.clone(), csrf: "forged".into() };
    assert_eq!(app.post_as(&forged, "/admin/people/erase", "email=bo%40example.se&confirm=yes").await.status(), StatusCode::FORBIDDEN);
    for body in ["email=not%20an%20address&confirm=yes", "email=bo%40example.se&phone=%2B46701234567&confirm=yes", "confirm=yes", "email=%0D%0Abcc%3Abo%40example.se&confirm=yes"] {
        let refused = app.post_as(&admin, "/admin/people/erase", body).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let bad_lookup = app.get_as(&admin.cookie, "/admin/people?email=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(bad_lookup.status(), StatusCode::BAD_REQUEST);
    assert!(!text(bad_lookup).await.contains("<script>alert(1)"), "what was typed comes back escaped");
    assert!(not_erased(&app).await);

    let done = app.post_as(&admin, "/admin/people/erase", "email=bo%40example.se&confirm=yes").await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(text(done).await.contains("Erased bo@example.se: 1 invitation(s) anonymised"));
    assert!(!not_erased(&app).await);
    let rows = app.store.campaign_rows(&app.campaign.id).await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.answer.is_some()).count(), 3, "his answer still counts");
    let csv = text(app.get_as(&admin.cookie, &format!("/admin/c/{}/export.csv", app.campaign.id)).await).await;
    assert!(!csv.contains("Bo's secret complaint") && !csv.contains("bo@example.se"), "the export shows him as anonymous");
    let cases = app.page(&admin, &format!("/admin/c/{}/cases?status=all", app.campaign.id)).await;
    assert!(!cases.contains("Bosse") && !cases.contains("secret complaint"), "nor does his case");
}

#[tokio::test]
async fn on_the_worker_a_person_with_many_invitations_is_refused_whole_and_erased_in_steps() {
    let closeloop_testkit::Local { store, services, clock, .. } = closeloop_testkit::local();
    // Eight campaigns, the same person in each, a throttle window of zero days.
    for n in 0..8 {
        let campaign = Campaign::from_toml(&CAMPAIGN.replace("id = \"dash\"", &format!("id = \"dash-{n}\"\nthrottle_days = 0"))).unwrap();
        launch::launch(&services, &campaign, b"email,first_name\nmany@example.se,Many\n").await.unwrap();
        clock.set(clock.now().plus_hours(1));
    }
    assert_eq!(store.person_invitations(&[closeloop_core::ContactKey::email(&Email::parse("many@example.se").unwrap())]).await.unwrap().len(), 8);
    let accounts = Accounts::default().with("Admin", Role::Admin, None, ADMIN);
    let state = AppState::new(&services, None).with_admin(AdminConfig::new(accounts, SECRET).unwrap()).with_limits(ReadLimits::WORKER);
    let app = TestApp { router: router(state), store, services, campaign: Campaign::from_toml(CAMPAIGN).unwrap(), clock };
    let admin = app.sign_in(ADMIN).await;
    let whole = app.get_as(&admin.cookie, "/admin/people?email=many%40example.se").await;
    assert_eq!(whole.status(), StatusCode::CONFLICT);
    assert!(text(whole).await.contains("has 8 invitations"));
    let first = app.post_as(&admin, "/admin/people/erase", "email=many%40example.se&confirm=yes").await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert!(text(first).await.contains("2 invitation(s) erased, 6 to go"));
    for left in [4, 2] {
        let next = app.post_as(&admin, "/admin/people/erase", "email=many%40example.se&confirm=yes").await;
        assert_eq!(next.status(), StatusCode::ACCEPTED);
        assert!(text(next).await.contains(&format!("{left} to go")));
    }
    let last = app.post_as(&admin, "/admin/people/erase", "email=many%40example.se&confirm=yes").await;
    assert_eq!(last.status(), StatusCode::OK);
    let page = app.page(&admin, "/admin/people?email=many%40example.se").await;
    assert!(page.contains("No invitations hold this address"), "{page}");
    assert!(page.contains("left by an erasure"));
}

#[tokio::test]
async fn every_staff_action_on_personal_data_or_settings_is_in_the_audit_log_and_only_admins_read_it() {
    let app = spawn_app().await;
    // A wrong token first: logged without the token typed.
    let form = app.send(Request::get("/admin/sign-in").body(Body::empty()).unwrap()).await;
    let nonce = set_cookie_value(&form, "cl_signin").unwrap();
    let csrf = csrf_in(&text(form).await);
    let wrong = Request::post("/admin/sign-in")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("cl_signin={nonce}"))
        .body(Body::from(format!("csrf={csrf}&token=a-near-miss-of-the-admin-token")))
        .unwrap();
    assert_eq!(app.send(wrong).await.status(), StatusCode::UNAUTHORIZED);
    let anna = app.sign_in(ANNA).await;
    let id = app.id_of("Åsa").await;
    let note = app.post_as(&anna, &format!("/admin/c/dash/cases/{}/notes", id.0), "text=Called").await;
    assert_eq!(note.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.post_as(&anna, &format!("/admin/c/dash/cases/{}/close", id.0), "outcome=Refunded").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get_as(&anna.cookie, "/admin/audit").await.status(), StatusCode::FORBIDDEN, "an owner reads no log");
    assert_eq!(app.get_as(&anna.cookie, "/admin/audit.csv").await.status(), StatusCode::FORBIDDEN);
    let admin = app.sign_in(ADMIN).await;
    assert_eq!(app.get_as(&admin.cookie, "/admin/c/dash/export.csv").await.status(), StatusCode::OK);
    app.page(&admin, "/admin/people?email=bo%40example.se").await;
    assert_eq!(app.post_as(&admin, "/admin/people/erase", "email=bo%40example.se&confirm=yes").await.status(), StatusCode::OK);
    let edit = app.page(&admin, "/admin/c/dash/edit").await;
    assert!(edit.contains("name=\"revision\""));
    assert_eq!(app.post_as(&admin, "/admin/c/dash/state", "action=pause&expected=active").await.status(), StatusCode::SEE_OTHER);

    let page = app.page(&admin, "/admin/audit").await;
    let order = ["sign-in failed", "signed in", "case note added", "case closed", "signed in", "CSV exported", "person exported", "person erased", "campaign state changed"];
    // Newest first: top to bottom is the order above, backwards.
    let mut from = 0;
    for action in order.iter().rev() {
        let found = page[from..].find(&format!("<td>{action}</td>")).unwrap_or_else(|| panic!("{action} is not logged in its place: {page}"));
        from += found + 1;
    }
    assert!(page.contains("<td>Anna</td>") && page.contains("<td>local</td>"), "who, and the client");
    assert!(page.contains("<td>dash: paused</td>"));
    assert!(!page.contains("near-miss") && !page.contains("bo@example.se"), "neither the token typed nor the erased address");
    let csv_response = app.get_as(&admin.cookie, "/admin/audit.csv").await;
    assert_eq!(csv_response.headers()[header::CONTENT_DISPOSITION], "attachment; filename=\"audit-log.csv\"");
    let csv = text(csv_response).await;
    assert!(csv.starts_with("\u{feff}at,who,action,subject,client\r\n"));
    assert!(csv.contains("\"person erased\",\"person "), "a person is named by a pseudonym");
    assert!(csv.contains("+01:00") || csv.contains("+02:00"), "times in the campaign's zone, with the offset: {csv}");
    for garbage in ["abc", "", "1e10", "0x10", "99999999999999999999", "1%232", "%23", "-1", "%00"] {
        let response = app.get_as(&admin.cookie, &format!("/admin/audit?before={garbage}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{garbage}");
    }
    let entries = app.store.audit_log(None, 1000).await.unwrap().entries;
    assert_eq!(entries[0].action, closeloop_core::audit::AuditAction::AuditLogExported, "reading the whole log is logged too");
}

fn sent_to_sign_in(response: &Response) -> bool {
    response.status().is_redirection() && response.headers()[header::LOCATION] == "/admin/sign-in"
}

fn account_version(page: &str, name: &str) -> String {
    let at = page.find(&format!("name=\"name\" value=\"{name}\"")).unwrap_or_else(|| panic!("{name} has a form: {page}"));
    let start = at + page[at..].find("name=\"version\" value=\"").unwrap() + 22;
    page[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn signing_out_ends_every_session_of_the_account_at_once() {
    let app = spawn_app().await;
    let laptop = app.sign_in(ANNA).await;
    let phone = app.sign_in(ANNA).await;
    let signed_out = app.post_as(&laptop, "/admin/sign-out", "").await;
    assert!(sent_to_sign_in(&signed_out));
    for session in [&laptop, &phone] {
        assert!(sent_to_sign_in(&app.get_as(&session.cookie, "/admin").await), "a cookie from before the sign-out no longer works");
    }
    let again = app.sign_in(ANNA).await;
    assert_eq!(app.get_as(&again.cookie, "/admin").await.status(), StatusCode::OK, "a new sign-in does");
}

#[tokio::test]
async fn a_disabled_account_is_out_at_once_and_a_role_change_applies_on_the_next_request() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let vera = app.sign_in(VIEWER).await;
    let eda = app.sign_in(EDITOR).await;
    assert_eq!(app.get_as(&eda.cookie, "/admin/new").await.status(), StatusCode::OK);
    let page = app.page(&admin, "/admin/accounts").await;
    let body = format!("name=Vera%20Viewer&version={}&action=disable", account_version(&page, "Vera Viewer"));
    assert_eq!(app.post_as(&admin, "/admin/accounts/change", &body).await.status(), StatusCode::OK);
    assert!(sent_to_sign_in(&app.get_as(&vera.cookie, "/admin").await), "her session ended with the change");
    assert_eq!(app.sign_in_status(VIEWER).await, StatusCode::UNAUTHORIZED, "and her token no longer signs in");

    let page = app.page(&admin, "/admin/accounts").await;
    let body = format!("name=Eda%20Editor&version={}&action=role&role=viewer", account_version(&page, "Eda Editor"));
    assert_eq!(app.post_as(&admin, "/admin/accounts/change", &body).await.status(), StatusCode::OK);
    assert_eq!(app.get_as(&eda.cookie, "/admin/new").await.status(), StatusCode::FORBIDDEN, "a viewer now, on her next request");
    // A change from a page shown before is refused: it would undo this one.
    let stale = format!("name=Eda%20Editor&version={}&action=role&role=admin", account_version(&page, "Eda Editor"));
    assert_eq!(app.post_as(&admin, "/admin/accounts/change", &stale).await.status(), StatusCode::CONFLICT);

    let page = app.page(&admin, "/admin/accounts").await;
    let body = format!("name=Vera%20Viewer&version={}&action=enable", account_version(&page, "Vera Viewer"));
    assert_eq!(app.post_as(&admin, "/admin/accounts/change", &body).await.status(), StatusCode::OK);
    app.sign_in(VIEWER).await;
    let log = app.page(&admin, "/admin/audit").await;
    assert!(log.contains("Vera Viewer: disabled") && log.contains("Eda Editor: role viewer") && log.contains("Vera Viewer: enabled"));
}

#[tokio::test]
async fn an_admin_adds_an_account_whose_token_is_shown_once_and_only_admins_manage_accounts() {
    let app = spawn_app().await;
    for token in [VIEWER, EDITOR, ANNA] {
        let session = app.sign_in(token).await;
        assert_eq!(app.get_as(&session.cookie, "/admin/accounts").await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.post_as(&session, "/admin/accounts", "name=Mallory&role=admin").await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.post_as(&session, "/admin/accounts/change", "name=Admin&version=1&action=disable").await.status(), StatusCode::FORBIDDEN);
    }
    let admin = app.sign_in(ADMIN).await;
    for bad in ["name=&role=viewer", "name=Nils&role=superuser", "name=Nils&role=owner", "name=Nils&role=viewer&email=not-an-address", "name=Nils&role=viewer&time_zone=Mars%2FOlympus", "name=Ni%0D%0Als&role=viewer", "name=API&role=admin", "name=unknown&role=admin"] {
        assert_eq!(app.post_as(&admin, "/admin/accounts", bad).await.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    assert_eq!(app.post_as(&admin, "/admin/accounts", "name=Anna&role=viewer").await.status(), StatusCode::CONFLICT, "a bootstrap name");
    let added = app.post_as(&admin, "/admin/accounts", "name=Nils%20Nyman&role=viewer&time_zone=Europe%2FOslo").await;
    assert_eq!(added.status(), StatusCode::OK);
    let page = text(added).await;
    let start = page.find("<code id=\"new-token\">").unwrap() + 21;
    let token = page[start..].split('<').next().unwrap().to_owned();
    let nils = app.sign_in(&token).await;
    assert_eq!(app.get_as(&nils.cookie, "/admin").await.status(), StatusCode::OK, "the new token signs in");
    assert!(!app.page(&admin, "/admin/accounts").await.contains(&token), "and is never shown again");
    assert_eq!(app.post_as(&admin, "/admin/accounts", "name=Nils%20Nyman&role=viewer").await.status(), StatusCode::CONFLICT, "one account per name");

    // The only admin cannot lock everyone out.
    let page = app.page(&admin, "/admin/accounts").await;
    let version = account_version(&page, "Admin");
    for action in ["action=disable", "action=role&role=viewer"] {
        let body = format!("name=Admin&version={version}&{action}");
        assert_eq!(app.post_as(&admin, "/admin/accounts/change", &body).await.status(), StatusCode::CONFLICT, "{action}");
    }
}

#[tokio::test]
async fn a_token_rotated_in_the_accounts_file_signs_in_and_the_old_one_no_longer_does() {
    let app = spawn_app().await;
    let old_session = app.sign_in(ADMIN).await;
    let rotated = Accounts::default().with("Admin", Role::Admin, None, "the-admin-token-after-rotation-0123");
    let after = TestApp {
        router: router(AppState::new(&app.services, None).with_admin(AdminConfig::new(rotated, SECRET).unwrap())),
        store: app.store.clone(),
        services: app.services.clone(),
        campaign: app.campaign.clone(),
        clock: app.clock.clone(),
    };
    after.sign_in("the-admin-token-after-rotation-0123").await;
    assert!(sent_to_sign_in(&after.get_as(&old_session.cookie, "/admin").await), "sessions of the old token end");
    assert_eq!(after.sign_in_status(ADMIN).await, StatusCode::UNAUTHORIZED, "the old token is refused");
}

#[tokio::test]
async fn the_webhooks_page_lists_deliveries_hides_secrets_and_redelivers_for_editors_only() {
    use closeloop_core::webhooks::{AttemptOutcome, EndpointHealth, WebhookDelivery, WebhookEvent};
    let app = spawn_app().await;
    let mut campaign = app.campaign.clone();
    campaign.webhooks.push(closeloop_core::webhooks::WebhookEndpoint {
        url: closeloop_core::webhooks::WebhookUrl::parse("https://crm.example/hooks").unwrap(),
        secret: closeloop_core::webhooks::WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
        events: [WebhookEvent::ResponseCreated].into_iter().collect(),
    });
    app.store.put_campaign(&campaign).await.unwrap();
    let endpoint = &campaign.webhooks[0];
    let mut failed = WebhookDelivery::new(&campaign.id, endpoint, WebhookEvent::ResponseCreated, "answer-x-1", &app.id_of("Åsa").await, 1, T0);
    app.store.enqueue_webhooks(std::slice::from_ref(&failed)).await.unwrap();
    // The first attempt and the eight retries of the schedule: given up.
    for _ in 0..9 {
        failed.record(AttemptOutcome { at: T0.plus_hours(1), status: Some(503), millis: 41, error: None });
    }
    app.store.save_webhook(&failed).await.unwrap();
    app.store.set_webhook_health(&campaign.id, &endpoint.key(), &EndpointHealth { consecutive_failures: 20, disabled_at: Some(T0.plus_hours(1)) }).await.unwrap();

    let editor = app.sign_in(EDITOR).await;
    let page = app.page(&editor, "/admin/c/dash/webhooks").await;
    assert!(page.contains("https://crm.example/hooks") && page.contains("whsec_…LaSw"), "{page}");
    assert!(!page.contains("MfKQ9r8GKYqrTwjUPD8"), "the secret never shows");
    assert!(page.contains("disabled after 20 failures in a row"));
    assert!(page.contains(&failed.id) && page.contains("given up") && page.contains("HTTP 503") && page.contains("41 ms"), "{page}");
    let viewer = app.sign_in(VIEWER).await;
    assert_eq!(app.get_as(&viewer.cookie, "/admin/c/dash/webhooks").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.post_as(&viewer, "/admin/c/dash/webhooks/redeliver", &format!("id={}", failed.id)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.post_as(&editor, "/admin/c/dash/webhooks/redeliver", "id=msg_none").await.status(), StatusCode::NOT_FOUND);
    let redelivered = app.post_as(&editor, "/admin/c/dash/webhooks/redeliver", &format!("id={}", failed.id)).await;
    assert_eq!(redelivered.status(), StatusCode::SEE_OTHER);
    let due = app.store.due_webhooks(app.clock.now(), 10).await.unwrap();
    assert_eq!(due.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), vec![failed.id.clone()], "due again, under its id");
    assert_eq!(app.store.webhook_health(&campaign.id, &endpoint.key()).await.unwrap().unwrap().disabled_at, None);
    let forged = app.send(
        Request::post("/admin/c/dash/webhooks/redeliver")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, &editor.cookie)
            .body(Body::from(format!("csrf=wrong&id={}", failed.id)))
            .unwrap(),
    );
    assert_eq!(forged.await.status(), StatusCode::FORBIDDEN, "no CSRF token, no redelivery");
}
