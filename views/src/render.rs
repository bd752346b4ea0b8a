//! Pages and messages, rendered from the templates in `templates/` (compiled in, so the Worker
//! needs no filesystem). Text comes from one strings file per locale; HTML is auto-escaped.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use minijinja::{context, Environment, Value};
use serde::Serialize;

use closeloop_core::campaign::Campaign;
use closeloop_core::model::{Answer, Invitation, Locale, MAX_COMMENT_CHARS};
use closeloop_core::nps::Group;
use closeloop_core::ports::{Links, MessageKind};
use closeloop_core::survey::{FormError, SurveyForm};

#[derive(Debug, thiserror::Error)]
#[error("template {template} failed: {source}")]
pub struct RenderError {
    template: String,
    #[source]
    source: minijinja::Error,
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates!(
    "page/layout.html",
    "page/survey.html",
    "page/thanks.html",
    "page/notice.html",
    "page/unsubscribe.html",
    "mail/layout.html",
    "mail/scale.html",
    "mail/invitation/subject.txt",
    "mail/invitation/body.txt",
    "mail/invitation/body.html",
    "mail/reminder/subject.txt",
    "mail/reminder/body.txt",
    "mail/reminder/body.html",
    "mail/thank_you/subject.txt",
    "mail/thank_you/body.txt",
    "mail/thank_you/body.html",
    "mail/review_invitation/subject.txt",
    "mail/review_invitation/body.txt",
    "mail/review_invitation/body.html",
    "mail/alert/subject.txt",
    "mail/alert/body.txt",
    "mail/alert/body.html",
    "mail/escalation/subject.txt",
    "mail/escalation/body.txt",
    "mail/escalation/body.html",
    "mail/digest/subject.txt",
    "mail/digest/body.txt",
    "mail/digest/body.html",
    "mail/heads_up/subject.txt",
    "mail/heads_up/body.txt",
    "mail/heads_up/body.html",
    "mail/update/subject.txt",
    "mail/update/body.txt",
    "mail/update/body.html",
    "mail/case_follow_up/subject.txt",
    "mail/case_follow_up/body.txt",
    "mail/case_follow_up/body.html",
    "mail/webhook_disabled/subject.txt",
    "mail/webhook_disabled/body.txt",
    "mail/webhook_disabled/body.html",
    "sms/invitation.txt",
    "sms/reminder.txt",
    "admin/layout.html",
    "admin/campaign_nav.html",
    "admin/sign_in.html",
    "admin/message.html",
    "admin/campaigns.html",
    "admin/overview.html",
    "admin/segments.html",
    "admin/comments.html",
    "admin/drivers.html",
    "admin/cases.html",
    "admin/export.html",
    "admin/preview.html",
    "admin/campaign_form.html",
    "admin/campaign_import.html",
    "admin/changes.html",
    "admin/webhooks.html",
    "admin/updates.html",
    "admin/upload.html",
    "admin/dry_run.html",
    "admin/people.html",
    "admin/audit.html",
    "admin/accounts.html",
);

// LOCALE_STRINGS: the locale files, compiled by build.rs.
include!(concat!(env!("OUT_DIR"), "/locales.rs"));

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(false);
        // A name a template uses but its view model lacks is an error, not an empty string.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_formatter(html_formatter);
        for (name, source) in TEMPLATES {
            // A broken template is caught by the tests that render every template.
            if let Err(e) = env.add_template(name, source) {
                debug_assert!(false, "template {name}: {e}");
            }
        }
        env
    })
}

/// Escapes the five characters that matter in HTML (and SVG) text and attributes.
pub(crate) fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Templates escape with [`escape_html`]. minijinja's default also escapes `/`, which turns every
/// link in a mail into entity soup.
fn html_formatter(out: &mut minijinja::Output, state: &minijinja::State, value: &Value) -> Result<(), minijinja::Error> {
    match (state.auto_escape(), value.as_str()) {
        (minijinja::AutoEscape::Html, Some(text)) if !value.is_safe() => {
            out.write_str(&escape_html(text)).map_err(minijinja::Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

type StringTable = BTreeMap<String, String>;

fn tables() -> &'static BTreeMap<Locale, StringTable> {
    static TABLES: OnceLock<BTreeMap<Locale, StringTable>> = OnceLock::new();
    TABLES.get_or_init(|| {
        LOCALE_STRINGS
            .iter()
            .filter_map(|(code, strings)| {
                let table = strings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
                Some((Locale::parse(code)?, table))
            })
            .collect()
    })
}

/// One locale's strings with `{placeholders}` filled in a single pass, so a value that itself
/// contains braces (a company called "{x}") is never expanded again.
#[derive(Debug, Clone)]
pub struct Strings {
    locale: Locale,
    vars: BTreeMap<&'static str, String>,
}

impl Strings {
    pub fn new(locale: Locale) -> Self {
        // How long the survey takes is said once per locale (`survey_duration`); every string
        // that mentions it says `{survey_duration}`, so they cannot drift apart.
        let strings = Self { locale, vars: BTreeMap::new() };
        let duration = strings.get("survey_duration");
        strings.with("survey_duration", duration)
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.vars.insert(name, value.into());
        self
    }

    pub fn get(&self, key: &str) -> String {
        // `privacy`: who controls the data, with the campaign's notice when it has one.
        let key = match key {
            "privacy" if self.vars.contains_key("privacy_url") => "privacy_notice",
            "privacy" => "privacy_notice_no_link",
            other => other,
        };
        let table = tables();
        let raw = table
            .get(&self.locale)
            .and_then(|t| t.get(key))
            .or_else(|| table.get(&Locale::En).and_then(|t| t.get(key)))
            .map(String::as_str)
            .unwrap_or(key);
        fill(raw, &self.vars)
    }

    /// Every string of the locale for a template's `t`: looked up and filled in only when the
    /// template reads it. (Filling every string of the locale for each mail was most of a
    /// launch's rendering time.) A key in no locale file is undefined, as it was in the table.
    fn all(&self) -> Value {
        Value::from_object(TemplateStrings(self.clone()))
    }

    fn has(&self, key: &str) -> bool {
        if key == "privacy" {
            return true;
        }
        let table = tables();
        [self.locale, Locale::En].iter().any(|locale| table.get(locale).is_some_and(|t| t.contains_key(key)))
    }
}

/// `Strings` as a template sees them (`t.key`, `t["key"]`).
#[derive(Debug)]
struct TemplateStrings(Strings);

impl minijinja::value::Object for TemplateStrings {
    fn get_value(self: &std::sync::Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        self.0.has(key).then(|| Value::from(self.0.get(key)))
    }
}

fn fill(raw: &str, vars: &BTreeMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(raw.len() + 32);
    let mut rest = raw;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) if vars.contains_key(&after[..end]) => {
                out.push_str(&vars[&after[..end]]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn render(name: &str, ctx: Value) -> Result<String, RenderError> {
    let fail = |source| RenderError { template: name.to_owned(), source };
    let template = environment().get_template(name).map_err(fail)?;
    template.render(ctx).map_err(fail)
}

/// A dashboard page (`admin/*.html`) from its view model.
pub fn render_admin(name: &str, ctx: &impl Serialize) -> Result<String, RenderError> {
    render(name, Value::from_serialize(ctx))
}

fn campaign_strings(campaign: &Campaign, invitation: &Invitation) -> Strings {
    let strings = Strings::new(invitation.locale)
        .with("company", campaign.company.clone())
        .with("first_name", invitation.contact.first_name.clone().unwrap_or_default())
        .with("sender_name", campaign.sender_name.clone())
        .with("retention_months", campaign.retention_months.to_string());
    match &campaign.privacy_url {
        Some(url) => strings.with("privacy_url", url.clone()),
        None => strings,
    }
}

fn greeting(strings: &Strings, invitation: &Invitation) -> String {
    if invitation.contact.first_name.is_some() {
        strings.get("greeting_named")
    } else {
        strings.get("greeting")
    }
}

pub fn follow_up_question(campaign: &Campaign, strings: &Strings, locale: Locale, group: Group) -> String {
    if let Some(custom) = campaign.follow_up.get(&group) {
        return custom.get(locale).to_owned();
    }
    strings.get(match group {
        Group::Detractor => "follow_up_detractor",
        Group::Passive => "follow_up_passive",
        Group::Promoter => "follow_up_promoter",
    })
}

pub fn form_error_message(strings: &Strings, error: &FormError) -> String {
    match error {
        FormError::ScoreMissing => strings.get("error_score_missing"),
        FormError::ScoreOutOfRange => strings.get("error_score_range"),
        FormError::CommentTooLong => fill(&strings.get("error_comment_long"), &[("max", MAX_COMMENT_CHARS.to_string())].into_iter().collect()),
        FormError::Rating(_) => strings.get("error_rating"),
        FormError::UnknownField(_) => strings.get("error_unknown_field"),
        FormError::ContactValue => strings.get("error_contact"),
    }
}

/// Everything the survey page shows besides the campaign and invitation.
pub struct SurveyPage<'a> {
    pub campaign: &'a Campaign,
    pub invitation: &'a Invitation,
    pub form: &'a SurveyForm,
    pub existing: Option<&'a Answer>,
    pub errors: &'a [FormError],
    /// Shown above the form when saving failed and the person must try again.
    pub unavailable: bool,
}

#[derive(Serialize)]
struct DriverView {
    key: String,
    label: String,
    value: Option<u8>,
}

pub fn survey_page(page: &SurveyPage<'_>) -> Result<String, RenderError> {
    let SurveyPage { campaign, invitation, form, existing, errors, unavailable } = page;
    let locale = invitation.locale;
    let strings = campaign_strings(campaign, invitation);
    let follow_up = |g| follow_up_question(campaign, &strings, locale, g);
    let follow_up_label = match form.score {
        Some(score) => follow_up(closeloop_core::nps::Score::new(score).map(|s| s.group()).unwrap_or(Group::Detractor)),
        None => strings.get("follow_up_any"),
    };
    let answered_note = existing.map(|a| {
        Strings::new(locale).with("score", a.score.to_string()).with("date", a.answered_at.display_in(&campaign.zone())).get("answered_note")
    });
    let mut messages: Vec<String> = errors.iter().map(|e| form_error_message(&strings, e)).collect();
    let mut error_heading = strings.get("error_title");
    if *unavailable {
        error_heading = strings.get("unavailable_title");
        messages.insert(0, strings.get("unavailable_body"));
    }
    let drivers: Vec<DriverView> = campaign
        .drivers
        .iter()
        .map(|d| DriverView { key: d.key.clone(), label: d.label.get(locale).to_owned(), value: form.ratings.get(&d.key).copied() })
        .collect();
    render(
        "page/survey.html",
        context! {
            lang => locale.code(),
            title => strings.get("page_title"),
            greeting => greeting(&strings, invitation),
            t => strings.all(),
            action => format!("/s/{}", invitation.token.as_str()),
            unsubscribe_url => format!("/u/{}", invitation.token.as_str()),
            privacy_url => page.campaign.privacy_url,
            score => form.score,
            comment => form.comment,
            contact_ok => form.contact_ok,
            drivers,
            follow_up => context! {
                detractor => follow_up(Group::Detractor),
                passive => follow_up(Group::Passive),
                promoter => follow_up(Group::Promoter),
            },
            follow_up_label,
            max_comment => MAX_COMMENT_CHARS,
            // The scales come from here rather than from a template `range`, so the template
            // engine's builtins need not ship in the Worker.
            scale => (0..=closeloop_core::nps::Score::MAX).collect::<Vec<u8>>(),
            rating_scale => (1..=closeloop_core::campaign::RATING_MAX).collect::<Vec<u8>>(),
            answered_note,
            errors => messages,
            error_heading,
            submit_label => strings.get(if existing.is_some() { "update" } else { "submit" }),
        },
    )
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LinkView {
    pub label: String,
    pub url: String,
}

/// Review-site buttons this answer may see, as tracked redirect links.
pub fn review_links(campaign: &Campaign, invitation: &Invitation, answer: &Answer, links: &Links, relative: bool) -> Vec<LinkView> {
    let strings = campaign_strings(campaign, invitation);
    closeloop_core::rules::review_sites_for(campaign, answer)
        .into_iter()
        .map(|site| {
            let url = if relative {
                format!("/r/{}/{}", invitation.token.as_str(), site.key)
            } else {
                links.review(&invitation.token, &site.key)
            };
            let label = fill(&strings.get("review_button"), &[("site", site.name.clone())].into_iter().collect());
            LinkView { label, url }
        })
        .collect()
}

/// "detractor", "contact_request" or none: which follow-up, if any, the respondent is told of.
fn follow_up_name(campaign: &Campaign, answer: &Answer) -> Option<&'static str> {
    closeloop_core::rules::follow_up_kind(campaign, answer).map(|k| k.as_str())
}

pub fn thanks_page(campaign: &Campaign, invitation: &Invitation, answer: &Answer, links: &Links) -> Result<String, RenderError> {
    let strings = campaign_strings(campaign, invitation);
    render(
        "page/thanks.html",
        context! {
            lang => invitation.locale.code(),
            title => strings.get("thanks_title"),
            t => strings.all(),
            contact_ok => answer.contact_ok,
            follow_up => follow_up_name(campaign, answer),
            promoter => answer.score.group() == Group::Promoter,
            review_links => review_links(campaign, invitation, answer, links, true),
            change_url => format!("/s/{}", invitation.token.as_str()),
        },
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    NotFound,
    BadRequest,
    Unavailable,
    /// The campaign ended more than `lifecycle::CLOSED_AFTER_DAYS` ago.
    Closed,
}

/// A page that leaks nothing about the link or the person: only fixed text in one language.
pub fn notice_page(locale: Locale, notice: Notice) -> Result<String, RenderError> {
    let strings = Strings::new(locale);
    let (heading, body) = match notice {
        Notice::NotFound => ("not_found_title", "not_found_body"),
        Notice::BadRequest => ("bad_request_title", "bad_request_body"),
        Notice::Unavailable => ("unavailable_title", "unavailable_body"),
        Notice::Closed => ("closed_title", "closed_body"),
    };
    render(
        "page/notice.html",
        context! { lang => locale.code(), title => strings.get(heading), heading => strings.get(heading), body => strings.get(body) },
    )
}

pub fn unsubscribe_page(campaign: &Campaign, invitation: &Invitation, done: bool) -> Result<String, RenderError> {
    let strings = campaign_strings(campaign, invitation);
    render(
        "page/unsubscribe.html",
        context! {
            lang => invitation.locale.code(),
            title => strings.get(if done { "unsubscribed_title" } else { "unsubscribe_title" }),
            t => strings.all(),
            done,
            action => format!("/u/{}", invitation.token.as_str()),
        },
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn mail(kind: MessageKind, ctx: Value) -> Result<RenderedMail, RenderError> {
    let base = format!("mail/{}", kind.as_str());
    let subject = render(&format!("{base}/subject.txt"), ctx.clone())?;
    let text = render(&format!("{base}/body.txt"), ctx.clone())?;
    let preheader = preheader(&text, ctx.get_attr("greeting").ok().and_then(|g| g.as_str().map(str::to_owned)).as_deref());
    Ok(RenderedMail {
        // Header injection guard: a subject is one line whatever a CRM field contained.
        subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
        html: render(&format!("{base}/body.html"), context! { subject, preheader, ..ctx })?,
        text,
    })
}

/// The line a mail client shows after the subject: the mail's first paragraph after the
/// greeting, at most about 120 characters, cut between words. Without one, clients show the
/// first text they find, which is the greeting or a layout table.
fn preheader(text: &str, greeting: Option<&str>) -> String {
    let first = text.split("\n\n").map(|p| p.split_whitespace().collect::<Vec<_>>().join(" ")).find(|p| !p.is_empty() && Some(p.as_str()) != greeting.map(str::trim));
    let Some(first) = first else { return String::new() };
    if first.chars().count() <= 120 {
        return first;
    }
    let mut cut = String::new();
    for word in first.split(' ') {
        if cut.chars().count() + word.chars().count() > 118 {
            break;
        }
        if !cut.is_empty() {
            cut.push(' ');
        }
        cut.push_str(word);
    }
    if cut.is_empty() {
        // One word longer than the whole preheader: cut inside it.
        cut = first.chars().take(118).collect();
    }
    cut.push('…');
    cut
}

#[derive(Serialize)]
struct ScaleLink {
    score: u8,
    url: String,
}

/// Invitation or reminder mail: the question with the 0–10 scale as eleven links.
pub fn ask_mail(kind: MessageKind, campaign: &Campaign, invitation: &Invitation, links: &Links) -> Result<RenderedMail, RenderError> {
    let strings = campaign_strings(campaign, invitation);
    let intro = strings.get(if kind == MessageKind::Reminder { "reminder_intro" } else { "invitation_intro" });
    let scale_links: Vec<ScaleLink> =
        (0..=10).map(|score| ScaleLink { score, url: links.survey_with_score(&invitation.token, score) }).collect();
    mail(
        kind,
        context! {
            lang => invitation.locale.code(),
            t => strings.all(),
            greeting => greeting(&strings, invitation),
            intro,
            scale_links,
            survey_url => links.survey(&invitation.token),
            unsubscribe_url => links.unsubscribe(&invitation.token),
            sender_name => campaign.sender_name,
            company => campaign.company,
        },
    )
}

/// The heads-up before a scheduled campaign starts: who will ask, about what, and when (the
/// start's date on the campaign's clock), signed by the contact's owner when the campaign knows
/// their name, else by the sender. No survey link yet: the invitation brings it.
pub fn heads_up_mail(campaign: &Campaign, invitation: &Invitation, signer: &str, starts: &str, links: &Links) -> Result<RenderedMail, RenderError> {
    let strings = campaign_strings(campaign, invitation)
        .with("date", starts.to_owned())
        .with("touchpoint", invitation.touchpoint.clone().unwrap_or_default());
    let intro = strings.get(if invitation.touchpoint.is_some() { "heads_up_intro_touchpoint" } else { "heads_up_intro" });
    mail(
        MessageKind::HeadsUp,
        context! {
            lang => invitation.locale.code(),
            t => strings.all(),
            greeting => greeting(&strings, invitation),
            intro,
            unsubscribe_url => links.unsubscribe(&invitation.token),
            sender_name => signer,
            company => campaign.company,
        },
    )
}

/// One run of a written text: plain, or a link (shown as written, pointing at `url`).
#[derive(Debug, Serialize)]
struct TextPart {
    text: String,
    url: Option<String>,
}

/// A plain text someone wrote as paragraphs (split at blank lines) for the HTML part, and the
/// text part with every `https://` address replaced by `link(address)`.
fn written_text(body: &str, link: impl Fn(&str) -> String) -> (Vec<Vec<TextPart>>, String) {
    let mut paragraphs = Vec::new();
    let mut text_parts = Vec::new();
    for paragraph in body.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut at = 0;
        for (start, end) in closeloop_core::updates::link_spans(paragraph) {
            let url = link(&paragraph[start..end]);
            parts.push(TextPart { text: paragraph[at..start].to_owned(), url: None });
            parts.push(TextPart { text: paragraph[start..end].to_owned(), url: Some(url.clone()) });
            text.push_str(&paragraph[at..start]);
            text.push_str(&url);
            at = end;
        }
        parts.push(TextPart { text: paragraph[at..].to_owned(), url: None });
        text.push_str(&paragraph[at..]);
        parts.retain(|p| !p.text.is_empty());
        paragraphs.push(parts);
        text_parts.push(text);
    }
    (paragraphs, text_parts.join("\n\n"))
}

/// "You said, we did": the update's text in the person's language (else the campaign's first),
/// every link in it tracked (`/n/…`), signed by the sender. No tracking pixel: only clicks count.
pub fn update_mail(campaign: &Campaign, invitation: &Invitation, update: &closeloop_core::updates::CampaignUpdate, links: &Links) -> Result<RenderedMail, RenderError> {
    let Some((locale, written)) = update.text_for(invitation.locale) else {
        return Err(RenderError { template: "mail/update".into(), source: minijinja::Error::new(minijinja::ErrorKind::UndefinedError, "the update has no text") });
    };
    let mut reader = invitation.clone();
    reader.locale = locale;
    let strings = campaign_strings(campaign, &reader);
    let (paragraphs, text_body) = written_text(&written.body, |url| match update.link_index(url) {
        Some(index) => links.update_link(&invitation.token, &update.id, index),
        None => url.to_owned(),
    });
    mail(
        MessageKind::Update,
        context! {
            lang => locale.code(),
            t => strings.all(),
            greeting => greeting(&strings, &reader),
            subject => written.subject,
            paragraphs,
            text_body,
            unsubscribe_url => links.unsubscribe(&invitation.token),
            sender_name => campaign.sender_name,
            company => campaign.company,
        },
    )
}

/// The owner's personal follow-up on closing a case: what they wrote, signed with their name.
/// Its links are shown as written: it is a personal note, not a campaign mail.
pub fn case_follow_up_mail(campaign: &Campaign, invitation: &Invitation, message: &str, signer: &str, links: &Links) -> Result<RenderedMail, RenderError> {
    let strings = campaign_strings(campaign, invitation);
    let (paragraphs, text_body) = written_text(message, str::to_owned);
    mail(
        MessageKind::CaseFollowUp,
        context! {
            lang => invitation.locale.code(),
            t => strings.all(),
            greeting => greeting(&strings, invitation),
            paragraphs,
            text_body,
            unsubscribe_url => links.unsubscribe(&invitation.token),
            sender_name => signer,
            company => campaign.company,
        },
    )
}

pub fn thank_you_mail(campaign: &Campaign, invitation: &Invitation, answer: &Answer, links: &Links) -> Result<RenderedMail, RenderError> {
    let strings = campaign_strings(campaign, invitation);
    // Promoters get a review invitation of its own; here others see the sites open to everyone.
    let review_links =
        if closeloop_core::rules::gets_review_push(answer) { Vec::new() } else { review_links(campaign, invitation, answer, links, false) };
    mail(
        MessageKind::ThankYou,
        context! {
            lang => invitation.locale.code(),
            t => strings.all(),
            greeting => greeting(&strings, invitation),
            contact_ok => answer.contact_ok,
            follow_up => follow_up_name(campaign, answer),
            review_links,
            unsubscribe_url => links.unsubscribe(&invitation.token),
            sender_name => campaign.sender_name,
            company => campaign.company,
        },
    )
}

pub fn review_mail(campaign: &Campaign, invitation: &Invitation, answer: &Answer, links: &Links) -> Result<RenderedMail, RenderError> {
    let strings = campaign_strings(campaign, invitation);
    mail(
        MessageKind::ReviewInvitation,
        context! {
            lang => invitation.locale.code(),
            t => strings.all(),
            greeting => greeting(&strings, invitation),
            review_links => review_links(campaign, invitation, answer, links, false),
            unsubscribe_url => links.unsubscribe(&invitation.token),
            sender_name => campaign.sender_name,
            company => campaign.company,
        },
    )
}

#[derive(Serialize)]
struct FieldView {
    label: String,
    value: String,
}

/// Alert or escalation to the person who must follow up: the answer with its CRM context.
pub fn follow_up_mail(
    kind: MessageKind,
    campaign: &Campaign,
    invitation: &Invitation,
    answer: &Answer,
    due: closeloop_core::time::Timestamp,
) -> Result<RenderedMail, RenderError> {
    let locale = campaign.locales[0];
    let c = &invitation.contact;
    let name = Some(c.full_name()).filter(|n| !n.is_empty()).unwrap_or_else(|| {
        c.email.as_ref().map(|e| e.as_str().to_owned()).or_else(|| c.phone.as_ref().map(|p| p.as_str().to_owned())).unwrap_or_default()
    });
    let due = due.display_in(&campaign.zone());
    let strings = Strings::new(locale)
        .with("name", name)
        .with("score", answer.score.to_string())
        .with("due", due.clone())
        .with("campaign", campaign.name.clone());
    let mut fields = Vec::new();
    let mut push = |label: String, value: Option<&str>| {
        if let Some(v) = value {
            fields.push(FieldView { label, value: v.to_owned() });
        }
    };
    // The labels in the mail's language; a CRM property is labelled by its own column name.
    push(strings.get("field_email"), c.email.as_ref().map(|e| e.as_str()));
    push(strings.get("field_phone"), c.phone.as_ref().map(|p| p.as_str()));
    push(strings.get("field_company"), c.company.as_deref());
    push(strings.get("field_segment"), c.segment.as_deref());
    push(strings.get("field_store"), c.store.as_deref());
    push(strings.get("field_touchpoint"), invitation.touchpoint.as_deref());
    push(strings.get("field_owner"), c.owner_email.as_ref().map(|e| e.as_str()));
    for (k, v) in &c.properties {
        push(k.clone(), Some(v));
    }
    let ratings: Vec<FieldView> = answer
        .ratings
        .iter()
        .map(|(k, v)| FieldView { label: campaign.driver(k).map(|d| d.label.get(locale).to_owned()).unwrap_or_else(|| k.clone()), value: v.to_string() })
        .collect();
    let request = closeloop_core::rules::follow_up_kind(campaign, answer) == Some(closeloop_core::rules::FollowUpKind::ContactRequest);
    let intro = strings.get(match (kind == MessageKind::Escalation, request) {
        (true, false) => "escalation_intro",
        (true, true) => "escalation_intro_request",
        (false, false) => "alert_intro",
        (false, true) => "alert_intro_request",
    });
    mail(
        kind,
        context! {
            lang => locale.code(),
            t => strings.all(),
            intro,
            request,
            score => answer.score.value(),
            group => strings.get(match answer.score.group() {
                Group::Detractor => "group_detractor",
                Group::Passive => "group_passive",
                Group::Promoter => "group_promoter",
            }),
            comment => answer.comment,
            contact_ok => answer.contact_ok,
            ratings,
            fields,
            due,
            // Staff mail has no unsubscribe link: the layout asks, and Strict wants an answer.
            unsubscribe_url => (),
        },
    )
}

#[derive(Serialize)]
struct DigestLine {
    name: String,
    score: u8,
    comment: Option<String>,
    case: Option<String>,
}

/// The weekly digest for one owner (`scope` names them) or a whole campaign. `cases` gives, per
/// new detractor, the follow-up deadline and whether it has passed.
pub fn digest_mail(
    locale: Locale,
    zone: &closeloop_core::time::Zone,
    scope: &str,
    digest: &closeloop_core::report::WeeklyDigest,
    cases: &[Option<(closeloop_core::time::Timestamp, bool)>],
    open_cases: (usize, usize),
    dashboard_url: &str,
) -> Result<RenderedMail, RenderError> {
    let this = digest.this_week;
    let estimate = this.estimate();
    let show = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:+.0}"));
    let strings = Strings::new(locale)
        .with("scope", scope.to_owned())
        .with("nps", show(estimate.map(|e| e.nps)))
        .with("margin", estimate.map_or("–".to_owned(), |e| format!("{:.0}", e.margin_95)))
        .with("answered", this.answered().to_string())
        .with("promoters", this.promoters.to_string())
        .with("passives", this.passives.to_string())
        .with("detractors", this.detractors.to_string())
        .with("open", open_cases.0.to_string())
        .with("overdue", open_cases.1.to_string());
    let change = closeloop_core::nps::change(&digest.last_week, &this).map(|c| {
        let margin = format!("{:.0}", c.margin_95);
        let significance = Strings::new(locale)
            .with("margin", margin)
            .get(if c.significant { "digest_significant" } else { "digest_not_significant" });
        Strings::new(locale).with("delta", format!("{:+.0}", c.delta)).with("significance", significance).get("digest_change")
    });
    let detractors: Vec<DigestLine> = digest
        .new_detractors
        .iter()
        .enumerate()
        .map(|(i, e)| DigestLine {
            name: e.name.clone(),
            score: e.score,
            comment: e.comment.clone(),
            case: cases.get(i).copied().flatten().map(|(due, overdue)| {
                Strings::new(locale).with("due", due.display_in(zone)).get(if overdue { "digest_case_overdue" } else { "digest_case_open" })
            }),
        })
        .collect();
    let comments: Vec<DigestLine> = digest
        .comments
        .iter()
        .map(|e| DigestLine { name: e.name.clone(), score: e.score, comment: e.comment.clone(), case: None })
        .collect();
    mail(
        MessageKind::Digest,
        context! { lang => locale.code(), t => strings.all(), change, detractors, comments, dashboard_url, unsubscribe_url => () },
    )
}

/// To the manager: an endpoint was switched off after `failures` failures in a row; `last` is
/// its last answer ("HTTP 503", "timed out").
pub fn webhook_disabled_mail(campaign: &Campaign, url: &str, host: &str, failures: u32, last: &str, dashboard_url: &str) -> Result<RenderedMail, RenderError> {
    let locale = campaign.locales[0];
    let strings = Strings::new(locale)
        .with("url", url.to_owned())
        .with("host", host.to_owned())
        .with("failures", failures.to_string())
        .with("last", last.to_owned())
        .with("campaign", campaign.name.clone());
    mail(MessageKind::WebhookDisabled, context! { lang => locale.code(), t => strings.all(), dashboard_url, unsubscribe_url => () })
}

pub fn sms(kind: MessageKind, campaign: &Campaign, invitation: &Invitation, links: &Links) -> Result<String, RenderError> {
    let strings = campaign_strings(campaign, invitation).with("link", links.survey(&invitation.token));
    let name = if kind == MessageKind::Reminder { "sms/reminder.txt" } else { "sms/invitation.txt" };
    Ok(render(name, context! { t => strings.all() })?.trim().to_owned())
}

#[cfg(test)]
mod tests;
