//! Answers with their CRM fields as CSV, for Excel: UTF-8 with a byte-order mark, every cell
//! quoted, and cells a spreadsheet would run as a formula neutralised.

use crate::campaign::Campaign;
use crate::ports::InvitationRow;

/// A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice and
/// Google Sheets; a leading apostrophe makes it text. (OWASP "CSV injection".)
fn neutralise(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

fn quoted(cell: &str) -> String {
    format!("\"{}\"", neutralise(cell).replace('"', "\"\""))
}

/// Answered rows only, in the order given; one column per driver and per custom property seen.
pub fn answers_csv<'a>(campaign: &Campaign, rows: impl IntoIterator<Item = &'a InvitationRow> + Clone) -> String {
    let mut properties: Vec<&str> = Vec::new();
    for row in rows.clone() {
        for key in row.invitation.contact.properties.keys() {
            if !properties.contains(&key.as_str()) {
                properties.push(key);
            }
        }
    }
    properties.sort_unstable();
    let mut header: Vec<String> = [
        "answered_at", "score", "group", "comment", "may_contact", "email", "phone", "first_name", "last_name", "company", "segment",
        "store", "owner", "touchpoint", "locale",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    header.extend(campaign.drivers.iter().map(|d| format!("rating_{}", d.key)));
    header.extend(properties.iter().map(|p| format!("property_{p}")));

    let mut out = String::from("\u{feff}");
    out.push_str(&header.iter().map(|h| quoted(h)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    for row in rows {
        let Some(answer) = &row.answer else { continue };
        let c = &row.invitation.contact;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut cells = vec![
            answer.answered_at.to_rfc3339(),
            answer.score.value().to_string(),
            answer.score.group().as_str().to_owned(),
            text(&answer.comment),
            if answer.contact_ok { "yes" } else { "no" }.to_owned(),
            c.email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_default(),
            c.phone.as_ref().map(|p| p.as_str().to_owned()).unwrap_or_default(),
            text(&c.first_name),
            text(&c.last_name),
            text(&c.company),
            text(&c.segment),
            text(&c.store),
            c.owner_email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_default(),
            text(&row.invitation.touchpoint),
            row.invitation.locale.code().to_owned(),
        ];
        cells.extend(campaign.drivers.iter().map(|d| answer.ratings.get(&d.key).map(u8::to_string).unwrap_or_default()));
        cells.extend(properties.iter().map(|p| c.properties.get(*p).cloned().unwrap_or_default()));
        out.push_str(&cells.iter().map(|cell| quoted(cell)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_neutralised_and_quotes_doubled() {
        for dangerous in ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(quoted(dangerous).starts_with("\"'"), "{dangerous:?} → {}", quoted(dangerous));
        }
        assert_eq!(quoted("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quoted("Åsa, Malmö"), "\"Åsa, Malmö\"");
        assert_eq!(quoted("a=b"), "\"a=b\"", "only a leading sign is a formula");
    }
}
