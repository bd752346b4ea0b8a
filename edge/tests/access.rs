//! Sign-in through Cloudflare Access, against a key set generated for the test and served on
//! loopback: a valid assertion signs its account in; an expired one, one for another audience,
//! one signed by a key the team does not have and one for an email without an account do not.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use base64::Engine;
use http_body_util::BodyExt;
use jsonwebtoken::{encode, EncodingKey, Header};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use tower::ServiceExt;

use closeloop_core::accounts::{Accounts, Role};
use closeloop_core::ports::Clock;
use closeloop_core::model::Email;
use closeloop_edge::admin::access::{AccessVerifier, KeySetSource, ASSERTION_HEADER};
use closeloop_edge::admin::AdminConfig;
use closeloop_edge::{router, AppState};

const AUDIENCE: &str = "aud-tag-of-the-dashboard-application";
const SECRET: &str = "a test session secret of some length";
const KID: &str = "team-key-1";

/// Reads the key set over HTTP, as the Worker's `fetch` does.
struct Http;

#[async_trait::async_trait]
impl KeySetSource for Http {
    async fn key_set(&self, url: &str) -> Result<String, String> {
        let response = reqwest::get(url).await.map_err(|e| e.to_string())?;
        response.text().await.map_err(|e| e.to_string())
    }
}

fn key() -> RsaPrivateKey {
    RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("an RSA key")
}

/// The team's key set, as Access publishes it, on a loopback port of its own.
async fn serve_key_set(team_key: &RsaPrivateKey) -> String {
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let public = team_key.to_public_key();
    let document = serde_json::json!({
        "keys": [{ "kty": "RSA", "kid": KID, "alg": "RS256", "use": "sig", "n": b64(public.n().to_bytes_be()), "e": b64(public.e().to_bytes_be()) }]
    })
    .to_string();
    // A bare HTTP/1.1 responder: the test's own key set, nothing else.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let reply = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{document}", document.len());
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://{address}/cdn-cgi/access/certs")
}

fn assertion(signer: &RsaPrivateKey, email: &str, audience: &str, exp: i64) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KID.into());
    let pem = signer.to_pkcs1_pem(LineEnding::LF).unwrap();
    let claims = serde_json::json!({ "email": email, "aud": [audience], "exp": exp, "iat": exp - 3600, "iss": "https://team.cloudflareaccess.com" });
    encode(&header, &claims, &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()).unwrap()
}

async fn sign_in_with(app: &axum::Router, assertion: &str) -> Response {
    app.clone().oneshot(Request::get("/admin/sign-in").header(ASSERTION_HEADER, assertion).body(Body::empty()).unwrap()).await.unwrap()
}

fn session_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("cl_session=").map(|rest| rest.split(';').next().unwrap_or("").to_owned()))
        .filter(|v| !v.is_empty())
}

#[tokio::test]
async fn an_access_assertion_signs_in_only_when_its_key_audience_expiry_and_email_are_right() {
    let closeloop_testkit::Local { store, services, clock, .. } = closeloop_testkit::local();
    let team_key = key();
    let stranger_key = key();
    let certs = serve_key_set(&team_key).await;
    let accounts = Accounts::default().with("Karin", Role::Admin, Some(Email::parse("karin@acme.example").unwrap()), "karins-token-0123456789");
    let admin = AdminConfig::new(accounts, SECRET).unwrap().with_access(AccessVerifier::new(&certs, AUDIENCE, Arc::new(Http)));
    let app = router(AppState::new(&services, None).with_admin(admin));
    let now = clock.now().millis() / 1000;

    let valid = sign_in_with(&app, &assertion(&team_key, "Karin@Acme.example", AUDIENCE, now + 600)).await;
    assert_eq!(valid.status(), StatusCode::SEE_OTHER, "valid: signed in");
    let cookie = session_cookie(&valid).expect("a session");
    let home = app.clone().oneshot(Request::get("/admin").header(header::COOKIE, format!("cl_session={cookie}")).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let page = String::from_utf8(home.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(page.contains("Signed in as Karin (admin)"));

    for (case, token) in [
        ("expired", assertion(&team_key, "karin@acme.example", AUDIENCE, now - 120)),
        ("another application's audience", assertion(&team_key, "karin@acme.example", "some-other-app", now + 600)),
        ("signed by a key the team does not have", assertion(&stranger_key, "karin@acme.example", AUDIENCE, now + 600)),
        ("an email without an account", assertion(&team_key, "mallory@acme.example", AUDIENCE, now + 600)),
        ("not a JWT", "not.a.jwt".to_owned()),
    ] {
        let refused = sign_in_with(&app, &token).await;
        assert_eq!(refused.status(), StatusCode::OK, "{case}: the token form instead");
        assert!(session_cookie(&refused).is_none(), "{case}: no session");
    }
    let log = store_log(&store).await;
    assert_eq!(log.iter().filter(|(action, subject)| action == "sign-in failed" && subject == "Cloudflare Access").count(), 5, "each refusal is on record");
    assert_eq!(log.iter().filter(|(action, subject)| action == "signed in" && subject == "Cloudflare Access").count(), 1);
}

async fn store_log(store: &closeloop_embedded::SqliteStore) -> Vec<(String, String)> {
    use closeloop_core::ports::Store;
    store.audit_log(None, 100).await.unwrap().entries.into_iter().map(|e| (e.action.as_str().to_owned(), e.subject)).collect()
}
