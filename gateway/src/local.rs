//! Settings for running the functions on this machine: tables named after the template's
//! logical ids with a prefix, the Management API served by this gateway.

use chat_shared::config::{
    Config, DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_ISSUER, TableNames, TokenSettings,
};

/// Logical ids of the template's tables.
pub const MESSAGES_TABLE: &str = "MessagesTable";
pub const CHANNELS_TABLE: &str = "ChannelsTable";
pub const PRESENCE_TABLE: &str = "PresenceTable";

pub fn table_names(prefix: &str) -> TableNames {
    TableNames {
        messages: format!("{prefix}{MESSAGES_TABLE}"),
        channels: format!("{prefix}{CHANNELS_TABLE}"),
        presence: format!("{prefix}{PRESENCE_TABLE}"),
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
    }
}
