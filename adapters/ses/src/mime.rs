//! RFC 5322 / 2045 / 2047 message building: what SendRawEmail sends. Every header value is one
//! line whatever it contained; non-ASCII is encoded; bodies are base64 in 76-character lines.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use closeloop_core::ports::OutgoingMail;

/// Header values from CRM data must never start a new header.
fn one_line(value: &str) -> String {
    // Other control characters (NUL, tab, …) have no place in a header either.
    let value: String = value.chars().map(|c| if c.is_control() && c != '\r' && c != '\n' { ' ' } else { c }).collect();
    value.split(['\r', '\n']).map(str::trim).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ")
}

/// RFC 2047 encoded words, each at most 75 characters, split only between characters.
pub fn encode_header_text(value: &str) -> String {
    let value = one_line(value);
    if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return value;
    }
    // 39 bytes of UTF-8 become 52 characters of base64: with "=?UTF-8?B?", "?=" and the longest
    // header name in front ("Subject: ") the line stays under 78.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > 39 {
            words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(chunk.as_bytes())));
    }
    words.join("\r\n ")
}

/// `Name <address>`, with the name encoded or quoted as needed.
pub fn mailbox(name: Option<&str>, address: &str) -> String {
    let address = one_line(address);
    match name.map(one_line).filter(|n| !n.is_empty()) {
        None => address,
        Some(n) if n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ') => format!("{n} <{address}>"),
        Some(n) if n.is_ascii() => format!("\"{}\" <{address}>", n.replace('\\', "\\\\").replace('"', "\\\"")),
        Some(n) => format!("{} <{address}>", encode_header_text(&n)),
    }
}

fn base64_lines(data: &[u8]) -> String {
    let encoded = STANDARD.encode(data);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38);
    for (i, chunk) in encoded.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    out
}

/// The domain part of an address, for Message-IDs under the sender's own domain.
fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("closeloop.invalid", |(_, d)| d)
}

/// Builds the raw message. `message_key` names the send (e.g. `thank_you:{id}`): the Message-ID
/// is derived from it, so a retried send carries the same id.
pub fn build(mail: &OutgoingMail, message_key: &str, boundary: &str) -> String {
    let id_left: String = message_key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '.' }).collect();
    let mut headers = vec![
        format!("From: {}", mailbox(Some(&mail.from_name), &mail.from_email)),
        format!("To: {}", mailbox(mail.to_name.as_deref(), &mail.to_email)),
        format!("Subject: {}", encode_header_text(&mail.subject)),
        format!("Message-ID: <{id_left}@{}>", domain_of(&mail.from_email)),
        "MIME-Version: 1.0".to_owned(),
    ];
    for (name, value) in &mail.headers {
        let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        if !name.is_empty() {
            headers.push(format!("{name}: {}", one_line(value)));
        }
    }
    headers.push(format!("Content-Type: multipart/alternative; boundary=\"{boundary}\""));
    let part = |content_type: &str, body: &str| {
        format!(
            "--{boundary}\r\nContent-Type: {content_type}; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64_lines(body.as_bytes())
        )
    };
    format!(
        "{}\r\n\r\n{}{}--{boundary}--\r\n",
        headers.join("\r\n"),
        part("text/plain", &mail.text),
        part("text/html", &mail.html)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use closeloop_core::ports::MessageKind;

    fn mail() -> OutgoingMail {
        OutgoingMail {
            kind: MessageKind::Invitation,
            key: "invitation:42".into(),
            from_name: "Karin Lund, Nordhavn".into(),
            from_email: "karin@nordhavn.example".into(),
            to_name: Some("Åsa Ödegård".into()),
            to_email: "asa@example.se".into(),
            subject: "Hur gick det? En fråga på 2 minuter från Nordhavn Cykler – tack!".into(),
            text: "Hej Åsa!\nhttps://nps.example/s/abc?score=10".into(),
            html: "<p>Hej Åsa!</p>".into(),
            headers: vec![("List-Unsubscribe".into(), "<https://nps.example/u/abc>".into())],
        }
    }

    #[test]
    fn utf8_subjects_and_names_become_short_encoded_words() {
        let raw = build(&mail(), "invitation:42", "b1");
        let subject_line = raw.lines().find(|l| l.starts_with("Subject: ")).unwrap();
        assert!(subject_line.starts_with("Subject: =?UTF-8?B?"));
        for line in raw.split("\r\n").take_while(|l| !l.is_empty()) {
            assert!(line.len() <= 78, "header line too long: {line}");
        }
        let to = raw.lines().find(|l| l.starts_with("To: ")).unwrap();
        assert!(to.starts_with("To: =?UTF-8?B?") && to.ends_with("<asa@example.se>"));
        let from = raw.lines().find(|l| l.starts_with("From: ")).unwrap();
        assert_eq!(from, "From: \"Karin Lund, Nordhavn\" <karin@nordhavn.example>", "a comma needs quotes");
        let decoded: String = subject_line["Subject: ".len()..]
            .split(' ')
            .chain(raw.lines().skip_while(|l| !l.starts_with("Subject: ")).skip(1).take_while(|l| l.starts_with(' ')).map(str::trim))
            .filter_map(|w| w.strip_prefix("=?UTF-8?B?").and_then(|w| w.strip_suffix("?=")))
            .map(|b| String::from_utf8(STANDARD.decode(b).unwrap()).unwrap())
            .collect();
        assert_eq!(decoded, mail().subject);
    }

    #[test]
    fn the_message_id_is_derived_from_the_send_key() {
        let a = build(&mail(), "thank_you:abc123", "b1");
        let b = build(&mail(), "thank_you:abc123", "b2");
        let id = |raw: &str| raw.lines().find(|l| l.starts_with("Message-ID: ")).unwrap().to_owned();
        assert_eq!(id(&a), "Message-ID: <thank_you.abc123@nordhavn.example>");
        assert_eq!(id(&a), id(&b));
    }

    #[test]
    fn crm_text_cannot_inject_headers() {
        let mut m = mail();
        m.subject = "Hi\r\nBcc: victim@example.com".into();
        m.to_name = Some("Eve\nBcc: x@y.example".into());
        let raw = build(&m, "k", "b");
        assert!(!raw.lines().any(|l| l.starts_with("Bcc:")));
    }

    #[test]
    fn both_parts_are_base64_utf8_with_short_lines() {
        let mut m = mail();
        m.text = "å".repeat(500);
        let raw = build(&m, "k", "B0UND");
        assert!(raw.contains("Content-Type: multipart/alternative; boundary=\"B0UND\""));
        assert!(raw.contains("--B0UND\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64"));
        assert!(raw.contains("--B0UND\r\nContent-Type: text/html; charset=UTF-8"));
        assert!(raw.ends_with("--B0UND--\r\n"));
        assert!(raw.split("\r\n").all(|l| l.len() <= 998));
        assert!(raw.split("\r\n").skip_while(|l| !l.is_empty()).all(|l| l.len() <= 76 || l.starts_with("Content-")));
    }
}
