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

/// Characters that must never reach a header: C0 and C1 controls (CR and LF among them), DEL,
/// Unicode line and paragraph separators, and the bidi controls that can make a name read as
/// something else.
pub fn is_unsafe_in_header(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{feff}')
}

/// A header value as one line: unsafe characters become spaces, runs of space collapse.
pub fn one_line(value: &str) -> String {
    value.split(|c: char| is_unsafe_in_header(c) || c.is_whitespace()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ")
}

/// An address as it may stand between `<` and `>`: no space, no angle brackets, no controls.
fn addr_spec(address: &str) -> String {
    address.chars().filter(|c| !is_unsafe_in_header(*c) && !c.is_whitespace() && !matches!(c, '<' | '>' | '"' | ',' | ';')).collect()
}

/// The domain part of an address, for Message-IDs under the sender's own domain.
fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).filter(|d| !d.is_empty()).unwrap_or("closeloop.invalid")
}

/// `<left@domain>`'s left part from a send key: dot-atom characters only.
fn message_id_left(key: &str) -> String {
    let left: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '.' }).collect();
    let left = left.trim_matches('.').to_owned();
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
        if name.is_empty() || name.eq_ignore_ascii_case(SEND_KEY_HEADER) {
            continue;
        }
        message = if name.eq_ignore_ascii_case("List-Unsubscribe") {
            message.header(name, URL::new_list(bracketed(value).into_iter()))
        } else {
            message.header(name, Text::new(one_line(value)))
        };
    }
    message.text_body(mail.text.clone()).html_body(mail.html.clone()).write_to_vec().map_err(BuildError)
}

#[cfg(test)]
mod tests;
