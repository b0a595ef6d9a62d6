//! `bench`: runs the benchmarks and prints their figures. See docs/BENCHMARKS.md.
//!
//! ```sh
//! nice -n 10 cargo build --release --workspace
//! target/release/bench                      # requests, latency, cpu, coldstart
//! target/release/bench load --clients 40 --channels 10 --messages 10 --interval-ms 8000
//! target/release/bench abuse                # attacks: invitation, typing and sign-in floods
//! target/debug/bench scale                  # the brief's scale on paper (docs/SCALE.md)
//! target/measure/bench sockets --sockets 10000  # the gateway's memory per idle socket
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bench::report::{self, Section};
use bench::stats::Summary;
use bench::world::World;
use clap::{Parser, ValueEnum};
use e2e::live::{LoadSpec, run_load};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Part {
    Requests,
    Latency,
    Cpu,
    Coldstart,
    Load,
    Abuse,
    Scale,
    /// The send path, before and now: requests, units, and a burst into one group.
    SendPath,
    /// Reactions, replies, mentions, and a device catching up on a channel's changes.
    Changes,
    /// Lazy presence: a change of a user with 1,000 contacts, 10 watching; a subscription.
    Presence,
    /// Calls: set-up (ring, answer, first signal), ending, declined, missed, pushed.
    Calls,
    /// Search: indexing rate, index size and query latency on a generated corpus; how soon
    /// a message is found on the local stack.
    Search,
    /// The local gateway's memory per idle authenticated socket (a gateway process of its own).
    Sockets,
}

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of the chat backend on the local stack (moto + local gateway)")]
struct Args {
    /// What to run (default: requests latency cpu coldstart; load, abuse, scale, send-path, changes, presence and calls run only when named).
    parts: Vec<Part>,
    /// Fewer messages and runs: a smoke test of the benchmarks, not figures to keep.
    #[arg(long)]
    quick: bool,
    /// Where the results go (sections run now replace the same sections in the file).
    #[arg(long, default_value = "bench/results/latest.json")]
    out: PathBuf,
    /// The latency plot.
    #[arg(long, default_value = "bench/results/latency.svg")]
    plot: PathBuf,
    /// Where the function binaries are (default: beside this binary).
    #[arg(long)]
    binaries: Option<PathBuf>,
    /// Processes started per function binary.
    #[arg(long, default_value_t = 5)]
    coldstart_runs: usize,
    /// Runs per operation in the CPU benchmark.
    #[arg(long, default_value_t = 2000)]
    cpu_iterations: usize,
    /// Send path: members of one group sending at the same instant.
    #[arg(long, default_value_t = 100)]
    burst_senders: usize,
    /// Load: devices.
    #[arg(long, default_value_t = 40)]
    clients: usize,
    /// Load: group channels (each device is in two).
    #[arg(long, default_value_t = 10)]
    channels: usize,
    /// Load: messages each device sends.
    #[arg(long, default_value_t = 10)]
    messages: usize,
    /// Load: pause between one device's sends, ms.
    #[arg(long, default_value_t = 8000)]
    interval_ms: u64,
    /// Search: messages in the generated corpus.
    #[arg(long, default_value_t = 1_000_000)]
    search_messages: usize,
    /// Sockets: idle WebSockets held open at once (with --quick: 500).
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Sockets: handshakes in flight at once.
    #[arg(long, default_value_t = 32)]
    socket_concurrency: usize,
    /// Scale: the traffic model.
    #[arg(long, default_value = "bench/scale/model.json")]
    model: PathBuf,
    /// Scale: where the whole result goes.
    #[arg(long, default_value = "bench/scale/results.json")]
    scale_out: PathBuf,
    /// Scale: the plot of demand over quota by size.
    #[arg(long, default_value = "bench/scale/quotas.svg")]
    scale_plot: PathBuf,
    /// Scale: the load run's measured AWS requests (the honesty check's fixture).
    #[arg(long, default_value = "bench/scale/load-measured.json")]
    load_fixture: PathBuf,
    /// Scale: first run the load (--clients, --channels, --messages, --interval-ms) against
    /// moto and record its AWS requests in --load-fixture.
    #[arg(long)]
    measure_load: bool,
}

fn progress(message: &str) {
    eprintln!("== {message}");
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
        info.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
    });
    let profile = if cfg!(debug_assertions) { "dev (debug)" } else { "release" };
    json!({"cpus": cpus, "cpu_model": model, "os": std::env::consts::OS, "bench_profile": profile})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let mut parts = args.parts.clone();
    if parts.is_empty() {
        parts = vec![Part::Requests, Part::Latency, Part::Cpu, Part::Coldstart];
    }
    parts.sort();
    parts.dedup();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build of bench; figures of record come from target/release/bench");
    }
    let now = std::process::Command::new("date").arg("-u").arg("+%Y-%m-%dT%H:%M:%SZ").output().ok();
    let generated_at = now.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
    let commit = git_commit();
    let mut sections = BTreeMap::new();
    let mut section = |name: &str, table: String, data: Value| {
        println!("\n## {name}\n\n{table}");
        sections.insert(
            name.to_owned(),
            Section {
                command: command.clone(),
                generated_at: generated_at.clone(),
                git_commit: commit.clone(),
                table,
                data,
            },
        );
    };
    println!("$ {command}");

    for part in parts {
        match part {
            Part::Requests => {
                progress("requests per operation");
                let rows = bench::requests::run().await;
                section("requests", report::requests_table(&rows), json!(rows));
            }
            Part::Latency => {
                let results = bench::latency::run(args.quick, &progress).await;
                if let Err(err) = report::plot_latency(&args.plot, &results) {
                    eprintln!("warning: no plot: {err}");
                }
                section("latency", report::latency_table(&results), json!(results));
            }
            Part::Cpu => {
                progress("cpu: recording against moto");
                let (_world, recorded) = bench::cpu::record_all().await;
                progress("cpu: replaying");
                let iterations = if args.quick { args.cpu_iterations.div_ceil(10) } else { args.cpu_iterations };
                let results = bench::cpu::measure(Arc::new(recorded), iterations);
                section("cpu", report::cpu_table(&results), json!(results));
            }
            Part::Coldstart => {
                let dir = args.binaries.clone().unwrap_or_else(|| {
                    std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)).unwrap_or_default()
                });
                let runs = if args.quick { 2 } else { args.coldstart_runs };
                let results = bench::coldstart::run(&dir, runs, &progress).await;
                section("coldstart", report::coldstart_table(&results), json!({"binaries": dir, "results": results}));
            }
            Part::Scale => {
                let options = bench::scale::Options {
                    model: args.model.clone(),
                    latest: args.out.clone(),
                    out: args.scale_out.clone(),
                    plot: args.scale_plot.clone(),
                    fixture: args.load_fixture.clone(),
                    measure_load: args.measure_load.then(|| LoadSpec {
                        clients: args.clients,
                        channels: args.channels,
                        messages_per_client: args.messages,
                        send_interval: Duration::from_millis(args.interval_ms),
                        patience: Duration::from_secs(60),
                    }),
                    command: command.clone(),
                    generated_at: generated_at.clone(),
                    git_commit: commit.clone(),
                };
                let (table, data) = bench::scale::section(&options, &progress).await;
                section("scale", table, data);
            }
            Part::Presence => {
                progress("presence: 1,000 contacts, 10 watching");
                let rows = bench::presence::run().await;
                section("presence", report::requests_table(&rows), json!(rows));
            }
            Part::Calls => {
                progress("calls: set-up, ending, declined, missed, pushed");
                let rows = bench::calls::run().await;
                section("calls", report::requests_table(&rows), json!(rows));
            }
            Part::Search => {
                let messages = if args.quick { 20_000 } else { args.search_messages };
                progress(&format!("search: indexing {messages} messages"));
                let corpus = bench::search::corpus(messages, &progress).await;
                progress("search: on the local stack");
                let on_stack = bench::search::on_the_stack(if args.quick { 5 } else { 40 }, &corpus).await;
                section(
                    "search",
                    bench::search::table(&corpus.figures, &on_stack),
                    json!({"corpus": corpus.figures, "stack": on_stack}),
                );
            }
            Part::Sockets => {
                let sockets = if args.quick { args.sockets.min(500) } else { args.sockets };
                let options = bench::sockets::Options {
                    sockets,
                    concurrency: args.socket_concurrency,
                    settle: Duration::from_secs(10),
                    binaries: args.binaries.clone().unwrap_or_else(|| {
                        std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)).unwrap_or_default()
                    }),
                };
                let figures = bench::sockets::run(&options, &progress).await;
                section("sockets", bench::sockets::table(&figures), json!(figures));
            }
            Part::Changes => {
                progress("reactions, replies, mentions and catching up on changes");
                let rows = bench::changes::run().await;
                section("changes", report::requests_table(&rows), json!(rows));
            }
            Part::SendPath => {
                let senders = if args.quick { 20 } else { args.burst_senders };
                let mut sends = Vec::new();
                let mut bursts = Vec::new();
                for design in [bench::send_path::Design::Before, bench::send_path::Design::Now] {
                    progress(&format!("send path, {}: single sends", design.label()));
                    sends.extend(bench::send_path::single_sends(design).await);
                    progress(&format!("send path, {}: {senders} senders at once", design.label()));
                    bursts.push(bench::send_path::burst(design, senders).await);
                }
                let table =
                    format!("{}\n\n{}", bench::send_path::sends_table(&sends), bench::send_path::burst_table(&bursts));
                section("send_path", table, json!({"sends": sends, "bursts": bursts}));
            }
            Part::Abuse => {
                let figures = bench::abuse::run(args.quick, &progress).await;
                section("abuse", bench::abuse::table(&figures), json!(figures));
            }
            Part::Load => {
                progress("load");
                let spec = LoadSpec {
                    clients: args.clients,
                    channels: args.channels,
                    messages_per_client: args.messages,
                    send_interval: Duration::from_millis(args.interval_ms),
                    patience: Duration::from_secs(60),
                };
                let world = World::start().await;
                let outcome = run_load(&world.stack, &spec).await;
                let ack = Summary::of(&outcome.ack_ms);
                let delivery = Summary::of(&outcome.delivery_ms);
                let row = |k: &str, v: String| vec![k.to_owned(), v];
                let views = &outcome.views;
                let rows = vec![
                    row(
                        "devices / channels / messages each",
                        format!("{} / {} / {}", spec.clients, spec.channels, spec.messages_per_client),
                    ),
                    row("sent / acked / stored", format!("{} / {} / {}", outcome.sent, outcome.acked, outcome.stored)),
                    row("error frames", format!("{:?}", outcome.errors)),
                    row("unanswered sends", outcome.unanswered.to_string()),
                    row("acked but not in history (lost)", outcome.acked_but_lost.to_string()),
                    row("refused but stored", outcome.refused_but_stored.to_string()),
                    row("live events received", views.events.to_string()),
                    row("missing live events", views.missing_live.to_string()),
                    row(
                        "redelivered / phantom / misordered",
                        format!("{} / {} / {}", views.redelivered, views.phantom, views.misordered),
                    ),
                    row("events that overtook another (reordered by seq)", views.overtaken.to_string()),
                    row(
                        "throughput (messages stored / s)",
                        format!("{:.1}", outcome.stored as f64 / outcome.elapsed_s),
                    ),
                    row(
                        "ack ms p50/p90/p99/max",
                        format!("{:.0} / {:.0} / {:.0} / {:.0}", ack.p50, ack.p90, ack.p99, ack.max),
                    ),
                    row(
                        "delivery ms p50/p90/p99/max",
                        format!(
                            "{:.0} / {:.0} / {:.0} / {:.0}",
                            delivery.p50, delivery.p90, delivery.p99, delivery.max
                        ),
                    ),
                    row("verdict", if outcome.clean() { "clean".into() } else { "PROMISES BROKEN".into() }),
                ];
                let data = json!({"spec": spec, "outcome": outcome, "ack_ms": ack, "delivery_ms": delivery, "clean": outcome.clean()});
                section("load", report::table(&["load", "figure"], &rows), data);
            }
        }
    }
    if let Err(err) = report::merge_into(&args.out, machine(), sections) {
        eprintln!("warning: could not write {}: {err}", args.out.display());
    } else {
        eprintln!("results in {}", args.out.display());
    }
}
