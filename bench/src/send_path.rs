//! The send path, old design against new in one run ([`crate::legacy_send`] against ours):
//! for a 1:1 send and a send into a 100-member group, the DynamoDB requests, round trips
//! before the first post and capacity units (metered, [`crate::metering`]); and a burst, N
//! members of one group each sending one message at the same instant: how many were stored
//! and refused, whether the seqs are gapless, ack latency, and DynamoDB requests per
//! stored message.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use e2e::live::LiveClient;
use serde::Serialize;
use serde_json::{Value, json};

use crate::legacy_send::{LegacySend, Tables};
use crate::metering::Units;
use crate::requests::rounds_before_first_post;
use crate::stats::Summary;
use crate::world::{World, users};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Design {
    /// Up to d645d3a: a four-item transaction retried while others take the seq.
    Before,
    /// A three-item transaction, or a claimed seq when another send took it.
    Now,
}

impl Design {
    pub fn label(self) -> &'static str {
        match self {
            Design::Before => "before (d645d3a)",
            Design::Now => "now",
        }
    }
}

/// One send, measured.
#[derive(Debug, Clone, Serialize)]
pub struct SendFigures {
    pub design: Design,
    pub case: String,
    pub dynamodb: u64,
    pub by_operation: String,
    pub rounds_before_post: Option<usize>,
    pub units: Units,
}

/// A burst, measured.
#[derive(Debug, Clone, Serialize)]
pub struct BurstFigures {
    pub design: Design,
    pub senders: usize,
    pub stored: usize,
    /// Error frames by code.
    pub refused: BTreeMap<String, usize>,
    pub unanswered: usize,
    /// History holds seqs 1..=stored, each once.
    pub gapless: bool,
    pub ack_ms: Summary,
    pub dynamodb: u64,
    pub dynamodb_per_stored: f64,
}

/// How long functions may run. `Patient`: the burst. One moto serves ~170 requests a
/// second, one at a time, and each send into a 100-member group costs it ~100 ms (its two
/// 100-item reads), so 100 sends at once need ~10 s of moto alone: the functions' 10 s
/// `Timeout` and API Gateway's 29 s would end them for the emulator's slowness, which AWS
/// (thousands of partitions) does not have. The burst lifts both, for both designs alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Patience {
    AsDeployed,
    Patient,
}

async fn world_for(design: Design, patience: Patience) -> World {
    let patient = patience == Patience::Patient;
    let limits = patient.then(|| local_gateway::Limits {
        websocket_integration_timeout: Duration::from_secs(600),
        ..Default::default()
    });
    match design {
        Design::Now => {
            let invoker: Option<e2e::InvokerFactory> = patient.then(|| {
                Box::new(|functions: &local_gateway::local::LocalFunctions| {
                    let limits = local_gateway::invoke::LambdaLimits {
                        timeouts: Default::default(),
                        ..functions.limits.clone()
                    };
                    Arc::new(local_gateway::invoke::InProcess::with(functions.apps.clone(), limits))
                        as Arc<dyn local_gateway::invoke::Invoke>
                }) as e2e::InvokerFactory
            });
            World::start_with_options(e2e::StackOptions { invoker, limits, ..Default::default() }).await
        }
        Design::Before => {
            let tables: Arc<OnceLock<Tables>> = Arc::new(OnceLock::new());
            let slot = tables.clone();
            // The legacy send runs without Lambda's timeout in both cases, as `InProcess::new`.
            let invoker: e2e::InvokerFactory = Box::new(move |functions| {
                Arc::new(LegacySend::new(functions.apps.shared().clone(), slot))
                    as Arc<dyn local_gateway::invoke::Invoke>
            });
            let world =
                World::start_with_options(e2e::StackOptions { invoker: Some(invoker), limits, ..Default::default() })
                    .await;
            let stack = &world.stack;
            let _ = tables.set(Tables {
                dynamo: stack.dynamo.clone(),
                channels: stack.config.tables.channels.clone(),
                messages: stack.config.tables.messages.clone(),
            });
            world
        }
    }
}

fn send_frame(channel: &str, id: &str) -> Value {
    json!({"action": "sendMessage", "channelId": channel, "clientMsgId": id, "text": "how much does this cost?"})
}

/// Waits for the answer to `client_msg_id` (an ack or an error), skipping other frames.
async fn answer(device: &LiveClient, client_msg_id: &str, patience: Duration) -> Option<Value> {
    let deadline = Instant::now() + patience;
    while let Some(arrival) = device.next(deadline.saturating_duration_since(Instant::now())).await {
        let Some(frame) = arrival.frame else { continue };
        let kind = frame["type"].as_str().unwrap_or_default();
        if (kind == "ack" || kind == "error") && frame["clientMsgId"] == client_msg_id {
            return Some(frame);
        }
    }
    None
}

async fn drain(device: &LiveClient) {
    while device.next(Duration::from_millis(20)).await.is_some() {}
}

/// One 1:1 send and one into a 100-member group: requests and rounds unmetered, units
/// from a second, metered send of each (metering slows writes down).
pub async fn single_sends(design: Design) -> Vec<SendFigures> {
    let world = world_for(design, Patience::AsDeployed).await;
    let stack = &world.stack;
    let group = users("grp", 100);
    let refs: Vec<&str> = group.iter().map(String::as_str).collect();
    stack.create_channel("g100", &refs).await;
    stack.create_channel("dm-ab", &["alice", "bob"]).await;
    let mut members = Vec::new();
    for user in &group {
        members.push(LiveClient::of(stack, user).await);
    }
    let alice = LiveClient::of(stack, "alice").await;
    let _bob = LiveClient::of(stack, "bob").await;
    let mut figures = Vec::new();
    for (case, sender, channel, tag) in
        [("1:1 (recipient online)", &alice, "dm-ab", "dm"), ("100-member group (all online)", &members[0], "g100", "g")]
    {
        for device in members.iter().chain([&alice]) {
            drain(device).await;
        }
        world.tap.meter(false);
        world.tap.clear();
        let id = format!("{tag}-timed");
        let (counts, _, _) = world
            .measure(async {
                assert!(sender.send(&send_frame(channel, &id)).await, "connection open");
                answer(sender, &id, Duration::from_secs(20)).await
            })
            .await;
        let rounds = rounds_before_first_post(&world.tap.calls());
        world.tap.meter(true);
        let metered = format!("{tag}-metered");
        let (_, units, _) = world
            .measure(async {
                assert!(sender.send(&send_frame(channel, &metered)).await, "connection open");
                answer(sender, &metered, Duration::from_secs(20)).await
            })
            .await;
        world.tap.meter(false);
        let dynamodb: u64 = counts.iter().filter(|(k, _)| k.starts_with("dynamodb.")).map(|(_, v)| v).sum();
        let by_operation = counts
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("dynamodb.").map(|op| format!("{op} {v}")))
            .collect::<Vec<_>>()
            .join(", ");
        figures.push(SendFigures {
            design,
            case: case.to_owned(),
            dynamodb,
            by_operation,
            rounds_before_post: rounds,
            units,
        });
    }
    figures
}

/// `senders` members of one group each send one message at the same instant.
pub async fn burst(design: Design, senders: usize) -> BurstFigures {
    let world = world_for(design, Patience::Patient).await;
    let stack = &world.stack;
    let names = users("burst", senders);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    stack.create_channel("burst", &refs).await;
    let mut devices = Vec::new();
    for name in &names {
        devices.push(Arc::new(LiveClient::of(stack, name).await));
    }
    world.settle(Duration::from_millis(300)).await;
    for device in &devices {
        drain(device).await;
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(senders));
    let run = async {
        let mut tasks = Vec::new();
        for (i, device) in devices.iter().enumerate() {
            let (device, barrier) = (device.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let id = format!("b{i}");
                barrier.wait().await;
                let started = Instant::now();
                assert!(device.send(&send_frame("burst", &id)).await, "connection open");
                let frame = answer(&device, &id, Duration::from_secs(300)).await;
                (frame, started.elapsed().as_secs_f64() * 1000.0)
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("sender task"));
        }
        outcomes
    };
    let (counts, _, outcomes) = world.measure(run).await;
    let mut refused = BTreeMap::new();
    let (mut stored, mut unanswered, mut ack_ms) = (0, 0, Vec::new());
    for (frame, ms) in outcomes {
        match frame {
            Some(frame) if frame["type"] == "ack" => {
                stored += 1;
                ack_ms.push(ms);
            }
            Some(frame) => *refused.entry(frame["code"].as_str().unwrap_or("?").to_owned()).or_insert(0) += 1,
            None => unanswered += 1,
        }
    }
    let history = stack.full_history(&names[0], "burst").await;
    let mut seqs: Vec<u64> = history.iter().filter_map(|m| m["seq"].as_u64()).collect();
    seqs.sort_unstable();
    let gapless = seqs == (1..=stored as u64).collect::<Vec<_>>();
    let dynamodb: u64 = counts.iter().filter(|(k, _)| k.starts_with("dynamodb.")).map(|(_, v)| v).sum();
    BurstFigures {
        design,
        senders,
        stored,
        refused,
        unanswered,
        gapless,
        ack_ms: Summary::of(&ack_ms),
        dynamodb,
        dynamodb_per_stored: if stored == 0 { 0.0 } else { dynamodb as f64 / stored as f64 },
    }
}

pub fn sends_table(rows: &[SendFigures]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.case.clone(),
                r.design.label().to_owned(),
                r.dynamodb.to_string(),
                r.by_operation.clone(),
                r.rounds_before_post.map_or("-".into(), |n| n.to_string()),
                format!("{:.1}", r.units.write),
                format!("{:.1}", r.units.index_write),
                format!("{:.1}", r.units.read),
            ]
        })
        .collect();
    crate::report::table(
        &[
            "sendMessage",
            "design",
            "DynamoDB",
            "by operation",
            "round trips before 1st post",
            "WRU",
            "index WRU",
            "RRU",
        ],
        &body,
    )
}

pub fn burst_table(rows: &[BurstFigures]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.design.label().to_owned(),
                r.senders.to_string(),
                r.stored.to_string(),
                if r.refused.is_empty() { "0".into() } else { format!("{:?}", r.refused) },
                r.unanswered.to_string(),
                if r.gapless { "yes".into() } else { "no".into() },
                format!("{:.0} / {:.0}", r.ack_ms.p50, r.ack_ms.p99),
                format!("{:.1}", r.dynamodb_per_stored),
            ]
        })
        .collect();
    crate::report::table(
        &[
            "design",
            "senders at once",
            "stored",
            "refused",
            "unanswered",
            "seqs gapless",
            "ack p50 / p99 ms",
            "DynamoDB requests per stored message",
        ],
        &body,
    )
}
