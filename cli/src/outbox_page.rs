//! `/outbox` and `/outbox.json`: the local stand-in for a mail client and a phone.
//!
//! Both are paged, newest first, `PAGE_SIZE` messages a page unless `?limit=` asks for another
//! number (at most `MAX_PAGE_SIZE`). Pages are keyed by message id, not by position, so new
//! messages arriving while someone pages through never repeat or skip one: `?before=ID` is the
//! page of messages older than ID, `?after=ID` the page just newer. The HTML page links to both
//! neighbours; the JSON body stays an array of messages (what the tests and scripts read) and
//! names its neighbours in a `Link` header (`rel="next"` older, `rel="prev"` newer), plus
//! `X-Outbox-Next-Before` with the cursor of the next page and `X-Outbox-Total`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use std::sync::Arc;

use closeloop_core::accounts::Role;
use closeloop_core::ports::Clock;
use closeloop_edge::admin::AdminConfig;
use closeloop_embedded::{Outbox, OutboxCursor, OutboxPage};

/// Messages on a page unless the request asks for another number.
pub const PAGE_SIZE: usize = 50;
/// The most messages one page holds (a message with its HTML part is a few KB).
pub const MAX_PAGE_SIZE: usize = 200;

/// Who may read the outbox: it holds every survey and unsubscribe token sent.
#[derive(Clone)]
pub enum OutboxAccess {
    /// Anyone who reaches the server (`up --demo`, tests that read what was sent).
    Open,
    /// Signed-in admins of the dashboard only.
    Admins { config: Option<Arc<AdminConfig>>, store: Arc<dyn closeloop_core::ports::Store>, clock: Arc<dyn Clock> },
}

pub fn routes(outbox: Outbox, access: OutboxAccess) -> Router {
    Router::new()
        .route("/outbox", get(page))
        .route("/outbox.json", get(json))
        .layer(axum::middleware::from_fn_with_state(access, admitted))
        .with_state(outbox)
}

async fn admitted(State(access): State<OutboxAccess>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let OutboxAccess::Admins { config, store, clock } = &access else { return next.run(request).await };
    let Some(config) = config else {
        return (StatusCode::FORBIDDEN, "The outbox is for admins: add an account (closeloop account add) and sign in at /admin.\n").into_response();
    };
    match closeloop_edge::admin::session_account(config, store.as_ref(), request.headers(), clock.now()).await {
        Some(account) if account.role == Role::Admin => next.run(request).await,
        Some(_) => (StatusCode::FORBIDDEN, "The outbox is for admins only.\n").into_response(),
        None => Redirect::to("/admin/sign-in").into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    before: Option<i64>,
    after: Option<i64>,
    limit: Option<usize>,
}

impl PageQuery {
    fn cursor(&self) -> Result<(OutboxCursor, usize), &'static str> {
        let limit = self.limit.unwrap_or(PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err("limit must be between 1 and 200\n");
        }
        let cursor = match (self.before, self.after) {
            (None, None) => OutboxCursor::Newest,
            (Some(before), None) => OutboxCursor::Before(before),
            (None, Some(after)) => OutboxCursor::After(after),
            (Some(_), Some(_)) => return Err("give before or after, not both\n"),
        };
        Ok((cursor, limit))
    }
}

/// The query strings of the older and the newer page; the limit is kept if it was asked for.
fn neighbours(page: &OutboxPage, query: &PageQuery) -> (Option<String>, Option<String>) {
    let limit = query.limit.map(|l| format!("&limit={l}")).unwrap_or_default();
    (page.older.map(|id| format!("before={id}{limit}")), page.newer.map(|id| format!("after={id}{limit}")))
}

async fn load(outbox: &Outbox, query: &PageQuery) -> Result<OutboxPage, Response> {
    let (cursor, limit) = query.cursor().map_err(|e| (StatusCode::BAD_REQUEST, e).into_response())?;
    outbox.page(cursor, limit).await.map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response())
}

async fn json(State(outbox): State<Outbox>, Query(query): Query<PageQuery>) -> Response {
    let page = match load(&outbox, &query).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let (older, newer) = neighbours(&page, &query);
    let links: Vec<String> = [(older, "next"), (newer, "prev")]
        .into_iter()
        .filter_map(|(q, rel)| q.map(|q| format!("</outbox.json?{q}>; rel=\"{rel}\"")))
        .collect();
    let mut response = Json(&page.messages).into_response();
    let headers = response.headers_mut();
    if !links.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
            headers.insert(header::LINK, value);
        }
    }
    if let Some(before) = page.older {
        headers.insert("x-outbox-next-before", HeaderValue::from(before));
    }
    headers.insert("x-outbox-total", HeaderValue::from(page.total));
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

async fn page(State(outbox): State<Outbox>, Query(query): Query<PageQuery>) -> Response {
    let page = match load(&outbox, &query).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let messages = &page.messages;
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>closeloop outbox</title><style>body{font:15px/1.4 system-ui,sans-serif;margin:1rem auto;max-width:60rem;padding:0 1rem}\
         article{border:1px solid #ccd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}pre{white-space:pre-wrap;background:#f6f7f9;padding:.5rem}\
         iframe{width:100%;height:28rem;border:1px solid #ccd}.meta{color:#556;font-size:.85rem}nav{display:flex;gap:1rem}</style></head><body>",
    );
    html.push_str(&format!(
        "<h1>Outbox</h1><p>{} messages, newest first; this page shows {}. Nothing here left this machine.</p>",
        page.total,
        messages.len()
    ));
    let nav = pager(&page, &query);
    html.push_str(&nav);
    for m in messages {
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
        if let Some(raw) = &m.raw {
            html.push_str(&format!("<details><summary>Raw message, as sent</summary><pre>{}</pre></details>", escape(raw)));
        }
        html.push_str("</article>");
    }
    html.push_str(&nav);
    html.push_str("</body></html>");
    Html(html).into_response()
}

/// Links to the newer and the older page, where there are such messages.
fn pager(page: &OutboxPage, query: &PageQuery) -> String {
    let (older, newer) = neighbours(page, query);
    if older.is_none() && newer.is_none() {
        return String::new();
    }
    let mut nav = String::from("<nav aria-label=\"Outbox pages\">");
    if let Some(q) = newer {
        nav.push_str(&format!("<a rel=\"prev\" href=\"/outbox?{}\">Newer messages</a>", escape(&q)));
    }
    if let Some(q) = older {
        nav.push_str(&format!("<a rel=\"next\" href=\"/outbox?{}\">Older messages</a>", escape(&q)));
    }
    nav.push_str("</nav>");
    nav
}
