//! Configuration from the function's environment, read once at cold start. The secrets (API
//! tokens, accounts, session secret) come from SSM Parameter Store: the environment holds only
//! their parameters' names (`API_TOKEN_PARAMETER`, ...), so the values never sit in the
//! function's configuration, where anyone who may read the function sees them.

use aws_credential_types::Credentials;
use aws_sdk_ssm::operation::get_parameters::GetParametersError;

/// `Debug` is `Display`: a main that fails at start prints its error with `{:?}` into the
/// function's log, and a derived `Debug` would print the sources' own (a TOML error's holds the
/// whole accounts file it failed on).
#[derive(thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {0} is not a number: {1:?}")]
    Invalid(&'static str, String),
    /// Where the accounts file went wrong, without quoting it: it holds token hashes and addresses.
    #[error("the accounts ({origin}) are not a valid accounts file: {problem}")]
    Accounts { origin: String, problem: String },
    #[error("{origin} is shorter than {MIN_TOKEN_CHARS} characters: make a longer one (openssl rand -hex 24)")]
    WeakToken { origin: String },
    #[error("parameter {0} is empty")]
    ParameterEmpty(String),
    #[error("the session secret: {0}")]
    SessionSecret(#[from] closeloop_edge::admin::WeakSecret),
    #[error("reading parameters {names} from SSM Parameter Store")]
    ParameterStore {
        names: String,
        #[source]
        source: Box<aws_sdk_ssm::error::SdkError<GetParametersError>>,
    },
    /// GetParameters names what it could not find without failing the call.
    #[error("parameter {0} is not in SSM Parameter Store (put it as a SecureString: README.md, Deploying)")]
    ParameterMissing(String),
}

impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The shortest API token accepted: a bearer token anyone on the internet may guess at.
pub const MIN_TOKEN_CHARS: usize = 24;

/// What is wrong with an accounts file, by line, never with its text.
fn accounts_problem(toml: &str, error: &closeloop_core::accounts::AccountsError) -> String {
    use closeloop_core::accounts::AccountsError;
    match error {
        AccountsError::Toml(e) => match e.span() {
            Some(span) => format!("not valid TOML at line {}", toml[..span.start.min(toml.len())].matches('\n').count() + 1),
            None => "not valid TOML".to_owned(),
        },
        // An account's name and what is wrong with it: no token, no hash.
        invalid @ AccountsError::Invalid { .. } => invalid.to_string(),
    }
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

/// The secrets: each one's variable for its value (local runs and tests) and for its parameter's
/// name (AWS).
const SECRETS: [(&str, &str); 4] = [
    ("API_TOKEN", "API_TOKEN_PARAMETER"),
    ("PEOPLE_API_TOKEN", "PEOPLE_API_TOKEN_PARAMETER"),
    ("ACCOUNTS", "ACCOUNTS_PARAMETER"),
    ("SESSION_SECRET", "SESSION_SECRET_PARAMETER"),
];

/// The secrets' values, in `SECRETS`' order, each with where it came from (for error messages).
type Secrets = [Option<(String, String)>; 4];

/// A variable's trimmed value; empty counts as unset.
fn variable(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// An SSM client; `endpoint` only against a stand-in (moto).
pub fn ssm_client(endpoint: Option<&str>, region: &str, credentials: Credentials) -> aws_sdk_ssm::Client {
    let mut builder = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new(region.to_owned()))
        .credentials_provider(credentials);
    builder.set_endpoint_url(endpoint.map(str::to_owned));
    aws_sdk_ssm::Client::from_conf(builder.build())
}

/// Every named parameter in one GetParameters call, decrypted. A name the store lacks is an
/// error, not an absent secret: a mistyped name would otherwise switch a feature off silently.
async fn fetch(client: &aws_sdk_ssm::Client, names: &[Option<String>; 4]) -> Result<Secrets, ConfigError> {
    let mut wanted: Vec<String> = names.iter().flatten().cloned().collect();
    wanted.sort();
    wanted.dedup();
    let out = client
        .get_parameters()
        .set_names(Some(wanted.clone()))
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| ConfigError::ParameterStore { names: wanted.join(", "), source: Box::new(e) })?;
    if let Some(name) = out.invalid_parameters().first() {
        return Err(ConfigError::ParameterMissing(name.clone()));
    }
    let mut secrets: Secrets = Default::default();
    for (slot, name) in secrets.iter_mut().zip(names) {
        let Some(name) = name else { continue };
        let value = out
            .parameters()
            .iter()
            .find(|p| p.name() == Some(name.as_str()))
            .and_then(|p| p.value())
            .ok_or_else(|| ConfigError::ParameterMissing(name.clone()))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(ConfigError::ParameterEmpty(name.clone()));
        }
        *slot = Some((format!("parameter {name}"), value.to_owned()));
    }
    Ok(secrets)
}

impl LambdaConfig {
    /// The configuration at cold start: settings from the environment, each secret from the
    /// Parameter Store parameter its `*_PARAMETER` variable names (then its plain `API_TOKEN`, ...
    /// is ignored, so a value left in the environment cannot shadow the store), else from its
    /// plain variable, as local runs and tests set them.
    pub async fn load() -> Result<Self, ConfigError> {
        Self::load_from(|name| std::env::var(name).ok()).await
    }

    /// `load` over any variables: tests pass their own instead of changing the process's.
    pub async fn load_from(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::settings(&env)?;
        let names: [Option<String>; 4] = SECRETS.map(|(_, parameter)| variable(&env, parameter));
        let mut secrets = if names.iter().any(Option::is_some) {
            let client = ssm_client(variable(&env, "SSM_ENDPOINT").as_deref(), &config.region, config.credentials.clone());
            fetch(&client, &names).await?
        } else {
            Default::default()
        };
        // Each secret from its parameter when one is named (a value left in the environment
        // cannot shadow the store), else from its plain variable, as local runs set them.
        for ((slot, name), (plain, _)) in secrets.iter_mut().zip(&names).zip(SECRETS) {
            if name.is_none() {
                *slot = variable(&env, plain).map(|v| (format!("environment variable {plain}"), v));
            }
        }
        let [api_token, people_api_token, accounts, session_secret] = secrets;
        for (origin, token) in [&api_token, &people_api_token].into_iter().flatten() {
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(ConfigError::WeakToken { origin: origin.clone() });
            }
        }
        config.api_token = api_token.map(|(_, v)| v);
        config.people_api_token = people_api_token.map(|(_, v)| v);
        config.accounts = accounts
            .map(|(origin, toml)| {
                closeloop_core::accounts::Accounts::from_toml(&toml).map_err(|e| ConfigError::Accounts { problem: accounts_problem(&toml, &e), origin })
            })
            .transpose()?
            .unwrap_or_default();
        config.session_secret = session_secret.map(|(_, v)| v);
        Ok(config)
    }

    /// Everything but the secrets.
    fn settings(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let optional = |name: &str| variable(env, name);
        let required = |name: &'static str| variable(env, name).ok_or(ConfigError::Missing(name));
        Ok(Self {
            table: required("TABLE_NAME")?,
            region: required("AWS_REGION")?,
            dynamodb_endpoint: optional("DYNAMODB_ENDPOINT"),
            ses_endpoint: optional("SES_ENDPOINT"),
            ses_configuration_set: optional("SES_CONFIGURATION_SET"),
            sns_endpoint: optional("SNS_ENDPOINT"),
            sms_sender_id: optional("SMS_SENDER_ID"),
            public_url: required("PUBLIC_URL")?,
            api_token: None,
            people_api_token: None,
            accounts: Default::default(),
            session_secret: None,
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
