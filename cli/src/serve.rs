//! The local server: HTTP/1 on hyper with read timeouts, the dispatcher and the schedule.
//!
//! `axum::serve` reads headers and bodies for as long as a client cares to take; a client that
//! sends half a request line and waits would hold its connection (and a task) forever. Here
//! hyper closes a connection whose request head is not complete within `header_read`
//! (counted from when the server starts waiting for a head, also between requests on a kept-alive
//! connection), and a request whose body is not complete within `body_read` of its arrival gets
//! 408 and its connection closed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::task::{JoinHandle, JoinSet};

use closeloop_functions::schedule;

use crate::LocalApp;

/// How long the server waits for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For a complete request head (request line and headers).
    pub header_read: Duration,
    /// For a complete request body, from the request's arrival.
    pub body_read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { header_read: Duration::from_secs(10), body_read: Duration::from_secs(30) }
    }
}

/// How often the local dispatcher looks for new events (answers, API invitations).
pub const DISPATCH_INTERVAL: Duration = Duration::from_millis(200);
/// How often due webhooks are posted locally.
pub const WEBHOOK_INTERVAL: Duration = Duration::from_millis(500);
/// How often `up` runs the scheduled work (reminders, overdue follow-ups).
pub const SCHEDULE_INTERVAL: Duration = Duration::from_secs(60);

/// A running local server: its address, and its background tasks for `stop`.
pub struct Running {
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    dispatcher: JoinHandle<()>,
    stopping: tokio::sync::watch::Sender<bool>,
}

/// How long `stop` waits for the dispatcher to finish the batch it is sending.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

impl Running {
    /// Stops accepting, closes every open connection, stops the schedule, and lets the
    /// dispatcher finish the batch in hand first (at most `STOP_GRACE`): cut off between
    /// claiming a batch's sends and storing its messages, those messages would count as sent.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.stopping.send(true);
        let abort = self.dispatcher.abort_handle();
        if tokio::time::timeout(STOP_GRACE, self.dispatcher).await.is_err() {
            tracing::warn!("the dispatcher did not finish its batch in time; stopped");
            abort.abort();
        }
    }
}

/// Serves on `addr` (port 0 picks a free one) with the dispatcher, and the schedule if asked.
pub async fn serve(app: LocalApp, addr: SocketAddr, api_token: Option<String>, run_schedule: bool) -> anyhow::Result<Running> {
    serve_with_timeouts(app, addr, api_token, run_schedule, Timeouts::default()).await
}

/// [`serve`] with other timeouts (tests use short ones).
pub async fn serve_with_timeouts(
    app: LocalApp,
    addr: SocketAddr,
    api_token: Option<String>,
    run_schedule: bool,
    timeouts: Timeouts,
) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let addr = listener.local_addr()?;
    let hosts = Arc::new(allowed_hosts(app.services.links.base()));
    let router = app
        .router(api_token.as_deref())
        .layer(axum::middleware::from_fn_with_state(timeouts.body_read, body_deadline))
        .layer(axum::middleware::from_fn_with_state(hosts, host_check));
    let mut tasks = vec![tokio::spawn(accept_loop(listener, router, timeouts.header_read))];
    let app_for_dispatch = app.clone();
    let (stopping, mut stop_requested) = tokio::sync::watch::channel(false);
    let dispatcher = tokio::spawn(async move {
        while !*stop_requested.borrow() {
            if let Err(e) = app_for_dispatch.dispatch().await {
                tracing::error!(error = %e, "dispatch failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(DISPATCH_INTERVAL) => {}
                _ = stop_requested.changed() => {}
            }
        }
    });
    // Webhooks go from their own loop: a slow endpoint (up to its timeout) never holds up the
    // dispatcher's mail.
    let deliverer = app.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            match deliverer.deliver_webhooks().await {
                Ok(s) if s != closeloop_functions::webhooks::DeliverySummary::default() => tracing::info!(?s, "webhooks delivered"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "webhook delivery failed"),
            }
            tokio::time::sleep(WEBHOOK_INTERVAL).await;
        }
    }));
    if run_schedule {
        let scheduler = app.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let now = scheduler.services.clock.now();
                match schedule::run(&scheduler.services, &scheduler.accounts, now).await {
                    Ok(s) if s != schedule::ScheduleSummary::default() => tracing::info!(?s, "schedule ran"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "schedule failed"),
                }
                tokio::time::sleep(SCHEDULE_INTERVAL).await;
            }
        }));
    }
    Ok(Running { addr, tasks, dispatcher, stopping })
}

/// Accepts connections and serves each on its own task. The connections live in a `JoinSet`
/// owned by this task, so aborting it (`Running::stop`) closes them too.
async fn accept_loop(listener: tokio::net::TcpListener, router: axum::Router, header_read: Duration) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
                    connections.spawn(async move {
                        // A timed-out or reset connection is the client's doing: worth a debug line.
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors, most likely: wait for connections to close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The host names the local server answers to: loopback, and the public address's host. A page
/// elsewhere that points its own name at 127.0.0.1 (DNS rebinding) is refused, so it cannot read
/// the dashboard, the outbox or the API through the visitor's browser.
fn allowed_hosts(public_url: &str) -> Vec<String> {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "[::1]".to_owned()];
    if let Some(host) = url_host(public_url) {
        hosts.push(host);
    }
    hosts
}

/// The host of `scheme://host[:port]/…`, lower-cased, without the port.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    host_name(authority)
}

/// `host[:port]` (or `[v6]:port`) without the port, lower-cased.
fn host_name(authority: &str) -> Option<String> {
    let authority = authority.trim().to_ascii_lowercase();
    let name = if authority.starts_with('[') {
        authority.split_inclusive(']').next()?.to_owned()
    } else {
        authority.split(':').next()?.to_owned()
    };
    Some(name).filter(|n| !n.is_empty())
}

async fn host_check(State(hosts): State<Arc<Vec<String>>>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned).or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host.as_deref().and_then(host_name) {
        Some(name) if hosts.contains(&name) => next.run(request).await,
        _ => (StatusCode::MISDIRECTED_REQUEST, "This server answers only to its own address.\n").into_response(),
    }
}

/// Gives the request's body a deadline; a body not complete by then answers 408 and closes.
async fn body_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    use http_body::Body as _;
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| Body::new(DeadlineBody::new(body, limit, expired.clone())));
    let response = next.run(request).await;
    if expired.load(Ordering::SeqCst) {
        let mut timeout = (StatusCode::REQUEST_TIMEOUT, "The request body took too long to arrive.\n").into_response();
        timeout.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return timeout;
    }
    response
}

/// A body that fails once its deadline passes, however steadily the bytes trickle in.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Body, limit: Duration, expired: Arc<AtomicBool>) -> Self {
        Self { inner, deadline: Box::pin(tokio::time::sleep(limit)), limit, expired }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body was not complete within {0:?}")]
struct BodyTimedOut(Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err(BodyTimedOut(this.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_the_public_host_are_answered() {
        let hosts = allowed_hosts("https://NPS.example.com:8443/base");
        for ok in ["localhost:8787", "127.0.0.1", "[::1]:8787", "nps.example.com", "nps.example.com:8443"] {
            assert!(host_name(ok).is_some_and(|h| hosts.contains(&h)), "{ok}");
        }
        for refused in ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example:8787", "", "nps.example.com.evil"] {
            assert!(!host_name(refused).is_some_and(|h| hosts.contains(&h)), "{refused}");
        }
    }
}
