//! What a respondent will receive, before anything is sent: every mail, SMS and page of a
//! campaign in one locale, filled in with a sample contact, for one group's answer.
//!
//! The sample's link token is a fixed one no invitation has, so a click in a preview records
//! nothing.

use serde::Serialize;

use closeloop_core::campaign::Campaign;
use closeloop_core::gsm::{sms_length, SmsEncoding};
use closeloop_core::model::{Answer, Contact, Email, Invitation, InvitationId, Locale, Token};
use closeloop_core::nps::{Group, Score};
use closeloop_core::ports::{Links, MessageKind};
use crate::render::{self, RenderError, RenderedMail};
use closeloop_core::survey::SurveyForm;
use closeloop_core::time::Timestamp;

/// The token of every preview: all zeros, which the token generator's randomness never yields
/// in practice and the stores never hold.
pub fn preview_token() -> Token {
    Token::from_random_bytes([0; 16])
}

/// A made-up contact, for a campaign with no invitations yet.
pub fn sample_contact(campaign: &Campaign) -> Contact {
    Contact {
        email: Email::parse("alex.andersson@example.com").ok(),
        first_name: Some("Alex".into()),
        last_name: Some("Andersson".into()),
        company: Some(format!("{} customer", campaign.company)),
        ..Contact::default()
    }
}

/// The sample invitation: `contact` (a real row's, or the made-up one) in `locale`, with the
/// preview token.
pub fn sample_invitation(campaign: &Campaign, contact: Contact, locale: Locale, at: Timestamp) -> Result<Invitation, closeloop_core::model::ContactError> {
    let mut invitation = Invitation::new(InvitationId("preview".into()), preview_token(), campaign, contact, at)?;
    invitation.locale = locale;
    Ok(invitation)
}

/// A typical answer of `group`: the score and comment the thank-you page and mail reflect.
pub fn sample_answer(invitation: &Invitation, group: Group, at: Timestamp) -> Answer {
    let score = match group {
        Group::Promoter => 10,
        Group::Passive => 8,
        Group::Detractor => 3,
    };
    Answer {
        invitation_id: invitation.id.clone(),
        campaign_id: invitation.campaign_id.clone(),
        score: Score::new(score).expect("3, 8 and 10 are scores"),
        comment: Some("…".into()),
        contact_ok: group == Group::Detractor,
        ratings: Default::default(),
        version: 1,
        first_answered_at: at,
        answered_at: at,
    }
}

#[derive(Debug, Serialize)]
pub struct MailPreview {
    pub label: &'static str,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Serialize)]
pub struct SmsPreview {
    pub label: &'static str,
    pub text: String,
    /// Characters as the respondent sees them.
    pub characters: usize,
    pub encoding: &'static str,
    pub segments: usize,
}

#[derive(Debug, Serialize)]
pub struct PagePreview {
    pub label: &'static str,
    pub html: String,
}

/// Everything one locale and group of a campaign sends and shows.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub locale: &'static str,
    pub group: &'static str,
    pub mails: Vec<MailPreview>,
    pub sms: Vec<SmsPreview>,
    pub pages: Vec<PagePreview>,
}

fn mail_preview(label: &'static str, mail: RenderedMail) -> MailPreview {
    MailPreview { label, subject: mail.subject, text: mail.text, html: mail.html }
}

fn sms_preview(label: &'static str, text: String) -> SmsPreview {
    let length = sms_length(&text);
    let encoding = match length.encoding {
        SmsEncoding::Gsm7 => "GSM-7",
        SmsEncoding::Ucs2 => "UCS-2 (a character outside GSM-7)",
    };
    SmsPreview { label, characters: text.chars().count(), encoding, segments: length.segments, text }
}

/// Renders every message and page of `campaign` for `invitation` (see [`sample_invitation`]),
/// as a respondent answering in `group` would get them.
pub fn preview(campaign: &Campaign, invitation: &Invitation, group: Group, links: &Links, at: Timestamp) -> Result<Preview, RenderError> {
    let answer = sample_answer(invitation, group, at);
    let mut mails = vec![
        mail_preview("Invitation", render::ask_mail(MessageKind::Invitation, campaign, invitation, links)?),
        mail_preview("Reminder", render::ask_mail(MessageKind::Reminder, campaign, invitation, links)?),
        mail_preview("Thank-you", render::thank_you_mail(campaign, invitation, &answer, links)?),
    ];
    if group == Group::Promoter && !campaign.review_sites.is_empty() {
        mails.push(mail_preview("Review invitation", render::review_mail(campaign, invitation, &answer, links)?));
    }
    let sms = vec![
        sms_preview("Invitation SMS", render::sms(MessageKind::Invitation, campaign, invitation, links)?),
        sms_preview("Reminder SMS", render::sms(MessageKind::Reminder, campaign, invitation, links)?),
    ];
    let form = SurveyForm { score: Some(answer.score.value()), ..SurveyForm::default() };
    let survey = render::survey_page(&render::SurveyPage { campaign, invitation, form: &form, existing: None, errors: &[], unavailable: false })?;
    let pages = vec![
        PagePreview { label: "Survey page (from the mail's score link)", html: survey },
        PagePreview { label: "Thank-you page", html: render::thanks_page(campaign, invitation, &answer, links)? },
    ];
    Ok(Preview { locale: invitation.locale.code(), group: group.as_str(), mails, sms, pages })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign() -> Campaign {
        Campaign::from_toml(include_str!("../../demo/campaign.toml")).expect("the demo campaign")
    }

    #[test]
    fn a_preview_holds_every_message_and_page_in_the_chosen_language() {
        let campaign = campaign();
        let at = Timestamp::from_millis(1_790_000_000_000);
        let links = Links::new("https://nps.example");
        let invitation = sample_invitation(&campaign, sample_contact(&campaign), Locale::Sv, at).unwrap();
        let preview = preview(&campaign, &invitation, Group::Promoter, &links, at).unwrap();
        assert_eq!(preview.locale, "sv");
        let labels: Vec<&str> = preview.mails.iter().map(|m| m.label).collect();
        assert!(labels.starts_with(&["Invitation", "Reminder", "Thank-you"]), "{labels:?}");
        assert!(preview.mails[0].html.contains("Alex"), "filled in with the sample contact");
        assert!(preview.mails[0].text.contains(preview_token().as_str()), "its links carry the preview token");
        assert!(preview.sms.iter().all(|s| s.segments >= 1 && s.characters == s.text.chars().count()));
        assert_eq!(preview.pages.len(), 2);
        assert!(preview.pages[0].html.contains("value=\"10\" checked"), "the page as opened from the promoter's score link");
        let detractor = crate::preview::preview(&campaign, &invitation, Group::Detractor, &links, at).unwrap();
        assert!(detractor.mails.iter().all(|m| m.label != "Review invitation"), "only promoters are asked for a review");
    }

    #[test]
    fn an_sms_outside_gsm7_says_so_and_counts_its_segments() {
        let sms = sms_preview("x", "Hej 😀".repeat(20));
        assert!(sms.encoding.starts_with("UCS-2"));
        assert!(sms.segments > 1);
        assert_eq!(sms_preview("x", "Hej!".into()).encoding, "GSM-7");
    }
}
