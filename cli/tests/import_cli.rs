//! `closeloop launch` with real CRM exports: `--dry-run`, `--map`, and the campaign file's own
//! mistakes, as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_closeloop");
const DEMO_CAMPAIGN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/campaign.toml");

fn closeloop(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--data-dir").arg(data_dir).args(args).env_remove("RUST_BACKTRACE").output().expect("closeloop runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Excel on Windows with HubSpot's headers: Windows-1252, semicolons, CRLF, and one row whose
/// quote never closes.
fn hubspot_export(dir: &Path) -> anyhow::Result<String> {
    let mut csv = b"First Name;Email;Company Name;Contact owner;Preferred language;Kundnummer\r\n".to_vec();
    csv.extend_from_slice(b"\xC5sa;asa@example.se;Caf\xE9 Malm\xF6;Karin Holm;Swedish;1\r\n");
    csv.extend_from_slice(b"Bo;bo@example.se;Lund AB;;svenska;2\r\n");
    csv.extend_from_slice(b"Bo igen;BO@example.se;Lund AB;;;3\r\n");
    csv.extend_from_slice(b"Nope;nope;;;;4\r\n");
    csv.extend_from_slice(b"S\xF8ren;soren@example.dk;\"N\xF8rre;ApS;5\r\n");
    csv.extend_from_slice(b"Ulla;ulla@example.dk;Ulla ApS;;Danish;6\r\n");
    let path = dir.join("hubspot.csv");
    std::fs::write(&path, csv)?;
    Ok(path.to_str().ok_or_else(|| anyhow::anyhow!("temp path is not UTF-8"))?.to_owned())
}

/// The demo campaign under another id, with the owner list the HubSpot export needs.
fn campaign_with_owners(dir: &Path, id: &str) -> anyhow::Result<String> {
    let demo = std::fs::read_to_string(DEMO_CAMPAIGN)?;
    let text = demo.replacen("id = \"demo-service-visit\"", &format!("id = \"{id}\""), 1) + "\n[owners]\n\"Karin Holm\" = \"karin@nordhavn.example\"\n";
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, text)?;
    Ok(path.to_str().ok_or_else(|| anyhow::anyhow!("temp path is not UTF-8"))?.to_owned())
}

#[test]
fn a_dry_run_prints_encoding_mapping_counts_and_bad_rows_and_writes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let csv = hubspot_export(dir.path())?;
    let campaign = campaign_with_owners(dir.path(), "spring")?;
    let out = closeloop(&data, &["launch", "--campaign", &campaign, "--contacts", &csv, "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("nothing was written"), "{text}");
    assert!(text.contains("Read as CSV, Windows-1252, semicolon-separated."), "{text}");
    assert!(text.contains("\"Company Name\"") && text.contains("-> company (suggested)"), "{text}");
    assert!(text.contains("-> owner_email (suggested)") && text.contains("-> locale (suggested)"), "{text}");
    assert!(text.contains("-> custom property kundnummer"), "{text}");
    assert!(text.contains("6 rows: 3 would be invited, 1 skipped (1 duplicates in the file, 0 suppressed, 0 surveyed within 90 days), 2 bad rows"), "{text}");
    assert!(text.contains("line 5: Email: \"nope\" is not an email address"), "{text}");
    assert!(text.contains("line 6: a quote opens a field on this line and is never closed"), "{text}");
    assert!(!data.exists(), "a dry run creates no database");
    Ok(())
}

#[test]
fn a_dry_run_reads_the_store_for_throttled_contacts_and_leaves_it_as_it_was() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let csv = hubspot_export(dir.path())?;
    let first = dir.path().join("first.csv");
    std::fs::write(&first, "email\nulla@example.dk\n")?;
    let launched = closeloop(&data, &["launch", "--campaign", DEMO_CAMPAIGN, "--contacts", first.to_str().unwrap_or_default()]);
    assert!(launched.status.success(), "{}", stderr(&launched));

    let campaign = campaign_with_owners(dir.path(), "spring")?;
    let out = closeloop(&data, &["launch", "--campaign", &campaign, "--contacts", &csv, "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out))?;
    assert_eq!(report["encoding"], "windows-1252");
    assert_eq!((report["would_invite"].as_u64(), report["throttled"].as_u64(), report["duplicates"].as_u64()), (Some(2), Some(1), Some(1)));
    assert_eq!(report["bad_rows"][1]["line"], 6);

    let reports: serde_json::Value = serde_json::from_str(&stdout(&closeloop(&data, &["report", "--json"])))?;
    let campaigns: Vec<_> = reports.as_array().map(|a| a.iter().map(|r| r["campaign"].clone()).collect()).unwrap_or_default();
    assert_eq!(campaigns, vec![serde_json::json!("demo-service-visit")], "the dry run stored no campaign");
    assert_eq!(reports[0]["total"]["sent"], 1);
    Ok(())
}

#[test]
fn map_overrides_the_suggestion_in_the_dry_run_and_in_the_launch() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let csv = dir.path().join("sheet.csv");
    std::fs::write(&csv, "Mail,Account Name,Org\na@x.example,Acme,North\n")?;
    let csv = csv.to_str().unwrap_or_default();
    let args = ["launch", "--campaign", DEMO_CAMPAIGN, "--contacts", csv, "--map", "Org=store", "--map", "account name=segment"];
    let dry = closeloop(&data, &[&args[..], &["--dry-run"]].concat());
    let text = stdout(&dry);
    assert!(text.contains("\"Org\"") && text.contains("-> store (--map or [columns])"), "{text}");
    assert!(text.contains("-> segment (--map or [columns])"), "{text}");
    assert!(text.contains("1 would be invited"), "{text}");
    let launched = closeloop(&data, &args);
    assert!(launched.status.success(), "{}", stderr(&launched));
    let reports: serde_json::Value = serde_json::from_str(&stdout(&closeloop(&data, &["report", "--json"])))?;
    assert!(reports[0]["by"]["store"]["North"].is_object(), "{reports}");
    assert!(reports[0]["by"]["segment"]["Acme"].is_object(), "{reports}");
    Ok(())
}

#[test]
fn map_with_unknown_fields_fails_naming_every_one_before_anything_is_read() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = closeloop(dir.path(), &["launch", "--campaign", DEMO_CAMPAIGN, "--contacts", "/nonexistent.csv", "--map", "Org=compnay", "--map", "Tel=fone", "--dry-run"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--map") && err.contains("\"compnay\"") && err.contains("\"fone\""), "{err}");
    let out = closeloop(dir.path(), &["launch", "--campaign", DEMO_CAMPAIGN, "--contacts", "/nonexistent.csv", "--map", "Org"]);
    assert!(stderr(&out).contains("\"Header=field\""), "{}", stderr(&out));
    Ok(())
}

#[test]
fn an_unknown_key_in_the_campaign_file_fails_naming_the_key_and_its_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let campaign = dir.path().join("campaign.toml");
    std::fs::write(&campaign, "id = \"x\"\nname = \"n\"\ncompany = \"c\"\nsender_name = \"s\"\nsender_email = \"s@c.example\"\nthrottle_dayz = 30\n")?;
    let csv = dir.path().join("c.csv");
    std::fs::write(&csv, "email\na@b.example\n")?;
    let out = closeloop(dir.path(), &["launch", "--campaign", campaign.to_str().unwrap_or_default(), "--contacts", csv.to_str().unwrap_or_default(), "--dry-run"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 6 of the campaign file: unknown field `throttle_dayz`"), "{}", stderr(&out));
    Ok(())
}

#[test]
fn the_cli_reads_xlsx_files_so_a_broken_workbook_is_reported_as_one() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let book = dir.path().join("contacts.xlsx");
    std::fs::write(&book, b"PK\x03\x04 not really a workbook")?;
    let out = closeloop(dir.path(), &["launch", "--campaign", DEMO_CAMPAIGN, "--contacts", book.to_str().unwrap_or_default(), "--dry-run"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("the .xlsx file cannot be read"), "the xlsx feature is on: {}", stderr(&out));
    Ok(())
}
