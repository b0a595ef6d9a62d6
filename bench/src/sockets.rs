//! The local gateway's memory per idle socket (issue 16): moto, and `local-gateway serve`
//! as a process of its own (the binary beside this one, so built with the same profile);
//! N authenticated WebSockets opened with bounded concurrency and left idle; the gateway's
//! resident set (`VmRSS`, and its peak `VmHWM`, from `/proc/<pid>/status`) before any
//! socket, after a warm-up of a few sockets opened and closed, and after all N are open.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chat_aws::tokens::TokenKeys;
use chat_domain::model::UserId;
use e2e::{Client, ConnectError};
use futures::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::report;
use crate::stats::Summary;

/// A user holds at most this many open connections (chat_domain's limit).
pub const SOCKETS_PER_USER: usize = chat_domain::presence::MAX_CONNECTIONS_PER_USER;

pub struct Options {
    /// Sockets held open at once.
    pub sockets: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Pause after the last socket opened, before the resident set is read.
    pub settle: Duration,
    /// Where `local-gateway` is.
    pub binaries: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub sockets: usize,
    pub users: usize,
    pub concurrency: usize,
    /// `chat_open_connections` of the gateway's `/metrics` when the resident set was read.
    pub open_at_gateway: usize,
    /// Handshakes refused or failed (each retried, at most 3 times).
    pub failed_handshakes: usize,
    pub connect_seconds: f64,
    pub connects_per_second: f64,
    pub handshake_ms: Summary,
    /// The gateway's resident set before any socket (tables created, functions started).
    pub rss_start_kib: u64,
    /// After a warm-up: `concurrency` sockets opened and closed, their `$disconnect` done.
    pub rss_warm_kib: u64,
    /// With all sockets open and idle.
    pub rss_open_kib: u64,
    /// The peak resident set over the whole run.
    pub hwm_open_kib: u64,
    /// (open − start) / sockets: what the issue's figure is.
    pub kib_per_socket: f64,
    /// (open − warm) / sockets: without what the first connections set up once.
    pub kib_per_socket_after_warm_up: f64,
    pub gateway_threads: u64,
    pub gateway_binary: PathBuf,
    pub gateway_log: PathBuf,
}

/// The gateway as a child process, killed when dropped (and when this process dies).
struct Gateway {
    child: tokio::process::Child,
    pid: u32,
    websocket_url: String,
    http_url: String,
}

impl Gateway {
    async fn start(binary: &Path, moto: &str, prefix: &str, secret: &str, log: &Path) -> Self {
        let log_file = std::fs::File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let mut command = tokio::process::Command::new(binary);
        let root = e2e::repo_root();
        command
            .args(["serve", "--create-tables", "--listen", "127.0.0.1:0", "--stage", "local"])
            .arg("--template")
            .arg(root.join("template.yaml"))
            // No web client: nothing but the APIs.
            .arg("--web-dir")
            .arg(root.join("target/no-web-client"))
            .env("TOKEN_SECRET", secret)
            .env("TABLE_PREFIX", prefix)
            .env("AWS_ENDPOINT_URL", moto)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true);
        // Gone with this process, however it ends.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it with the bench: cargo build -p bench -p local-gateway)",
                binary.display()
            )
        });
        let pid = child.id().expect("a running child");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut websocket_url = None;
        let mut http_url = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        while websocket_url.is_none() || http_url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                _ => panic!("the gateway did not start within 120 s; see {}", log.display()),
            };
            let value = |prefix: &str| line.strip_prefix(prefix).map(|rest| rest.trim().to_owned());
            websocket_url = websocket_url.or_else(|| value("WebSocket API:"));
            http_url = http_url.or_else(|| value("HTTP API:"));
        }
        // Whatever else it prints, read so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, pid, websocket_url: websocket_url.unwrap(), http_url: http_url.unwrap() }
    }

    /// (VmRSS, VmHWM, Threads) of the gateway process, KiB.
    fn status(&self) -> (u64, u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"), field("Threads:"))
    }

    async fn open_connections(&self, http: &reqwest::Client) -> usize {
        let text = match http.get(format!("{}/metrics", self.http_url)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        local_gateway::observe::Summary::from_text(&text).open_connections as usize
    }

    /// Waits until the gateway holds `count` sockets (closed ones' `$disconnect` included
    /// in the wait: the count drops when the socket does), at most 60 s.
    async fn wait_for_open(&self, http: &reqwest::Client, count: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let open = self.open_connections(http).await;
            if open == count || Instant::now() > deadline {
                return open;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Lets this process hold as many descriptors as its hard limit allows (the gateway, its
/// child, inherits the limit).
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// One socket of `user`, retried (a fresh token each time) up to 3 times; the client, how
/// long its successful handshake took and how many attempts failed.
async fn open(url: &str, keys: &TokenKeys, user: &UserId) -> (Option<Client>, f64, usize) {
    let mut failed = 0;
    for attempt in 0..3 {
        let now_s = chat_domain::clock::Clock::now_ms(&chat_domain::clock::SystemClock) / 1000;
        let query = format!("token={}", keys.issue(user, now_s, 4 * 60 * 60));
        let started = Instant::now();
        match Client::connect(url, &query).await {
            Ok(client) => return (Some(client), started.elapsed().as_secs_f64() * 1000.0, failed),
            Err(err) => {
                failed += 1;
                if failed == 1 {
                    let why = match err {
                        ConnectError::Refused(status) => format!("refused with {status}"),
                        ConnectError::Other(err) => err,
                    };
                    eprintln!("   a handshake of {user} failed ({why}); trying again");
                }
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
    (None, 0.0, failed)
}

/// Opens `count` sockets of users `{prefix}00000`… (10 each), `concurrency` handshakes at a
/// time, reporting every 1,000.
async fn open_all(
    url: &str,
    keys: &TokenKeys,
    prefix: &str,
    count: usize,
    concurrency: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> (Vec<Client>, Vec<f64>, usize) {
    let started = Instant::now();
    let mut clients = Vec::with_capacity(count);
    let mut handshakes = Vec::with_capacity(count);
    let mut failed = 0;
    let mut attempts = futures::stream::iter(0..count)
        .map(|i| async move {
            let user = UserId::parse(format!("{prefix}{:05}", i / SOCKETS_PER_USER)).expect("a valid user id");
            open(url, keys, &user).await
        })
        .buffer_unordered(concurrency.max(1));
    let mut done = 0;
    while let Some((client, ms, failures)) = attempts.next().await {
        done += 1;
        failed += failures;
        if let Some(client) = client {
            clients.push(client);
            handshakes.push(ms);
        }
        if done % 1000 == 0 && count > 1000 {
            let seconds = started.elapsed().as_secs_f64();
            progress(&format!(
                "sockets: {} open ({done} tried, {failed} failed handshakes) in {seconds:.0} s, {:.1}/s",
                clients.len(),
                done as f64 / seconds
            ));
        }
    }
    (clients, handshakes, failed)
}

pub async fn run(options: &Options, progress: &(dyn Fn(&str) + Sync)) -> Figures {
    let descriptors = raise_descriptor_limit();
    if (descriptors as usize) < options.sockets + 256 {
        eprintln!("warning: {descriptors} file descriptors per process; {} sockets need more", options.sockets);
    }
    let binary = options.binaries.join("local-gateway");
    let moto = tokio::task::spawn_blocking(e2e::moto::endpoint).await.expect("moto starts");
    let run_id = format!("{:08x}", rand::random::<u32>());
    let prefix = format!("s{run_id}-");
    let secret = format!("bench-sockets-only-signing-key-{run_id}-0123456789");
    let log = std::env::temp_dir().join(format!("bench-sockets-gateway-{run_id}.log"));
    progress(&format!("sockets: starting {} (its log: {})", binary.display(), log.display()));
    let gateway = Gateway::start(&binary, moto, &prefix, &secret, &log).await;
    let http = reqwest::Client::new();
    let config = local_gateway::local::config(&prefix, &secret, "http://unused".into());
    let keys = TokenKeys::new(config.tokens.as_ref().expect("local config has the secret"));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_start_kib, _, _) = gateway.status();

    progress(&format!("sockets: warm-up, {} sockets opened and closed", options.concurrency));
    let (warm, _, _) =
        open_all(&gateway.websocket_url, &keys, "warm", options.concurrency, options.concurrency, progress).await;
    gateway.wait_for_open(&http, warm.len()).await;
    drop(warm);
    gateway.wait_for_open(&http, 0).await;
    tokio::time::sleep(options.settle).await;
    let (rss_warm_kib, _, _) = gateway.status();

    progress(&format!("sockets: opening {} sockets, {} at a time", options.sockets, options.concurrency));
    let started = Instant::now();
    let (clients, handshakes, failed_handshakes) =
        open_all(&gateway.websocket_url, &keys, "idle", options.sockets, options.concurrency, progress).await;
    let connect_seconds = started.elapsed().as_secs_f64();
    progress(&format!("sockets: {} open in {connect_seconds:.0} s; settling {:?}", clients.len(), options.settle));
    tokio::time::sleep(options.settle).await;
    let (rss_open_kib, hwm_open_kib, gateway_threads) = gateway.status();
    let open_at_gateway = gateway.open_connections(&http).await;
    gateway.stop().await;
    drop(clients);

    let sockets = options.sockets;
    let per_socket = |from: u64| (rss_open_kib as f64 - from as f64) / sockets.max(1) as f64;
    Figures {
        sockets,
        users: sockets.div_ceil(SOCKETS_PER_USER),
        concurrency: options.concurrency,
        open_at_gateway,
        failed_handshakes,
        connect_seconds,
        connects_per_second: handshakes.len() as f64 / connect_seconds,
        handshake_ms: Summary::of(&handshakes),
        rss_start_kib,
        rss_warm_kib,
        rss_open_kib,
        hwm_open_kib,
        kib_per_socket: per_socket(rss_start_kib),
        kib_per_socket_after_warm_up: per_socket(rss_warm_kib),
        gateway_threads,
        gateway_binary: binary,
        gateway_log: log,
    }
}

pub fn table(figures: &Figures) -> String {
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    let row = |k: &str, v: String| vec![k.to_owned(), v];
    let h = &figures.handshake_ms;
    let rows = vec![
        row("sockets (users, 10 each)", format!("{} ({})", figures.sockets, figures.users)),
        row("open at the gateway when measured", figures.open_at_gateway.to_string()),
        row("failed handshakes (retried)", figures.failed_handshakes.to_string()),
        row(
            "connect rate (/s), in flight",
            format!(
                "{:.1} over {:.0} s, {}",
                figures.connects_per_second, figures.connect_seconds, figures.concurrency
            ),
        ),
        row("handshake ms p50/p90/p99/max", format!("{:.0} / {:.0} / {:.0} / {:.0}", h.p50, h.p90, h.p99, h.max)),
        row("gateway RSS MiB: start / after warm-up / all open", {
            format!("{} / {} / {}", mib(figures.rss_start_kib), mib(figures.rss_warm_kib), mib(figures.rss_open_kib))
        }),
        row("gateway peak RSS (VmHWM) MiB", mib(figures.hwm_open_kib)),
        row("KB per idle socket: (open - start) / sockets", format!("{:.2}", figures.kib_per_socket)),
        row("KB per idle socket: (open - warm-up) / sockets", format!("{:.2}", figures.kib_per_socket_after_warm_up)),
        row("gateway threads", figures.gateway_threads.to_string()),
    ];
    report::table(&["idle sockets", "figure"], &rows)
}
