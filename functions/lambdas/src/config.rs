//! Configuration from the function's environment, read once at cold start.

use aws_credential_types::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {0} is not a number: {1:?}")]
    Invalid(&'static str, String),
    #[error("environment variable ACCOUNTS: {0}")]
    Accounts(#[from] closeloop_core::accounts::AccountsError),
    #[error("environment variable SESSION_SECRET: {0}")]
    SessionSecret(#[from] closeloop_edge::admin::WeakSecret),
}

impl LambdaConfig {
    /// The dashboard's accounts and session key, when both are configured.
    pub fn dashboard(&self) -> Result<Option<closeloop_edge::admin::AdminConfig>, ConfigError> {
        match &self.session_secret {
            Some(secret) if !self.accounts.is_empty() => Ok(Some(closeloop_edge::admin::AdminConfig::new(self.accounts.clone(), secret)?)),
            _ => Ok(None),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LambdaConfig {
    pub table: String,
    pub region: String,
    /// Set only against stand-ins (DynamoDB Local); empty means AWS.
    pub dynamodb_endpoint: Option<String>,
    pub ses_endpoint: Option<String>,
    pub ses_configuration_set: Option<String>,
    pub sns_endpoint: Option<String>,
    /// Alphanumeric SMS sender id, where the destination country allows one.
    pub sms_sender_id: Option<String>,
    pub public_url: String,
    pub api_token: Option<String>,
    /// The people API's own bearer token; without it `/api/v1/people` answers 401.
    pub people_api_token: Option<String>,
    /// Dashboard accounts (the accounts file's TOML): digest languages and admin addresses.
    pub accounts: closeloop_core::accounts::Accounts,
    /// Signs the dashboard's sessions where the launch function serves it (contact uploads);
    /// without it, or without accounts, the function serves no dashboard.
    pub session_secret: Option<String>,
    pub credentials: Credentials,
    /// The queue launch chunks go to (`launch_chunk` reads it); the launch function needs it.
    pub launch_queue_url: Option<String>,
    /// The bucket large CRM files are uploaded to through a presigned PUT.
    pub upload_bucket: Option<String>,
    /// Set only against stand-ins (moto's SQS and S3).
    pub sqs_endpoint: Option<String>,
    /// The queue of webhook deliveries (`deliver_webhooks` reads it); none: webhooks wait for
    /// the schedule's sweep, and the stream handler forwards nothing.
    pub webhook_queue_url: Option<String>,
    pub s3_endpoint: Option<String>,
    /// SES's sending quota for the account, in mails per second, shared by the functions that send.
    pub ses_max_send_rate: Option<f64>,
    /// How many execution environments may send at once (stream shards, the schedule): each
    /// takes this share of the quota.
    pub ses_sending_instances: u32,
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl LambdaConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: required("TABLE_NAME")?,
            region: required("AWS_REGION")?,
            dynamodb_endpoint: optional("DYNAMODB_ENDPOINT"),
            ses_endpoint: optional("SES_ENDPOINT"),
            ses_configuration_set: optional("SES_CONFIGURATION_SET"),
            sns_endpoint: optional("SNS_ENDPOINT"),
            sms_sender_id: optional("SMS_SENDER_ID"),
            public_url: required("PUBLIC_URL")?,
            api_token: optional("API_TOKEN"),
            people_api_token: optional("PEOPLE_API_TOKEN"),
            accounts: optional("ACCOUNTS").map(|t| closeloop_core::accounts::Accounts::from_toml(&t)).transpose()?.unwrap_or_default(),
            session_secret: optional("SESSION_SECRET"),
            // Lambda puts the execution role's temporary credentials in the environment.
            credentials: Credentials::new(
                required("AWS_ACCESS_KEY_ID")?,
                required("AWS_SECRET_ACCESS_KEY")?,
                optional("AWS_SESSION_TOKEN"),
                None,
                "lambda-environment",
            ),
            launch_queue_url: optional("LAUNCH_QUEUE_URL"),
            upload_bucket: optional("UPLOAD_BUCKET"),
            sqs_endpoint: optional("SQS_ENDPOINT"),
            webhook_queue_url: optional("WEBHOOK_QUEUE_URL"),
            s3_endpoint: optional("S3_ENDPOINT"),
            ses_max_send_rate: optional("SES_MAX_SEND_RATE").map(|v| v.parse().map_err(|_| ConfigError::Invalid("SES_MAX_SEND_RATE", v))).transpose()?,
            ses_sending_instances: optional("SES_SENDING_INSTANCES")
                .map(|v| v.parse::<u32>().ok().filter(|n| *n > 0).ok_or(ConfigError::Invalid("SES_SENDING_INSTANCES", v)))
                .transpose()?
                .unwrap_or(1),
        })
    }
}
