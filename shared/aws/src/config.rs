//! Settings read from the environment once per cold start: the domain's [`Settings`] and
//! what only the adapters need (table names, endpoints, the bucket, push targets, the
//! token secret).

use std::env;

pub use chat_domain::settings::{
    CallSettings, DEFAULT_CALL_RING_MS, DEFAULT_TURN_CREDENTIAL_TTL_S, PresenceSettings, RateLimit, RateLimits,
    Settings, UploadRules,
};
pub use chat_domain::settings::{
    DEFAULT_ACCESS_TOKEN_TTL_S, DEFAULT_MAX_REACTIONS_PER_MESSAGE, DEFAULT_REFRESH_TOKEN_TTL_S,
    DEFAULT_SYNC_MAX_MESSAGES, DEFAULT_UPLOAD_MAX_BYTES, DEFAULT_UPLOAD_TYPES,
};

#[derive(Debug, Clone, thiserror::Error)]
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
    pub users: String,
    pub rate_limits: String,
}

/// The default limits, with any `RATE_LIMIT_*` variable of the environment instead.
pub fn rate_limits_from_env() -> Result<RateLimits, ConfigError> {
    let d = RateLimits::default();
    Ok(RateLimits {
        sends: rate_limit("RATE_LIMIT_SENDS", d.sends)?,
        connects: rate_limit("RATE_LIMIT_CONNECTS", d.connects)?,
        changes: rate_limit("RATE_LIMIT_CHANGES", d.changes)?,
        reactions: rate_limit("RATE_LIMIT_REACTIONS", d.reactions)?,
        frames: rate_limit("RATE_LIMIT_FRAMES", d.frames)?,
        subscribes: rate_limit("RATE_LIMIT_SUBSCRIBES", d.subscribes)?,
        calls: rate_limit("RATE_LIMIT_CALLS", d.calls)?,
        signals: rate_limit("RATE_LIMIT_SIGNALS", d.signals)?,
        reads: rate_limit("RATE_LIMIT_READS", d.reads)?,
        searches: rate_limit("RATE_LIMIT_SEARCHES", d.searches)?,
        writes: rate_limit("RATE_LIMIT_WRITES", d.writes)?,
        uploads: rate_limit("RATE_LIMIT_UPLOADS", d.uploads)?,
        sign_ins: rate_limit("RATE_LIMIT_SIGN_INS", d.sign_ins)?,
        sign_ups: rate_limit("RATE_LIMIT_SIGN_UPS", d.sign_ups)?,
        refreshes: rate_limit("RATE_LIMIT_REFRESHES", d.refreshes)?,
        refresh_failures: rate_limit("RATE_LIMIT_REFRESH_FAILURES", d.refresh_failures)?,
    })
}

/// How long calls ring and which ICE servers they use: `CALL_RING_SECONDS`, `STUN_URLS`,
/// `TURN_URLS`, `TURN_SECRET`, `TURN_CREDENTIAL_TTL_SECONDS`.
pub fn calls_from_env() -> Result<CallSettings, ConfigError> {
    Ok(CallSettings {
        ring_ms: seconds("CALL_RING_SECONDS", DEFAULT_CALL_RING_MS / 1000)? * 1000,
        stun_urls: list("STUN_URLS"),
        turn_urls: list("TURN_URLS"),
        turn_secret: optional("TURN_SECRET"),
        turn_credential_ttl_s: seconds("TURN_CREDENTIAL_TTL_SECONDS", DEFAULT_TURN_CREDENTIAL_TTL_S)?,
    })
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
    /// Only the functions that sign or check tokens get the key (`TOKEN_SECRET`).
    pub tokens: Option<TokenSettings>,
    /// Base URL of the API Gateway Management API, stage included:
    /// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` in AWS,
    /// `http://127.0.0.1:{port}/{stage}` with the local gateway.
    pub management_endpoint: String,
    pub rate_limits: RateLimits,
    /// Lifetime of access tokens (seconds). Refresh tokens keep a client signed in.
    pub access_token_ttl_s: i64,
    pub refresh_token_ttl_s: i64,
    pub presence: PresenceSettings,
    /// Most messages one `sync` answers with; past it the answer says to page on.
    pub sync_max_messages: usize,
    /// Distinct emoji one message may carry.
    pub max_reactions_per_message: usize,
    /// `PUSH_REACTIONS_TO_AUTHOR=true`: a reaction is pushed to an offline author.
    pub push_reactions_to_author: bool,
    pub calls: CallSettings,
    pub uploads: UploadSettings,
    pub push: PushSettings,
    /// The search index's bucket (`SEARCH_BUCKET`): only the search and indexer functions.
    pub search_bucket: Option<String>,
    pub search_shards: u32,
}

#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub bucket: String,
    pub max_bytes: u64,
    /// Exact content types an upload may declare.
    pub allowed_types: Vec<String>,
}

impl UploadSettings {
    pub fn new(bucket: String) -> Self {
        Self {
            bucket,
            max_bytes: DEFAULT_UPLOAD_MAX_BYTES,
            allowed_types: DEFAULT_UPLOAD_TYPES.split(',').map(str::to_owned).collect(),
        }
    }
}

/// Where pushes go: SNS platform applications per platform (mobile apps), else a topic.
#[derive(Debug, Clone, Default)]
pub struct PushSettings {
    /// `fcm`, `apns`, `apns_sandbox` -> platform application ARN.
    pub platform_applications: std::collections::BTreeMap<String, String>,
    pub topic_arn: Option<String>,
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
                users: required("USERS_TABLE")?,
                rate_limits: required("RATE_LIMITS_TABLE")?,
            },
            tokens: optional("TOKEN_SECRET").map(|secret| TokenSettings {
                secret,
                issuer: optional("TOKEN_ISSUER").unwrap_or_else(|| DEFAULT_TOKEN_ISSUER.into()),
                audience: optional("TOKEN_AUDIENCE").unwrap_or_else(|| DEFAULT_TOKEN_AUDIENCE.into()),
            }),
            management_endpoint: required("MANAGEMENT_ENDPOINT")?,
            rate_limits: rate_limits_from_env()?,
            access_token_ttl_s: seconds("ACCESS_TOKEN_TTL_SECONDS", DEFAULT_ACCESS_TOKEN_TTL_S)?,
            refresh_token_ttl_s: seconds("REFRESH_TOKEN_TTL_SECONDS", DEFAULT_REFRESH_TOKEN_TTL_S)?,
            presence: PresenceSettings {
                window_ms: seconds("PRESENCE_TIMEOUT_SECONDS", 60)? * 1000,
                offline_grace_ms: seconds_or_zero("PRESENCE_OFFLINE_GRACE_SECONDS", 5)? * 1000,
                sweep_passes: seconds("PRESENCE_SWEEP_PASSES", 1)? as u32,
                sweep_pass_interval_ms: seconds("PRESENCE_SWEEP_PASS_INTERVAL_SECONDS", 10)? * 1000,
                shards: seconds("PRESENCE_SHARDS", i64::from(chat_domain::connections::ONLINE_SHARDS))? as u32,
                sweep_runs: seconds("PRESENCE_SWEEP_RUNS", 1)? as u32,
            },
            sync_max_messages: seconds("SYNC_MAX_MESSAGES", DEFAULT_SYNC_MAX_MESSAGES as i64)? as usize,
            max_reactions_per_message: seconds("MAX_REACTIONS_PER_MESSAGE", DEFAULT_MAX_REACTIONS_PER_MESSAGE as i64)?
                as usize,
            push_reactions_to_author: flag("PUSH_REACTIONS_TO_AUTHOR")?,
            calls: calls_from_env()?,
            uploads: UploadSettings {
                bucket: required("UPLOADS_BUCKET")?,
                max_bytes: seconds("UPLOAD_MAX_BYTES", DEFAULT_UPLOAD_MAX_BYTES as i64)? as u64,
                allowed_types: optional("UPLOAD_ALLOWED_TYPES")
                    .unwrap_or_else(|| DEFAULT_UPLOAD_TYPES.into())
                    .split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect(),
            },
            push: PushSettings {
                platform_applications: platform_applications(optional("PUSH_PLATFORM_APPLICATIONS"))?,
                topic_arn: optional("PUSH_TOPIC_ARN"),
            },
            search_bucket: optional("SEARCH_BUCKET"),
            search_shards: seconds("SEARCH_SHARDS", i64::from(chat_domain::settings::DEFAULT_SEARCH_SHARDS))? as u32,
        };
        config.validate()?;
        Ok(config)
    }

    /// What the rules need of this configuration.
    pub fn settings(&self) -> Settings {
        Settings {
            rate_limits: self.rate_limits,
            presence: self.presence,
            sync_max_messages: self.sync_max_messages,
            max_reactions_per_message: self.max_reactions_per_message,
            push_reactions_to_author: self.push_reactions_to_author,
            calls: self.calls.clone(),
            uploads: UploadRules {
                max_bytes: self.uploads.max_bytes,
                allowed_types: self.uploads.allowed_types.clone(),
            },
            access_token_ttl_s: self.access_token_ttl_s,
            refresh_token_ttl_s: self.refresh_token_ttl_s,
            limit_scope: self.tables.rate_limits.clone(),
            search_shards: self.search_shards,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tokens.as_ref().is_some_and(|t| t.secret.len() < MIN_SECRET_BYTES) {
            return Err(ConfigError::Invalid {
                name: "TOKEN_SECRET",
                reason: format!("must be at least {MIN_SECRET_BYTES} bytes"),
            });
        }
        if !self.management_endpoint.starts_with("http://") && !self.management_endpoint.starts_with("https://") {
            return Err(ConfigError::Invalid {
                name: "MANAGEMENT_ENDPOINT",
                reason: "must be an http(s) URL including the stage".into(),
            });
        }
        let presence = self.presence;
        if presence.sweep_runs > chat_domain::presence::MAX_SWEEP_RUNS || presence.sweep_runs > presence.shards {
            return Err(ConfigError::Invalid {
                name: "PRESENCE_SWEEP_RUNS",
                reason: format!(
                    "at most {} (the runs the template schedules) and at most PRESENCE_SHARDS ({})",
                    chat_domain::presence::MAX_SWEEP_RUNS,
                    presence.shards
                ),
            });
        }
        if !self.calls.turn_urls.is_empty() && self.calls.turn_secret.is_none() {
            return Err(ConfigError::Invalid {
                name: "TURN_SECRET",
                reason: "TURN_URLS are set: their credentials are made with this secret".into(),
            });
        }
        Ok(())
    }
}

fn rate_limit(name: &'static str, default: RateLimit) -> Result<RateLimit, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(text) => RateLimit::parse(&text)
            .ok_or(ConfigError::Invalid { name, reason: format!("{text:?} is not COUNT/WINDOW like 5/5s") }),
    }
}

fn seconds(name: &'static str, default: i64) -> Result<i64, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or(ConfigError::Invalid { name, reason: format!("{text:?} is not a positive number of seconds") }),
    }
}

/// `true` or `false` (absent: false).
fn flag(name: &'static str) -> Result<bool, ConfigError> {
    match optional(name).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ConfigError::Invalid { name, reason: format!("{other:?} is neither true nor false") }),
    }
}

/// `fcm=arn:...,apns=arn:...`
fn platform_applications(text: Option<String>) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
    let mut map = std::collections::BTreeMap::new();
    for pair in text.iter().flat_map(|t| t.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        let (platform, arn) = pair.split_once('=').ok_or(ConfigError::Invalid {
            name: "PUSH_PLATFORM_APPLICATIONS",
            reason: format!("{pair:?} is not PLATFORM=ARN"),
        })?;
        if !matches!(platform, "fcm" | "apns" | "apns_sandbox") {
            return Err(ConfigError::Invalid {
                name: "PUSH_PLATFORM_APPLICATIONS",
                reason: format!("unknown platform {platform:?} (fcm, apns, apns_sandbox)"),
            });
        }
        map.insert(platform.to_owned(), arn.to_owned());
    }
    Ok(map)
}

fn seconds_or_zero(name: &'static str, default: i64) -> Result<i64, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or(ConfigError::Invalid { name, reason: format!("{text:?} is not a number of seconds") }),
    }
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

/// A comma-separated list (empty when unset).
fn list(name: &'static str) -> Vec<String> {
    optional(name)
        .map(|text| text.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect())
        .unwrap_or_default()
}

fn optional(name: &'static str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}
