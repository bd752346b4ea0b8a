//! The rules of the loop, as pure functions of the campaign, the record and the time.

use crate::campaign::{Campaign, ReviewAudience, ReviewSite, Reminders};
use crate::model::{Answer, Invitation};
use crate::nps::Group;
use crate::time::Timestamp;

/// Anyone invited at or after this instant was surveyed too recently to be asked again.
pub fn throttle_since(campaign: &Campaign, now: Timestamp) -> Timestamp {
    now.minus_days(campaign.throttle_days)
}

pub fn first_reminder_at(reminders: &Reminders, invited_at: Timestamp) -> Option<Timestamp> {
    (reminders.max > 0).then(|| invited_at.plus_days(reminders.delay_days))
}

/// After reminder number `sent` went out at `now`, when the next one is due, if any: evenly
/// spaced by the delay, and never closer than the delay to the one just sent (a late run of the
/// schedule must not send two reminders at once).
pub fn next_reminder_at(reminders: &Reminders, invited_at: Timestamp, sent: u32, now: Timestamp) -> Option<Timestamp> {
    (sent < reminders.max).then(|| invited_at.plus_days(reminders.delay_days * (sent + 1)).max(now.plus_days(reminders.delay_days)))
}

/// Reminders go only to those who have neither answered nor unsubscribed.
pub fn reminder_is_due(invitation: &Invitation, suppressed: bool, now: Timestamp) -> bool {
    invitation.answered_at.is_none()
        && !suppressed
        && invitation.next_reminder_at.is_some_and(|due| due <= now)
}

/// Why someone must follow up an answer: a low score, or a respondent above the threshold who
/// asked to be contacted. The two read differently and have their own deadlines: a promoter who
/// would like a call is not a complaint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpKind {
    Detractor,
    ContactRequest,
}

impl FollowUpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpKind::Detractor => "detractor",
            FollowUpKind::ContactRequest => "contact_request",
        }
    }
}

/// Scores at or below the threshold are detractor follow-ups (whether or not they ticked "contact
/// me"); anyone else who asks to be contacted is a contact request; everyone else needs none.
pub fn follow_up_kind(campaign: &Campaign, answer: &Answer) -> Option<FollowUpKind> {
    if answer.score.value() <= campaign.alert_threshold {
        Some(FollowUpKind::Detractor)
    } else if answer.contact_ok {
        Some(FollowUpKind::ContactRequest)
    } else {
        None
    }
}

pub fn needs_follow_up(campaign: &Campaign, answer: &Answer) -> bool {
    follow_up_kind(campaign, answer).is_some()
}

pub fn follow_up_due(campaign: &Campaign, kind: FollowUpKind, opened_at: Timestamp) -> Timestamp {
    opened_at.plus_hours(match kind {
        FollowUpKind::Detractor => campaign.follow_up_hours,
        FollowUpKind::ContactRequest => campaign.contact_request_hours,
    })
}

/// Whether this respondent may be shown a site. Promoters see every site; others only the sites
/// whose audience is everyone, which is how review gating is avoided.
pub fn may_invite_to_review(site: &ReviewSite, answer: &Answer) -> bool {
    match site.audience {
        ReviewAudience::Everyone => true,
        ReviewAudience::PromotersOnly => answer.score.group() == Group::Promoter,
    }
}

pub fn review_sites_for<'a>(campaign: &'a Campaign, answer: &Answer) -> Vec<&'a ReviewSite> {
    campaign.review_sites.iter().filter(|s| may_invite_to_review(s, answer)).collect()
}

/// Promoters get a review invitation of their own; everyone else only sees eligible sites
/// mentioned beside the thank-you.
pub fn gets_review_push(answer: &Answer) -> bool {
    answer.score.group() == Group::Promoter
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::CampaignId;
    use crate::model::InvitationId;
    use crate::nps::Score;

    fn campaign() -> Campaign {
        Campaign::from_toml(
            r#"
            id = "c"
            name = "n"
            company = "Acme"
            sender_name = "s"
            sender_email = "s@acme.example"
            alert_threshold = 4
            reminders = { delay_days = 3, max = 2 }
            [[review_sites]]
            key = "google"
            name = "Google"
            url = "https://g.example"
            [[review_sites]]
            key = "own"
            name = "Our shop"
            url = "https://own.example"
            audience = "promoters_only"
            "#,
        )
        .unwrap()
    }

    fn answer(score: u8, contact_ok: bool) -> Answer {
        Answer {
            invitation_id: InvitationId("i".into()),
            campaign_id: CampaignId::parse("c").unwrap(),
            score: Score::new(score).unwrap(),
            comment: None,
            contact_ok,
            ratings: Default::default(),
            version: 1,
            first_answered_at: Timestamp::from_millis(0),
            answered_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn alert_threshold_is_configurable_and_contact_requests_always_alert() {
        let c = campaign();
        assert!(needs_follow_up(&c, &answer(0, false)));
        assert!(needs_follow_up(&c, &answer(4, false)));
        assert!(!needs_follow_up(&c, &answer(5, false)), "5 is above this campaign's threshold");
        assert!(needs_follow_up(&c, &answer(10, true)));
    }

    #[test]
    fn a_promoter_asking_to_be_contacted_is_a_contact_request_with_its_own_deadline() {
        let c = campaign();
        assert_eq!(follow_up_kind(&c, &answer(3, true)), Some(FollowUpKind::Detractor), "a low score is a detractor case, tick or not");
        assert_eq!(follow_up_kind(&c, &answer(9, true)), Some(FollowUpKind::ContactRequest));
        assert_eq!(follow_up_kind(&c, &answer(9, false)), None);
        let t = Timestamp::from_millis(0);
        assert_eq!(follow_up_due(&c, FollowUpKind::Detractor, t), t.plus_hours(48));
        assert_eq!(follow_up_due(&c, FollowUpKind::ContactRequest, t), t.plus_hours(120), "the default for a request is softer");
    }

    #[test]
    fn detractors_see_only_sites_open_to_everyone() {
        let c = campaign();
        let keys = |a: &Answer| review_sites_for(&c, a).iter().map(|s| s.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&answer(2, false)), vec!["google"]);
        assert_eq!(keys(&answer(8, false)), vec!["google"]);
        assert_eq!(keys(&answer(9, false)), vec!["google", "own"]);
        assert!(gets_review_push(&answer(9, false)));
        assert!(!gets_review_push(&answer(8, false)));
    }

    #[test]
    fn reminders_are_spaced_by_the_delay_up_to_the_maximum() {
        let r = campaign().reminders;
        let t0 = Timestamp::from_millis(0);
        assert_eq!(first_reminder_at(&r, t0), Some(t0.plus_days(3)));
        assert_eq!(next_reminder_at(&r, t0, 1, t0.plus_days(3)), Some(t0.plus_days(6)));
        assert_eq!(next_reminder_at(&r, t0, 1, t0.plus_days(10)), Some(t0.plus_days(13)), "a late run keeps the spacing");
        assert_eq!(next_reminder_at(&r, t0, 2, t0.plus_days(6)), None);
        assert_eq!(first_reminder_at(&Reminders { delay_days: 3, max: 0 }, t0), None);
    }

    #[test]
    fn follow_up_deadline_counts_hours_from_the_answer() {
        let c = campaign();
        let t0 = Timestamp::from_millis(1_000);
        assert_eq!(follow_up_due(&c, FollowUpKind::Detractor, t0), t0.plus_hours(48));
    }

    #[test]
    fn throttle_window_reaches_back_the_configured_days() {
        let c = campaign();
        let now = Timestamp::from_millis(100 * crate::time::DAY_MS);
        assert_eq!(throttle_since(&c, now), Timestamp::from_millis(10 * crate::time::DAY_MS));
    }
}
