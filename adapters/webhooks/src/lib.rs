//! The webhook port over HTTP(S) with reqwest, made safe to point at a URL from a campaign file:
//! - redirects are never followed (a 3xx is the endpoint's answer, and a failure);
//! - at most `MAX_RESPONSE_BYTES` of a response is read, and the whole call has a timeout;
//! - every address a name resolves to is checked against the `AddressPolicy` before
//!   connecting (a resolver of our own), and so is an address written in the URL, so a
//!   campaign cannot aim closeloop at its own network or the metadata service (SSRF).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use closeloop_core::ports::{WebhookResponse, WebhookSendError, WebhookSender};
use closeloop_core::webhooks::{AddressPolicy, WebhookUrl};

/// What is read of a response: its status is the answer; a body is only drained this far.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024;

/// An endpoint gets this long to answer (Standard Webhooks suggests a short timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct HttpWebhookSender {
    client: reqwest::Client,
    policy: AddressPolicy,
}

/// Resolves with the system resolver, then keeps only the addresses the policy allows.
struct PolicyResolver {
    policy: AddressPolicy,
}

#[derive(Debug)]
struct NoAllowedAddress(String);

impl std::fmt::Display for NoAllowedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves only to addresses this runtime may not call", self.0)
    }
}

impl std::error::Error for NoAllowedAddress {}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| policy.allows(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(NoAllowedAddress(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl HttpWebhookSender {
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .dns_resolver(Arc::new(PolicyResolver { policy }))
            .no_proxy()
            .build()?;
        Ok(Self { client, policy })
    }
}

fn is_resolver_refusal(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<NoAllowedAddress>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(&self, url: &WebhookUrl, headers: &[(String, String)], body: &str) -> Result<WebhookResponse, WebhookSendError> {
        // An address in the URL is never resolved, so the resolver cannot check it: here.
        if let Ok(ip) = url.host().parse::<IpAddr>() {
            if !self.policy.allows(ip) {
                return Err(WebhookSendError::Refused(format!("{ip} is not an address this runtime may call")));
            }
        }
        let mut request = self.client.post(url.as_str()).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Err(WebhookSendError::Timeout),
            Err(e) if is_resolver_refusal(&e) => return Err(WebhookSendError::Refused(format!("{}: no address this runtime may call", url.host()))),
            Err(e) => return Err(WebhookSendError::Connect(Box::new(e))),
        };
        let status = response.status().as_u16();
        // Drain a little, so a keep-alive connection can be reused; never more.
        let mut read = 0;
        while read < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(WebhookResponse { status })
    }
}
