//! `local-gateway`: runs the chat backend on this machine against any AWS endpoint
//! (moto, LocalStack or AWS itself, through `AWS_ENDPOINT_URL`), plus small tools to
//! make tokens and channels for trying it out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chat_domain::clock::{Clock, SystemClock};
use chat_domain::model::{ChannelId, ChannelKind, MemberRole, UserId};
use clap::{Parser, Subcommand};
use local_gateway::local::LocalFunctions;
use local_gateway::template::{LOCAL_WEBSOCKET_API_ID, LocalNames, Template};
use local_gateway::{GatewayOptions, local, web_client};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// HS256 key for access tokens (at least 32 bytes).
    #[arg(long, env = "TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// Local tables are `{prefix}{LogicalId}` of the template's tables.
    #[arg(long, env = "TABLE_PREFIX", default_value = "chat-")]
    table_prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the WebSocket API, the HTTP API and the Management API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "local")]
        stage: String,
        /// Create the template's tables first (existing ones are kept).
        #[arg(long)]
        create_tables: bool,
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// Serve the web client's static files from here at `/app/` (when the directory exists).
        #[arg(long, default_value = "web/public")]
        web_dir: PathBuf,
        /// How often scheduled functions (the presence sweep) run.
        #[arg(long, default_value_t = 5)]
        schedule_every_seconds: u64,
        /// Where pushes for offline users go (default: the template's topic, with
        /// --create-tables).
        #[arg(long, env = "PUSH_TOPIC_ARN")]
        push_topic_arn: Option<String>,
    },
    /// Permissions template.yaml grants that no run exercised: reads the grants the local
    /// IAM recorded in `--usage-dir` (`AWS_RULES_USAGE_DIR` while the tests ran). Fails
    /// when one is neither used nor justified under the function's
    /// `Metadata: UnexercisedPermissions`.
    IamReport {
        #[arg(long, env = "AWS_RULES_USAGE_DIR")]
        usage_dir: PathBuf,
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
    },
    /// Create the template's tables and exit.
    CreateTables {
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
    },
    /// Print an access token for a user.
    Token {
        user: String,
        #[arg(long, default_value_t = 24 * 60 * 60)]
        ttl_seconds: i64,
    },
    /// A short live summary of a running gateway's `/metrics`, every few seconds.
    Stats {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, default_value_t = 5)]
        every_seconds: u64,
        /// Print one summary and exit.
        #[arg(long)]
        once: bool,
    },
    /// Create a channel with members (the first one owns it).
    CreateChannel {
        channel: String,
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<String>,
        /// A group name; without it the channel is a direct one (exactly two members).
        #[arg(long)]
        group: Option<String>,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    chat_aws::telemetry::init_local();
    let cli = Cli::parse();
    if let Command::IamReport { usage_dir, template } = &cli.command {
        // Reads files only: no AWS configuration (and no lookups of it) needed.
        let report = local_gateway::iam::UsageReport::read(&Template::load(template)?, usage_dir)?;
        print!("{report}");
        std::process::exit(if report.is_clean() { 0 } else { 1 });
    }
    if let Command::Stats { url, every_seconds, once } = &cli.command {
        // Reads the gateway's /metrics only: no AWS configuration needed either.
        let http = reqwest::Client::new();
        let mut previous: Option<local_gateway::observe::Summary> = None;
        loop {
            let text = http.get(format!("{}/metrics", url.trim_end_matches('/'))).send().await?.text().await?;
            let summary = local_gateway::observe::Summary::from_text(&text);
            println!("{}", summary.line(previous.as_ref()));
            if *once {
                return Ok(());
            }
            previous = Some(summary);
            tokio::time::sleep(std::time::Duration::from_secs(*every_seconds)).await;
        }
    }
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    match cli.command {
        Command::Serve { listen, stage, create_tables, template, web_dir, schedule_every_seconds, push_topic_arn } => {
            let mut topics = BTreeMap::new();
            if create_tables {
                topics = create(&sdk, &template, &cli.table_prefix).await?;
            }
            let topic = push_topic_arn.or_else(|| topics.get(local::PUSH_TOPIC).cloned());
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let addr = listener.local_addr()?;
            let mut config = local::config(
                &cli.table_prefix,
                secret(cli.token_secret.as_deref())?,
                local_gateway::management_endpoint(addr, &stage),
            );
            config.push.topic_arn = topic;
            // As the functions read them in Lambda: defaults, or `RATE_LIMIT_*` variables.
            config.rate_limits = chat_aws::config::rate_limits_from_env()?;
            config.calls = chat_aws::config::calls_from_env()?;
            config.validate()?;
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let admin = Arc::new(chat_aws::wire::app(&config, &sdk, clock.clone(), None));
            // Each function with its own role and environment, held to template.yaml's IAM.
            let names = LocalNames {
                prefix: cli.table_prefix.clone(),
                stage: stage.clone(),
                websocket_api_id: LOCAL_WEBSOCKET_API_ID.into(),
            };
            let template = Template::load(&template)?;
            let functions = LocalFunctions::start(&template, &names, &config, &sdk, clock, None, admin).await?;
            let options =
                GatewayOptions { stage: stage.clone(), iam: functions.iam.clone(), ..GatewayOptions::default() };
            // `/app/` is the web client's; a stage of that name keeps the path for itself.
            let served = (web_dir.is_dir() && stage != "app").then(|| web_dir.clone());
            let invoker: Arc<dyn local_gateway::invoke::Invoke> = Arc::new(functions.invoker());
            let running =
                local_gateway::serve_with_web_client(listener, options, invoker.clone(), served.clone()).await?;
            // The stream event source mappings (the search indexer), as Lambda runs them.
            let _streams = local_gateway::streams::StreamPollers::start(functions.stream_mappings(
                &template,
                &cli.table_prefix,
                invoker,
                &sdk,
                &topics,
            ));
            println!("WebSocket API:  {}", running.websocket_url(&stage));
            println!("HTTP API:       {}", running.http_url());
            println!("Management API: {}", local_gateway::management_endpoint(addr, &stage));
            match served {
                Some(dir) => {
                    println!("Web client:     {}{} ({})", running.http_url(), web_client::MOUNT, dir.display())
                }
                None => println!("Web client:     not served ({} is not a directory)", web_dir.display()),
            }
            // Scheduled functions (the presence sweep) run on a timer here, every few seconds
            // rather than AWS's minute, so that local presence feels immediate.
            let mut ticks = tokio::time::interval(std::time::Duration::from_secs(schedule_every_seconds.max(1)));
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = ticks.tick() => running.run_schedules().await,
                }
            }
            running.shutdown().await;
        }
        Command::CreateTables { template } => {
            create(&sdk, &template, &cli.table_prefix).await?;
        }
        Command::IamReport { .. } | Command::Stats { .. } => unreachable!("answered before AWS is configured"),
        Command::Token { user, ttl_seconds } => {
            let config = local::config(&cli.table_prefix, secret(cli.token_secret.as_deref())?, "http://unused".into());
            config.validate()?;
            let keys = chat_aws::tokens::TokenKeys::new(config.tokens.as_ref().expect("local config has the secret"));
            let now_s = SystemClock.now_ms() / 1000;
            println!("{}", keys.issue(&UserId::parse(user)?, now_s, ttl_seconds));
        }
        Command::CreateChannel { channel, members, group } => {
            let config = local::config(&cli.table_prefix, secret(cli.token_secret.as_deref())?, "http://unused".into());
            let app = chat_aws::wire::app(&config, &sdk, Arc::new(SystemClock), None);
            let members = members
                .into_iter()
                .enumerate()
                .map(|(i, m)| Ok((UserId::parse(m)?, if i == 0 { MemberRole::Owner } else { MemberRole::Member })))
                .collect::<Result<Vec<_>, chat_domain::ChatError>>()?;
            let kind = if group.is_some() { ChannelKind::Group } else { ChannelKind::Direct };
            app.channels()
                .create(&ChannelId::parse(channel.clone())?, kind, group.as_deref(), &members, app.now_ms())
                .await?;
            println!("created channel {channel}");
        }
    }
    Ok(())
}

fn secret(token_secret: Option<&str>) -> Result<&str, &'static str> {
    token_secret.ok_or("TOKEN_SECRET (or --token-secret) is needed for this command")
}

/// Creates the template's tables, buckets and topics; answers the topics' ARNs by logical id.
async fn create(
    sdk: &aws_config::SdkConfig,
    template: &std::path::Path,
    prefix: &str,
) -> Result<BTreeMap<String, String>, Box<dyn std::error::Error>> {
    let template = Template::load(template)?;
    for table in template.create_tables(&aws_sdk_dynamodb::Client::new(sdk), prefix).await? {
        println!("created table {table}");
    }
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build());
    for bucket in template.create_buckets(&s3, prefix).await? {
        println!("created bucket {bucket}");
    }
    Ok(template.create_topics(&aws_sdk_sns::Client::new(sdk), prefix).await?)
}
