//! Which column of a contacts file fills which field: suggested from the header names that
//! HubSpot, Salesforce, Dynamics 365, Pipedrive and English/Swedish/Danish Excel sheets use,
//! overridden by an explicit mapping (the campaign's `[columns]`, the CLI's `--map`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Email, Locale};

use super::ImportError;

/// A contact field a column can fill; every other column stays a custom property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
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
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::Email,
        Field::Phone,
        Field::FirstName,
        Field::LastName,
        Field::Company,
        Field::Segment,
        Field::Store,
        Field::OwnerEmail,
        Field::Touchpoint,
        Field::Locale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Email => "email",
            Field::Phone => "phone",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::Company => "company",
            Field::Segment => "segment",
            Field::Store => "store",
            Field::OwnerEmail => "owner_email",
            Field::Touchpoint => "touchpoint",
            Field::Locale => "locale",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an explicit mapping sends a column to: a field, or `custom` to keep it a custom
/// property even where a field would be suggested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ColumnTarget {
    Field(Field),
    Custom,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown field {} in a column mapping; the fields are {}, or custom to keep a column as it is", .0.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", "), Field::ALL.map(Field::as_str).join(", "))]
pub struct UnknownField(pub Vec<String>);

impl ColumnTarget {
    pub const CUSTOM: &'static str = "custom";

    /// A field name as written (`company`, `Owner_Email`, `first name`), or `custom`.
    pub fn parse(input: &str) -> Result<Self, UnknownField> {
        let name: String = input.trim().to_lowercase().chars().map(|c| if c == ' ' || c == '-' { '_' } else { c }).collect();
        if name == Self::CUSTOM {
            return Ok(ColumnTarget::Custom);
        }
        Field::ALL.into_iter().find(|f| f.as_str() == name).map(ColumnTarget::Field).ok_or_else(|| UnknownField(vec![input.trim().to_owned()]))
    }

    pub fn field(self) -> Option<Field> {
        match self {
            ColumnTarget::Field(f) => Some(f),
            ColumnTarget::Custom => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.field().map_or(Self::CUSTOM, Field::as_str)
    }
}

impl TryFrom<String> for ColumnTarget {
    type Error = UnknownField;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ColumnTarget> for String {
    fn from(t: ColumnTarget) -> String {
        t.as_str().to_owned()
    }
}

/// `"Header=field"` pairs as the CLI takes them; every unknown field is named in one error.
pub fn parse_mapping_pairs<S: AsRef<str>>(pairs: &[S]) -> Result<BTreeMap<String, ColumnTarget>, MappingPairError> {
    let mut out = BTreeMap::new();
    let mut unknown = Vec::new();
    for pair in pairs {
        let pair = pair.as_ref();
        // A field name never holds `=`; a header might.
        let Some((header, field)) = pair.rsplit_once('=') else {
            return Err(MappingPairError::Malformed(pair.to_owned()));
        };
        if header.trim().is_empty() {
            return Err(MappingPairError::Malformed(pair.to_owned()));
        }
        match ColumnTarget::parse(field) {
            Ok(target) => {
                if out.insert(header.trim().to_owned(), target).is_some_and(|earlier| earlier != target) {
                    return Err(MappingPairError::Twice(header.trim().to_owned()));
                }
            }
            Err(UnknownField(names)) => unknown.extend(names),
        }
    }
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(MappingPairError::Unknown(UnknownField(unknown)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingPairError {
    #[error("{0:?} is not a mapping; write it as \"Header=field\", e.g. \"Company Name=company\"")]
    Malformed(String),
    #[error(transparent)]
    Unknown(#[from] UnknownField),
    #[error("the column {0:?} is mapped twice, to different fields")]
    Twice(String),
}

/// How a column came by its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappedBy {
    /// The campaign's `[columns]` or the CLI's `--map`.
    Explicit,
    /// Recognised from its header.
    Suggested,
    /// No field: kept as a custom property.
    Custom,
}

/// One column of the file and where its values go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedColumn {
    /// As written in the file.
    pub header: String,
    /// The field it fills, or `None` for a custom property.
    pub field: Option<Field>,
    /// The custom property's name (the header in lower case, `_` for spaces), when it is one.
    pub property: Option<String>,
    pub by: MappedBy,
}

/// Header names compared without case, accents, spaces or punctuation: "E-post", "e post" and
/// "EPOST" are one name, and so are "Förnamn" and "Fornamn".
pub fn header_key(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars().flat_map(char::to_lowercase) {
        match c {
            'å' | 'ä' | 'á' | 'à' | 'â' => out.push('a'),
            'ö' | 'ø' | 'ó' | 'ò' | 'ô' => out.push('o'),
            'æ' => out.push_str("ae"),
            'é' | 'è' | 'ê' | 'ë' => out.push('e'),
            'ü' | 'ú' => out.push('u'),
            c if c.is_alphanumeric() => out.push(c),
            _ => {}
        }
    }
    out
}

/// A custom property's name: the header in lower case with `_` for spaces, dashes and dots
/// (what segment pages and the export show).
pub fn property_name(raw: &str) -> String {
    raw.trim().to_lowercase().chars().map(|c| if c == ' ' || c == '-' || c == '.' { '_' } else { c }).collect()
}

/// Header keys (see `header_key`) and the field each suggests, with a rank: when several
/// columns suggest one field, the lowest rank wins and the others stay custom properties
/// (Salesforce exports "Mobile" and "Phone": only a mobile number can get an SMS).
const SUGGESTIONS: &[(&str, Field, u8)] = &[
    // Email: HubSpot, Salesforce, Dynamics, Pipedrive ("Person - Email"), sv/da sheets.
    ("email", Field::Email, 0),
    ("emailaddress", Field::Email, 0),
    ("emailadress", Field::Email, 0),
    ("emailadresse", Field::Email, 0),
    ("mail", Field::Email, 0),
    ("mailadress", Field::Email, 0),
    ("mailadresse", Field::Email, 0),
    ("epost", Field::Email, 0),
    ("epostadress", Field::Email, 0),
    ("epostadresse", Field::Email, 0),
    ("primaryemail", Field::Email, 0),
    ("contactemail", Field::Email, 0),
    ("emailaddress1", Field::Email, 0),
    ("workemail", Field::Email, 1),
    ("businessemail", Field::Email, 1),
    ("emailwork", Field::Email, 1),
    ("emailaddress2", Field::Email, 2),
    ("emailhome", Field::Email, 2),
    ("emailother", Field::Email, 3),
    // Phone: a mobile column beats a general one, which may be a landline.
    ("mobile", Field::Phone, 0),
    ("mobilephone", Field::Phone, 0),
    ("mobilephonenumber", Field::Phone, 0),
    ("mobilenumber", Field::Phone, 0),
    ("phonemobile", Field::Phone, 0),
    ("cell", Field::Phone, 0),
    ("cellphone", Field::Phone, 0),
    ("mobil", Field::Phone, 0),
    ("mobiltelefon", Field::Phone, 0),
    ("mobilnummer", Field::Phone, 0),
    ("mobilnr", Field::Phone, 0),
    ("phone", Field::Phone, 1),
    ("phonenumber", Field::Phone, 1),
    ("telephone", Field::Phone, 1),
    ("telefon", Field::Phone, 1),
    ("telefonnummer", Field::Phone, 1),
    ("telefonnr", Field::Phone, 1),
    ("tlf", Field::Phone, 1),
    ("telnr", Field::Phone, 1),
    ("businessphone", Field::Phone, 2),
    ("phonework", Field::Phone, 2),
    ("workphone", Field::Phone, 2),
    ("telephone1", Field::Phone, 2),
    // Names.
    ("firstname", Field::FirstName, 0),
    ("givenname", Field::FirstName, 0),
    ("forename", Field::FirstName, 0),
    ("fornamn", Field::FirstName, 0),
    ("fornavn", Field::FirstName, 0),
    ("lastname", Field::LastName, 0),
    ("surname", Field::LastName, 0),
    ("familyname", Field::LastName, 0),
    ("efternamn", Field::LastName, 0),
    ("efternavn", Field::LastName, 0),
    // Company: HubSpot "Company Name", Salesforce "Account Name", Pipedrive "Organization".
    ("company", Field::Company, 0),
    ("companyname", Field::Company, 0),
    ("accountname", Field::Company, 0),
    ("organization", Field::Company, 0),
    ("organisation", Field::Company, 0),
    ("organizationname", Field::Company, 0),
    ("organisationname", Field::Company, 0),
    ("foretag", Field::Company, 0),
    ("foretagsnamn", Field::Company, 0),
    ("virksomhed", Field::Company, 0),
    ("virksomhedsnavn", Field::Company, 0),
    ("firma", Field::Company, 0),
    ("firmanavn", Field::Company, 0),
    ("firmanamn", Field::Company, 0),
    ("companyaccount", Field::Company, 0),
    ("account", Field::Company, 1),
    ("associatedcompany", Field::Company, 1),
    ("parentcustomer", Field::Company, 1),
    // Segment, store, touchpoint.
    ("segment", Field::Segment, 0),
    ("customersegment", Field::Segment, 0),
    ("kundsegment", Field::Segment, 0),
    ("kundesegment", Field::Segment, 0),
    ("store", Field::Store, 0),
    ("shop", Field::Store, 0),
    ("butik", Field::Store, 0),
    ("branch", Field::Store, 1),
    ("office", Field::Store, 1),
    ("filial", Field::Store, 1),
    ("kontor", Field::Store, 1),
    ("touchpoint", Field::Touchpoint, 0),
    ("kontaktpunkt", Field::Touchpoint, 0),
    // Owner: an address, or a name the campaign's [owners] turns into one.
    ("owneremail", Field::OwnerEmail, 0),
    ("contactowneremail", Field::OwnerEmail, 0),
    ("accountmanageremail", Field::OwnerEmail, 0),
    ("owner", Field::OwnerEmail, 1),
    ("ownername", Field::OwnerEmail, 1),
    ("contactowner", Field::OwnerEmail, 1),
    ("accountowner", Field::OwnerEmail, 1),
    ("hubspotowner", Field::OwnerEmail, 1),
    ("accountmanager", Field::OwnerEmail, 1),
    ("ansvarig", Field::OwnerEmail, 2),
    ("ansvarlig", Field::OwnerEmail, 2),
    ("saljare", Field::OwnerEmail, 2),
    ("saelger", Field::OwnerEmail, 2),
    // Language.
    ("locale", Field::Locale, 0),
    ("language", Field::Locale, 0),
    ("preferredlanguage", Field::Locale, 0),
    ("contactlanguage", Field::Locale, 0),
    ("languagecode", Field::Locale, 0),
    ("lang", Field::Locale, 1),
    ("sprak", Field::Locale, 0),
    ("sprog", Field::Locale, 0),
    ("foretrukketsprog", Field::Locale, 0),
];

/// The field a header suggests, and its rank (lower wins).
pub fn suggest(header: &str) -> Option<(Field, u8)> {
    let key = header_key(header);
    let lookup = |k: &str| SUGGESTIONS.iter().find(|(name, _, _)| *name == k).map(|(_, f, rank)| (*f, *rank));
    // Pipedrive prefixes a person's columns with "Person - " ("Person - Email - Work").
    lookup(&key).or_else(|| key.strip_prefix("person").filter(|k| !k.is_empty()).and_then(lookup))
}

/// The mapping of every header: explicit entries first (`explicit` is keyed by `header_key`,
/// holding the header as written there), then the best suggestion for each field left.
/// Returns the columns and the explicit entries that matched no header.
pub fn resolve(headers: &[String], explicit: &BTreeMap<String, (String, ColumnTarget)>) -> Result<(Vec<MappedColumn>, Vec<String>), ImportError> {
    let keys: Vec<String> = headers.iter().map(|h| header_key(h)).collect();
    let mut chosen: Vec<(Option<Field>, MappedBy)> = vec![(None, MappedBy::Custom); headers.len()];
    let mut owner_of: BTreeMap<Field, usize> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        let Some((_, target)) = explicit.get(key).filter(|_| !key.is_empty()) else { continue };
        chosen[i] = (target.field(), MappedBy::Explicit);
        if let Some(field) = target.field() {
            if let Some(&first) = owner_of.get(&field) {
                return Err(ImportError::SameField { field, first: headers[first].clone(), second: headers[i].clone() });
            }
            owner_of.insert(field, i);
        }
    }
    // Every candidate first: a tie only matters between the best-ranked ones.
    let mut candidates: BTreeMap<Field, Vec<(u8, usize)>> = BTreeMap::new();
    for (i, header) in headers.iter().enumerate() {
        if chosen[i].1 == MappedBy::Explicit {
            continue;
        }
        if let Some((field, rank)) = suggest(header).filter(|(field, _)| !owner_of.contains_key(field)) {
            candidates.entry(field).or_default().push((rank, i));
        }
    }
    for (field, mut found) in candidates {
        found.sort();
        if let [(rank, first), (next_rank, second), ..] = found[..] {
            if rank == next_rank {
                return Err(ImportError::SameField { field, first: headers[first].clone(), second: headers[second].clone() });
            }
        }
        chosen[found[0].1] = (Some(field), MappedBy::Suggested);
    }
    let columns = headers
        .iter()
        .zip(chosen)
        .map(|(header, (field, by))| MappedColumn {
            header: header.clone(),
            field,
            property: field.is_none().then(|| property_name(header)).filter(|p| !p.is_empty()),
            by,
        })
        .collect();
    let unused = explicit.iter().filter(|(key, _)| !keys.contains(key)).map(|(_, (written, _))| written.clone()).collect();
    Ok((columns, unused))
}

/// A language as CRMs export it: a code ("sv", "SV", "sv-SE", "sv_SE") or a name in English,
/// Swedish or Danish ("Swedish", "svenska", "Danish (Denmark)"). `None` when it is neither.
pub fn locale_from_value(value: &str) -> Option<Locale> {
    if let Some(locale) = Locale::parse(value) {
        return Some(locale);
    }
    // "English (United Kingdom)", "Svenska (Sverige)": the language is the part before.
    let name = header_key(value.split('(').next().unwrap_or(value));
    match name.as_str() {
        "english" | "engelska" | "engelsk" | "englisch" | "eng" => Some(Locale::En),
        "swedish" | "svenska" | "svensk" | "schwedisch" | "swe" => Some(Locale::Sv),
        "danish" | "dansk" | "danska" | "danisch" | "dan" => Some(Locale::Da),
        _ => None,
    }
}

/// Owner names from the campaign's `[owners]`, looked up without case or extra spaces, and in
/// "Last, First" order too (Salesforce's "Owner Name" in some locales).
#[derive(Debug, Clone, Default)]
pub struct Owners(BTreeMap<String, Email>);

impl Owners {
    pub fn new(owners: &BTreeMap<String, Email>) -> Self {
        Self(owners.iter().map(|(name, email)| (owner_key(name), email.clone())).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Email> {
        self.0.get(&owner_key(name)).or_else(|| {
            let (last, first) = name.split_once(',')?;
            self.0.get(&owner_key(&format!("{first} {last}")))
        })
    }
}

/// A person's name compared without case and with single spaces.
pub fn owner_key(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggested(headers: &[&str]) -> Vec<(String, Option<Field>)> {
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        let (columns, unused) = resolve(&headers, &BTreeMap::new()).unwrap();
        assert!(unused.is_empty());
        columns.into_iter().map(|c| (c.header, c.field)).collect()
    }

    fn fields(headers: &[&str]) -> Vec<Option<Field>> {
        suggested(headers).into_iter().map(|(_, f)| f).collect()
    }

    use Field::*;

    #[test]
    fn hubspot_headers_are_recognised() {
        let got = fields(&["First Name", "Last Name", "Email", "Phone Number", "Company Name", "Contact owner", "Preferred language", "Lifecycle Stage"]);
        assert_eq!(got, vec![Some(FirstName), Some(LastName), Some(Email), Some(Phone), Some(Company), Some(OwnerEmail), Some(Locale), None]);
    }

    #[test]
    fn salesforce_headers_are_recognised_and_mobile_wins_over_phone() {
        let got = fields(&["First Name", "Last Name", "Account Name", "Email", "Phone", "Mobile", "Contact Owner", "Mailing City"]);
        assert_eq!(got, vec![Some(FirstName), Some(LastName), Some(Company), Some(Email), None, Some(Phone), Some(OwnerEmail), None]);
        assert_eq!(fields(&["Email", "Owner Name"]), vec![Some(Email), Some(OwnerEmail)]);
        assert_eq!(fields(&["Email", "Phone", "Telefon", "Mobile"]), vec![Some(Email), None, None, Some(Phone)], "a tie below the best is no tie");
    }

    #[test]
    fn dynamics_365_headers_are_recognised() {
        let got = fields(&["Full Name", "First Name", "Last Name", "Company Name", "Email", "Business Phone", "Mobile Phone", "Owner"]);
        assert_eq!(got, vec![None, Some(FirstName), Some(LastName), Some(Company), Some(Email), None, Some(Phone), Some(OwnerEmail)]);
    }

    #[test]
    fn pipedrive_headers_with_their_person_prefix_are_recognised() {
        let got = fields(&["Person - Name", "Person - First name", "Person - Last name", "Person - Email - Work", "Person - Phone - Mobile", "Person - Organization", "Person - Owner"]);
        assert_eq!(got, vec![None, Some(FirstName), Some(LastName), Some(Email), Some(Phone), Some(Company), Some(OwnerEmail)]);
        assert_eq!(fields(&["Name", "Organization", "Email", "Phone"]), vec![None, Some(Company), Some(Email), Some(Phone)]);
    }

    #[test]
    fn swedish_and_danish_sheet_headers_are_recognised_with_or_without_accents() {
        let sv = fields(&["Förnamn", "Efternamn", "E-post", "Mobil", "Företag", "Butik", "Språk", "Säljare"]);
        assert_eq!(sv, vec![Some(FirstName), Some(LastName), Some(Email), Some(Phone), Some(Company), Some(Store), Some(Locale), Some(OwnerEmail)]);
        let da = fields(&["Fornavn", "Efternavn", "E-mail", "Telefon", "Virksomhed", "Sprog", "Ansvarlig"]);
        assert_eq!(da, vec![Some(FirstName), Some(LastName), Some(Email), Some(Phone), Some(Company), Some(Locale), Some(OwnerEmail)]);
        assert_eq!(fields(&["FORNAMN", "e post", "Foretag", "sprak"]), vec![Some(FirstName), Some(Email), Some(Company), Some(Locale)]);
    }

    #[test]
    fn headers_are_compared_without_case_or_punctuation() {
        assert_eq!(fields(&["E_MAIL", "first.name", "  Company  Name ", "owner-email"]), vec![Some(Email), Some(FirstName), Some(Company), Some(OwnerEmail)]);
    }

    #[test]
    fn an_owner_email_column_wins_over_an_owner_name_column() {
        assert_eq!(fields(&["Email", "Contact owner", "Owner Email"]), vec![Some(Email), None, Some(OwnerEmail)]);
    }

    #[test]
    fn two_columns_that_suggest_one_field_equally_are_an_error_naming_both() {
        let headers = vec!["Email".to_owned(), "E-post".to_owned()];
        let err = resolve(&headers, &BTreeMap::new()).unwrap_err();
        assert_eq!(err, ImportError::SameField { field: Email, first: "Email".into(), second: "E-post".into() });
        assert!(err.to_string().contains("[columns]"), "{err}");
    }

    #[test]
    fn an_explicit_mapping_overrides_the_suggestions_and_reports_entries_that_match_nothing() {
        let headers: Vec<String> = ["Email", "Account Name", "Company Name", "Kundnummer"].iter().map(|h| h.to_string()).collect();
        let explicit = BTreeMap::from([
            (header_key("company name"), ("company name".to_owned(), ColumnTarget::Custom)),
            (header_key("Account Name"), ("Account Name".to_owned(), ColumnTarget::Field(Company))),
            (header_key("Kundnr"), ("Kundnr".to_owned(), ColumnTarget::Field(Segment))),
        ]);
        let (columns, unused) = resolve(&headers, &explicit).unwrap();
        let got: Vec<_> = columns.iter().map(|c| (c.field, c.by, c.property.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                (Some(Email), MappedBy::Suggested, None),
                (Some(Company), MappedBy::Explicit, None),
                (None, MappedBy::Explicit, Some("company_name")),
                (None, MappedBy::Custom, Some("kundnummer")),
            ]
        );
        assert_eq!(unused, vec!["Kundnr".to_owned()]);
    }

    #[test]
    fn an_explicit_mapping_of_two_columns_to_one_field_is_an_error() {
        let headers: Vec<String> = ["Email", "Work mail"].iter().map(|h| h.to_string()).collect();
        let explicit = BTreeMap::from([(header_key("Work mail"), ("Work mail".to_owned(), ColumnTarget::Field(Email))), (header_key("Email"), ("Email".to_owned(), ColumnTarget::Field(Email)))]);
        assert!(matches!(resolve(&headers, &explicit), Err(ImportError::SameField { field: Email, .. })));
        // Explicit for one, and the suggestion for the same field yields: the other stays custom.
        let explicit = BTreeMap::from([(header_key("Work mail"), ("Work mail".to_owned(), ColumnTarget::Field(Email)))]);
        let (columns, _) = resolve(&headers, &explicit).unwrap();
        assert_eq!((columns[0].field, columns[1].field), (None, Some(Email)));
    }

    #[test]
    fn mapping_pairs_parse_and_every_unknown_field_is_named() {
        let map = parse_mapping_pairs(&["Company Name=company", "Säljare = owner_email", "a=b=Touchpoint", "Notes=custom"]).unwrap();
        assert_eq!(map["Company Name"], ColumnTarget::Field(Company));
        assert_eq!(map["Säljare"], ColumnTarget::Field(OwnerEmail));
        assert_eq!(map["a=b"], ColumnTarget::Field(Touchpoint));
        assert_eq!(map["Notes"], ColumnTarget::Custom);
        let err = parse_mapping_pairs(&["Company Name=compnay", "Email=email", "X=fone"]).unwrap_err();
        assert_eq!(err, MappingPairError::Unknown(UnknownField(vec!["compnay".into(), "fone".into()])));
        let text = err.to_string();
        assert!(text.contains("\"compnay\"") && text.contains("\"fone\"") && text.contains("owner_email"), "{text}");
        assert!(matches!(parse_mapping_pairs(&["Company Name"]), Err(MappingPairError::Malformed(_))));
        assert!(matches!(parse_mapping_pairs(&["=email"]), Err(MappingPairError::Malformed(_))));
        assert!(matches!(parse_mapping_pairs(&["Model=company", "Model=store"]), Err(MappingPairError::Twice(h)) if h == "Model"), "one column, two fields");
        assert!(parse_mapping_pairs(&["Model=company", "Model=company"]).is_ok(), "said twice the same way");
    }

    #[test]
    fn language_values_map_to_locales() {
        for (value, locale) in [
            ("Swedish", Some(crate::model::Locale::Sv)),
            ("svenska", Some(crate::model::Locale::Sv)),
            ("sv-SE", Some(crate::model::Locale::Sv)),
            ("sv_SE", Some(crate::model::Locale::Sv)),
            ("SV", Some(crate::model::Locale::Sv)),
            ("Svenska (Sverige)", Some(crate::model::Locale::Sv)),
            ("Danish", Some(crate::model::Locale::Da)),
            ("dansk", Some(crate::model::Locale::Da)),
            ("da-DK", Some(crate::model::Locale::Da)),
            ("English", Some(crate::model::Locale::En)),
            ("engelska", Some(crate::model::Locale::En)),
            ("en-GB", Some(crate::model::Locale::En)),
            ("English (United Kingdom)", Some(crate::model::Locale::En)),
            ("Norwegian", None),
            ("nb-NO", None),
            ("", None),
        ] {
            assert_eq!(locale_from_value(value), locale, "{value:?}");
        }
    }

    #[test]
    fn owner_names_are_found_without_case_extra_spaces_or_in_last_first_order() {
        let karin = crate::model::Email::parse("karin@nordhavn.example").unwrap();
        let owners = Owners::new(&BTreeMap::from([("Karin Holm".to_owned(), karin.clone())]));
        assert_eq!(owners.get("karin  holm"), Some(&karin));
        assert_eq!(owners.get(" KARIN HOLM "), Some(&karin));
        assert_eq!(owners.get("Holm, Karin"), Some(&karin));
        assert_eq!(owners.get("Karin"), None);
    }
}
