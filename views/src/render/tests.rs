use super::*;
use closeloop_core::campaign::CampaignId;
use closeloop_core::gsm::{sms_length, SmsEncoding};
use closeloop_core::model::{Contact, Email, InvitationId, Token};
use closeloop_core::nps::Score;
use closeloop_core::time::Timestamp;

// Every locale complete, no English literal in a template, one survey duration.
mod locales;
// Arbitrary input through every renderer and the form parser.
mod properties;

fn campaign() -> Campaign {
    Campaign::from_toml(
        r#"
        id = "visit"
        name = "Service visit"
        company = "Nordhavn & <Cykler>"
        sender_name = "Karin Lund"
        sender_email = "karin@nordhavn.example"
        locales = ["en", "sv", "da"]
        [[drivers]]
        key = "ease"
        label = { en = "Ease of doing business", sv = "Enkelhet" }
        [[drivers]]
        key = "value"
        label = "Value for money"
        [[review_sites]]
        key = "trustpilot"
        name = "Trustpilot"
        url = "https://www.trustpilot.com/evaluate/nordhavn.example"
        [[review_sites]]
        key = "shop"
        name = "Our shop"
        url = "https://shop.example/review"
        audience = "promoters_only"
        "#,
    )
    .unwrap()
}

fn invitation(locale: Locale, first_name: &str) -> Invitation {
    let mut inv = Invitation::new(
        InvitationId("i1".into()),
        Token::from_random_bytes([7; 16]),
        &campaign(),
        Contact {
            email: Some(Email::parse("asa@example.se").unwrap()),
            first_name: Some(first_name.into()),
            company: Some("Berg \"&\" Söner <AB>".into()),
            properties: [("note".to_owned(), "=HYPERLINK(\"x\")<img src=x>".to_owned())].into_iter().collect(),
            ..Contact::default()
        },
        Timestamp::from_millis(0),
    )
    .unwrap();
    inv.locale = locale;
    inv
}

fn answer(score: u8) -> Answer {
    Answer {
        invitation_id: InvitationId("i1".into()),
        campaign_id: CampaignId::parse("visit").unwrap(),
        score: Score::new(score).unwrap(),
        comment: Some("<script>alert(1)</script> & more".into()),
        contact_ok: true,
        ratings: [("ease".to_owned(), 2)].into_iter().collect(),
        version: 1,
        first_answered_at: Timestamp::from_millis(0),
        answered_at: Timestamp::from_millis(0),
    }
}

fn links() -> Links {
    Links::new("https://nps.example/")
}

fn page(locale: Locale, first_name: &str, form: &SurveyForm, errors: &[FormError]) -> String {
    let c = campaign();
    let inv = invitation(locale, first_name);
    survey_page(&SurveyPage { campaign: &c, invitation: &inv, form, existing: None, errors, unavailable: false }).unwrap()
}

#[test]
fn the_survey_page_stays_under_14_kb_in_every_locale() {
    let form = SurveyForm { comment: "x".repeat(100), ..SurveyForm::default() };
    for locale in Locale::ALL {
        let html = page(locale, "Åsa", &form, &[FormError::ScoreMissing]);
        assert!(html.len() < 14 * 1024, "{locale:?} page is {} bytes", html.len());
        assert!(html.contains(&format!("<html lang=\"{}\">", locale.code())));
    }
}

#[test]
fn the_survey_page_escapes_every_crm_field_and_company_name() {
    let html = page(Locale::En, "<img src=x onerror=alert(1)>", &SurveyForm::default(), &[]);
    assert!(!html.contains("<img src=x"), "first name must be escaped");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("Nordhavn &amp; &lt;Cykler&gt;"));
    assert!(!html.contains("<Cykler>"));
}

#[test]
fn the_survey_page_has_the_scale_the_follow_up_and_the_consent_question() {
    let html = page(Locale::Sv, "Åsa", &SurveyForm { score: Some(3), ..SurveyForm::default() }, &[]);
    assert_eq!(html.matches("name=\"score\"").count(), 11);
    assert!(html.contains("value=\"3\" checked"), "the score from the email link is chosen");
    assert!(html.contains("Hur troligt är det att du skulle rekommendera"));
    assert!(html.contains("Vad gör att du inte vill rekommendera"), "detractor follow-up for 3");
    assert!(html.contains("Enkelhet"));
    assert_eq!(html.matches("name=\"rating.ease\"").count(), 5);
    assert!(html.contains("name=\"contact_ok\""));
    assert!(html.contains("<legend"), "the scale is a fieldset with a legend");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external requests or links");
}

#[test]
fn form_errors_are_shown_in_the_page_language_with_what_was_typed() {
    let form = SurveyForm { comment: "Min kommentar".into(), ..SurveyForm::default() };
    let html = page(Locale::Da, "Åsa", &form, &[FormError::ScoreMissing]);
    assert!(html.contains("role=\"alert\""));
    assert!(html.contains("Vælg en karakter fra 0 til 10."));
    assert!(html.contains(">Min kommentar</textarea>"));
}

#[test]
fn the_invitation_mail_embeds_eleven_score_links_and_the_unsubscribe_link() {
    let mail = ask_mail(MessageKind::Invitation, &campaign(), &invitation(Locale::En, "Åsa"), &links()).unwrap();
    let token = Token::from_random_bytes([7; 16]);
    for n in 0..=10 {
        let link = format!("https://nps.example/s/{}?score={n}", token.as_str());
        assert!(mail.text.contains(&link), "text part lacks score {n}");
        assert!(mail.html.contains(&link), "html part lacks score {n}");
    }
    let unsubscribe = format!("https://nps.example/u/{}", token.as_str());
    assert!(mail.text.contains(&unsubscribe) && mail.html.contains(&unsubscribe));
    assert_eq!(mail.subject, "How did we do? A short question from Nordhavn & <Cykler> (2 minutes)");
    assert!(mail.html.contains("Nordhavn &amp; &lt;Cykler&gt;"));
    assert!(mail.text.contains("Hi Åsa,"));
    assert!(mail.text.contains("not anonymous"));
}

#[test]
fn a_subject_stays_on_one_line_whatever_the_crm_holds() {
    let mut c = campaign();
    c.company = "Evil\r\nBcc: x@y.example".into();
    let mail = ask_mail(MessageKind::Invitation, &c, &invitation(Locale::En, "A"), &links()).unwrap();
    assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
}

#[test]
fn every_mail_renders_in_every_locale_and_localises_its_subject() {
    let c = campaign();
    for locale in Locale::ALL {
        let inv = invitation(locale, "Åsa");
        let a = answer(9);
        let mails = [
            ask_mail(MessageKind::Invitation, &c, &inv, &links()).unwrap(),
            ask_mail(MessageKind::Reminder, &c, &inv, &links()).unwrap(),
            thank_you_mail(&c, &inv, &answer(4), &links()).unwrap(),
            review_mail(&c, &inv, &a, &links()).unwrap(),
        ];
        for m in &mails {
            assert!(!m.subject.is_empty() && !m.text.is_empty() && m.html.starts_with("<!doctype html>"));
            assert!(!m.subject.contains('{'), "unfilled placeholder in {:?}", m.subject);
        }
        let reminder_subject = &mails[1].subject;
        match locale {
            Locale::Sv => assert!(reminder_subject.contains("påminnelse")),
            Locale::Da => assert!(reminder_subject.contains("påmindelse")),
            Locale::En => assert!(reminder_subject.contains("reminder")),
        }
    }
}

#[test]
fn deadlines_are_shown_in_the_campaigns_time_zone() {
    let due = Timestamp::parse_rfc3339("2026-07-01T09:30:00Z").unwrap();
    let mut swedish = campaign();
    swedish.locales = vec![Locale::Sv, Locale::En];
    let mail = follow_up_mail(MessageKind::Alert, &swedish, &invitation(Locale::Sv, "Åsa"), &answer(2), due).unwrap();
    assert!(mail.text.contains("2026-07-01 11:30 CEST"), "a Swedish campaign without a zone is on Stockholm time: {}", mail.text);
    let mut new_york = campaign();
    new_york.time_zone = Some(closeloop_core::time::Zone::parse("America/New_York").unwrap());
    let mail = follow_up_mail(MessageKind::Alert, &new_york, &invitation(Locale::En, "Åsa"), &answer(2), due).unwrap();
    assert!(mail.text.contains("2026-07-01 05:30 EDT"), "{}", mail.text);
    assert!(!mail.html.contains("UTC"));
}

#[test]
fn alerts_carry_the_answer_and_crm_fields_escaped_in_html() {
    let mail = follow_up_mail(MessageKind::Alert, &campaign(), &invitation(Locale::En, "Åsa"), &answer(2), Timestamp::from_millis(0)).unwrap();
    assert!(mail.subject.contains("Åsa answered 2"));
    assert!(mail.text.contains("<script>alert(1)</script> & more"), "text part is plain text");
    assert!(mail.html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
    assert!(!mail.html.contains("<script>"));
    assert!(mail.html.contains("Berg &quot;&amp;&quot; Söner &lt;AB&gt;"));
    assert!(mail.html.contains("&lt;img src=x&gt;"));
    assert!(mail.text.contains("Ease of doing business: 2/5"));
    assert!(mail.text.contains("Follow up by: 1970-01-01 00:00 UTC"));
}

#[test]
fn promoters_see_every_site_and_detractors_only_ungated_ones() {
    let c = campaign();
    let inv = invitation(Locale::En, "Åsa");
    let promoter = review_links(&c, &inv, &answer(10), &links(), true);
    let detractor = review_links(&c, &inv, &answer(3), &links(), true);
    assert_eq!(promoter.len(), 2);
    assert_eq!(detractor.len(), 1);
    assert!(detractor[0].url.ends_with("/trustpilot"));
    assert!(promoter[0].label.contains("Trustpilot"));
    let thanks = thank_you_mail(&c, &inv, &answer(3), &links()).unwrap();
    assert!(thanks.text.contains("/r/") && thanks.text.contains("trustpilot") && !thanks.text.contains("/shop"));
}

#[test]
fn sms_invitations_fit_one_gsm7_segment_in_every_locale() {
    let mut c = campaign();
    c.company = "Nordhavn Cykler".into();
    for locale in Locale::ALL {
        for kind in [MessageKind::Invitation, MessageKind::Reminder] {
            let text = sms(kind, &c, &invitation(locale, "Åsa"), &Links::new("https://nps.nordhavn-cykler.example")).unwrap();
            let len = sms_length(&text);
            assert_eq!(len.encoding, SmsEncoding::Gsm7, "{text}");
            assert_eq!(len.segments, 1, "{locale:?} {kind:?}: {} septets: {text}", len.units);
        }
    }
}

#[test]
fn unknown_tokens_get_a_page_without_any_personal_detail() {
    let html = notice_page(Locale::En, Notice::NotFound).unwrap();
    assert!(html.contains("This link does not work"));
    assert!(!html.contains("Nordhavn"));
}

#[test]
fn placeholders_are_filled_once_and_never_re_expanded() {
    let s = Strings::new(Locale::En).with("company", "{first_name}").with("first_name", "Åsa");
    assert_eq!(s.get("thanks_body"), "Thank you for your answer. It helps {first_name} get better.");
}

#[test]
fn every_respondent_mail_and_the_survey_page_name_the_controller_and_link_its_privacy_notice() {
    let links = Links::new("https://nps.example");
    let mut with_notice = campaign();
    with_notice.privacy_url = Some("https://nordhavn.example/privacy".into());
    for (locale, controller) in [(Locale::En, "is responsible for your answer"), (Locale::Sv, "ansvarar för ditt svar"), (Locale::Da, "er ansvarlig for dit svar")] {
        let inv = invitation(locale, "Åsa");
        let mails = [
            ask_mail(MessageKind::Invitation, &with_notice, &inv, &links).unwrap(),
            ask_mail(MessageKind::Reminder, &with_notice, &inv, &links).unwrap(),
            thank_you_mail(&with_notice, &inv, &answer(3), &links).unwrap(),
            review_mail(&with_notice, &inv, &answer(10), &links).unwrap(),
            heads_up_mail(&with_notice, &inv, "Karin Lund", "2026-12-02", &links).unwrap(),
        ];
        for mail in &mails {
            assert!(mail.text.contains(controller) && mail.text.contains("https://nordhavn.example/privacy"), "{locale:?} text: {}", mail.text);
            assert!(mail.html.contains(controller) && mail.html.contains("https://nordhavn.example/privacy"), "{locale:?} html");
            assert!(mail.text.contains("Nordhavn & <Cykler>") && mail.html.contains("Nordhavn &amp; &lt;Cykler&gt;"), "the controller by name, escaped in HTML");
        }
        let without = ask_mail(MessageKind::Invitation, &campaign(), &inv, &links).unwrap();
        assert!(without.text.contains(controller) && !without.text.contains("privacy"), "no notice: the controller still named");
        let form = SurveyForm::default();
        let page = survey_page(&SurveyPage { campaign: &with_notice, invitation: &inv, form: &form, existing: None, errors: &[], unavailable: false }).unwrap();
        assert!(page.contains("<a href=\"https://nordhavn.example/privacy\">") && page.contains(controller), "{locale:?} page");
    }
    let mut bad = campaign();
    bad.privacy_url = Some("http://nordhavn.example/privacy".into());
    assert!(bad.problems().iter().any(|p| p.field == "privacy_url"));
}

#[test]
fn the_survey_page_says_what_is_stored_and_for_how_long_in_every_locale() {
    let mut kept = campaign();
    kept.retention_months = 18;
    for (locale, said) in [(Locale::En, "for 18 months"), (Locale::Sv, "i 18 månader"), (Locale::Da, "i 18 måneder")] {
        let inv = invitation(locale, "Åsa");
        let form = SurveyForm::default();
        let page = survey_page(&SurveyPage { campaign: &kept, invitation: &inv, form: &form, existing: None, errors: &[], unavailable: false }).unwrap();
        assert!(page.contains(said), "{locale:?}: {page}");
    }
}

#[test]
fn a_promoters_contact_request_reads_as_a_request_in_the_alert_the_escalation_the_page_and_the_thank_you() {
    let c = campaign();
    let inv = invitation(Locale::En, "Åsa");
    let mut request = answer(9);
    request.contact_ok = true;
    let mut detractor = answer(2);
    detractor.contact_ok = true;
    let due = Timestamp::from_millis(0);
    let alert = follow_up_mail(MessageKind::Alert, &c, &inv, &request, due).unwrap();
    assert!(alert.subject.starts_with("Contact request by"), "{}", alert.subject);
    assert!(alert.text.contains("asked to be contacted"), "{}", alert.text);
    let escalation = follow_up_mail(MessageKind::Escalation, &c, &inv, &request, due).unwrap();
    assert!(escalation.subject.starts_with("Contact request still open"), "{}", escalation.subject);
    assert!(!escalation.subject.contains("Overdue"));
    let detractor_alert = follow_up_mail(MessageKind::Alert, &c, &inv, &detractor, due).unwrap();
    assert!(detractor_alert.subject.starts_with("Follow up by"), "{}", detractor_alert.subject);
    let links = Links::new("https://nps.example");
    let page = thanks_page(&c, &inv, &request, &links).unwrap();
    assert!(page.contains("You asked to hear from us"));
    assert!(thanks_page(&c, &inv, &detractor, &links).unwrap().contains("will contact you about your answer"));
    let mail = thank_you_mail(&c, &inv, &request, &links).unwrap();
    assert!(mail.text.contains("You asked to hear from us") && mail.html.contains("You asked to hear from us"));
}

#[test]
fn every_mail_has_a_preheader_from_its_first_paragraph_after_the_greeting() {
    let links = Links::new("https://nps.example");
    let mail = ask_mail(MessageKind::Invitation, &campaign(), &invitation(Locale::En, "Åsa"), &links).unwrap();
    let hidden = mail.html.split("display:none").nth(1).expect("a hidden preheader").split("</div>").next().unwrap();
    assert!(!hidden.contains("Åsa!"), "not the greeting: {hidden}");
    assert!(hidden.contains("Thank you for choosing"), "{hidden}");
    let cut = preheader(&"word ".repeat(100), None);
    assert!(cut.chars().count() <= 120 && cut.ends_with(" word…"), "cut between words, with an ellipsis: {cut}");
}
