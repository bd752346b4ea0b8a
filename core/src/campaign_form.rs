//! The workspace's campaign form: every setting the campaign file has, as form fields, read by
//! the same rules as the file ([`Campaign::problems`]), each problem shown at its field.
//!
//! Scalar settings are one field each. Lists are one text area each, one entry per line:
//!
//! | field | a line |
//! |---|---|
//! | `drivers` | `ease \| Ease of booking` or `ease \| en: Ease of booking \| sv: Hur enkelt …` |
//! | `follow_up` | `detractor \| What should we do better?` (or per locale, as drivers) |
//! | `review_sites` | `trustpilot \| Trustpilot \| https://… \| everyone` (or `promoters_only`) |
//! | `webhooks` | `https://… \| response.created, case.opened \| whsec_…` |
//! | `chat` | `slack \| https://hooks.slack.com/… \| owner@… (or empty: everyone's) \| alert, digest` |
//! | `themes` | `price: price, expensive, pris` |
//! | `columns` | `Company Name = company` |
//! | `owners` | `Karin Holm = karin@example.com` |
//!
//! A form written from a campaign ([`CampaignForm::from_campaign`]) reads back as that campaign.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::campaign::{Campaign, CampaignId, Driver, LocalizedText, Market, Reminders, ReviewAudience, ReviewSite};
use crate::import::ColumnTarget;
use crate::model::{Email, Locale};
use crate::nps::Group;
use crate::time::{SendWindow, Zone};

/// A form field's problem, shown beside that field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// The form as typed: every value a string, as the browser sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CampaignForm {
    pub id: String,
    pub name: String,
    pub company: String,
    pub sender_name: String,
    pub sender_email: String,
    /// Locale codes in order, the first being the default: "sv, en".
    pub locales: String,
    pub time_zone: String,
    pub window_from: String,
    pub window_to: String,
    /// Short weekday names ticked (`mon` … `sun`); empty with no window times: no window.
    pub window_days: Vec<String>,
    pub touchpoint: String,
    pub privacy_url: String,
    pub throttle_days: String,
    pub retention_months: String,
    pub alert_threshold: String,
    pub follow_up_hours: String,
    pub contact_request_hours: String,
    pub manager_email: String,
    pub market: String,
    pub reminder_delay_days: String,
    pub reminder_max: String,
    /// Days before a scheduled start for the heads-up mail; empty for none.
    pub heads_up_days: String,
    pub drivers: String,
    pub follow_up: String,
    pub review_sites: String,
    pub webhooks: String,
    pub chat: String,
    pub themes: String,
    pub columns: String,
    pub owners: String,
}

/// Form fields longer than this are refused before parsing (a campaign is one stored item).
const MAX_FIELD_CHARS: usize = 100_000;

impl CampaignForm {
    /// The form a browser posted, by field name; a day is ticked with `day_mon=on` and so on.
    pub fn from_fields(fields: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        Self {
            id: get("id"),
            name: get("name"),
            company: get("company"),
            sender_name: get("sender_name"),
            sender_email: get("sender_email"),
            locales: get("locales"),
            time_zone: get("time_zone"),
            window_from: get("window_from"),
            window_to: get("window_to"),
            window_days: SendWindow::DAYS.iter().filter(|d| fields.contains_key(&format!("day_{d}"))).map(|d| (*d).to_owned()).collect(),
            touchpoint: get("touchpoint"),
            privacy_url: get("privacy_url"),
            throttle_days: get("throttle_days"),
            retention_months: get("retention_months"),
            alert_threshold: get("alert_threshold"),
            follow_up_hours: get("follow_up_hours"),
            contact_request_hours: get("contact_request_hours"),
            manager_email: get("manager_email"),
            market: get("market"),
            reminder_delay_days: get("reminder_delay_days"),
            reminder_max: get("reminder_max"),
            heads_up_days: get("heads_up_days"),
            drivers: get("drivers"),
            follow_up: get("follow_up"),
            review_sites: get("review_sites"),
            webhooks: get("webhooks"),
            chat: get("chat"),
            themes: get("themes"),
            columns: get("columns"),
            owners: get("owners"),
        }
    }

    /// A new campaign's form: the file's defaults filled in.
    pub fn blank() -> Self {
        Self {
            locales: "en".into(),
            throttle_days: "90".into(),
            retention_months: crate::campaign::DEFAULT_RETENTION_MONTHS.to_string(),
            alert_threshold: "6".into(),
            follow_up_hours: "48".into(),
            contact_request_hours: "120".into(),
            market: "b2c".into(),
            reminder_delay_days: Reminders::default().delay_days.to_string(),
            reminder_max: Reminders::default().max.to_string(),
            ..Self::default()
        }
    }

    pub fn from_campaign(c: &Campaign) -> Self {
        let (window_from, window_to, window_days) = match &c.send_window {
            Some(w) => {
                let (from, to, days) = w.parts();
                (from, to, days.into_iter().map(str::to_owned).collect())
            }
            None => Default::default(),
        };
        Self {
            id: c.id.as_str().to_owned(),
            name: c.name.clone(),
            company: c.company.clone(),
            sender_name: c.sender_name.clone(),
            sender_email: c.sender_email.as_str().to_owned(),
            locales: c.locales.iter().map(|l| l.code()).collect::<Vec<_>>().join(", "),
            time_zone: c.time_zone.as_ref().map(|z| z.name().to_owned()).unwrap_or_default(),
            window_from,
            window_to,
            window_days,
            touchpoint: c.touchpoint.clone().unwrap_or_default(),
            privacy_url: c.privacy_url.clone().unwrap_or_default(),
            throttle_days: c.throttle_days.to_string(),
            retention_months: c.retention_months.to_string(),
            alert_threshold: c.alert_threshold.to_string(),
            follow_up_hours: c.follow_up_hours.to_string(),
            contact_request_hours: c.contact_request_hours.to_string(),
            manager_email: c.manager_email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_default(),
            market: match c.market {
                Market::B2c => "b2c",
                Market::B2b => "b2b",
            }
            .into(),
            reminder_delay_days: c.reminders.delay_days.to_string(),
            reminder_max: c.reminders.max.to_string(),
            heads_up_days: c.heads_up_days.map(|d| d.to_string()).unwrap_or_default(),
            drivers: lines(c.drivers.iter().map(|d| format!("{} | {}", d.key, localized_line(&d.label)))),
            follow_up: lines(c.follow_up.iter().map(|(g, t)| format!("{} | {}", g.as_str(), localized_line(t)))),
            webhooks: lines(c.webhooks.iter().map(|w| {
                let events: Vec<&str> = w.events.iter().map(|e| e.as_str()).collect();
                format!("{} | {} | {}", w.url.as_str(), events.join(", "), w.secret.expose())
            })),
            chat: lines(c.chat.iter().map(|ch| {
                let kind = match ch.kind {
                    crate::webhooks::ChatKind::Slack => "slack",
                    crate::webhooks::ChatKind::Teams => "teams",
                };
                let events: Vec<&str> = ch.events.iter().map(|e| match e {
                    crate::webhooks::ChatEvent::Alert => "alert",
                    crate::webhooks::ChatEvent::Digest => "digest",
                }).collect();
                format!("{kind} | {} | {} | {}", ch.url.as_str(), ch.owner.as_ref().map_or("", |o| o.as_str()), events.join(", "))
            })),
            review_sites: lines(c.review_sites.iter().map(|s| {
                let audience = match s.audience {
                    ReviewAudience::Everyone => "everyone",
                    ReviewAudience::PromotersOnly => "promoters_only",
                };
                format!("{} | {} | {} | {audience}", s.key, s.name, s.url)
            })),
            themes: lines(c.themes.iter().map(|(name, words)| format!("{name}: {}", words.join(", ")))),
            columns: lines(c.columns.iter().map(|(header, target)| format!("{header} = {}", target.as_str()))),
            owners: lines(c.owners.iter().map(|(name, email)| format!("{name} = {}", email.as_str()))),
        }
    }

    /// The campaign this form describes, or every problem with it, each at its field.
    pub fn parse(&self) -> Result<Campaign, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut error = |field: &'static str, message: String| errors.push(FieldError { field, message });
        for (field, value) in self.text_fields() {
            if value.chars().count() > MAX_FIELD_CHARS {
                error(field, format!("{field} is longer than {MAX_FIELD_CHARS} characters"));
            }
        }
        let id = CampaignId::parse(self.id.trim()).map_err(|e| error("id", e.to_string())).ok();
        let sender_email = Email::parse(self.sender_email.trim()).map_err(|e| error("sender_email", e.to_string())).ok();
        let mut locales = Vec::new();
        for code in self.locales.split([',', ' ']).filter(|c| !c.trim().is_empty()) {
            match Locale::parse(code.trim()) {
                Some(l) if !locales.contains(&l) => locales.push(l),
                Some(_) => error("locales", format!("{code:?} is listed twice")),
                None => error("locales", format!("{:?} is not one of en, sv, da", code.chars().take(20).collect::<String>())),
            }
        }
        let time_zone = optional(&self.time_zone).and_then(|z| Zone::parse(z).map_err(|e| error("time_zone", e.to_string())).ok());
        let send_window = match (optional(&self.window_from), optional(&self.window_to), self.window_days.is_empty()) {
            (None, None, true) => None,
            (Some(from), Some(to), _) => {
                let days: Vec<&str> = self.window_days.iter().map(String::as_str).collect();
                SendWindow::parse(from, to, &days).map_err(|e| error("send_window", e.to_string())).ok()
            }
            _ => {
                error("send_window", "a send window needs both times and at least one day; leave all empty for none".into());
                None
            }
        };
        let mut number = |field: &'static str, text: &str, max: u32| -> u32 {
            match text.trim().parse::<u32>() {
                Ok(n) if n <= max => n,
                _ => {
                    error(field, format!("{field} must be a whole number from 0 to {max}"));
                    0
                }
            }
        };
        let throttle_days = number("throttle_days", &self.throttle_days, 3650);
        let retention_months = number("retention_months", &self.retention_months, crate::campaign::MAX_RETENTION_MONTHS);
        let alert_threshold = number("alert_threshold", &self.alert_threshold, 10) as u8;
        let follow_up_hours = number("follow_up_hours", &self.follow_up_hours, 336);
        let contact_request_hours = number("contact_request_hours", &self.contact_request_hours, 336);
        let delay_days = number("reminder_delay_days", &self.reminder_delay_days, 30);
        let max = number("reminder_max", &self.reminder_max, 3);
        let heads_up_days = optional(&self.heads_up_days).map(|d| number("heads_up_days", d, 14));
        let manager_email = optional(&self.manager_email).and_then(|e| Email::parse(e).map_err(|e| error("manager_email", e.to_string())).ok());
        let market = match self.market.trim() {
            "" | "b2c" => Market::B2c,
            "b2b" => Market::B2b,
            other => {
                error("market", format!("{:?} is not b2c or b2b", other.chars().take(20).collect::<String>()));
                Market::B2c
            }
        };

        let mut drivers = Vec::new();
        for (line, text) in entries(&self.drivers) {
            match text.split_once('|') {
                Some((key, label)) => match localized(label) {
                    Ok(label) => drivers.push(Driver { key: key.trim().to_owned(), label }),
                    Err(e) => error("drivers", format!("line {line}: {e}")),
                },
                None => error("drivers", format!("line {line}: write key | label")),
            }
        }
        let mut follow_up = BTreeMap::new();
        for (line, text) in entries(&self.follow_up) {
            let Some((group, question)) = text.split_once('|') else {
                error("follow_up", format!("line {line}: write group | question"));
                continue;
            };
            let group = match group.trim() {
                "promoter" => Group::Promoter,
                "passive" => Group::Passive,
                "detractor" => Group::Detractor,
                other => {
                    error("follow_up", format!("line {line}: {:?} is not promoter, passive or detractor", other.chars().take(20).collect::<String>()));
                    continue;
                }
            };
            match localized(question) {
                Ok(_) if follow_up.contains_key(&group) => error("follow_up", format!("line {line}: {} has a question already", group.as_str())),
                Ok(q) => {
                    follow_up.insert(group, q);
                }
                Err(e) => error("follow_up", format!("line {line}: {e}")),
            }
        }
        let mut review_sites = Vec::new();
        for (line, text) in entries(&self.review_sites) {
            let parts: Vec<&str> = text.split('|').map(str::trim).collect();
            let audience = match parts.get(3).copied() {
                None | Some("everyone") => Some(ReviewAudience::Everyone),
                Some("promoters_only") => Some(ReviewAudience::PromotersOnly),
                Some(_) => None,
            };
            match (parts.len(), audience) {
                (3 | 4, Some(audience)) => {
                    review_sites.push(ReviewSite { key: parts[0].to_owned(), name: parts[1].to_owned(), url: parts[2].to_owned(), audience })
                }
                _ => error("review_sites", format!("line {line}: write key | name | https://address | everyone (or promoters_only)")),
            }
        }
        let mut webhooks = Vec::new();
        for (line, text) in entries(&self.webhooks) {
            let parts: Vec<&str> = text.split('|').map(str::trim).collect();
            let [url, events, secret] = parts.as_slice() else {
                error("webhooks", format!("line {line}: write https://address | event, event | whsec_secret"));
                continue;
            };
            let endpoint = crate::webhooks::WebhookUrl::parse(url).and_then(|url| {
                let events = events.split(',').filter(|e| !e.trim().is_empty()).map(crate::webhooks::WebhookEvent::parse).collect::<Result<_, _>>()?;
                Ok(crate::webhooks::WebhookEndpoint { url, secret: crate::webhooks::WebhookSecret::parse(secret)?, events })
            });
            match endpoint {
                Ok(endpoint) => webhooks.push(endpoint),
                Err(e) => error("webhooks", format!("line {line}: {e}")),
            }
        }
        let mut chat = Vec::new();
        for (line, text) in entries(&self.chat) {
            let parts: Vec<&str> = text.split('|').map(str::trim).collect();
            let [kind, url, owner, events] = parts.as_slice() else {
                error("chat", format!("line {line}: write slack (or teams) | https://incoming-webhook-address | owner email, or nothing | alert, digest"));
                continue;
            };
            let kind = match *kind {
                "slack" => crate::webhooks::ChatKind::Slack,
                "teams" => crate::webhooks::ChatKind::Teams,
                other => {
                    error("chat", format!("line {line}: {other:?} is not slack or teams"));
                    continue;
                }
            };
            let mut wanted = std::collections::BTreeSet::new();
            for event in events.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                match event {
                    "alert" => wanted.insert(crate::webhooks::ChatEvent::Alert),
                    "digest" => wanted.insert(crate::webhooks::ChatEvent::Digest),
                    other => {
                        error("chat", format!("line {line}: {other:?} is not alert or digest"));
                        continue;
                    }
                };
            }
            let owner = match optional(owner).map(Email::parse).transpose() {
                Ok(owner) => owner,
                Err(e) => {
                    error("chat", format!("line {line}: {e}"));
                    continue;
                }
            };
            match crate::webhooks::WebhookUrl::parse(url) {
                Ok(url) => chat.push(crate::webhooks::ChatChannel { kind, url, owner, events: wanted }),
                Err(e) => error("chat", format!("line {line}: {e}")),
            }
        }
        let mut themes = BTreeMap::new();
        for (line, text) in entries(&self.themes) {
            let Some((name, words)) = text.split_once(':') else {
                error("themes", format!("line {line}: write name: keyword, keyword"));
                continue;
            };
            let words: Vec<String> = words.split(',').map(|w| w.trim().to_owned()).filter(|w| !w.is_empty()).collect();
            if themes.insert(name.trim().to_owned(), words).is_some() {
                error("themes", format!("line {line}: theme {:?} is listed twice", name.trim()));
            }
        }
        let mut columns = BTreeMap::new();
        for (line, text) in entries(&self.columns) {
            // A field name never holds `=`; a header might.
            match text.rsplit_once('=') {
                Some((header, target)) => match ColumnTarget::parse(target) {
                    Ok(target) => {
                        columns.insert(header.trim().to_owned(), target);
                    }
                    Err(e) => error("columns", format!("line {line}: {e}")),
                },
                None => error("columns", format!("line {line}: write Column header = field")),
            }
        }
        let mut owners = BTreeMap::new();
        for (line, text) in entries(&self.owners) {
            // A name never holds `=` (the file's rules refuse it); an address may.
            match text.split_once('=') {
                Some((name, email)) => match Email::parse(email.trim()) {
                    Ok(email) => {
                        owners.insert(name.trim().to_owned(), email);
                    }
                    Err(e) => error("owners", format!("line {line}: {e}")),
                },
                None => error("owners", format!("line {line}: write Name = email address")),
            }
        }

        let (Some(id), Some(sender_email)) = (id, sender_email) else {
            return Err(errors);
        };
        let campaign = Campaign {
            id,
            name: self.name.trim().to_owned(),
            company: self.company.trim().to_owned(),
            sender_name: self.sender_name.trim().to_owned(),
            sender_email,
            locales,
            time_zone,
            send_window,
            touchpoint: optional(&self.touchpoint).map(str::to_owned),
            privacy_url: optional(&self.privacy_url).map(str::to_owned),
            follow_up,
            drivers,
            review_sites,
            webhooks,
            chat,
            reminders: Reminders { delay_days, max },
            throttle_days,
            retention_months,
            alert_threshold,
            follow_up_hours,
            contact_request_hours,
            manager_email,
            market,
            themes,
            columns,
            owners,
            heads_up_days,
        };
        // The file's own rules, for what the fields above could not tell alone (a duplicate key,
        // an http:// review site), once the field's own reading found nothing wrong with it.
        for problem in campaign.problems() {
            if !errors.iter().any(|e| e.field == problem.field) {
                errors.push(FieldError { field: problem.field, message: problem.message });
            }
        }
        if errors.is_empty() {
            Ok(campaign)
        } else {
            Err(errors)
        }
    }

    fn text_fields(&self) -> [(&'static str, &str); 8] {
        [
            ("name", &self.name),
            ("company", &self.company),
            ("drivers", &self.drivers),
            ("follow_up", &self.follow_up),
            ("review_sites", &self.review_sites),
            ("themes", &self.themes),
            ("columns", &self.columns),
            ("owners", &self.owners),
        ]
    }
}

fn optional(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

fn lines(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join("\n")
}

/// The non-empty lines of a text area, with their line numbers from 1.
fn entries(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty())
}

fn localized_line(text: &LocalizedText) -> String {
    match text {
        LocalizedText::Same(s) => s.clone(),
        LocalizedText::PerLocale(map) => map.iter().map(|(l, t)| format!("{}: {t}", l.code())).collect::<Vec<_>>().join(" | "),
    }
}

/// `Text` for every locale, or `en: Text | sv: Text` per locale.
fn localized(text: &str) -> Result<LocalizedText, String> {
    let parts: Vec<&str> = text.split('|').map(str::trim).collect();
    let tagged = |p: &str| p.split_once(':').and_then(|(code, t)| Locale::parse(code.trim()).map(|l| (l, t.trim().to_owned())));
    if parts.len() == 1 && tagged(parts[0]).is_none() {
        return if parts[0].is_empty() { Err("the text is empty".into()) } else { Ok(LocalizedText::Same(parts[0].to_owned())) };
    }
    let mut map = BTreeMap::new();
    for part in parts {
        let Some((locale, t)) = tagged(part) else {
            return Err(format!("{:?} should start with its language, e.g. \"sv: …\"", part.chars().take(40).collect::<String>()));
        };
        if t.is_empty() || map.insert(locale, t).is_some() {
            return Err(format!("{}: is empty or given twice", locale.code()));
        }
    }
    Ok(LocalizedText::PerLocale(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Campaign {
        Campaign::from_toml(include_str!("../../demo/campaign.toml")).unwrap()
    }

    #[test]
    fn a_form_written_from_a_campaign_reads_back_as_that_campaign() {
        let mut full = demo();
        full.send_window = Some(SendWindow::parse("09:00", "19:00", &["mon", "tue", "wed", "thu", "fri"]).unwrap());
        full.columns.insert("Company Name".into(), ColumnTarget::parse("company").unwrap());
        full.columns.insert("Notes = internal".into(), ColumnTarget::Custom);
        full.owners.insert("Karin Holm".into(), Email::parse("karin@x.example").unwrap());
        full.owners.insert("Bo Berg".into(), Email::parse("bo=sales@x.example").unwrap());
        full.heads_up_days = Some(3);
        full.privacy_url = Some("https://nordhavn.example/privacy".into());
        full.follow_up.insert(Group::Detractor, LocalizedText::Same("What went wrong?".into()));
        full.follow_up.insert(
            Group::Promoter,
            LocalizedText::PerLocale([(Locale::En, "What did we do well?".to_owned()), (Locale::Sv, "Vad gjorde vi bra?".to_owned())].into()),
        );
        full.webhooks.push(
            toml::from_str("url = \"https://crm.example/hooks\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nevents = [\"response.created\", \"case.opened\"]").unwrap(),
        );
        full.contact_request_hours = 96;
        full.chat.push(toml::from_str("kind = \"slack\"\nurl = \"https://hooks.slack.com/services/T000/B000/XXXX\"\nowner = \"karin@x.example\"\nevents = [\"alert\"]").unwrap());
        full.chat.push(toml::from_str("kind = \"teams\"\nurl = \"https://prod.westeurope.logic.azure.com/workflows/abc\"").unwrap());
        for campaign in [demo(), full] {
            let form = CampaignForm::from_campaign(&campaign);
            assert_eq!(form.parse().unwrap(), campaign, "{form:#?}");
        }
    }

    #[test]
    fn a_blank_form_with_the_required_fields_gives_the_files_defaults() {
        let mut form = CampaignForm::blank();
        form.id = "visit".into();
        form.name = "Visit".into();
        form.company = "Nordhavn".into();
        form.sender_name = "Karin".into();
        form.sender_email = "karin@nordhavn.example".into();
        let from_file = Campaign::from_toml(
            "id = \"visit\"\nname = \"Visit\"\ncompany = \"Nordhavn\"\nsender_name = \"Karin\"\nsender_email = \"karin@nordhavn.example\"\n",
        )
        .unwrap();
        assert_eq!(form.parse().unwrap(), from_file);
    }

    #[test]
    fn every_problem_is_reported_at_its_own_field() {
        let mut form = CampaignForm::from_campaign(&demo());
        form.id = "Not An Id".into();
        form.sender_email = "karin".into();
        form.locales = "sv, fi".into();
        form.time_zone = "Europe/Stokholm".into();
        form.window_from = "09:00".into();
        form.window_days.clear();
        form.window_to = "08:00".into();
        form.throttle_days = "ninety".into();
        form.alert_threshold = "11".into();
        form.reminder_max = "4".into();
        form.market = "b2x".into();
        form.drivers = "ease | Ease\nease | Again".into();
        form.review_sites = "g | Google | http://g.example".into();
        form.themes = "price keywords".into();
        form.columns = "Company Name = compnay".into();
        form.owners = "Karin = not-an-address".into();
        form.name = " ".into();
        let errors = form.parse().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        for field in [
            "id", "sender_email", "locales", "time_zone", "send_window", "throttle_days", "alert_threshold", "reminder_max", "market",
            "themes", "columns", "owners",
        ] {
            assert!(fields.contains(&field), "{field} missing from {errors:#?}");
        }
        let message = |f: &str| errors.iter().find(|e| e.field == f).unwrap().message.clone();
        assert!(message("locales").contains("\"fi\""), "{errors:#?}");
        assert!(message("columns").starts_with("line 1:"), "{errors:#?}");
        assert!(message("themes").starts_with("line 1:"), "{errors:#?}");

        // Once the fields read, the file's own rules speak at their fields too.
        let mut form = CampaignForm::from_campaign(&demo());
        form.drivers = "ease | Ease\nease | Again".into();
        form.review_sites = "g | Google | http://g.example".into();
        form.name = " ".into();
        let errors = form.parse().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "drivers", "review_sites"], "{errors:#?}");
    }

    #[test]
    fn a_label_per_language_must_name_each_language_once() {
        assert_eq!(localized("Ease").unwrap(), LocalizedText::Same("Ease".into()));
        assert!(localized("en: Ease | Lätt").unwrap_err().contains("\"Lätt\""));
        assert!(localized("en: Ease | en: Again").is_err());
        assert!(localized(" ").is_err());
    }
}
