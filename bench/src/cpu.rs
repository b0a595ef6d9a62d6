//! Handler cost without I/O: each operation runs once against moto while its AWS answers
//! are recorded, then again and again with those answers replayed in-process
//! ([`Replay`]), so the time measured is our handlers (event parsing, the SDK's request
//! building, signing and parsing, our domain code, response shaping) and nothing else.
//! Recording at run time keeps the replayed answers in step with the current schema.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_domain::clock::SystemClock;
use e2e::live::LiveClient;
use local_gateway::invoke::{InProcess, Invoke};
use local_gateway::routes::Function;
use serde::Serialize;
use serde_json::Value;

use crate::aws_http::Replay;
use crate::lambda_events::{connect_event, history_event, send_event};
use crate::stats::Summary;
use crate::world::{World, users};

/// One operation with its recorded AWS answers, ready to run without I/O.
pub struct Recorded {
    pub name: String,
    pub function: Function,
    pub event: Value,
    pub replay: Replay,
    invoker: InProcess,
    /// AWS calls one run makes (all answered by the replay).
    pub calls_per_run: u64,
}

impl Recorded {
    /// Runs the handler once on the event, with the recorded answers.
    pub async fn run_once(&self) -> Value {
        self.replay.rewind();
        self.invoker.invoke(self.function, self.event.clone()).await.expect("the handler answers")
    }
}

/// Runs `event` once for real (moto, the gateway's Management API) while recording.
async fn record(world: &World, name: &str, function: Function, event: Value, expect: &str) -> Recorded {
    let real = InProcess::new(world.stack.app.clone());
    world.tap.start_recording();
    let answer = real.invoke(function, event.clone()).await.expect("the handler answers");
    let recording = world.tap.stop_recording();
    assert!(answer.to_string().contains(expect), "{name}: expected {expect} in {answer}");
    let calls_per_run = recording.len() as u64;
    let replay = Replay::new(recording);
    let app = chat_aws::wire::app(&world.stack.config, &replay.sdk_config(), Arc::new(SystemClock), None);
    let recorded = Recorded {
        name: name.to_owned(),
        function,
        event,
        replay,
        invoker: InProcess::new(Arc::new(app)),
        calls_per_run,
    };
    // The replayed run must take the same path: same answer shape, same calls.
    let replayed = recorded.run_once().await;
    assert!(replayed.to_string().contains(expect), "{name} replayed: expected {expect} in {replayed}");
    assert_eq!(recorded.replay.calls(), calls_per_run, "{name}: the replay answered a different number of calls");
    recorded
}

/// Records sendMessage (1:1 and a 100-member group, every recipient online), a history
/// page of 50 and `$connect` (a second device).
pub async fn record_all() -> (World, Vec<Recorded>) {
    let world = World::start().await;
    let stack = &world.stack;
    stack.create_channel("cpu-dm", &["cpu-a", "cpu-b"]).await;
    let group = users("cpu", 100);
    let refs: Vec<&str> = group.iter().map(String::as_str).collect();
    stack.create_channel("cpu-group", &refs).await;
    // cpu-a sends from a connection of its own (not in Presence): no device of its own.
    let mut devices = vec![LiveClient::of(stack, "cpu-b").await];
    for user in &group[1..] {
        devices.push(LiveClient::of(stack, user).await);
    }
    // Sixty messages so that a page of 50 is full.
    let real = InProcess::new(stack.app.clone());
    for n in 0..60 {
        real.invoke(Function::Send, send_event("cpu-a", "cpu-dm", &format!("fill-{n}"))).await.expect("stored");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut recorded = Vec::new();
    let dm = send_event("cpu-a", "cpu-dm", "cpu-dm-1");
    recorded.push(record(&world, "sendMessage, 1:1", Function::Send, dm, "\\\"type\\\":\\\"ack\\\"").await);
    let group_send = send_event("cpu000", "cpu-group", "cpu-group-1");
    recorded.push(
        record(&world, "sendMessage, group of 100", Function::Send, group_send, "\\\"type\\\":\\\"ack\\\"").await,
    );
    let page = history_event("cpu-b", "cpu-dm", "50");
    recorded.push(record(&world, "history page of 50", Function::History, page, "nextBefore").await);
    let connect = connect_event("cpu-b", "BenchC0nnect2=");
    recorded.push(record(&world, "$connect (second device)", Function::Connect, connect, "200").await);
    drop(devices);
    (world, recorded)
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuResult {
    pub operation: String,
    pub iterations: usize,
    /// CPU time of the thread that ran the handler, per run.
    pub cpu_us: f64,
    /// Wall time per run (the same thread, nothing else on it).
    pub wall_us: Summary,
    pub aws_calls_replayed: u64,
}

/// CPU time of this thread so far.
fn thread_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // RUSAGE_THREAD: this thread only.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let seconds = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec;
    let micros = usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
    Duration::from_secs(seconds as u64) + Duration::from_micros(micros as u64)
}

/// Runs each recorded operation `iterations` times on one thread (after a warm-up) and
/// answers its CPU and wall time per run.
pub fn measure(recorded: Arc<Vec<Recorded>>, iterations: usize) -> Vec<CpuResult> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            let mut results = Vec::new();
            for op in recorded.iter() {
                for _ in 0..iterations.div_ceil(10) {
                    op.run_once().await;
                }
                let mut wall = Vec::with_capacity(iterations);
                let cpu_before = thread_cpu();
                for _ in 0..iterations {
                    let started = Instant::now();
                    std::hint::black_box(op.run_once().await);
                    wall.push(started.elapsed().as_secs_f64() * 1e6);
                }
                let cpu = thread_cpu() - cpu_before;
                results.push(CpuResult {
                    operation: op.name.clone(),
                    iterations,
                    cpu_us: cpu.as_secs_f64() * 1e6 / iterations as f64,
                    wall_us: Summary::of(&wall),
                    aws_calls_replayed: op.calls_per_run,
                });
            }
            results
        })
    })
    .join()
    .expect("the measuring thread")
}
