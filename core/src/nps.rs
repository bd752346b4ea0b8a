//! Net Promoter Score maths: groups, the score, its 95 % margin and the change between periods.

use serde::{Deserialize, Serialize};

/// An answer on the 0–10 scale. Zero is a real answer, never "empty".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Score(u8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    #[error("choose a score from 0 to 10")]
    Missing,
    #[error("a score is a whole number from 0 to 10, not {0:?}")]
    OutOfRange(String),
}

impl Score {
    pub const MAX: u8 = 10;

    pub fn new(value: u8) -> Result<Self, ScoreError> {
        if value <= Self::MAX {
            Ok(Self(value))
        } else {
            Err(ScoreError::OutOfRange(value.to_string()))
        }
    }

    /// Parses user input such as a form field or a query parameter.
    pub fn parse(input: &str) -> Result<Self, ScoreError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(ScoreError::Missing);
        }
        trimmed
            .parse::<u8>()
            .ok()
            .filter(|v| *v <= Self::MAX)
            .map(Self)
            .ok_or_else(|| ScoreError::OutOfRange(truncate_for_message(trimmed)))
    }

    pub fn value(self) -> u8 {
        self.0
    }

    pub fn group(self) -> Group {
        match self.0 {
            9..=10 => Group::Promoter,
            7..=8 => Group::Passive,
            _ => Group::Detractor,
        }
    }
}

fn truncate_for_message(input: &str) -> String {
    input.chars().take(12).collect()
}

impl TryFrom<u8> for Score {
    type Error = ScoreError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Score> for u8 {
    fn from(score: Score) -> u8 {
        score.0
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Promoter,
    Passive,
    Detractor,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Promoter => "promoter",
            Group::Passive => "passive",
            Group::Detractor => "detractor",
        }
    }
}

/// Counts of answers by group; everything else is derived from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
}

/// NPS with its uncertainty, unrounded: rounding happens only at display.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub nps: f64,
    /// Half-width of the 95 % interval, in NPS points.
    pub margin_95: f64,
    /// Whether the adjusted Wald form was used because the sample is small.
    pub small_sample: bool,
}

/// Below this many answers the plain Wald interval is too optimistic.
pub const SMALL_SAMPLE: u64 = 30;
const Z_95: f64 = 1.96;

impl Tally {
    pub fn add(&mut self, score: Score) {
        match score.group() {
            Group::Promoter => self.promoters += 1,
            Group::Passive => self.passives += 1,
            Group::Detractor => self.detractors += 1,
        }
    }

    pub fn answered(&self) -> u64 {
        self.promoters + self.passives + self.detractors
    }

    /// 100 × (promoters − detractors) ÷ answered; `None` before the first answer.
    pub fn nps(&self) -> Option<f64> {
        let n = self.answered();
        (n > 0).then(|| 100.0 * (self.promoters as f64 - self.detractors as f64) / n as f64)
    }

    /// Var = 100² × (p + d − (p − d)²) ÷ n.
    pub fn variance_wald(&self) -> Option<f64> {
        let n = self.answered();
        (n > 0).then(|| variance(self.promoters as f64, self.detractors as f64, n as f64))
    }

    /// Adjusted Wald: n + 3 answers, promoters + ¾, detractors + ¾.
    pub fn variance_adjusted_wald(&self) -> Option<f64> {
        let n = self.answered();
        (n > 0).then(|| {
            variance(
                self.promoters as f64 + 0.75,
                self.detractors as f64 + 0.75,
                n as f64 + 3.0,
            )
        })
    }

    pub fn estimate(&self) -> Option<Estimate> {
        let nps = self.nps()?;
        let small_sample = self.answered() < SMALL_SAMPLE;
        let var = if small_sample {
            self.variance_adjusted_wald()?
        } else {
            self.variance_wald()?
        };
        Some(Estimate { nps, margin_95: Z_95 * var.sqrt(), small_sample })
    }
}

fn variance(promoters: f64, detractors: f64, n: f64) -> f64 {
    let p = promoters / n;
    let d = detractors / n;
    100.0 * 100.0 * (p + d - (p - d).powi(2)) / n
}

/// The change between two periods and whether it exceeds its own 95 % margin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Change {
    pub delta: f64,
    pub margin_95: f64,
    pub significant: bool,
}

pub fn change(before: &Tally, after: &Tally) -> Option<Change> {
    let delta = after.nps()? - before.nps()?;
    // SE = √(SE₁² + SE₂²)
    let se = (before.variance_wald()? + after.variance_wald()?).sqrt();
    let margin_95 = Z_95 * se;
    Some(Change { delta, margin_95, significant: delta.abs() > margin_95 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(promoters: u64, passives: u64, detractors: u64) -> Tally {
        Tally { promoters, passives, detractors }
    }

    #[test]
    fn score_zero_is_a_real_detractor_answer() {
        let zero = Score::parse("0").unwrap();
        assert_eq!(zero.value(), 0);
        assert_eq!(zero.group(), Group::Detractor);
        let mut t = Tally::default();
        t.add(zero);
        assert_eq!(t.answered(), 1);
        assert_eq!(t.nps(), Some(-100.0));
    }

    #[test]
    fn group_boundaries_follow_the_method() {
        let groups: Vec<Group> = (0..=10).map(|v| Score::new(v).unwrap().group()).collect();
        assert_eq!(groups[6], Group::Detractor);
        assert_eq!(groups[7], Group::Passive);
        assert_eq!(groups[8], Group::Passive);
        assert_eq!(groups[9], Group::Promoter);
        assert_eq!(groups[10], Group::Promoter);
    }

    #[test]
    fn parse_rejects_what_is_not_a_score() {
        assert_eq!(Score::parse(""), Err(ScoreError::Missing));
        assert_eq!(Score::parse("  "), Err(ScoreError::Missing));
        assert!(Score::parse("11").is_err());
        assert!(Score::parse("-1").is_err());
        assert!(Score::parse("7.5").is_err());
        assert!(Score::parse("ten").is_err());
        assert_eq!(Score::parse(" 7 ").unwrap().value(), 7);
    }

    #[test]
    fn course_example_47_minus_22_is_25() {
        assert_eq!(tally(47, 31, 22).nps(), Some(25.0));
    }

    #[test]
    fn nps_of_no_answers_is_unknown_not_zero() {
        assert_eq!(Tally::default().nps(), None);
        assert_eq!(Tally::default().estimate(), None);
    }

    #[test]
    fn margin_for_100_answers_half_promoters_fifth_detractors_is_about_15() {
        let t = tally(50, 30, 20);
        let e = t.estimate().unwrap();
        assert_eq!(e.nps, 30.0);
        assert!(!e.small_sample);
        assert!((e.margin_95 - 15.31).abs() < 0.01, "margin was {}", e.margin_95);
    }

    #[test]
    fn small_samples_use_the_adjusted_wald_form() {
        let t = tally(3, 1, 1);
        let e = t.estimate().unwrap();
        assert!(e.small_sample);
        // n' = 8, p' = 3.75/8, d' = 1.75/8
        let (p, d, n) = (3.75_f64 / 8.0, 1.75_f64 / 8.0, 8.0_f64);
        let expected = 1.96 * (10_000.0 * (p + d - (p - d).powi(2)) / n).sqrt();
        assert!((e.margin_95 - expected).abs() < 1e-9);
        assert!(e.margin_95 > 1.96 * t.variance_wald().unwrap().sqrt() * 0.5);
    }

    #[test]
    fn unanimous_small_sample_still_has_a_margin() {
        // Plain Wald would claim certainty (zero variance) for 4 promoters out of 4.
        let t = tally(4, 0, 0);
        assert_eq!(t.variance_wald(), Some(0.0));
        assert!(t.estimate().unwrap().margin_95 > 10.0);
    }

    #[test]
    fn change_is_significant_only_beyond_its_margin() {
        let before = tally(50, 30, 20);
        let small_move = tally(52, 29, 19);
        let big_move = tally(80, 15, 5);
        assert!(!change(&before, &small_move).unwrap().significant);
        let c = change(&before, &big_move).unwrap();
        assert_eq!(c.delta, 45.0);
        assert!(c.significant);
    }
}
