//! Running totals a dashboard reads instead of scanning answers.
//!
//! Every change that moves a figure (an invitation, an answer or its edit, a first page open, a
//! first review click, a suppression) is turned here into counter deltas, grouped by bucket;
//! the stores add them in the same transaction as the change. Because the same functions also
//! fold a list of rows ([`Aggregates::from_rows`]), an owner's view computed from their own rows
//! and an admin's view read from counters cannot disagree.

use std::collections::BTreeMap;

use crate::campaign::Campaign;
use crate::model::{Answer, Invitation, SuppressionReason};
use crate::nps::{Group, Tally};
use crate::ports::InvitationRow;

/// Field name → value (or delta).
pub type Fields = BTreeMap<String, i64>;

pub const TOTAL: &str = "total";
/// Separates the parts of a bucket name; CRM values may contain any printable character.
const SEP: char = '\u{1f}';

/// Which CRM fields have values: one field per dimension, counting invitations. Lets a page
/// list the dimensions without reading every value's bucket.
pub const DIMENSIONS: &str = "dims";
pub const INVITED: &str = "invited";
pub const OPENED: &str = "opened";
pub const REVIEW_CLICKERS: &str = "review_clickers";

pub fn group_field(group: Group) -> &'static str {
    match group {
        Group::Promoter => "promoters",
        Group::Passive => "passives",
        Group::Detractor => "detractors",
    }
}

pub fn suppression_field(reason: SuppressionReason) -> &'static str {
    reason.as_str()
}

/// The buckets a page needs, as name prefixes: what a store reads for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View<'a> {
    /// `total` alone: the campaign list.
    Totals,
    /// `total`, `dims` and the weeks: the overview.
    Overview,
    /// `total`, `dims` and one dimension's values.
    Segments(&'a str),
    Drivers,
    Themes,
    Everything,
}

impl View<'_> {
    pub fn prefixes(&self) -> Vec<String> {
        match self {
            View::Totals => vec![TOTAL.to_owned()],
            View::Overview => vec![TOTAL.to_owned(), DIMENSIONS.to_owned(), format!("week{SEP}")],
            View::Segments(dim) => vec![TOTAL.to_owned(), DIMENSIONS.to_owned(), format!("seg{SEP}{dim}{SEP}")],
            View::Drivers => vec![format!("driver{SEP}")],
            View::Themes => vec![format!("theme{SEP}")],
            View::Everything => vec![String::new()],
        }
    }
}

fn week_bucket(week: &str) -> String {
    format!("week{SEP}{week}")
}
fn segment_bucket(dimension: &str, value: &str) -> String {
    format!("seg{SEP}{dimension}{SEP}{value}")
}
fn driver_bucket(key: &str) -> String {
    format!("driver{SEP}{key}")
}
fn theme_bucket(name: &str) -> String {
    format!("theme{SEP}{name}")
}

/// Counter changes by bucket. Zero deltas are dropped, so an edit that changes nothing counted
/// writes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CounterDeltas(BTreeMap<String, Fields>);

impl CounterDeltas {
    pub fn add(&mut self, bucket: &str, field: &str, delta: i64) {
        if delta == 0 {
            return;
        }
        let fields = self.0.entry(bucket.to_owned()).or_default();
        let value = fields.entry(field.to_owned()).or_default();
        *value += delta;
        if *value == 0 {
            fields.remove(field);
            if fields.is_empty() {
                self.0.remove(bucket);
            }
        }
    }

    pub fn single(bucket: &str, field: &str, delta: i64) -> Self {
        let mut d = Self::default();
        d.add(bucket, field, delta);
        d
    }

    pub fn merge(&mut self, other: &CounterDeltas) {
        for (bucket, fields) in &other.0 {
            for (field, delta) in fields {
                self.add(bucket, field, *delta);
            }
        }
    }

    pub fn buckets(&self) -> impl Iterator<Item = (&str, &Fields)> {
        self.0.iter().map(|(b, f)| (b.as_str(), f))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same changes undone.
    pub fn negated(&self) -> Self {
        let mut d = Self::default();
        for (bucket, fields) in &self.0 {
            for (field, delta) in fields {
                d.add(bucket, field, -delta);
            }
        }
        d
    }
}

/// The CRM fields an invitation is segmented by: the named ones and every custom property.
pub fn segment_values(invitation: &Invitation) -> Vec<(String, String)> {
    let c = &invitation.contact;
    let named = [
        ("store", c.store.clone()),
        ("owner", c.owner_email.as_ref().map(|e| e.as_str().to_owned())),
        ("segment", c.segment.clone()),
        ("touchpoint", invitation.touchpoint.clone()),
        ("company", c.company.clone()),
        ("locale", Some(invitation.locale.code().to_owned())),
    ];
    let mut values: Vec<(String, String)> =
        named.into_iter().filter_map(|(dim, value)| value.filter(|v| !v.trim().is_empty()).map(|v| (dim.to_owned(), v))).collect();
    values.extend(c.properties.iter().filter(|(_, v)| !v.trim().is_empty()).map(|(k, v)| (format!("prop:{k}"), v.clone())));
    values
}

/// What creating an invitation adds.
pub fn invitation_deltas(invitation: &Invitation) -> CounterDeltas {
    let mut d = CounterDeltas::single(TOTAL, INVITED, 1);
    for (dim, value) in segment_values(invitation) {
        d.add(&segment_bucket(&dim, &value), INVITED, 1);
        d.add(DIMENSIONS, &dim, 1);
    }
    d
}

/// Lower-cased words of a text, split at anything that is not a letter or digit.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// The themes a comment touches. A keyword matches a word that begins with it, which covers the
/// plural and definite forms of en/sv/da simply ("pris" finds "priset", "priserna"; "dyr" finds
/// "dyrt", "dyre"; "wait" finds "waiting").
pub fn themes_of<'a>(themes: &'a BTreeMap<String, Vec<String>>, comment: &str) -> Vec<&'a str> {
    let words: Vec<String> = words(comment).collect();
    themes
        .iter()
        .filter(|(_, keywords)| {
            keywords.iter().any(|k| {
                let k = k.trim().to_lowercase();
                words.iter().any(|w| w.starts_with(&k))
            })
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

fn answer_contribution(campaign: &Campaign, invitation: &Invitation, answer: &Answer, sign: i64, d: &mut CounterDeltas) {
    let group = group_field(answer.score.group());
    d.add(TOTAL, group, sign);
    d.add(&week_bucket(&answer.first_answered_at.iso_week()), group, sign);
    for (dim, value) in segment_values(invitation) {
        d.add(&segment_bucket(&dim, &value), group, sign);
    }
    let y = i64::from(answer.score.value());
    for (key, rating) in &answer.ratings {
        let x = i64::from(*rating);
        let bucket = driver_bucket(key);
        for (field, value) in [("n", 1), ("sx", x), ("sy", y), ("sxx", x * x), ("syy", y * y), ("sxy", x * y)] {
            d.add(&bucket, field, sign * value);
        }
    }
    if let Some(comment) = &answer.comment {
        for theme in themes_of(&campaign.themes, comment) {
            d.add(&theme_bucket(theme), group, sign);
        }
    }
}

/// What replacing `previous` (if any) with `answer` changes.
pub fn answer_deltas(campaign: &Campaign, invitation: &Invitation, previous: Option<&Answer>, answer: &Answer) -> CounterDeltas {
    let mut d = CounterDeltas::default();
    if let Some(previous) = previous {
        answer_contribution(campaign, invitation, previous, -1, &mut d);
    }
    answer_contribution(campaign, invitation, answer, 1, &mut d);
    d
}

/// Counters of one campaign (or of one owner's rows), read by bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregates {
    buckets: BTreeMap<String, Fields>,
    /// Folded from only this many rows: a request's read budget ran out before the last row.
    partial: Option<usize>,
}

/// The path from invitation to action, for one campaign or one owner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Funnel {
    pub invited: u64,
    pub opened: u64,
    pub answered: u64,
    pub review_clickers: u64,
    pub unsubscribed: u64,
    pub bounced: u64,
    pub complained: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub value: String,
    pub invited: u64,
    pub tally: Tally,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DriverStat {
    pub key: String,
    pub answers: u64,
    pub mean: Option<f64>,
    /// Pearson correlation of the rating with the score; `None` when either does not vary.
    pub correlation: Option<f64>,
}

impl Aggregates {
    /// Zero fields and empty buckets are dropped, so stored counters compare equal to rows.
    pub fn from_buckets(mut buckets: BTreeMap<String, Fields>) -> Self {
        buckets.retain(|_, fields| {
            fields.retain(|_, v| *v != 0);
            !fields.is_empty()
        });
        Self { buckets, partial: None }
    }

    /// Marks figures folded from the first `rows` rows only.
    pub fn partial_after(mut self, rows: usize) -> Self {
        self.partial = Some(rows);
        self
    }

    pub fn partial(&self) -> Option<usize> {
        self.partial
    }

    /// The same figures the counters hold, computed from rows (an owner's own contacts).
    pub fn from_rows<'a>(campaign: &Campaign, rows: impl IntoIterator<Item = &'a InvitationRow>) -> Self {
        let mut d = CounterDeltas::default();
        for row in rows {
            let inv = &row.invitation;
            d.merge(&invitation_deltas(inv));
            if let Some(answer) = &row.answer {
                d.merge(&answer_deltas(campaign, inv, None, answer));
            }
            if inv.opened_at.is_some() {
                d.add(TOTAL, OPENED, 1);
            }
            if row.review_clicks > 0 {
                d.add(TOTAL, REVIEW_CLICKERS, 1);
            }
            if let Some(reason) = inv.suppressed {
                d.add(TOTAL, suppression_field(reason), 1);
            }
        }
        Self { buckets: d.0, partial: None }
    }

    fn get(&self, bucket: &str, field: &str) -> u64 {
        self.buckets.get(bucket).and_then(|f| f.get(field)).copied().unwrap_or(0).max(0) as u64
    }

    fn tally_of(&self, bucket: &str) -> Tally {
        Tally {
            promoters: self.get(bucket, "promoters"),
            passives: self.get(bucket, "passives"),
            detractors: self.get(bucket, "detractors"),
        }
    }

    pub fn tally(&self) -> Tally {
        self.tally_of(TOTAL)
    }

    pub fn funnel(&self) -> Funnel {
        Funnel {
            invited: self.get(TOTAL, INVITED),
            opened: self.get(TOTAL, OPENED),
            answered: self.tally().answered(),
            review_clickers: self.get(TOTAL, REVIEW_CLICKERS),
            unsubscribed: self.get(TOTAL, "unsubscribed"),
            bounced: self.get(TOTAL, "bounced"),
            complained: self.get(TOTAL, "complained"),
        }
    }

    fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.buckets.keys().filter_map(move |b| b.strip_prefix(prefix).map(|rest| (b.as_str(), rest)))
    }

    /// NPS tallies by ISO week of the first answer, oldest first.
    pub fn weeks(&self) -> Vec<(String, Tally)> {
        let prefix = format!("week{SEP}");
        self.with_prefix(&prefix).map(|(bucket, week)| (week.to_owned(), self.tally_of(bucket))).collect()
    }

    /// The CRM fields that have at least one value, named fields first.
    pub fn dimensions(&self) -> Vec<String> {
        let mut dims: Vec<String> = self.buckets.get(DIMENSIONS).map(|f| f.keys().cloned().collect()).unwrap_or_default();
        dims.sort_by_key(|d| (d.starts_with("prop:"), d.clone()));
        dims
    }

    pub fn segments(&self, dimension: &str) -> Vec<Segment> {
        let prefix = format!("seg{SEP}{dimension}{SEP}");
        self.with_prefix(&prefix)
            .map(|(bucket, value)| Segment { value: value.to_owned(), invited: self.get(bucket, INVITED), tally: self.tally_of(bucket) })
            .collect()
    }

    pub fn segment(&self, dimension: &str, value: &str) -> Option<Segment> {
        let bucket = segment_bucket(dimension, value);
        self.buckets.contains_key(&bucket).then(|| Segment {
            value: value.to_owned(),
            invited: self.get(&bucket, INVITED),
            tally: self.tally_of(&bucket),
        })
    }

    pub fn driver(&self, key: &str) -> DriverStat {
        let f = |name: &str| self.buckets.get(&driver_bucket(key)).and_then(|b| b.get(name)).copied().unwrap_or(0) as f64;
        let (n, sx, sy, sxx, syy, sxy) = (f("n"), f("sx"), f("sy"), f("sxx"), f("syy"), f("sxy"));
        let mean = (n > 0.0).then(|| sx / n);
        let spread = (n * sxx - sx * sx) * (n * syy - sy * sy);
        let correlation = (n > 1.0 && spread > 0.0).then(|| (n * sxy - sx * sy) / spread.sqrt());
        DriverStat { key: key.to_owned(), answers: n.max(0.0) as u64, mean, correlation }
    }

    pub fn themes(&self) -> Vec<(String, Tally)> {
        let prefix = format!("theme{SEP}");
        self.with_prefix(&prefix).map(|(bucket, name)| (name.to_owned(), self.tally_of(bucket))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Contact, Email, InvitationId, Token};
    use crate::nps::Score;
    use crate::time::Timestamp;

    fn campaign() -> Campaign {
        Campaign::from_toml(
            "id = \"c\"\nname = \"n\"\ncompany = \"A\"\nsender_name = \"s\"\nsender_email = \"s@a.example\"\n\
             [[drivers]]\nkey = \"ease\"\nlabel = \"Ease\"\n\
             [themes]\nprice = [\"price\", \"pris\", \"dyr\"]\nstaff = [\"staff\", \"personal\"]\n",
        )
        .unwrap()
    }

    fn invitation(store: &str) -> Invitation {
        let contact = Contact {
            email: Some(Email::parse("p@x.example").unwrap()),
            store: Some(store.into()),
            properties: [("region".to_owned(), "Syd".to_owned())].into(),
            ..Contact::default()
        };
        Invitation::new(InvitationId("i".into()), Token::from_random_bytes([1; 16]), &campaign(), contact, Timestamp::from_millis(0))
            .unwrap()
    }

    fn answer(score: u8, rating: u8, comment: &str, version: u32) -> Answer {
        Answer {
            invitation_id: InvitationId("i".into()),
            campaign_id: campaign().id,
            score: Score::new(score).unwrap(),
            comment: Some(comment.into()),
            contact_ok: false,
            ratings: [("ease".to_owned(), rating)].into(),
            version,
            first_answered_at: Timestamp::from_millis(0),
            answered_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn an_edit_moves_every_counter_from_the_old_answer_to_the_new() {
        let (c, inv) = (campaign(), invitation("Malmö"));
        let first = answer(3, 2, "Priset var för högt", 1);
        let second = answer(9, 5, "Great staff", 2);
        let mut totals = invitation_deltas(&inv);
        totals.merge(&answer_deltas(&c, &inv, None, &first));
        totals.merge(&answer_deltas(&c, &inv, Some(&first), &second));
        let agg = Aggregates::from_buckets(totals.0.clone());
        assert_eq!(agg.tally(), Tally { promoters: 1, passives: 0, detractors: 0 });
        assert_eq!(agg.segment("store", "Malmö").unwrap().tally.promoters, 1);
        assert_eq!(agg.segment("prop:region", "Syd").unwrap().invited, 1);
        assert_eq!(
            agg.themes(),
            vec![("staff".to_owned(), Tally { promoters: 1, passives: 0, detractors: 0 })],
        );
        assert_eq!(agg.driver("ease").answers, 1);
        assert_eq!(agg.driver("ease").mean, Some(5.0));
    }

    #[test]
    fn an_edit_that_changes_nothing_counted_writes_nothing() {
        let (c, inv) = (campaign(), invitation("Lund"));
        let a = answer(8, 3, "ok", 1);
        let mut same = a.clone();
        same.version = 2;
        assert!(answer_deltas(&c, &inv, Some(&a), &same).is_empty());
    }

    #[test]
    fn keywords_match_word_beginnings_in_any_case() {
        let c = campaign();
        assert_eq!(themes_of(&c.themes, "DYRT och priserna"), vec!["price"]);
        assert_eq!(themes_of(&c.themes, "Personalen var trevlig"), vec!["staff"]);
        assert!(themes_of(&c.themes, "surprise").is_empty(), "a keyword inside a word is no match");
    }

    #[test]
    fn correlation_follows_ratings_that_rise_with_the_score() {
        let c = campaign();
        let inv = invitation("A");
        let mut d = CounterDeltas::default();
        for (score, rating) in [(2, 1), (5, 2), (7, 3), (9, 4), (10, 5)] {
            d.merge(&answer_deltas(&c, &inv, None, &answer(score, rating, "", 1)));
        }
        let stat = Aggregates::from_buckets(d.0).driver("ease");
        assert_eq!(stat.mean, Some(3.0));
        assert!(stat.correlation.unwrap() > 0.95, "{stat:?}");
        assert_eq!(Aggregates::default().driver("ease").correlation, None);
    }
}
