//! The dry run and the mapped launch against the embedded store: what a launch would do,
//! computed without writing anything, and the same reading when it does write.

use std::collections::BTreeMap;

use closeloop_core::import::{ColumnTarget, Encoding, Field, FileFormat, MappedBy};
use closeloop_core::model::{ContactKey, Email, SuppressionReason};
use closeloop_core::ports::Store;
use closeloop_core::{Campaign, Timestamp};
use closeloop_embedded::SqliteStore;
use closeloop_functions::launch::{dry_run, launch, launch_file_with_progress, ContactsFile};
use closeloop_functions::Services;

const T0: Timestamp = Timestamp::from_millis(1_790_000_000_000);

fn campaign(id: &str) -> Campaign {
    Campaign::from_toml(&format!(
        r#"
id = "{id}"
name = "Import"
company = "Nordhavn"
sender_name = "Karin"
sender_email = "karin@nordhavn.example"
locales = ["sv", "da", "en"]
throttle_days = 30

[owners]
"Karin Holm" = "karin@nordhavn.example"
"#
    ))
    .expect("campaign")
}

fn world() -> (Services, SqliteStore) {
    let local = closeloop_testkit::local();
    (local.services, local.store)
}

/// Excel on Windows with HubSpot's headers: Windows-1252, semicolons, CRLF.
fn hubspot_windows_1252() -> Vec<u8> {
    let mut csv = b"First Name;Email;Company Name;Contact owner;Preferred language;Kundnummer\r\n".to_vec();
    for row in [
        &b"\xC5sa;asa@example.se;Caf\xE9 Malm\xF6;Karin Holm;Swedish;1\r\n"[..],
        b"Bo;bo@example.se;Lund AB;karin@nordhavn.example;svenska;2\r\n",
        b"Bo again;bo@example.se;Lund AB;;;3\r\n",
        b"Sune;sune@example.se;Sune AB;;sv-SE;4\r\n",
        b"Tove;tove@example.se;Tove AB;;;5\r\n",
        b"Nope;not-an-email;;;;6\r\n",
        b"Erik;erik@example.se;Erik AB;Erik Berg;;7\r\n",
        b"S\xF8ren;soren@example.dk;\"N\xF8rre;ApS;8\r\n",
        b"Ulla;ulla@example.dk;Ulla ApS;;Danish;9\r\n",
    ] {
        csv.extend_from_slice(row);
    }
    csv
}

#[tokio::test]
async fn a_dry_run_reports_encoding_mapping_skips_by_reason_and_bad_rows_and_writes_nothing() -> anyhow::Result<()> {
    let (services, store) = world();
    // Sune unsubscribed long ago; Tove was invited by another campaign ten days ago.
    store.suppress(&ContactKey::email(&Email::parse("sune@example.se")?), SuppressionReason::Unsubscribed, T0).await?;
    let other = campaign("other");
    launch(&services, &other, b"email\ntove@example.se\n").await?;
    let invited_before = store.campaign_rows(&other.id).await?.len();

    let target = campaign("spring");
    let report = dry_run(&services, &target, &ContactsFile::new(&hubspot_windows_1252())).await?;

    assert_eq!(report.file, FileFormat::Csv { encoding: Encoding::Windows1252, delimiter: ';' });
    let mapping: Vec<_> = report.mapping.iter().map(|c| (c.header.as_str(), c.field, c.by)).collect();
    assert_eq!(
        mapping,
        vec![
            ("First Name", Some(Field::FirstName), MappedBy::Suggested),
            ("Email", Some(Field::Email), MappedBy::Suggested),
            ("Company Name", Some(Field::Company), MappedBy::Suggested),
            ("Contact owner", Some(Field::OwnerEmail), MappedBy::Suggested),
            ("Preferred language", Some(Field::Locale), MappedBy::Suggested),
            ("Kundnummer", None, MappedBy::Custom),
        ]
    );
    assert_eq!((report.rows, report.would_invite, report.duplicates, report.suppressed, report.throttled), (9, 3, 1, 1, 1));
    let bad: Vec<_> = report.bad_rows.iter().map(|p| p.line).collect();
    assert_eq!(bad, vec![7, 8, 9], "{:?}", report.bad_rows);
    assert!(report.bad_rows[0].reason.contains("not-an-email"));
    assert!(report.bad_rows[1].reason.contains("\"Erik Berg\" is not in the campaign's [owners]"), "{}", report.bad_rows[1].reason);
    assert!(report.bad_rows[2].reason.contains("never closed"), "{}", report.bad_rows[2].reason);
    assert_eq!(report.launched_before, None);

    assert!(store.campaign(&target.id).await?.is_none(), "the campaign is not stored");
    assert!(store.launch(&report.launch_id).await?.is_none(), "no job is stored");
    assert!(store.campaign_rows(&target.id).await?.is_empty());
    assert_eq!(store.campaign_rows(&other.id).await?.len(), invited_before);
    Ok(())
}

#[tokio::test]
async fn the_launch_invites_what_the_dry_run_said_it_would() -> anyhow::Result<()> {
    let (services, store) = world();
    store.suppress(&ContactKey::email(&Email::parse("sune@example.se")?), SuppressionReason::Unsubscribed, T0).await?;
    let target = campaign("spring");
    let file = hubspot_windows_1252();
    let report = dry_run(&services, &target, &ContactsFile::new(&file)).await?;
    let job = launch_file_with_progress(&services, &target, "hubspot.csv", &ContactsFile::new(&file), &|_| {}).await?;
    assert_eq!(job.invited, report.would_invite + report.throttled, "nothing else throttles here");
    assert_eq!(job.bad_rows, report.bad_rows);
    let rows = store.campaign_rows(&target.id).await?;
    let asa = rows.iter().map(|r| &r.invitation.contact).find(|c| c.first_name.as_deref() == Some("Åsa")).expect("Åsa invited");
    assert_eq!(asa.company.as_deref(), Some("Café Malmö"));
    assert_eq!(asa.owner_email.as_ref().map(Email::as_str), Some("karin@nordhavn.example"));
    assert_eq!(asa.locale, Some(closeloop_core::Locale::Sv));

    let again = dry_run(&services, &target, &ContactsFile::new(&file)).await?;
    assert_eq!(again.launched_before, Some(closeloop_core::launch::LaunchState::Done));
    assert_eq!((again.would_invite, again.throttled), (job.invited, 0), "its own rows count as invited, not throttled");
    Ok(())
}

#[tokio::test]
async fn column_mappings_given_with_the_file_override_the_campaigns_and_unused_ones_are_reported() -> anyhow::Result<()> {
    let (services, store) = world();
    let mut target = campaign("mapped");
    target.columns = BTreeMap::from([("Org".to_owned(), ColumnTarget::Field(Field::Segment)), ("Region".to_owned(), ColumnTarget::Field(Field::Store))]);
    let csv = b"Mail address,Org\nA@x.example,Acme\n";
    let overrides = BTreeMap::from([("mail address".to_owned(), ColumnTarget::Field(Field::Email)), ("org".to_owned(), ColumnTarget::Field(Field::Company))]);
    let file = ContactsFile { bytes: csv, sheet: None, columns: Some(&overrides) };
    let report = dry_run(&services, &target, &file).await?;
    assert_eq!(report.would_invite, 1);
    assert_eq!(report.unused_mapping, vec!["Region".to_owned()]);
    assert_eq!(report.mapping[1].field, Some(Field::Company), "the file's mapping wins over the campaign's");
    launch_file_with_progress(&services, &target, "mapped.csv", &file, &|_| {}).await?;
    let contact = &store.campaign_rows(&target.id).await?[0].invitation.contact;
    assert_eq!((contact.email.as_ref().map(Email::as_str), contact.company.as_deref()), (Some("a@x.example"), Some("Acme")));
    Ok(())
}

#[tokio::test]
async fn the_dry_run_report_serialises_for_an_api() -> anyhow::Result<()> {
    let (services, _) = world();
    let report = dry_run(&services, &campaign("json"), &ContactsFile::new(&hubspot_windows_1252())).await?;
    let json = serde_json::to_value(&report)?;
    assert_eq!(json["format"], "csv");
    assert_eq!(json["encoding"], "windows-1252");
    assert_eq!(json["delimiter"], ";");
    assert_eq!(json["mapping"][2]["field"], "company");
    assert_eq!(json["mapping"][2]["by"], "suggested");
    assert_eq!(json["bad_rows"][0]["line"], 7);
    assert_eq!(json["would_invite"], 5);
    Ok(())
}

#[tokio::test]
async fn a_file_whose_header_lacks_a_channel_is_an_import_error_for_the_dry_run_too() {
    let (services, _) = world();
    let err = dry_run(&services, &campaign("x"), &ContactsFile::new(b"Name,Org\nA,B\n")).await.unwrap_err();
    assert!(err.to_string().contains("email or phone column"), "{err}");
}
