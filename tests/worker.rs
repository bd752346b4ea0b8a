//! The survey edge as a real Worker: the WASM bundle from worker-build, served by workerd
//! (`wrangler dev --local`), recording into DynamoDB Local. Then the table and its stream are read
//! back: every answer exactly once, and nothing else changed.

#[path = "support/worker_harness.rs"]
mod harness;

use std::collections::BTreeSet;

use closeloop_core::ports::Store;
use closeloop_dynamodb::stream::{local_streams_client, read_all, Operation};
use harness::{seed, start_wrangler, ADMIN_TOKEN};

#[tokio::test]
async fn the_worker_serves_the_survey_records_answers_once_and_changes_nothing_else() {
    let table = format!("closeloop-worker-{}", std::process::id());
    let wrangler = tokio::task::spawn_blocking({
        let table = table.clone();
        move || start_wrangler(&table, None)
    })
    .await
    .unwrap();
    let seeded = seed(&table, &wrangler.base, 2).await;
    let (invitation_id, token) = seeded.tokens[0].clone();
    let (other_id, _) = seeded.tokens[1].clone();
    let before = read_all(&seeded.store, &local_streams_client().unwrap()).await.unwrap().len();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = |path: &str| format!("{}{path}", wrangler.base);

    // The page, as opened from the email's score link: nothing is recorded by a GET.
    let page = http.get(url(&format!("/s/{token}?score=9"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "private, no-store");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("value=\"9\" checked") && html.contains("Nordhavn Cykler"));
    assert!(seeded.store.answer(&closeloop_core::InvitationId(invitation_id.clone())).await.unwrap().is_none());

    // Bad requests change nothing.
    assert_eq!(http.delete(url(&format!("/s/{token}"))).send().await.unwrap().status(), 405);
    let huge = "x".repeat(70 * 1024);
    let too_big = http.post(url(&format!("/s/{token}"))).form(&[("score", "5"), ("comment", huge.as_str())]).send().await.unwrap();
    assert_eq!(too_big.status(), 413);
    let not_form = http.post(url(&format!("/s/{token}"))).header("content-type", "application/json").body("{}").send().await.unwrap();
    let status = not_form.status();
    assert_eq!(status, 400, "{}", not_form.text().await.unwrap());
    let invalid = http.post(url(&format!("/s/{token}"))).form(&[("score", "12"), ("comment", "kept")]).send().await.unwrap();
    assert_eq!(invalid.status(), 400);
    assert!(invalid.text().await.unwrap().contains(">kept</textarea>"));
    assert_eq!(http.get(url("/s/0000000000000000000000")).send().await.unwrap().status(), 404);

    // Answer, then change the answer.
    let answered = http.post(url(&format!("/s/{token}"))).form(&[("score", "9"), ("comment", "Bra!"), ("rating.ease", "4")]).send().await.unwrap();
    assert_eq!(answered.status(), 303);
    assert_eq!(answered.headers()["location"], format!("/s/{token}/thanks"));
    let changed = http.post(url(&format!("/s/{token}"))).form(&[("score", "10"), ("comment", "Mycket bra!")]).send().await.unwrap();
    assert_eq!(changed.status(), 303);
    let thanks = http.get(url(&format!("/s/{token}/thanks"))).send().await.unwrap().text().await.unwrap();
    assert!(thanks.contains(&format!("/r/{token}/trustpilot")));

    // The review redirect, then unsubscribe.
    let link = http.get(url(&format!("/r/{token}/trustpilot"))).send().await.unwrap();
    assert_eq!(link.status(), 303);
    assert_eq!(link.headers()["location"], format!("/r/{token}/trustpilot/go"));
    let review = http.get(url(&format!("/r/{token}/trustpilot/go"))).send().await.unwrap();
    assert_eq!(review.status(), 302);
    assert_eq!(review.headers()["location"], "https://www.trustpilot.com/evaluate/nordhavn-cykler.example");
    assert_eq!(review.headers()["referrer-policy"], "no-referrer");
    let unsubscribed = http.post(url(&format!("/u/{token}"))).form(&[("List-Unsubscribe", "One-Click")]).send().await.unwrap();
    assert_eq!(unsubscribed.status(), 200);

    // The table: the answer once, at version 2, the click counted, the person suppressed.
    let id = closeloop_core::InvitationId(invitation_id.clone());
    let answer = seeded.store.answer(&id).await.unwrap().unwrap();
    assert_eq!((answer.score.value(), answer.version, answer.comment.as_deref()), (10, 2, Some("Mycket bra!")));
    let rows = seeded.store.campaign_rows(&seeded.campaign.id).await.unwrap();
    let row = rows.iter().find(|r| r.invitation.id == id).unwrap();
    assert_eq!(row.review_clicks, 1);
    // The Worker writes the suppression only (a bounded number of subrequests); marking the
    // person's invitations is the stream consumer's.
    assert!(!row.suppressed, "not marked by the Worker");
    assert!(seeded.store.is_suppressed(&row.invitation.contact.keys()).await.unwrap(), "yet suppressed: no mail goes out");
    let other = rows.iter().find(|r| r.invitation.id.0 == other_id).unwrap();
    assert!(other.answer.is_none() && !other.suppressed && other.review_clicks == 0, "the other invitation is untouched");

    // The stream: exactly what the requests above should have written, nothing else. No
    // respondent's request touches the campaign's counter items: the stream consumer counts.
    let records = read_all(&seeded.store, &local_streams_client().unwrap()).await.unwrap();
    let new: Vec<_> = records[before..].iter().collect();
    let events: Vec<String> = new.iter().filter_map(|r| r.event()).map(|e| e.id).collect();
    let expected_events = [
        format!("opened-{invitation_id}"),
        format!("answer-{invitation_id}-1"),
        format!("answer-{invitation_id}-2"),
        format!("review-click-{invitation_id}"),
    ];
    assert_eq!(events, expected_events, "one event per change, in order");
    let answers: Vec<_> = new.iter().filter(|r| r.key().1 == "ANSWER").collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].operation, Operation::Insert);
    assert_eq!(answers[1].operation, Operation::Modify);
    let touched: BTreeSet<String> = new.iter().map(|r| r.key().0).collect();
    // Whichever seeded contact came first: invitations created in the same instant have no order.
    let email_key = format!("CONTACT#{}", row.invitation.contact.keys()[0].as_str());
    let mut allowed: BTreeSet<String> = [format!("INV#{invitation_id}"), email_key].into_iter().collect();
    allowed.extend(expected_events.iter().map(|id| format!("EVENT#{id}")));
    assert!(touched.is_subset(&allowed), "unexpected items changed: {:?}", touched.difference(&allowed).collect::<Vec<_>>());

    // What on_answer does with that stream: marks the suppression it delivers, then the counters
    // move once into promoters (the edit 9 → 10 stayed in the group), the page opened once, one
    // unsubscribe.
    let suppressions: Vec<_> = new.iter().filter_map(|r| closeloop_dynamodb::suppression_from_item(r.new_image.as_ref()?)).collect();
    assert_eq!(suppressions.len(), 1, "one suppression written, for the email the link was sent to");
    for suppression in suppressions {
        let (key, reason, at) = suppression.unwrap();
        seeded.store.suppress(&key, reason, at).await.unwrap();
    }
    let rows = seeded.store.campaign_rows(&seeded.campaign.id).await.unwrap();
    assert!(rows.iter().find(|r| r.invitation.id == id).unwrap().suppressed, "marked from the stream");
    seeded.store.settle_counters().await.unwrap();
    let counters = seeded.store.campaign_counters(&seeded.campaign.id).await.unwrap();
    assert_eq!((counters.invited, counters.tally.promoters, counters.tally.passives, counters.tally.detractors), (2, 1, 0, 0));

    // The dashboard, from the same Worker: sign in, read the overview from the counters, export.
    let admin = http.get(url("/admin")).send().await.unwrap();
    assert_eq!((admin.status().as_u16(), admin.headers()["location"].to_str().unwrap()), (303, "/admin/sign-in"));
    let form = http.get(url("/admin/sign-in")).send().await.unwrap();
    let nonce = cookie_value(&form, "cl_signin");
    let html = form.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let signed_in = http
        .post(url("/admin/sign-in"))
        .header("cookie", format!("cl_signin={nonce}"))
        .form(&[("csrf", csrf.as_str()), ("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = format!("cl_session={}", cookie_value(&signed_in, "cl_session"));
    let overview = http.get(url(&format!("/admin/c/{}", seeded.campaign.id))).header("cookie", &session).send().await.unwrap();
    assert_eq!(overview.status(), 200);
    let overview = overview.text().await.unwrap();
    assert!(overview.contains("id=\"nps-value\">+100<"), "one promoter: {overview}");
    assert!(overview.contains("<th scope=\"row\">Opened the page</th><td class=\"num\">1</td>"), "the page opened once");
    assert!(overview.contains("<th scope=\"row\">Unsubscribed</th><td class=\"num\">1</td>"));
    let export = http.get(url(&format!("/admin/c/{}/export.csv", seeded.campaign.id))).header("cookie", &session).send().await.unwrap();
    assert_eq!(export.status(), 200);
    assert!(export.text().await.unwrap().contains("Mycket bra!"), "the export streams from the Worker");
    let comments = http.get(url(&format!("/admin/c/{}/comments", seeded.campaign.id))).header("cookie", &session).send().await.unwrap();
    assert_eq!(comments.status(), 200);
    assert!(comments.text().await.unwrap().contains("Mycket bra!"), "the comments page reads its rows a page at a time");
    let preview = http.get(url(&format!("/admin/c/{}/preview?locale=da", seeded.campaign.id))).header("cookie", &session).send().await.unwrap();
    assert_eq!(preview.status(), 200);
    let preview = preview.text().await.unwrap();
    assert!(preview.contains("aria-label=\"Invitation SMS\"") && preview.contains("segment"), "the preview, from the Worker");
    // Pausing from the Worker's dashboard: the state is stored, from the state the page showed.
    let csrf = preview.split("name=\"csrf\" value=\"").nth(1).map(|rest| rest.split('"').next().unwrap_or("").to_owned());
    let overview = http.get(url(&format!("/admin/c/{}", seeded.campaign.id))).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    let csrf = csrf.or_else(|| overview.split("name=\"csrf\" value=\"").nth(1).map(|rest| rest.split('"').next().unwrap_or("").to_owned())).unwrap();
    let paused = http
        .post(url(&format!("/admin/c/{}/state", seeded.campaign.id)))
        .header("cookie", &session)
        .header("origin", wrangler.base.clone())
        .form(&[("csrf", csrf.as_str()), ("action", "pause"), ("expected", "active")])
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 303);
    let status = seeded.store.campaign_status(&seeded.campaign.id).await.unwrap().unwrap();
    assert_eq!((status.state.as_str(), status.changed_by.is_some()), ("paused", true));

    // The workspace, from the Worker: create a campaign with the form, edit it over its
    // revision, refuse a stale edit, read the change log and preview the new campaign.
    let mut form = closeloop_core::campaign_form::CampaignForm::from_campaign(&seeded.campaign);
    form.id = "worker-made".into();
    form.name = "Made at the edge".into();
    let post = |path: String, fields: Vec<(String, String)>| {
        http.post(url(&path)).header("cookie", &session).header("origin", wrangler.base.clone()).form(&fields).send()
    };
    let created = post("/admin/new".into(), form_fields(&form, &csrf, &[("kind", "created")])).await.unwrap();
    assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
    let made = closeloop_core::CampaignId::parse("worker-made").unwrap();
    assert_eq!(seeded.store.campaign(&made).await.unwrap().map(|c| c.name), Some("Made at the edge".to_owned()));
    let mut edited = form.clone();
    edited.throttle_days = "45".into();
    let saved = post("/admin/c/worker-made/edit".into(), form_fields(&edited, &csrf, &[("revision", "1")])).await.unwrap();
    assert_eq!(saved.status(), 303);
    let mut stale = form.clone();
    stale.name = "Stale".into();
    let refused = post("/admin/c/worker-made/edit".into(), form_fields(&stale, &csrf, &[("revision", "1")])).await.unwrap();
    assert_eq!(refused.status(), 409, "revision 2 is taken");
    let stored = seeded.store.campaign(&made).await.unwrap().unwrap();
    assert_eq!((stored.throttle_days, stored.name.as_str()), (45, "Made at the edge"));
    let log = http.get(url("/admin/c/worker-made/changes")).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    assert!(log.contains("Edited by Admin") && log.contains("Created by Admin"), "{log}");
    assert!(log.contains("<td>throttle_days</td><td>90</td><td>45</td>"), "{log}");
    let bad = post("/admin/new".into(), form_fields(&closeloop_core::campaign_form::CampaignForm::blank(), &csrf, &[])).await.unwrap();
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("id=\"id-error\""), "each problem at its field, from the Worker too");
    let preview = http.get(url("/admin/c/worker-made/preview?locale=sv")).header("cookie", &session).send().await.unwrap();
    assert_eq!(preview.status(), 200);
    assert!(preview.text().await.unwrap().contains("Made at the edge"));
    drop(wrangler);
}

/// A campaign form as the browser posts it, with this session's CSRF token and `extra`.
fn form_fields(form: &closeloop_core::campaign_form::CampaignForm, csrf: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let serde_json::Value::Object(map) = serde_json::to_value(form).unwrap() else { unreachable!("a struct") };
    let mut fields = vec![("csrf".to_owned(), csrf.to_owned())];
    for (name, value) in map {
        match value {
            serde_json::Value::String(v) => fields.push((name, v)),
            serde_json::Value::Array(days) => fields.extend(days.iter().map(|d| (format!("day_{}", d.as_str().unwrap()), "on".to_owned()))),
            other => panic!("{name}: {other}"),
        }
    }
    fields.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    fields
}

fn cookie_value(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned()))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
}
