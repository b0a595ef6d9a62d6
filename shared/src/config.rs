//! Settings read from the environment once per cold start.

use std::env;

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

/// At most `count` requests per `window_ms`, per user (a fixed window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub window_ms: i64,
}

impl RateLimit {
    /// Parses `5/5s`, `20/60s`, `100/500ms`.
    pub fn parse(text: &str) -> Option<Self> {
        let (count, window) = text.trim().split_once('/')?;
        let count: u32 = count.trim().parse().ok().filter(|c| *c > 0)?;
        let window = window.trim();
        let window_ms = if let Some(ms) = window.strip_suffix("ms") {
            ms.parse::<i64>().ok()?
        } else if let Some(s) = window.strip_suffix('s') {
            s.parse::<i64>().ok()? * 1000
        } else if let Some(m) = window.strip_suffix('m') {
            m.parse::<i64>().ok()? * 60_000
        } else {
            return None;
        };
        (window_ms > 0).then_some(Self { count, window_ms })
    }
}

/// A limit for every action (see `crate::limits` for which are counted where).
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// `sendMessage` per user. Default 5 per 5 s, as Discord does.
    pub sends: RateLimit,
    /// WebSocket connection attempts per user. Default 20 per minute.
    pub connects: RateLimit,
    /// `editMessage` and `deleteMessage` per user (each fans out to every member).
    pub changes: RateLimit,
    /// `typing`, `markRead`, `heartbeat`, `getPresence`, `sync`: cheap frames, per user.
    pub frames: RateLimit,
    /// HTTP reads (channel list, history, details, invitations, blocks) per user.
    pub reads: RateLimit,
    /// HTTP changes (groups, members, invitations, blocks, mute, devices, sign-out) per user.
    pub writes: RateLimit,
    /// Upload grants per user.
    pub uploads: RateLimit,
    /// Sign-in attempts per account and per source address (each also alone, looser).
    pub sign_ins: RateLimit,
    /// Sign-ups per source address.
    pub sign_ups: RateLimit,
    /// Refreshes per source address (every signed-in device refreshes about hourly, and an
    /// office shares one address).
    pub refreshes: RateLimit,
}

impl RateLimits {
    /// The same limit for every action (tests).
    pub const fn uniform(limit: RateLimit) -> Self {
        Self {
            sends: limit,
            connects: limit,
            changes: limit,
            frames: limit,
            reads: limit,
            writes: limit,
            uploads: limit,
            sign_ins: limit,
            sign_ups: limit,
            refreshes: limit,
        }
    }
}

impl RateLimits {
    /// The defaults, with any `RATE_LIMIT_*` variable of the environment instead.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = RateLimits::default();
        Ok(RateLimits {
            sends: rate_limit("RATE_LIMIT_SENDS", d.sends)?,
            connects: rate_limit("RATE_LIMIT_CONNECTS", d.connects)?,
            changes: rate_limit("RATE_LIMIT_CHANGES", d.changes)?,
            frames: rate_limit("RATE_LIMIT_FRAMES", d.frames)?,
            reads: rate_limit("RATE_LIMIT_READS", d.reads)?,
            writes: rate_limit("RATE_LIMIT_WRITES", d.writes)?,
            uploads: rate_limit("RATE_LIMIT_UPLOADS", d.uploads)?,
            sign_ins: rate_limit("RATE_LIMIT_SIGN_INS", d.sign_ins)?,
            sign_ups: rate_limit("RATE_LIMIT_SIGN_UPS", d.sign_ups)?,
            refreshes: rate_limit("RATE_LIMIT_REFRESHES", d.refreshes)?,
        })
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            sends: RateLimit { count: 5, window_ms: 5_000 },
            connects: RateLimit { count: 20, window_ms: 60_000 },
            changes: RateLimit { count: 10, window_ms: 10_000 },
            frames: RateLimit { count: 20, window_ms: 10_000 },
            reads: RateLimit { count: 60, window_ms: 60_000 },
            writes: RateLimit { count: 30, window_ms: 60_000 },
            uploads: RateLimit { count: 30, window_ms: 60 * 60_000 },
            sign_ins: RateLimit { count: 10, window_ms: 5 * 60_000 },
            sign_ups: RateLimit { count: 20, window_ms: 60 * 60_000 },
            refreshes: RateLimit { count: 600, window_ms: 60 * 60_000 },
        }
    }
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
    pub uploads: UploadSettings,
    pub push: PushSettings,
}

#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub bucket: String,
    pub max_bytes: u64,
    /// Exact content types an upload may declare.
    pub allowed_types: Vec<String>,
}

pub const DEFAULT_UPLOAD_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_UPLOAD_TYPES: &str =
    "image/jpeg,image/png,image/gif,image/webp,application/pdf,text/plain,video/mp4,audio/mpeg";

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

#[derive(Debug, Clone, Copy)]
pub struct PresenceSettings {
    /// A user with no heartbeat for this long is offline (clients beat every ~30 s).
    pub window_ms: i64,
    /// After the last device disconnects, contacts hear "offline" this much later, so a
    /// reconnect within it is not announced at all.
    pub offline_grace_ms: i64,
    /// Passes one sweep invocation makes, `pass_interval_ms` apart: EventBridge schedules
    /// run at most once a minute, the passes narrow the delay to the interval.
    pub sweep_passes: u32,
    pub sweep_pass_interval_ms: i64,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self { window_ms: 60_000, offline_grace_ms: 5_000, sweep_passes: 1, sweep_pass_interval_ms: 10_000 }
    }
}

pub const DEFAULT_SYNC_MAX_MESSAGES: usize = 500;

pub const DEFAULT_ACCESS_TOKEN_TTL_S: i64 = 60 * 60;
pub const DEFAULT_REFRESH_TOKEN_TTL_S: i64 = 30 * 24 * 60 * 60;

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
            rate_limits: RateLimits::from_env()?,
            access_token_ttl_s: seconds("ACCESS_TOKEN_TTL_SECONDS", DEFAULT_ACCESS_TOKEN_TTL_S)?,
            refresh_token_ttl_s: seconds("REFRESH_TOKEN_TTL_SECONDS", DEFAULT_REFRESH_TOKEN_TTL_S)?,
            presence: PresenceSettings {
                window_ms: seconds("PRESENCE_TIMEOUT_SECONDS", 60)? * 1000,
                offline_grace_ms: seconds_or_zero("PRESENCE_OFFLINE_GRACE_SECONDS", 5)? * 1000,
                sweep_passes: seconds("PRESENCE_SWEEP_PASSES", 1)? as u32,
                sweep_pass_interval_ms: seconds("PRESENCE_SWEEP_PASS_INTERVAL_SECONDS", 10)? * 1000,
            },
            sync_max_messages: seconds("SYNC_MAX_MESSAGES", DEFAULT_SYNC_MAX_MESSAGES as i64)? as usize,
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
        };
        config.validate()?;
        Ok(config)
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

fn optional(name: &'static str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse_from_count_and_window() {
        assert_eq!(RateLimit::parse("5/5s"), Some(RateLimit { count: 5, window_ms: 5_000 }));
        assert_eq!(RateLimit::parse("20/1m"), Some(RateLimit { count: 20, window_ms: 60_000 }));
        assert_eq!(RateLimit::parse("3/250ms"), Some(RateLimit { count: 3, window_ms: 250 }));
        assert_eq!(RateLimit::parse("0/5s"), None);
        assert_eq!(RateLimit::parse("5"), None);
        assert_eq!(RateLimit::parse("5/5h"), None);
    }
}
