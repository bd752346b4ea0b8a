//! The SMS port on Amazon SNS (`Publish` to a phone number, transactional). Every text is measured
//! in GSM-7 segments first: invitations are written to fit one, and a longer text is sent but
//! logged with its segment count, since each segment is billed.

use async_trait::async_trait;
use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use closeloop_core::gsm::{sms_length, SmsEncoding};
use closeloop_core::ports::{OutgoingSms, SendError, SmsSender};

#[derive(Clone)]
pub struct SnsSms {
    client: Client,
    /// Alphanumeric sender id where the destination country allows one.
    sender_id: Option<String>,
}

pub fn client_for(endpoint: Option<&str>, region: &str, credentials: aws_credential_types::Credentials) -> Client {
    let mut builder = aws_sdk_sns::Config::builder()
        .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
        .region(aws_sdk_sns::config::Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .retry_config(aws_sdk_sns::config::retry::RetryConfig::standard().with_max_attempts(5));
    builder.set_endpoint_url(endpoint.map(str::to_owned));
    Client::from_conf(builder.build())
}

impl SnsSms {
    pub fn new(client: Client, sender_id: Option<String>) -> Self {
        Self { client, sender_id }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, SendError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(SendError::permanent)
}

/// SNS's refusal, by its code and its message with every phone number in it left out (an
/// `InvalidParameter` names the number): the SDK's own error is not kept, so no log line or
/// error chain can show one.
#[derive(Debug)]
struct Refused {
    code: String,
    message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SNS {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    fn of(e: &(impl ProvideErrorMetadata + std::fmt::Display)) -> Self {
        let message = e.message().map_or_else(|| e.to_string(), str::to_owned);
        let is_number = |word: &str| word.chars().filter(char::is_ascii_digit).count() >= 6;
        let message = message.split(' ').map(|word| if is_number(word) { "(number)" } else { word }).collect::<Vec<_>>().join(" ");
        Refused { code: e.code().unwrap_or("unknown").to_owned(), message }
    }
}

/// Errors SNS gives for a request that will never succeed as it is.
const PERMANENT: &[&str] = &["InvalidParameter", "InvalidParameterValue", "OptedOut", "AuthorizationError"];

#[async_trait]
impl SmsSender for SnsSms {
    async fn send_sms(&self, sms: &OutgoingSms) -> Result<String, SendError> {
        let length = sms_length(&sms.text);
        if length.segments > 1 || length.encoding == SmsEncoding::Ucs2 {
            tracing::warn!(kind = ?sms.kind, segments = length.segments, encoding = ?length.encoding, "SMS longer than one GSM-7 segment");
        }
        let mut request = self
            .client
            .publish()
            .phone_number(&sms.to)
            .message(&sms.text)
            .message_attributes("AWS.SNS.SMS.SMSType", string_attribute("Transactional")?);
        if let Some(sender) = &self.sender_id {
            request = request.message_attributes("AWS.SNS.SMS.SenderID", string_attribute(sender)?);
        }
        match request.send().await {
            Ok(out) => Ok(out.message_id.unwrap_or_default()),
            Err(e) => Err(SendError::classify(e.code(), PERMANENT, Refused::of(&e))),
        }
    }
}
