use closeloop_core::ports::{MessageKind, OutgoingMail};
use closeloop_core::Timestamp;
use mail_parser::{HeaderValue, MessageParser};
use proptest::prelude::*;

use super::*;

fn mail() -> OutgoingMail {
    OutgoingMail {
        kind: MessageKind::Invitation,
        key: "invitation:42".into(),
        from_name: "Karin Lund, Nordhavn Cykler i Göteborg och Malmö och Köpenhamn".into(),
        from_email: "karin@nordhavn.example".into(),
        to_name: Some("Åsa Ödegård".into()),
        to_email: "asa@example.se".into(),
        subject: "Hur gick det? En fråga på 2 minuter från Nordhavn Cykler – tack för att du handlade hos oss!".into(),
        text: "Hej Åsa!\n\nHur troligt är det att du skulle rekommendera Nordhavn Cykler till en vän?\nhttps://nps.example/s/abc?score=10\n".into(),
        html: "<p>Hej Åsa!</p><p>Hur troligt är det?</p>".into(),
        headers: vec![
            ("List-Id".into(), "\"Nordhavn Cykler\" <spring.nordhavn.example>".into()),
            ("List-Unsubscribe".into(), "<https://nps.example/u/abc>, <mailto:karin@nordhavn.example?subject=unsubscribe%20abc>".into()),
            ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
        ],
    }
}

const DATE: Timestamp = Timestamp::from_millis(1_780_000_000_000);

fn raw(mail: &OutgoingMail) -> String {
    String::from_utf8(build(mail, DATE).unwrap()).unwrap()
}

fn header_block(raw: &str) -> &str {
    raw.split("\r\n\r\n").next().unwrap()
}

#[test]
fn every_message_has_a_date_a_message_id_from_its_send_key_and_the_key_in_our_own_header() {
    let raw = raw(&mail());
    let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
    assert_eq!(parsed.date().unwrap().to_timestamp(), 1_780_000_000);
    assert_eq!(parsed.message_id(), Some("invitation.42@nordhavn.example"));
    assert!(raw.contains("\r\nX-Closeloop-Send-Key: invitation:42\r\n"), "{raw}");
    let again = String::from_utf8(build(&mail(), DATE).unwrap()).unwrap();
    assert_eq!(MessageParser::default().parse(again.as_bytes()).unwrap().message_id(), parsed.message_id(), "a retried send keeps its id");
}

#[test]
fn list_headers_carry_both_unsubscribe_targets_and_the_one_click_post() {
    let raw = raw(&mail());
    let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let urls = match parsed.header("List-Unsubscribe") {
        Some(HeaderValue::Address(a)) => a.iter().filter_map(|a| a.address().map(str::to_owned)).collect::<Vec<_>>(),
        other => panic!("List-Unsubscribe parsed as {other:?}"),
    };
    assert_eq!(urls, ["https://nps.example/u/abc", "mailto:karin@nordhavn.example?subject=unsubscribe%20abc"]);
    assert!(raw.contains("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    assert!(raw.contains("\r\nList-Id: \"Nordhavn Cykler\" <spring.nordhavn.example>\r\n"), "{}", header_block(&raw));
}

#[test]
fn encoded_headers_fold_into_lines_of_76_characters_or_fewer_and_decode_to_what_was_written() {
    let raw = raw(&mail());
    for line in header_block(&raw).split("\r\n") {
        assert!(line.len() <= 76, "header line of {} characters: {line}", line.len());
    }
    let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
    assert_eq!(parsed.subject(), Some(mail().subject.as_str()));
    let from = parsed.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some(mail().from_name.as_str()));
    assert_eq!(from.address(), Some("karin@nordhavn.example"));
    assert_eq!(parsed.to().unwrap().first().unwrap().name(), Some("Åsa Ödegård"));
}

#[test]
fn text_parts_are_quoted_printable_when_that_is_shorter_than_base64() {
    let raw = raw(&mail());
    let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
    assert!(raw.contains("Content-Transfer-Encoding: quoted-printable"), "{raw}");
    assert_eq!(parsed.body_text(0).unwrap().replace("\r\n", "\n"), mail().text);
    assert_eq!(parsed.body_html(0).unwrap(), mail().html);
}

#[test]
fn names_with_quotes_angle_brackets_and_commas_stay_a_display_name() {
    let mut m = mail();
    m.to_name = Some("Bob \"the boss\" <evil@attacker.example>, Eve".into());
    let raw = raw(&m);
    let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let to = parsed.to().unwrap();
    assert_eq!(to.iter().count(), 1, "one recipient: {}", header_block(&raw));
    let to = to.first().unwrap();
    assert_eq!(to.address(), Some("asa@example.se"));
    assert_eq!(to.name(), Some("Bob \"the boss\" <evil@attacker.example>, Eve"));
}

#[test]
fn control_characters_in_crm_text_never_start_a_header() {
    let mut m = mail();
    m.to_name = Some("Eve\r\nBcc: victim@example.com\u{0}\u{85}\u{2028}".into());
    m.subject = "Hi\nBcc: victim@example.com".into();
    m.headers.push(("X-Note".into(), "a\r\nBcc: victim@example.com".into()));
    let raw = raw(&m);
    let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
    assert!(parsed.bcc().is_none(), "{}", header_block(&raw));
    assert!(!header_block(&raw).lines().any(|l| l.starts_with("Bcc")));
    assert_eq!(parsed.subject(), Some("Hi Bcc: victim@example.com"));
}

#[test]
fn a_list_id_keeps_its_id_when_the_company_name_is_not_ascii() {
    let mut m = mail();
    m.headers[0] = ("List-Id".into(), "\"Göteborgs Cykel AB\" <spring.nordhavn.example>".into());
    let raw = raw(&m);
    let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
    match parsed.header("List-Id") {
        Some(HeaderValue::Address(a)) => {
            let first = a.first().unwrap();
            assert_eq!(first.address(), Some("spring.nordhavn.example"), "{}", header_block(&raw));
            assert_eq!(first.name(), Some("Göteborgs Cykel AB"));
        }
        other => panic!("List-Id parsed as {other:?}"),
    }
}

#[test]
fn domains_beyond_ascii_go_out_as_punycode_and_a_local_part_beyond_ascii_is_refused() {
    let mut m = mail();
    m.to_email = "asa@måleri.example".into();
    let raw = raw(&m);
    assert!(raw.is_ascii());
    assert!(raw.contains("<asa@xn--mleri-mra.example>"), "{}", header_block(&raw));
    m.to_email = "jörg@example.de".into();
    assert!(needs_smtputf8(&m.to_email), "a mailer without SMTPUTF8 refuses it");
    assert!(!needs_smtputf8("asa@måleri.example"), "Punycode covers a domain");
}

#[test]
fn text_that_looks_like_an_encoded_word_stays_literal_and_cannot_hide_a_bidi_override() {
    let mut m = mail();
    m.to_name = Some("=?utf-8?Q?Anna=E2=80=AE=0D=0ABcc:_x@y.z?=".into());
    m.subject = "Hej =?utf-8?Q?Anna=E2=80=AEgnp.exe?=".into();
    let raw = raw(&m);
    let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let name = parsed.to().unwrap().first().unwrap().name().unwrap().to_owned();
    assert!(!name.contains('\u{202e}') && !name.contains('\n'), "{name:?}");
    assert!(name.contains("Anna=E2=80=AE"), "shown as typed: {name:?}");
    assert!(!parsed.subject().unwrap().contains('\u{202e}'));
}

#[test]
fn headers_the_builder_writes_itself_are_never_taken_from_the_mail_and_an_empty_list_is_left_out() {
    let mut m = mail();
    m.headers = vec![("From".into(), "evil@attacker.example".into()), ("Bcc".into(), "x@y.example".into()), ("List-Unsubscribe".into(), "https://no-brackets.example".into())];
    let raw = raw(&m);
    let block = header_block(&raw);
    assert_eq!(block.matches("\r\nFrom: ").count() + usize::from(block.starts_with("From: ")), 1, "{block}");
    assert!(!block.contains("Bcc") && !block.contains("List-Unsubscribe"), "{block}");
    assert_eq!(message_id_left("digest:c:ö.ä:2026"), "digest.c.2026");
}

fn header_fields(raw: &str) -> Vec<String> {
    // Unfolded: a line that starts with white space continues the field before it.
    let mut fields: Vec<String> = Vec::new();
    for line in header_block(raw).split("\r\n") {
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => fields.push(line.to_owned()),
        }
    }
    fields
}

proptest! {
    #[test]
    fn arbitrary_names_subjects_and_header_values_never_add_or_break_a_header(
        name in any::<String>(), subject in any::<String>(), note in any::<String>(), text in any::<String>(), html in any::<String>(),
        domain in "[a-zåäöü]{1,12}\\.(se|de|example)",
    ) {
        let mut m = mail();
        m.to_email = format!("asa@{domain}");
        m.to_name = Some(name);
        m.from_name = subject.chars().rev().collect();
        m.subject = subject;
        m.text = text;
        m.html = html;
        m.headers.push(("X-Note".into(), note));
        let raw = build(&m, DATE).unwrap();
        let raw = String::from_utf8(raw).unwrap();
        prop_assert!(raw.is_ascii(), "raw messages are 7-bit");
        let names: Vec<String> = header_fields(&raw).iter().map(|f| f.split(':').next().unwrap_or_default().to_owned()).collect();
        prop_assert_eq!(names, ["From", "To", "Subject", "Date", "Message-ID", "X-Closeloop-Send-Key", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "X-Note", "MIME-Version", "Content-Type"]);
        for line in header_block(&raw).split("\r\n") {
            prop_assert!(line.len() <= 998, "RFC 5322's hard limit");
            prop_assert!(!line.contains('\r') && !line.contains('\n'));
        }
        let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let to = parsed.to().unwrap();
        prop_assert_eq!(to.iter().count(), 1);
        let expected = format!("asa@{}", idna::domain_to_ascii(&domain).unwrap());
        prop_assert_eq!(to.first().unwrap().address(), Some(expected.as_str()));
        prop_assert_eq!(parsed.subject().unwrap_or_default(), one_line(&m.subject));
        prop_assert!(!parsed.subject().unwrap_or_default().chars().any(|c| c == '\u{202e}' || c == '\n'), "no hidden override or break decodes out of a subject");
    }
}
