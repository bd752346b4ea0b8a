//! Signed session cookies and CSRF tokens. Stateless on purpose: the Worker and the local
//! process check them with one key and no store round trip.
//!
//! A session is `name.expires.nonce.mac`; the CSRF token of a form is a MAC of the session, so a
//! page from another site can neither read it nor forge it (and the cookie is `SameSite=Strict`
//! besides). Before sign-in, a nonce cookie plays the session's part, against login CSRF.

use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use closeloop_core::Timestamp;

type HmacSha256 = Hmac<Sha256>;

pub const SESSION_COOKIE: &str = "cl_session";
pub const SIGN_IN_COOKIE: &str = "cl_signin";
/// A working day and then some: people sign in again each morning.
pub const SESSION_HOURS: u32 = 12;

/// The session secret must be long enough that guessing it is hopeless.
pub const MIN_SECRET_CHARS: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("the session secret must be at least {MIN_SECRET_CHARS} characters")]
pub struct WeakSecret;

#[derive(Clone)]
pub struct SessionKeys {
    key: Vec<u8>,
}

/// Who a valid session cookie belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account: String,
    /// The account's session generation when this session began.
    pub generation: u32,
    /// The cookie value, which the CSRF token is bound to.
    raw: String,
}

impl SessionKeys {
    pub fn new(secret: &str) -> Result<Self, WeakSecret> {
        if secret.trim().chars().count() < MIN_SECRET_CHARS {
            return Err(WeakSecret);
        }
        Ok(Self { key: secret.trim().as_bytes().to_vec() })
    }

    fn mac(&self, purpose: &str, message: &str) -> Vec<u8> {
        // Any key length is accepted by HMAC; the error arm cannot happen.
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(message.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn verify(&self, purpose: &str, message: &str, tag_b64: &str) -> bool {
        let Ok(tag) = B64.decode(tag_b64) else { return false };
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else { return false };
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(message.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }

    /// A session of `account` in its session `generation`: it ends at expiry, or as soon as the
    /// account's generation moves on (a sign-out, a disabled account).
    pub fn issue(&self, account: &str, generation: u32, nonce: &str, now: Timestamp) -> String {
        let expires = now.plus_hours(SESSION_HOURS).millis();
        let body = format!("{}.{expires}.{generation}.{nonce}", B64.encode(account.as_bytes()));
        let tag = B64.encode(self.mac("session", &body));
        format!("{body}.{tag}")
    }

    pub fn check(&self, raw: &str, now: Timestamp) -> Option<Session> {
        let (body, tag) = raw.rsplit_once('.')?;
        if !self.verify("session", body, tag) {
            return None;
        }
        let mut parts = body.split('.');
        let account = String::from_utf8(B64.decode(parts.next()?).ok()?).ok()?;
        let expires: i64 = parts.next()?.parse().ok()?;
        let generation: u32 = parts.next()?.parse().ok()?;
        (expires > now.millis()).then(|| Session { account, generation, raw: raw.to_owned() })
    }

    pub fn csrf_for(&self, session: &Session) -> String {
        B64.encode(self.mac("csrf", &session.raw))
    }

    pub fn csrf_ok(&self, session: &Session, token: &str) -> bool {
        self.verify("csrf", &session.raw, token)
    }

    pub fn sign_in_csrf(&self, nonce: &str) -> String {
        B64.encode(self.mac("sign-in", nonce))
    }

    pub fn sign_in_csrf_ok(&self, nonce: &str, token: &str) -> bool {
        !nonce.is_empty() && self.verify("sign-in", nonce, token)
    }
}

/// A cookie's value from the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Secure; HttpOnly; SameSite=Strict`, scoped to the dashboard. `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: u64) -> HeaderValue {
    let cookie = format!("{name}={value}; Path=/admin; Max-Age={max_age_seconds}; Secure; HttpOnly; SameSite=Strict");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("cl_invalid=; Path=/admin; Max-Age=0"))
}

/// A form post from another origin is refused outright, whatever it carries. Browsers send
/// `Origin: null` for our own forms, because every page is `Referrer-Policy: no-referrer`; the
/// CSRF token is what stands then.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).filter(|o| *o != "null") else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").map(|(_, rest)| rest) == Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp::from_millis(1_790_000_000_000);

    fn keys() -> SessionKeys {
        SessionKeys::new("a session secret that is long enough!").unwrap()
    }

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_unaltered() {
        let raw = keys().issue("Karin", 3, "n1", T);
        assert_eq!(keys().check(&raw, T.plus_hours(1)).map(|s| (s.account, s.generation)), Some(("Karin".into(), 3)));
        assert!(keys().check(&raw, T.plus_hours(SESSION_HOURS)).is_none(), "expired");
        let forged = raw.replacen(&B64.encode("Karin"), &B64.encode("Admin"), 1);
        assert!(keys().check(&forged, T).is_none());
        let other = SessionKeys::new("another secret that is long enough!!").unwrap();
        assert!(other.check(&raw, T).is_none());
        assert!(SessionKeys::new("short").is_err());
    }

    #[test]
    fn a_csrf_token_belongs_to_one_session() {
        let k = keys();
        let a = k.check(&k.issue("A", 0, "n1", T), T).unwrap();
        let b = k.check(&k.issue("A", 0, "n2", T), T).unwrap();
        assert!(k.csrf_ok(&a, &k.csrf_for(&a)));
        assert!(!k.csrf_ok(&b, &k.csrf_for(&a)));
        assert!(!k.csrf_ok(&a, ""));
        assert!(k.sign_in_csrf_ok("nonce", &k.sign_in_csrf("nonce")));
        assert!(!k.sign_in_csrf_ok("", &k.sign_in_csrf("")));
    }

    #[test]
    fn cross_origin_posts_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h), "what a browser sends from a no-referrer page");
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
    }
}
