//! Who may read the dashboard, and what they see. Sign-in tokens are kept only as SHA-256
//! hashes, so the accounts file (or the Worker's `ACCOUNTS` secret) never holds a usable token.
//!
//! ```toml
//! [[account]]
//! name = "Karin"
//! role = "admin"                 # admin: everything; editor: read everything, manage campaigns;
//!                                # viewer: read everything; owner: own contacts
//! email = "karin@example.com"    # required for owners (matches the contacts' owner_email)
//! locale = "sv"                  # the language of the weekly digest
//! time_zone = "Europe/Oslo"      # optional: times on their pages and in their digests,
//!                                # instead of each campaign's own zone
//! token_sha256 = "9f86d0…"       # sha256 of the sign-in token, in hex
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Email, Locale};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    /// Creates, edits, launches and pauses campaigns, reads everything; works no cases.
    Editor,
    Viewer,
    Owner,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        [Role::Admin, Role::Editor, Role::Viewer, Role::Owner].into_iter().find(|r| r.as_str() == text.trim())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Owner => "owner",
        }
    }
}

/// An account; in a store (`Store::put_account`) with what the dashboard changes: whether it
/// is disabled, its session generation (a session names the generation it was issued in, and
/// signing out or disabling moves it on, which ends every session at once) and its version
/// (the store's check that two admins' changes do not overwrite each other).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    pub role: Role,
    pub email: Option<Email>,
    pub locale: Option<Locale>,
    /// The reader's own clock, over each campaign's zone.
    pub time_zone: Option<crate::time::Zone>,
    #[serde(with = "hex32")]
    token_sha256: [u8; 32],
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub generation: u32,
    /// 0 until stored.
    #[serde(default)]
    pub version: u32,
}

mod hex32 {
    pub fn serialize<S: serde::Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        super::parse_hex32(&text).ok_or_else(|| serde::de::Error::custom("token_sha256 must be 64 hex digits"))
    }
}

/// Whose answers and cases an account sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Everything,
    OwnedBy(&'a Email),
}

impl Account {
    pub fn scope(&self) -> Scope<'_> {
        match (&self.role, &self.email) {
            (Role::Owner, Some(email)) => Scope::OwnedBy(email),
            _ => Scope::Everything,
        }
    }

    /// Admins work any case; owners their own; viewers none.
    pub fn may_work_case(&self, case_owner: Option<&Email>) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Owner => self.email.is_some() && self.email.as_ref() == case_owner,
            Role::Editor | Role::Viewer => false,
        }
    }

    /// The zone this reader sees a campaign's times in: their own, else the campaign's.
    pub fn zone_for(&self, campaign: &crate::campaign::Campaign) -> crate::time::Zone {
        self.time_zone.clone().unwrap_or_else(|| campaign.zone())
    }

    /// Admins and editors run campaigns (pause, resume, end); viewers and owners do not.
    pub fn may_manage_campaigns(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Editor)
    }

    /// A new account with its sign-in token (kept only as its hash), checked as the file's
    /// accounts are.
    pub fn new(name: &str, role: Role, email: Option<Email>, locale: Option<Locale>, time_zone: Option<crate::time::Zone>, token: &str) -> Result<Self, AccountsError> {
        let invalid = |problem: &str| AccountsError::Invalid { name: name.chars().take(80).collect(), problem: problem.to_owned() };
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
            return Err(invalid("name must be 1-80 characters, none of them control characters"));
        }
        if reserved(name) {
            return Err(invalid("this name is reserved for the audit log"));
        }
        if role == Role::Owner && email.is_none() {
            return Err(invalid("an owner needs the email their contacts carry as owner_email"));
        }
        if token.trim().chars().count() < MIN_TOKEN_CHARS {
            return Err(invalid("the sign-in token is too short"));
        }
        let token_sha256 = Sha256::digest(token.trim().as_bytes()).into();
        Ok(Self { name: name.to_owned(), role, email, locale, time_zone, token_sha256, disabled: false, generation: 0, version: 0 })
    }

    /// The sign-in token of `other` (a bootstrap account whose token was rotated in the file or
    /// the Worker secret) becomes this account's; the old one stops working.
    pub fn take_token_of(&mut self, other: &Account) {
        self.token_sha256 = other.token_sha256;
    }

    /// Whether this is the account's token; the comparison takes the same time either way.
    pub fn has_token(&self, token: &str) -> bool {
        let token = token.trim();
        if token.chars().count() < MIN_TOKEN_CHARS {
            return false;
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        same_bytes(&self.token_sha256, &hash)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("the accounts file is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("account {name:?}: {problem}")]
    Invalid { name: String, problem: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    #[serde(default)]
    account: Vec<AccountEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    name: String,
    role: Role,
    email: Option<String>,
    locale: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    token_sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts(Vec<Account>);

/// The hex SHA-256 of a sign-in token, as the accounts file stores it.
pub fn token_hash_hex(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Compares without stopping at the first difference, so timing tells nothing about a hash.
fn same_bytes(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sign-in tokens are at least this long: they are the only secret standing in front of the data.
pub const MIN_TOKEN_CHARS: usize = 20;

/// Names the audit log and the case history use for what is not a person: an account with one
/// of them could pass for the API, the command line or an erasure.
fn reserved(name: &str) -> bool {
    let lower = name.trim().to_lowercase();
    ["api", "cli", "unknown", crate::model::ERASURE_ACTOR].contains(&lower.as_str()) || lower.starts_with("cli (")
}

impl Accounts {
    pub fn from_toml(text: &str) -> Result<Self, AccountsError> {
        let file: AccountFile = toml::from_str(text)?;
        let mut accounts = Vec::with_capacity(file.account.len());
        for entry in file.account {
            let invalid = |problem: &str| AccountsError::Invalid { name: entry.name.clone(), problem: problem.to_owned() };
            if entry.name.trim().is_empty() || entry.name.chars().count() > 80 || entry.name.chars().any(char::is_control) {
                return Err(invalid("name must be 1-80 characters, none of them control characters"));
            }
            if reserved(&entry.name) {
                return Err(invalid("this name is reserved for the audit log"));
            }
            if accounts.iter().any(|a: &Account| a.name == entry.name) {
                return Err(invalid("name is used twice"));
            }
            let email = entry.email.as_deref().map(Email::parse).transpose().map_err(|e| invalid(&e.to_string()))?;
            if entry.role == Role::Owner && email.is_none() {
                return Err(invalid("an owner needs the email their contacts carry as owner_email"));
            }
            let locale = match entry.locale.as_deref() {
                Some(code) => Some(Locale::parse(code).ok_or_else(|| invalid("locale must be en, sv or da"))?),
                None => None,
            };
            let token_sha256 = parse_hex32(&entry.token_sha256).ok_or_else(|| invalid("token_sha256 must be 64 hex digits"))?;
            let time_zone = match entry.time_zone.as_deref() {
                Some(name) => Some(crate::time::Zone::parse(name).map_err(|e| invalid(&e.to_string()))?),
                None => None,
            };
            accounts.push(Account { name: entry.name, role: entry.role, email, locale, time_zone, token_sha256, disabled: false, generation: 0, version: 0 });
        }
        Ok(Self(accounts))
    }

    /// One account from its parts, for programs that create accounts.
    pub fn with(mut self, name: &str, role: Role, email: Option<Email>, token: &str) -> Self {
        let token_sha256 = Sha256::digest(token.trim().as_bytes()).into();
        self.0.push(Account { name: name.to_owned(), role, email, locale: None, time_zone: None, token_sha256, disabled: false, generation: 0, version: 0 });
        self
    }

    /// The account whose token this is. Every account is compared, found or not.
    /// Gives the named account its own clock (tests and setups built in code).
    pub fn with_time_zone(mut self, name: &str, zone: crate::time::Zone) -> Self {
        if let Some(account) = self.0.iter_mut().find(|a| a.name == name) {
            account.time_zone = Some(zone);
        }
        self
    }

    pub fn by_token(&self, token: &str) -> Option<&Account> {
        let token = token.trim();
        if token.chars().count() < MIN_TOKEN_CHARS {
            return None;
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.0.iter().fold(None, |found, a| if same_bytes(&a.token_sha256, &hash) && !a.disabled { Some(a) } else { found })
    }

    pub fn by_name(&self, name: &str) -> Option<&Account> {
        self.0.iter().find(|a| a.name == name)
    }

    pub fn by_email(&self, email: &Email) -> Option<&Account> {
        self.0.iter().find(|a| a.email.as_ref() == Some(email))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The accounts a store holds, then each of `bootstrap` whose name it does not hold yet:
    /// the bootstrap accounts (the file, the Worker secret) count until their first sign-in
    /// puts them in the store, and from then on the store's version wins (so a disabled
    /// bootstrap account stays disabled). Disabled accounts are left out.
    pub fn live(stored: Vec<Account>, bootstrap: &Accounts) -> Accounts {
        let mut all = stored;
        for account in &bootstrap.0 {
            if !all.iter().any(|a| a.name == account.name) {
                all.push(account.clone());
            }
        }
        all.retain(|a| !a.disabled);
        Accounts(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(role: &str, email: &str) -> String {
        format!(
            "[[account]]\nname = \"A\"\nrole = \"{role}\"\n{email}\ntoken_sha256 = \"{}\"\n",
            token_hash_hex("correct horse battery staple")
        )
    }

    #[test]
    fn a_token_finds_its_account_only_through_its_hash() {
        let accounts = Accounts::from_toml(&file("admin", "")).unwrap();
        assert_eq!(accounts.by_token("correct horse battery staple").map(|a| a.role), Some(Role::Admin));
        assert!(accounts.by_token("correct horse battery stapl").is_none());
        assert!(accounts.by_token(&token_hash_hex("correct horse battery staple")).is_none(), "the hash is not the token");
        assert!(accounts.by_token("").is_none());
    }

    #[test]
    fn an_owner_without_an_email_is_refused() {
        let err = Accounts::from_toml(&file("owner", "")).unwrap_err();
        assert!(err.to_string().contains("owner_email"), "{err}");
        let owner = Accounts::from_toml(&file("owner", "email = \"bo@x.example\"")).unwrap();
        let bo = Email::parse("bo@x.example").unwrap();
        let account = owner.by_name("A").unwrap();
        assert_eq!(account.scope(), Scope::OwnedBy(&bo));
        assert!(account.may_work_case(Some(&bo)));
        assert!(!account.may_work_case(Some(&Email::parse("other@x.example").unwrap())));
        assert!(!account.may_work_case(None));
    }

    #[test]
    fn an_account_may_name_its_own_time_zone_and_an_unknown_one_is_refused() {
        let accounts = Accounts::from_toml(&file("viewer", "time_zone = \"Europe/Oslo\"")).unwrap();
        assert_eq!(accounts.by_name("A").and_then(|a| a.time_zone.as_ref()).map(|z| z.name()), Some("Europe/Oslo"));
        let err = Accounts::from_toml(&file("viewer", "time_zone = \"Mars/Olympus\"")).unwrap_err().to_string();
        assert!(err.contains("Mars/Olympus"), "{err}");
    }

    #[test]
    fn unknown_roles_and_bad_hashes_are_refused() {
        assert!(Accounts::from_toml(&file("superuser", "")).is_err());
        assert!(Accounts::from_toml("[[account]]\nname = \"A\"\nrole = \"admin\"\ntoken_sha256 = \"abc\"\n").is_err());
        let viewer = Accounts::default().with("V", Role::Viewer, None, "a viewer token of some length");
        assert!(!viewer.by_name("V").unwrap().may_work_case(None));
    }
}

/// Wrong sign-in tokens from one client, as a store keeps them between requests, so a guesser
/// spread over Worker isolates and function instances meets one count. Past `FREE_FAILURES`
/// each wrong token doubles the wait (1 s, 2 s, 4 s…) up to `MAX_WAIT_MS`; failures are
/// forgotten `FORGET_AFTER_MS` after the last one, and a right token clears them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInFailures {
    pub failures: u32,
    pub last_at: crate::time::Timestamp,
    pub blocked_until: crate::time::Timestamp,
}

/// Wrong tokens a client may send before it must wait.
pub const FREE_FAILURES: u32 = 5;
/// A client's failures are forgotten this long after its last one.
pub const FORGET_AFTER_MS: i64 = 15 * 60 * 1000;
/// The longest wait.
pub const MAX_WAIT_MS: i64 = 15 * 60 * 1000;

impl SignInFailures {
    /// The count after one more wrong token at `now`.
    pub fn after_failure(previous: Option<Self>, now: crate::time::Timestamp) -> Self {
        let kept = previous.filter(|p| now.millis() - p.last_at.millis() <= FORGET_AFTER_MS);
        let failures = kept.map_or(0, |p| p.failures) + 1;
        let blocked_until = if failures > FREE_FAILURES {
            let doublings = (failures - FREE_FAILURES - 1).min(20);
            crate::time::Timestamp::from_millis(now.millis() + (1000i64 << doublings).min(MAX_WAIT_MS))
        } else {
            crate::time::Timestamp::from_millis(0)
        };
        Self { failures, last_at: now, blocked_until }
    }

    /// How long the client must still wait at `now`, if at all.
    pub fn wait_ms(&self, now: crate::time::Timestamp) -> Option<i64> {
        (self.blocked_until.millis() > now.millis()).then(|| self.blocked_until.millis() - now.millis())
    }
}

#[cfg(test)]
mod sign_in_tests {
    use super::*;
    use crate::time::Timestamp;

    #[test]
    fn a_few_wrong_tokens_are_free_then_each_one_doubles_the_wait_up_to_a_cap() {
        let t = Timestamp::from_millis(1_000_000);
        let mut record = None;
        for _ in 0..FREE_FAILURES {
            record = Some(SignInFailures::after_failure(record, t));
            assert_eq!(record.unwrap().wait_ms(t), None, "free");
        }
        record = Some(SignInFailures::after_failure(record, t));
        assert_eq!(record.unwrap().wait_ms(t), Some(1000));
        record = Some(SignInFailures::after_failure(record, t));
        assert_eq!(record.unwrap().wait_ms(t), Some(2000));
        for _ in 0..30 {
            record = Some(SignInFailures::after_failure(record, t));
        }
        assert_eq!(record.unwrap().wait_ms(t), Some(MAX_WAIT_MS));
        let later = Timestamp::from_millis(t.millis() + FORGET_AFTER_MS + 1);
        assert_eq!(SignInFailures::after_failure(record, later).failures, 1, "old failures are forgotten");
    }
}
