//! Wiring: the AWS adapters plugged into the domain's ports, once per cold start. The
//! local gateway and the tests call [`app`] with their own endpoints, clock and request
//! counter; Lambda calls [`from_env`].

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use chat_domain::App;
use chat_domain::app::Ports;
use chat_domain::clock::{Clock, SystemClock};

use crate::config::{Config, ConfigError};
use crate::lazy::LazyClient;
use crate::metrics::RequestCounter;
use crate::notify::Notifier;
use crate::s3::S3Files;
use crate::search_files::S3IndexFiles;
use crate::sns::SnsPush;
use crate::store::{
    Blocks, Calls, Channels, Invitations, MessageLog, Presence, RateCounters, Reactions, Sessions, Subscriptions, Users,
};
use crate::tokens::TokenKeys;
use crate::xray::XrayCalls;

/// Whether the clients talk to an endpoint other than AWS's own (moto, LocalStack).
fn local_endpoint(sdk: &SdkConfig) -> bool {
    sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}

/// For Lambda: settings from the environment, AWS clients from the default configuration (which
/// honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_DYNAMODB`).
pub async fn from_env() -> Result<App, ConfigError> {
    let config = Config::from_env()?;
    let loader = aws_config::defaults(BehaviorVersion::latest());
    // Lambda hands the role's credentials over in the environment: taking them from there
    // skips building the rest of the default chain (its IMDS and container clients, and the
    // TLS roots they load) at every cold start.
    let loader = if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    };
    let sdk = loader.load().await;
    Ok(app(&config, &sdk, Arc::new(SystemClock), None))
}

/// The domain's app over AWS. `counter`, when given, counts every AWS request it makes.
/// Building a client makes no request: a function that never pushes never calls SNS.
pub fn app(config: &Config, sdk: &SdkConfig, clock: Arc<dyn Clock>, counter: Option<RequestCounter>) -> App {
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
    // In Lambda with active tracing: a subsegment per AWS call.
    if let Some(xray) = XrayCalls::from_env() {
        dynamo = dynamo.interceptor(xray.clone());
        s3 = s3.interceptor(xray.clone());
        sns = sns.interceptor(xray.clone());
        management = management.interceptor(xray);
    }
    // Each client is built when a request first needs it (see `crate::lazy`).
    let (dynamo, management, s3, sns) = (dynamo.build(), management.build(), s3.build(), sns.build());
    let dynamo = LazyClient::new(move || aws_sdk_dynamodb::Client::from_conf(dynamo.clone()));
    let management = LazyClient::new(move || aws_sdk_apigatewaymanagement::Client::from_conf(management.clone()));
    let s3 = LazyClient::new(move || aws_sdk_s3::Client::from_conf(s3.clone()));
    let sns = LazyClient::new(move || aws_sdk_sns::Client::from_conf(sns.clone()));
    let tables = &config.tables;
    let ports = Ports {
        channels: Arc::new(Channels::new(dynamo.clone(), &tables.channels)),
        messages: Arc::new(MessageLog::new(dynamo.clone(), &tables.messages, &tables.channels)),
        reactions: Arc::new(Reactions::new(dynamo.clone(), &tables.messages)),
        presence: Arc::new(Presence::new(dynamo.clone(), &tables.presence)),
        subscriptions: Arc::new(Subscriptions::new(dynamo.clone(), &tables.presence)),
        calls: Arc::new(Calls::new(dynamo.clone(), &tables.presence)),
        invitations: Arc::new(Invitations::new(dynamo.clone(), &tables.channels)),
        blocks: Arc::new(Blocks::new(dynamo.clone(), &tables.channels)),
        users: Arc::new(Users::new(dynamo.clone(), &tables.users)),
        sessions: Arc::new(Sessions::new(dynamo.clone(), &tables.users)),
        counters: Arc::new(RateCounters::new(dynamo.clone(), &tables.rate_limits)),
        poster: Arc::new(Notifier::new(management)),
        push: Arc::new(SnsPush::new(sns, config.push.clone())),
        index_files: config.search_bucket.as_ref().map(|bucket| {
            Arc::new(S3IndexFiles::new(s3.clone(), bucket.clone(), dynamo.clone(), tables.channels.clone()))
                as Arc<dyn chat_domain::ports::IndexFiles>
        }),
        media: Arc::new(S3Files::new(
            s3,
            config.uploads.bucket.clone(),
            sdk.credentials_provider(),
            sdk.region().map(|r| r.to_string()),
        )),
        tokens: config
            .tokens
            .as_ref()
            .map(|settings| Arc::new(TokenKeys::new(settings)) as Arc<dyn chat_domain::ports::Tokens>),
        // The search and indexer functions add theirs (crate chat-search): no other
        // function links the index library.
        search: None,
    };
    App::new(config.settings(), clock, ports)
}
