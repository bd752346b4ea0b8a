//! Settings, read once at start from flags and environment.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Where personal links point: the address respondents reach the survey pages at.
    pub public_url: String,
    /// Bearer token for the CRM API; without it the API answers 401.
    pub api_token: Option<String>,
}

pub const DEFAULT_PORT: u16 = 8787;
pub const DEFAULT_DATA_DIR: &str = ".closeloop";

impl Settings {
    pub fn new(data_dir: Option<PathBuf>, public_url: Option<String>, port: u16) -> Self {
        Self {
            data_dir: data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            public_url: public_url.unwrap_or_else(|| format!("http://127.0.0.1:{port}")),
            api_token: std::env::var("CLOSELOOP_API_TOKEN").ok().filter(|t| !t.trim().is_empty()),
        }
    }
}
