//! The Worker entry point: the same router as the local process, over the DynamoDB adapter
//! reached through `fetch`. Built to WASM with worker-build; configuration in wrangler.toml.

mod fetch_client;

use std::cell::RefCell;
use std::sync::Arc;

use closeloop_core::ports::{Clock, Links};
use closeloop_core::Timestamp;
use closeloop_dynamodb::DynamoStore;
use tower_service::Service;
use worker::{event, Context, Env, HttpRequest};

use crate::{router, AppState, EdgeServices};

/// Time from the JavaScript clock: `SystemTime::now()` does not exist on wasm32-unknown-unknown.
struct JsClock;

impl Clock for JsClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(js_sys::Date::now() as i64)
    }
}

/// The Access team's key set, by `fetch`: one subrequest, and only when the cached set is an
/// hour old or lacks the key an assertion names.
struct FetchKeys;

#[async_trait::async_trait]
impl crate::admin::access::KeySetSource for FetchKeys {
    async fn key_set(&self, url: &str) -> Result<String, String> {
        let url = url.to_owned();
        worker::send::SendFuture::new(async move {
            let request = worker::Request::new(&url, worker::Method::Get).map_err(|e| e.to_string())?;
            let mut response = worker::Fetch::Request(request).send().await.map_err(|e| e.to_string())?;
            if response.status_code() != 200 {
                return Err(format!("{url} answered {}", response.status_code()));
            }
            response.text().await.map_err(|e| e.to_string())
        })
        .await
    }
}

fn setting(env: &Env, name: &str) -> worker::Result<String> {
    env.var(name).map(|v| v.to_string()).map_err(|_| worker::Error::RustError(format!("the Worker var {name} is not set (wrangler.toml)")))
}

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name).ok().map(|s| s.to_string()).filter(|s| !s.is_empty())
}

fn build_state(env: &Env) -> worker::Result<AppState> {
    let endpoint = env.var("DYNAMODB_ENDPOINT").ok().map(|v| v.to_string()).filter(|v| !v.is_empty());
    let region = setting(env, "AWS_REGION")?;
    let table = setting(env, "DYNAMODB_TABLE")?;
    let public_url = setting(env, "PUBLIC_URL")?;
    let access_key = secret(env, "AWS_ACCESS_KEY_ID").ok_or_else(|| worker::Error::RustError("secret AWS_ACCESS_KEY_ID is not set".into()))?;
    let secret_key = secret(env, "AWS_SECRET_ACCESS_KEY").ok_or_else(|| worker::Error::RustError("secret AWS_SECRET_ACCESS_KEY is not set".into()))?;
    let client = fetch_client::dynamodb_client(endpoint, region, access_key, secret_key);
    let services = EdgeServices { store: Arc::new(DynamoStore::new(client, table).with_conflict_attempts(1).with_deferred_suppression_marks()), clock: Arc::new(JsClock), links: Links::new(&public_url) };
    let state = AppState::new(services, secret(env, "API_TOKEN").as_deref())
        .with_people_api_token(secret(env, "PEOPLE_API_TOKEN").as_deref())
        .with_limits(crate::admin::ReadLimits::WORKER)
        .with_client_ip_header("cf-connecting-ip");
    // The dashboard needs both its accounts (TOML, hashes only) and a session key, as secrets.
    match (secret(env, "ACCOUNTS"), secret(env, "SESSION_SECRET")) {
        (Some(accounts), Some(session_secret)) => {
            let accounts = closeloop_core::accounts::Accounts::from_toml(&accounts)
                .map_err(|e| worker::Error::RustError(format!("secret ACCOUNTS: {e}")))?;
            let mut admin = crate::admin::AdminConfig::new(accounts, &session_secret)
                .map_err(|e| worker::Error::RustError(format!("secret SESSION_SECRET: {e}")))?;
            // Behind Cloudflare Access: its team's keys and this application's audience tag.
            let access = |name: &str| env.var(name).ok().map(|v| v.to_string()).filter(|v| !v.is_empty());
            if let (Some(certs), Some(audience)) = (access("ACCESS_CERTS_URL"), access("ACCESS_AUD")) {
                admin = admin.with_access(crate::admin::access::AccessVerifier::new(&certs, &audience, Arc::new(FetchKeys)));
            }
            Ok(state.with_admin(admin))
        }
        _ => Ok(state),
    }
}

thread_local! {
    // A Worker isolate is single-threaded and reused across requests: build the client once.
    static STATE: RefCell<Option<AppState>> = const { RefCell::new(None) };
}

#[event(fetch)]
async fn fetch(request: HttpRequest, env: Env, _ctx: Context) -> worker::Result<axum::http::Response<axum::body::Body>> {
    console_error_panic_hook::set_once();
    let state = match STATE.with(|s| s.borrow().clone()) {
        Some(state) => state,
        None => {
            let state = build_state(&env)?;
            STATE.with(|s| *s.borrow_mut() = Some(state.clone()));
            state
        }
    };
    let request = buffered(request).await?;
    Ok(router(state).call(request).await?)
}

/// Reads the whole request body before routing. An unread or half-read body wedges the isolate
/// (seen under workerd after an early 413), so an oversized body is drained and dropped, and the
/// router is handed one byte over the limit, to refuse with the same 413 as everywhere else.
async fn buffered(request: HttpRequest) -> worker::Result<axum::http::Request<axum::body::Body>> {
    use http_body_util::BodyExt;
    let (mut parts, mut body) = request.into_parts();
    let limit = crate::worker_body_limit(parts.uri.path());
    let mut bytes = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            total += data.len();
            if total <= limit {
                bytes.extend_from_slice(&data);
            }
        }
    }
    if total > limit {
        bytes.resize(limit + 1, 0);
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    }
    Ok(axum::http::Request::from_parts(parts, axum::body::Body::from(bytes)))
}
