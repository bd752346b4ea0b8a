//! Campaign results: the funnel and NPS with its margin, overall and per segment.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::nps::{Estimate, Tally};
use crate::ports::InvitationRow;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub sent: u64,
    pub answered: u64,
    pub response_rate: Option<f64>,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    pub nps: Option<f64>,
    pub margin_95: Option<f64>,
    pub small_sample: bool,
    pub unsubscribed: u64,
    pub review_clicks: u64,
}

#[derive(Debug, Default)]
struct Accumulator {
    sent: u64,
    tally: Tally,
    unsubscribed: u64,
    review_clicks: u64,
}

impl Accumulator {
    fn add(&mut self, row: &InvitationRow) {
        self.sent += 1;
        if let Some(a) = &row.answer {
            self.tally.add(a.score);
        }
        self.unsubscribed += u64::from(row.suppressed);
        self.review_clicks += u64::from(row.review_clicks);
    }

    fn figures(&self) -> Figures {
        let answered = self.tally.answered();
        let estimate: Option<Estimate> = self.tally.estimate();
        Figures {
            sent: self.sent,
            answered,
            response_rate: (self.sent > 0).then(|| answered as f64 / self.sent as f64),
            promoters: self.tally.promoters,
            passives: self.tally.passives,
            detractors: self.tally.detractors,
            nps: estimate.map(|e| e.nps),
            margin_95: estimate.map(|e| e.margin_95),
            small_sample: estimate.is_some_and(|e| e.small_sample),
            unsubscribed: self.unsubscribed,
            review_clicks: self.review_clicks,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub total: Figures,
    /// Dimension ("segment", "store", "owner", "touchpoint") → value → figures.
    pub by: BTreeMap<String, BTreeMap<String, Figures>>,
}

pub const DIMENSIONS: [&str; 4] = ["segment", "store", "owner", "touchpoint"];

pub fn build_report(rows: &[InvitationRow]) -> Report {
    let mut total = Accumulator::default();
    let mut by: BTreeMap<&str, BTreeMap<String, Accumulator>> = BTreeMap::new();
    for row in rows {
        total.add(row);
        let c = &row.invitation.contact;
        let values = [
            c.segment.clone(),
            c.store.clone(),
            c.owner_email.as_ref().map(|e| e.as_str().to_owned()),
            row.invitation.touchpoint.clone(),
        ];
        for (dimension, value) in DIMENSIONS.iter().zip(values) {
            let key = value.unwrap_or_else(|| "(none)".to_owned());
            by.entry(dimension).or_default().entry(key).or_default().add(row);
        }
    }
    Report {
        total: total.figures(),
        by: by
            .into_iter()
            .map(|(d, groups)| (d.to_owned(), groups.into_iter().map(|(k, acc)| (k, acc.figures())).collect()))
            .collect(),
    }
}

/// One respondent's answer, as a digest shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestEntry {
    pub invitation_id: crate::model::InvitationId,
    pub name: String,
    pub score: u8,
    pub comment: Option<String>,
    pub answered_at: crate::time::Timestamp,
}

/// A week of answers for one owner (or a whole campaign), with the week before for comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeeklyDigest {
    pub this_week: Tally,
    pub last_week: Tally,
    pub new_detractors: Vec<DigestEntry>,
    /// Three comments worth reading: detractors' first, then passives', then promoters', newest first.
    pub comments: Vec<DigestEntry>,
}

impl WeeklyDigest {
    pub fn is_empty(&self) -> bool {
        self.this_week.answered() == 0 && self.last_week.answered() == 0
    }
}

pub fn weekly_digest<'a>(rows: impl IntoIterator<Item = &'a InvitationRow>, at: crate::time::Timestamp) -> WeeklyDigest {
    let week_start = at.minus_days(7);
    let previous_start = at.minus_days(14);
    let mut digest = WeeklyDigest { this_week: Tally::default(), last_week: Tally::default(), new_detractors: Vec::new(), comments: Vec::new() };
    let mut this_week = Vec::new();
    for row in rows {
        let Some(answer) = &row.answer else { continue };
        if answer.answered_at > week_start && answer.answered_at <= at {
            digest.this_week.add(answer.score);
            let c = &row.invitation.contact;
            let name = Some(c.full_name()).filter(|n| !n.is_empty()).unwrap_or_else(|| {
                c.email.as_ref().map(|e| e.as_str().to_owned()).or_else(|| c.phone.as_ref().map(|p| p.as_str().to_owned())).unwrap_or_default()
            });
            this_week.push(DigestEntry {
                invitation_id: answer.invitation_id.clone(),
                name,
                score: answer.score.value(),
                comment: answer.comment.clone(),
                answered_at: answer.answered_at,
            });
        } else if answer.answered_at > previous_start && answer.answered_at <= week_start {
            digest.last_week.add(answer.score);
        }
    }
    this_week.sort_by(|a, b| b.answered_at.cmp(&a.answered_at));
    digest.new_detractors = this_week.iter().filter(|e| e.score <= 6).cloned().collect();
    let mut commented: Vec<&DigestEntry> = this_week.iter().filter(|e| e.comment.is_some()).collect();
    commented.sort_by_key(|e| match crate::nps::Score::new(e.score).map(|s| s.group()) {
        Ok(crate::nps::Group::Detractor) => 0,
        Ok(crate::nps::Group::Passive) => 1,
        _ => 2,
    });
    digest.comments = commented.into_iter().take(3).cloned().collect();
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::{Campaign, CampaignId};
    use crate::model::{Answer, Contact, Email, Invitation, InvitationId, Token};
    use crate::nps::Score;
    use crate::time::{Timestamp, DAY_MS};

    fn row(n: u8, score: Option<u8>, days_ago: i64, comment: Option<&str>, at: Timestamp) -> InvitationRow {
        let campaign = Campaign::from_toml("id = \"c\"\nname = \"n\"\ncompany = \"A\"\nsender_name = \"s\"\nsender_email = \"s@a.example\"\n").unwrap();
        let contact = Contact { email: Some(Email::parse(&format!("p{n}@x.example")).unwrap()), first_name: Some(format!("P{n}")), ..Contact::default() };
        let invitation = Invitation::new(InvitationId(format!("i{n}")), Token::from_random_bytes([n; 16]), &campaign, contact, at).unwrap();
        let answered_at = Timestamp::from_millis(at.millis() - days_ago * DAY_MS);
        let answer = score.map(|s| Answer {
            invitation_id: invitation.id.clone(),
            campaign_id: CampaignId::parse("c").unwrap(),
            score: Score::new(s).unwrap(),
            comment: comment.map(str::to_owned),
            contact_ok: false,
            ratings: Default::default(),
            version: 1,
            first_answered_at: answered_at,
            answered_at,
        });
        InvitationRow { invitation, answer, suppressed: false, review_clicks: 0 }
    }

    #[test]
    fn a_digest_counts_this_week_against_last_and_puts_detractor_comments_first() {
        let at = Timestamp::from_millis(100 * DAY_MS);
        let rows = vec![
            row(1, Some(10), 1, Some("Great"), at),
            row(2, Some(3), 2, Some("Slow"), at),
            row(3, Some(8), 3, Some("Fine"), at),
            row(4, Some(0), 9, Some("Old news"), at),
            row(5, None, 0, None, at),
            row(6, Some(9), 20, None, at),
            row(7, Some(9), 4, Some("Nice staff"), at),
        ];
        let d = weekly_digest(&rows, at);
        assert_eq!(d.this_week, Tally { promoters: 2, passives: 1, detractors: 1 });
        assert_eq!(d.last_week, Tally { promoters: 0, passives: 0, detractors: 1 });
        assert_eq!(d.new_detractors.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), vec!["P2"]);
        let comments: Vec<_> = d.comments.iter().map(|e| e.comment.as_deref().unwrap()).collect();
        assert_eq!(comments, vec!["Slow", "Fine", "Great"]);
        assert!(!d.is_empty());
        assert!(weekly_digest(&rows[4..5], at).is_empty());
    }
}
