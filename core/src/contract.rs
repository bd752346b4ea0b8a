//! The storage contract: every storage adapter runs these same cases through
//! [`store_contract_tests!`](crate::store_contract_tests), so the embedded store and DynamoDB
//! cannot drift apart.

use crate::campaign::{Campaign, CampaignId};
use crate::counters::{answer_deltas, Aggregates, CounterDeltas, View, OPENED, REVIEW_CLICKERS, TOTAL};
use crate::model::*;
use crate::nps::Score;
use crate::ports::{CreateOutcome, InvitationRow, RowCursor, RowQuery, Store, StoreError};
use crate::time::Timestamp;
use crate::changes::Change;
use crate::fixtures::{answer_touching_everything, largest_campaign, largest_invitation};

pub const T0: Timestamp = Timestamp::from_millis(1_790_000_000_000);

pub fn campaign(id: &str) -> Campaign {
    Campaign::from_toml(&format!(
        "id = \"{id}\"\nname = \"Contract\"\ncompany = \"Acme\"\nsender_name = \"Sam\"\nsender_email = \"sam@acme.example\"\nreminders = {{ delay_days = 3, max = 1 }}\n"
    ))
    .expect("contract campaign is valid")
}

pub fn invitation(campaign: &Campaign, n: u8, at: Timestamp) -> Invitation {
    // Contacts differ per campaign so cases sharing one backing store never throttle each other.
    let salt = campaign.id.as_str().bytes().fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619)) % 100_000;
    let contact = Contact {
        email: Some(Email::parse(&format!("person{n}@{}.example", campaign.id)).expect("valid")),
        phone: Some(Phone::parse(&format!("+4670{salt:05}{n:03}")).expect("valid")),
        first_name: Some(format!("Person {n}")),
        segment: Some("retail".into()),
        ..Contact::default()
    };
    let mut bytes = [n; 16];
    bytes[0] = campaign.id.as_str().len() as u8;
    bytes[1] = (at.millis() % 251) as u8;
    Invitation::new(InvitationId(format!("{}-{n}-{}", campaign.id, at.millis())), Token::from_random_bytes(bytes), campaign, contact, at)
        .expect("valid invitation")
}

pub fn answer(invitation: &Invitation, score: u8, version: u32, at: Timestamp) -> (Answer, Event, CounterDeltas) {
    answer_after(invitation, None, score, version, at)
}

/// An answer change from `previous` (the stored answer, if any) to `score`, with its counter deltas.
pub fn answer_after(
    invitation: &Invitation,
    previous: Option<&Answer>,
    score: u8,
    version: u32,
    at: Timestamp,
) -> (Answer, Event, CounterDeltas) {
    let answer = Answer {
        invitation_id: invitation.id.clone(),
        campaign_id: invitation.campaign_id.clone(),
        score: Score::new(score).expect("0..=10"),
        comment: Some("Åsa's <b>comment</b>".into()),
        contact_ok: false,
        ratings: [("ease".to_owned(), 4)].into_iter().collect(),
        version,
        first_answered_at: previous.map_or(at, |p| p.first_answered_at),
        answered_at: at,
    };
    let deltas = answer_deltas(&campaign(invitation.campaign_id.as_str()), invitation, previous, &answer);
    let event = Event {
        id: format!("answer-{}-{version}", invitation.id),
        at,
        kind: EventKind::AnswerRecorded {
            invitation_id: invitation.id.clone(),
            version,
            previous_score: previous.map(|p| p.score),
            score: answer.score,
        },
    };
    (answer, event, deltas)
}

async fn seeded(store: &dyn Store, id: &str) -> (Campaign, Invitation) {
    let c = campaign(id);
    store.put_campaign(&c).await.expect("put campaign");
    let inv = invitation(&c, 1, T0);
    let created = store.create_invitations(std::slice::from_ref(&inv), T0.minus_days(90)).await.expect("create");
    assert_eq!(created, vec![CreateOutcome::Created]);
    (c, inv)
}

pub async fn campaigns_round_trip(store: &dyn Store) {
    let c = campaign("round-trip");
    store.put_campaign(&c).await.unwrap();
    assert_eq!(store.campaign(&c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(store.campaign(&CampaignId::parse("missing").unwrap()).await.unwrap(), None);
    assert!(store.campaigns().await.unwrap().contains(&c));
}

pub async fn invitations_are_found_by_token_and_by_id(store: &dyn Store) {
    let (_, inv) = seeded(store, "by-token").await;
    assert_eq!(store.invitation_by_token(&inv.token).await.unwrap(), Some(inv.clone()));
    assert_eq!(store.invitation(&inv.id).await.unwrap(), Some(inv.clone()));
    let unknown = Token::from_random_bytes([42; 16]);
    assert_eq!(store.invitation_by_token(&unknown).await.unwrap(), None);
    // What a survey page reads after the token: the campaign and the answer together.
    use crate::ports::SurveyReads;
    let c = campaign("by-token");
    assert_eq!(store.campaign_and_answer(&c.id, &inv.id).await.unwrap(), SurveyReads { campaign: Some(c.clone()), status: None, answer: None });
    let (a, e, d) = answer(&inv, 7, 1, T0.plus_hours(1));
    store.record_answer(&a, &e, &d).await.unwrap();
    let ended = crate::lifecycle::CampaignStatus::default().after(crate::lifecycle::Transition::End, T0, "Karin").unwrap();
    assert!(store.set_campaign_status(&c.id, &ended, crate::lifecycle::CampaignState::Active).await.unwrap());
    let reads = store.campaign_and_answer(&c.id, &inv.id).await.unwrap();
    assert_eq!(reads, SurveyReads { campaign: Some(c.clone()), status: Some(ended), answer: Some(a) });
    let missing = CampaignId::parse("no-such-campaign").unwrap();
    assert_eq!(store.campaign_and_answer(&missing, &InvitationId("no-such".into())).await.unwrap(), SurveyReads::default());
}

pub async fn a_contact_invited_within_the_window_is_throttled_and_later_invited_again(store: &dyn Store) {
    let (c, _) = seeded(store, "throttle").await;
    let again = invitation(&c, 1, T0.plus_days(10));
    let outcome = store.create_invitations(std::slice::from_ref(&again), T0.plus_days(10).minus_days(90)).await.unwrap();
    assert_eq!(outcome, vec![CreateOutcome::Throttled]);
    assert_eq!(store.invitation(&again.id).await.unwrap(), None, "a throttled invitation is not stored");
    let later = invitation(&c, 1, T0.plus_days(91));
    let outcome = store.create_invitations(std::slice::from_ref(&later), T0.plus_days(1)).await.unwrap();
    assert_eq!(outcome, vec![CreateOutcome::Created]);
}

pub async fn throttling_recognises_a_contact_by_phone_alone(store: &dyn Store) {
    let (c, _) = seeded(store, "throttle-phone").await;
    let mut by_phone = invitation(&c, 1, T0.plus_days(1));
    by_phone.contact.email = None;
    by_phone.channel = Channel::Sms;
    let outcome = store.create_invitations(&[by_phone], T0.minus_days(1)).await.unwrap();
    assert_eq!(outcome, vec![CreateOutcome::Throttled]);
}

pub async fn suppression_covers_every_campaign_and_is_idempotent(store: &dyn Store) {
    let (_, inv) = seeded(store, "suppress-a").await;
    let key = ContactKey::email(inv.contact.email.as_ref().unwrap());
    assert!(store.suppress(&key, SuppressionReason::Unsubscribed, T0).await.unwrap());
    assert!(!store.suppress(&key, SuppressionReason::Unsubscribed, T0).await.unwrap(), "second time is a no-op");
    assert!(store.is_suppressed(&inv.contact.keys()).await.unwrap());
    let other = campaign("suppress-b");
    store.put_campaign(&other).await.unwrap();
    let mut same_person = invitation(&other, 1, T0.plus_days(200));
    same_person.contact = inv.contact.clone();
    let outcome = store.create_invitations(&[same_person], T0.plus_days(199)).await.unwrap();
    assert_eq!(outcome, vec![CreateOutcome::Suppressed]);
    let stranger = invitation(&other, 2, T0.plus_days(200));
    assert!(!store.is_suppressed(&stranger.contact.keys()).await.unwrap());
    assert!(store.due_reminders(T0.plus_days(30), 100).await.unwrap().iter().all(|i| i.id != inv.id), "no reminder after unsubscribe");
}

pub async fn creating_an_invitation_leaves_one_pending_event_until_completed(store: &dyn Store) {
    let (_, inv) = seeded(store, "events").await;
    let pending = store.pending_events(1000).await.unwrap();
    let mine: Vec<_> =
        pending.iter().filter(|e| matches!(&e.kind, EventKind::InvitationCreated { invitation_id } if *invitation_id == inv.id)).collect();
    assert_eq!(mine.len(), 1);
    store.complete_event(&mine[0].id, T0).await.unwrap();
    store.complete_event(&mine[0].id, T0).await.unwrap();
    assert!(store.pending_events(1000).await.unwrap().iter().all(|e| e.id != mine[0].id));
    // Many at once, twice: none of them stays pending, the others stay.
    let c = campaign("events-batch");
    store.put_campaign(&c).await.unwrap();
    let invs: Vec<Invitation> = (1..=4).map(|n| invitation(&c, n, T0)).collect();
    store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    let of_batch = |events: Vec<Event>| -> Vec<String> {
        events.into_iter().filter(|e| invs.iter().any(|i| matches!(&e.kind, EventKind::InvitationCreated { invitation_id } if *invitation_id == i.id))).map(|e| e.id).collect()
    };
    let ids = of_batch(store.pending_events(1000).await.unwrap());
    assert_eq!(ids.len(), 4);
    store.complete_events(&ids[..3], T0).await.unwrap();
    store.complete_events(&ids[..3], T0).await.unwrap();
    assert_eq!(of_batch(store.pending_events(1000).await.unwrap()), vec![ids[3].clone()]);
}

pub async fn answers_are_versioned_and_a_stale_write_conflicts(store: &dyn Store) {
    let (_, inv) = seeded(store, "answers").await;
    let (a1, e1, d1) = answer(&inv, 3, 1, T0.plus_hours(1));
    store.record_answer(&a1, &e1, &d1).await.unwrap();
    let (dup, dup_event, dup_deltas) = answer(&inv, 9, 1, T0.plus_hours(2));
    assert!(matches!(store.record_answer(&dup, &dup_event, &dup_deltas).await, Err(StoreError::Conflict)));
    assert_eq!(store.answer(&inv.id).await.unwrap(), Some(a1.clone()), "the conflicting write left nothing behind");
    let (a2, e2, d2) = answer_after(&inv, Some(&a1), 9, 2, T0.plus_hours(3));
    store.record_answer(&a2, &e2, &d2).await.unwrap();
    assert_eq!(store.answer(&inv.id).await.unwrap(), Some(a2));
    let stored = store.invitation(&inv.id).await.unwrap().unwrap();
    assert_eq!(stored.answered_at, Some(T0.plus_hours(1)));
    assert_eq!(stored.next_reminder_at, None);
    let answer_events = store
        .pending_events(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.kind, EventKind::AnswerRecorded { invitation_id, .. } if *invitation_id == inv.id))
        .count();
    assert_eq!(answer_events, 2, "one event per accepted change, none for the conflict");
}

pub async fn a_send_is_claimed_once_until_released(store: &dyn Store) {
    assert!(store.claim_send("contract:mail:1", T0).await.unwrap());
    assert!(!store.claim_send("contract:mail:1", T0).await.unwrap());
    store.release_send("contract:mail:1").await.unwrap();
    assert!(store.claim_send("contract:mail:1", T0).await.unwrap());
}

pub async fn sends_claimed_in_a_batch_are_claimed_once_each(store: &dyn Store) {
    assert!(store.claim_send("contract:batch:a", T0).await.unwrap());
    let keys: Vec<String> = ["contract:batch:b", "contract:batch:a", "contract:batch:c", "contract:batch:b"].map(String::from).into();
    assert_eq!(store.claim_sends(&keys, T0).await.unwrap(), vec![true, false, true, false], "claimed before, or earlier in the batch, is not claimed again");
    assert!(!store.claim_send("contract:batch:c", T0).await.unwrap(), "a batch's claim holds for single claims too");
    store.release_send("contract:batch:c").await.unwrap();
    assert_eq!(store.claim_sends(&keys[2..3], T0).await.unwrap(), vec![true], "a released claim can be taken again");
    assert!(store.claim_sends(&[], T0).await.unwrap().is_empty());
}

pub async fn suppression_is_checked_for_many_people_at_once(store: &dyn Store) {
    let (campaign, inv) = seeded(store, "suppress-many").await;
    let stranger = invitation(&campaign, 2, T0);
    let by_phone = ContactKey::phone(&crate::model::Phone::parse("+46701234599").unwrap());
    store.suppress(&ContactKey::email(inv.contact.email.as_ref().unwrap()), SuppressionReason::Complained, T0).await.unwrap();
    store.suppress(&by_phone, SuppressionReason::Unsubscribed, T0).await.unwrap();
    let people = vec![inv.contact.keys(), stranger.contact.keys(), vec![], vec![ContactKey::email(&crate::model::Email::parse("nobody-many@x.example").unwrap()), by_phone]];
    assert_eq!(store.are_suppressed(&people).await.unwrap(), vec![true, false, false, true], "each person by any of their keys");
}

pub async fn reminders_are_due_only_for_the_unanswered_after_the_delay(store: &dyn Store) {
    let c = campaign("reminders");
    store.put_campaign(&c).await.unwrap();
    let invs: Vec<Invitation> = (10..13).map(|n| invitation(&c, n, T0)).collect();
    store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    let (a, e, d) = answer(&invs[0], 8, 1, T0.plus_hours(5));
    store.record_answer(&a, &e, &d).await.unwrap();
    let mine = |list: Vec<Invitation>| list.into_iter().filter(|i| i.campaign_id == c.id).map(|i| i.id).collect::<Vec<_>>();
    assert!(mine(store.due_reminders(T0.plus_days(2), 100).await.unwrap()).is_empty(), "not before the delay");
    let due = mine(store.due_reminders(T0.plus_days(3), 100).await.unwrap());
    assert_eq!(due, vec![invs[1].id.clone(), invs[2].id.clone()]);
    store.reminder_sent(&invs[1].id, 1, None).await.unwrap();
    assert_eq!(mine(store.due_reminders(T0.plus_days(30), 100).await.unwrap()), vec![invs[2].id.clone()]);
    assert_eq!(store.invitation(&invs[1].id).await.unwrap().unwrap().reminders_sent, 1);
}

pub async fn a_case_opens_once_and_is_overdue_until_escalated(store: &dyn Store) {
    let (c, inv) = seeded(store, "cases").await;
    let case = FollowUpCase::new(inv.id.clone(), c.id.clone(), Some(Email::parse("owner@acme.example").unwrap()), T0, T0.plus_hours(48));
    assert!(store.open_case(&case).await.unwrap());
    assert!(!store.open_case(&case).await.unwrap());
    assert_eq!(store.case(&inv.id).await.unwrap(), Some(case.clone()));
    let overdue = |list: Vec<FollowUpCase>| list.into_iter().any(|k| k.invitation_id == inv.id);
    assert!(!overdue(store.overdue_cases(T0.plus_hours(47), 100).await.unwrap()));
    assert!(overdue(store.overdue_cases(T0.plus_hours(48), 100).await.unwrap()));
    store.case_escalated(&inv.id, T0.plus_hours(49)).await.unwrap();
    assert!(!overdue(store.overdue_cases(T0.plus_hours(100), 100).await.unwrap()));
    assert_eq!(store.case(&inv.id).await.unwrap().unwrap().escalated_at, Some(T0.plus_hours(49)));
}

pub async fn campaign_rows_carry_answers_suppression_and_review_clicks(store: &dyn Store) {
    let c = campaign("rows");
    store.put_campaign(&c).await.unwrap();
    let invs: Vec<Invitation> = (20..23).map(|n| invitation(&c, n, T0)).collect();
    store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    let (a, e, d) = answer(&invs[0], 10, 1, T0.plus_hours(1));
    store.record_answer(&a, &e, &d).await.unwrap();
    store.record_review_click(&invs[0].id, "google", T0.plus_hours(2)).await.unwrap();
    store.record_review_click(&invs[0].id, "google", T0.plus_hours(3)).await.unwrap();
    store.suppress(&invs[1].contact.keys()[1], SuppressionReason::Bounced, T0).await.unwrap();
    let mut rows = store.campaign_rows(&c.id).await.unwrap();
    rows.sort_by(|x, y| x.invitation.id.cmp(&y.invitation.id));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].answer.as_ref().map(|a| a.score.value()), Some(10));
    assert_eq!(rows[0].review_clicks, 2);
    assert!(!rows[0].suppressed);
    assert!(rows[1].suppressed, "suppressed by phone");
    assert!(rows[2].answer.is_none());
}

pub async fn counters_follow_invitations_and_group_changes_atomically(store: &dyn Store) {
    let c = campaign("counters");
    store.put_campaign(&c).await.unwrap();
    let invs: Vec<Invitation> = (30..34).map(|n| invitation(&c, n, T0)).collect();
    store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    let same_person_again = invitation(&c, 30, T0.plus_hours(1));
    let throttled = store.create_invitations(&[same_person_again], T0.minus_days(90)).await.unwrap();
    assert_eq!(throttled, vec![CreateOutcome::Throttled]);
    let mut firsts = Vec::new();
    for (inv, score) in invs.iter().zip([10, 8, 0]) {
        let (a, e, d) = answer(inv, score, 1, T0.plus_hours(1));
        store.record_answer(&a, &e, &d).await.unwrap();
        firsts.push(a);
    }
    // The detractor becomes a promoter; a stale duplicate of the change is refused and counts nothing.
    let (a2, e2, d2) = answer_after(&invs[2], Some(&firsts[2]), 9, 2, T0.plus_hours(2));
    store.record_answer(&a2, &e2, &d2).await.unwrap();
    assert!(matches!(store.record_answer(&a2, &e2, &d2).await, Err(StoreError::Conflict)));
    // A change within a group moves no group counter (the week, segment and driver buckets stay too).
    let (a3, e3, d3) = answer_after(&invs[0], Some(&firsts[0]), 9, 2, T0.plus_hours(3));
    store.record_answer(&a3, &e3, &d3).await.unwrap();
    store.settle_counters().await.unwrap();
    let counters = store.campaign_counters(&c.id).await.unwrap();
    assert_eq!(counters.invited, 4);
    assert_eq!(counters.tally, crate::nps::Tally { promoters: 2, passives: 1, detractors: 0 });
    let from_rows = crate::report::build_report(&store.campaign_rows(&c.id).await.unwrap()).total;
    assert_eq!((from_rows.promoters, from_rows.passives, from_rows.detractors), (2, 1, 0), "counters agree with the rows");
    let rows = store.campaign_rows(&c.id).await.unwrap();
    let counted = Aggregates::from_buckets(store.counter_buckets(&c.id, &View::Everything.prefixes()).await.unwrap());
    assert_eq!(counted, Aggregates::from_rows(&c, &rows), "every bucket (weeks, segments, drivers) agrees with the rows");
    assert_eq!(counted.segment("segment", "retail").map(|s| (s.invited, s.tally.promoters)), Some((4, 2)));
    assert_eq!(counted.driver("ease").answers, 3);
    // A page reads only its buckets: the overview no segment values, a segment page one field's.
    let overview = store.counter_buckets(&c.id, &View::Overview.prefixes()).await.unwrap();
    assert!(overview.contains_key(TOTAL) && overview.keys().any(|b| b.starts_with("week")));
    assert!(!overview.keys().any(|b| b.starts_with("seg") || b.starts_with("driver")), "{:?}", overview.keys());
    let overview = Aggregates::from_buckets(overview);
    assert!(overview.dimensions().contains(&"segment".to_owned()), "the dimensions come without their values");
    let segments = Aggregates::from_buckets(store.counter_buckets(&c.id, &View::Segments("segment").prefixes()).await.unwrap());
    assert_eq!(segments.segments("segment").len(), 1);
    assert!(segments.segments("locale").is_empty(), "another field's values are not read");
    assert_eq!(store.campaign_counters(&CampaignId::parse("no-such").unwrap()).await.unwrap(), Default::default());
}

pub async fn opens_review_clickers_and_suppressions_count_each_person_once(store: &dyn Store) {
    let c = campaign("funnel");
    store.put_campaign(&c).await.unwrap();
    let invs: Vec<Invitation> = (40..43).map(|n| invitation(&c, n, T0)).collect();
    store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    assert!(store.record_open(&invs[0].id, &c.id, T0.plus_hours(1)).await.unwrap());
    assert!(!store.record_open(&invs[0].id, &c.id, T0.plus_hours(2)).await.unwrap(), "a second open is not counted");
    assert_eq!(store.invitation(&invs[0].id).await.unwrap().unwrap().opened_at, Some(T0.plus_hours(1)));
    assert!(!store.record_open(&InvitationId("no-such".into()), &c.id, T0).await.unwrap());
    store.record_review_click(&invs[0].id, "google", T0.plus_hours(2)).await.unwrap();
    store.record_review_click(&invs[0].id, "trustpilot", T0.plus_hours(3)).await.unwrap();
    // Suppressed by email, then by phone: one person, counted once.
    let keys = invs[1].contact.keys();
    store.suppress(&keys[0], SuppressionReason::Bounced, T0.plus_hours(4)).await.unwrap();
    store.suppress(&keys[1], SuppressionReason::Unsubscribed, T0.plus_hours(5)).await.unwrap();
    assert_eq!(store.invitation(&invs[1].id).await.unwrap().unwrap().suppressed, Some(SuppressionReason::Bounced));
    store.settle_counters().await.unwrap();
    let buckets = store.counter_buckets(&c.id, &View::Everything.prefixes()).await.unwrap();
    let total = buckets.get(TOTAL).cloned().unwrap_or_default();
    assert_eq!(total.get(OPENED), Some(&1));
    assert_eq!(total.get(REVIEW_CLICKERS), Some(&1));
    assert_eq!(total.get("bounced"), Some(&1));
    assert_eq!(total.get("unsubscribed").copied().unwrap_or(0), 0);
    let rows = store.campaign_rows(&c.id).await.unwrap();
    assert_eq!(Aggregates::from_buckets(buckets), Aggregates::from_rows(&c, &rows));
}

pub async fn cases_are_listed_by_owner_take_notes_and_close_once(store: &dyn Store) {
    let c = campaign("caselist");
    store.put_campaign(&c).await.unwrap();
    let invs: Vec<Invitation> = (50..53).map(|n| invitation(&c, n, T0)).collect();
    store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    let anna = Email::parse("anna@acme.example").unwrap();
    let bo = Email::parse("bo@acme.example").unwrap();
    for (inv, owner, due) in [(&invs[0], &anna, 48), (&invs[1], &bo, 24), (&invs[2], &anna, 12)] {
        store.open_case(&FollowUpCase::new(inv.id.clone(), c.id.clone(), Some(owner.clone()), T0, T0.plus_hours(due))).await.unwrap();
    }
    let ids = |list: Vec<FollowUpCase>| list.into_iter().map(|k| k.invitation_id).collect::<Vec<_>>();
    assert_eq!(ids(store.cases(&c.id, Some(&anna)).await.unwrap()), vec![invs[2].id.clone(), invs[0].id.clone()], "soonest due first");
    assert_eq!(store.cases(&c.id, None).await.unwrap().len(), 3);
    assert!(store.cases(&c.id, Some(&Email::parse("nobody@acme.example").unwrap())).await.unwrap().is_empty());

    let note = CaseNote { by: "anna@acme.example".into(), at: T0.plus_hours(1), text: "Called, <b>left</b> a message".into() };
    assert!(store.add_case_note(&invs[0].id, &note).await.unwrap());
    assert!(!store.add_case_note(&InvitationId("no-such".into()), &note).await.unwrap());
    let closure = CaseClosure { by: "anna@acme.example".into(), at: T0.plus_hours(2), outcome: "Refunded".into(), follow_up: None };
    assert!(store.close_case(&invs[0].id, &closure).await.unwrap());
    let later = CaseClosure { by: "bo@acme.example".into(), at: T0.plus_hours(3), outcome: "Other".into(), follow_up: None };
    assert!(!store.close_case(&invs[0].id, &later).await.unwrap(), "the first closure stands");
    let closed = store.case(&invs[0].id).await.unwrap().unwrap();
    assert_eq!(closed.status, CaseStatus::Closed);
    assert_eq!(closed.closed, Some(closure));
    assert_eq!(closed.notes, vec![note]);
    assert!(
        store.overdue_cases(T0.plus_hours(100), 1000).await.unwrap().iter().all(|k| k.invitation_id != invs[0].id),
        "a closed case never escalates"
    );
    let listed = store.cases(&c.id, Some(&anna)).await.unwrap();
    assert_eq!(listed.iter().find(|k| k.invitation_id == invs[0].id).map(|k| k.status), Some(CaseStatus::Closed));
}

/// Everything written to one campaign must be counted exactly: counters read equal the rows folded.
async fn assert_counters_match_rows(store: &dyn Store, campaign: &Campaign) {
    store.settle_counters().await.unwrap();
    let rows = store.campaign_rows(&campaign.id).await.unwrap();
    let counted = Aggregates::from_buckets(store.counter_buckets(&campaign.id, &View::Everything.prefixes()).await.unwrap());
    assert_eq!(counted, Aggregates::from_rows(campaign, &rows), "counters equal the rows");
}

/// Many writers on one campaign at the same moment (a burst of answers after a big send): every
/// answer, open, click and unsubscribe is stored and counted once. On DynamoDB the adapter's test
/// injects `TransactionConflict` cancellations, which DynamoDB Local never raises itself.
pub async fn concurrent_writers_on_one_campaign_lose_nothing_and_count_everything_once(store: &dyn Store) {
    let c = campaign("burst");
    store.put_campaign(&c).await.unwrap();
    let invs: Vec<Invitation> = (60..84).map(|n| invitation(&c, n, T0)).collect();
    let outcomes = store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == CreateOutcome::Created), "{outcomes:?}");
    let writes = invs.iter().enumerate().map(|(i, inv)| async move {
        let at = T0.plus_hours(1);
        store.record_open(&inv.id, &inv.campaign_id, at).await?;
        let (a, e, d) = answer(inv, (i % 11) as u8, 1, at);
        store.record_answer(&a, &e, &d).await?;
        if i % 3 == 0 {
            store.record_review_click(&inv.id, "google", at).await?;
        }
        if i % 5 == 0 {
            store.suppress(&inv.contact.keys()[0], SuppressionReason::Unsubscribed, at).await?;
        }
        Ok::<_, StoreError>(())
    });
    for result in futures_util::future::join_all(writes).await {
        result.expect("no write fails because another touched the same campaign");
    }
    let rows = store.campaign_rows(&c.id).await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.answer.is_some()).count(), invs.len(), "every answer stored");
    assert_counters_match_rows(store, &c).await;
    let total = store.campaign_counters(&c.id).await.unwrap();
    assert_eq!((total.invited, total.tally.answered()), (invs.len() as u64, invs.len() as u64));
}

/// The largest change the campaign file and the import allow (50 CRM properties, 5 drivers, 30
/// themes, an edit that moves every bucket) is written and counted whole: DynamoDB allows 100
/// operations in one transaction.
pub async fn the_largest_change_the_campaign_file_allows_is_stored_and_counted(store: &dyn Store) {
    let c = largest_campaign("largest");
    store.put_campaign(&c).await.unwrap();
    let inv = largest_invitation(&c, 1, T0);
    assert_eq!(store.create_invitations(std::slice::from_ref(&inv), T0.minus_days(90)).await.unwrap(), vec![CreateOutcome::Created]);
    let first = answer_touching_everything(&inv, 10, 1, None, T0.plus_hours(1));
    let change = Change::answer_recorded(&c, &inv, None, &first);
    store.record_answer(&first, &change.event, &change.deltas).await.unwrap();
    let edit = answer_touching_everything(&inv, 0, 2, Some(&first), T0.plus_hours(2));
    let change = Change::answer_recorded(&c, &inv, Some(&first), &edit);
    assert!(Change::touched_buckets([&change]) > 80, "the edit touches every bucket");
    store.record_answer(&edit, &change.event, &change.deltas).await.unwrap();
    assert_counters_match_rows(store, &c).await;
    let agg = Aggregates::from_buckets(store.counter_buckets(&c.id, &View::Everything.prefixes()).await.unwrap());
    assert_eq!(agg.themes().len(), 30);
    assert_eq!(agg.segment("prop:field49", "value 49 of 1").map(|s| s.tally.detractors), Some(1));
}

/// A CRM export often lists a person twice: in one batch, the second is throttled by the first.
pub async fn the_same_contact_twice_in_one_batch_is_invited_once(store: &dyn Store) {
    let c = campaign("twice");
    store.put_campaign(&c).await.unwrap();
    let first = invitation(&c, 1, T0);
    let mut again = invitation(&c, 2, T0);
    again.contact = first.contact.clone();
    let other = invitation(&c, 3, T0);
    let outcomes = store.create_invitations(&[first.clone(), again.clone(), other], T0.minus_days(90)).await.unwrap();
    assert_eq!(outcomes, vec![CreateOutcome::Created, CreateOutcome::Throttled, CreateOutcome::Created]);
    assert_eq!(store.invitation(&again.id).await.unwrap(), None);
    store.settle_counters().await.unwrap();
    assert_eq!(store.campaign_counters(&c.id).await.unwrap().invited, 2);
}

/// A launch chunk delivered twice (a queue redelivers, a crashed launch resumes): nobody is
/// invited twice, no second event is written, nothing is counted twice.
pub async fn a_redelivered_chunk_invites_nobody_twice_and_counts_nothing_twice(store: &dyn Store) {
    let c = campaign("redelivered");
    store.put_campaign(&c).await.unwrap();
    let chunk: Vec<Invitation> = (1..=30).map(|n| invitation(&c, n, T0)).collect();
    let first = store.create_invitations(&chunk, T0.minus_days(90)).await.unwrap();
    assert!(first.iter().all(|o| *o == CreateOutcome::Created));
    // The same rows again, as a redelivery would bring them: new tokens, the same ids.
    let mut redelivered = chunk.clone();
    for inv in &mut redelivered {
        inv.token = Token::from_random_bytes([0xab; 16]);
    }
    let second = store.create_invitations(&redelivered, T0.minus_days(90)).await.unwrap();
    assert!(second.iter().all(|o| *o == CreateOutcome::AlreadyCreated), "{second:?}");
    assert_eq!(store.invitation(&chunk[0].id).await.unwrap().map(|i| i.token), Some(chunk[0].token.clone()), "the first write stands");
    let events = store.pending_events(10_000).await.unwrap();
    let mine = events.iter().filter(|e| matches!(&e.kind, EventKind::InvitationCreated { invitation_id } if invitation_id.0.starts_with("redelivered-"))).count();
    assert_eq!(mine, chunk.len(), "one invitation event each");
    store.settle_counters().await.unwrap();
    assert_eq!(store.campaign_counters(&c.id).await.unwrap().invited, chunk.len() as u64);
}

/// Counting is idempotent: the same changes applied again (a stream batch delivered twice)
/// leave the counters equal to the rows.
pub async fn counters_equal_the_rows_after_a_replay(store: &dyn Store) {
    let c = campaign("replay");
    store.put_campaign(&c).await.unwrap();
    let invs: Vec<Invitation> = (1..=5).map(|n| invitation(&c, n, T0)).collect();
    store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    let mut changes: Vec<Change> = invs.iter().map(Change::invitation_created).collect();
    for (inv, score) in invs.iter().zip([10, 9, 7, 3, 0]) {
        let (a, e, d) = answer(inv, score, 1, T0.plus_hours(1));
        store.record_answer(&a, &e, &d).await.unwrap();
        changes.push(Change { event: e, campaign: c.id.clone(), deltas: d });
    }
    store.apply_counters(&changes).await.unwrap();
    assert_counters_match_rows(store, &c).await;
    assert_eq!(store.apply_counters(&changes).await.unwrap(), 0, "a replay counts nothing");
    store.apply_counters(&changes[..3]).await.unwrap();
    assert_counters_match_rows(store, &c).await;
}

/// A page of cases reads its invitations and answers together, in the order asked.
pub async fn invitations_with_answers_come_back_in_the_order_asked(store: &dyn Store) {
    let c = campaign("together");
    store.put_campaign(&c).await.unwrap();
    let invs: Vec<Invitation> = (1..=120).map(|n| invitation(&c, n, T0)).collect();
    store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    let (a, e, d) = answer(&invs[119], 4, 1, T0.plus_hours(1));
    store.record_answer(&a, &e, &d).await.unwrap();
    let mut ids: Vec<InvitationId> = invs.iter().rev().map(|i| i.id.clone()).collect();
    ids.insert(3, InvitationId("no-such".into()));
    let found = store.invitations_with_answers(&ids).await.unwrap();
    assert_eq!(found.len(), ids.len());
    assert_eq!(found[0].0.as_ref().map(|i| &i.id), Some(&invs[119].id));
    assert_eq!(found[0].1.as_ref().map(|a| a.score.value()), Some(4));
    assert_eq!(found[3], (None, None), "an unknown id has neither");
    assert_eq!(found[120].0.as_ref().map(|i| &i.id), Some(&invs[0].id));
    assert!(found[120].1.is_none());
}

/// A launch job is stored whole, and each chunk's result counts once however often it is recorded.
pub async fn a_launch_job_counts_each_chunk_once(store: &dyn Store) {
    use crate::launch::{ChunkResult, LaunchId, LaunchJob, LaunchState, SkipReason};
    let c = campaign("launch-job");
    let id = LaunchId::of(&c.id, b"email\na@x.example\n");
    let mut job = LaunchJob::new(id.clone(), c.id.clone(), "contacts.csv", T0);
    job.validated(3, 2, vec![crate::import::RowProblem { line: 9, reason: "no email or phone".into() }], 0);
    assert_eq!(store.create_launch(&job).await.unwrap(), job);
    assert_eq!(store.launch(&id).await.unwrap(), Some(job.clone()));
    let mut rival = job.clone();
    rival.source = "the same file, started twice at once".into();
    assert_eq!(store.create_launch(&rival).await.unwrap(), job, "the first start's job stands");
    let first = ChunkResult::from_outcomes(&[CreateOutcome::Created, CreateOutcome::Suppressed], 0);
    let after = store.record_launch_chunk(&id, 0, &first, T0.plus_hours(1)).await.unwrap().unwrap();
    assert_eq!((after.rows_processed, after.invited, after.skipped(SkipReason::Suppressed), after.state), (2, 1, 1, LaunchState::Running));
    let again = store.record_launch_chunk(&id, 0, &first, T0.plus_hours(2)).await.unwrap().unwrap();
    assert_eq!(again, after, "a chunk recorded twice counts once");
    let last = ChunkResult::from_outcomes(&[CreateOutcome::AlreadyCreated], 0);
    let done = store.record_launch_chunk(&id, 1, &last, T0.plus_hours(3)).await.unwrap().unwrap();
    assert_eq!((done.rows_processed, done.invited, done.state, done.finished_at), (3, 2, LaunchState::Done, Some(T0.plus_hours(3))));
    assert_eq!(store.launch(&id).await.unwrap(), Some(done.clone()));
    let mut later = LaunchJob::new(LaunchId::of(&c.id, b"a later file"), c.id.clone(), "later.csv", T0.plus_days(1));
    later.validated(0, 0, Vec::new(), 0);
    store.create_launch(&later).await.unwrap();
    assert_eq!(store.launches(&c.id, 10).await.unwrap(), vec![later.clone(), done], "the most recent first");
    assert_eq!(store.launches(&c.id, 1).await.unwrap(), vec![later]);
    assert!(store.launches(&CampaignId::parse("no-launches").unwrap(), 10).await.unwrap().is_empty());
    let unknown = LaunchId::of(&c.id, b"another file");
    assert_eq!(store.launch(&unknown).await.unwrap(), None);
    assert_eq!(store.record_launch_chunk(&unknown, 0, &last, T0).await.unwrap(), None);
}

/// A chunk given up on is recorded once, with why; the job fails once every chunk is in.
pub async fn a_chunk_given_up_on_fails_its_launch_once_every_chunk_is_in(store: &dyn Store) {
    use crate::launch::{ChunkFailure, ChunkResult, LaunchId, LaunchJob, LaunchState};
    let c = campaign("launch-failed");
    let id = LaunchId::of(&c.id, b"email\nfail@x.example\n");
    let mut job = LaunchJob::new(id.clone(), c.id.clone(), "contacts.csv", T0);
    job.validated(3, 2, Vec::new(), 0);
    store.create_launch(&job).await.unwrap();
    let failed = ChunkResult::failed(2, "storage refused the request: the table is missing");
    let after = store.record_launch_chunk(&id, 0, &failed, T0.plus_hours(1)).await.unwrap().unwrap();
    assert_eq!(after.state, LaunchState::Running, "the other chunk is still on its way");
    assert_eq!(after.failures, vec![ChunkFailure { chunk: 0, rows: 2, reason: "storage refused the request: the table is missing".into() }]);
    assert_eq!(store.record_launch_chunk(&id, 0, &failed, T0.plus_hours(2)).await.unwrap().unwrap(), after, "recorded once");
    let last = ChunkResult::from_outcomes(&[CreateOutcome::Created], 0);
    let done = store.record_launch_chunk(&id, 1, &last, T0.plus_hours(3)).await.unwrap().unwrap();
    assert_eq!((done.state, done.rows_processed, done.invited, done.finished_at), (LaunchState::Failed, 1, 1, Some(T0.plus_hours(3))));
    assert_eq!(store.launch(&id).await.unwrap(), Some(done));
    // A redrive writes the failed chunk after all: its result takes the failure's place, once.
    let redriven = ChunkResult::from_outcomes(&[CreateOutcome::Created, CreateOutcome::Suppressed], 0);
    let recovered = store.record_launch_chunk(&id, 0, &redriven, T0.plus_hours(4)).await.unwrap().unwrap();
    assert_eq!((recovered.state, recovered.rows_processed, recovered.invited, recovered.failures.len()), (LaunchState::Done, 3, 2, 0));
    assert_eq!(store.record_launch_chunk(&id, 0, &redriven, T0.plus_hours(5)).await.unwrap().unwrap(), recovered, "counted once");
    assert_eq!(store.launch(&id).await.unwrap(), Some(recovered));
}

/// A state changes only from the state its changer saw; a paused campaign's invitations wait,
/// each once, until they are released.
pub async fn a_paused_campaign_keeps_its_invitations_until_they_are_released(store: &dyn Store) {
    use crate::lifecycle::{CampaignState, CampaignStatus, Transition};
    let c = campaign("lifecycle");
    store.put_campaign(&c).await.unwrap();
    assert_eq!(store.campaign_status(&c.id).await.unwrap(), None, "never changed: active");
    let paused = CampaignStatus::default().after(Transition::Pause, T0, "Karin").unwrap();
    assert!(store.set_campaign_status(&c.id, &paused, CampaignState::Active).await.unwrap());
    assert_eq!(store.campaign_status(&c.id).await.unwrap(), Some(paused.clone()));
    let ended = CampaignStatus::default().after(Transition::End, T0, "Bo").unwrap();
    assert!(!store.set_campaign_status(&c.id, &ended, CampaignState::Active).await.unwrap(), "Karin paused it first");
    let resumed = paused.after(Transition::Resume, T0.plus_hours(1), "Bo").unwrap();
    assert!(store.set_campaign_status(&c.id, &resumed, CampaignState::Paused).await.unwrap());
    assert_eq!(store.campaign_status(&c.id).await.unwrap().map(|s| s.state), Some(CampaignState::Active));

    let invs: Vec<Invitation> = (1..=3).map(|n| invitation(&c, n, T0)).collect();
    store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    let mut ids: Vec<InvitationId> = invs.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    for id in ids.iter().rev() {
        store.hold_invitation(&c.id, id, T0).await.unwrap();
        store.hold_invitation(&c.id, id, T0.plus_hours(1)).await.unwrap();
    }
    assert_eq!(store.held_invitations(&c.id, 10).await.unwrap(), ids, "each once, in id order");
    assert_eq!(store.held_invitations(&c.id, 2).await.unwrap(), ids[..2].to_vec());
    assert_eq!(store.held_invitations_after(&c.id, &ids[1], 10).await.unwrap(), ids[2..].to_vec(), "a walk goes on after its last");
    assert!(store.held_invitations_after(&c.id, &ids[2], 10).await.unwrap().is_empty());
    store.release_invitation(&c.id, &ids[0]).await.unwrap();
    store.release_invitation(&c.id, &ids[0]).await.unwrap();
    assert_eq!(store.held_invitations(&c.id, 10).await.unwrap(), ids[1..].to_vec());
    assert!(store.held_invitations(&CampaignId::parse("lifecycle-other").unwrap(), 10).await.unwrap().is_empty());
}

/// A campaign saved from the workspace: with its change log, never over someone else's save.
pub async fn a_campaign_saved_from_the_workspace_keeps_its_change_log_and_refuses_a_stale_save(store: &dyn Store) {
    use crate::changelog::{CampaignChange, ChangeKind};
    let c = campaign("workspace-saved");
    let created = CampaignChange::new(ChangeKind::Created, 1, "Karin", T0, None, &c);
    assert!(store.save_campaign(&c, &created, None).await.unwrap());
    assert_eq!(store.campaign(&c.id).await.unwrap(), Some(c.clone()));
    assert!(!store.save_campaign(&c, &created, None).await.unwrap(), "revision 1 is taken");

    let mut renamed = c.clone();
    renamed.name = "Renamed".into();
    renamed.throttle_days = 30;
    let edit = CampaignChange::new(ChangeKind::Edited, 2, "Bo", T0.plus_hours(1), Some(&c), &renamed);
    let mut other = c.clone();
    other.name = "Someone else's".into();
    let stale = CampaignChange::new(ChangeKind::Edited, 2, "Åsa", T0.plus_hours(2), Some(&c), &other);
    assert!(store.save_campaign(&renamed, &edit, None).await.unwrap());
    assert!(!store.save_campaign(&other, &stale, None).await.unwrap(), "Bo took revision 2 first");
    assert_eq!(store.campaign(&c.id).await.unwrap().map(|c| c.name), Some("Renamed".to_owned()), "the stale save wrote nothing");

    let skipping = CampaignChange::new(ChangeKind::Edited, 9, "Åsa", T0.plus_hours(2), Some(&renamed), &other);
    assert!(!store.save_campaign(&other, &skipping, None).await.unwrap(), "a revision past a gap is no save's");
    let log = store.campaign_changes(&c.id, 10).await.unwrap();
    assert_eq!(log, vec![edit.clone(), created.clone()], "newest first, as written");
    assert_eq!(log[0].settings.iter().map(|s| s.setting.as_str()).collect::<Vec<_>>(), ["name", "throttle_days"]);
    assert_eq!(store.campaign_changes(&c.id, 1).await.unwrap(), vec![edit]);

    // A campaign put by a file launch has no log yet; creating one with its id is refused, and
    // its first workspace edit starts the log.
    let from_file = campaign("workspace-from-file");
    store.put_campaign(&from_file).await.unwrap();
    let duplicate = CampaignChange::new(ChangeKind::Duplicated { from: c.id.clone() }, 1, "Karin", T0, None, &from_file);
    assert!(!store.save_campaign(&from_file, &duplicate, None).await.unwrap(), "the id is taken");
    let first_edit = CampaignChange::new(ChangeKind::Edited, 1, "Karin", T0, Some(&from_file), &from_file);
    assert!(store.save_campaign(&from_file, &first_edit, None).await.unwrap());
    let missing = campaign("workspace-missing");
    let edit_of_nothing = CampaignChange::new(ChangeKind::Edited, 1, "Karin", T0, None, &missing);
    assert!(!store.save_campaign(&missing, &edit_of_nothing, None).await.unwrap(), "an edit needs its campaign");
    assert_eq!(store.campaign(&missing.id).await.unwrap(), None);
    assert!(store.campaign_changes(&missing.id, 10).await.unwrap().is_empty());

    // Made in the workspace, a campaign starts as a draft, in the same write.
    let drafted = campaign("workspace-draft");
    let draft = crate::lifecycle::CampaignStatus::draft(T0, "Karin");
    let made = CampaignChange::new(ChangeKind::Created, 1, "Karin", T0, None, &drafted);
    assert!(store.save_campaign(&drafted, &made, Some(&draft)).await.unwrap());
    assert_eq!(store.campaign_status(&drafted.id).await.unwrap(), Some(draft.clone()));
    let retry = CampaignChange::new(ChangeKind::Created, 2, "Karin", T0, None, &drafted);
    let active = crate::lifecycle::CampaignStatus::default();
    assert!(!store.save_campaign(&drafted, &retry, Some(&active)).await.unwrap(), "the id is taken");
    assert_eq!(store.campaign_status(&drafted.id).await.unwrap(), Some(draft), "and its state untouched");
}

/// A request that changes nothing else (a test mail) is one pending event, however often sent.
pub async fn a_request_is_one_pending_event_however_often_it_is_appended(store: &dyn Store) {
    let c = campaign("requests");
    let event = Event {
        id: format!("test-{}", c.id),
        at: T0,
        kind: EventKind::TestMailRequested {
            request_id: InvitationId(format!("test-{}", c.id)),
            campaign_id: c.id.clone(),
            locale: Locale::Sv,
            to: Email::parse("karin@acme.example").unwrap(),
            requested_by: "Karin".into(),
        },
    };
    let change = Change { event: event.clone(), campaign: c.id.clone(), deltas: Default::default() };
    assert!(store.append_event(&change).await.unwrap());
    assert!(!store.append_event(&change).await.unwrap(), "asked once");
    let pending: Vec<Event> = store.pending_events(10_000).await.unwrap().into_iter().filter(|e| e.id == event.id).collect();
    assert_eq!(pending, vec![event.clone()]);
    store.complete_event(&event.id, T0).await.unwrap();
    assert!(store.pending_events(10_000).await.unwrap().iter().all(|e| e.id != event.id));
    assert_eq!(store.count_events(std::slice::from_ref(&event)).await.unwrap(), 0, "counts nothing");
}

/// The last time each contact key was invited, for a dry run's throttle check.
pub async fn the_last_invitation_of_each_contact_key_is_known_without_writing(store: &dyn Store) {
    let c = campaign("last-invited");
    store.put_campaign(&c).await.unwrap();
    let first = invitation(&c, 1, T0);
    store.create_invitations(std::slice::from_ref(&first), T0.minus_days(90)).await.unwrap();
    let keys = first.contact.keys();
    let unknown = ContactKey::email(&Email::parse("never@last-invited.example").unwrap());
    let mut asked = keys.clone();
    asked.push(unknown.clone());
    let last = store.last_invited(&asked).await.unwrap();
    assert_eq!(keys.iter().map(|k| last.get(k).copied()).collect::<Vec<_>>(), vec![Some(T0); keys.len()]);
    assert!(!last.contains_key(&unknown));
    let later = campaign("last-invited-later");
    store.put_campaign(&later).await.unwrap();
    let again = invitation(&later, 1, T0.plus_days(100));
    let mut again = again;
    again.contact = first.contact.clone();
    store.create_invitations(std::slice::from_ref(&again), T0.plus_days(10)).await.unwrap();
    assert_eq!(store.last_invited(&keys).await.unwrap().get(&keys[0]).copied(), Some(T0.plus_days(100)), "the latest counts");
    assert!(store.last_invited(&[]).await.unwrap().is_empty());
}

/// Every page of rows, whole campaign or one owner's, in order.
async fn all_pages(store: &dyn Store, campaign: &CampaignId, owner: Option<&Email>, limit: usize) -> Vec<InvitationRow> {
    let (mut rows, mut after): (Vec<InvitationRow>, Option<RowCursor>) = (Vec::new(), None);
    for _ in 0..200 {
        let page = store.rows_page(RowQuery { owner, after: after.as_ref(), ..RowQuery::campaign(campaign, limit) }).await.unwrap();
        assert!(page.rows.len() <= limit, "a page holds at most its limit");
        rows.extend(page.rows);
        match page.next {
            Some(next) => after = Some(next),
            None => return rows,
        }
    }
    panic!("paging never reached the end");
}

/// Pages cover a campaign's rows once each, in invitation-id order, and an owner's pages hold only
/// that owner's rows; cases and launches stored beside them never show up as rows.
pub async fn pages_of_rows_cover_the_campaign_once_and_an_owner_sees_only_theirs(store: &dyn Store) {
    let c = campaign("paged");
    store.put_campaign(&c).await.unwrap();
    let owner = Email::parse("owner@acme.example").unwrap();
    let invs: Vec<Invitation> = (1..=25)
        .map(|n| {
            let mut inv = invitation(&c, n, T0.plus_hours(u32::from(n % 7)));
            if n % 3 == 0 {
                inv.contact.owner_email = Some(owner.clone());
            }
            inv
        })
        .collect();
    store.create_invitations(&invs, T0.minus_days(90)).await.unwrap();
    for inv in invs.iter().filter(|i| i.id.0.ends_with('0') || i.contact.owner_email.is_some()) {
        let (a, e, d) = answer(inv, 3, 1, T0.plus_days(1));
        store.record_answer(&a, &e, &d).await.unwrap();
    }
    let case = FollowUpCase::new(invs[2].id.clone(), c.id.clone(), Some(owner.clone()), T0.plus_days(1), T0.plus_days(3));
    store.open_case(&case).await.unwrap();
    let mut job = crate::launch::LaunchJob::new(crate::launch::LaunchId::of(&c.id, b"paged"), c.id.clone(), "paged.csv", T0);
    job.validated(0, 0, Vec::new(), 0);
    store.create_launch(&job).await.unwrap();
    let other = campaign("paged-other");
    store.put_campaign(&other).await.unwrap();
    store.create_invitations(&[invitation(&other, 1, T0)], T0.minus_days(90)).await.unwrap();

    let mut expected = store.campaign_rows(&c.id).await.unwrap();
    expected.sort_by(|x, y| x.invitation.id.cmp(&y.invitation.id));
    assert_eq!(expected.len(), 25);
    for limit in [1, 4, 100] {
        assert_eq!(all_pages(store, &c.id, None, limit).await, expected, "pages of {limit}");
    }
    let owned: Vec<InvitationRow> = expected.iter().filter(|r| r.invitation.contact.owner_email.as_ref() == Some(&owner)).cloned().collect();
    assert_eq!(owned.len(), 8);
    assert!(owned.iter().all(|r| r.answer.is_some()), "an owner's page carries the answers");
    for limit in [1, 3, 100] {
        assert_eq!(all_pages(store, &c.id, Some(&owner), limit).await, owned, "an owner's pages of {limit}");
    }
    let stranger = Email::parse("nobody@acme.example").unwrap();
    assert!(all_pages(store, &c.id, Some(&stranger), 10).await.is_empty());
    // A cursor typed into a URL only moves where reading starts.
    let typed = RowCursor::parse("zzzz").unwrap();
    let page = store.rows_page(RowQuery { after: Some(&typed), ..RowQuery::campaign(&c.id, 10) }).await.unwrap();
    assert!(page.rows.iter().all(|r| r.invitation.campaign_id == c.id));
    // Parts of an export: a page read ahead fixes each part's last id; reading the part after the
    // same cursor through that id gives the same rows, and the parts together every row once.
    let (mut parts, mut after): (Vec<InvitationRow>, Option<RowCursor>) = (Vec::new(), None);
    for _ in 0..50 {
        let ahead = store.rows_page(RowQuery { after: after.as_ref(), ..RowQuery::campaign(&c.id, 7) }).await.unwrap();
        let Some(last) = ahead.rows.last() else { break };
        let through = last.invitation.id.0.clone();
        let mut part = Vec::new();
        let mut cursor = after.clone();
        loop {
            let page = store.rows_page(RowQuery { after: cursor.as_ref(), through: Some(&through), ..RowQuery::campaign(&c.id, 3) }).await.unwrap();
            part.extend(page.rows);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(part, ahead.rows, "a part is what was read ahead");
        let exact = store.rows_page(RowQuery { after: after.as_ref(), through: Some(&through), ..RowQuery::campaign(&c.id, 7) }).await.unwrap();
        assert_eq!(exact.rows, ahead.rows);
        assert!(exact.next.is_none(), "a page that reaches the end of its part says so: a download needs no read more than its listing");
        parts.extend(part);
        match ahead.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(parts, expected, "the parts of an export cover the campaign once");
    let through = Some(expected[12].invitation.id.0.as_str());
    let owners_part = store.rows_page(RowQuery { owner: Some(&owner), through, ..RowQuery::campaign(&c.id, 100) }).await.unwrap();
    assert_eq!(owners_part.rows, owned.iter().filter(|r| r.invitation.id <= expected[12].invitation.id).cloned().collect::<Vec<_>>());
    assert!(owners_part.next.is_none(), "nothing follows the end of a part");
}

/// A person with two answer versions, a case with a note and a closure, a claimed send and an
/// unsubscribe: what an export finds, and what an erasure leaves.
async fn person_with_everything(store: &dyn Store, id: &str) -> (Campaign, Invitation, Answer) {
    let c = campaign(id);
    store.put_campaign(&c).await.expect("put campaign");
    let mut inv = invitation(&c, 1, T0);
    inv.contact.company = Some("Person 1 AB".into());
    inv.contact.properties.insert("customer_number".into(), format!("C-{id}"));
    store.create_invitations(&[inv.clone()], T0.minus_days(365)).await.expect("create");
    let (a1, e1, d1) = answer(&inv, 3, 1, T0.plus_hours(1));
    store.record_answer(&a1, &e1, &d1).await.unwrap();
    let (a2, e2, d2) = answer_after(&inv, Some(&a1), 2, 2, T0.plus_hours(2));
    store.record_answer(&a2, &e2, &d2).await.unwrap();
    store.open_case(&FollowUpCase::new(inv.id.clone(), c.id.clone(), None, T0.plus_hours(2), T0.plus_hours(50))).await.unwrap();
    let note = CaseNote { by: "anna@acme.example".into(), at: T0.plus_hours(3), text: "Called Person 1 about the delivery".into() };
    store.add_case_note(&inv.id, &note).await.unwrap();
    store.close_case(&inv.id, &CaseClosure { by: "anna@acme.example".into(), at: T0.plus_hours(4), outcome: "Refunded Person 1".into(), follow_up: None }).await.unwrap();
    store.claim_send(&format!("invitation:{}", inv.id), T0).await.unwrap();
    store.suppress(&ContactKey::email(inv.contact.email.as_ref().unwrap()), SuppressionReason::Unsubscribed, T0.plus_hours(5)).await.unwrap();
    store.settle_counters().await.unwrap();
    (c, inv, a2)
}

pub async fn a_person_is_found_with_every_answer_version_case_send_and_suppression(store: &dyn Store) {
    let (_, inv, latest) = person_with_everything(store, "person-export").await;
    let by_phone = vec![ContactKey::phone(inv.contact.phone.as_ref().unwrap())];
    assert_eq!(store.person_invitations(&by_phone).await.unwrap(), vec![inv.id.clone()], "found by phone alone");
    assert_eq!(store.person_invitations(&inv.contact.keys()).await.unwrap(), vec![inv.id.clone()], "once for both keys");
    let versions = store.answer_versions(&inv.id).await.unwrap();
    assert_eq!(versions.iter().map(|a| (a.version, a.score.value())).collect::<Vec<_>>(), vec![(1, 3), (2, 2)]);
    assert_eq!(versions.last(), Some(&latest));
    let suppressions = store.suppressions(&inv.contact.keys()).await.unwrap();
    assert_eq!(suppressions.iter().map(|s| (s.key.as_str().starts_with("email:"), s.reason)).collect::<Vec<_>>(), vec![(true, SuppressionReason::Unsubscribed)]);
    let claims = store.send_claims(&[format!("invitation:{}", inv.id), format!("thank_you:{}", inv.id)]).await.unwrap();
    assert_eq!(claims, vec![Some(T0), None]);
    assert!(store.person_invitations(&[ContactKey::email(&Email::parse("nobody@x.example").unwrap())]).await.unwrap().is_empty());
}

pub async fn an_erased_persons_open_case_is_closed_and_never_escalates(store: &dyn Store) {
    let (c, inv) = seeded(store, "person-erase-case").await;
    store.open_case(&FollowUpCase::new(inv.id.clone(), c.id.clone(), None, T0, T0.plus_hours(48))).await.unwrap();
    assert!(store.erase_invitation(&inv.id, T0.plus_hours(1)).await.unwrap());
    let case = store.case(&inv.id).await.unwrap().unwrap();
    assert_eq!(case.status, CaseStatus::Closed);
    assert!(case.is_erased());
    assert!(store.overdue_cases(T0.plus_days(30), 10_000).await.unwrap().iter().all(|k| k.invitation_id != inv.id));
}

pub async fn an_erased_person_leaves_anonymous_rows_the_same_counters_and_only_a_hashed_suppression(store: &dyn Store) {
    let (c, inv, _) = person_with_everything(store, "person-erase").await;
    let every_bucket = View::Everything.prefixes();
    let counters_before = store.counter_buckets(&c.id, &every_bucket).await.unwrap();
    let named = format!("seg\u{1f}prop:customer_number\u{1f}C-{}", c.id);
    assert!(counters_before.contains_key(&named), "the CRM value names a bucket before");
    let keys = inv.contact.keys();
    assert!(!store.erase_invitation(&InvitationId("no-such".into()), T0).await.unwrap());
    assert!(store.erase_invitation(&inv.id, T0.plus_days(1)).await.unwrap());
    assert_eq!(store.forget_contact_keys(&keys, T0.plus_days(1)).await.unwrap(), 2);
    store.purge_erased().await.unwrap();

    assert_eq!(store.invitation_by_token(&inv.token).await.unwrap(), None, "the link answers as an unknown token does");
    let row = store.invitation(&inv.id).await.unwrap().expect("the row stays");
    assert_eq!((row.contact.email.as_ref(), row.contact.phone.as_ref(), row.contact.first_name.as_ref()), (None, None, None));
    assert_eq!(row.erased_at, Some(T0.plus_days(1)));
    assert_eq!(row.contact.segment, inv.contact.segment, "breakdowns stay");
    assert!(store.answer_versions(&inv.id).await.unwrap().iter().all(|a| a.comment.is_none()), "no version keeps the comment");
    assert_eq!(store.answer(&inv.id).await.unwrap().map(|a| (a.score.value(), a.comment)), Some((2, None)));
    let case = store.case(&inv.id).await.unwrap().unwrap();
    assert!(case.notes.is_empty() && case.closed.as_ref().is_some_and(|k| !k.outcome.contains("Person")));
    let late_note = CaseNote { by: "anna@acme.example".into(), at: T0.plus_days(1), text: "About Person 1 again".into() };
    assert!(!store.add_case_note(&inv.id, &late_note).await.unwrap(), "nothing more is written about an erased person");
    let (late, late_event, late_deltas) = answer_after(&inv, store.answer(&inv.id).await.unwrap().as_ref(), 9, 3, T0.plus_days(1));
    assert!(matches!(store.record_answer(&late, &late_event, &late_deltas).await, Err(StoreError::Conflict)), "an answer that raced the erasure is refused");
    assert!(store.person_invitations(&keys).await.unwrap().is_empty(), "nothing leads back to the person");
    assert!(store.suppressions(&keys).await.unwrap().is_empty(), "the address itself is off the list");
    assert!(store.last_invited(&keys).await.unwrap().is_empty(), "and off the throttle");
    let hashed: Vec<ContactKey> = {
        let key = store.erasure_key().await.unwrap();
        keys.iter().map(|k| key.hash(k)).collect()
    };
    let reasons: Vec<SuppressionReason> = store.suppressions(&hashed).await.unwrap().into_iter().map(|s| s.reason).collect();
    assert_eq!(reasons, vec![SuppressionReason::Unsubscribed, SuppressionReason::Erased], "the reason it had, else erased");
    store.settle_counters().await.unwrap();
    let counters_after = store.counter_buckets(&c.id, &every_bucket).await.unwrap();
    assert_eq!(counters_after.get(TOTAL), counters_before.get(TOTAL), "the totals do not move");
    for kept in ["seg\u{1f}segment\u{1f}retail", "dims"] {
        assert_eq!(counters_after.get(kept), counters_before.get(kept), "nor the breakdowns the row keeps: {kept}");
    }
    assert!(!counters_after.contains_key(&named), "no bucket is named by the erased CRM value");
    let erased_value = "seg\u{1f}prop:customer_number\u{1f}(erased)";
    assert_eq!(counters_after.get(erased_value), counters_before.get(&named), "the person counts under (erased) instead");
    assert!(!counters_after.keys().any(|b| b.contains("Person 1 AB")), "nor by the company");
    assert_counters_match_rows(store, &c).await;

    // A relaunch of the same person, by address or by phone, invites nobody.
    let other = campaign("person-erase-again");
    store.put_campaign(&other).await.unwrap();
    let mut again = invitation(&other, 1, T0.plus_days(400));
    again.contact = inv.contact.clone();
    let mut by_phone = invitation(&other, 2, T0.plus_days(400));
    by_phone.contact.email = None;
    by_phone.contact.phone = inv.contact.phone.clone();
    assert_eq!(store.create_invitations(&[again, by_phone], T0.plus_days(399)).await.unwrap(), vec![CreateOutcome::Suppressed; 2]);
    assert!(store.is_suppressed(&keys).await.unwrap());
    // A late bounce of the old address does not put it back on the list.
    assert!(!store.suppress(&keys[0], SuppressionReason::Bounced, T0.plus_days(2)).await.unwrap());
    assert!(store.suppressions(&keys).await.unwrap().is_empty());
    store.reminder_sent(&inv.id, 1, Some(T0.plus_days(5))).await.unwrap();
    assert!(store.due_reminders(T0.plus_days(6), 10_000).await.unwrap().iter().all(|i| i.id != inv.id), "an erased invitation is never due");

    // Erasing again changes nothing.
    assert!(store.erase_invitation(&inv.id, T0.plus_days(2)).await.unwrap());
    assert_eq!(store.forget_contact_keys(&keys, T0.plus_days(2)).await.unwrap(), 0);
    assert_eq!(store.invitation(&inv.id).await.unwrap().unwrap().erased_at, Some(T0.plus_days(1)));
    store.settle_counters().await.unwrap();
    assert_eq!(store.counter_buckets(&c.id, &every_bucket).await.unwrap(), counters_after, "erasing again moves nothing");
}

pub async fn the_audit_log_pages_newest_first_and_loses_no_entry_written_at_the_same_moment(store: &dyn Store) {
    use crate::audit::{AuditAction, AuditEntry};
    // Other cases share the store: count only this case's entries.
    let marker = "audit-contract";
    let mut written = Vec::new();
    for n in 0..7u64 {
        // Two entries in each millisecond: the order within it is the order written.
        let entry = AuditEntry::new(Timestamp::from_millis(T0.millis() + (n / 2) as i64), "Karin", AuditAction::CampaignEdited, &format!("{marker}-{n}"), Some("10.0.0.1"));
        store.append_audit(&entry).await.unwrap();
        written.push(entry);
    }
    let mut read = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = store.audit_log(before.as_deref(), 3).await.unwrap();
        assert!(page.entries.len() <= 3);
        read.extend(page.entries.into_iter().filter(|e| e.subject.starts_with(marker)));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    written.reverse();
    assert_eq!(read, written, "newest first, each once");
}

pub async fn an_account_is_stored_once_per_name_and_a_change_over_a_newer_one_is_refused(store: &dyn Store) {
    use crate::accounts::{Account, Role};
    let name = "Contract Karin";
    let karin = Account::new(name, Role::Admin, None, None, None, "a sign-in token of contract length").unwrap();
    assert!(store.put_account(&karin).await.unwrap(), "a new name is stored");
    assert!(!store.put_account(&karin).await.unwrap(), "the same name again is not");
    let stored = store.account(name).await.unwrap().expect("stored");
    assert_eq!(stored.version, 1);
    assert!(stored.has_token("a sign-in token of contract length"), "the hash survives the round trip");
    let mut signed_out = stored.clone();
    signed_out.generation += 1;
    assert!(store.put_account(&signed_out).await.unwrap());
    let mut stale = stored.clone();
    stale.role = Role::Viewer;
    assert!(!store.put_account(&stale).await.unwrap(), "a change made from an older copy is refused");
    let now = store.account(name).await.unwrap().unwrap();
    assert_eq!((now.version, now.generation, now.role), (2, 1, Role::Admin));
    assert!(store.accounts().await.unwrap().iter().any(|a| a.name == name && a.version == 2));
    assert_eq!(store.account("Nobody").await.unwrap(), None);
}

pub async fn a_clients_wrong_sign_ins_are_kept_between_requests_until_cleared(store: &dyn Store) {
    use crate::accounts::SignInFailures;
    let client = "203.0.113.7-contract";
    assert_eq!(store.sign_in_failures(client).await.unwrap(), None);
    let mut record = None;
    for n in 0..7 {
        record = Some(SignInFailures::after_failure(store.sign_in_failures(client).await.unwrap(), T0.plus_hours(0)));
        store.set_sign_in_failures(client, record.as_ref()).await.unwrap();
        assert_eq!(store.sign_in_failures(client).await.unwrap().map(|r| r.failures), Some(n + 1));
    }
    assert_eq!(store.sign_in_failures(client).await.unwrap(), record);
    assert!(store.sign_in_failures("another-client").await.unwrap().is_none(), "each client its own count");
    store.set_sign_in_failures(client, None).await.unwrap();
    assert_eq!(store.sign_in_failures(client).await.unwrap(), None);
}

pub async fn retention_finds_the_old_invitations_not_erased_yet_oldest_first(store: &dyn Store) {
    let c = campaign("retention");
    store.put_campaign(&c).await.unwrap();
    let old: Vec<Invitation> = (1..=3).map(|n| invitation(&c, n, T0.plus_days(u32::from(n)))).collect();
    let recent = invitation(&c, 9, T0.plus_days(100));
    store.create_invitations(&old, T0.minus_days(400)).await.unwrap();
    store.create_invitations(&[recent.clone()], T0.minus_days(400)).await.unwrap();
    let other = campaign("retention-other");
    store.put_campaign(&other).await.unwrap();
    store.create_invitations(&[invitation(&other, 1, T0)], T0.minus_days(400)).await.unwrap();
    let cutoff = T0.plus_days(50);
    let ids = |list: &[Invitation]| list.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    assert_eq!(store.invitations_to_retain(&c.id, cutoff, 10).await.unwrap(), ids(&old), "oldest first, this campaign only");
    assert_eq!(store.invitations_to_retain(&c.id, cutoff, 2).await.unwrap(), ids(&old[..2]));
    assert!(store.erase_invitation(&old[0].id, T0.plus_days(60)).await.unwrap());
    assert_eq!(store.invitations_to_retain(&c.id, cutoff, 10).await.unwrap(), ids(&old[1..]), "an erased one is not found again");
    assert!(store.invitations_to_retain(&c.id, T0, 10).await.unwrap().is_empty());
}

fn webhook_endpoint(url: &str) -> crate::webhooks::WebhookEndpoint {
    crate::webhooks::WebhookEndpoint {
        url: crate::webhooks::WebhookUrl::parse(url).expect("valid"),
        secret: crate::webhooks::WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid"),
        events: crate::webhooks::WebhookEvent::ALL.into_iter().collect(),
    }
}

pub async fn a_webhook_delivery_is_queued_once_and_due_until_it_is_delivered(store: &dyn Store) {
    use crate::webhooks::{AttemptOutcome, DeliveryState, WebhookDelivery, WebhookEvent};
    let c = campaign("webhook-queue");
    let endpoint = webhook_endpoint("https://crm.example/a");
    let inv = InvitationId("webhook-queue-1".into());
    let first = WebhookDelivery::new(&c.id, &endpoint, WebhookEvent::ResponseCreated, "answer-1-1", &inv, 1, T0);
    let second = WebhookDelivery::new(&c.id, &endpoint, WebhookEvent::CaseOpened, "answer-1-1", &inv, 0, T0.plus_millis(5));
    assert_eq!(store.enqueue_webhooks(&[first.clone(), second.clone()]).await.unwrap(), 2);
    assert_eq!(store.enqueue_webhooks(std::slice::from_ref(&first)).await.unwrap(), 0, "the same event handled twice queues once");
    let ours = |found: Vec<WebhookDelivery>| found.into_iter().filter(|d| d.campaign_id == c.id).collect::<Vec<_>>();
    assert!(ours(store.due_webhooks(T0.minus_days(1), 100).await.unwrap()).is_empty(), "nothing is due before it was queued");
    assert_eq!(ours(store.due_webhooks(T0.plus_hours(1), 100).await.unwrap()), vec![first.clone(), second.clone()], "soonest first");
    let mut delivered = first.clone();
    delivered.record(AttemptOutcome { at: T0.plus_millis(10), status: Some(204), millis: 12, error: None });
    store.save_webhook(&delivered).await.unwrap();
    assert_eq!(ours(store.due_webhooks(T0.plus_hours(1), 100).await.unwrap()), vec![second.clone()], "a delivered one is due no more");
    assert_eq!(store.webhook(&c.id, &first.id).await.unwrap().map(|d| d.state), Some(DeliveryState::Delivered));
    assert_eq!(store.webhook(&c.id, "msg_nothing").await.unwrap(), None);
}

pub async fn a_failed_delivery_is_due_again_after_its_back_off_and_the_log_lists_newest_first(store: &dyn Store) {
    use crate::webhooks::{AttemptOutcome, DeliveryState, EndpointHealth, WebhookDelivery, WebhookEvent};
    let c = campaign("webhook-retry");
    let endpoint = webhook_endpoint("https://crm.example/b");
    let deliveries: Vec<WebhookDelivery> = (0..3)
        .map(|n| WebhookDelivery::new(&c.id, &endpoint, WebhookEvent::ResponseCreated, &format!("answer-{n}-1"), &InvitationId(format!("webhook-retry-{n}")), 1, T0.plus_millis(n)))
        .collect();
    store.enqueue_webhooks(&deliveries).await.unwrap();
    let mut failed = deliveries[0].clone();
    failed.record(AttemptOutcome { at: T0.plus_millis(100), status: Some(500), millis: 30, error: None });
    assert_eq!(failed.state, DeliveryState::Pending);
    store.save_webhook(&failed).await.unwrap();
    let due_ids = |found: Vec<WebhookDelivery>| found.into_iter().filter(|d| d.campaign_id == c.id).map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(due_ids(store.due_webhooks(T0.plus_millis(200), 100).await.unwrap()), vec![deliveries[1].id.clone(), deliveries[2].id.clone()]);
    let retry_at = failed.next_at.unwrap();
    assert!(due_ids(store.due_webhooks(retry_at, 100).await.unwrap()).contains(&failed.id), "due again at its retry time");
    let log = store.webhook_log(&c.id, 10).await.unwrap();
    assert_eq!(log.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), deliveries.iter().rev().map(|d| d.id.clone()).collect::<Vec<_>>(), "newest first");
    assert_eq!(log[2].last.as_ref().and_then(|l| l.status), Some(500), "the log shows the last attempt");
    assert_eq!(store.webhook_log(&c.id, 2).await.unwrap().len(), 2);
    assert_eq!(store.webhook_health(&c.id, &endpoint.key()).await.unwrap(), None);
    let health = EndpointHealth { consecutive_failures: 3, disabled_at: None };
    store.set_webhook_health(&c.id, &endpoint.key(), &health).await.unwrap();
    assert_eq!(store.webhook_health(&c.id, &endpoint.key()).await.unwrap(), Some(health));
}

fn update_for(c: &Campaign, author: &str, at: Timestamp) -> crate::updates::CampaignUpdate {
    use crate::updates::*;
    let texts = std::collections::BTreeMap::from([(c.locales[0], UpdateText { subject: "You said, we did".into(), body: "Faster deliveries: https://acme.example/news".into() })]);
    let audience = UpdateAudience { groups: [crate::nps::Group::Detractor].into_iter().collect(), non_respondents: true, ..Default::default() };
    CampaignUpdate::compose(UpdateId::new(&c.id, author, at), c, author, at, texts, audience).expect("a valid update")
}

pub async fn an_update_is_stored_once_and_its_progress_is_kept(store: &dyn Store) {
    use crate::updates::{Exclusion, UpdateProgress};
    let c = campaign("update-store");
    store.put_campaign(&c).await.unwrap();
    let first = update_for(&c, "anna", T0);
    let second = update_for(&c, "bo", T0.plus_hours(1));
    assert!(store.create_update(&first).await.unwrap());
    let mut changed = first.clone();
    changed.author = "mallory".into();
    assert!(!store.create_update(&changed).await.unwrap(), "a form posted twice is one update");
    assert!(store.create_update(&second).await.unwrap());
    assert_eq!(store.update(&c.id, &first.id).await.unwrap(), Some(first.clone()), "the first write stands");
    let listed = store.updates(&c.id, 10).await.unwrap();
    assert_eq!(listed.iter().map(|u| u.id.clone()).collect::<Vec<_>>(), vec![second.id.clone(), first.id.clone()], "newest first");
    assert_eq!(store.updates(&c.id, 1).await.unwrap().len(), 1);
    assert!(store.updates(&CampaignId::parse("update-none").unwrap(), 10).await.unwrap().is_empty());
    let progress = UpdateProgress {
        cursor: Some("somewhere".into()),
        sent: 12,
        excluded: [(Exclusion::Suppressed, 2), (Exclusion::AlreadyIncluded, 1)].into_iter().collect(),
        failed: 1,
        finished_at: Some(T0.plus_hours(2)),
    };
    store.save_update_progress(&c.id, &first.id, &progress).await.unwrap();
    let read = store.update(&c.id, &first.id).await.unwrap().expect("stored");
    assert_eq!(read.progress, progress);
    assert_eq!(read.texts, first.texts, "saving progress keeps the update");
    let other = crate::updates::UpdateId::new(&c.id, "nobody", T0);
    assert_eq!(store.update(&c.id, &other).await.unwrap(), None);
}

pub async fn a_recorded_contact_throttles_the_next_invitation_and_never_moves_back(store: &dyn Store) {
    let c = campaign("update-throttle");
    store.put_campaign(&c).await.unwrap();
    let inv = invitation(&c, 1, T0);
    let keys = inv.contact.keys();
    store.record_contact(&keys, T0).await.unwrap();
    store.record_contact(&keys, T0.minus_days(30)).await.unwrap();
    let last = store.last_invited(&keys).await.unwrap();
    assert_eq!(last.get(&keys[0]), Some(&T0), "an earlier contact never moves the time back");
    let within = invitation(&c, 1, T0.plus_days(10));
    let outcome = store.create_invitations(std::slice::from_ref(&within), T0.plus_days(10).minus_days(90)).await.unwrap();
    assert_eq!(outcome, vec![CreateOutcome::Throttled], "the update counts toward the throttle window");
    let after = invitation(&c, 1, T0.plus_days(91));
    let outcome = store.create_invitations(std::slice::from_ref(&after), T0.plus_days(1)).await.unwrap();
    assert_eq!(outcome, vec![CreateOutcome::Created]);
    store.record_contact(&keys, T0.plus_days(100)).await.unwrap();
    assert_eq!(store.last_invited(&keys).await.unwrap().get(&keys[1]), Some(&T0.plus_days(100)), "by phone too");
}

pub async fn a_persons_first_click_on_an_update_link_counts_once(store: &dyn Store) {
    let c = campaign("update-click");
    store.put_campaign(&c).await.unwrap();
    let update = update_for(&c, "anna", T0);
    let inv = InvitationId("update-click-1".into());
    let click = |link, at| Change::update_link_clicked(&inv, &c.id, &update.id, link, at);
    assert!(store.append_event(&click(0, T0.plus_hours(1))).await.unwrap());
    assert!(!store.append_event(&click(0, T0.plus_hours(2))).await.unwrap(), "a second click of the same link");
    assert!(store.append_event(&click(1, T0.plus_hours(2))).await.unwrap());
    store.settle_counters().await.unwrap();
    let bucket = crate::updates::clicks_bucket(&update.id);
    let buckets = store.counter_buckets(&c.id, std::slice::from_ref(&bucket)).await.unwrap();
    let fields = buckets.get(&bucket).cloned().unwrap_or_default();
    assert_eq!(fields.get("link0"), Some(&1));
    assert_eq!(fields.get("link1"), Some(&1));
    let pending = store.pending_events(1000).await.unwrap();
    assert!(pending.iter().any(|e| matches!(&e.kind, EventKind::UpdateLinkClicked { link: 1, .. })), "the event reads back");
}

/// Expands to one `#[tokio::test]` per contract case. `$make` is an async function returning a
/// fresh store; cases use distinct campaign ids, so a shared backing table is fine too.
#[macro_export]
macro_rules! store_contract_tests {
    ($make:path) => {
        $crate::store_contract_tests!(@cases $make;
            campaigns_round_trip,
            invitations_are_found_by_token_and_by_id,
            a_contact_invited_within_the_window_is_throttled_and_later_invited_again,
            throttling_recognises_a_contact_by_phone_alone,
            suppression_covers_every_campaign_and_is_idempotent,
            creating_an_invitation_leaves_one_pending_event_until_completed,
            answers_are_versioned_and_a_stale_write_conflicts,
            a_send_is_claimed_once_until_released,
            sends_claimed_in_a_batch_are_claimed_once_each,
            suppression_is_checked_for_many_people_at_once,
            reminders_are_due_only_for_the_unanswered_after_the_delay,
            a_case_opens_once_and_is_overdue_until_escalated,
            campaign_rows_carry_answers_suppression_and_review_clicks,
            counters_follow_invitations_and_group_changes_atomically,
            opens_review_clickers_and_suppressions_count_each_person_once,
            cases_are_listed_by_owner_take_notes_and_close_once,
            concurrent_writers_on_one_campaign_lose_nothing_and_count_everything_once,
            the_largest_change_the_campaign_file_allows_is_stored_and_counted,
            the_same_contact_twice_in_one_batch_is_invited_once,
            a_redelivered_chunk_invites_nobody_twice_and_counts_nothing_twice,
            counters_equal_the_rows_after_a_replay,
            invitations_with_answers_come_back_in_the_order_asked,
            a_launch_job_counts_each_chunk_once,
            pages_of_rows_cover_the_campaign_once_and_an_owner_sees_only_theirs,
            a_chunk_given_up_on_fails_its_launch_once_every_chunk_is_in,
            a_paused_campaign_keeps_its_invitations_until_they_are_released,
            the_last_invitation_of_each_contact_key_is_known_without_writing,
            a_campaign_saved_from_the_workspace_keeps_its_change_log_and_refuses_a_stale_save,
            a_request_is_one_pending_event_however_often_it_is_appended,
            a_person_is_found_with_every_answer_version_case_send_and_suppression,
            an_erased_person_leaves_anonymous_rows_the_same_counters_and_only_a_hashed_suppression,
            an_erased_persons_open_case_is_closed_and_never_escalates,
            the_audit_log_pages_newest_first_and_loses_no_entry_written_at_the_same_moment,
            an_account_is_stored_once_per_name_and_a_change_over_a_newer_one_is_refused,
            a_clients_wrong_sign_ins_are_kept_between_requests_until_cleared,
            retention_finds_the_old_invitations_not_erased_yet_oldest_first,
            a_webhook_delivery_is_queued_once_and_due_until_it_is_delivered,
            a_failed_delivery_is_due_again_after_its_back_off_and_the_log_lists_newest_first,
            an_update_is_stored_once_and_its_progress_is_kept,
            a_recorded_contact_throttles_the_next_invitation_and_never_moves_back,
            a_persons_first_click_on_an_update_link_counts_once,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make().await;
                $crate::contract::$case(&store).await;
            }
        )*
    };
}
