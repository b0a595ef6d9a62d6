//! Cold start of each function binary as shipped (the release profile): its size, its
//! zipped size (the Lambda deployment package: one file, `bootstrap`), the time from
//! process start until it asks the Lambda Runtime API for its first event, how long that
//! first event then takes (against moto and the local gateway), and its peak memory.
//! The Runtime API is a tiny fake served here on 127.0.0.1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use crate::lambda_events as ev;
use crate::stats::Summary;
use crate::world::World;

/// The manifest of each crate in `functions/`, in name order.
fn function_manifests(repo: &Path) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(repo.join("functions")) else { return Vec::new() };
    let mut manifests: Vec<PathBuf> =
        dirs.filter_map(|d| Some(d.ok()?.path().join("Cargo.toml"))).filter(|m| m.is_file()).collect();
    manifests.sort();
    manifests
}

/// The values of `key = "…"` in a Cargo manifest, each with the section it is in
/// (`[package]`, `[[bin]]`, …). Enough for the flat manifests of this workspace.
fn manifest_values(manifest: &str, key: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut values = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_owned();
        } else if let Some((k, value)) = line.split_once('=')
            && k.trim() == key
        {
            values.push((section.clone(), value.trim().trim_matches('"').to_owned()));
        }
    }
    values
}

/// Every function binary of `functions/*`: the `[[bin]]` names of each crate, or the
/// package name when it declares none.
pub fn function_binaries(repo: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for manifest in function_manifests(repo) {
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let (mut package, mut bins) = (None, Vec::new());
        for (section, value) in manifest_values(&text, "name") {
            match section.as_str() {
                "[package]" => package = Some(value),
                "[[bin]]" => bins.push(value),
                _ => {}
            }
        }
        if bins.is_empty() {
            names.extend(package);
        } else {
            names.extend(bins);
        }
    }
    names
}

#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    pub function: String,
    pub size_bytes: u64,
    pub zipped_bytes: u64,
    pub runs: usize,
    /// Process start to the first `GET /runtime/invocation/next`.
    pub to_first_request_ms: Summary,
    /// That request's event to its response (real AWS calls to moto included).
    pub first_invocation_ms: Summary,
    /// Largest resident set over the runs (init plus the first event), from VmHWM.
    pub peak_rss_kib: u64,
    /// `response`, `error: …`, or why it never asked for an event.
    pub outcome: String,
}

/// The deployment package's size: `bootstrap`, deflated, executable.
pub fn zipped_size(binary: &Path) -> std::io::Result<u64> {
    let bytes = std::fs::read(binary)?;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options).map_err(std::io::Error::other)?;
    zip.write_all(&bytes)?;
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner().len() as u64)
}

/// What the fake Runtime API saw of one process.
#[derive(Default)]
struct Seen {
    first_next: Option<Instant>,
    answered: Option<(Instant, String)>,
    asked_again: bool,
}

struct RuntimeApi {
    event: Value,
    function: String,
    seen: Mutex<Seen>,
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    let first = {
        let mut seen = api.seen.lock().unwrap();
        if seen.first_next.is_none() {
            seen.first_next = Some(Instant::now());
            true
        } else {
            seen.asked_again = true;
            false
        }
    };
    if !first {
        // The process is done with its first event; it waits here until it is stopped.
        std::future::pending::<()>().await;
    }
    let mut headers = HeaderMap::new();
    let deadline = ev::now_ms() + 60_000;
    let arn = format!("arn:aws:lambda:us-east-1:000000000000:function:{}", api.function);
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_static("bench-request-1"));
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from_str(&deadline.to_string()).unwrap());
    headers.insert("lambda-runtime-invoked-function-arn", HeaderValue::from_str(&arn).unwrap());
    headers.insert("lambda-runtime-trace-id", HeaderValue::from_static("Root=1-00000000-000000000000000000000000"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, api.event.to_string()).into_response()
}

fn record(api: &RuntimeApi, outcome: String) -> Response {
    api.seen.lock().unwrap().answered.get_or_insert((Instant::now(), outcome));
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

async fn response(State(api): State<Arc<RuntimeApi>>, body: String) -> Response {
    record(&api, format!("response: {}", brief(&body)))
}

/// `200 ack`, `403 forbidden`, `allow`: what a function's answer says, in a word or two.
fn brief(answer: &str) -> String {
    let Ok(answer) = serde_json::from_str::<Value>(answer) else { return answer.chars().take(40).collect() };
    if let Some(effect) = answer.pointer("/policyDocument/Statement/0/Effect").and_then(Value::as_str) {
        return effect.to_lowercase();
    }
    let status = answer["statusCode"].as_u64().map(|s| s.to_string()).unwrap_or_default();
    let body: Value = answer["body"].as_str().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    let word = body["type"].as_str().or(body["code"].as_str()).unwrap_or_default();
    if status.is_empty() {
        // Not an API Gateway answer (the presence sweep's report, say): its start.
        return answer.to_string().chars().take(40).collect();
    }
    format!("{status} {word}").trim().to_owned()
}

async fn error(State(api): State<Arc<RuntimeApi>>, body: String) -> Response {
    record(&api, format!("error: {}", body.chars().take(200).collect::<String>()))
}

async fn init_error(State(api): State<Arc<RuntimeApi>>, body: String) -> Response {
    record(&api, format!("init error: {}", body.chars().take(200).collect::<String>()))
}

/// One process: (to first request, first invocation, peak RSS KiB, outcome).
struct Run {
    to_first_request: Option<Duration>,
    first_invocation: Option<Duration>,
    peak_rss_kib: u64,
    outcome: String,
}

async fn run_once(binary: &Path, function: &str, env: &[(String, String)], event: Value) -> Run {
    let api = Arc::new(RuntimeApi { event, function: function.to_owned(), seen: Mutex::default() });
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let log = std::env::temp_dir().join(format!("bench-coldstart-{function}.log"));
    let log_file = std::fs::File::create(&log).expect("a log file");
    let started = Instant::now();
    let child = Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(err) => {
            server.abort();
            return Run {
                to_first_request: None,
                first_invocation: None,
                peak_rss_kib: 0,
                outcome: format!("cannot start: {err}"),
            };
        }
    };
    let pid = child.id() as libc::pid_t;
    let deadline = started + Duration::from_secs(30);
    let mut exited = None;
    loop {
        if api.seen.lock().unwrap().asked_again || Instant::now() > deadline {
            break;
        }
        // Reaped here if it ended on its own (a failed init).
        let mut status = 0;
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The peak of this process's own memory (VmHWM). Not the rusage of wait4: Linux
    // folds the memory of the forked-but-not-yet-exec'd child (this whole benchmark) into
    // that figure.
    let peak_rss_kib = vm_hwm_kib(pid);
    let status = match exited {
        Some(status) => status,
        None => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            status
        }
    };
    drop(child);
    server.abort();
    let seen = std::mem::take(&mut *api.seen.lock().unwrap());
    let to_first_request = seen.first_next.map(|t| t - started);
    let first_invocation = match (seen.first_next, &seen.answered) {
        (Some(asked), Some((answered, _))) => Some(*answered - asked),
        _ => None,
    };
    let outcome = match (&seen.answered, exited) {
        (Some((_, outcome)), _) => outcome.clone(),
        (None, Some(_)) => {
            let tail: String = std::fs::read_to_string(&log).unwrap_or_default().chars().rev().take(300).collect();
            format!("exited ({status}) before answering: {}", tail.chars().rev().collect::<String>())
        }
        (None, None) => "no answer within 30 s".into(),
    };
    Run { to_first_request, first_invocation, peak_rss_kib: peak_rss_kib.unwrap_or(0), outcome }
}

/// `VmHWM` (peak resident set) of a live process, in KiB.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The event each function gets first: the kind of request it serves, against real
/// tables (a channel `cold-dm` of `cold-a` and `cold-b` exists).
fn first_event(function: &str, world: &World, run: usize) -> Value {
    let unique = format!("{run}{:08x}", rand::random::<u32>());
    match function {
        "connect" => ev::connect_event("cold-a", &format!("C0ld{unique}=")),
        "disconnect" => ev::disconnect_event("cold-a", &format!("C0ld{unique}=")),
        "send" => ev::send_event("cold-a", "cold-dm", &format!("cold-{unique}")),
        "history" => ev::history_event("cold-b", "cold-dm", "50"),
        "channels" => {
            ev::http_event("GET", "GET /channels/{channelId}", &[("channelId", "cold-dm")], &[], None, Some("cold-a"))
        }
        "auth" => {
            let body = json!({"username": format!("cold{unique}"), "password": "correct horse battery staple"});
            ev::http_event("POST", "POST /auth/signup", &[], &[], Some(&body.to_string()), None)
        }
        "authorizer" => ev::authorizer_event(&world.stack.token("cold-a")),
        "presence" => ev::scheduled_event("PresenceSweep"),
        // No index published yet: the search answers from empty shards, the indexer has an
        // empty batch (its work per record is `bench search`'s).
        "search" => ev::http_event("GET", "GET /search", &[], &[("q", "hello")], None, Some("cold-a")),
        "indexer" => json!({"Records": []}),
        _ => json!({}),
    }
}

/// The environment a function gets in Lambda (template.yaml), pointed at this world.
fn environment(world: &World) -> Vec<(String, String)> {
    let config = &world.stack.config;
    let tables = &config.tables;
    let mut env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", e2e::moto::endpoint()),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("MESSAGES_TABLE", &tables.messages),
        ("CHANNELS_TABLE", &tables.channels),
        ("PRESENCE_TABLE", &tables.presence),
        ("USERS_TABLE", &tables.users),
        ("RATE_LIMITS_TABLE", &tables.rate_limits),
        ("TOKEN_SECRET", &config.tokens.as_ref().expect("the local config has a secret").secret),
        ("MANAGEMENT_ENDPOINT", &config.management_endpoint),
        ("UPLOADS_BUCKET", "bench-uploads"),
        ("SEARCH_BUCKET", "bench-search"),
        ("RUST_LOG", "info"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Ok(path) = std::env::var("PATH") {
        env.push(("PATH".into(), path));
    }
    env
}

/// The floor the functions are measured against: `bench/hello-lambda`, a `lambda_runtime`
/// function that does nothing, built like them (same profile, same command).
pub const BASELINE: &str = "hello_lambda";

/// Measures every function binary found in `binaries`, `runs` processes each, beside the
/// [`BASELINE`] when it is there too. The runs go round the binaries (the baseline, then each
/// function, then the baseline again), so a slow minute of a shared machine falls on all
/// of them alike and the ratios to the baseline hold better than the times.
pub async fn run(binaries: &Path, runs: usize, progress: &dyn Fn(&str)) -> Vec<ColdStart> {
    let world = World::start().await;
    world.stack.create_channel("cold-dm", &["cold-a", "cold-b"]).await;
    let env = environment(&world);
    let baseline = binaries.join(BASELINE).exists().then(|| BASELINE.to_owned());
    let mut measured = Vec::new();
    let mut results = Vec::new();
    for function in baseline.into_iter().chain(function_binaries(&e2e::repo_root())) {
        let binary = binaries.join(&function);
        match std::fs::metadata(&binary) {
            Ok(meta) => measured.push((function, binary, meta.len(), Samples::default())),
            Err(_) => results.push(ColdStart {
                function,
                size_bytes: 0,
                zipped_bytes: 0,
                runs: 0,
                to_first_request_ms: Summary::default(),
                first_invocation_ms: Summary::default(),
                peak_rss_kib: 0,
                outcome: format!("not built: {}", binary.display()),
            }),
        }
    }
    for run in 0..runs {
        progress(&format!("cold start: round {} of {runs} over {} binaries", run + 1, measured.len()));
        for (function, binary, _, samples) in &mut measured {
            let result = run_once(binary, function, &env, first_event(function, &world, run)).await;
            samples.add(result);
        }
    }
    let mut measured: Vec<ColdStart> = measured
        .into_iter()
        .map(|(function, binary, size_bytes, samples)| ColdStart {
            function,
            size_bytes,
            zipped_bytes: zipped_size(&binary).unwrap_or(0),
            runs,
            to_first_request_ms: Summary::of(&samples.to_first),
            first_invocation_ms: Summary::of(&samples.first_invocation),
            peak_rss_kib: samples.peak,
            outcome: samples.outcome,
        })
        .collect();
    measured.append(&mut results);
    measured
}

/// One binary's runs so far.
#[derive(Default)]
struct Samples {
    to_first: Vec<f64>,
    first_invocation: Vec<f64>,
    peak: u64,
    outcome: String,
}

impl Samples {
    fn add(&mut self, run: Run) {
        self.to_first.extend(run.to_first_request.map(|d| d.as_secs_f64() * 1e3));
        self.first_invocation.extend(run.first_invocation.map(|d| d.as_secs_f64() * 1e3));
        self.peak = self.peak.max(run.peak_rss_kib);
        // The first answer, unless a later run failed: a failure is what the table shows.
        if self.outcome.is_empty() || !run.outcome.starts_with("response") {
            self.outcome = run.outcome;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the cold-start figures rest on: every function's release binary is linked
    /// without PIE (`functions/link_without_pie.rs`), and so is the baseline it is
    /// measured against. A function added without the build script would start ~0.5 ms
    /// slower and nothing else would say so.
    #[test]
    fn every_function_and_the_baseline_link_without_pie() {
        let repo = e2e::repo_root();
        let mut manifests = function_manifests(&repo);
        assert!(manifests.len() > 8, "every function found: {manifests:?}");
        manifests.push(repo.join("bench/hello-lambda/Cargo.toml"));
        let script = repo.join("functions/link_without_pie.rs").canonicalize().unwrap();
        for manifest in manifests {
            let text = std::fs::read_to_string(&manifest).expect("a manifest");
            let build = manifest_values(&text, "build").into_iter().find(|(section, _)| section == "[package]");
            let (_, path) = build.unwrap_or_else(|| panic!("{} has no build script", manifest.display()));
            let found = manifest.parent().unwrap().join(path).canonicalize().expect("the build script exists");
            assert_eq!(found, script, "{}", manifest.display());
        }
    }
}
