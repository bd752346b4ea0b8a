//! The mail port on Amazon SES: `SendRawEmail` with the message `closeloop-mail` builds (the
//! same bytes the local outbox keeps), sent in a configuration set so bounces and complaints come
//! back through SNS.

use async_trait::async_trait;
use aws_sdk_ses::error::ProvideErrorMetadata;
use aws_sdk_ses::primitives::Blob;
use aws_sdk_ses::types::RawMessage;
use aws_sdk_ses::Client;

use closeloop_core::ports::{Mailer, OutgoingMail, SendError};

#[derive(Clone)]
pub struct SesMailer {
    client: Client,
    configuration_set: Option<String>,
}

/// A client for SES at `endpoint` (a local stand-in) or AWS, with static credentials.
pub fn client_for(endpoint: Option<&str>, region: &str, credentials: aws_credential_types::Credentials) -> Client {
    let mut builder = aws_sdk_ses::Config::builder()
        .behavior_version(aws_sdk_ses::config::BehaviorVersion::latest())
        .region(aws_sdk_ses::config::Region::new(region.to_owned()))
        .credentials_provider(credentials)
        // Throttling and 5xx are retried with the SDK's exponential backoff and jitter.
        .retry_config(aws_sdk_ses::config::retry::RetryConfig::standard().with_max_attempts(5));
    builder.set_endpoint_url(endpoint.map(str::to_owned));
    Client::from_conf(builder.build())
}

impl SesMailer {
    pub fn new(client: Client, configuration_set: Option<String>) -> Self {
        Self { client, configuration_set }
    }
}

/// Errors SES gives for a message or address that will never be accepted.
const PERMANENT: &[&str] = &["MessageRejected", "MailFromDomainNotVerifiedException", "ConfigurationSetDoesNotExistException", "AccountSendingPausedException"];

/// SES takes 7-bit addresses only (no SMTPUTF8): never retried. Without the address: errors
/// end up in log lines.
#[derive(Debug, thiserror::Error)]
#[error("an address has characters beyond ASCII in its local part, which SES cannot send to")]
struct NoSmtpUtf8;

/// SES's refusal, by its code and its message with every address in it left out (SES names the
/// recipient in some, such as an unverified identity's `MessageRejected`): the SDK's own error
/// is not kept, so no log line or error chain can show an address.
#[derive(Debug, thiserror::Error)]
#[error("SES {code}: {message}")]
struct Refused {
    code: String,
    message: String,
}

impl Refused {
    fn of(e: &(impl ProvideErrorMetadata + std::fmt::Display)) -> Self {
        let message = e.message().map_or_else(|| e.to_string(), str::to_owned);
        // SES may name recipients, with their display names, after a colon: none of it is kept.
        let message = match message.split_once(':') {
            Some((before, _)) if message.contains('@') => format!("{before}: (recipients left out)"),
            _ => message,
        };
        let message = message.split(' ').map(|word| if word.contains('@') { "(address)" } else { word }).collect::<Vec<_>>().join(" ");
        Refused { code: e.code().unwrap_or("unknown").to_owned(), message }
    }
}

/// The `Date` of a message: when it is handed to SES.
fn now() -> closeloop_core::Timestamp {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    closeloop_core::Timestamp::from_millis(millis)
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send_mail(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        if closeloop_mail::needs_smtputf8(&mail.to_email) || closeloop_mail::needs_smtputf8(&mail.from_email) {
            return Err(SendError::permanent(NoSmtpUtf8));
        }
        let raw = closeloop_mail::build(mail, now()).map_err(SendError::permanent)?;
        let message = RawMessage::builder()
            .data(Blob::new(raw))
            .build()
            .map_err(SendError::permanent)?;
        let result = self
            .client
            .send_raw_email()
            .raw_message(message)
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.message_id),
            Err(e) => Err(SendError::classify(e.code(), PERMANENT, Refused::of(&e))),
        }
    }
}
