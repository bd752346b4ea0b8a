//! Contacts from what CRMs and Excel really export: CSV in UTF-8 (with or without BOM),
//! Windows-1252 or UTF-16, separated by `,`, `;` or tab, with quoted fields; or an `.xlsx`
//! sheet (feature `xlsx`). Columns are mapped to contact fields by their header names, or by an
//! explicit mapping. A bad row is reported with its line and reason; good rows go on.

mod mapping;
mod text;
#[cfg(feature = "xlsx")]
mod xlsx;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::campaign::Campaign;
use crate::model::{Contact, ContactError, Email, Phone};

pub use mapping::{
    header_key, locale_from_value, owner_key, parse_mapping_pairs, property_name, suggest, ColumnTarget, Field, MappedBy, MappedColumn, MappingPairError,
    UnknownField,
};
pub use text::Encoding;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("the file is empty")]
    Empty,
    #[error("the header line cannot be read as {0} text")]
    HeaderUndecodable(Encoding),
    #[error("the header needs an email or phone column (found: {0}); name one in the campaign's [columns], e.g. \"Work mail\" = \"email\"")]
    NoChannelColumn(String),
    #[error("column {0:?} appears twice in the header")]
    DuplicateColumn(String),
    #[error("columns {first:?} and {second:?} would both fill {field}; map one of them elsewhere (the campaign's [columns] or --map)")]
    SameField { field: Field, first: String, second: String },
    #[error("the header cannot be read: line {}: {}", .0.line, .0.reason)]
    BrokenHeader(RowProblem),
    #[error("the file is an .xlsx workbook, which this build does not read; save the sheet as CSV UTF-8")]
    XlsxNotSupported,
    #[error("the .xlsx file cannot be read: {0}")]
    Xlsx(String),
    #[error("the workbook has no sheet {wanted:?} (it has: {available})")]
    NoSuchSheet { wanted: String, available: String },
    #[error("a sheet ({0:?}) was asked for, but the file is CSV, not an .xlsx workbook")]
    SheetOfCsv(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowProblem {
    pub line: u64,
    pub reason: String,
}

/// What the file was and how it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum FileFormat {
    Csv { encoding: Encoding, delimiter: char },
    Xlsx { sheet: String },
}

impl FileFormat {
    pub fn encoding(&self) -> Option<Encoding> {
        match self {
            FileFormat::Csv { encoding, .. } => Some(*encoding),
            FileFormat::Xlsx { .. } => None,
        }
    }
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileFormat::Csv { encoding, delimiter } => {
                let separator = match delimiter {
                    ',' => "comma",
                    ';' => "semicolon",
                    '\t' => "tab",
                    _ => "other",
                };
                write!(f, "CSV, {encoding}, {separator}-separated")
            }
            FileFormat::Xlsx { sheet } => write!(f, "Excel workbook, sheet {sheet:?}"),
        }
    }
}

#[derive(Debug)]
pub struct ImportedContacts {
    pub format: FileFormat,
    /// Every column of the file and where its values went.
    pub mapping: Vec<MappedColumn>,
    /// Explicit mapping entries that matched no column, as written there.
    pub unused_mapping: Vec<String>,
    /// Line number and contact, in file order.
    pub contacts: Vec<(u64, Contact)>,
    pub bad_rows: Vec<RowProblem>,
    /// Lines whose contact already appeared earlier in the file.
    pub duplicate_lines: Vec<u64>,
}

/// How to read a file beyond what it says itself: the explicit column mapping, the owner
/// names, and for a workbook which sheet.
#[derive(Debug, Clone, Default)]
pub struct ImportSettings {
    /// By `header_key`: the header as written in the mapping, and its target.
    columns: BTreeMap<String, (String, ColumnTarget)>,
    owners: mapping::Owners,
    /// The sheet of an `.xlsx` file; the first one when `None`.
    pub sheet: Option<String>,
}

impl ImportSettings {
    /// The campaign's `[columns]` and `[owners]`.
    pub fn for_campaign(campaign: &Campaign) -> Self {
        Self::default().with_columns(&campaign.columns).with_owners(&campaign.owners)
    }

    /// Adds mappings over the ones there (the CLI's `--map` over the campaign's `[columns]`).
    pub fn with_columns(mut self, columns: &BTreeMap<String, ColumnTarget>) -> Self {
        for (header, target) in columns {
            self.columns.insert(header_key(header), (header.clone(), *target));
        }
        self
    }

    pub fn with_owners(mut self, owners: &BTreeMap<String, Email>) -> Self {
        self.owners = mapping::Owners::new(owners);
        self
    }

    pub fn with_sheet(mut self, sheet: Option<String>) -> Self {
        self.sheet = sheet;
        self
    }
}

/// A ZIP archive's signature: what every `.xlsx` file starts with.
pub fn is_xlsx(input: &[u8]) -> bool {
    input.starts_with(b"PK\x03\x04")
}

/// Contacts from a CSV file with the suggested mapping and no owner names.
pub fn parse_contacts_csv(input: &[u8]) -> Result<ImportedContacts, ImportError> {
    parse_contacts(input, &ImportSettings::default())
}

/// Contacts from a CSV or `.xlsx` file (told apart by their bytes, not their names).
pub fn parse_contacts(input: &[u8], settings: &ImportSettings) -> Result<ImportedContacts, ImportError> {
    if is_xlsx(input) {
        return parse_xlsx(input, settings);
    }
    if let Some(sheet) = &settings.sheet {
        return Err(ImportError::SheetOfCsv(sheet.clone()));
    }
    let decoded = text::decode(input);
    if decoded.text.trim().is_empty() {
        return Err(ImportError::Empty);
    }
    let mut records = text::Records::new(&decoded.text);
    let format = FileFormat::Csv { encoding: decoded.encoding, delimiter: records.delimiter() };
    let header = match records.next() {
        None => return Err(ImportError::Empty),
        Some(Err(problem)) => return Err(ImportError::BrokenHeader(problem)),
        Some(Ok((_, header))) => header,
    };
    let damaged = decoded.damaged.then_some(decoded.encoding);
    if damaged.is_some() && header.iter().any(|h| h.contains('\u{FFFD}')) {
        return Err(ImportError::HeaderUndecodable(decoded.encoding));
    }
    import_rows(format, header, records, settings, damaged)
}

#[cfg(feature = "xlsx")]
fn parse_xlsx(input: &[u8], settings: &ImportSettings) -> Result<ImportedContacts, ImportError> {
    let sheet = xlsx::read(input, settings.sheet.as_deref())?;
    let mut rows = sheet.rows.into_iter().skip_while(|(_, cells)| cells.iter().all(|c| c.trim().is_empty()));
    let Some((_, header)) = rows.next() else { return Err(ImportError::Empty) };
    import_rows(FileFormat::Xlsx { sheet: sheet.name }, header, xlsx::records(rows.collect()), settings, None)
}

#[cfg(not(feature = "xlsx"))]
fn parse_xlsx(_input: &[u8], _settings: &ImportSettings) -> Result<ImportedContacts, ImportError> {
    Err(ImportError::XlsxNotSupported)
}

/// A column as the rows are read: its field or custom property.
struct Column {
    header: String,
    field: Option<Field>,
    property: Option<String>,
}

/// The one path every format's rows take: mapping, validation, duplicates.
fn import_rows(
    format: FileFormat,
    header: Vec<String>,
    rows: impl Iterator<Item = Result<(u64, Vec<String>), RowProblem>>,
    settings: &ImportSettings,
    damaged: Option<Encoding>,
) -> Result<ImportedContacts, ImportError> {
    // Headers name properties, which reach export columns and alert labels: cleaned as fields are.
    let header: Vec<String> = header.iter().map(|h| crate::clean::field(h)).collect();
    let (mapping, unused_mapping) = mapping::resolve(&header, &settings.columns)?;
    let mut properties = HashSet::new();
    for column in &mapping {
        if let Some(p) = &column.property {
            if !properties.insert(p.as_str()) {
                return Err(ImportError::DuplicateColumn(column.header.clone()));
            }
        }
    }
    if !mapping.iter().any(|c| matches!(c.field, Some(Field::Email | Field::Phone))) {
        return Err(ImportError::NoChannelColumn(header.join(", ")));
    }
    let columns: Vec<Column> =
        mapping.iter().map(|c| Column { header: c.header.clone(), field: c.field, property: c.property.clone() }).collect();

    let mut out = ImportedContacts { format, mapping, unused_mapping, contacts: Vec::new(), bad_rows: Vec::new(), duplicate_lines: Vec::new() };
    let mut known_keys = HashSet::new();
    for row in rows {
        let (line, fields) = match row {
            Ok(row) => row,
            Err(problem) => {
                out.bad_rows.push(problem);
                continue;
            }
        };
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if fields.len() > columns.len() && fields[columns.len()..].iter().any(|f| !f.trim().is_empty()) {
            out.bad_rows.push(RowProblem {
                line,
                reason: format!("has {} fields but the header has {}; is a separator inside an unquoted field?", fields.len(), columns.len()),
            });
            continue;
        }
        match contact_from_row(&columns, &fields, &settings.owners, damaged) {
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

fn contact_from_row(columns: &[Column], fields: &[String], owners: &mapping::Owners, damaged: Option<Encoding>) -> Result<Contact, String> {
    let mut contact = Contact::default();
    let mut properties = BTreeMap::new();
    for (column, raw) in columns.iter().zip(fields) {
        // Cleaned before anything reads it: a CRM cell's line breaks, controls and bidi
        // overrides never reach a header, a page or an export.
        let value = crate::clean::field(raw);
        let value = value.as_str();
        if value.is_empty() {
            continue;
        }
        let name = &column.header;
        if let Some(encoding) = damaged.filter(|_| value.contains('\u{FFFD}')) {
            return Err(format!("{name}: holds bytes that are not {encoding} text; export the file again as CSV UTF-8"));
        }
        let text = || Some(value.to_owned());
        let problem = |e: ContactError| format!("{name}: {e}");
        match column.field {
            Some(Field::Email) => contact.email = Some(Email::parse(value).map_err(problem)?),
            Some(Field::Phone) => contact.phone = Some(Phone::parse(value).map_err(problem)?),
            Some(Field::FirstName) => contact.first_name = text(),
            Some(Field::LastName) => contact.last_name = text(),
            Some(Field::Company) => contact.company = text(),
            Some(Field::Segment) => contact.segment = text(),
            Some(Field::Store) => contact.store = text(),
            Some(Field::OwnerEmail) => contact.owner_email = Some(owner(name, value, owners)?),
            Some(Field::Touchpoint) => contact.touchpoint = text(),
            // An unknown language is no reason to lose the contact: the campaign's default applies.
            Some(Field::Locale) => contact.locale = locale_from_value(value),
            None => {
                if let Some(property) = &column.property {
                    properties.insert(property.clone(), value.to_owned());
                }
            }
        }
    }
    contact.properties = properties;
    let contact = contact.cleaned();
    contact.validate().map_err(|e| e.to_string())?;
    Ok(contact)
}

/// An owner column holds an address, or a name the campaign's `[owners]` knows. An unknown
/// name is a bad row rather than a contact without an owner: its alerts would silently go to
/// the manager instead.
fn owner(column: &str, value: &str, owners: &mapping::Owners) -> Result<Email, String> {
    if value.contains('@') {
        return Email::parse(value).map_err(|e| format!("{column}: {e}"));
    }
    owners.get(value).cloned().ok_or_else(|| {
        if owners.is_empty() {
            format!("{column}: {value:?} is a name, not an email address; list it in the campaign's [owners], e.g. {value:?} = \"name@company.example\"")
        } else {
            format!("{column}: owner {value:?} is not in the campaign's [owners]")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Locale;

    fn settings(columns: &[(&str, &str)], owners: &[(&str, &str)]) -> ImportSettings {
        let columns = columns.iter().map(|(h, f)| (h.to_string(), ColumnTarget::parse(f).unwrap())).collect();
        let owners = owners.iter().map(|(n, e)| (n.to_string(), Email::parse(e).unwrap())).collect();
        ImportSettings::default().with_columns(&columns).with_owners(&owners)
    }

    fn utf16le(text: &str) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        bytes
    }

    #[test]
    fn a_sheet_asked_of_a_csv_file_is_an_error_not_ignored() {
        let settings = ImportSettings::default().with_sheet(Some("Kunder".into()));
        assert!(matches!(parse_contacts(b"email\na@x.example\n", &settings), Err(ImportError::SheetOfCsv(s)) if s == "Kunder"));
    }

    #[test]
    fn excel_semicolon_export_with_bom_and_scandinavian_names_is_read() {
        let csv = "\u{feff}Förnamn;Efternamn;E-mail;Store;Språk;Kundnummer\r\nÅsa;Ødegård;asa@example.se;Malmö;sv-SE;1001\r\n";
        let out = parse_contacts_csv(csv.as_bytes()).unwrap();
        assert!(out.bad_rows.is_empty(), "{:?}", out.bad_rows);
        assert_eq!(out.format, FileFormat::Csv { encoding: Encoding::Utf8Bom, delimiter: ';' });
        let (line, c) = &out.contacts[0];
        assert_eq!(*line, 2);
        assert_eq!(c.first_name.as_deref(), Some("Åsa"));
        assert_eq!(c.last_name.as_deref(), Some("Ødegård"));
        assert_eq!(c.store.as_deref(), Some("Malmö"));
        assert_eq!(c.locale, Some(Locale::Sv));
        assert_eq!(c.properties.get("kundnummer").map(String::as_str), Some("1001"));
    }

    #[test]
    fn quoted_fields_may_hold_separators_quotes_and_newlines_and_a_newline_becomes_a_space() {
        let csv = "email,company,note\n\"a@x.example\",\"Berg, Lund & Co\",\"said \"\"hi\"\"\nthen left\"\nb@x.example,Solo,\n";
        let out = parse_contacts_csv(csv.as_bytes()).unwrap();
        assert_eq!(out.contacts.len(), 2, "{:?}", out.bad_rows);
        assert_eq!(out.contacts[0].1.company.as_deref(), Some("Berg, Lund & Co"));
        assert_eq!(out.contacts[0].1.properties["note"], "said \"hi\" then left", "a CRM value is one line wherever it is shown");
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
    fn empty_fields_after_the_last_column_are_no_extra_fields() {
        let out = parse_contacts_csv(b"email;first_name\r\na@x.example;A;;\r\n").unwrap();
        assert_eq!((out.contacts.len(), out.bad_rows.len()), (1, 0));
    }

    #[test]
    fn a_file_without_a_channel_column_is_refused_whole() {
        let err = parse_contacts_csv(b"name,company\nA,B\n").unwrap_err();
        assert_eq!(err, ImportError::NoChannelColumn("name, company".into()));
        assert_eq!(parse_contacts_csv(b"").unwrap_err(), ImportError::Empty);
        assert_eq!(parse_contacts_csv(b"\xEF\xBB\xBF \r\n").unwrap_err(), ImportError::Empty);
    }

    #[test]
    fn a_windows_1252_excel_export_with_hubspot_headers_is_read_with_every_field() {
        // Excel on Windows, "CSV (semicolon delimited)": Windows-1252, CRLF, HubSpot's names.
        let mut csv = b"First Name;Last Name;Email;Phone Number;Company Name;Contact owner;Preferred language\r\n".to_vec();
        csv.extend_from_slice(b"\xC5sa;\xD6berg;asa@example.se;+46701234567;Caf\xE9 \x96 Malm\xF6;Karin Holm;Swedish\r\n");
        csv.extend_from_slice(b"S\xF8ren;Dahl;soren@example.dk;;N\xF8rre ApS;karin@nordhavn.example;Danish\r\n");
        let out = parse_contacts(&csv, &settings(&[], &[("Karin Holm", "karin@nordhavn.example")])).unwrap();
        assert_eq!(out.format.encoding(), Some(Encoding::Windows1252));
        assert!(out.bad_rows.is_empty(), "{:?}", out.bad_rows);
        let (line, asa) = &out.contacts[0];
        assert_eq!(*line, 2);
        assert_eq!((asa.first_name.as_deref(), asa.last_name.as_deref()), (Some("Åsa"), Some("Öberg")));
        assert_eq!(asa.company.as_deref(), Some("Café – Malmö"));
        assert_eq!(asa.phone.as_ref().map(|p| p.as_str()), Some("+46701234567"));
        assert_eq!(asa.owner_email.as_ref().map(Email::as_str), Some("karin@nordhavn.example"));
        assert_eq!(asa.locale, Some(Locale::Sv));
        assert!(asa.properties.is_empty(), "{:?}", asa.properties);
        let soren = &out.contacts[1].1;
        assert_eq!((soren.first_name.as_deref(), soren.company.as_deref(), soren.locale), (Some("Søren"), Some("Nørre ApS"), Some(Locale::Da)));
        let fields: Vec<_> = out.mapping.iter().map(|c| c.field).collect();
        assert!(fields.iter().all(Option::is_some), "{:?}", out.mapping);
    }

    #[test]
    fn a_windows_1252_row_in_a_latin1_file_is_read_not_refused() {
        let mut csv = b"email,first_name\nx@y.example,".to_vec();
        csv.extend_from_slice(&[0xC5, b's', b'a', b'\n']); // "Åsa" in Latin-1
        let out = parse_contacts_csv(&csv).unwrap();
        assert_eq!(out.contacts[0].1.first_name.as_deref(), Some("Åsa"));
        assert_eq!(out.format.encoding(), Some(Encoding::Windows1252));
    }

    #[test]
    fn excels_unicode_text_export_in_utf16_with_tabs_is_read() {
        let out = parse_contacts_csv(&utf16le("E-post\tFörnamn\tFöretag\r\nåsa@example.se\tÅsa\tÖresund AB\r\n")).unwrap();
        assert_eq!(out.format, FileFormat::Csv { encoding: Encoding::Utf16Le, delimiter: '\t' });
        let c = &out.contacts[0].1;
        assert_eq!((c.email.as_ref().map(Email::as_str), c.first_name.as_deref(), c.company.as_deref()), (Some("åsa@example.se"), Some("Åsa"), Some("Öresund AB")));
        let mut be = vec![0xFE, 0xFF];
        be.extend("email\ta\r\nb@x.example\tB\r\n".encode_utf16().flat_map(u16::to_be_bytes));
        let out = parse_contacts_csv(&be).unwrap();
        assert_eq!((out.format.encoding(), out.contacts.len()), (Some(Encoding::Utf16Be), 1));
    }

    #[test]
    fn undecodable_bytes_after_a_utf8_bom_make_a_bad_row_that_names_the_encoding() {
        let out = parse_contacts_csv(b"\xEF\xBB\xBFemail,first_name\na@x.example,\xC5sa\nb@x.example,Bo\n").unwrap();
        assert_eq!(out.contacts.len(), 1);
        assert_eq!(out.bad_rows[0].line, 2);
        assert!(out.bad_rows[0].reason.contains("UTF-8 with BOM"), "{}", out.bad_rows[0].reason);
        assert_eq!(parse_contacts_csv(b"\xEF\xBB\xBFe\xC5mail\nx\n").unwrap_err(), ImportError::HeaderUndecodable(Encoding::Utf8Bom));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn quoted(cell: &str) -> String {
            format!("\"{}\"", cell.replace('"', "\"\""))
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_are_read_or_refused_and_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let mut file = b"email;first_name;note\n".to_vec();
                file.extend(bytes);
                let _ = parse_contacts_csv(&file);
            }

            #[test]
            fn any_cell_text_comes_out_of_an_import_clean_or_as_a_bad_row_at_its_line(
                rows in proptest::collection::vec((any::<String>(), any::<String>(), any::<String>()), 1..6),
            ) {
                let mut file = String::from("email,first_name,company,note\n");
                for (i, (name, company, note)) in rows.iter().enumerate() {
                    file.push_str(&format!("p{i}@x.example,{},{},{}\n", quoted(name), quoted(company), quoted(note)));
                }
                let out = parse_contacts_csv(file.as_bytes()).unwrap();
                prop_assert_eq!(out.contacts.len() + out.bad_rows.len(), rows.len(), "every row is a contact or a bad row");
                for (_, c) in &out.contacts {
                    for text in [&c.first_name, &c.company].into_iter().flatten().chain(c.properties.values()) {
                        prop_assert_eq!(&crate::clean::field(text), text, "clean: {:?}", text);
                    }
                }
            }
        }
    }

    #[test]
    fn a_header_with_controls_or_a_bidi_override_names_a_clean_property() {
        let csv = "email,No\u{7}te\u{202e}x\na@x.example,hello\n";
        let out = parse_contacts_csv(csv.as_bytes()).unwrap();
        let keys: Vec<&String> = out.contacts[0].1.properties.keys().collect();
        assert_eq!(keys.len(), 1);
        assert!(!keys[0].chars().any(|c| c.is_control() || c == '\u{202e}'), "{keys:?}");
    }

    #[test]
    fn control_characters_line_separators_and_bidi_overrides_never_enter_a_contact() {
        let csv = "email,first_name,company,note\na@x.example,\"An\u{202e}na\u{7}\",\"Berg\u{2028}& Co\u{0}\",\"x\u{85}y\u{9b}\"\n";
        let out = parse_contacts_csv(csv.as_bytes()).unwrap();
        let c = &out.contacts[0].1;
        assert_eq!(c.first_name.as_deref(), Some("Anna"));
        assert_eq!(c.company.as_deref(), Some("Berg & Co"));
        assert_eq!(c.properties["note"], "x y");
    }

    #[test]
    fn an_unterminated_quote_is_a_bad_row_at_its_line_and_the_rows_after_it_are_imported() {
        let csv = "email,company\na@x.example,Acme\nb@x.example,\"Berg & Co\nc@x.example,Lund\nd@x.example,Malmö\n";
        let out = parse_contacts_csv(csv.as_bytes()).unwrap();
        assert_eq!(out.bad_rows.len(), 1, "{:?}", out.bad_rows);
        assert_eq!(out.bad_rows[0].line, 3);
        assert!(out.bad_rows[0].reason.contains("never closed"), "{}", out.bad_rows[0].reason);
        let lines: Vec<_> = out.contacts.iter().map(|(l, c)| (*l, c.company.clone().unwrap())).collect();
        assert_eq!(lines, vec![(2, "Acme".into()), (4, "Lund".into()), (5, "Malmö".into())]);
        let err = parse_contacts_csv(b"email,\"company\n").unwrap_err();
        assert!(matches!(err, ImportError::BrokenHeader(RowProblem { line: 1, .. })), "{err:?}");
    }

    #[test]
    fn a_campaign_mapping_overrides_the_suggestion_and_custom_keeps_a_column_as_it_is() {
        let csv = "Work mail,Email,Account Name,Region\nw@x.example,p@x.example,Acme,North\n";
        let out = parse_contacts(csv.as_bytes(), &settings(&[("work mail", "email"), ("Email", "custom"), ("region", "segment")], &[])).unwrap();
        let c = &out.contacts[0].1;
        assert_eq!(c.email.as_ref().map(Email::as_str), Some("w@x.example"));
        assert_eq!(c.company.as_deref(), Some("Acme"), "the suggestion still fills what the mapping leaves");
        assert_eq!(c.segment.as_deref(), Some("North"));
        assert_eq!(c.properties["email"], "p@x.example");
        let by: Vec<_> = out.mapping.iter().map(|m| (m.header.as_str(), m.field, m.by)).collect();
        assert_eq!(
            by,
            vec![
                ("Work mail", Some(Field::Email), MappedBy::Explicit),
                ("Email", None, MappedBy::Explicit),
                ("Account Name", Some(Field::Company), MappedBy::Suggested),
                ("Region", Some(Field::Segment), MappedBy::Explicit),
            ]
        );
    }

    #[test]
    fn owner_names_become_addresses_and_an_unknown_name_is_a_bad_row_that_says_why() {
        let csv = "Email,Contact owner\na@x.example,karin holm\nb@x.example,Erik Berg\nc@x.example,erik@nordhavn.example\nd@x.example,\n";
        let out = parse_contacts(csv.as_bytes(), &settings(&[], &[("Karin Holm", "karin@nordhavn.example")])).unwrap();
        let owners: Vec<_> = out.contacts.iter().map(|(l, c)| (*l, c.owner_email.as_ref().map(|e| e.as_str().to_owned()))).collect();
        assert_eq!(owners, vec![(2, Some("karin@nordhavn.example".into())), (4, Some("erik@nordhavn.example".into())), (5, None)]);
        assert_eq!(out.bad_rows.len(), 1);
        assert_eq!(out.bad_rows[0].line, 3);
        assert!(out.bad_rows[0].reason.contains("\"Erik Berg\" is not in the campaign's [owners]"), "{}", out.bad_rows[0].reason);
        let out = parse_contacts_csv(csv.as_bytes()).unwrap();
        assert!(out.bad_rows[0].reason.contains("is a name, not an email address"), "{}", out.bad_rows[0].reason);
    }

    #[test]
    fn an_unknown_language_value_falls_back_instead_of_losing_the_contact() {
        let out = parse_contacts_csv("Email,Preferred language\na@x.example,Norwegian\nb@x.example,svenska\n".as_bytes()).unwrap();
        let locales: Vec<_> = out.contacts.iter().map(|(_, c)| c.locale).collect();
        assert_eq!(locales, vec![None, Some(Locale::Sv)]);
    }

    #[test]
    fn an_xlsx_file_is_refused_with_advice_when_the_feature_is_off() {
        if cfg!(feature = "xlsx") {
            return;
        }
        assert_eq!(parse_contacts_csv(b"PK\x03\x04rest").unwrap_err(), ImportError::XlsxNotSupported);
    }
}

#[cfg(all(test, feature = "xlsx"))]
mod xlsx_tests {
    use super::*;
    use crate::model::Locale;

    #[test]
    fn the_first_sheet_of_a_workbook_goes_through_the_same_mapping_with_sheet_row_numbers() {
        let book = xlsx::workbook(&[
            (
                "Kontakter",
                &[
                    &["", "", ""],
                    &["E-post", "Förnamn", "Språk", "Kundnummer", "Mobil"],
                    &["asa@example.se", "Åsa", "svenska", "1001", ""],
                    &["", "", "", "", ""],
                    &["nope", "Bad", "", "", ""],
                    &["bo@example.se", "Bo", "Danish", "1002.5", "+46701234567"],
                    &["asa@example.se", "Again", "", "", ""],
                ],
            ),
            ("Other", &[&["email"], &["other@example.se"]]),
        ]);
        let out = parse_contacts_csv(&book).unwrap();
        assert_eq!(out.format, FileFormat::Xlsx { sheet: "Kontakter".into() });
        let got: Vec<_> = out.contacts.iter().map(|(l, c)| (*l, c.first_name.clone().unwrap(), c.locale)).collect();
        assert_eq!(got, vec![(3, "Åsa".into(), Some(Locale::Sv)), (6, "Bo".into(), Some(Locale::Da))]);
        assert_eq!(out.contacts[0].1.properties["kundnummer"], "1001", "a whole number reads without a decimal point");
        assert_eq!(out.contacts[1].1.properties["kundnummer"], "1002.5");
        assert_eq!(out.contacts[1].1.phone.as_ref().map(|p| p.as_str()), Some("+46701234567"));
        assert_eq!(out.bad_rows.iter().map(|p| p.line).collect::<Vec<_>>(), vec![5]);
        assert!(out.bad_rows[0].reason.contains("E-post: \"nope\""), "{}", out.bad_rows[0].reason);
        assert_eq!(out.duplicate_lines, vec![7]);
    }

    #[test]
    fn a_named_sheet_is_read_and_an_unknown_one_is_an_error_listing_the_sheets() {
        let book = xlsx::workbook(&[("First", &[&["name"], &["x"]]), ("HubSpot export", &[&["Email", "Company Name"], &["a@x.example", "Acme"]])]);
        let out = parse_contacts(&book, &ImportSettings::default().with_sheet(Some("hubspot EXPORT".into()))).unwrap();
        assert_eq!(out.format, FileFormat::Xlsx { sheet: "HubSpot export".into() });
        assert_eq!(out.contacts[0].1.company.as_deref(), Some("Acme"));
        let err = parse_contacts(&book, &ImportSettings::default().with_sheet(Some("Missing".into()))).unwrap_err();
        assert_eq!(err, ImportError::NoSuchSheet { wanted: "Missing".into(), available: "First, HubSpot export".into() });
        assert!(matches!(parse_contacts_csv(&book), Err(ImportError::NoChannelColumn(_))), "the first sheet is the default");
    }

    #[test]
    fn a_damaged_workbook_is_an_error_not_a_panic() {
        let mut book = xlsx::workbook(&[("S", &[&["email"], &["a@x.example"]])]);
        book.truncate(book.len() / 2);
        assert!(matches!(parse_contacts_csv(&book), Err(ImportError::Xlsx(_))));
    }
}
