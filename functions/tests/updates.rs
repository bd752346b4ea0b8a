//! "You said, we did" end to end on the embedded default: an update composed for detractors and
//! those who did not answer, counted, sent through the reactions into the outbox, each person
//! once, and counted toward the "not too often" rule; and the owner's follow-up on closing a case.

use std::collections::BTreeMap;

use closeloop_core::changes::Change;
use closeloop_core::model::{Answer, CaseClosure, Event, EventKind, InvitationId};
use closeloop_core::nps::{Group, Score};
use closeloop_core::ports::{Clock, InvitationRow, MessageKind, Store};
use closeloop_core::privacy::Person;
use closeloop_core::updates::{CampaignUpdate, Exclusion, UpdateAudience, UpdateId, UpdateText};
use closeloop_core::{Campaign, ContactKey, Email, SuppressionReason};
use closeloop_functions::{dispatch, launch, privacy, updates};
use closeloop_testkit::{local, Local, T0};

fn campaign(id: &str) -> Campaign {
    let mut campaign = Campaign::from_toml(&include_str!("../../demo/campaign.toml").replacen("id = \"demo-service-visit\"", &format!("id = \"{id}\""), 1)).unwrap();
    campaign.throttle_days = 0;
    campaign.locales = vec![closeloop_core::Locale::En, closeloop_core::Locale::Sv];
    campaign
}

async fn rows(local: &Local, campaign: &Campaign) -> Vec<InvitationRow> {
    local.store.campaign_rows(&campaign.id).await.unwrap()
}

async fn answer(local: &Local, campaign: &Campaign, invitation: &closeloop_core::Invitation, score: u8, comment: &str) {
    let now = local.clock.now();
    let answer = Answer {
        invitation_id: invitation.id.clone(),
        campaign_id: campaign.id.clone(),
        score: Score::new(score).unwrap(),
        comment: Some(comment.into()),
        contact_ok: false,
        ratings: Default::default(),
        version: 1,
        first_answered_at: now,
        answered_at: now,
    };
    let change = Change::answer_recorded(campaign, invitation, None, &answer);
    local.store.record_answer(&answer, &change.event, &change.deltas).await.unwrap();
}

fn by_email<'a>(rows: &'a [InvitationRow], email: &str) -> Vec<&'a closeloop_core::Invitation> {
    rows.iter().map(|r| &r.invitation).filter(|i| i.contact.email.as_ref().is_some_and(|e| e.as_str() == email)).collect()
}

fn update_for(campaign: &Campaign, audience: UpdateAudience) -> CampaignUpdate {
    let texts = BTreeMap::from([
        (closeloop_core::Locale::En, UpdateText { subject: "You said, we did".into(), body: "You told us repairs took too long.\n\nWe now fix most bikes the same day: https://nordhavn.example/news.".into() }),
        (closeloop_core::Locale::Sv, UpdateText { subject: "Ni sa, vi gjorde".into(), body: "Ni sa att reparationer tog för lång tid: https://nordhavn.example/nyheter".into() }),
    ]);
    CampaignUpdate::compose(UpdateId::new(&campaign.id, "karin", T0), campaign, "karin", T0, texts, audience).unwrap()
}

async fn send_request(local: &Local, campaign: &Campaign, update: &CampaignUpdate) {
    let request = format!("update-{}", update.id);
    let event = Event { id: request.clone(), at: local.clock.now(), kind: EventKind::UpdateRequested { request_id: InvitationId(request), campaign_id: campaign.id.clone(), update_id: update.id.clone() } };
    local.store.append_event(&Change { event, campaign: campaign.id.clone(), deltas: Default::default() }).await.unwrap();
    dispatch::dispatch_pending(&local.services).await.unwrap();
}

#[tokio::test]
async fn an_update_reaches_each_chosen_person_once_and_leaves_out_the_unsubscribed_the_erased_and_the_sms_only() {
    let local = local();
    let c = campaign("update-e2e");
    local.store.put_campaign(&c).await.unwrap();
    launch::launch(
        &local.services,
        &c,
        b"email;phone;first_name;segment;language\n\
          asa@example.se;;Asa;retail;sv\n\
          bo@example.se;;Bo;retail;en\n\
          cai@example.se;;Cai;retail;en\n\
          ;+46701234567;Dan;retail;en\n\
          eve@example.se;;Eve;retail;en\n\
          fay@example.se;;Fay;retail;en\n\
          gus@example.se;;Gus;business;en\n\
          hal@example.se;;Hal;retail;en\n",
    )
    .await
    .unwrap();
    // Hal's invitation is cancelled through the API before it goes (its two marks, as
    // `DELETE /api/v1/invitations/{id}` leaves them): he was never asked, so no update either.
    let hal = by_email(&rows(&local, &c).await, "hal@example.se")[0].id.clone();
    for mark in [format!("invitation:{hal}"), format!("cancelled:{hal}")] {
        local.store.claim_send(&mark, local.clock.now()).await.unwrap();
    }
    // Åsa is invited a second time later (the campaign allows it): one person, two invitations.
    local.clock.set(T0.plus_hours(1));
    launch::launch(&local.services, &c, b"email;first_name;segment\nasa@example.se;Asa;retail\n").await.unwrap();
    dispatch::dispatch_pending(&local.services).await.unwrap();
    let all = rows(&local, &c).await;
    assert_eq!(all.len(), 9);

    for (email, score, comment) in [
        ("asa@example.se", 2, "The repair was slow"),
        ("bo@example.se", 3, "Too slow"),
        ("cai@example.se", 1, "Slow"),
        ("eve@example.se", 10, "Great"),
        ("gus@example.se", 0, "Slow and rude"),
    ] {
        answer(&local, &c, by_email(&all, email)[0], score, comment).await;
    }
    let dan = all.iter().find(|r| r.invitation.contact.email.is_none()).unwrap().invitation.clone();
    answer(&local, &c, &dan, 0, "Slow").await;
    dispatch::dispatch_pending(&local.services).await.unwrap();
    local.store.suppress(&ContactKey::email(&Email::parse("bo@example.se").unwrap()), SuppressionReason::Unsubscribed, local.clock.now()).await.unwrap();
    privacy::erase(&local.store, &Person::parse(Some("cai@example.se"), None).unwrap(), local.clock.now()).await.unwrap();

    // Detractors who wrote about waiting, in retail, and those who did not answer.
    let audience = UpdateAudience {
        groups: [Group::Detractor].into_iter().collect(),
        themes: ["waiting".to_owned()].into_iter().collect(),
        segments: ["retail".to_owned()].into_iter().collect(),
        non_respondents: true,
    };
    let mut update = update_for(&c, audience);
    let (count, complete) = updates::count_audience(&local.store, &c, &update.audience, None).await.unwrap();
    assert!(complete);
    assert_eq!(count.reached, 2, "Åsa (a detractor on waiting) and Fay (no answer), not Hal (cancelled): {count:?}");
    assert_eq!(count.respondents, 1);
    assert_eq!(count.excluded.get(&Exclusion::Suppressed), Some(&1), "Bo unsubscribed");
    assert_eq!(count.excluded.get(&Exclusion::Erased), Some(&1), "Cai was erased");
    assert_eq!(count.excluded.get(&Exclusion::NoEmail), Some(&1), "Dan has a phone only");
    assert_eq!(count.excluded.get(&Exclusion::AlreadyIncluded), Some(&1), "Åsa's second invitation");
    assert_eq!(count.excluded_total(), 4, "Eve (a promoter) and Gus (business) are outside the audience, not excluded");

    update.planned = count.clone();
    // A Thursday, inside the campaign's send window.
    local.clock.set(T0.plus_days(38));
    assert!(local.store.create_update(&update).await.unwrap());
    send_request(&local, &c, &update).await;
    let sent: Vec<_> = local.outbox.messages().unwrap().into_iter().filter(|m| m.kind == MessageKind::Update.as_str()).collect();
    let mut to: Vec<_> = sent.iter().map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, vec!["Asa <asa@example.se>", "Fay <fay@example.se>"]);
    let asa = sent.iter().find(|m| m.to.contains("asa@example.se")).unwrap();
    assert_eq!(asa.subject.as_deref(), Some("Ni sa, vi gjorde"), "in her language");
    let fay = sent.iter().find(|m| m.to.contains("fay@example.se")).unwrap();
    let html = fay.html.as_deref().unwrap_or_default();
    assert!(!html.contains("<img"), "no tracking pixel");
    assert!(!html.contains("href=\"https://nordhavn.example/news"), "the link is tracked, not direct");
    assert!(html.contains(&format!("/n/{}/{}/0", by_email(&all, "fay@example.se")[0].token.as_str(), update.id)), "the tracked link: {html}");
    assert!(fay.text.as_str().contains("/n/"), "the text part's link is tracked too");
    assert!(fay.raw.as_deref().unwrap_or_default().contains("List-Unsubscribe"), "an update can be unsubscribed from");

    let stored = local.store.update(&c.id, &update.id).await.unwrap().unwrap();
    assert_eq!(stored.progress.sent, 2);
    assert!(stored.progress.finished_at.is_some());
    assert_eq!(stored.progress.excluded.get(&Exclusion::Suppressed), Some(&1));

    // A retried step (the request redelivered, the schedule, the same update from the start) sends nothing again.
    dispatch::dispatch_pending(&local.services).await.unwrap();
    updates::continue_updates(&local.services).await.unwrap();
    let mut again = update.clone();
    again.progress = Default::default();
    updates::send_update(&local.services, &c, &again, 100).await.unwrap();
    let total = local.outbox.messages().unwrap().into_iter().filter(|m| m.kind == MessageKind::Update.as_str()).count();
    assert_eq!(total, 2, "once per person however often a step runs");

    // The update counts toward the "not too often" window: the invitations are 39 days old,
    // the update is new, so a 30-day window refuses Åsa and Fay but not Gus.
    local.clock.set(T0.plus_days(39));
    let mut next = campaign("update-e2e-next");
    next.throttle_days = 30;
    let summary = launch::launch(&local.services, &next, b"email;first_name\nasa@example.se;Asa\nfay@example.se;Fay\ngus@example.se;Gus\n").await.unwrap();
    let next_rows = rows(&local, &next).await;
    let invited: Vec<_> = next_rows.iter().filter_map(|r| r.invitation.contact.email.as_ref().map(|e| e.as_str().to_owned())).collect();
    assert_eq!(invited, vec!["gus@example.se"], "{summary:?}");
}

#[tokio::test]
async fn a_tracked_link_counts_each_persons_first_click_once() {
    let local = local();
    let c = campaign("update-clicks");
    local.store.put_campaign(&c).await.unwrap();
    launch::launch(&local.services, &c, b"email;first_name\nasa@example.se;Asa\n").await.unwrap();
    let update = update_for(&c, UpdateAudience { non_respondents: true, ..Default::default() });
    local.store.create_update(&update).await.unwrap();
    let inv = rows(&local, &c).await.remove(0).invitation;
    for _ in 0..3 {
        local.store.append_event(&Change::update_link_clicked(&inv.id, &c.id, &update.id, 0, local.clock.now())).await.unwrap();
    }
    let bucket = closeloop_core::updates::clicks_bucket(&update.id);
    let counters = local.store.counter_buckets(&c.id, std::slice::from_ref(&bucket)).await.unwrap();
    assert_eq!(counters[&bucket].get("link0"), Some(&1));
}

#[tokio::test]
async fn closing_a_case_with_a_follow_up_mails_the_respondent_once_from_the_owner() {
    let local = local();
    let mut c = campaign("update-follow-up");
    c.owners.insert("Nils Berg".into(), Email::parse("nils@nordhavn.example").unwrap());
    local.store.put_campaign(&c).await.unwrap();
    launch::launch(&local.services, &c, b"email;first_name;owner\nasa@example.se;Asa;nils@nordhavn.example\n").await.unwrap();
    dispatch::dispatch_pending(&local.services).await.unwrap();
    let inv = rows(&local, &c).await.remove(0).invitation;
    answer(&local, &c, &inv, 2, "Slow repair").await;
    dispatch::dispatch_pending(&local.services).await.unwrap();
    let case = local.store.case(&inv.id).await.unwrap().expect("a detractor opens a case");
    assert_eq!(case.owner_email.as_ref().map(|e| e.as_str()), Some("nils@nordhavn.example"));
    let closure = CaseClosure {
        by: "nils".into(),
        at: local.clock.now(),
        outcome: "Refunded the repair".into(),
        follow_up: Some("Hi Åsa, we refunded the repair and changed how we book the workshop.".into()),
    };
    assert!(local.store.close_case(&inv.id, &closure).await.unwrap());
    for _ in 0..2 {
        let event = Event { id: format!("case-follow-up-{}", inv.id), at: closure.at, kind: EventKind::CaseFollowUpRequested { invitation_id: inv.id.clone() } };
        local.store.append_event(&Change { event, campaign: c.id.clone(), deltas: Default::default() }).await.unwrap();
        dispatch::dispatch_pending(&local.services).await.unwrap();
    }
    let follow_ups: Vec<_> = local.outbox.messages().unwrap().into_iter().filter(|m| m.kind == MessageKind::CaseFollowUp.as_str()).collect();
    assert_eq!(follow_ups.len(), 1, "once");
    let mail = &follow_ups[0];
    assert!(mail.to.contains("asa@example.se"), "{}", mail.to);
    let raw = mail.raw.as_deref().unwrap_or_default();
    assert!(raw.contains("Reply-To: <nils@nordhavn.example>") || raw.contains("Reply-To: nils@nordhavn.example"), "replies reach the owner: {raw}");
    assert!(raw.contains("Nils Berg"), "from the owner's name");
    assert!(mail.text.as_str().contains("we refunded the repair"));
}
