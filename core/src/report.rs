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
