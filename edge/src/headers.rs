//! Headers every response gets: personal pages are never cached or framed, tokens never leak
//! through the Referer header, and the page may load nothing from anywhere.

use std::sync::OnceLock;

use axum::http::header::{self, HeaderValue};
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The survey page's one inline script, allowed by its hash rather than by 'unsafe-inline'.
/// `img-src data:` lets in the pages' inline favicon, so no page asks for `/favicon.ico`.
fn content_security_policy() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let template = include_str!("../../templates/page/survey.html");
        let script = template
            .split_once("<script>")
            .and_then(|(_, rest)| rest.split_once("</script>"))
            .map(|(body, _)| body)
            .unwrap_or("");
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script.as_bytes()));
        let policy = format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'; img-src 'self' data:"
        );
        HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"))
    })
}

pub async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, content_security_policy().clone());
    response
}
