//! Single sign-on through Cloudflare Access. In front of the Worker, Access signs every request
//! it lets through with a JWT in `Cf-Access-Jwt-Assertion`: RS256, by one of the team's keys
//! (the JWKS at `https://<team>.cloudflareaccess.com/cdn-cgi/access/certs`), for the
//! application's audience tag, with an expiry. The sign-in page checks all four and signs in
//! the account whose email is the identity's, as a token would; from then on the session is the
//! dashboard's own (generations, revocation, CSRF), so Access is the way in, not a second kind
//! of session. Expiry is checked against the store's clock, not the platform's, so tests and the
//! Worker (which has no system clock) agree.

use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};

use closeloop_core::model::Email;
use closeloop_core::Timestamp;

/// The header Access puts its assertion in.
pub const ASSERTION_HEADER: &str = "cf-access-jwt-assertion";
/// The team's keys are read again after this long, or at once for a key id not seen yet.
const KEYS_FOR_MS: i64 = 60 * 60 * 1000;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_S: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("the team's keys could not be read: {0}")]
    Keys(String),
    #[error("the assertion is not a JWT this dashboard accepts")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    #[error("the assertion is signed with a key the team does not have")]
    UnknownKey,
    #[error("the assertion's signature, audience or algorithm is wrong")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion names no valid email")]
    NoEmail,
}

/// Where the team's key set comes from: `fetch` on the Worker (wrapped in `SendFuture`, as the
/// store's HTTP client is), a loopback server in tests.
#[async_trait::async_trait]
pub trait KeySetSource: Send + Sync {
    /// The key set document (JSON), or why it could not be had.
    async fn key_set(&self, url: &str) -> Result<String, String>;
}

#[derive(serde::Deserialize)]
struct Claims {
    email: Option<String>,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
}

pub struct AccessVerifier {
    certs_url: String,
    audience: String,
    source: Arc<dyn KeySetSource>,
    cached: Mutex<Option<(JwkSet, Timestamp)>>,
}

impl AccessVerifier {
    /// `certs_url`: the team's JWKS; `audience`: the application's AUD tag.
    pub fn new(certs_url: &str, audience: &str, source: Arc<dyn KeySetSource>) -> Self {
        Self { certs_url: certs_url.to_owned(), audience: audience.to_owned(), source, cached: Mutex::new(None) }
    }

    async fn keys(&self, now: Timestamp, fresh: bool) -> Result<JwkSet, AccessError> {
        if !fresh {
            let cached = self.cached.lock().ok().and_then(|c| c.clone());
            if let Some((keys, at)) = cached.filter(|(_, at)| now.millis() - at.millis() < KEYS_FOR_MS) {
                let _ = at;
                return Ok(keys);
            }
        }
        let text = self.source.key_set(&self.certs_url).await.map_err(AccessError::Keys)?;
        let keys: JwkSet = serde_json::from_str(&text).map_err(|e| AccessError::Keys(e.to_string()))?;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((keys.clone(), now));
        }
        Ok(keys)
    }

    /// The identity's email, if the assertion is Access's, for this application, and current.
    pub async fn email(&self, assertion: &str, now: Timestamp) -> Result<Email, AccessError> {
        let header = decode_header(assertion).map_err(AccessError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(AccessError::Invalid(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into()));
        }
        let kid = header.kid.ok_or(AccessError::UnknownKey)?;
        let mut keys = self.keys(now, false).await?;
        if keys.find(&kid).is_none() {
            // A key rotated in since the last read.
            keys = self.keys(now, true).await?;
        }
        let jwk = keys.find(&kid).ok_or(AccessError::UnknownKey)?;
        let key = DecodingKey::from_jwk(jwk).map_err(AccessError::Invalid)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.audience]);
        // Times against `now` below: the platform's clock is not ours to trust (and the
        // Worker has none).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = ["aud".to_owned()].into_iter().collect();
        let claims = decode::<Claims>(assertion, &key, &validation).map_err(AccessError::Invalid)?.claims;
        let seconds = now.millis() / 1000;
        if claims.exp + LEEWAY_S <= seconds || claims.nbf.is_some_and(|nbf| nbf - LEEWAY_S > seconds) {
            return Err(AccessError::Expired);
        }
        claims.email.as_deref().and_then(|e| Email::parse(e).ok()).ok_or(AccessError::NoEmail)
    }
}
