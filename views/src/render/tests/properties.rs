//! Arbitrary CRM text and answers through every renderer: nothing panics, and no `<` from data
//! reaches HTML unescaped. Data starts with `<q`, a tag no template writes, so finding `<q` in
//! the output means data went out raw.

use proptest::prelude::*;

use super::*;

fn data() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| format!("<q{s}"))
}

proptest! {
    #[test]
    fn crm_text_and_comments_never_reach_html_unescaped(first in data(), company in data(), property in data(), comment in data()) {
        let mut inv = invitation(Locale::Sv, &first);
        inv.contact.company = Some(company);
        inv.contact.properties.insert("note".into(), property);
        let mut a = answer(2);
        a.comment = Some(comment.clone());
        let c = campaign();
        let links = links();
        let form = SurveyForm { comment, ..SurveyForm::default() };
        let pages = [
            page(Locale::Sv, &first, &form, &[]),
            thanks_page(&c, &inv, &a, &links).unwrap(),
            unsubscribe_page(&c, &inv, false).unwrap(),
        ];
        let mails = [
            ask_mail(MessageKind::Invitation, &c, &inv, &links).unwrap(),
            thank_you_mail(&c, &inv, &a, &links).unwrap(),
            follow_up_mail(MessageKind::Alert, &c, &inv, &a, Timestamp::from_millis(0)).unwrap(),
            follow_up_mail(MessageKind::Escalation, &c, &inv, &a, Timestamp::from_millis(0)).unwrap(),
        ];
        for html in pages.iter().chain(mails.iter().map(|m| &m.html)) {
            prop_assert!(!html.contains("<q"), "raw data in {}", html);
        }
        for m in &mails {
            prop_assert!(!m.subject.contains('\n') && !m.subject.contains('\r'), "a subject is one line: {:?}", m.subject);
        }
    }

    #[test]
    fn arbitrary_form_fields_never_panic_and_a_kept_comment_holds_no_control_but_newline_and_tab(
        pairs in proptest::collection::vec((prop_oneof![Just("score".to_owned()), Just("comment".to_owned()), Just("contact_ok".to_owned()), Just("rating.ease".to_owned()), any::<String>()], any::<String>()), 0..8),
    ) {
        let (form, outcome) = closeloop_core::survey::parse_answer_form(&pairs, &campaign());
        prop_assert!(!form.comment.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
        if let Ok(valid) = outcome {
            prop_assert!(valid.comment.iter().all(|c| !c.chars().any(|ch| ch.is_control() && ch != '\n' && ch != '\t')));
        }
    }
}
