//! The dashboard's accounts and session key on the local machine, kept in the data directory:
//! `accounts.toml` (token hashes only) and `session.key`. A first `up` creates an admin account
//! and prints its token once; `closeloop account add` creates more.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use closeloop_core::accounts::{token_hash_hex, Accounts, Role};
use closeloop_core::model::{Email, Locale, Token};
use closeloop_core::time::Zone;

use crate::Settings;

pub fn accounts_path(settings: &Settings) -> PathBuf {
    settings.data_dir.join("accounts.toml")
}

/// 128 random bits, written like a survey token: long enough to be the only secret needed.
pub fn new_token() -> String {
    Token::from_random_bytes(*uuid::Uuid::new_v4().as_bytes()).as_str().to_owned()
}

/// Writes a file only its owner can read: it guards the dashboard.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).with_context(|| format!("protecting {}", path.display()))?;
    }
    Ok(())
}

/// An account as `account add` writes it; the token is made here.
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub role: Role,
    pub email: Option<&'a Email>,
    pub locale: Option<Locale>,
    pub time_zone: Option<&'a Zone>,
}

fn entry(account: &NewAccount<'_>, token: &str) -> String {
    let NewAccount { name, role, email, locale, time_zone } = *account;
    let mut out = String::from("\n[[account]]\n");
    let _ = writeln!(out, "name = {}", toml_string(name));
    let _ = writeln!(out, "role = \"{}\"", role.as_str());
    if let Some(email) = email {
        let _ = writeln!(out, "email = {}", toml_string(email.as_str()));
    }
    if let Some(locale) = locale {
        let _ = writeln!(out, "locale = \"{}\"", locale.code());
    }
    if let Some(zone) = time_zone {
        let _ = writeln!(out, "time_zone = {}", toml_string(zone.name()));
    }
    let _ = writeln!(out, "token_sha256 = \"{}\"", token_hash_hex(token));
    out
}

fn toml_string(value: &str) -> String {
    let escaped: String = value
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => vec![],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

const HEADER: &str = "# closeloop dashboard accounts. Tokens are stored as SHA-256 hashes only.\n\
# Add one with: closeloop account add --name NAME --role admin|editor|viewer|owner [--email E] [--locale sv] [--time-zone Europe/Stockholm]\n";

/// Adds an account and returns its new sign-in token (shown once, stored hashed).
pub fn add_account(settings: &Settings, account: &NewAccount<'_>) -> anyhow::Result<String> {
    let name = account.name;
    std::fs::create_dir_all(&settings.data_dir)?;
    let path = accounts_path(settings);
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_owned(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let token = new_token();
    let updated = format!("{existing}{}", entry(account, &token));
    // Refuse to write a file the server would then refuse to read.
    Accounts::from_toml(&updated).with_context(|| format!("adding {name:?} to {}", path.display()))?;
    write_private(&path, &updated)?;
    Ok(token)
}

/// The accounts, creating the file with one admin account on first use. Returns the new admin
/// token when one was created, for printing once.
pub fn load_or_create(settings: &Settings) -> anyhow::Result<(Accounts, Option<String>)> {
    let path = accounts_path(settings);
    let created = if path.exists() { None } else { Some(add_account(settings, &NewAccount { name: "admin", role: Role::Admin, email: None, locale: None, time_zone: None })?) };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let accounts = Accounts::from_toml(&text).with_context(|| format!("in {}", path.display()))?;
    Ok((accounts, created))
}

/// `CLOSELOOP_SESSION_SECRET`, else a key generated into the data directory on first use.
pub fn session_secret(settings: &Settings) -> anyhow::Result<String> {
    if let Some(secret) = std::env::var("CLOSELOOP_SESSION_SECRET").ok().filter(|s| !s.trim().is_empty()) {
        return Ok(secret);
    }
    let path = settings.data_dir.join("session.key");
    match std::fs::read_to_string(&path) {
        Ok(secret) => Ok(secret.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&settings.data_dir)?;
            let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
            write_private(&path, &secret)?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_start_creates_one_admin_and_later_accounts_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::new(Some(dir.path().to_owned()), None, 0);
        let (accounts, token) = load_or_create(&settings).unwrap();
        let token = token.expect("a new admin token");
        assert_eq!(accounts.by_token(&token).map(|a| a.role), Some(Role::Admin));
        let text = std::fs::read_to_string(accounts_path(&settings)).unwrap();
        assert!(!text.contains(&token), "only the hash is stored");
        let (_, again) = load_or_create(&settings).unwrap();
        assert!(again.is_none(), "the second start creates nothing");
        let anna = Email::parse("anna@x.example").unwrap();
        let oslo = Zone::parse("Europe/Oslo").unwrap();
        let owner_token = add_account(&settings, &NewAccount { name: "Anna \"A\"", role: Role::Owner, email: Some(&anna), locale: Some(Locale::Sv), time_zone: Some(&oslo) }).unwrap();
        let (accounts, _) = load_or_create(&settings).unwrap();
        let owner = accounts.by_token(&owner_token).unwrap();
        assert_eq!((owner.name.as_str(), owner.locale), ("Anna \"A\"", Some(Locale::Sv)));
        assert_eq!(owner.time_zone.as_ref().map(Zone::name), Some("Europe/Oslo"), "her own clock");
        assert!(add_account(&settings, &NewAccount { name: "Bo", role: Role::Owner, email: None, locale: None, time_zone: None }).is_err(), "an owner needs an email");
        assert_eq!(session_secret(&settings).unwrap(), session_secret(&settings).unwrap(), "the key persists");
    }
}
