//! "You said, we did": an update about what changed, written in the dashboard and mailed to the
//! people who answered (a theme, a segment, a group), and optionally to those who were invited
//! but did not answer. Core decides who is in the audience and why anyone is left out; the
//! functions walk a campaign's rows and send, each person at most once per update.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::campaign::{Campaign, CampaignId};
use crate::changes::Change;
use crate::counters::CounterDeltas;
use crate::model::{Event, EventKind, InvitationId, Locale};
use crate::nps::Group;
use crate::ports::InvitationRow;
use crate::time::Timestamp;

pub const MAX_SUBJECT_CHARS: usize = 120;
pub const MAX_BODY_CHARS: usize = 4000;
/// Links in one update's texts: each becomes a tracked link with its own counter.
pub const MAX_LINKS: usize = 10;

/// `upd_` and 16 hex digits: in URLs, send keys and store keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UpdateId(String);

#[derive(Debug, thiserror::Error)]
#[error("an update id is upd_ and 16 lower-case hex digits")]
pub struct BadUpdateId;

impl UpdateId {
    pub fn parse(text: &str) -> Result<Self, BadUpdateId> {
        let hex = text.strip_prefix("upd_").ok_or(BadUpdateId)?;
        if hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(text.to_owned()))
        } else {
            Err(BadUpdateId)
        }
    }

    /// The id of a draft: who wrote it, where and when. The composer carries it from the
    /// preview to the send, so a form posted twice is one update.
    pub fn new(campaign: &CampaignId, author: &str, at: Timestamp) -> Self {
        Self(format!("upd_{}", crate::webhooks::short_hash(&format!("{campaign}\n{author}\n{}", at.millis()), 8)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UpdateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One locale's subject and text. The text is plain: paragraphs split by blank lines, and
/// every `https://` address in it becomes a tracked link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateText {
    pub subject: String,
    pub body: String,
}

/// Who an update is for. Respondents match when they are in every chosen filter (an empty
/// filter is everyone); those who did not answer have no group or theme, so only the segment
/// filter applies to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateAudience {
    #[serde(default)]
    pub groups: BTreeSet<Group>,
    #[serde(default)]
    pub themes: BTreeSet<String>,
    #[serde(default)]
    pub segments: BTreeSet<String>,
    #[serde(default)]
    pub non_respondents: bool,
}

/// Why someone in the audience does not get the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// Unsubscribed, bounced or complained: suppressed, by any of their contact keys.
    Suppressed,
    /// Their personal data was erased.
    Erased,
    /// Reached by SMS only: an update is a mail.
    NoEmail,
    /// Already in the audience through another invitation, or sent this update before.
    AlreadyIncluded,
}

impl Exclusion {
    pub const ALL: [Exclusion; 4] = [Exclusion::Suppressed, Exclusion::Erased, Exclusion::NoEmail, Exclusion::AlreadyIncluded];

    pub fn label(self) -> &'static str {
        match self {
            Exclusion::Suppressed => "unsubscribed, bounced or complained",
            Exclusion::Erased => "personal data erased",
            Exclusion::NoEmail => "no email address (SMS only)",
            Exclusion::AlreadyIncluded => "same person already included",
        }
    }
}

/// What one row is for an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Not in the audience at all (another group, theme or segment).
    Outside,
    Excluded(Exclusion),
    /// In, to this address (lower-cased: one person, however their CRM spelled it).
    Included(String),
}

impl UpdateAudience {
    /// Whether a row is in the audience at all, before any exclusion.
    pub fn matches(&self, campaign: &Campaign, row: &InvitationRow) -> bool {
        let contact = &row.invitation.contact;
        if !self.segments.is_empty() && !contact.segment.as_ref().is_some_and(|s| self.segments.contains(s)) {
            return false;
        }
        let Some(answer) = &row.answer else { return self.non_respondents };
        if !self.groups.is_empty() && !self.groups.contains(&answer.score.group()) {
            return false;
        }
        if !self.themes.is_empty() {
            let comment = answer.comment.as_deref().unwrap_or("");
            let themes = crate::counters::themes_of(&campaign.themes, comment);
            if !themes.iter().any(|t| self.themes.contains(*t)) {
                return false;
            }
        }
        true
    }

    pub fn select(&self, campaign: &Campaign, row: &InvitationRow) -> Selection {
        if row.invitation.erased_at.is_some() {
            // An erased answer has no comment: judged without the theme filter, so the count
            // says how many erased people the update would otherwise have reached.
            let unthemed = Self { themes: BTreeSet::new(), ..self.clone() };
            return if unthemed.matches(campaign, row) { Selection::Excluded(Exclusion::Erased) } else { Selection::Outside };
        }
        if !self.matches(campaign, row) {
            return Selection::Outside;
        }
        if row.suppressed || row.invitation.suppressed.is_some() {
            return Selection::Excluded(Exclusion::Suppressed);
        }
        match &row.invitation.contact.email {
            Some(email) => Selection::Included(email.as_str().to_lowercase()),
            None => Selection::Excluded(Exclusion::NoEmail),
        }
    }

    /// A one-line description for the dashboard.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.groups.is_empty() {
            parts.push("every respondent".to_owned());
        } else {
            parts.push(format!("{}s", self.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>().join("s, ")));
        }
        if !self.themes.is_empty() {
            parts.push(format!("theme {}", self.themes.iter().cloned().collect::<Vec<_>>().join(" or ")));
        }
        if !self.segments.is_empty() {
            parts.push(format!("segment {}", self.segments.iter().cloned().collect::<Vec<_>>().join(" or ")));
        }
        if self.non_respondents {
            parts.push("and those who did not answer".to_owned());
        }
        parts.join(", ")
    }
}

/// How many an update reaches, and how many it leaves out, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceCount {
    pub reached: u64,
    #[serde(default)]
    pub excluded: BTreeMap<Exclusion, u64>,
    /// Of those reached, how many answered (the rest were invited and did not).
    #[serde(default)]
    pub respondents: u64,
}

impl AudienceCount {
    pub fn exclude(&mut self, why: Exclusion) {
        *self.excluded.entry(why).or_default() += 1;
    }

    pub fn excluded_total(&self) -> u64 {
        self.excluded.values().sum()
    }
}

/// Counts a whole audience from rows, each person once (the first of their invitations).
#[derive(Debug, Default)]
pub struct AudienceCounter {
    pub count: AudienceCount,
    seen: BTreeSet<String>,
}

impl AudienceCounter {
    /// Adds a row; the address it goes to when it is included.
    pub fn add(&mut self, audience: &UpdateAudience, campaign: &Campaign, row: &InvitationRow) -> Option<String> {
        match audience.select(campaign, row) {
            Selection::Outside => None,
            Selection::Excluded(why) => {
                self.count.exclude(why);
                None
            }
            Selection::Included(address) => {
                if !self.seen.insert(address.clone()) {
                    self.count.exclude(Exclusion::AlreadyIncluded);
                    return None;
                }
                self.count.reached += 1;
                if row.answer.is_some() {
                    self.count.respondents += 1;
                }
                Some(address)
            }
        }
    }
}

/// Where sending stands; saved after each page so a cut-off run goes on where it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateProgress {
    /// The store's row cursor after the last page sent.
    #[serde(default)]
    pub cursor: Option<String>,
    pub sent: u64,
    #[serde(default)]
    pub excluded: BTreeMap<Exclusion, u64>,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
}

/// An update as written and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignUpdate {
    pub id: UpdateId,
    pub campaign_id: CampaignId,
    pub author: String,
    pub created_at: Timestamp,
    /// One text per campaign language that has one; a person whose language has none gets
    /// the campaign's first language's.
    pub texts: BTreeMap<Locale, UpdateText>,
    pub audience: UpdateAudience,
    /// Every `https://` address in the texts, in order, once: a tracked link is its index here.
    pub links: Vec<String>,
    /// The count when it was sent, for the dashboard beside the progress.
    #[serde(default)]
    pub planned: AudienceCount,
    #[serde(default)]
    pub progress: UpdateProgress,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct UpdateProblem {
    pub field: String,
    pub message: String,
}

impl CampaignUpdate {
    /// Checks the composer's fields: a subject and a text for the campaign's first language at
    /// least, within their lengths; https links only, at most `MAX_LINKS`; themes and groups
    /// the campaign has. Text is cleaned as every input is (`clean`).
    pub fn compose(
        id: UpdateId,
        campaign: &Campaign,
        author: &str,
        at: Timestamp,
        texts: BTreeMap<Locale, UpdateText>,
        audience: UpdateAudience,
    ) -> Result<Self, Vec<UpdateProblem>> {
        let mut problems = Vec::new();
        let mut problem = |field: String, message: &str| problems.push(UpdateProblem { field, message: message.to_owned() });
        let mut kept = BTreeMap::new();
        for (locale, text) in texts {
            let subject = crate::clean::field(&text.subject);
            let body = crate::clean::comment(&text.body).trim().to_owned();
            if subject.is_empty() && body.is_empty() {
                continue;
            }
            let code = locale.code();
            if !campaign.locales.contains(&locale) {
                problem(format!("body_{code}"), "the campaign does not ask in this language");
            }
            if subject.is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS {
                problem(format!("subject_{code}"), &format!("a subject needs 1 to {MAX_SUBJECT_CHARS} characters"));
            }
            if body.is_empty() || body.chars().count() > MAX_BODY_CHARS {
                problem(format!("body_{code}"), &format!("the text needs 1 to {MAX_BODY_CHARS} characters"));
            }
            if body.contains("http://") {
                problem(format!("body_{code}"), "links must start with https://");
            }
            kept.insert(locale, UpdateText { subject, body });
        }
        let first = campaign.locales.first().copied().unwrap_or(Locale::En);
        if !kept.contains_key(&first) {
            problem(format!("body_{}", first.code()), "the campaign's first language needs a subject and a text");
        }
        for theme in &audience.themes {
            if !campaign.themes.contains_key(theme) {
                problem("themes".into(), "choose themes the campaign has");
            }
        }
        let mut links = Vec::new();
        for text in kept.values() {
            for link in links_in(&text.body) {
                if !links.contains(&link) {
                    links.push(link);
                }
            }
        }
        // A link goes into a Location header: its address must be ASCII there. The path is
        // percent-encoded when redirecting; a domain must be written in its ASCII form.
        if links.iter().any(|l| !l["https://".len()..].split(['/', '?', '#']).next().unwrap_or_default().is_ascii()) {
            problem("links".into(), "write a link's domain in its ASCII (xn--) form");
        }
        if links.len() > MAX_LINKS {
            problem("links".into(), &format!("at most {MAX_LINKS} different links"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            id,
            campaign_id: campaign.id.clone(),
            author: author.to_owned(),
            created_at: at,
            texts: kept,
            audience,
            links,
            planned: AudienceCount::default(),
            progress: UpdateProgress::default(),
        })
    }

    /// The text for a person's language, else the campaign's first language's.
    pub fn text_for(&self, locale: Locale) -> Option<(Locale, &UpdateText)> {
        self.texts.get(&locale).map(|t| (locale, t)).or_else(|| self.texts.iter().next().map(|(l, t)| (*l, t)))
    }

    pub fn link_index(&self, url: &str) -> Option<usize> {
        self.links.iter().position(|l| l == url)
    }

    /// The send key: once per update and person. The person is their HMAC pseudonym (the
    /// erasure key's), so the claim names nobody.
    pub fn send_key(&self, person_pseudonym: &str) -> String {
        format!("update:{}:{person_pseudonym}", self.id)
    }

    pub fn is_finished(&self) -> bool {
        self.progress.finished_at.is_some()
    }
}

/// Where `https://` addresses start and end in a text: up to white space, without the
/// punctuation a sentence puts after one ("see https://x.example/a.").
pub fn link_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("https://") {
        let start = from + found;
        let rest = &text[start..];
        let mut end = start + rest.find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"')).unwrap_or(rest.len());
        while end > start && text[..end].ends_with(['.', ',', ';', ':', '!', '?', ')', '\'']) {
            end -= 1;
        }
        if end - start > "https://".len() {
            spans.push((start, end));
        }
        from = end.max(start + 1);
    }
    spans
}

/// A link as a Location header holds it: every byte outside printable ASCII percent-encoded
/// (an address written with å or ü in its path).
pub fn location_of(link: &str) -> String {
    let mut out = String::with_capacity(link.len());
    for byte in link.bytes() {
        if byte.is_ascii_graphic() {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn links_in(text: &str) -> Vec<String> {
    link_spans(text).into_iter().map(|(s, e)| text[s..e].to_owned()).collect()
}

/// The counter bucket of an update's links: `link{i}` counts each person's first click on link i.
pub fn clicks_bucket(update: &UpdateId) -> String {
    format!("update\u{1f}{update}")
}

pub fn link_field(index: usize) -> String {
    format!("link{index}")
}

impl Change {
    /// A person's first click on one of an update's links; later clicks change nothing.
    pub fn update_link_clicked(invitation: &InvitationId, campaign: &CampaignId, update: &UpdateId, link: usize, at: Timestamp) -> Self {
        Self {
            event: Event {
                id: format!("update-click-{update}-{link}-{invitation}"),
                at,
                kind: EventKind::UpdateLinkClicked { invitation_id: invitation.clone(), update_id: update.clone(), link: link as u32 },
            },
            campaign: campaign.clone(),
            deltas: CounterDeltas::single(&clicks_bucket(update), &link_field(link), 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    const T0: Timestamp = Timestamp::from_millis(1_790_000_000_000);

    fn sample_campaign() -> Campaign {
        largest_campaign("c")
    }

    fn text(subject: &str, body: &str) -> UpdateText {
        UpdateText { subject: subject.into(), body: body.into() }
    }

    #[test]
    fn an_update_id_is_parsed_strictly_and_made_the_same_way_twice() {
        let c = CampaignId::parse("c").unwrap();
        let id = UpdateId::new(&c, "anna", Timestamp::from_millis(5));
        assert_eq!(id, UpdateId::new(&c, "anna", Timestamp::from_millis(5)));
        assert_eq!(UpdateId::parse(id.as_str()).unwrap(), id);
        for bad in ["", "upd_", "upd_0123456789abcdeF", "upd_0123456789abcde", "x_0123456789abcdef", "upd_0123456789abcdef0"] {
            assert!(UpdateId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_stop_at_white_space_and_sentence_punctuation() {
        let body = "We fixed it: https://acme.example/news/1. See also (https://acme.example/faq), or http://plain.example.";
        assert_eq!(links_in(body), vec!["https://acme.example/news/1", "https://acme.example/faq"]);
        assert!(links_in("https:// alone").is_empty());
    }

    #[test]
    fn composing_needs_the_first_language_and_refuses_plain_http_and_unknown_themes() {
        let campaign = sample_campaign();
        let first = campaign.locales[0];
        let id = UpdateId::new(&campaign.id, "anna", T0);
        let ok = CampaignUpdate::compose(
            id.clone(),
            &campaign,
            "anna",
            T0,
            BTreeMap::from([(first, text("We heard you", "Delivery is faster now: https://acme.example/d"))]),
            UpdateAudience::default(),
        )
        .unwrap();
        assert_eq!(ok.links, vec!["https://acme.example/d"]);
        let missing = CampaignUpdate::compose(id.clone(), &campaign, "anna", T0, BTreeMap::new(), UpdateAudience::default()).unwrap_err();
        assert!(missing.iter().any(|p| p.field == format!("body_{}", first.code())));
        let http = CampaignUpdate::compose(id.clone(), &campaign, "anna", T0, BTreeMap::from([(first, text("s", "see http://x.example"))]), UpdateAudience::default())
            .unwrap_err();
        assert!(http.iter().any(|p| p.message.contains("https")));
        let theme = UpdateAudience { themes: BTreeSet::from(["no such theme".to_owned()]), ..Default::default() };
        let unknown = CampaignUpdate::compose(id, &campaign, "anna", T0, BTreeMap::from([(first, text("s", "b"))]), theme).unwrap_err();
        assert!(unknown.iter().any(|p| p.field == "themes"));
    }

    #[test]
    fn a_link_with_letters_beyond_ascii_is_percent_encoded_for_its_redirect_and_its_domain_must_be_ascii() {
        assert_eq!(location_of("https://exempel.se/nyheter/höst"), "https://exempel.se/nyheter/h%C3%B6st");
        let campaign = sample_campaign();
        let first = campaign.locales[0];
        let id = UpdateId::new(&campaign.id, "a", T0);
        let path = CampaignUpdate::compose(id.clone(), &campaign, "a", T0, BTreeMap::from([(first, text("s", "https://exempel.se/höst"))]), UpdateAudience::default());
        assert!(path.is_ok());
        let domain = CampaignUpdate::compose(id, &campaign, "a", T0, BTreeMap::from([(first, text("s", "https://exämpel.se/x"))]), UpdateAudience::default()).unwrap_err();
        assert!(domain.iter().any(|p| p.field == "links"));
    }

    #[test]
    fn control_characters_never_reach_the_subject() {
        let campaign = sample_campaign();
        let first = campaign.locales[0];
        let update = CampaignUpdate::compose(
            UpdateId::new(&campaign.id, "a", T0),
            &campaign,
            "a",
            T0,
            BTreeMap::from([(first, text("Hello\r\nBcc: x@evil.example", "Body"))]),
            UpdateAudience::default(),
        )
        .unwrap();
        assert!(!update.texts[&first].subject.contains(['\r', '\n']));
    }
}
