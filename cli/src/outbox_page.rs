//! `/outbox` and `/outbox.json`: the local stand-in for a mail client and a phone.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use closeloop_embedded::Outbox;

pub fn routes(outbox: Outbox) -> Router {
    Router::new().route("/outbox", get(page)).route("/outbox.json", get(json)).with_state(outbox)
}

async fn json(State(outbox): State<Outbox>) -> Response {
    match outbox.messages() {
        Ok(messages) => Json(messages).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

async fn page(State(outbox): State<Outbox>) -> Response {
    let messages = match outbox.messages() {
        Ok(m) => m,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>closeloop outbox</title><style>body{font:15px/1.4 system-ui,sans-serif;margin:1rem auto;max-width:60rem;padding:0 1rem}\
         article{border:1px solid #ccd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}pre{white-space:pre-wrap;background:#f6f7f9;padding:.5rem}\
         iframe{width:100%;height:28rem;border:1px solid #ccd}.meta{color:#556;font-size:.85rem}</style></head><body>",
    );
    html.push_str(&format!("<h1>Outbox</h1><p>{} messages, newest first. Nothing here left this machine.</p>", messages.len()));
    for m in &messages {
        html.push_str(&format!(
            "<article id=\"m{}\"><h2>{}</h2><p class=\"meta\">#{} · {} · {} · to {} · {}</p>",
            m.id,
            escape(m.subject.as_deref().unwrap_or("SMS")),
            m.id,
            escape(&m.kind),
            escape(&m.channel),
            escape(&m.to),
            escape(&m.created_at)
        ));
        if !m.headers.is_empty() {
            let headers: Vec<String> = m.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            html.push_str(&format!("<pre class=\"meta\">{}</pre>", escape(&headers.join("\n"))));
        }
        html.push_str(&format!("<pre>{}</pre>", escape(&m.text)));
        if let Some(body) = &m.html {
            // Sandboxed without scripts: message HTML carries CRM text and must not run.
            html.push_str(&format!(
                "<details><summary>HTML part</summary><iframe sandbox=\"allow-popups allow-popups-to-escape-sandbox\" srcdoc=\"{}\"></iframe></details>",
                escape(body)
            ));
        }
        html.push_str("</article>");
    }
    html.push_str("</body></html>");
    Html(html).into_response()
}
