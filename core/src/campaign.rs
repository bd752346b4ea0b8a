//! A campaign: who asks, in which languages, which extra questions, and the rules of its loop.
//! Loaded from a TOML campaign file (documented in README.md) and validated once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::import::{header_key, ColumnTarget};
use crate::model::{Email, Locale};
use crate::nps::{Group, Score};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CampaignId(String);

impl CampaignId {
    /// Lower-case letters, digits and dashes, up to 64: it appears in URLs, keys and reports.
    pub fn parse(input: &str) -> Result<Self, CampaignError> {
        let ok = !input.is_empty() && input.len() <= 64 && input.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(CampaignError::Invalid(format!(
                "campaign id {:?} must be 1-64 lower-case letters, digits or dashes",
                input.chars().take(70).collect::<String>()
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CampaignId {
    type Error = CampaignError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<CampaignId> for String {
    fn from(c: CampaignId) -> String {
        c.0
    }
}
impl std::fmt::Display for CampaignId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rule a campaign breaks, and the setting it is about (the campaign file's key, or the
/// form's field for the two halves of `reminders`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// A mistake at a place in the file: a syntax error, an unknown key (a typo such as
    /// `throttle_dayz` would otherwise leave the default in force unnoticed), a wrong type.
    #[error("line {line} of the campaign file: {message}")]
    At { line: usize, message: String },
    #[error("the campaign file is not valid: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("the campaign could not be written as a file: {0}")]
    Write(#[source] toml::ser::Error),
}

/// Text in several languages; falls back to English, then to any language given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocalizedText {
    Same(String),
    PerLocale(BTreeMap<Locale, String>),
}

impl LocalizedText {
    pub fn get(&self, locale: Locale) -> &str {
        match self {
            LocalizedText::Same(s) => s,
            LocalizedText::PerLocale(map) => {
                map.get(&locale).or_else(|| map.get(&Locale::En)).or_else(|| map.values().next()).map(String::as_str).unwrap_or("")
            }
        }
    }
}

/// An optional rating on a 1–5 scale, lowest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Driver {
    pub key: String,
    pub label: LocalizedText,
}

pub const RATING_MAX: u8 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReviewAudience {
    /// Every respondent: what sites that forbid review gating (Trustpilot, Google) require.
    #[default]
    Everyone,
    PromotersOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSite {
    pub key: String,
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub audience: ReviewAudience,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reminders {
    #[serde(default = "default_reminder_delay")]
    pub delay_days: u32,
    #[serde(default = "default_reminder_count")]
    pub max: u32,
}

fn default_reminder_delay() -> u32 {
    4
}
fn default_reminder_count() -> u32 {
    1
}

impl Default for Reminders {
    fn default() -> Self {
        Self { delay_days: default_reminder_delay(), max: default_reminder_count() }
    }
}

/// Every key is known: the stored form is the file's, so it is refused alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub company: String,
    pub sender_name: String,
    pub sender_email: Email,
    #[serde(default = "default_locales")]
    pub locales: Vec<Locale>,
    /// The IANA zone every time people see is shown in (deadlines, digests, the dashboard, the
    /// export). Without one: the zone of the first locale's country (sv: Europe/Stockholm,
    /// da: Europe/Copenhagen), or UTC for English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<crate::time::Zone>,
    /// Hours and weekdays, on the campaign's clock, in which invitations, reminders and SMS go
    /// out; what falls outside waits until the window next opens. None: any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_window: Option<crate::time::SendWindow>,
    #[serde(default)]
    pub touchpoint: Option<String>,
    /// Replaces the group's standard follow-up question, per group.
    #[serde(default)]
    pub follow_up: BTreeMap<Group, LocalizedText>,
    #[serde(default)]
    pub drivers: Vec<Driver>,
    #[serde(default)]
    pub review_sites: Vec<ReviewSite>,
    /// Signed webhooks (Standard Webhooks) that get this campaign's events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<crate::webhooks::WebhookEndpoint>,
    /// Slack and Teams channels (incoming webhooks) for alerts and the weekly digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chat: Vec<crate::webhooks::ChatChannel>,
    #[serde(default)]
    pub reminders: Reminders,
    #[serde(default = "default_throttle_days")]
    pub throttle_days: u32,
    /// Personal data of an invitation is erased this many months after it was created (the
    /// schedule does it; counts and scores stay, anonymous). GDPR Art. 5(1)(e).
    #[serde(default = "default_retention_months")]
    pub retention_months: u32,
    /// Scores at or below this raise an alert (6 = every detractor; 0 = only the zeros).
    #[serde(default = "default_alert_threshold")]
    pub alert_threshold: u8,
    /// The deadline of a detractor follow-up, in hours after the answer.
    #[serde(default = "default_follow_up_hours")]
    pub follow_up_hours: u32,
    /// The deadline of a request to be contacted from a passive or promoter: softer by default.
    #[serde(default = "default_contact_request_hours")]
    pub contact_request_hours: u32,
    /// Gets alerts for contacts without an owner, and escalations of overdue cases.
    #[serde(default)]
    pub manager_email: Option<Email>,
    /// Whose benchmark the response rate is compared with.
    #[serde(default)]
    pub market: Market,
    /// The controller's privacy notice (https), linked from the survey page and named in every
    /// mail to respondents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_url: Option<String>,
    /// A heads-up mail this many days before a scheduled campaign starts, from each contact's
    /// owner (or the sender): people told a survey is coming answer it more often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads_up_days: Option<u32>,
    /// Comment themes: a name and the keywords (word beginnings) that put a comment in it.
    #[serde(default)]
    pub themes: BTreeMap<String, Vec<String>>,
    /// Contacts file columns by header and the field each fills ("Company Name" = "company"),
    /// over the suggested mapping; `custom` keeps a column a custom property.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnTarget>,
    /// Owner names as a CRM exports them in an owner column, and their addresses
    /// ("Karin Holm" = "karin@nordhavn.example").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owners: BTreeMap<String, Email>,
}

/// At most this many `[columns]` and `[owners]` entries: the campaign is one stored item.
pub const MAX_COLUMNS: usize = 200;
pub const MAX_OWNERS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Market {
    #[default]
    B2c,
    B2b,
}

impl Market {
    /// Satmetrix response-rate benchmarks (DOMAIN.md): (average low, average high, best low, best high).
    pub fn response_benchmarks(self) -> (f64, f64, f64, f64) {
        match self {
            Market::B2c => (0.13, 0.14, 0.42, 0.52),
            Market::B2b => (0.23, 0.32, 0.66, 0.68),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Market::B2c => "B2C",
            Market::B2b => "B2B",
        }
    }
}

fn default_locales() -> Vec<Locale> {
    vec![Locale::En]
}
/// Two years: long enough to compare a year with the one before it.
pub const DEFAULT_RETENTION_MONTHS: u32 = 24;
/// Ten years at most.
pub const MAX_RETENTION_MONTHS: u32 = 120;

fn default_retention_months() -> u32 {
    DEFAULT_RETENTION_MONTHS
}

fn default_throttle_days() -> u32 {
    90
}
/// Endpoints per campaign: each event is one delivery per endpoint.
pub const MAX_WEBHOOKS: usize = 10;

fn default_alert_threshold() -> u8 {
    6
}
fn default_follow_up_hours() -> u32 {
    48
}
fn default_contact_request_hours() -> u32 {
    120
}

impl Campaign {
    /// The zone this campaign's times are shown in: `time_zone`, or its first locale's.
    pub fn zone(&self) -> crate::time::Zone {
        if let Some(zone) = &self.time_zone {
            return zone.clone();
        }
        let name = match self.locales.first() {
            Some(Locale::Sv) => "Europe/Stockholm",
            Some(Locale::Da) => "Europe/Copenhagen",
            Some(Locale::En) | None => return crate::time::Zone::utc(),
        };
        crate::time::Zone::parse(name).unwrap_or_else(|_| crate::time::Zone::utc())
    }

    /// Whether the campaign may send now (its send window; a campaign without one always may).
    pub fn may_send_at(&self, at: crate::time::Timestamp) -> bool {
        self.send_window.as_ref().is_none_or(|w| w.is_open(at, &self.zone()))
    }

    /// When the campaign may next send: `at` itself if it may now.
    pub fn next_send_time(&self, at: crate::time::Timestamp) -> crate::time::Timestamp {
        self.send_window.as_ref().map_or(at, |w| w.next_open(at, &self.zone()))
    }

    /// The campaign as its file: what `from_toml` reads back as the same campaign (the export
    /// the workspace offers, and the form's other half).
    pub fn to_toml(&self) -> Result<String, CampaignError> {
        toml::to_string(self).map_err(CampaignError::Write)
    }

    pub fn from_toml(input: &str) -> Result<Self, CampaignError> {
        let campaign: Campaign = toml::from_str(input).map_err(|e| at_line(input, e))?;
        campaign.validate()?;
        Ok(campaign)
    }

    pub fn validate(&self) -> Result<(), CampaignError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(CampaignError::Invalid(problem.message)),
            None => Ok(()),
        }
    }

    /// Every rule the campaign breaks, each with the setting it is about: the file reports the
    /// first, the workspace's form shows each at its field.
    pub fn problems(&self) -> Vec<Problem> {
        let mut found = Vec::new();
        let mut invalid = |field: &'static str, message: String| found.push(Problem { field, message });
        for (field, value) in [("name", &self.name), ("company", &self.company), ("sender_name", &self.sender_name)] {
            if value.trim().is_empty() {
                invalid(field, format!("{field} must not be empty"));
            } else if value.chars().count() > crate::model::MAX_FIELD_CHARS {
                // Each is one line of a page, a mail or a subject: a sample contact's 200
                // characters must still fit beside it.
                invalid(field, format!("{field} must be at most {} characters", crate::model::MAX_FIELD_CHARS));
            } else if value.chars().any(char::is_control) {
                invalid(field, format!("{field} must be one line, without control characters"));
            }
        }
        if self.locales.is_empty() {
            invalid("locales", "locales must list at least one of en, sv, da".into());
        }
        if self.alert_threshold > Score::MAX {
            invalid("alert_threshold", format!("alert_threshold {} must be 0 to 10", self.alert_threshold));
        }
        if !(1..=30).contains(&self.reminders.delay_days) {
            invalid("reminder_delay_days", "reminders: delay_days must be 1-30 (DOMAIN: one reminder, 3-7 days)".into());
        }
        if self.reminders.max > 3 {
            invalid("reminder_max", "reminders: max must be 0-3 (DOMAIN: one reminder, 3-7 days)".into());
        }
        if !(1..=24 * 14).contains(&self.follow_up_hours) {
            invalid("follow_up_hours", "follow_up_hours must be 1 to 336".into());
        }
        if !(1..=24 * 14).contains(&self.contact_request_hours) {
            invalid("contact_request_hours", "contact_request_hours must be 1 to 336".into());
        }
        if self.privacy_url.as_ref().is_some_and(|u| !u.starts_with("https://") || u.contains(char::is_whitespace) || u.len() > 500) {
            invalid("privacy_url", "privacy_url must be an https:// address".into());
        }
        if self.heads_up_days.is_some_and(|d| !(1..=14).contains(&d)) {
            invalid("heads_up_days", "heads_up_days must be 1 to 14".into());
        }
        if !(1..=MAX_RETENTION_MONTHS).contains(&self.retention_months) {
            invalid("retention_months", format!("retention_months must be 1 to {MAX_RETENTION_MONTHS}"));
        }
        if self.throttle_days > 3650 {
            invalid("throttle_days", "throttle_days must be at most 3650".into());
        }
        let mut keys = std::collections::BTreeSet::new();
        for d in &self.drivers {
            if !is_key(&d.key) || !keys.insert(d.key.as_str()) {
                invalid("drivers", format!("driver key {:?} must be unique, 1-32 of a-z 0-9 _", d.key));
            }
        }
        if self.drivers.len() > 5 {
            invalid("drivers", "at most 5 driver questions: the survey stays within 5-7 questions".into());
        }
        if self.themes.len() > 30 {
            invalid("themes", "at most 30 comment themes".into());
        }
        for (name, keywords) in &self.themes {
            if name.trim().is_empty() || name.chars().count() > 40 {
                invalid("themes", format!("theme name {name:?} must be 1-40 characters"));
            }
            if keywords.is_empty() || keywords.iter().any(|k| k.trim().chars().count() < 2 || k.contains(char::is_whitespace)) {
                invalid("themes", format!("theme {name:?} needs keywords of at least 2 letters, one word each"));
            }
        }
        let mut sites = std::collections::BTreeSet::new();
        if self.webhooks.len() > MAX_WEBHOOKS {
            invalid("webhooks", format!("at most {MAX_WEBHOOKS} webhooks"));
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if w.events.is_empty() {
                invalid("webhooks", format!("webhook {} needs at least one event", w.url.as_str()));
            }
            if self.webhooks[..i].iter().any(|o| o.url == w.url) {
                invalid("webhooks", format!("webhook {} is listed twice", w.url.as_str()));
            }
        }
        if self.chat.len() > MAX_WEBHOOKS {
            invalid("chat", format!("at most {MAX_WEBHOOKS} chat channels"));
        }
        for (i, c) in self.chat.iter().enumerate() {
            if self.chat[..i].iter().any(|o| o.url == c.url) {
                invalid("chat", format!("chat channel {} is listed twice", c.hint()));
            }
        }
        for s in &self.review_sites {
            if !is_key(&s.key) || !sites.insert(s.key.as_str()) {
                invalid("review_sites", format!("review site key {:?} must be unique, 1-32 of a-z 0-9 _", s.key));
            }
            if !s.url.starts_with("https://") || s.url.contains(char::is_whitespace) {
                invalid("review_sites", format!("review site {:?} needs an https:// url", s.key));
            }
        }
        if self.columns.len() > MAX_COLUMNS {
            invalid("columns", format!("at most {MAX_COLUMNS} [columns]"));
        }
        if self.owners.len() > MAX_OWNERS {
            invalid("owners", format!("at most {MAX_OWNERS} [owners]"));
        }
        let mut headers = BTreeMap::new();
        for header in self.columns.keys() {
            if let Some(other) = headers.insert(header_key(header), header) {
                invalid("columns", format!("[columns] names one column twice: {other:?} and {header:?}"));
            }
            if header_key(header).is_empty() {
                invalid("columns", format!("[columns] key {header:?} must name a column"));
            }
        }
        let mut names = BTreeMap::new();
        for name in self.owners.keys() {
            let key = crate::import::owner_key(name);
            if key.is_empty() || key.contains('@') || name.contains('=') {
                invalid("owners", format!("[owners] key {name:?} must be a person's name (no @ or =)"));
            }
            if let Some(other) = names.insert(key, name) {
                invalid("owners", format!("[owners] names one person twice: {other:?} and {name:?}"));
            }
        }
        found
    }

    /// The contact's language if the campaign offers it, else the campaign's first language.
    pub fn locale_for(&self, wanted: Option<Locale>) -> Locale {
        wanted.filter(|l| self.locales.contains(l)).unwrap_or(self.locales[0])
    }

    pub fn review_site(&self, key: &str) -> Option<&ReviewSite> {
        self.review_sites.iter().find(|s| s.key == key)
    }

    pub fn driver(&self, key: &str) -> Option<&Driver> {
        self.drivers.iter().find(|d| d.key == key)
    }
}

/// The toml crate's error with its place as a line number, and without its multi-line snippet.
fn at_line(input: &str, e: toml::de::Error) -> CampaignError {
    match e.span() {
        Some(span) => {
            let line = input.get(..span.start).unwrap_or(input).matches('\n').count() + 1;
            CampaignError::At { line, message: e.message().to_owned() }
        }
        None => CampaignError::Toml(e),
    }
}

fn is_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 32 && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        id = "visit"
        name = "Visit"
        company = "Nordhavn Cykler"
        sender_name = "Karin"
        sender_email = "karin@nordhavn.example"
    "#;

    #[test]
    fn a_minimal_campaign_gets_the_domain_defaults() {
        let c = Campaign::from_toml(MINIMAL).unwrap();
        assert_eq!(c.throttle_days, 90);
        assert_eq!(c.alert_threshold, 6);
        assert_eq!(c.follow_up_hours, 48);
        assert_eq!(c.reminders, Reminders { delay_days: 4, max: 1 });
        assert_eq!(c.locale_for(Some(Locale::Sv)), Locale::En, "sv not offered");
    }

    #[test]
    fn review_sites_default_to_everyone_because_gating_is_forbidden() {
        let c = Campaign::from_toml(&format!(
            "{MINIMAL}\n[[review_sites]]\nkey = \"trustpilot\"\nname = \"Trustpilot\"\nurl = \"https://trustpilot.example/r\"\n"
        ))
        .unwrap();
        assert_eq!(c.review_sites[0].audience, ReviewAudience::Everyone);
    }

    #[test]
    fn invalid_settings_are_refused_with_a_reason() {
        let err = Campaign::from_toml(&format!("{MINIMAL}\nalert_threshold = 11\n")).unwrap_err();
        assert!(err.to_string().contains("alert_threshold"));
        let err = Campaign::from_toml(&MINIMAL.replace("\"visit\"", "\"Visit 2\"")).unwrap_err();
        assert!(err.to_string().contains("campaign id"));
        let err = Campaign::from_toml(&format!("{MINIMAL}\n[[review_sites]]\nkey = \"x\"\nname = \"X\"\nurl = \"javascript:alert(1)\"\n"))
            .unwrap_err();
        assert!(err.to_string().contains("https"));
    }

    #[test]
    fn a_campaign_written_as_its_file_reads_back_as_the_same_campaign() {
        for source in [include_str!("../../demo/campaign.toml"), MINIMAL] {
            let campaign = Campaign::from_toml(source).unwrap();
            let file = campaign.to_toml().unwrap();
            assert_eq!(Campaign::from_toml(&file).unwrap(), campaign, "{file}");
        }
        let mut full = Campaign::from_toml(include_str!("../../demo/campaign.toml")).unwrap();
        full.heads_up_days = Some(2);
        full.send_window = Some(toml::from_str::<Holder>("w = { from = \"09:00\", to = \"17:00\", days = [\"mon\"] }").unwrap().w);
        full.columns.insert("Company Name".into(), ColumnTarget::parse("company").unwrap());
        full.owners.insert("Karin Holm".into(), Email::parse("karin@x.example").unwrap());
        let file = full.to_toml().unwrap();
        assert!(file.contains("Europe/Stockholm") && file.contains("09:00"), "{file}");
        assert_eq!(Campaign::from_toml(&file).unwrap(), full, "{file}");
    }

    #[derive(serde::Deserialize)]
    struct Holder {
        w: crate::time::SendWindow,
    }

    #[test]
    fn a_time_zone_is_an_iana_name_and_round_trips_through_the_stores() {
        let c = Campaign::from_toml(&format!("{MINIMAL}        time_zone = \"Europe/Copenhagen\"\n")).unwrap();
        assert_eq!(c.zone().name(), "Europe/Copenhagen");
        let again: Campaign = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        let err = Campaign::from_toml(&format!("{MINIMAL}        time_zone = \"Europe/Stokholm\"\n")).unwrap_err().to_string();
        assert!(err.contains("line 7 ") && err.contains("Europe/Stokholm") && err.contains("IANA"), "{err}");
        assert_eq!(Campaign::from_toml(MINIMAL).unwrap().zone().name(), "UTC", "English first: UTC");
        let danish = Campaign::from_toml(&format!("{MINIMAL}        locales = [\"da\", \"en\"]\n")).unwrap();
        assert_eq!(danish.zone().name(), "Europe/Copenhagen", "Danish first: Copenhagen");
    }

    #[test]
    fn an_unknown_key_is_an_error_that_names_the_key_and_its_line() {
        let err = Campaign::from_toml(&format!("{MINIMAL}        throttle_dayz = 30\n")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CampaignError::At { line: 7, .. }), "{err:?}");
        assert!(text.starts_with("line 7 of the campaign file: unknown field `throttle_dayz`"), "{text}");
        let nested = format!("{MINIMAL}\n[reminders]\ndelay_days = 3\nmaxx = 2\n");
        let text = Campaign::from_toml(&nested).unwrap_err().to_string();
        assert!(text.contains("line 10 ") && text.contains("`maxx`"), "{text}");
        let site = format!("{MINIMAL}\n[[review_sites]]\nkey = \"g\"\nname = \"G\"\nurl = \"https://g.example\"\naudiense = \"everyone\"\n");
        let text = Campaign::from_toml(&site).unwrap_err().to_string();
        assert!(text.contains("line 12 ") && text.contains("`audiense`"), "{text}");
        let text = Campaign::from_toml(&format!("{MINIMAL}\nthrottle_days = \"ninety\"\n")).unwrap_err().to_string();
        assert!(text.starts_with("line 8 "), "a wrong type has its line too: {text}");
    }

    #[test]
    fn columns_and_owners_tables_are_read_and_an_unknown_field_is_named_with_its_line() {
        let c = Campaign::from_toml(&format!(
            "{MINIMAL}\n[columns]\n\"Company Name\" = \"company\"\n\"Säljare\" = \"owner_email\"\nNotes = \"custom\"\n\n[owners]\n\"Karin Holm\" = \"Karin@Nordhavn.example\"\n"
        ))
        .unwrap();
        assert_eq!(c.columns["Company Name"], ColumnTarget::Field(crate::import::Field::Company));
        assert_eq!(c.columns["Notes"], ColumnTarget::Custom);
        assert_eq!(c.owners["Karin Holm"].as_str(), "karin@nordhavn.example");
        let err = Campaign::from_toml(&format!("{MINIMAL}\n[columns]\n\"Company Name\" = \"compnay\"\n")).unwrap_err().to_string();
        assert!(err.starts_with("line 9 ") && err.contains("\"compnay\""), "{err}");
        let err = Campaign::from_toml(&format!("{MINIMAL}\n[owners]\n\"Karin\" = \"not-an-address\"\n")).unwrap_err().to_string();
        assert!(err.starts_with("line 9 "), "{err}");
        let err = Campaign::from_toml(&format!("{MINIMAL}\n[columns]\n\"Company Name\" = \"company\"\n\"company name\" = \"custom\"\n")).unwrap_err();
        assert!(err.to_string().contains("names one column twice"), "{err}");
        let err = Campaign::from_toml(&format!("{MINIMAL}\n[owners]\n\"Karin Holm\" = \"k@x.example\"\n\"karin  holm\" = \"h@x.example\"\n")).unwrap_err();
        assert!(err.to_string().contains("names one person twice"), "{err}");
    }

    #[test]
    fn a_stored_campaign_without_columns_or_owners_keeps_its_json_form() {
        let c = Campaign::from_toml(MINIMAL).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert!(json.get("columns").is_none() && json.get("owners").is_none(), "{json}");
        assert_eq!(serde_json::from_value::<Campaign>(json).unwrap(), c);
    }

    #[test]
    fn the_demo_campaign_file_still_parses() {
        Campaign::from_toml(include_str!("../../demo/campaign.toml")).unwrap();
    }

    #[test]
    fn localized_text_falls_back_to_english() {
        let t: LocalizedText =
            toml::from_str::<BTreeMap<String, LocalizedText>>("l = { en = \"Ease\", sv = \"Enkelhet\" }").unwrap().remove("l").unwrap();
        assert_eq!(t.get(Locale::Sv), "Enkelhet");
        assert_eq!(t.get(Locale::Da), "Ease");
    }
}
