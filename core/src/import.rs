//! Contacts from what CRMs and Excel really export: UTF-8 with or without BOM, `,` or `;` (or tab)
//! separated, quoted fields. A bad row is reported with its line and reason; good rows go on.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::model::{Contact, ContactError, Email, Locale, Phone};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("the file is empty")]
    Empty,
    #[error("the header line is not UTF-8 text; export the file as CSV UTF-8")]
    HeaderNotUtf8,
    #[error("the header needs an email or phone column (found: {0})")]
    NoChannelColumn(String),
    #[error("column {0:?} appears twice in the header")]
    DuplicateColumn(String),
    #[error("the file could not be read as CSV: {0}")]
    Csv(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RowProblem {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ImportedContacts {
    /// Line number and contact, in file order.
    pub contacts: Vec<(u64, Contact)>,
    pub bad_rows: Vec<RowProblem>,
    /// Lines whose contact already appeared earlier in the file.
    pub duplicate_lines: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Email,
    Phone,
    FirstName,
    LastName,
    Company,
    Segment,
    Store,
    OwnerEmail,
    Touchpoint,
    Locale,
    Property,
}

fn normalise_header(raw: &str) -> String {
    raw.trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' || c == '.' { '_' } else { c })
        .collect()
}

fn classify(name: &str) -> Column {
    match name {
        "email" | "e_mail" | "email_address" | "mail" | "e_post" | "epost" => Column::Email,
        "phone" | "mobile" | "mobile_phone" | "phone_number" | "mobil" | "telefon" | "cell" => Column::Phone,
        "first_name" | "firstname" | "given_name" | "fornavn" | "förnamn" => Column::FirstName,
        "last_name" | "lastname" | "surname" | "family_name" | "efternavn" | "efternamn" => Column::LastName,
        "company" | "organisation" | "organization" | "account" => Column::Company,
        "segment" => Column::Segment,
        "store" | "office" | "branch" => Column::Store,
        "owner_email" | "owner" | "account_manager" | "account_manager_email" => Column::OwnerEmail,
        "touchpoint" => Column::Touchpoint,
        "locale" | "language" | "lang" | "sprog" | "språk" => Column::Locale,
        _ => Column::Property,
    }
}

/// Picks the separator that splits the header line into the most fields, ignoring quoted text.
fn sniff_delimiter(first_line: &[u8]) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in first_line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for (d, n) in counts.iter_mut() {
                if b == *d {
                    *n += 1;
                }
            }
        }
    }
    counts.iter().max_by_key(|(_, n)| *n).map(|(d, _)| *d).unwrap_or(b',')
}

pub fn parse_contacts_csv(input: &[u8]) -> Result<ImportedContacts, ImportError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    if input.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ImportError::Empty);
    }
    let first_line = input.split(|b| *b == b'\n').next().unwrap_or(input);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(sniff_delimiter(first_line))
        .flexible(true)
        .has_headers(true)
        .from_reader(input);

    let headers = reader.byte_headers().map_err(|e| ImportError::Csv(e.to_string()))?.clone();
    let mut columns = Vec::with_capacity(headers.len());
    let mut seen = HashSet::new();
    for raw in headers.iter() {
        let name = normalise_header(std::str::from_utf8(raw).map_err(|_| ImportError::HeaderNotUtf8)?);
        let column = classify(&name);
        if !name.is_empty() && !seen.insert(if column == Column::Property { name.clone() } else { format!("{column:?}") }) {
            return Err(ImportError::DuplicateColumn(name));
        }
        columns.push((column, name));
    }
    if !columns.iter().any(|(c, _)| matches!(c, Column::Email | Column::Phone)) {
        let found = columns.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ");
        return Err(ImportError::NoChannelColumn(found));
    }

    let mut out = ImportedContacts::default();
    let mut known_keys = HashSet::new();
    let mut record = csv::ByteRecord::new();
    // The csv crate's line count skips blank lines and newlines inside quotes; people open the
    // file in an editor, so lines are counted from byte offsets instead.
    let mut lines = LineCounter::new(input);
    loop {
        let start = reader.position().byte();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                out.bad_rows.push(RowProblem { line: lines.line_at(start), reason: format!("unreadable CSV: {e}") });
                break;
            }
        }
        let line = lines.line_at(record.position().map(|p| p.byte()).unwrap_or(start));
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        if record.len() > columns.len() {
            out.bad_rows.push(RowProblem {
                line,
                reason: format!("has {} fields but the header has {}; is a separator inside an unquoted field?", record.len(), columns.len()),
            });
            continue;
        }
        match contact_from_row(&columns, &record) {
            Ok(contact) => {
                let keys = contact.keys();
                if keys.iter().any(|k| known_keys.contains(k)) {
                    out.duplicate_lines.push(line);
                } else {
                    known_keys.extend(keys);
                    out.contacts.push((line, contact));
                }
            }
            Err(reason) => out.bad_rows.push(RowProblem { line, reason }),
        }
    }
    Ok(out)
}

/// Line numbers of byte offsets, for offsets that only grow.
struct LineCounter<'a> {
    input: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self { input, offset: 0, line: 1 }
    }

    /// The csv crate places a record after the previous terminator, which may still be
    /// followed by the LF of a CRLF or by blank lines: those belong before the record.
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut target = (byte as usize).min(self.input.len());
        while target < self.input.len() && matches!(self.input[target], b'\r' | b'\n') {
            target += 1;
        }
        if target > self.offset {
            self.line += self.input[self.offset..target].iter().filter(|b| **b == b'\n').count() as u64;
            self.offset = target;
        }
        self.line
    }
}

fn contact_from_row(columns: &[(Column, String)], record: &csv::ByteRecord) -> Result<Contact, String> {
    let mut contact = Contact::default();
    let mut properties = BTreeMap::new();
    for ((column, name), raw) in columns.iter().zip(record.iter()) {
        let value = std::str::from_utf8(raw)
            .map_err(|_| format!("column {name:?} is not UTF-8 text; export the file as CSV UTF-8"))?
            .trim();
        if value.is_empty() {
            continue;
        }
        let text = || Some(value.to_owned());
        let problem = |e: ContactError| format!("{name}: {e}");
        match column {
            Column::Email => contact.email = Some(Email::parse(value).map_err(problem)?),
            Column::Phone => contact.phone = Some(Phone::parse(value).map_err(problem)?),
            Column::FirstName => contact.first_name = text(),
            Column::LastName => contact.last_name = text(),
            Column::Company => contact.company = text(),
            Column::Segment => contact.segment = text(),
            Column::Store => contact.store = text(),
            Column::OwnerEmail => contact.owner_email = Some(Email::parse(value).map_err(problem)?),
            Column::Touchpoint => contact.touchpoint = text(),
            // An unknown language is no reason to lose the contact: the campaign's default applies.
            Column::Locale => contact.locale = Locale::parse(value),
            Column::Property if !name.is_empty() => {
                properties.insert(name.clone(), value.to_owned());
            }
            Column::Property => {}
        }
    }
    contact.properties = properties;
    contact.validate().map_err(|e| e.to_string())?;
    Ok(contact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excel_semicolon_export_with_bom_and_scandinavian_names_is_read() {
        let csv = "\u{feff}Förnamn;Efternamn;E-mail;Store;Språk;Kundnummer\r\nÅsa;Ødegård;asa@example.se;Malmö;sv-SE;1001\r\n";
        let out = parse_contacts_csv(csv.as_bytes()).unwrap();
        assert!(out.bad_rows.is_empty(), "{:?}", out.bad_rows);
        let (line, c) = &out.contacts[0];
        assert_eq!(*line, 2);
        assert_eq!(c.first_name.as_deref(), Some("Åsa"));
        assert_eq!(c.last_name.as_deref(), Some("Ødegård"));
        assert_eq!(c.store.as_deref(), Some("Malmö"));
        assert_eq!(c.locale, Some(Locale::Sv));
        assert_eq!(c.properties.get("kundnummer").map(String::as_str), Some("1001"));
    }

    #[test]
    fn quoted_fields_may_hold_separators_quotes_and_newlines() {
        let csv = "email,company,note\n\"a@x.example\",\"Berg, Lund & Co\",\"said \"\"hi\"\"\nthen left\"\nb@x.example,Solo,\n";
        let out = parse_contacts_csv(csv.as_bytes()).unwrap();
        assert_eq!(out.contacts.len(), 2, "{:?}", out.bad_rows);
        assert_eq!(out.contacts[0].1.company.as_deref(), Some("Berg, Lund & Co"));
        assert_eq!(out.contacts[0].1.properties["note"], "said \"hi\"\nthen left");
        assert_eq!(out.contacts[1].0, 4, "line numbers count the newline inside the quoted field");
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_good_rows_go_on() {
        let csv = "email,phone,first_name\nok@x.example,,A\nnot-an-email,,B\n,,C\n,+46701234567,D\nok@x.example,,E\n\nz@x.example,,F,extra\n";
        let out = parse_contacts_csv(csv.as_bytes()).unwrap();
        let names: Vec<_> = out.contacts.iter().map(|(_, c)| c.first_name.clone().unwrap()).collect();
        assert_eq!(names, vec!["A", "D"]);
        let lines: Vec<_> = out.bad_rows.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![3, 4, 8]);
        assert!(out.bad_rows[0].reason.contains("not-an-email"));
        assert!(out.bad_rows[1].reason.contains("email address or a mobile phone"));
        assert!(out.bad_rows[2].reason.contains("fields"));
        assert_eq!(out.duplicate_lines, vec![6]);
    }

    #[test]
    fn a_file_without_a_channel_column_is_refused_whole() {
        let err = parse_contacts_csv(b"name,company\nA,B\n").unwrap_err();
        assert_eq!(err, ImportError::NoChannelColumn("name, company".into()));
        assert_eq!(parse_contacts_csv(b"").unwrap_err(), ImportError::Empty);
    }

    #[test]
    fn a_latin1_row_is_reported_not_garbled() {
        let mut csv = b"email,first_name\nx@y.example,".to_vec();
        csv.extend_from_slice(&[0xC5, b's', b'a', b'\n']); // "Åsa" in Latin-1
        let out = parse_contacts_csv(&csv).unwrap();
        assert!(out.contacts.is_empty());
        assert!(out.bad_rows[0].reason.contains("UTF-8"));
    }
}
