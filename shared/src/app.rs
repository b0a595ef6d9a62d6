//! The clients and settings a function needs, built once per cold start and injected
//! into the handlers (so the local gateway and tests can point them anywhere).

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::auth::TokenKeys;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::metrics::RequestCounter;
use crate::notify::Notifier;
use crate::store::{Blocks, Channels, Invitations, MessageLog, Presence, RateLimiter, Sessions, Users};

pub struct App {
    pub config: Config,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    /// For signing presigned POST uploads (the SDK has no presigned POST).
    pub credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    pub region: Option<String>,
    pub notifier: Notifier,
    /// `None` in functions whose environment has no `TOKEN_SECRET`: see [`App::tokens`].
    tokens: Option<TokenKeys>,
    pub clock: Arc<dyn Clock>,
}

/// Whether the clients talk to an endpoint other than AWS's own (moto, LocalStack).
fn local_endpoint(sdk: &SdkConfig) -> bool {
    sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}

impl App {
    /// For Lambda: settings from the environment, AWS clients from the default chain
    /// (which honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_DYNAMODB`).
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Ok(Self::new(config, &sdk, Arc::new(SystemClock), None))
    }

    /// `counter`, when given, counts every AWS request these clients make.
    pub fn new(config: Config, sdk: &SdkConfig, clock: Arc<dyn Clock>, counter: Option<RequestCounter>) -> Self {
        let mut dynamo = aws_sdk_dynamodb::config::Builder::from(sdk);
        // One slow connection must not stall a whole send: at most one retry, 3 s each.
        let mut management = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(&config.management_endpoint)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(TimeoutConfig::builder().operation_attempt_timeout(Duration::from_secs(3)).build());
        // Path-style addressing works against every local endpoint; AWS still serves it.
        let mut s3 = aws_sdk_s3::config::Builder::from(sdk).force_path_style(local_endpoint(sdk));
        let mut sns = aws_sdk_sns::config::Builder::from(sdk);
        if let Some(counter) = counter {
            dynamo = dynamo.interceptor(counter.clone());
            s3 = s3.interceptor(counter.clone());
            sns = sns.interceptor(counter.clone());
            management = management.interceptor(counter);
        }
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            sns: aws_sdk_sns::Client::from_conf(sns.build()),
            credentials: sdk.credentials_provider(),
            region: sdk.region().map(|r| r.to_string()),
            tokens: config.tokens.as_ref().map(TokenKeys::new),
            dynamo: aws_sdk_dynamodb::Client::from_conf(dynamo.build()),
            notifier: Notifier::new(aws_sdk_apigatewaymanagement::Client::from_conf(management.build())),
            config,
            clock,
        }
    }

    /// The token keys, in the functions that are given the signing secret.
    pub fn tokens(&self) -> Result<&TokenKeys, ConfigError> {
        self.tokens.as_ref().ok_or(ConfigError::Missing("TOKEN_SECRET"))
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn channels(&self) -> Channels<'_> {
        Channels::new(&self.dynamo, &self.config.tables.channels)
    }

    pub fn messages(&self) -> MessageLog<'_> {
        MessageLog::new(&self.dynamo, &self.config.tables.messages, &self.config.tables.channels)
    }

    pub fn presence(&self) -> Presence<'_> {
        Presence::new(&self.dynamo, &self.config.tables.presence)
    }

    pub fn invitations(&self) -> Invitations<'_> {
        Invitations::new(&self.dynamo, &self.config.tables.channels)
    }

    pub fn blocks(&self) -> Blocks<'_> {
        Blocks::new(&self.dynamo, &self.config.tables.channels)
    }

    pub fn sessions(&self) -> Sessions<'_> {
        Sessions::new(&self.dynamo, &self.config.tables.users)
    }

    pub fn users(&self) -> Users<'_> {
        Users::new(&self.dynamo, &self.config.tables.users)
    }

    pub fn rate_limiter(&self) -> RateLimiter<'_> {
        RateLimiter::new(&self.dynamo, &self.config.tables.rate_limits)
    }
}
