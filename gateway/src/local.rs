//! Settings for running the functions on this machine: tables named after the template's
//! logical ids with a prefix, the Management API served by this gateway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use chat_aws::metrics::RequestCounter;
use chat_domain::App;
use chat_domain::clock::Clock;

use crate::aws_proxy::AwsProxy;
use crate::iam::{Iam, access_key_of};
use crate::invoke::{FunctionApps, InProcess, LambdaLimits};
use crate::routes::Function;
use crate::template::{LocalNames, Template, TemplateError};
use chat_aws::config::{
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
        tokens: Some(TokenSettings {
            secret: token_secret.to_owned(),
            issuer: DEFAULT_TOKEN_ISSUER.into(),
            audience: DEFAULT_TOKEN_AUDIENCE.into(),
        }),
        management_endpoint,
        rate_limits: RateLimits::default(),
        access_token_ttl_s: DEFAULT_ACCESS_TOKEN_TTL_S,
        refresh_token_ttl_s: DEFAULT_REFRESH_TOKEN_TTL_S,
        presence: PresenceSettings::default(),
        sync_max_messages: DEFAULT_SYNC_MAX_MESSAGES,
        max_reactions_per_message: chat_domain::settings::DEFAULT_MAX_REACTIONS_PER_MESSAGE,
        push_reactions_to_author: false,
        calls: Default::default(),
        uploads: UploadSettings::new(uploads_bucket(table_prefix)),
        push: PushSettings::default(),
    }
}

/// The functions of one local stack as Lambda would run them: each with its own `App`
/// (its template environment, credentials naming its role), every AWS request through the
/// [`AwsProxy`] that holds it to its policy, and Lambda's limits with its `Timeout`.
pub struct LocalFunctions {
    pub apps: FunctionApps,
    pub limits: LambdaLimits,
    /// `None` when the functions talk to AWS itself (which enforces IAM on its own).
    pub iam: Option<Iam>,
    _proxy: Option<AwsProxy>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("the AWS proxy could not start: {0}")]
    Proxy(#[from] std::io::Error),
}

impl LocalFunctions {
    /// `config`: the settings every function shares (each gets only the secrets its
    /// template environment names); `sdk`: the local AWS endpoint (moto, or a fault proxy
    /// in front of it). `admin` runs any function the template does not declare.
    pub async fn start(
        template: &Template,
        names: &LocalNames,
        config: &Config,
        sdk: &SdkConfig,
        clock: Arc<dyn Clock>,
        counter: Option<RequestCounter>,
        admin: Arc<App>,
    ) -> Result<Self, LocalError> {
        let (iam, proxy) = match sdk.endpoint_url() {
            Some(upstream) => {
                let iam = Iam::new(template.function_policies(names)?);
                let proxy = AwsProxy::start(upstream, iam.clone()).await?;
                (Some(iam), Some(proxy))
            }
            None => (None, None),
        };
        let mut apps = BTreeMap::new();
        let mut limits = LambdaLimits::default();
        for function in Function::ALL {
            let logical_id = function.logical_id();
            let mut own = config.clone();
            if !template.function_environment(logical_id).contains_key("TOKEN_SECRET") {
                own.tokens = None;
            }
            let own_sdk = match &proxy {
                Some(proxy) => {
                    let credentials =
                        Credentials::new(access_key_of(logical_id), "local-only", None, None, "local-iam");
                    sdk.to_builder()
                        .endpoint_url(proxy.url())
                        .credentials_provider(SharedCredentialsProvider::new(credentials))
                        .build()
                }
                None => sdk.clone(),
            };
            apps.insert(function, Arc::new(chat_aws::wire::app(&own, &own_sdk, clock.clone(), counter.clone())));
            limits.timeouts.insert(function, Duration::from_secs(template.function_timeout_s(logical_id)));
        }
        Ok(Self { apps: FunctionApps::per_function(apps, admin), limits, iam, _proxy: proxy })
    }

    /// The gateway's invoker for these functions.
    pub fn invoker(&self) -> InProcess {
        InProcess::with(self.apps.clone(), self.limits.clone())
    }
}
