//! End-to-end delivery latency through the local gateway: from the moment a sender's frame
//! goes out to the moment each recipient's socket has the `message` event, for a 1:1
//! channel and a 100-member group with every member online. Also the time of it spent
//! waiting on DynamoDB (moto), measured in the SDK, so our own share shows separately.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::live::LiveClient;
use serde::Serialize;

use crate::aws_http::Service;
use crate::baseline::ScanFanOut;
use crate::stats::Summary;
use crate::world::{World, users};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fanout {
    /// Ours: one BatchGetItem over the members' Presence items.
    Presence,
    /// The sample apps': Scan of one table of all connections.
    Scan,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Pace {
    /// Open loop: a send every 1/rate s whatever happens (rate over all lanes).
    Steady(f64),
    /// Each lane sends its next message as soon as the previous one is acked.
    ClosedLoop,
    /// One message in flight at a time, with a short pause between: per-send cost alone.
    OneAtATime,
}

#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub name: String,
    pub fanout: Fanout,
    /// Members per channel, all online (2: a 1:1 channel).
    pub members: usize,
    /// Independent channels with a sender each.
    pub lanes: usize,
    /// Other users' connections stored in the table the fan-out reads.
    pub stored: usize,
    pub pace: Pace,
    pub messages: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case: Case,
    pub offered_per_s: Option<f64>,
    /// Messages delivered to all their recipients per second, first send to last delivery.
    pub achieved_per_s: f64,
    pub delivered: usize,
    /// Sends answered with an error frame.
    pub errors: usize,
    /// Acked messages that did not reach every recipient in time.
    pub incomplete: usize,
    /// Send to the last recipient's arrival, per message.
    pub to_all_ms: Summary,
    /// Send to each recipient's arrival.
    pub per_recipient_ms: Summary,
    pub ack_ms: Summary,
    /// Of `to_all`, the time with at least one DynamoDB request in flight; only messages
    /// alone in flight (their DynamoDB time is theirs alone).
    pub dynamodb_ms: Summary,
    /// `to_all` minus `dynamodb`: our handlers, the SDK, the gateway, the sockets; same
    /// messages.
    pub own_ms: Summary,
    /// Messages left out of `dynamodb` and `own` because another was in flight.
    pub overlapping: usize,
    /// Error frames by code.
    pub error_codes: std::collections::BTreeMap<String, usize>,
    /// For the open-loop searches of the highest rate: whether this rate was sustained.
    pub verdict: String,
    #[serde(skip)]
    pub to_all_samples: Vec<f64>,
}

struct Lane {
    channel: String,
    sender: LiveClient,
    recipients: Vec<LiveClient>,
}

/// Sets up a world for `case` and measures it.
pub async fn run_case(case: &Case) -> CaseResult {
    let world = match case.fanout {
        Fanout::Presence => World::start().await,
        Fanout::Scan => {
            // The baseline's own connections table is not in the template: it runs unchecked,
            // with the administrator's client.
            let dynamo = aws_sdk_dynamodb::Client::new(&e2e::sdk_config().await);
            let table = format!("BaselineConnections{}", std::process::id());
            World::start_with(Some(Box::new(move |functions| {
                let app = functions.apps.shared().clone();
                Arc::new(ScanFanOut::new(app, dynamo, &table)) as Arc<dyn local_gateway::invoke::Invoke>
            })))
            .await
        }
    };
    let stack = &world.stack;
    match case.fanout {
        Fanout::Presence => world.fill_presence(case.stored).await,
        Fanout::Scan => {
            let table = format!("BaselineConnections{}", std::process::id());
            ScanFanOut::create_table(&stack.dynamo, &table).await;
            world
                .fill(&table, case.stored, |i| ScanFanOut::item(&format!("St0red{i:06}="), &format!("stored{i:06}")))
                .await;
        }
    }

    let mut lanes = Vec::new();
    for l in 0..case.lanes {
        let members = users(&format!("l{l}m"), case.members);
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let channel = format!("lane{l}");
        stack.create_channel(&channel, &refs).await;
        let mut recipients = Vec::new();
        for user in &members[1..] {
            recipients.push(LiveClient::of(stack, user).await);
        }
        let sender = LiveClient::of(stack, &members[0]).await;
        lanes.push(Lane { channel, sender, recipients });
    }
    // Presence announcements of the connects are not part of the measurement.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for lane in &lanes {
        for device in std::iter::once(&lane.sender).chain(&lane.recipients) {
            while device.next(Duration::from_millis(10)).await.is_some() {}
        }
    }
    world.tap.clear();
    measure(&world, case, &lanes).await
}

/// What one lane saw: send, ack and arrival times by clientMsgId.
#[derive(Default)]
struct Seen {
    sent: HashMap<String, Instant>,
    acked: HashMap<String, Instant>,
    errors: Vec<String>,
    arrivals: Vec<HashMap<String, Instant>>,
}

async fn measure(world: &World, case: &Case, lanes: &[Lane]) -> CaseResult {
    let per_lane = case.messages / case.lanes;
    let lane_rate = match case.pace {
        Pace::Steady(rate) => Some(rate / case.lanes as f64),
        _ => None,
    };
    let patience = Duration::from_secs(30);
    let runs = lanes.iter().enumerate().map(|(l, lane)| async move {
        let mut seen = Seen { arrivals: vec![HashMap::new(); lane.recipients.len()], ..Default::default() };
        let ids: Vec<String> = (0..per_lane).map(|n| format!("b{l}-{n}")).collect();
        let start = Instant::now();
        let sending = async {
            let mut sent = HashMap::new();
            let mut acked = HashMap::new();
            let mut errors = Vec::new();
            for (n, id) in ids.iter().enumerate() {
                if let Some(rate) = lane_rate {
                    tokio::time::sleep_until((start + Duration::from_secs_f64(n as f64 / rate)).into()).await;
                }
                let at =
                    lane.sender.send_message(&lane.channel, id, &format!("latency probe {n}")).await.expect("open");
                sent.insert(id.clone(), at);
                if lane_rate.is_none() {
                    // Closed loop: wait for this send's answer before the next.
                    errors.extend(await_answers(&lane.sender, &mut acked, 1, patience).await);
                    if case.pace == Pace::OneAtATime {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            if lane_rate.is_some() {
                errors.extend(await_answers(&lane.sender, &mut acked, ids.len(), patience).await);
            }
            (sent, acked, errors)
        };
        let receiving = futures::future::join_all(lane.recipients.iter().map(|device| {
            let want = ids.len();
            async move {
                let mut got = HashMap::new();
                // Patience from the last frame: slow cases take minutes in all.
                while got.len() < want {
                    let Some(arrival) = device.next(patience).await else {
                        break;
                    };
                    let Some(frame) = arrival.frame else { break };
                    if frame["type"] == "message"
                        && let Some(id) = frame["message"]["clientMsgId"].as_str()
                    {
                        got.entry(id.to_owned()).or_insert(arrival.at);
                    }
                }
                got
            }
        }));
        let ((sent, acked, errors), arrivals) = futures::join!(sending, receiving);
        seen.sent = sent;
        seen.acked = acked;
        seen.errors = errors;
        seen.arrivals = arrivals;
        seen
    });
    let seen: Vec<Seen> = futures::future::join_all(runs).await;
    summarise(world, case, lane_rate.map(|r| r * case.lanes as f64), &seen)
}

/// Reads the sender's frames until `count` more answers came; answers the errors' codes.
async fn await_answers(
    sender: &LiveClient,
    acked: &mut HashMap<String, Instant>,
    count: usize,
    patience: Duration,
) -> Vec<String> {
    let mut answered = 0;
    let mut errors = Vec::new();
    let deadline = Instant::now() + patience;
    while answered < count {
        let Some(arrival) = sender.next(deadline.saturating_duration_since(Instant::now())).await else { break };
        let Some(frame) = arrival.frame else { break };
        match frame["type"].as_str() {
            Some("ack") => {
                acked.insert(frame["clientMsgId"].as_str().unwrap_or_default().to_owned(), arrival.at);
                answered += 1;
            }
            Some("error") => {
                errors.push(frame["code"].as_str().unwrap_or("?").to_owned());
                answered += 1;
            }
            _ => {}
        }
    }
    errors
}

fn summarise(world: &World, case: &Case, offered: Option<f64>, seen: &[Seen]) -> CaseResult {
    let mut to_all = Vec::new();
    let mut per_recipient = Vec::new();
    let mut acks = Vec::new();
    let mut windows = Vec::new();
    let mut incomplete = 0;
    let mut errors = 0;
    let mut error_codes = std::collections::BTreeMap::new();
    let mut first_send: Option<Instant> = None;
    let mut last_arrival: Option<Instant> = None;
    for lane in seen {
        errors += lane.errors.len();
        for code in &lane.errors {
            *error_codes.entry(code.clone()).or_insert(0) += 1;
        }
        for (id, sent) in &lane.sent {
            first_send = Some(first_send.map_or(*sent, |f| f.min(*sent)));
            if let Some(ack) = lane.acked.get(id) {
                acks.push(ms(*ack - *sent));
            } else {
                continue;
            }
            let arrivals: Vec<Instant> = lane.arrivals.iter().filter_map(|got| got.get(id).copied()).collect();
            if arrivals.len() < lane.arrivals.len() {
                incomplete += 1;
                continue;
            }
            per_recipient.extend(arrivals.iter().map(|at| ms(*at - *sent)));
            let last = arrivals.iter().max().copied().unwrap_or(*sent);
            last_arrival = Some(last_arrival.map_or(last, |l| l.max(last)));
            to_all.push(ms(last - *sent));
            windows.push((*sent, last));
        }
    }
    windows.sort();
    // A message's DynamoDB time is only its own when no other message was in flight.
    let mut dynamodb = Vec::new();
    let mut own = Vec::new();
    let mut overlapping = 0;
    for (i, (from, to)) in windows.iter().enumerate() {
        let overlaps = windows.iter().enumerate().any(|(j, (f, t))| j != i && f < to && t > from);
        if overlaps {
            overlapping += 1;
            continue;
        }
        let busy = ms(world.tap.busy(Service::DynamoDb, *from, *to));
        dynamodb.push(busy);
        own.push(ms(*to - *from) - busy);
    }
    let achieved = match (first_send, last_arrival) {
        (Some(first), Some(last)) if last > first => to_all.len() as f64 / (last - first).as_secs_f64(),
        _ => 0.0,
    };
    CaseResult {
        case: case.clone(),
        offered_per_s: offered,
        achieved_per_s: achieved,
        delivered: to_all.len(),
        errors,
        incomplete,
        to_all_ms: Summary::of(&to_all),
        per_recipient_ms: Summary::of(&per_recipient),
        ack_ms: Summary::of(&acks),
        dynamodb_ms: Summary::of(&dynamodb),
        own_ms: Summary::of(&own),
        overlapping,
        error_codes,
        verdict: String::new(),
        to_all_samples: to_all,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The whole latency section: steady rate and highest sustained rate for 1:1 and a
/// 100-member group, then ours against the scan baseline at 1,000 and 10,000 stored
/// connections, one send at a time.
pub async fn run(quick: bool, progress: &dyn Fn(&str)) -> Vec<CaseResult> {
    let scale = |n: usize| if quick { (n / 4).max(4) } else { n };
    let case = |name: &str, fanout, members, lanes, stored, pace, messages| Case {
        name: name.to_owned(),
        fanout,
        members,
        lanes,
        stored,
        pace,
        messages: scale(messages),
    };
    let results = std::cell::RefCell::new(Vec::new());
    let run = async |case: Case| {
        progress(&format!("latency: {}", case.name));
        let result = run_case(&case).await;
        results.borrow_mut().push(result.clone());
        result
    };

    run(case("1:1, steady 5/s", Fanout::Presence, 2, 1, 0, Pace::Steady(5.0), 100)).await;
    run(case("group of 100, steady 2/s", Fanout::Presence, 100, 1, 0, Pace::Steady(2.0), 40)).await;

    // The highest rate: what a closed loop achieves, then open loop from 80% of it down
    // (by 20% a step) until a run is sustained: no error, every message to every recipient,
    // the offered rate achieved, p99 under a second.
    for (members, lanes, label, seconds, minimum) in [(2, 4, "1:1", 8.0, 40), (100, 1, "group of 100", 10.0, 20)] {
        let probe = run(case(
            &format!("{label}, closed loop ({lanes} channel{})", if lanes > 1 { "s" } else { "" }),
            Fanout::Presence,
            members,
            lanes,
            0,
            Pace::ClosedLoop,
            if members > 2 { 20 } else { 80 },
        ))
        .await;
        let mut rate = probe.achieved_per_s * 0.8;
        for _ in 0..6 {
            let messages = ((rate * seconds) as usize).max(minimum) / lanes * lanes;
            let name = format!("{label}, open loop {rate:.1}/s ({lanes} channel{})", if lanes > 1 { "s" } else { "" });
            let trial = case(&name, Fanout::Presence, members, lanes, 0, Pace::Steady(rate), messages);
            progress(&format!("latency: {}", trial.name));
            let mut result = run_case(&trial).await;
            let held = sustained(&result);
            result.verdict = if held { "highest sustained".into() } else { "not sustained".into() };
            results.borrow_mut().push(result);
            if held {
                break;
            }
            rate *= 0.8;
        }
    }

    // Side by side, one send at a time: the ratio is the result.
    for (members, label) in [(2, "1:1"), (100, "group of 100")] {
        for stored in [1_000, 10_000] {
            run(case(
                &format!("{label}, presence, {stored} stored"),
                Fanout::Presence,
                members,
                1,
                stored,
                Pace::OneAtATime,
                20,
            ))
            .await;
            run(case(
                &format!("{label}, scan, {stored} stored"),
                Fanout::Scan,
                members,
                1,
                stored,
                Pace::OneAtATime,
                20,
            ))
            .await;
        }
    }
    results.into_inner()
}

/// An open-loop run the stack kept up with.
pub fn sustained(result: &CaseResult) -> bool {
    let offered = result.offered_per_s.unwrap_or(0.0);
    result.errors == 0
        && result.incomplete == 0
        && result.delivered == result.case.messages
        && result.achieved_per_s >= 0.95 * offered
        && result.to_all_ms.p99 <= 1_000.0
}
