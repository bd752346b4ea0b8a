//! Webhooks, per the Standard Webhooks specification: what a campaign sends where, the events
//! and their payloads, which addresses may be called, and when a failed delivery is tried again.
//! Pure: signing and sending live in the adapter that delivers.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The events an endpoint may subscribe to, named as in the payload's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WebhookEvent {
    #[serde(rename = "response.created")]
    ResponseCreated,
    #[serde(rename = "response.updated")]
    ResponseUpdated,
    #[serde(rename = "case.opened")]
    CaseOpened,
    #[serde(rename = "case.overdue")]
    CaseOverdue,
    #[serde(rename = "case.closed")]
    CaseClosed,
    #[serde(rename = "contact.unsubscribed")]
    ContactUnsubscribed,
    #[serde(rename = "launch.completed")]
    LaunchCompleted,
    /// The campaign's week in figures (no names, no comments), Monday mornings.
    #[serde(rename = "digest.weekly")]
    DigestWeekly,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 8] = [
        WebhookEvent::ResponseCreated,
        WebhookEvent::ResponseUpdated,
        WebhookEvent::CaseOpened,
        WebhookEvent::CaseOverdue,
        WebhookEvent::CaseClosed,
        WebhookEvent::ContactUnsubscribed,
        WebhookEvent::LaunchCompleted,
        WebhookEvent::DigestWeekly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::ResponseCreated => "response.created",
            WebhookEvent::ResponseUpdated => "response.updated",
            WebhookEvent::CaseOpened => "case.opened",
            WebhookEvent::CaseOverdue => "case.overdue",
            WebhookEvent::CaseClosed => "case.closed",
            WebhookEvent::ContactUnsubscribed => "contact.unsubscribed",
            WebhookEvent::LaunchCompleted => "launch.completed",
            WebhookEvent::DigestWeekly => "digest.weekly",
        }
    }

    pub fn parse(value: &str) -> Result<Self, WebhookConfigError> {
        Self::ALL.into_iter().find(|e| e.as_str() == value.trim()).ok_or_else(|| WebhookConfigError::UnknownEvent(value.trim().to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("unknown webhook event {0:?}: one of response.created, response.updated, case.opened, case.overdue, case.closed, contact.unsubscribed, launch.completed, digest.weekly")]
    UnknownEvent(String),
    #[error("a webhook secret is \"whsec_\" and base64 of 24 to 64 random bytes")]
    BadSecret,
    #[error("webhook url {0:?} must be https:// (http:// only to 127.0.0.1, ::1 or localhost, for local tests), with a host and no user or password")]
    BadUrl(String),
    #[error("a webhook needs at least one event")]
    NoEvents,
}

/// A `whsec_…` secret. Never shown: `Debug` redacts it, and pages show only its last four
/// characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookSecret(String);

/// How a secret kept in SSM Parameter Store is written in place of the secret itself.
pub const PARAMETER_PREFIX: &str = "ssm:";

impl WebhookSecret {
    pub fn parse(value: &str) -> Result<Self, WebhookConfigError> {
        let value = value.trim();
        if let Some(name) = value.strip_prefix(PARAMETER_PREFIX) {
            // A name in SSM Parameter Store, whose SecureString holds the whsec_ secret: the
            // campaign file and the table then hold no secret at all (the Lambda reads it).
            let ok = name.starts_with('/') && name.len() <= 1011 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
            return if ok { Ok(Self(value.to_owned())) } else { Err(WebhookConfigError::BadSecret) };
        }
        let encoded = value.strip_prefix("whsec_").ok_or(WebhookConfigError::BadSecret)?;
        let len = base64_len(encoded).ok_or(WebhookConfigError::BadSecret)?;
        if !(24..=64).contains(&len) {
            return Err(WebhookConfigError::BadSecret);
        }
        Ok(Self(value.to_owned()))
    }

    /// The whole secret, for the signer only (or the parameter reference, as written).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The Parameter Store name, when the secret lives there (`ssm:/closeloop/webhooks/crm`).
    pub fn parameter(&self) -> Option<&str> {
        self.0.strip_prefix(PARAMETER_PREFIX)
    }

    /// What a page may show of it.
    pub fn hint(&self) -> String {
        if self.parameter().is_some() {
            // A name, not a secret.
            return self.0.clone();
        }
        let tail: String = self.0.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        format!("whsec_…{tail}")
    }
}

/// The decoded length of standard base64, or none if it is not standard base64.
fn base64_len(encoded: &str) -> Option<usize> {
    let bytes = encoded.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|b| **b == b'=').count();
    let body = &bytes[..bytes.len() - padding];
    if padding > 2 || !body.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/') {
        return None;
    }
    Some(bytes.len() / 4 * 3 - padding)
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecret({})", self.hint())
    }
}

impl TryFrom<String> for WebhookSecret {
    type Error = WebhookConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<WebhookSecret> for String {
    fn from(value: WebhookSecret) -> Self {
        value.0
    }
}

/// Where a webhook goes: https, or http to a loopback name for local tests. Whether a loopback
/// or private address may really be called is the delivering runtime's decision
/// (`AddressPolicy`), made again after DNS resolution where the runtime allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl {
    url: String,
    host: String,
}

impl WebhookUrl {
    pub fn parse(value: &str) -> Result<Self, WebhookConfigError> {
        let bad = || WebhookConfigError::BadUrl(value.to_owned());
        let value = value.trim();
        let (scheme, rest) = value.split_once("://").ok_or_else(bad)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
            None => authority.rsplit_once(':').map_or(authority, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { authority }).to_owned(),
        }
        .to_ascii_lowercase();
        if host.is_empty() {
            return Err(bad());
        }
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {}
            "http" if is_loopback_name(&host) => {}
            _ => return Err(bad()),
        }
        Ok(Self { url: value.to_owned(), host })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The host as written (a name or an address, without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }
}

fn is_loopback_name(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl TryFrom<String> for WebhookUrl {
    type Error = WebhookConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<WebhookUrl> for String {
    fn from(value: WebhookUrl) -> Self {
        value.url
    }
}

/// One `[[webhooks]]` of a campaign file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub url: WebhookUrl,
    pub secret: WebhookSecret,
    pub events: BTreeSet<WebhookEvent>,
}

impl WebhookEndpoint {
    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.events.contains(&event)
    }

    /// A stable key for the endpoint within its campaign, for delivery ids and logs.
    pub fn key(&self) -> String {
        short_hash(self.url.as_str(), 6)
    }
}

/// A chat app's incoming webhook: Slack (Block Kit) or Microsoft Teams (an Adaptive Card through
/// a Workflows webhook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Slack,
    Teams,
}

/// What a chat channel gets: alerts (detractor follow-ups and contact requests) and the weekly
/// digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatEvent {
    Alert,
    Digest,
}

fn every_chat_event() -> BTreeSet<ChatEvent> {
    [ChatEvent::Alert, ChatEvent::Digest].into_iter().collect()
}

/// One `[[chat]]` of a campaign file: a channel's incoming-webhook URL, for the whole campaign
/// or (with `owner`) for one owner's contacts. The URL is a secret (whoever has it can post):
/// `Debug` and pages show only its host.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatChannel {
    pub kind: ChatKind,
    pub url: WebhookUrl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::model::Email>,
    #[serde(default = "every_chat_event")]
    pub events: BTreeSet<ChatEvent>,
}

impl ChatChannel {
    pub fn key(&self) -> String {
        short_hash(&format!("chat\n{}", self.url.as_str()), 6)
    }

    /// Whether this channel gets `event` about a contact owned by `owner`.
    pub fn wants(&self, event: ChatEvent, owner: Option<&crate::model::Email>) -> bool {
        self.events.contains(&event) && self.owner.as_ref().is_none_or(|mine| Some(mine) == owner)
    }

    /// The URL as pages may show it.
    pub fn hint(&self) -> String {
        format!("{}://{}/…", self.url.as_str().split("://").next().unwrap_or("https"), self.url.host())
    }
}

impl std::fmt::Debug for ChatChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatChannel").field("kind", &self.kind).field("url", &self.hint()).field("owner", &self.owner).field("events", &self.events).finish()
    }
}

/// A week of a campaign in figures for a digest webhook or chat message: no names, no
/// comments, so a queued digest holds no personal data and a channel's wider audience sees
/// nothing an erasure would have to chase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSummary {
    /// ISO week, `2026-W40`.
    pub week: String,
    /// NPS and its 95 % margin, rounded as every page shows them.
    pub nps: Option<i32>,
    pub margin_95: Option<u32>,
    pub answered: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    pub new_detractors: usize,
    pub open_cases: usize,
    pub overdue_cases: usize,
    pub dashboard_url: String,
}

/// The first `bytes` bytes of the text's SHA-256, in hex: keys and ids that name without telling.
pub(crate) fn short_hash(text: &str, bytes: usize) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().take(bytes).map(|b| format!("{b:02x}")).collect()
}

/// Which addresses a runtime may call. Locally, loopback is allowed (the receiver in a test, a
/// tool on the same machine); on the Lambda and the Worker nothing private is, so a campaign
/// file cannot aim closeloop at its own network (SSRF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPolicy {
    Local,
    PublicOnly,
}

impl AddressPolicy {
    /// Whether `ip` may be called under this policy.
    pub fn allows(self, ip: IpAddr) -> bool {
        let ip = match ip {
            // ::ffff:10.0.0.1 is 10.0.0.1.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() {
            return self == AddressPolicy::Local;
        }
        !is_non_public(ip)
    }
}

/// Private, link-local, shared (CGNAT), documentation, benchmarking, multicast, broadcast and
/// unspecified addresses: none of them is a customer's public endpoint.
fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || v4.is_loopback()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
                || v4 == Ipv4Addr::new(192, 0, 0, 170)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || v6 == Ipv6Addr::LOCALHOST
                || v6.to_ipv4().is_some_and(|v4| v4.is_private() || v4.is_loopback())
        }
    }
}

/// When attempt `attempt` (1 = the first retry) of a failed delivery is due after the failure:
/// 5 s, 1 min, 5 min, 30 min, 2 h, 5 h, 8 h, 8 h. The whole schedule spans just under 24 hours;
/// after it the delivery is given up.
pub fn retry_delay_seconds(attempt: u32) -> Option<i64> {
    const SCHEDULE: [i64; 8] = [5, 60, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 8 * 3600, 8 * 3600];
    SCHEDULE.get(attempt.checked_sub(1)? as usize).copied()
}

/// Consecutive failed deliveries after which an endpoint is disabled and the admins told.
pub const DISABLE_AFTER_FAILURES: u32 = 20;

/// The body of every webhook: `{ "type", "timestamp", "data" }`, as Standard Webhooks suggests.
/// The `webhook-id` header is the delivery's id, the same on every retry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookMessage {
    #[serde(rename = "type")]
    pub event: WebhookEvent,
    pub timestamp: String,
    pub data: serde_json::Value,
}

impl WebhookMessage {
    pub fn new(event: WebhookEvent, at: Timestamp, data: serde_json::Value) -> Self {
        Self { event, timestamp: at.to_rfc3339(), data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn a_secret_may_be_a_parameter_store_name_which_pages_may_show() {
        let named = WebhookSecret::parse("ssm:/closeloop/webhooks/crm-1.prod").unwrap();
        assert_eq!(named.parameter(), Some("/closeloop/webhooks/crm-1.prod"));
        assert_eq!(named.hint(), "ssm:/closeloop/webhooks/crm-1.prod");
        assert_eq!(WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap().parameter(), None);
        for bad in ["ssm:", "ssm:closeloop/x", "ssm:/a b", "ssm:/a\nb", "ssm:/ä"] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_endpoint_reads_from_a_campaign_file_and_its_secret_never_shows() {
        let endpoint: WebhookEndpoint =
            toml::from_str(&format!("url = \"https://crm.example/hooks/nps\"\nsecret = \"{SECRET}\"\nevents = [\"response.created\", \"case.opened\"]\n")).unwrap();
        assert!(endpoint.wants(WebhookEvent::CaseOpened) && !endpoint.wants(WebhookEvent::CaseClosed));
        assert_eq!(endpoint.url.host(), "crm.example");
        let debug = format!("{endpoint:?}");
        assert!(!debug.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2La"), "{debug}");
        assert_eq!(endpoint.secret.hint(), "whsec_…LaSw");
        let bad: Result<WebhookEndpoint, _> = toml::from_str("url = \"https://crm.example\"\nsecret = \"s3cr3t\"\nevents = [\"response.created\"]\n");
        assert!(bad.unwrap_err().to_string().contains("whsec_"));
        let unknown: Result<WebhookEndpoint, _> = toml::from_str(&format!("url = \"https://crm.example\"\nsecret = \"{SECRET}\"\nevents = [\"answer.created\"]\n"));
        assert!(unknown.unwrap_err().to_string().contains("unknown variant"));
    }

    #[test]
    fn urls_are_https_or_http_to_a_loopback_name_without_credentials() {
        for ok in ["https://crm.example/x", "https://crm.example:8443/x?y=1", "http://127.0.0.1:9000/hook", "http://localhost:1/", "http://[::1]:80/h"] {
            assert!(WebhookUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["http://crm.example/x", "ftp://crm.example", "https://user:pw@crm.example/", "https:///x", "crm.example", "https://crm .example", "https://crm.example/\r\nX: y", "http://127.0.0.1.evil.example/"] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(WebhookUrl::parse("https://[2001:db8::1]:443/x").unwrap().host(), "2001:db8::1");
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_refused_off_the_local_machine() {
        let refused = ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "224.0.0.1", "255.255.255.255"];
        for ip in refused {
            assert!(!AddressPolicy::PublicOnly.allows(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "1.1.1.1"] {
            assert!(AddressPolicy::PublicOnly.allows(ip.parse().unwrap()), "{ip}");
        }
        assert!(AddressPolicy::Local.allows("127.0.0.1".parse().unwrap()));
        assert!(AddressPolicy::Local.allows("::1".parse().unwrap()));
        assert!(!AddressPolicy::Local.allows("169.254.169.254".parse().unwrap()), "the metadata service is never a webhook");
    }

    #[test]
    fn retries_back_off_exponentially_for_just_under_a_day_then_stop() {
        let delays: Vec<i64> = (1..).map_while(retry_delay_seconds).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        let total: i64 = delays.iter().sum();
        assert!(total < 24 * 3600 && total > 20 * 3600, "{total} s");
        assert_eq!(retry_delay_seconds(0), None);
    }
}

/// Whether a delivery is still to be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Retried for a day, or its endpoint was disabled or removed.
    GaveUp,
}

/// What one attempt got: an HTTP status, or an error before one (timeout, refused address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptOutcome {
    pub at: Timestamp,
    pub status: Option<u16>,
    pub millis: u32,
    pub error: Option<String>,
}

impl AttemptOutcome {
    /// Standard Webhooks: any 2xx is a delivery; everything else is retried.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// One event for one endpoint. It holds no personal data: the payload is built from the
/// invitation when it is sent, so an erasure needs nothing here, and an erased person's
/// pending delivery carries the erased values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// The `webhook-id`: the same on every attempt, so receivers can deduplicate.
    pub id: String,
    pub campaign_id: crate::campaign::CampaignId,
    /// `WebhookEndpoint::key` of the endpoint it goes to.
    pub endpoint: String,
    pub event: WebhookEvent,
    /// The invitation the payload is about.
    pub invitation_id: crate::model::InvitationId,
    /// The answer's version, for `response.*`; 0 otherwise.
    #[serde(default)]
    pub version: u32,
    pub created_at: Timestamp,
    /// Set for a chat channel's message (the endpoint is then a `ChatChannel::key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatKind>,
    /// The figures of a `digest.weekly`, fixed when it was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestSummary>,
    /// A `launch.completed`'s counts, fixed when it was queued (no rows, no values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<serde_json::Value>,
    pub attempts: u32,
    pub state: DeliveryState,
    /// When it is next tried, while pending.
    pub next_at: Option<Timestamp>,
    pub last: Option<AttemptOutcome>,
}

impl WebhookDelivery {
    /// A new delivery of `event` for `endpoint`, due at once. Its id comes from the event's own
    /// id and time, so the same event handled twice queues one delivery, and ids sort by time.
    pub fn new(
        campaign_id: &crate::campaign::CampaignId,
        endpoint: &WebhookEndpoint,
        event: WebhookEvent,
        source_event_id: &str,
        invitation_id: &crate::model::InvitationId,
        version: u32,
        at: Timestamp,
    ) -> Self {
        Self::queued(campaign_id, endpoint.key(), None, event, source_event_id, invitation_id, version, at)
    }

    /// A chat channel's message about `event` (an alert's `case.opened`, a `digest.weekly`).
    pub fn for_chat(
        campaign_id: &crate::campaign::CampaignId,
        channel: &ChatChannel,
        event: WebhookEvent,
        source_event_id: &str,
        invitation_id: &crate::model::InvitationId,
        at: Timestamp,
    ) -> Self {
        Self::queued(campaign_id, channel.key(), Some(channel.kind), event, source_event_id, invitation_id, 0, at)
    }

    fn queued(
        campaign_id: &crate::campaign::CampaignId,
        endpoint: String,
        chat: Option<ChatKind>,
        event: WebhookEvent,
        source_event_id: &str,
        invitation_id: &crate::model::InvitationId,
        version: u32,
        at: Timestamp,
    ) -> Self {
        let hash = short_hash(&format!("{}\n{endpoint}\n{}\n{source_event_id}", campaign_id.as_str(), event.as_str()), 10);
        Self {
            id: format!("msg_{:013}{hash}", at.millis().max(0)),
            campaign_id: campaign_id.clone(),
            endpoint,
            event,
            invitation_id: invitation_id.clone(),
            version,
            created_at: at,
            chat,
            digest: None,
            launch: None,
            attempts: 0,
            state: DeliveryState::Pending,
            next_at: Some(at),
            last: None,
        }
    }

    /// Records an attempt: delivered, due again after the next back-off, or given up.
    pub fn record(&mut self, outcome: AttemptOutcome) {
        self.attempts += 1;
        let at = outcome.at;
        if outcome.delivered() {
            self.state = DeliveryState::Delivered;
            self.next_at = None;
        } else {
            match retry_delay_seconds(self.attempts) {
                Some(delay) => self.next_at = Some(at.plus_millis(delay * 1000)),
                None => {
                    self.state = DeliveryState::GaveUp;
                    self.next_at = None;
                }
            }
        }
        self.last = Some(outcome);
    }

    /// Gives up without an attempt: the endpoint was disabled or is no longer configured.
    pub fn give_up(&mut self) {
        self.state = DeliveryState::GaveUp;
        self.next_at = None;
    }

    /// Due again now: a manual redelivery from the log.
    pub fn redeliver(&mut self, at: Timestamp) {
        self.state = DeliveryState::Pending;
        self.next_at = Some(at);
    }
}

/// An endpoint's run of failures, and whether that disabled it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointHealth {
    pub consecutive_failures: u32,
    pub disabled_at: Option<Timestamp>,
}

impl EndpointHealth {
    /// After an attempt; true when this one disabled the endpoint.
    pub fn after(&mut self, outcome: &AttemptOutcome) -> bool {
        if outcome.delivered() {
            self.consecutive_failures = 0;
            return false;
        }
        self.consecutive_failures += 1;
        if self.disabled_at.is_none() && self.consecutive_failures >= DISABLE_AFTER_FAILURES {
            self.disabled_at = Some(outcome.at);
            return true;
        }
        false
    }
}
