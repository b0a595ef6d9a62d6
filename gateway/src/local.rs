//! Settings for running the functions on this machine: tables named after the template's
//! logical ids with a prefix, the Management API served by this gateway.

use chat_shared::config::{
    Config, DEFAULT_ACCESS_TOKEN_TTL_S, DEFAULT_REFRESH_TOKEN_TTL_S, DEFAULT_SYNC_MAX_MESSAGES, DEFAULT_TOKEN_AUDIENCE,
    DEFAULT_TOKEN_ISSUER, PresenceSettings, PushSettings, RateLimits, TableNames, TokenSettings, UploadSettings,
};

/// Logical ids of the template's tables.
pub const MESSAGES_TABLE: &str = "MessagesTable";
pub const CHANNELS_TABLE: &str = "ChannelsTable";
pub const PRESENCE_TABLE: &str = "PresenceTable";
pub const USERS_TABLE: &str = "UsersTable";
pub const RATE_LIMITS_TABLE: &str = "RateLimitsTable";

/// Logical id of the template's push topic.
pub const PUSH_TOPIC: &str = "PushTopic";

/// Logical id of the template's upload bucket; locally the bucket is `{prefix}uploadsbucket`.
pub const UPLOADS_BUCKET: &str = "UploadsBucket";

pub fn uploads_bucket(prefix: &str) -> String {
    format!("{prefix}{UPLOADS_BUCKET}").to_lowercase()
}

pub fn table_names(prefix: &str) -> TableNames {
    TableNames {
        messages: format!("{prefix}{MESSAGES_TABLE}"),
        channels: format!("{prefix}{CHANNELS_TABLE}"),
        presence: format!("{prefix}{PRESENCE_TABLE}"),
        users: format!("{prefix}{USERS_TABLE}"),
        rate_limits: format!("{prefix}{RATE_LIMITS_TABLE}"),
    }
}

pub fn config(table_prefix: &str, token_secret: &str, management_endpoint: String) -> Config {
    Config {
        tables: table_names(table_prefix),
        tokens: TokenSettings {
            secret: token_secret.to_owned(),
            issuer: DEFAULT_TOKEN_ISSUER.into(),
            audience: DEFAULT_TOKEN_AUDIENCE.into(),
        },
        management_endpoint,
        rate_limits: RateLimits::default(),
        access_token_ttl_s: DEFAULT_ACCESS_TOKEN_TTL_S,
        refresh_token_ttl_s: DEFAULT_REFRESH_TOKEN_TTL_S,
        presence: PresenceSettings::default(),
        sync_max_messages: DEFAULT_SYNC_MAX_MESSAGES,
        uploads: UploadSettings::new(uploads_bucket(table_prefix)),
        push: PushSettings::default(),
    }
}
