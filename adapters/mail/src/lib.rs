//! The raw message of every mail (RFC 5322, MIME), built with `mail-builder`: SES's
//! `SendRawEmail` sends these bytes and the local outbox keeps them, so what tests read is what
//! is sent.
//!
//! What we add to what the builder does:
//! - every header value is one line of printable text whatever a CRM field held (controls, line
//!   and paragraph separators and bidi overrides become spaces);
//! - `Date` from our clock, and a `Message-ID` derived from the send key, so a retried send
//!   carries the same id; SES replaces the Message-ID with its own, so the send key also travels
//!   in `X-Closeloop-Send-Key`, which SES keeps;
//! - `List-Unsubscribe` values (`<https…>, <mailto…>`) are written as a folded URL list.

use closeloop_core::ports::OutgoingMail;
use closeloop_core::Timestamp;
use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::headers::url::URL;
use mail_builder::MessageBuilder;

/// Our own header with the send's idempotency key (`thank_you:{id}`): it survives SES, which
/// rewrites the Message-ID.
pub const SEND_KEY_HEADER: &str = "X-Closeloop-Send-Key";

#[derive(Debug, thiserror::Error)]
#[error("could not write the message")]
pub struct BuildError(#[source] std::io::Error);

/// Whether an address needs SMTPUTF8 (RFC 6531): characters beyond ASCII before the `@`. Such
/// a message is written with the address as UTF-8 (RFC 6532); a mailer without SMTPUTF8 (SES)
/// must refuse it rather than send it.
pub fn needs_smtputf8(address: &str) -> bool {
    address.rsplit_once('@').is_some_and(|(local, _)| !local.is_ascii())
}

/// Characters that must never reach a header: C0 and C1 controls (CR and LF among them), DEL,
/// Unicode line and paragraph separators, and the bidi controls that can make a name read as
/// something else.
pub fn is_unsafe_in_header(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{feff}')
}

/// A header value as one line: unsafe characters become spaces, runs of space collapse. Text
/// that looks like an encoded word (`=?utf-8?Q?…?=`) would be decoded by mail clients into
/// whatever it hides (a bidi override, a line break): a word joiner after the `=` keeps it
/// literal, because the builder then encodes the whole value.
pub fn one_line(value: &str) -> String {
    let line = value.split(|c: char| is_unsafe_in_header(c) || c.is_whitespace()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ");
    line.replace("=?", "=\u{2060}?")
}

/// An address as it may stand between `<` and `>`: no space, no angle brackets, no controls,
/// and the domain in its ASCII (Punycode) form, since SES speaks no SMTPUTF8.
fn addr_spec(address: &str) -> String {
    let plain: String = address.chars().filter(|c| !is_unsafe_in_header(*c) && !c.is_whitespace() && !matches!(c, '<' | '>' | '"' | ',' | ';')).collect();
    match plain.rsplit_once('@') {
        Some((local, domain)) if !domain.is_ascii() => match idna::domain_to_ascii(domain) {
            Ok(ascii) => format!("{local}@{ascii}"),
            Err(_) => plain,
        },
        _ => plain,
    }
}

/// Headers the builder writes itself, or that would add a recipient or a second copy: never
/// taken from `mail.headers`.
const OWN_HEADERS: &[&str] =
    &["from", "to", "cc", "bcc", "reply-to", "sender", "subject", "date", "message-id", "mime-version", "content-type", "content-transfer-encoding", "return-path"];

/// The domain part of an address, for Message-IDs under the sender's own domain.
fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).filter(|d| !d.is_empty()).unwrap_or("closeloop.invalid")
}

/// `<left@domain>`'s left part from a send key: dot-atom characters only.
fn message_id_left(key: &str) -> String {
    let left: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '.' }).collect();
    // A dot-atom: no empty atoms, so no dot at either end and never two in a row.
    let left = left.split('.').filter(|atom| !atom.is_empty()).collect::<Vec<_>>().join(".");
    if left.is_empty() { "closeloop".to_owned() } else { left }
}

fn mailbox(name: Option<&str>, address: &str) -> Address<'static> {
    let name = name.map(one_line).filter(|n| !n.is_empty());
    Address::new_address(name, addr_spec(address))
}

/// The `<…>` items of a list header value, in order.
fn bracketed(value: &str) -> Vec<String> {
    value.split('<').skip(1).filter_map(|item| item.split_once('>').map(|(url, _)| addr_spec(url))).filter(|u| !u.is_empty()).collect()
}

/// `"name" <id>` (or a bare `<id>`) of a `List-Id` value.
fn list_id(value: &str) -> Option<(Option<String>, String)> {
    let (name, rest) = value.rsplit_once('<')?;
    let id = addr_spec(rest.split('>').next()?);
    let name = one_line(name.trim().trim_matches('"'));
    (!id.is_empty()).then(|| (Some(name).filter(|n| !n.is_empty()), id))
}

/// The raw message for `mail`, dated `date`.
pub fn build(mail: &OutgoingMail, date: Timestamp) -> Result<Vec<u8>, BuildError> {
    let from_email = addr_spec(&mail.from_email);
    let mut message = MessageBuilder::new()
        .from(mailbox(Some(&mail.from_name), &from_email))
        .to(mailbox(mail.to_name.as_deref(), &mail.to_email))
        .subject(Text::new(one_line(&mail.subject)))
        .date(Date::new(date.millis().div_euclid(1000)))
        .message_id(MessageId::new(format!("{}@{}", message_id_left(&mail.key), domain_of(&from_email))));
    if !mail.key.is_empty() {
        message = message.header(SEND_KEY_HEADER, Raw::new(addr_spec(&mail.key)));
    }
    for (name, value) in &mail.headers {
        let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        if name.eq_ignore_ascii_case("Reply-To") {
            // One plain address only (an owner's): never a list, so it cannot add recipients.
            let address = addr_spec(value);
            if address.contains('@') && !value.contains(',') {
                message = message.reply_to(mailbox(None, &address));
            }
            continue;
        }
        if name.is_empty() || name.eq_ignore_ascii_case(SEND_KEY_HEADER) || OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        message = if name.eq_ignore_ascii_case("List-Unsubscribe") {
            let urls = bracketed(value);
            if urls.is_empty() {
                continue;
            }
            message.header(name, URL::new_list(urls.into_iter()))
        } else if name.eq_ignore_ascii_case("List-Id") {
            // An address-like value: only its name part is encoded, so "Göteborg" keeps the id.
            let Some((label, id)) = list_id(value) else { continue };
            message.header(name, Address::new_address(label, id))
        } else {
            message.header(name, Text::new(one_line(value)))
        };
    }
    message.text_body(mail.text.clone()).html_body(mail.html.clone()).write_to_vec().map_err(BuildError)
}

#[cfg(test)]
mod tests;
