//! AWS requests per operation, counted in the SDK (the `RequestCounter` interceptor), for
//! each thing a user does, with everything it sets off (fan-out, presence announcements).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e::live::LiveClient;
use serde::Serialize;
use serde_json::{Value, json};

use crate::aws_http::{Call, Service};
use crate::metering::Units;
use crate::world::{World, users};

#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    pub operation: String,
    /// `service.Operation` → requests.
    pub counts: BTreeMap<String, u64>,
    pub dynamodb: u64,
    pub management_posts: u64,
    pub sns: u64,
    pub s3: u64,
    /// What the operation answered, when that tells whether it exists (markRead …).
    pub answer: String,
    /// DynamoDB requests one after another before the first post (sends only).
    pub rounds_before_post: Option<usize>,
    /// DynamoDB capacity units, metered ([`crate::metering`]).
    pub units: Units,
}

impl RequestRow {
    pub(crate) fn new(operation: &str, counts: BTreeMap<String, u64>, units: Units, answer: &str) -> Self {
        let sum = |prefix: &str| counts.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum();
        Self {
            operation: operation.to_owned(),
            dynamodb: sum("dynamodb."),
            management_posts: counts.get("apigatewaymanagementapi.PostToConnection").copied().unwrap_or(0),
            sns: sum("sns."),
            s3: sum("s3."),
            answer: answer.to_owned(),
            counts,
            units,
            rounds_before_post: None,
        }
    }

    /// `Query 1, TransactWriteItems 1` (DynamoDB operations only).
    pub fn dynamodb_breakdown(&self) -> String {
        let parts: Vec<String> =
            self.counts.iter().filter_map(|(k, v)| k.strip_prefix("dynamodb.").map(|op| format!("{op} {v}"))).collect();
        if parts.is_empty() { "-".into() } else { parts.join(", ") }
    }
}

/// Sends `frame` and waits for its answer (a frame of one of `types`); answers its `type`
/// (and `code` for errors).
pub(crate) async fn ask(device: &LiveClient, frame: Value, types: &[&str]) -> String {
    assert!(device.send(&frame).await, "connection open");
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(arrival) = device.next(deadline.saturating_duration_since(Instant::now())).await {
        let Some(frame) = arrival.frame else { break };
        let kind = frame["type"].as_str().unwrap_or_default();
        if types.contains(&kind) {
            return match frame["code"].as_str() {
                Some(code) => format!("{kind} {code}"),
                None => kind.to_owned(),
            };
        }
    }
    "no answer".into()
}

pub(crate) async fn drain(device: &LiveClient) {
    while device.next(Duration::from_millis(20)).await.is_some() {}
}

/// How many DynamoDB requests ran one after another before the first post: the most
/// calls that ended before it without overlapping each other (requests in flight together
/// are one round trip).
pub fn rounds_before_first_post(calls: &[Call]) -> Option<usize> {
    let first_post = calls.iter().filter(|c| c.service == Service::Management).map(|c| c.start).min()?;
    let mut before: Vec<&Call> =
        calls.iter().filter(|c| c.service == Service::DynamoDb && c.end <= first_post).collect();
    before.sort_by_key(|c| c.end);
    let mut rounds = 0;
    let mut free_from: Option<std::time::Instant> = None;
    for call in before {
        if free_from.is_none_or(|t| call.start >= t) {
            rounds += 1;
            free_from = Some(call.end);
        }
    }
    Some(rounds)
}

pub async fn run() -> Vec<RequestRow> {
    // Connects and disconnects are counted without the meter: reading around each write
    // changes their timing, and with it how their conditional writes race (one more
    // UpdateItem now and then). Their units are in docs/COST.md, from item sizes.
    let world = World::start().await;
    let stack = &world.stack;
    let mut rows = Vec::new();

    // A 100-member group with 99 members online; its 100th member connects while measured.
    let group = users("grp", 100);
    let refs: Vec<&str> = group.iter().map(String::as_str).collect();
    stack.create_channel("g100", &refs).await;
    stack.create_channel("dm-ab", &["alice", "bob"]).await;
    stack.create_channel("hist", &["alice", "carol"]).await;
    let mut members = Vec::new();
    for user in &group[1..] {
        members.push(LiveClient::of(stack, user).await);
    }

    let (counts, units, loner) = world.measure(LiveClient::of(stack, "loner")).await;
    rows.push(RequestRow::new("connect (first device, user in no channel)", counts, units, "101"));
    let (counts, units, loner_laptop) = world.measure(LiveClient::of(stack, "loner")).await;
    rows.push(RequestRow::new("connect (second device)", counts, units, "101"));
    let (counts, units, sender) = world.measure(LiveClient::of(stack, &group[0])).await;
    rows.push(RequestRow::new("connect (first device, 99 contacts online)", counts, units, "101"));

    let (counts, units, ()) = world.measure(loner_laptop.close()).await;
    rows.push(RequestRow::new("disconnect (another device still open)", counts, units, ""));
    let (counts, units, ()) = world.measure(loner.close()).await;
    rows.push(RequestRow::new("disconnect (last device)", counts, units, ""));

    let alice = LiveClient::of(stack, "alice").await;
    let bob = LiveClient::of(stack, "bob").await;
    drain(&alice).await;
    let send = |channel: &str, id: &str| json!({"action": "sendMessage", "channelId": channel, "clientMsgId": id, "text": "how much does this cost?"});
    // Round trips from a send timed without the meter (it slows writes down), units from
    // the same send again.
    world.tap.meter(false);
    world.tap.clear();
    let (counts, _, answer) = world.measure(ask(&alice, send("dm-ab", "r1"), &["ack", "error"])).await;
    let rounds = rounds_before_first_post(&world.tap.calls());
    world.tap.meter(true);
    let (_, units, _) = world.measure(ask(&alice, send("dm-ab", "r1-metered"), &["ack", "error"])).await;
    let mut row = RequestRow::new("sendMessage, 1:1 (recipient online)", counts, units, &answer);
    row.rounds_before_post = rounds;
    rows.push(row);
    for device in &members {
        drain(device).await;
    }
    drain(&sender).await;
    world.tap.meter(false);
    world.tap.clear();
    let (counts, _, answer) = world.measure(ask(&sender, send("g100", "r2"), &["ack", "error"])).await;
    let rounds = rounds_before_first_post(&world.tap.calls());
    for device in &members {
        drain(device).await;
    }
    world.tap.meter(true);
    let (_, units, _) = world.measure(ask(&sender, send("g100", "r2-metered"), &["ack", "error"])).await;
    let mut row = RequestRow::new("sendMessage, 100-member group (all online)", counts, units, &answer);
    row.rounds_before_post = rounds;
    rows.push(row);
    for device in &members {
        drain(device).await;
    }

    let typing = json!({"action": "typing", "channelId": "g100", "state": "start"});
    let (counts, units, ()) = world
        .measure(async {
            assert!(sender.send(&typing).await);
        })
        .await;
    rows.push(RequestRow::new("typing, 100-member group (all online)", counts, units, ""));

    drain(&bob).await;
    let last = stack.full_history("bob", "dm-ab").await;
    let last_id = last.last().map(|m| m["messageId"].clone()).unwrap_or(Value::Null);
    let mark = json!({"action": "markRead", "channelId": "dm-ab", "messageId": last_id});
    let (counts, units, answer) = world.measure(ask(&bob, mark, &["receipt", "error"])).await;
    rows.push(RequestRow::new("markRead, 1:1", counts, units, &answer));

    // History: 60 messages in one bucket; the first page of 50, then the rest.
    for n in 0..60 {
        ask(&alice, send("hist", &format!("h{n}")), &["ack", "error"]).await;
    }
    let (counts, units, (status, page)) = world.measure(stack.history("carol", "hist", "limit=50")).await;
    let got = page["messages"].as_array().map_or(0, Vec::len);
    rows.push(RequestRow::new("history page of 50", counts, units, &format!("{status}, {got} messages")));
    let before = page["nextBefore"].as_str().unwrap_or_default().to_owned();
    let (counts, units, (status, page)) =
        world.measure(stack.history("carol", "hist", &format!("limit=50&before={before}"))).await;
    let got = page["messages"].as_array().map_or(0, Vec::len);
    rows.push(RequestRow::new("history, next page (10 left)", counts, units, &format!("{status}, {got} messages")));

    let token = stack.token("alice");
    let (counts, units, (status, body)) = world.measure(stack.get("/channels", Some(&token))).await;
    let listed = body["channels"].as_array().map_or(0, Vec::len);
    rows.push(RequestRow::new("channel list (2 channels)", counts, units, &format!("{status}, {listed} channels")));
    rows
}
