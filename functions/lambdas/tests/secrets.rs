//! The secrets are read from SSM Parameter Store (moto's server at 127.0.0.1:8006, which serves
//! SSM beside SNS, SQS and S3) once, through `LambdaConfig::load_from`; run through
//! scripts/with-services.

use std::collections::HashMap;

use aws_sdk_ssm::types::ParameterType;
use closeloop_lambdas::config::{ssm_client, ConfigError};
use closeloop_lambdas::LambdaConfig;

const ACCOUNTS: &str = r#"
[[account]]
name = "Ada"
role = "admin"
email = "ada@example.se"
token_sha256 = "4bbb2ac8c2b0a3b4f1e1ac1e66d8ed6d4a4a2d3bb1d7e2d4c2e1b0a3f4e5d6c7"
"#;

/// moto's server, which scripts/with-services starts for SNS, SQS and S3 and which serves SSM too.
fn ssm_endpoint() -> String {
    std::env::var("SNS_ENDPOINT").expect("SNS_ENDPOINT: run through scripts/with-services")
}

fn credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("local", "local", None, None, "test")
}

async fn put_secret(name: &str, value: &str) -> anyhow::Result<()> {
    ssm_client(Some(&ssm_endpoint()), "eu-north-1", credentials())
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await?;
    Ok(())
}

/// A function's environment as the template sets it, with `extra` on top.
fn environment(extra: &[(&str, String)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("TABLE_NAME", "closeloop"),
        ("AWS_REGION", "eu-north-1"),
        ("PUBLIC_URL", "https://nps.example"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.insert("SSM_ENDPOINT".into(), ssm_endpoint());
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    env
}

async fn load(env: &HashMap<String, String>) -> Result<LambdaConfig, ConfigError> {
    LambdaConfig::load_from(|name| env.get(name).cloned()).await
}

#[tokio::test]
async fn the_secrets_are_read_from_the_parameter_store_and_their_plain_variables_are_ignored() -> anyhow::Result<()> {
    let prefix = format!("/closeloop-test-{}", std::process::id());
    let names = [("api-token", "api-token-from-ssm-0123456789"), ("people-api-token", "people-token-from-ssm-0123"),
        ("accounts", ACCOUNTS), ("session-secret", "a-session-secret-of-at-least-32-characters!")];
    for (name, value) in names {
        put_secret(&format!("{prefix}/{name}"), value).await?;
    }
    let env = environment(&[
        ("API_TOKEN_PARAMETER", format!("{prefix}/api-token")),
        ("PEOPLE_API_TOKEN_PARAMETER", format!("{prefix}/people-api-token")),
        ("ACCOUNTS_PARAMETER", format!("{prefix}/accounts")),
        ("SESSION_SECRET_PARAMETER", format!("{prefix}/session-secret")),
        // Left behind in the environment: the store wins.
        ("API_TOKEN", "stale-token-in-the-environment".into()),
    ]);
    let config = load(&env).await?;
    assert_eq!(config.api_token.as_deref(), Some("api-token-from-ssm-0123456789"));
    assert_eq!(config.people_api_token.as_deref(), Some("people-token-from-ssm-0123"));
    assert_eq!(config.session_secret.as_deref(), Some("a-session-secret-of-at-least-32-characters!"));
    assert!(!config.accounts.is_empty(), "the accounts TOML arrived and parsed");
    assert!(config.dashboard()?.is_some(), "accounts and session secret make the dashboard");
    Ok(())
}

#[tokio::test]
async fn a_secret_without_a_parameter_name_is_read_from_its_plain_variable_beside_one_that_has_one() -> anyhow::Result<()> {
    let name = format!("/closeloop-test-{}/accounts-only", std::process::id());
    put_secret(&name, ACCOUNTS).await?;
    let env = environment(&[("ACCOUNTS_PARAMETER", name), ("SESSION_SECRET", "a-session-secret-of-at-least-32-characters!".into())]);
    let config = load(&env).await?;
    assert!(!config.accounts.is_empty());
    assert_eq!(config.session_secret.as_deref(), Some("a-session-secret-of-at-least-32-characters!"), "its parameter is not named: its plain variable counts");
    Ok(())
}

#[tokio::test]
async fn a_missing_parameter_is_an_error_that_names_it_and_not_a_value() -> anyhow::Result<()> {
    let present = format!("/closeloop-test-{}/present-token", std::process::id());
    put_secret(&present, "present-token-value-0123456789").await?;
    let missing = format!("/closeloop-test-{}/never-put", std::process::id());
    let env = environment(&[("API_TOKEN_PARAMETER", present), ("SESSION_SECRET_PARAMETER", missing.clone())]);
    let error = load(&env).await.expect_err("a parameter the store lacks");
    assert!(matches!(&error, ConfigError::ParameterMissing(name) if *name == missing), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&missing), "{message}");
    assert!(!message.contains("present-token-value"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_short_api_token_an_empty_parameter_and_a_broken_accounts_file_are_refused_without_their_values() -> anyhow::Result<()> {
    let short = environment(&[("API_TOKEN", "short-token".into())]);
    let error = load(&short).await.expect_err("a token under 24 characters");
    assert!(matches!(&error, ConfigError::WeakToken { .. }), "{error:?}");
    assert!(!format!("{error:?}").contains("short-token"), "{error:?}");
    let name = format!("/closeloop-test-{}/blank", std::process::id());
    put_secret(&name, "   ").await?;
    let error = load(&environment(&[("SESSION_SECRET_PARAMETER", name.clone())])).await.expect_err("an empty parameter");
    assert!(matches!(&error, ConfigError::ParameterEmpty(n) if *n == name), "{error:?}");
    let broken = "[[account]]\nname = \"Ada\"\ntoken_sha256 = \"4bbb2ac8c2b0a3b4f1e1ac1e66d8ed6d4a4a2d3bb1d7e2d4c2e1b0a3f4e5d6c7\"\nemail = ada@example.se\n";
    let error = load(&environment(&[("ACCOUNTS", broken.into())])).await.expect_err("not TOML");
    let shown = format!("{error:?} {error}");
    assert!(shown.contains("line 4"), "{shown}");
    assert!(!shown.contains("4bbb2ac8") && !shown.contains("ada@example.se"), "the file is never quoted: {shown}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_parameter_store_is_an_error_naming_the_parameters() -> anyhow::Result<()> {
    let mut env = environment(&[("API_TOKEN_PARAMETER", "/closeloop/api-token".into())]);
    // Nothing listens on port 9 of loopback.
    env.insert("SSM_ENDPOINT".into(), "http://127.0.0.1:9".into());
    let error = load(&env).await.expect_err("no store to read");
    assert!(matches!(error, ConfigError::ParameterStore { .. }), "{error:?}");
    assert!(error.to_string().contains("/closeloop/api-token"), "{error}");
    assert!(std::error::Error::source(&error).is_some(), "the SDK's error is kept as the source");
    Ok(())
}

#[tokio::test]
async fn without_parameter_names_the_plain_variables_are_read_as_local_runs_set_them() -> anyhow::Result<()> {
    let mut env = environment(&[("API_TOKEN", "plain-local-token-0123456789".into()), ("ACCOUNTS", ACCOUNTS.into())]);
    // No store is asked: an unreachable one changes nothing.
    env.insert("SSM_ENDPOINT".into(), "http://127.0.0.1:9".into());
    let config = load(&env).await?;
    assert_eq!(config.api_token.as_deref(), Some("plain-local-token-0123456789"));
    assert!(!config.accounts.is_empty());
    Ok(())
}
