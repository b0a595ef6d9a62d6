//! Settings read from the environment once per cold start.

use std::env;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

#[derive(Debug, Clone)]
pub struct TableNames {
    pub messages: String,
    pub channels: String,
    pub presence: String,
}

#[derive(Clone)]
pub struct TokenSettings {
    /// HS256 signing key. Never logged (Debug is hand-written for that reason).
    pub secret: String,
    pub issuer: String,
    pub audience: String,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: TableNames,
    pub tokens: TokenSettings,
    /// Base URL of the API Gateway Management API, stage included:
    /// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` in AWS,
    /// `http://127.0.0.1:{port}/{stage}` with the local gateway.
    pub management_endpoint: String,
}

pub const DEFAULT_TOKEN_ISSUER: &str = "serverless-chat";
pub const DEFAULT_TOKEN_AUDIENCE: &str = "serverless-chat";
/// Shorter keys make HS256 brute-forceable.
pub const MIN_SECRET_BYTES: usize = 32;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Self {
            tables: TableNames {
                messages: required("MESSAGES_TABLE")?,
                channels: required("CHANNELS_TABLE")?,
                presence: required("PRESENCE_TABLE")?,
            },
            tokens: TokenSettings {
                secret: required("TOKEN_SECRET")?,
                issuer: optional("TOKEN_ISSUER").unwrap_or_else(|| DEFAULT_TOKEN_ISSUER.into()),
                audience: optional("TOKEN_AUDIENCE")
                    .unwrap_or_else(|| DEFAULT_TOKEN_AUDIENCE.into()),
            },
            management_endpoint: required("MANAGEMENT_ENDPOINT")?,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tokens.secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "TOKEN_SECRET",
                reason: format!("must be at least {MIN_SECRET_BYTES} bytes"),
            });
        }
        if !self.management_endpoint.starts_with("http://")
            && !self.management_endpoint.starts_with("https://")
        {
            return Err(ConfigError::Invalid {
                name: "MANAGEMENT_ENDPOINT",
                reason: "must be an http(s) URL including the stage".into(),
            });
        }
        Ok(())
    }
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

fn optional(name: &'static str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}
