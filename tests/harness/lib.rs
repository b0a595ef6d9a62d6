//! What the end-to-end tests stand on: a moto server (started once per test binary, or
//! found through `AWS_ENDPOINT_URL`), a local gateway per test on a free port with its
//! own tables, and WebSocket/HTTP clients that speak to it as users would.

pub mod client;
pub mod faults;
pub mod live;
pub mod moto;

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use chat_aws::config::{Config, RateLimit, RateLimits};
use chat_aws::metrics::RequestCounter;
use chat_aws::tokens::TokenKeys;
use chat_domain::App;
use chat_domain::clock::{Clock, ManualClock, SystemClock};
use chat_domain::model::{ChannelId, ChannelKind, MemberRole, UserId};
use local_gateway::invoke::Invoke;
use local_gateway::local::LocalFunctions;
use local_gateway::streams::StreamPollers;
use local_gateway::template::{LOCAL_WEBSOCKET_API_ID, LocalNames, Template};
use local_gateway::{GatewayOptions, Limits, ManagementFaults, RunningGateway, local};
use serde_json::Value;

pub use client::{Client, ConnectError};

pub const STAGE: &str = "test";
const TOKEN_SECRET: &str = "end-to-end-tests-only-signing-key-0123456789";

pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto::endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "e2e"))
        .load()
        .await
}

#[derive(Default)]
pub struct StackOptions {
    /// Drive the functions' clock by hand (message ids, buckets, expiry).
    pub clock: Option<ManualClock>,
    pub limits: Option<Limits>,
    /// Per-user rate limits; tests that are not about them get generous ones.
    pub rate_limits: Option<RateLimits>,
    /// Errors the gateway's Management API answers on purpose (off by default).
    pub faults: Option<ManagementFaults>,
    /// How the gateway calls the functions, given the functions' `App` (default: in-process).
    pub invoker: Option<InvokerFactory>,
    /// The AWS config the functions use (say, through a fault proxy or a timing HTTP client);
    /// the tables are created with the plain one.
    pub sdk: Option<SdkConfig>,
    /// Push through SNS platform applications (made in moto for fcm and apns) instead of
    /// the push topic.
    pub platform_applications: bool,
    /// Presence window, grace and sweep passes (default: the local gateway's).
    pub presence: Option<chat_aws::config::PresenceSettings>,
    /// `PUSH_REACTIONS_TO_AUTHOR=true`.
    pub reaction_pushes: bool,
    /// Ring time and ICE servers of calls (default: 30 s, none).
    pub calls: Option<chat_aws::config::CallSettings>,
    /// Run the template's stream event source mappings (the search indexer). Off by
    /// default: the indexer's requests would land in every test's request counts.
    pub streams: bool,
}

/// Builds the gateway's [`Invoke`] from the stack's functions.
pub type InvokerFactory = Box<dyn FnOnce(&LocalFunctions) -> Arc<dyn Invoke> + Send>;

/// High enough that only the rate-limit tests ever hit a limit.
pub const GENEROUS: RateLimits = RateLimits::uniform(RateLimit { count: 10_000, window_ms: 1_000 });

/// The whole backend for one test: tables of its own in moto, the functions behind a
/// local gateway on a free port.
pub struct Stack {
    pub gateway: RunningGateway,
    /// The account administrator's view (seeding, inspecting); the functions run with
    /// their own roles in `functions`.
    pub app: Arc<App>,
    /// The stack's configuration (table names, endpoints, limits).
    pub config: Config,
    /// The administrator's raw DynamoDB client (counted in `requests`), for seeding and
    /// inspecting tables directly.
    pub dynamo: aws_sdk_dynamodb::Client,
    /// The administrator's S3 client.
    pub s3: aws_sdk_s3::Client,
    pub functions: LocalFunctions,
    /// Every AWS request the functions made (DynamoDB and Management API).
    pub requests: RequestCounter,
    pub tokens: TokenKeys,
    /// The stream event source mappings, when the options asked for them.
    pub streams: Option<StreamPollers>,
    http: reqwest::Client,
}

/// A call AWS would refuse fails the test, even where the code swallows the error (a
/// best-effort file deletion, say), naming the function, the action and the resource.
/// Tests that provoke refusals on purpose take them with [`Stack::take_denials`].
impl Drop for Stack {
    fn drop(&mut self) {
        let denials = self.denials();
        if denials.is_empty() {
            return;
        }
        let list: Vec<String> = denials.iter().map(|d| format!("  {d}")).collect();
        if std::thread::panicking() {
            eprintln!("AWS would also refuse:\n{}", list.join("\n"));
        } else {
            panic!("AWS would refuse {} call(s) this test made:\n{}", denials.len(), list.join("\n"));
        }
    }
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(StackOptions::default()).await
    }

    pub async fn start_with(options: StackOptions) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            chat_aws::telemetry::init_local();
        }
        let sdk = sdk_config().await;
        let prefix = format!("t{:08x}-", rand::random::<u32>());
        let template = Template::load(&repo_root().join("template.yaml")).expect("template.yaml loads");
        template
            .create_tables(&aws_sdk_dynamodb::Client::new(&sdk), &prefix)
            .await
            .expect("tables are created in moto");
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        template.create_buckets(&s3, &prefix).await.expect("buckets are created in moto");
        let sns = aws_sdk_sns::Client::new(&sdk);
        let topics = template.create_topics(&sns, &prefix).await.expect("topics are created in moto");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("free port");
        let addr = listener.local_addr().unwrap();
        let mut config = local::config(&prefix, TOKEN_SECRET, local_gateway::management_endpoint(addr, STAGE));
        config.rate_limits = options.rate_limits.unwrap_or(GENEROUS);
        config.push_reactions_to_author = options.reaction_pushes;
        if let Some(calls) = options.calls {
            config.calls = calls;
        }
        if let Some(presence) = options.presence {
            config.presence = presence;
        }
        config.push.topic_arn = topics.get(local::PUSH_TOPIC).cloned();
        if options.platform_applications {
            for (platform, sns_platform) in [("fcm", "GCM"), ("apns", "APNS")] {
                let application = sns
                    .create_platform_application()
                    .name(format!("{prefix}{platform}"))
                    .platform(sns_platform)
                    .attributes("PlatformCredential", "test-credential")
                    .attributes("PlatformPrincipal", "test-principal")
                    .send()
                    .await
                    .expect("platform application is created in moto");
                config
                    .push
                    .platform_applications
                    .insert(platform.into(), application.platform_application_arn().unwrap().into());
            }
        }
        let clock: Arc<dyn Clock> = match options.clock {
            Some(clock) => Arc::new(clock),
            None => Arc::new(SystemClock),
        };
        let requests = RequestCounter::default();
        let tokens = TokenKeys::new(config.tokens.as_ref().expect("tests configure a token secret"));
        let functions_sdk = options.sdk.unwrap_or(sdk);
        // The harness's own `App` seeds and inspects the stack as the account's administrator.
        let app = Arc::new(chat_aws::wire::app(&config, &functions_sdk, clock.clone(), Some(requests.clone())));
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&functions_sdk).interceptor(requests.clone()).build(),
        );
        let names =
            LocalNames { prefix: prefix.clone(), stage: STAGE.into(), websocket_api_id: LOCAL_WEBSOCKET_API_ID.into() };
        let functions = LocalFunctions::start(
            &template,
            &names,
            &config,
            &functions_sdk,
            clock,
            Some(requests.clone()),
            app.clone(),
        )
        .await
        .expect("the functions start behind the IAM proxy");
        let gateway_options = GatewayOptions {
            stage: STAGE.into(),
            limits: options.limits.unwrap_or_default(),
            faults: options.faults.unwrap_or_default(),
            iam: functions.iam.clone(),
        };
        let invoker: Arc<dyn Invoke> = match options.invoker {
            Some(factory) => factory(&functions),
            None => Arc::new(functions.invoker()),
        };
        let gateway = local_gateway::serve(listener, gateway_options, invoker.clone()).await.expect("gateway starts");
        let streams = options.streams.then(|| {
            StreamPollers::start(functions.stream_mappings(&template, &prefix, invoker, &functions_sdk, &topics))
        });
        Self { gateway, app, config, dynamo, s3, functions, requests, tokens, streams, http: reqwest::Client::new() }
    }

    /// Requests AWS would have refused so far (the functions' IAM, from template.yaml).
    pub fn denials(&self) -> Vec<local_gateway::iam::Denial> {
        self.functions.iam.as_ref().map(|iam| iam.denials()).unwrap_or_default()
    }

    /// [`Stack::denials`], forgotten: for tests that provoke refusals on purpose.
    pub fn take_denials(&self) -> Vec<local_gateway::iam::Denial> {
        self.functions.iam.as_ref().map(|iam| iam.take_denials()).unwrap_or_default()
    }

    pub fn token(&self, user: &str) -> String {
        self.token_valid_for(user, 3600)
    }

    pub fn token_valid_for(&self, user: &str, seconds: i64) -> String {
        let now_s = SystemClock.now_ms() / 1000;
        self.tokens.issue(&UserId::parse(user).unwrap(), now_s, seconds)
    }

    pub fn websocket_url(&self) -> String {
        self.gateway.websocket_url(STAGE)
    }

    /// A device of `user`, connected with a fresh token.
    pub async fn connect(&self, user: &str) -> Client {
        let query = format!("token={}", self.token(user));
        Client::connect(&self.websocket_url(), &query)
            .await
            .unwrap_or_else(|e| panic!("{user} could not connect: {e:?}"))
    }

    /// Creates a channel; the first member owns it. Two members and no name: direct.
    pub async fn create_channel(&self, id: &str, members: &[&str]) {
        let members: Vec<(UserId, MemberRole)> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (UserId::parse(*m).unwrap(), if i == 0 { MemberRole::Owner } else { MemberRole::Member }))
            .collect();
        let kind = if members.len() == 2 { ChannelKind::Direct } else { ChannelKind::Group };
        self.app
            .channels()
            .create(&ChannelId::parse(id).unwrap(), kind, None, &members, self.app.now_ms())
            .await
            .expect("channel is created");
    }

    /// Signs a user up over the HTTP API and answers the session (`accessToken`, …).
    pub async fn sign_up(&self, username: &str, password: &str) -> Value {
        let (status, body) =
            self.post("/auth/signup", None, &serde_json::json!({"username": username, "password": password})).await;
        assert_eq!(status, 201, "sign up of {username}: {body}");
        body
    }

    /// Accounts without the cost of Argon2 (for tests that are not about passwords).
    pub async fn add_users(&self, names: &[&str]) {
        for name in names {
            let record = chat_domain::ports::UserRecord {
                user_id: UserId::parse(*name).unwrap(),
                password_hash: "$argon2id$not-used".into(),
                created_at: 0,
            };
            assert!(self.app.users().create(&record).await.unwrap(), "{name} is a new user");
        }
    }

    /// `user` accepts their invitation to `channel` (HTTP 200 expected).
    pub async fn accept(&self, user: &str, channel: &str) {
        let (status, body) =
            self.post(&format!("/invitations/{channel}/accept"), Some(&self.token(user)), &Value::Null).await;
        assert_eq!(status, 200, "{user} accepts the invitation to {channel}: {body}");
    }

    /// `POST {path}` with a JSON body, as the holder of `token` (if any): (status, JSON body).
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, token, Some(body)).await
    }

    /// `GET {path}` as the holder of `token`: (status, JSON body).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.gateway.http_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("HTTP API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Connects with an access token as a client app would.
    pub async fn connect_with_token(&self, token: &str) -> Client {
        Client::connect(&self.websocket_url(), &format!("token={token}"))
            .await
            .unwrap_or_else(|e| panic!("could not connect: {e:?}"))
    }

    /// `GET /channels/{id}/messages?{query}` as `user`: (status, JSON body).
    pub async fn history(&self, user: &str, channel: &str, query: &str) -> (u16, Value) {
        let url = format!("{}/channels/{channel}/messages?{query}", self.gateway.http_url());
        let response = self.http.get(url).bearer_auth(self.token(user)).send().await.expect("HTTP API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every message of a channel, oldest first, read through the HTTP API as `user`.
    pub async fn full_history(&self, user: &str, channel: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut query = "limit=100".to_owned();
        loop {
            let (status, page) = self.history(user, channel, &query).await;
            assert_eq!(status, 200, "history answered {page}");
            all.extend(page["messages"].as_array().unwrap().iter().cloned());
            match page.get("nextBefore").and_then(Value::as_str) {
                Some(before) => query = format!("limit=100&before={before}"),
                None => break,
            }
        }
        all.reverse();
        all
    }

    /// Waits until the gateway has `count` open sockets and the `$disconnect` of every
    /// socket it closed has returned.
    /// Waits until the functions' AWS requests are all answered and none started for
    /// 200 ms (at most 10 s): what a function still does after its client got an answer (a
    /// send's pushes and big fan-outs once its ack was posted, its metrics line).
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut last = self.requests.total();
        let mut since = tokio::time::Instant::now();
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let now = self.requests.total();
            if now != last || self.requests.in_flight() > 0 {
                last = now;
                since = tokio::time::Instant::now();
            } else if since.elapsed() >= std::time::Duration::from_millis(200) {
                return;
            }
        }
    }

    pub async fn wait_for_open_connections(&self, count: usize) {
        for _ in 0..1000 {
            if self.gateway.open_connections() == count && self.gateway.closing_connections() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!(
            "gateway has {} connections ({} closing), expected {count}",
            self.gateway.open_connections(),
            self.gateway.closing_connections()
        );
    }
}

/// Uploads `bytes` with an upload grant, as a browser would (multipart POST of the
/// grant's fields, then the file); answers the storage's status.
pub async fn upload(grant: &Value, bytes: Vec<u8>) -> u16 {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in grant["fields"].as_object().unwrap() {
        form = form.text(name.clone(), value.as_str().unwrap().to_owned());
    }
    form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name("upload"));
    reqwest::Client::new().post(grant["url"].as_str().unwrap()).multipart(form).send().await.unwrap().status().as_u16()
}
