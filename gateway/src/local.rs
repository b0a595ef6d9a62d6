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

/// Logical id of the template's search index bucket; locally `{prefix}searchindexbucket`.
pub const SEARCH_INDEX_BUCKET: &str = "SearchIndexBucket";

pub fn search_bucket(prefix: &str) -> String {
    format!("{prefix}{SEARCH_INDEX_BUCKET}").to_lowercase()
}

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
        search_bucket: Some(search_bucket(table_prefix)),
        search_shards: chat_domain::settings::DEFAULT_SEARCH_SHARDS,
    }
}

/// The functions of one local stack as Lambda would run them: each with its own `App`
/// (its template environment, credentials naming its role), every AWS request through the
/// [`AwsProxy`] that holds it to its policy, and Lambda's limits with its `Timeout`.
pub struct LocalFunctions {
    pub apps: FunctionApps,
    /// Each function's AWS configuration: its role's credentials, through the IAM proxy.
    /// What Lambda does with a function's role (reading its stream, its on-failure
    /// destination) is signed with these.
    pub sdks: BTreeMap<Function, SdkConfig>,
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
    #[error("the search index: {0}")]
    Search(String),
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
        let mut sdks = BTreeMap::new();
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
            let environment = template.function_environment(logical_id);
            if !environment.contains_key("SEARCH_BUCKET") {
                own.search_bucket = None;
            }
            let mut app = chat_aws::wire::app(&own, &own_sdk, clock.clone(), counter.clone());
            if own.search_bucket.is_some() {
                app = chat_search::open(app).map_err(|e| LocalError::Search(e.to_string()))?;
            }
            apps.insert(function, Arc::new(app));
            sdks.insert(function, own_sdk);
            limits.timeouts.insert(function, Duration::from_secs(template.function_timeout_s(logical_id)));
        }
        Ok(Self { apps: FunctionApps::per_function(apps, admin), sdks, limits, iam, _proxy: proxy })
    }

    /// The template's stream event source mappings, each reading its stream with its
    /// function's role and invoking it through `invoker`. `admin`: the account's view (to
    /// find the stream); `topics`: logical id -> ARN of the template's topics.
    pub fn stream_mappings(
        &self,
        template: &Template,
        prefix: &str,
        invoker: Arc<dyn crate::invoke::Invoke>,
        admin: &SdkConfig,
        topics: &BTreeMap<String, String>,
    ) -> Vec<crate::streams::StreamMapping> {
        let mut mappings = Vec::new();
        for source in template.stream_sources() {
            let Some(function) = Function::ALL.into_iter().find(|f| f.logical_id() == source.function) else {
                tracing::warn!(function = %source.function, "a stream mapping of a function the gateway does not run");
                continue;
            };
            let Some(sdk) = self.sdks.get(&function) else { continue };
            let on_failure = source
                .on_failure
                .as_ref()
                .and_then(|topic| topics.get(topic))
                .map(|arn| (aws_sdk_sns::Client::new(sdk), arn.clone()));
            mappings.push(crate::streams::StreamMapping {
                function,
                table: format!("{prefix}{}", source.table),
                source,
                streams: aws_sdk_dynamodbstreams::Client::new(sdk),
                admin: aws_sdk_dynamodb::Client::new(admin),
                on_failure,
                invoker: invoker.clone(),
            });
        }
        mappings
    }

    /// The gateway's invoker for these functions.
    pub fn invoker(&self) -> InProcess {
        InProcess::with(self.apps.clone(), self.limits.clone())
    }
}
