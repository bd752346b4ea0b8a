//! Answers with their CRM fields as CSV, for Excel: UTF-8 with a byte-order mark, every cell
//! quoted, and cells a spreadsheet would run as a formula neutralised.

use closeloop_core::campaign::Campaign;
use closeloop_core::ports::InvitationRow;

/// A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice and
/// Google Sheets; a leading apostrophe makes it text. (OWASP "CSV injection".)
/// Spreadsheets also skip leading white space, controls and invisible format characters before
/// reading a formula, so " =1+1" and "\u{feff}=1+1" count too.
fn neutralise(cell: &str) -> String {
    let starts_formula = |c: char| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r' | '\n');
    let skipped = |c: char| c.is_whitespace() || c.is_control() || is_invisible_format(c);
    match (cell.chars().next(), cell.trim_start_matches(skipped).chars().next()) {
        (Some(first), _) if starts_formula(first) => format!("'{cell}"),
        (Some(first), Some(after)) if skipped(first) && starts_formula(after) => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// Unicode format characters (category Cf) a cell can start with and not show.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e0001}' | '\u{e0020}'..='\u{e007f}')
}

pub(crate) fn quoted(cell: &str) -> String {
    format!("\"{}\"", neutralise(cell).replace('"', "\"\""))
}

/// Custom properties that get a column of their own in a streamed export. A property not among
/// them (one the counters had not seen yet) still reaches the file, in `other_properties`.
pub const OTHER_PROPERTIES: &str = "other_properties";

/// The columns of an answers export, fixed before the first row so the rows can stream page by
/// page: the named fields, one per driver, one per custom property, and `other_properties`.
#[derive(Debug, Clone)]
pub struct AnswersCsv {
    campaign: Campaign,
    /// The campaign's zone, looked up once rather than per row.
    zone: closeloop_core::time::Zone,
    properties: Vec<String>,
}

impl AnswersCsv {
    pub fn new(campaign: &Campaign, properties: impl IntoIterator<Item = String>) -> Self {
        let mut properties: Vec<String> = properties.into_iter().collect();
        properties.sort_unstable();
        properties.dedup();
        Self { campaign: campaign.clone(), zone: campaign.zone(), properties }
    }

    /// Columns for every custom property these rows have.
    pub fn for_rows<'a>(campaign: &Campaign, rows: impl IntoIterator<Item = &'a InvitationRow>) -> Self {
        Self::new(campaign, rows.into_iter().flat_map(|r| r.invitation.contact.properties.keys().cloned()))
    }

    /// The byte-order mark Excel needs, and the header line.
    pub fn header(&self) -> String {
        let mut header: Vec<String> = [
            "answered_at", "score", "group", "comment", "may_contact", "email", "phone", "first_name", "last_name", "company", "segment",
            "store", "owner", "touchpoint", "locale",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        header.extend(self.campaign.drivers.iter().map(|d| format!("rating_{}", d.key)));
        header.extend(self.properties.iter().map(|p| format!("property_{p}")));
        header.push(OTHER_PROPERTIES.to_owned());
        let mut out = String::from("\u{feff}");
        out.push_str(&header.iter().map(|h| quoted(h)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
        out
    }

    /// One line per answered row, in the order given.
    pub fn rows<'a>(&self, rows: impl IntoIterator<Item = &'a InvitationRow>) -> String {
        let mut out = String::new();
        for row in rows {
            let Some(answer) = &row.answer else { continue };
            let c = &row.invitation.contact;
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            let mut cells = vec![
                answer.answered_at.rfc3339_in(&self.zone),
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
            cells.extend(self.campaign.drivers.iter().map(|d| answer.ratings.get(&d.key).map(u8::to_string).unwrap_or_default()));
            cells.extend(self.properties.iter().map(|p| c.properties.get(p).cloned().unwrap_or_default()));
            let others: Vec<String> = c
                .properties
                .iter()
                .filter(|(key, _)| self.properties.binary_search(key).is_err())
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            cells.push(others.join("\n"));
            out.push_str(&cells.iter().map(|cell| quoted(cell)).collect::<Vec<_>>().join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// Answered rows only, in the order given; one column per custom property seen.
pub fn answers_csv<'a>(campaign: &Campaign, rows: impl IntoIterator<Item = &'a InvitationRow> + Clone) -> String {
    let csv = AnswersCsv::for_rows(campaign, rows.clone());
    csv.header() + &csv.rows(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_property_without_a_column_of_its_own_lands_in_other_properties() {
        use closeloop_core::fixtures::{answer_touching_everything, largest_campaign, largest_invitation};
        let at = closeloop_core::Timestamp::from_millis(0);
        let campaign = largest_campaign("csv-columns");
        let mut invitation = largest_invitation(&campaign, 1, at);
        invitation.contact.properties.clear();
        invitation.contact.properties.insert("plan".into(), "gold".into());
        invitation.contact.properties.insert("region".into(), "=north".into());
        let answer = answer_touching_everything(&invitation, 9, 1, None, at);
        let row = InvitationRow { invitation, answer: Some(answer), suppressed: false, review_clicks: 0 };
        let csv = AnswersCsv::new(&campaign, ["plan".to_owned()]);
        assert!(csv.header().trim_end().ends_with("\"property_plan\",\"other_properties\""));
        let line = csv.rows([&row]);
        assert!(line.trim_end().ends_with("\"gold\",\"region==north\""), "{line}");
    }

    #[test]
    fn formula_starts_are_neutralised_and_quotes_doubled() {
        for dangerous in ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(quoted(dangerous).starts_with("\"'"), "{dangerous:?} → {}", quoted(dangerous));
        }
        assert_eq!(quoted("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quoted("Åsa, Malmö"), "\"Åsa, Malmö\"");
        assert_eq!(quoted("a=b"), "\"a=b\"", "only a leading sign is a formula");
        assert!(quoted("  =1+1").starts_with("\"'"), "white space before a sign still makes a formula");
        for hidden in ["\u{feff}=1+1", "\u{200b}=1+1", "\0=1+1", "\u{1c}=1", "\u{2060}@SUM(A1)"] {
            assert!(quoted(hidden).starts_with("\"'"), "{hidden:?} → {}", quoted(hidden));
        }
    }

    use proptest::prelude::*;

    /// After white space, controls and invisible format characters, a sign makes a formula.
    fn is_formula_start(cell: &str) -> bool {
        !cell.starts_with('\'')
            && cell.trim_start_matches(|c: char| c.is_whitespace() || c.is_control() || is_invisible_format(c)).starts_with(['=', '+', '-', '@'])
    }

    proptest! {
        #[test]
        fn no_export_cell_ever_starts_a_formula_and_every_line_reads_back_as_one_row(
            comment in any::<String>(), name in "[\\s\u{feff}\u{200b}\u{2060}\u{0}\u{1c}]{0,3}[=+@a-z-]?\\PC{0,20}", key in "[a-z=+@-]{1,8}", value in any::<String>(),
        ) {
            use closeloop_core::fixtures::{answer_touching_everything, largest_campaign, largest_invitation};
            let at = closeloop_core::Timestamp::from_millis(0);
            let campaign = largest_campaign("csv-prop");
            let mut invitation = largest_invitation(&campaign, 1, at);
            invitation.contact.first_name = Some(name);
            invitation.contact.properties.insert(key, value);
            let mut answer = answer_touching_everything(&invitation, 3, 1, None, at);
            answer.comment = Some(comment);
            let row = InvitationRow { invitation, answer: Some(answer), suppressed: false, review_clicks: 0 };
            let csv = answers_csv(&campaign, [&row]);
            let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
            let header_len = reader.headers().unwrap().len();
            let records: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(records.len(), 1);
            prop_assert_eq!(records[0].len(), header_len);
            for cell in records[0].iter() {
                prop_assert!(!is_formula_start(cell), "cell {:?}", cell);
            }
        }
    }
}
