//! At the brief's scale, on paper (issue 17): 10,000, 1 million and 10 million concurrent
//! users. From the AWS requests each operation makes ([`Figures`]: measured by the
//! `requests` benchmark when `bench/results/latest.json` has them, else the defaults below
//! from docs/DESIGN.md and docs/BENCHMARKS.md) and a traffic model
//! (`bench/scale/model.json`, [`Model`]), it computes, per second at peak and per month:
//! requests per service, each AWS quota that applies against its default, the hottest
//! DynamoDB keys, the reconnect after a regional outage, and the bill (docs/COST.md's
//! prices). `bench scale` prints a table per size, keeps them in `latest.json` and writes
//! `bench/scale/results.json`; docs/SCALE.md reads them.
//!
//! Nothing here touches the network except [`measure_load`] (`bench scale --measure-load`),
//! which runs the `load` benchmark's traffic against moto and records the AWS requests it
//! made: the fixture (`bench/scale/load-measured.json`) that `bench/tests/scale.rs` checks
//! the simulator's prediction ([`predict_load`]) against.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chat_domain::connections::ONLINE_SHARDS;
use chat_domain::settings::{PresenceSettings, RateLimits};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::report::table;

/// A 30-day month, as docs/COST.md counts.
pub const MONTH_S: f64 = 30.0 * 86_400.0;

/// Prices: docs/COST.md, "Prices used" (us-east-1, on demand, no free tier, no volume
/// tiers: API Gateway's messages past a billion a month and Lambda's duration past 6 billion
/// GB-s are cheaper than this).
pub mod price {
    pub const WRU: f64 = 0.625e-6;
    pub const RRU: f64 = 0.125e-6;
    /// DynamoDB storage + point-in-time recovery, per GB-month.
    pub const STORAGE_GB_MONTH: f64 = 0.25 + 0.20;
    pub const WEBSOCKET_MESSAGE: f64 = 1.00e-6;
    pub const CONNECTION_MINUTE: f64 = 0.25e-6;
    pub const HTTP_REQUEST: f64 = 1.00e-6;
    pub const LAMBDA_REQUEST: f64 = 0.20e-6;
    /// arm64, the template's default architecture.
    pub const LAMBDA_GB_S: f64 = 0.000_013_333_4;
    pub const SNS_PUBLISH: f64 = 0.50e-6;
    pub const LOGS_GB: f64 = 0.50;
    pub const XRAY_TRACE: f64 = 5.00e-6;
    /// Secret $0.40, alarms ~$4, dashboard $3, custom metrics ~$4.50 (COST.md, sections 3 and 7).
    pub const FIXED_MONTH: f64 = 0.40 + 4.70 + 3.0 + 4.50;
}

/// AWS's default quotas (per account and Region unless said), and this stack's own.
pub mod quota {
    /// API Gateway: new WebSocket connections per second, all WebSocket APIs of the account.
    pub const WEBSOCKET_NEW_CONNECTIONS: f64 = 500.0;
    /// API Gateway: the account's throttle, every API (PostToConnection included).
    pub const ACCOUNT_REQUESTS: f64 = 10_000.0;
    pub const ACCOUNT_BURST: f64 = 5_000.0;
    /// template.yaml, `WebSocketStage` `DefaultRouteSettings` (per route; a stage total
    /// if read so, which only makes it bite sooner).
    pub const STAGE_ROUTE_REQUESTS: f64 = 1_000.0;
    /// Lambda: concurrent executions of the account, and how fast one function scales.
    pub const LAMBDA_CONCURRENCY: f64 = 1_000.0;
    pub const LAMBDA_SCALING_PER_10_S: f64 = 1_000.0;
    /// DynamoDB: one partition (so one item, or one key's items) serves at most these.
    pub const PARTITION_WRU: f64 = 1_000.0;
    pub const PARTITION_RRU: f64 = 3_000.0;
    /// DynamoDB on demand: per table (and per GSI), and what a new table serves at once
    /// (it then doubles its previous peak within 30 minutes).
    pub const TABLE_WRU: f64 = 40_000.0;
    pub const TABLE_RRU: f64 = 40_000.0;
    pub const NEW_TABLE_WRU: f64 = 4_000.0;
    pub const NEW_TABLE_RRU: f64 = 12_000.0;
    /// SNS Publish in us-east-1 (AWS General Reference; 9,000 in us-west-2 and eu-west-1,
    /// less elsewhere). Not checked again here.
    pub const SNS_PUBLISH: f64 = 30_000.0;
}

/// Code facts the model uses (read from the code where the constant is public).
pub mod code {
    /// `PresenceSweepFunction`: template.yaml `PRESENCE_SWEEP_PASSES`, `..._INTERVAL_SECONDS`,
    /// `Timeout`; one EventBridge run a minute.
    pub const SWEEP_PASSES: f64 = 6.0;
    pub const SWEEP_INTERVAL_S: f64 = 10.0;
    pub const SWEEP_TIMEOUT_S: f64 = 70.0;
    /// Users one sweep run takes offline at once: `presence.rs` `SWEEP_CONCURRENCY` (private
    /// there), since commit d0d8cdf (before it: one after another, the shards read in turn).
    pub const SWEEP_CONCURRENCY: f64 = 16.0;
    /// Sweep runs the template schedules a minute (`PresenceSweepRuns` at most this).
    pub const MAX_SWEEP_RUNS: f64 = chat_domain::presence::MAX_SWEEP_RUNS as f64;
    /// `delivery.rs`: posts in flight per fan-out.
    pub const POSTS_IN_FLIGHT: f64 = 32.0;
    /// `presence.rs`: watchers items a `subscribePresence` writes at once, and the most
    /// connections subscribed to one user (`MAX_WATCHERS`).
    pub const SUBSCRIBE_WRITES_IN_FLIGHT: f64 = 16.0;
    pub const MAX_WATCHERS: f64 = 500.0;
    /// `presence.rs` `SUBSCRIPTION_MS`: a subscription lasts as long as its connection can
    /// (2 hours); nothing is renewed. Written when made and when it ends: over a 30-minute
    /// session, as often as a renewal every 900 s would be.
    pub const SUBSCRIPTION_WRITES_EVERY_S: f64 = 900.0;
    /// web/public/js/chat-protocol.js and cli/src/chat.rs: backoff ceiling 0.5 s doubling
    /// to 30 s, each wait uniform between half the ceiling and the ceiling; the web client
    /// refreshes its token before an attempt after two failed opens.
    pub const BACKOFF_FIRST_S: f64 = 0.5;
    pub const BACKOFF_MAX_S: f64 = 30.0;
    pub const REFRESH_AFTER_FAILED_OPENS: usize = 2;
    /// template.yaml `Globals` `MemorySize` (AuthFunction: 512).
    pub const MEMORY_GB: f64 = 0.25;
    pub const AUTH_MEMORY_GB: f64 = 0.5;
}

/// Lambda durations in AWS, ms: docs/COST.md's estimates (section 1: a 1:1 send ~40 ms,
/// a 100-member send ~150 ms, i.e. ~1.1 ms per post; section 3: a heartbeat ~10 ms; connect,
/// disconnect and authorizer ~55 ms together; section 6: the session read ~10 ms more of
/// authorizer, a refresh ~30 ms at 512 MB; section 2's markRead and typing). Not measured
/// in AWS (BENCHMARKS.md, "Not measured yet").
pub mod ms {
    pub const SEND: f64 = 40.0;
    pub const PER_POST: f64 = 1.1;
    pub const HEARTBEAT: f64 = 10.0;
    pub const FRAME: f64 = 30.0;
    pub const AUTHORIZER: f64 = 10.0;
    pub const CONNECT: f64 = 25.0;
    pub const ANNOUNCE: f64 = 20.0;
    /// A `subscribePresence`: three reads, then the watchers items 16 at a time.
    pub const SUBSCRIBE: f64 = 40.0;
    pub const DISCONNECT: f64 = 20.0;
    pub const HTTP: f64 = 30.0;
    pub const REFRESH: f64 = 30.0;
    /// A sweep run while anyone is online: its 6 passes, mostly sleeping (COST.md section 3).
    pub const SWEEP_RUN: f64 = 50_000.0;
}

/// Log bytes (docs/COST.md sections 7 and 8): START/END/REPORT per invocation; a send's
/// info line and EMF line; an announcement's EMF line.
pub mod log_bytes {
    pub const PER_INVOCATION: f64 = 350.0;
    pub const PER_SEND: f64 = 300.0 + 577.0;
    pub const PER_ANNOUNCE: f64 = 300.0;
}

/// Tables and indexes as their units are reported.
pub mod table_name {
    pub const MESSAGES: &str = "Messages";
    pub const CHANNELS: &str = "Channels";
    pub const USER_CHANNELS: &str = "Channels/UserChannels";
    pub const PRESENCE: &str = "Presence";
    pub const ONLINE_BY_DEADLINE: &str = "Presence/OnlineByDeadline";
    pub const USERS: &str = "Users";
    pub const RATE_LIMITS: &str = "RateLimits";
}
use table_name::*;

const SEND_FN: &str = "SendFunction";
const CONNECT_FN: &str = "ConnectFunction";
const DISCONNECT_FN: &str = "DisconnectFunction";
const AUTHORIZER_FN: &str = "AuthorizerFunction";
const HISTORY_FN: &str = "HistoryFunction";
const AUTH_FN: &str = "AuthFunction";
const SWEEP_FN: &str = "PresenceSweepFunction";

fn memory_gb(function: &str) -> f64 {
    if function == AUTH_FN { code::AUTH_MEMORY_GB } else { code::MEMORY_GB }
}

/// DynamoDB requests by API operation (`UpdateItem` → 1).
pub type Requests = BTreeMap<String, f64>;

fn reqs(pairs: &[(&str, f64)]) -> Requests {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn bump(map: &mut BTreeMap<String, f64>, key: &str, v: f64) {
    if v != 0.0 {
        *map.entry(key.to_owned()).or_default() += v;
    }
}

fn sum(map: &BTreeMap<String, f64>) -> f64 {
    map.values().sum()
}

/// What some traffic asks of AWS: counts for a number of operations, or rates when the
/// operations are per second.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Demand {
    /// DynamoDB requests by API operation.
    pub dynamodb: BTreeMap<String, f64>,
    /// Write and read request units by table (`Table/Index` for an index).
    pub wru: BTreeMap<String, f64>,
    pub rru: BTreeMap<String, f64>,
    /// WebSocket messages received, by route.
    pub frames_in: BTreeMap<String, f64>,
    /// Route responses with a body (the ack, the receipt): WebSocket messages sent.
    pub route_responses: f64,
    /// PostToConnection calls (each a WebSocket message sent).
    pub posts: f64,
    /// The posts by what made them (message, typing, receipt, presence, sync).
    #[serde(default)]
    pub posts_by: BTreeMap<String, f64>,
    /// New WebSocket connections.
    pub handshakes: f64,
    pub http: f64,
    pub sns: f64,
    /// Lambda invocations and busy seconds by function.
    pub invocations: BTreeMap<String, f64>,
    pub lambda_s: BTreeMap<String, f64>,
    /// Log bytes beyond the per-invocation lines.
    pub log_bytes: f64,
}

impl Demand {
    pub fn add(&mut self, other: &Demand, times: f64) {
        if times == 0.0 {
            return;
        }
        let merge = |into: &mut BTreeMap<String, f64>, from: &BTreeMap<String, f64>| {
            for (k, v) in from {
                bump(into, k, v * times);
            }
        };
        merge(&mut self.dynamodb, &other.dynamodb);
        merge(&mut self.wru, &other.wru);
        merge(&mut self.rru, &other.rru);
        merge(&mut self.frames_in, &other.frames_in);
        merge(&mut self.invocations, &other.invocations);
        merge(&mut self.lambda_s, &other.lambda_s);
        merge(&mut self.posts_by, &other.posts_by);
        self.route_responses += other.route_responses * times;
        self.posts += other.posts * times;
        self.handshakes += other.handshakes * times;
        self.http += other.http * times;
        self.sns += other.sns * times;
        self.log_bytes += other.log_bytes * times;
    }

    fn requests(mut self, r: &Requests, times: f64) -> Self {
        for (op, n) in r {
            bump(&mut self.dynamodb, op, n * times);
        }
        self
    }
    fn wru(mut self, table: &str, units: f64) -> Self {
        bump(&mut self.wru, table, units);
        self
    }
    fn rru(mut self, table: &str, units: f64) -> Self {
        bump(&mut self.rru, table, units);
        self
    }
    fn lambda(mut self, function: &str, ms: f64) -> Self {
        bump(&mut self.invocations, function, 1.0);
        bump(&mut self.lambda_s, function, ms / 1000.0);
        self
    }
    fn frame(mut self, route: &str) -> Self {
        bump(&mut self.frames_in, route, 1.0);
        self
    }

    pub fn dynamodb_requests(&self) -> f64 {
        sum(&self.dynamodb)
    }
    pub fn frames(&self) -> f64 {
        sum(&self.frames_in)
    }
    /// WebSocket messages billed: in and out.
    pub fn websocket_messages(&self) -> f64 {
        self.frames() + self.route_responses + self.posts
    }
    /// Requests that count against the account's API Gateway throttle.
    pub fn api_requests(&self) -> f64 {
        self.frames() + self.posts + self.handshakes + self.http
    }
    pub fn gb_s(&self) -> f64 {
        self.lambda_s.iter().map(|(f, s)| s * memory_gb(f)).sum()
    }
}

/// Read units of a consistent roster Query (meta ~150 B + ~135 B per member item).
fn roster_rru(members: f64) -> f64 {
    ((150.0 + 135.0 * members) / 4096.0).ceil()
}

/// A presence change (on connect, by the sweep), told to the connections subscribed to the
/// user (lazy presence: docs/DESIGN.md, "Presence").
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Announce {
    /// Connections subscribed to the user: each gets a post.
    pub watchers: f64,
}

/// Size of a user's watchers item (`store/subscriptions.rs`): key and overhead ~100 B, and
/// per subscribed connection its `w#{connectionId}` attribute (the watcher and the lapse,
/// ~50 B) and its entry in the `conns` set (~20 B).
pub fn watchers_item_bytes(watchers: f64) -> f64 {
    100.0 + 70.0 * watchers
}

/// DynamoDB requests per operation. Defaults: docs/DESIGN.md, "Requests per operation", and
/// docs/BENCHMARKS.md's table; [`Figures::from_results`] takes what the `requests`
/// benchmark measured instead.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    /// `sendMessage`, whatever the group size (≤ 100): rate counter, roster, transaction,
    /// presence.
    pub send: Requests,
    /// Recording a connection (`$connect` of a device; counts the connect limit too).
    pub connect: Requests,
    /// Announcing a presence change: the connections subscribed to the user (GetItem).
    pub announce: Requests,
    /// ... plus, when anyone is subscribed: the user's block list (BatchGetItem).
    pub announce_watched: Requests,
    /// `subscribePresence` of a channel's members: roster, block lists, presence.
    pub subscribe: Requests,
    /// ... plus per user subscribed to: their watchers item (UpdateItem).
    pub subscribe_per_user: Requests,
    pub disconnect_other: Requests,
    /// The last device: also moves the deadline to the grace (when it was further).
    pub disconnect_last: Requests,
    /// Every disconnect, and every user the sweep takes offline, also reads the user's call
    /// mark (did the connection take part in a call?), beside the presence write.
    pub disconnect_call_mark: Requests,
    pub heartbeat: Requests,
    /// The sweep taking a user offline (before announcing it).
    pub mark_offline: Requests,
    /// One sweep pass over one shard (and one look-ahead).
    pub sweep_shard: Requests,
    pub typing: Requests,
    pub mark_read: Requests,
    pub history_page: Requests,
    pub channel_list: Requests,
    /// `sync`: memberships and metas, plus one Query per channel with news.
    pub sync: Requests,
    pub refresh: Requests,
    /// The authorizer's session lookup (tokens of a session).
    pub authorize: Requests,
    /// Posts per live device of a recipient.
    pub posts_per_device: f64,
    /// Where each figure came from.
    pub sources: BTreeMap<String, String>,
}

impl Default for Figures {
    fn default() -> Self {
        let benchmarks = "docs/BENCHMARKS.md, AWS requests per operation";
        let design = "docs/DESIGN.md, Requests per operation";
        let sources = [
            ("send", benchmarks),
            ("connect", benchmarks),
            ("announce", design),
            ("announce_watched", design),
            ("subscribe", design),
            ("subscribe_per_user", design),
            ("disconnect_other", benchmarks),
            ("disconnect_last", benchmarks),
            ("disconnect_call_mark", "docs/DESIGN.md, Requests per operation ($disconnect during a call); bench calls"),
            ("typing", benchmarks),
            ("mark_read", benchmarks),
            ("history_page", benchmarks),
            ("channel_list", benchmarks),
            ("heartbeat", design),
            ("mark_offline", "docs/DESIGN.md, Presence (a conditional update)"),
            ("sweep_shard", design),
            ("sync", design),
            ("refresh", "docs/COST.md, section 6"),
            ("authorize", design),
            ("units, durations", "docs/COST.md (computed, not measured)"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<BTreeMap<_, _>>();
        Self {
            send: reqs(&[("UpdateItem", 1.0), ("Query", 1.0), ("TransactWriteItems", 1.0), ("BatchGetItem", 1.0)]),
            connect: reqs(&[("UpdateItem", 1.0)]),
            announce: reqs(&[("GetItem", 1.0)]),
            announce_watched: reqs(&[("BatchGetItem", 1.0)]),
            subscribe: reqs(&[("Query", 1.0), ("BatchGetItem", 2.0)]),
            subscribe_per_user: reqs(&[("UpdateItem", 1.0)]),
            disconnect_other: reqs(&[("UpdateItem", 1.0)]),
            disconnect_last: reqs(&[("UpdateItem", 2.0)]),
            disconnect_call_mark: reqs(&[("GetItem", 1.0)]),
            heartbeat: reqs(&[("UpdateItem", 1.0)]),
            mark_offline: reqs(&[("UpdateItem", 1.0)]),
            sweep_shard: reqs(&[("Query", 1.0)]),
            typing: reqs(&[("Query", 1.0), ("BatchGetItem", 1.0)]),
            mark_read: reqs(&[("Query", 1.0), ("GetItem", 1.0), ("BatchGetItem", 1.0), ("UpdateItem", 1.0)]),
            history_page: reqs(&[("BatchGetItem", 1.0), ("Query", 1.0)]),
            channel_list: reqs(&[("Query", 1.0), ("BatchGetItem", 1.0)]),
            sync: reqs(&[("Query", 1.0), ("BatchGetItem", 1.0)]),
            refresh: reqs(&[("UpdateItem", 2.0), ("GetItem", 1.0), ("PutItem", 1.0)]),
            authorize: reqs(&[("GetItem", 1.0)]),
            posts_per_device: 1.0,
            sources,
        }
    }
}

/// The DynamoDB part of a measured row (`dynamodb.Query` → `Query`).
fn dynamodb_of(row: &Value) -> Requests {
    row["counts"]
        .as_object()
        .map(|counts| {
            counts.iter().filter_map(|(k, v)| Some((k.strip_prefix("dynamodb.")?.to_owned(), v.as_f64()?))).collect()
        })
        .unwrap_or_default()
}

/// `a - b`, dropping what reaches zero.
fn minus(a: &Requests, b: &Requests) -> Requests {
    let mut out = a.clone();
    for (k, v) in b {
        bump(&mut out, k, -v);
    }
    out.retain(|_, v| *v > 0.0);
    out
}

impl Figures {
    /// The defaults, with what the `requests` benchmark measured (the `requests` section of
    /// `latest`, a parsed `bench/results/latest.json`) in their place.
    pub fn from_results(latest: Option<&Value>) -> Self {
        let mut f = Self::default();
        let Some(section) = latest.map(|l| &l["sections"]["requests"]) else { return f };
        let Some(rows) = section["data"].as_array() else { return f };
        let at = format!(
            "measured: bench/results/latest.json requests ({}, commit {})",
            section["generated_at"].as_str().unwrap_or("?"),
            section["git_commit"].as_str().unwrap_or("?")
        );
        let row = |name: &str| rows.iter().find(|r| r["operation"] == name);
        let took = |f: &mut Self, key: &str, what: &str| {
            f.sources.insert(key.to_owned(), format!("{at}: {what}"));
        };
        if let Some(r) = row("sendMessage, 1:1 (recipient online)") {
            f.send = dynamodb_of(r);
            if let Some(posts) = r["management_posts"].as_f64() {
                f.posts_per_device = posts;
            }
            took(&mut f, "send", "sendMessage, 1:1 (recipient online)");
        }
        let second = row("connect (second device)").map(dynamodb_of);
        if let Some(second) = &second {
            f.connect = second.clone();
            took(&mut f, "connect", "connect (second device)");
        }
        f.presence_from(latest.map(|l| &l["sections"]["presence"]));
        for (key, name) in [
            ("disconnect_other", "disconnect (another device still open)"),
            ("disconnect_last", "disconnect (last device)"),
            ("typing", "typing, 100-member group (all online)"),
            ("mark_read", "markRead, 1:1"),
            ("history_page", "history page of 50"),
            ("channel_list", "channel list (2 channels)"),
        ] {
            if let Some(r) = row(name) {
                let mut counts = dynamodb_of(r);
                if key.starts_with("disconnect") {
                    // Rows measured since calls hold the call mark's read: it is counted
                    // apart (`disconnect_call_mark`), on every disconnect.
                    counts = minus(&counts, &f.disconnect_call_mark);
                    if !counts.contains_key("GetItem") && dynamodb_of(r).contains_key("GetItem") {
                        took(&mut f, "disconnect_call_mark", name);
                    }
                }
                match key {
                    "disconnect_other" => f.disconnect_other = counts,
                    "disconnect_last" => f.disconnect_last = counts,
                    "typing" => f.typing = counts,
                    "mark_read" => f.mark_read = counts,
                    "history_page" => f.history_page = counts,
                    _ => f.channel_list = counts,
                }
                took(&mut f, key, name);
            }
        }
        f
    }

    /// What `bench presence` measured (the `presence` section of `latest.json`), in place of
    /// the announcement's and the subscription's defaults.
    fn presence_from(&mut self, section: Option<&Value>) {
        let Some(section) = section else { return };
        let Some(rows) = section["data"].as_array() else { return };
        let at = format!(
            "measured: bench/results/latest.json presence ({}, commit {})",
            section["generated_at"].as_str().unwrap_or("?"),
            section["git_commit"].as_str().unwrap_or("?")
        );
        let row = |name: &str| rows.iter().find(|r| r["operation"] == name).map(dynamodb_of);
        if let Some(setting) = row("setStatus: 1,000 contacts, 10 watching") {
            // The choice's own UpdateItem, then the announcement.
            let told = minus(&setting, &reqs(&[("UpdateItem", 1.0)]));
            self.announce = told.iter().filter(|(k, _)| *k == "GetItem").map(|(k, v)| (k.clone(), *v)).collect();
            self.announce_watched = minus(&told, &self.announce);
            for key in ["announce", "announce_watched"] {
                self.sources.insert(key.into(), format!("{at}: setStatus: 1,000 contacts, 10 watching"));
            }
        }
        if let Some(subscribing) = row("subscribePresence: a 100-member channel") {
            let per_user = subscribing.get("UpdateItem").copied().unwrap_or(0.0) / 99.0;
            self.subscribe_per_user = reqs(&[("UpdateItem", per_user)]);
            self.subscribe = minus(&subscribing, &reqs(&[("UpdateItem", per_user * 99.0)]));
            for key in ["subscribe", "subscribe_per_user"] {
                self.sources.insert(key.into(), format!("{at}: subscribePresence: a 100-member channel"));
            }
        }
    }

    /// One `sendMessage` into a channel of `members`: posts to `online_devices` (the
    /// recipients' and the sender's other devices), a push to each of `push_devices`.
    /// Units (COST.md section 1): the transaction's 4 items × 1 KB × 2, the read position's
    /// index item, the rate counter; the roster (consistent) and the members' presence.
    pub fn send(&self, members: f64, online_devices: f64, push_devices: f64) -> Demand {
        let posts = online_devices * self.posts_per_device;
        let mut d = Demand::default()
            .requests(&self.send, 1.0)
            .wru(RATE_LIMITS, 1.0)
            .wru(CHANNELS, 6.0)
            .wru(USER_CHANNELS, 1.0)
            .wru(MESSAGES, 2.0)
            .rru(CHANNELS, roster_rru(members))
            .rru(PRESENCE, 0.5 * members)
            .frame("sendMessage")
            .lambda(SEND_FN, ms::SEND + ms::PER_POST * (posts - 1.0).max(0.0));
        d.route_responses += 1.0;
        d.posts += posts;
        bump(&mut d.posts_by, "message", posts);
        d.sns += push_devices;
        d.log_bytes += log_bytes::PER_SEND;
        d
    }

    pub fn typing(&self, members: f64, online_devices: f64) -> Demand {
        let posts = online_devices * self.posts_per_device;
        let mut d = Demand::default()
            .requests(&self.typing, 1.0)
            .rru(CHANNELS, roster_rru(members))
            .rru(PRESENCE, 0.5 * members)
            .frame("typing")
            .lambda(SEND_FN, ms::FRAME + ms::PER_POST * posts);
        d.posts += posts;
        bump(&mut d.posts_by, "typing", posts);
        d
    }

    /// COST.md: roster + the message (consistent) + presence; the member item and its index.
    pub fn mark_read(&self, members: f64, online_devices: f64) -> Demand {
        let posts = online_devices * self.posts_per_device;
        let mut d = Demand::default()
            .requests(&self.mark_read, 1.0)
            .rru(CHANNELS, roster_rru(members) + 1.0)
            .rru(PRESENCE, 0.5 * members)
            .wru(CHANNELS, 1.0)
            .wru(USER_CHANNELS, 1.0)
            .frame("markRead")
            .lambda(SEND_FN, ms::FRAME + ms::PER_POST * posts);
        d.route_responses += 1.0;
        d.posts += posts;
        bump(&mut d.posts_by, "receipt", posts);
        d
    }

    /// The reads and posts of telling subscribers about a presence change (no Lambda time:
    /// the caller's function does it): the watchers item (eventually consistent), the
    /// user's block list when anyone watches, a post per watching connection.
    pub fn announce(&self, a: &Announce) -> Demand {
        let mut d = Demand::default()
            .requests(&self.announce, 1.0)
            .rru(PRESENCE, 0.5 * (watchers_item_bytes(a.watchers) / 4096.0).ceil());
        if a.watchers > 0.0 {
            d = d.requests(&self.announce_watched, 1.0).rru(CHANNELS, 0.5);
        }
        d.posts += a.watchers * self.posts_per_device;
        bump(&mut d.posts_by, "presence", a.watchers * self.posts_per_device);
        d.log_bytes += log_bytes::PER_ANNOUNCE;
        d
    }

    /// A `$connect` (with its authorizer): one Presence write that moves the deadline (its
    /// index item too: 3 WRU), and the announcement when the user came online.
    pub fn connect(&self, announce: Option<&Announce>, session_tokens: bool) -> Demand {
        let mut d = Demand::default()
            .requests(&self.connect, 1.0)
            .wru(PRESENCE, 1.0)
            .wru(ONLINE_BY_DEADLINE, 2.0)
            .lambda(AUTHORIZER_FN, ms::AUTHORIZER);
        if session_tokens {
            d = d.requests(&self.authorize, 1.0).rru(USERS, 0.5);
        }
        let connect_ms = match announce {
            Some(a) => {
                d.add(&self.announce(a), 1.0);
                ms::CONNECT + ms::ANNOUNCE + ms::PER_POST * a.watchers
            }
            None => ms::CONNECT,
        };
        d = d.lambda(CONNECT_FN, connect_ms);
        d.handshakes += 1.0;
        d
    }

    /// A `$disconnect`. `last`: the user's last device; `deadline_ahead`: its deadline was
    /// further than the grace (a heartbeat within the last window − grace), so it moves.
    pub fn disconnect(&self, last: bool, deadline_ahead: bool) -> Demand {
        let (requests, wru) =
            if last && deadline_ahead { (&self.disconnect_last, 1.0 + 3.0) } else { (&self.disconnect_other, 1.0) };
        let mut d = Demand::default()
            .requests(requests, 1.0)
            .requests(&self.disconnect_call_mark, 1.0)
            .rru(PRESENCE, 1.0)
            .lambda(DISCONNECT_FN, ms::DISCONNECT);
        if wru > 1.0 {
            d = d.wru(PRESENCE, 2.0).wru(ONLINE_BY_DEADLINE, 2.0);
        } else {
            d = d.wru(PRESENCE, 1.0);
        }
        d
    }

    /// COST.md section 3: 1 WRU + 2 for the index item whose sort key moves.
    pub fn heartbeat(&self) -> Demand {
        Demand::default()
            .requests(&self.heartbeat, 1.0)
            .wru(PRESENCE, 1.0)
            .wru(ONLINE_BY_DEADLINE, 2.0)
            .frame("heartbeat")
            .lambda(SEND_FN, ms::HEARTBEAT)
    }

    /// A connection renewing its subscriptions to the `on_screen` users it shows (a channel's
    /// members: roster, block lists and presence read, then each one's watchers item
    /// rewritten: the larger of before and after, ~the same, by DynamoDB's rules).
    pub fn subscription_renewal(&self, on_screen: f64, watchers: f64) -> Demand {
        let mut d = Demand::default()
            .requests(&self.subscribe, 1.0)
            .requests(&self.subscribe_per_user, on_screen)
            .rru(CHANNELS, roster_rru(on_screen) + 0.5)
            .rru(PRESENCE, 0.5 * (on_screen / 8.0).ceil())
            .wru(PRESENCE, on_screen * (watchers_item_bytes(watchers) / 1024.0).ceil())
            .frame("subscribePresence")
            .lambda(SEND_FN, ms::SUBSCRIBE);
        d.route_responses += 1.0;
        d
    }

    /// The sweep taking one user offline and telling their contacts (its Lambda time is
    /// the sweep run's).
    pub fn went_offline(&self, a: &Announce) -> Demand {
        // Beside the announcement, the user's call mark is read (a call of a quiet device ends).
        let mut d = Demand::default()
            .requests(&self.mark_offline, 1.0)
            .requests(&self.disconnect_call_mark, 1.0)
            .rru(PRESENCE, 1.0)
            .wru(PRESENCE, 1.0)
            .wru(ONLINE_BY_DEADLINE, 1.0);
        d.add(&self.announce(a), 1.0);
        d
    }

    /// One sweep run while someone is online: every pass reads every shard, and each pass
    /// but the last looks ahead in every shard.
    pub fn sweep_run(&self, run_ms: f64, shards: f64) -> Demand {
        let queries = code::SWEEP_PASSES * shards + (code::SWEEP_PASSES - 1.0) * shards;
        Demand::default()
            .requests(&self.sweep_shard, queries)
            .rru(ONLINE_BY_DEADLINE, 0.5 * queries)
            .lambda(SWEEP_FN, run_ms)
    }

    pub fn history_page(&self, session_tokens: bool) -> Demand {
        let mut d = Demand::default()
            .requests(&self.history_page, 1.0)
            .rru(CHANNELS, 2.0)
            .rru(MESSAGES, 2.0)
            .lambda(AUTHORIZER_FN, ms::AUTHORIZER)
            .lambda(HISTORY_FN, ms::HTTP);
        if session_tokens {
            d = d.requests(&self.authorize, 1.0).rru(USERS, 0.5);
        }
        d.http += 1.0;
        d
    }

    pub fn channel_list(&self, channels: f64, session_tokens: bool) -> Demand {
        let mut d = Demand::default()
            .requests(&self.channel_list, 1.0)
            .rru(USER_CHANNELS, 0.5)
            .rru(CHANNELS, channels)
            .lambda(AUTHORIZER_FN, ms::AUTHORIZER)
            .lambda(HISTORY_FN, ms::HTTP);
        if session_tokens {
            d = d.requests(&self.authorize, 1.0).rru(USERS, 0.5);
        }
        d.http += 1.0;
        d
    }

    pub fn sync(&self, channels: f64, with_news: f64) -> Demand {
        let mut d = Demand::default()
            .requests(&self.sync, 1.0)
            .requests(&reqs(&[("Query", 1.0)]), with_news)
            .rru(USER_CHANNELS, 0.5)
            .rru(CHANNELS, channels)
            .rru(MESSAGES, 0.5 * with_news)
            .frame("sync")
            .lambda(SEND_FN, ms::FRAME);
        d.posts += 2.0;
        bump(&mut d.posts_by, "sync", 2.0);
        d
    }

    /// COST.md section 6: rate counter, mark used, new refresh token; the session check.
    pub fn refresh(&self) -> Demand {
        let mut d = Demand::default()
            .requests(&self.refresh, 1.0)
            .wru(RATE_LIMITS, 1.0)
            .wru(USERS, 2.0)
            .rru(USERS, 0.5)
            .lambda(AUTH_FN, ms::REFRESH);
        d.http += 1.0;
        d
    }

    /// A channel made by the harness's administrator (`Stack::create_channel`): a direct
    /// channel in one transaction, a group's members 25 to a BatchWriteItem, then its meta.
    pub fn seed_channel(members: usize) -> Demand {
        if members == 2 {
            return Demand::default().requests(&reqs(&[("TransactWriteItems", 1.0)]), 1.0);
        }
        Demand::default().requests(&reqs(&[("BatchWriteItem", members.div_ceil(25) as f64), ("PutItem", 1.0)]), 1.0)
    }
}

// ------------------------------------------------------------------ the traffic model

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FullScale {
    pub daily_users: f64,
    pub peak_online_users: f64,
    pub messages_per_day: f64,
    pub peak_factor: f64,
    pub peak_messages_per_second: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageKind {
    pub name: String,
    pub share: f64,
    pub members: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memberships {
    pub direct: f64,
    pub group_10: f64,
    pub group_100: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerSession {
    pub channel_lists: f64,
    pub history_pages: f64,
    pub syncs_per_connect: f64,
    pub channels_with_news: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusiestChannel {
    pub members: f64,
    pub messages_per_second: f64,
    pub commit_window_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepModel {
    pub round_trip_ms: f64,
    pub post_round_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutageModel {
    pub duration_seconds: f64,
    pub account_requests_per_second: f64,
    pub connection_quotas: Vec<f64>,
}

/// `bench/scale/model.json` (notes in the file are ignored here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub sizes: Vec<f64>,
    pub full_scale: FullScale,
    pub devices_per_online_user: f64,
    pub heartbeat_seconds: f64,
    pub connection_lifetime_seconds: f64,
    pub session_minutes: f64,
    pub always_connected_share: f64,
    pub average_online_to_peak: f64,
    pub message_mix: Vec<MessageKind>,
    pub recipient_online_share: f64,
    pub push_devices_per_offline_member: f64,
    pub typing_per_message: f64,
    pub receipts_per_message: f64,
    pub memberships: Memberships,
    /// Users whose presence a device shows (it subscribes to them), and how often it renews
    /// those subscriptions.
    #[serde(default = "on_screen")]
    pub on_screen_users: f64,
    #[serde(default = "renewal")]
    pub subscription_renew_seconds: f64,
    pub per_session: PerSession,
    pub token_refreshes_per_online_hour: f64,
    pub session_tokens: bool,
    pub text_bytes: f64,
    pub busiest_channel: BusiestChannel,
    pub largest_nat_users: f64,
    pub sweep: SweepModel,
    pub outage: OutageModel,
    /// Design answers to try (plans, not code): `OnlineByDeadline` shards instead of the
    /// code's 4.
    #[serde(default)]
    pub online_shards: Option<u32>,
    /// Sweep runs working at once (one per group of shards) instead of one.
    #[serde(default = "one")]
    pub sweep_parallel_runs: f64,
    /// Lazy presence: no deadline index, no sweep, no offline announcements (a contact
    /// reads `lastSeen` and the deadline when asking); heartbeats only keep the socket open.
    #[serde(default)]
    pub lazy_presence: bool,
    /// Tell contacts when a user comes online (the code does); false: they ask `getPresence`.
    #[serde(default = "yes")]
    pub announce_online: bool,
    /// Variants of this model (`set`: fields replaced), simulated beside it.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

fn one() -> f64 {
    1.0
}

fn on_screen() -> f64 {
    20.0
}

fn renewal() -> f64 {
    code::SUBSCRIPTION_WRITES_EVERY_S
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    pub set: Value,
    /// What the variant is: a plan (the default), template parameters that exist today
    /// (`in_code`), or the design before a change, for comparison (`before`).
    #[serde(default)]
    pub kind: VariantKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantKind {
    #[default]
    Plan,
    InCode,
    Before,
}

impl Model {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// This model with a variant's fields replaced (and no variants of its own).
    pub fn with(&self, variant: &Variant) -> Result<Self, String> {
        let mut value = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let (Some(fields), Some(set)) = (value.as_object_mut(), variant.set.as_object()) {
            for (k, v) in set {
                if !fields.contains_key(k) {
                    return Err(format!("variant {}: no field {k}", variant.name));
                }
                fields.insert(k.clone(), v.clone());
            }
            fields.insert("variants".into(), json!([]));
        }
        serde_json::from_value(value).map_err(|e| format!("variant {}: {e}", variant.name))
    }

    /// `OnlineByDeadline` shards: the code's, or the variant's.
    pub fn shards(&self) -> f64 {
        f64::from(self.online_shards.unwrap_or(ONLINE_SHARDS))
    }

    /// The user's channels.
    pub fn channels(&self) -> f64 {
        let m = &self.memberships;
        m.direct + m.group_10 + m.group_100
    }

    /// Connections subscribed to one user, on average: every online connection watches
    /// `on_screen_users` people, drawn from the daily users (the share online at peak is the
    /// same at every size).
    pub fn watchers(&self) -> f64 {
        let s = &self.full_scale;
        self.devices_per_online_user * self.on_screen_users * s.peak_online_users / s.daily_users
    }

    /// What one user's presence change reaches.
    pub fn announce(&self) -> Announce {
        Announce { watchers: self.watchers() }
    }

    /// How long the sweep takes per user it announces offline, s (DynamoDB round trips: the
    /// conditional update, the watchers item, the block list; then the posts 32 at a time).
    pub fn sweep_s_per_user(&self) -> f64 {
        let a = self.announce();
        let trips = 3.0;
        let post_rounds = (a.watchers / code::POSTS_IN_FLIGHT).ceil();
        (trips * self.sweep.round_trip_ms + post_rounds * self.sweep.post_round_ms) / 1000.0
    }

    /// Users one sweep invocation (one a minute) takes offline per second of work.
    pub fn sweep_capacity(&self) -> f64 {
        code::SWEEP_CONCURRENCY * self.sweep_parallel_runs / self.sweep_s_per_user()
    }
}

/// Operations per second at peak for `users` concurrent users.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Traffic {
    pub users: f64,
    pub connections: f64,
    pub messages: f64,
    pub heartbeats: f64,
    /// New WebSocket connections (sessions starting, and API Gateway's 2-hour closes).
    pub connects: f64,
    /// Users coming online (their first device; announced) and going offline (the sweep).
    pub came_online: f64,
    pub went_offline: f64,
    pub disconnects_last: f64,
    pub disconnects_other: f64,
    pub typing: f64,
    pub receipts: f64,
    pub syncs: f64,
    pub history_pages: f64,
    pub channel_lists: f64,
    /// `subscribePresence` renewals of the users on screen.
    pub subscription_renewals: f64,
    pub refreshes: f64,
    pub pushes: f64,
    /// One sweep run's length, s (50 s of passes, or the work when that is longer).
    pub sweep_run_s: f64,
}

impl Model {
    pub fn traffic(&self, users: f64) -> Traffic {
        let devices = self.devices_per_online_user;
        let connections = users * devices;
        let session_s = self.session_minutes * 60.0;
        let a = self.always_connected_share;
        let came_online = users * (1.0 - a) / session_s;
        let recycled = connections * a / self.connection_lifetime_seconds;
        let connects = connections * (1.0 - a) / session_s + recycled;
        let messages = self.full_scale.peak_messages_per_second * users / self.full_scale.peak_online_users;
        // A 2-hour close of a user's only connection is a last-device disconnect too.
        let disconnects_last = came_online + recycled / devices;
        let went_offline = came_online;
        let work_s = went_offline * 60.0 / self.sweep_capacity();
        Traffic {
            users,
            connections,
            messages,
            heartbeats: connections / self.heartbeat_seconds,
            connects,
            came_online,
            went_offline,
            disconnects_last,
            disconnects_other: (connects - disconnects_last).max(0.0),
            typing: messages * self.typing_per_message,
            receipts: messages * self.receipts_per_message,
            syncs: connects * self.per_session.syncs_per_connect,
            history_pages: came_online * self.per_session.history_pages,
            channel_lists: came_online * self.per_session.channel_lists,
            subscription_renewals: connections / self.subscription_renew_seconds,
            refreshes: users * self.token_refreshes_per_online_hour / 3600.0,
            pushes: 0.0,
            // A run cannot outlast its timeout: past that the backlog grows (see `sweep`).
            sweep_run_s: (ms::SWEEP_RUN / 1000.0).max(work_s).min(code::SWEEP_TIMEOUT_S),
        }
    }

    /// One message of the mix with its typing indicator and receipt, and the pushes it makes.
    pub fn per_message(&self, f: &Figures) -> (Demand, f64) {
        let devices = self.devices_per_online_user;
        let mut d = Demand::default();
        let mut pushes = 0.0;
        for kind in &self.message_mix {
            let others = kind.members - 1.0;
            let online = others * self.recipient_online_share * devices + (devices - 1.0);
            let push = others * (1.0 - self.recipient_online_share) * self.push_devices_per_offline_member;
            d.add(&f.send(kind.members, online, push), kind.share);
            d.add(&f.typing(kind.members, online), kind.share * self.typing_per_message);
            d.add(&f.mark_read(kind.members, online), kind.share * self.receipts_per_message);
            pushes += kind.share * push;
        }
        (d, pushes)
    }

    /// Everything but the messages, per second of the traffic `t`: connections, heartbeats,
    /// presence and the sweep, HTTP.
    pub fn sessions(&self, f: &Figures, t: &Traffic) -> Demand {
        let announce = self.announce();
        let mut d = Demand::default();
        d.add(&f.heartbeat(), t.heartbeats);
        let online = self.announce_online.then_some(&announce);
        d.add(&f.connect(online, self.session_tokens), t.came_online);
        d.add(&f.connect(None, self.session_tokens), t.connects - t.came_online);
        let lazy = self.lazy_presence;
        d.add(&f.disconnect(true, !lazy), t.disconnects_last);
        d.add(&f.disconnect(false, true), t.disconnects_other);
        if !lazy {
            d.add(&f.went_offline(&announce), t.went_offline);
            if t.users > 0.0 {
                // Each of the runs reads its share of the shards.
                let shards = self.shards() / self.sweep_parallel_runs;
                d.add(&f.sweep_run(t.sweep_run_s * 1000.0, shards), self.sweep_parallel_runs / 60.0);
            }
        }
        d.add(&f.sync(self.channels(), self.per_session.channels_with_news), t.syncs);
        d.add(&f.history_page(self.session_tokens), t.history_pages);
        d.add(&f.channel_list(self.channels(), self.session_tokens), t.channel_lists);
        d.add(&f.subscription_renewal(self.on_screen_users, announce.watchers), t.subscription_renewals);
        d.add(&f.refresh(), t.refreshes);
        if lazy {
            // No deadline index: heartbeats, connects and departures write the item alone.
            d.wru.remove(ONLINE_BY_DEADLINE);
            d.rru.remove(ONLINE_BY_DEADLINE);
        }
        d
    }

    /// What `users` concurrent users ask of AWS in one second at peak.
    pub fn peak(&self, f: &Figures, users: f64) -> (Traffic, Demand) {
        let mut t = self.traffic(users);
        let (one, pushes) = self.per_message(f);
        let mut d = self.sessions(f, &t);
        d.add(&one, t.messages);
        t.pushes = pushes * t.messages;
        (t, d)
    }
}

// ------------------------------------------------------------------ quotas and hot keys

/// One quota (or hot key) against its demand at peak.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuotaRow {
    pub id: String,
    pub what: String,
    pub demand: f64,
    pub limit: f64,
    pub unit: String,
    /// Concurrent users at which the demand reaches the limit (None: not with the size).
    pub breaks_at_users: Option<f64>,
    pub note: String,
}

impl QuotaRow {
    pub fn used(&self) -> f64 {
        self.demand / self.limit
    }
    pub fn status(&self) -> &'static str {
        match self.used() {
            u if u > 1.0 => "OVER",
            u if u > 0.8 => "near",
            _ => "ok",
        }
    }
}

/// A busy channel's commits under optimistic concurrency: an attempt fails when another
/// commit lands within its window (the seq it read moved): success `e^(-rate·window)`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Contention {
    pub messages_per_second: f64,
    pub attempts_per_message: f64,
    /// WRU/s on the channel's meta item (2 per transaction attempt, refused ones bill too).
    pub meta_item_wru: f64,
    /// WRU/s on the channel's partition key in Channels (meta, dedupe row, sender's member
    /// item: 6 per attempt) plus receipts' member updates.
    pub partition_wru: f64,
    /// RRU/s on it: roster Queries of sends, typing and receipts, the receipts' GetItem.
    pub partition_rru: f64,
    /// The rate at which the partition reaches 1,000 WRU/s.
    pub ceiling_messages_per_second: f64,
}

pub fn contention(model: &Model) -> Contention {
    let b = &model.busiest_channel;
    let w = b.commit_window_ms / 1000.0;
    let per_attempt = |rate: f64| rate * (rate * w).exp();
    let partition = |rate: f64| 6.0 * per_attempt(rate) + rate * model.receipts_per_message * 1.0;
    let (mut low, mut high) = (0.0, 10_000.0);
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if partition(mid) > quota::PARTITION_WRU { high = mid } else { low = mid }
    }
    let rate = b.messages_per_second;
    let reads = rate * (1.0 + model.typing_per_message + model.receipts_per_message) * roster_rru(b.members)
        + rate * model.receipts_per_message;
    Contention {
        messages_per_second: rate,
        attempts_per_message: (rate * w).exp(),
        meta_item_wru: 2.0 * per_attempt(rate),
        partition_wru: partition(rate),
        partition_rru: reads,
        ceiling_messages_per_second: low,
    }
}

fn secs_to_scale(concurrency: f64) -> f64 {
    (concurrency / quota::LAMBDA_SCALING_PER_10_S).ceil() * 10.0
}

/// Every quota and hot key that applies, at `users` (breaking points not filled in).
/// Search indexing (docs/COST.md "Search", docs/SCALE.md "Search: one writer per index
/// shard"): Lambda reads each stream shard one batch at a time (up to 500 records, waiting
/// up to 2 s to fill one); each batch publishes every index shard it touches, and a shard's
/// publishes are serialised by its manifest's conditional write (~0.2 s each).
pub mod search {
    /// `SearchShards` (template.yaml default).
    pub const INDEX_SHARDS: f64 = chat_domain::settings::DEFAULT_SEARCH_SHARDS as f64;
    /// `SearchIndexerMapping`: `BatchSize`, `MaximumBatchingWindowInSeconds`.
    pub const BATCH: f64 = 500.0;
    pub const WINDOW_S: f64 = 2.0;
    /// Publishes one index shard takes a second (an S3 PUT and a manifest write, ~0.2 s).
    pub const PUBLISHES_PER_SHARD_S: f64 = 5.0;
    /// What a publish costs (S3 PUT $0.000005, manifest 6 WRU, its read 2 RRU) and a batch's
    /// Lambda (COST.md "Search").
    pub const PER_PUBLISH: f64 = 0.000009;
    pub const PER_BATCH_LAMBDA: f64 = 0.0000015;
    pub const PER_MESSAGE_LAMBDA: f64 = 0.000000005;
    /// One stream shard per ~1,000 WRU/s of the table (a stream has about as many shards as
    /// the table has partitions).
    pub const WRU_PER_STREAM_SHARD: f64 = 1_000.0;
}

/// How the search indexer runs at `messages_per_s` into a Messages table taking
/// `messages_wru_per_s`.
#[derive(Debug, Clone, Copy)]
pub struct SearchIndexing {
    pub stream_shards: f64,
    pub batches_per_s: f64,
    pub publishes_per_index_shard_s: f64,
    /// Dollars per second of this traffic.
    pub dollars_per_s: f64,
}

pub fn search_indexing(messages_per_s: f64, messages_wru_per_s: f64) -> SearchIndexing {
    if messages_per_s <= 0.0 {
        return SearchIndexing {
            stream_shards: 0.0,
            batches_per_s: 0.0,
            publishes_per_index_shard_s: 0.0,
            dollars_per_s: 0.0,
        };
    }
    let stream_shards = (messages_wru_per_s / search::WRU_PER_STREAM_SHARD).ceil().max(1.0);
    let per_shard = messages_per_s / stream_shards;
    // A batch waits up to the window to fill; a busy shard fills batches of 500 sooner.
    let batches_per_shard = per_shard.min((per_shard / search::BATCH).max(1.0 / search::WINDOW_S));
    let per_batch = per_shard / batches_per_shard;
    let touched = search::INDEX_SHARDS.min(per_batch.max(1.0));
    let batches_per_s = batches_per_shard * stream_shards;
    SearchIndexing {
        stream_shards,
        batches_per_s,
        publishes_per_index_shard_s: batches_per_s * touched / search::INDEX_SHARDS,
        dollars_per_s: batches_per_s * (touched * search::PER_PUBLISH + search::PER_BATCH_LAMBDA)
            + messages_per_s * search::PER_MESSAGE_LAMBDA,
    }
}

fn quota_rows_at(model: &Model, f: &Figures, users: f64) -> Vec<QuotaRow> {
    let (t, d) = model.peak(f, users);
    let scale = users / model.full_scale.peak_online_users;
    let row = |id: &str, what: &str, demand: f64, limit: f64, unit: &str, note: String| QuotaRow {
        id: id.to_owned(),
        what: what.to_owned(),
        demand,
        limit,
        unit: unit.to_owned(),
        breaks_at_users: None,
        note,
    };
    let mut rows = Vec::new();
    rows.push(row(
        "ws_new_connections",
        "API Gateway: new WebSocket connections / s (account, Region)",
        t.connects,
        quota::WEBSOCKET_NEW_CONNECTIONS,
        "/s",
        format!(
            "sessions starting + 2-hour closes; also caps sockets at quota × 7,200 s ({:.1} M at 500/s)",
            quota::WEBSOCKET_NEW_CONNECTIONS * 7_200.0 / 1e6
        ),
    ));
    rows.push(row(
        "account_rps",
        "API Gateway: requests / s (account throttle, every API)",
        d.api_requests(),
        quota::ACCOUNT_REQUESTS,
        "/s",
        format!(
            "frames in {:.0} (heartbeats {:.0}), posts {:.0}, HTTP {:.0}, handshakes {:.0}; burst {:.0}",
            d.frames(),
            t.heartbeats,
            d.posts,
            d.http,
            d.handshakes,
            quota::ACCOUNT_BURST
        ),
    ));
    let (route, busiest) =
        d.frames_in.iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(r, v)| (r.clone(), *v)).unwrap_or_default();
    rows.push(row(
        "stage_route",
        "WebSocket stage throttle, busiest route (template.yaml)",
        busiest,
        quota::STAGE_ROUTE_REQUESTS,
        "/s",
        format!("route `{route}`; all routes together {:.0}/s; burst 500", d.frames()),
    ));
    let concurrency = sum(&d.lambda_s);
    let (busiest_fn, busiest_conc) =
        d.lambda_s.iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, v)| (k.clone(), *v)).unwrap_or_default();
    rows.push(row(
        "lambda_concurrency",
        "Lambda: concurrent executions (account)",
        concurrency,
        quota::LAMBDA_CONCURRENCY,
        "",
        format!("busiest {busiest_fn} {busiest_conc:.0}"),
    ));
    let window_s = PresenceSettings::default().window_ms as f64 / 1000.0;
    rows.push(row(
        "lambda_scaling",
        "Lambda: s for the busiest function to scale from 0 (1,000 per 10 s)",
        secs_to_scale(busiest_conc),
        window_s,
        "s",
        format!("{busiest_fn} at {busiest_conc:.0}; limit: the presence window, past which heartbeats lost show users offline"),
    ));
    let (wtable, wmax) =
        d.wru.iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, v)| (k.clone(), *v)).unwrap_or_default();
    rows.push(row(
        "table_wru",
        "DynamoDB: WRU / s of the busiest table or index (on demand, 40,000 default)",
        wmax,
        quota::TABLE_WRU,
        "WRU/s",
        {
            let doublings = (wmax / quota::NEW_TABLE_WRU).log2().ceil().max(0.0);
            format!(
                "{wtable}; a new table serves {:.0} at once: {doublings:.0} doublings of 30 min ({:.1} h) or pre-warm",
                quota::NEW_TABLE_WRU,
                doublings * 0.5
            )
        },
    ));
    let (rtable, rmax) =
        d.rru.iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, v)| (k.clone(), *v)).unwrap_or_default();
    rows.push(row(
        "table_rru",
        "DynamoDB: RRU / s of the busiest table or index (on demand, 40,000 default)",
        rmax,
        quota::TABLE_RRU,
        "RRU/s",
        format!("{rtable}; a new table serves {:.0} at once", quota::NEW_TABLE_RRU),
    ));
    let shard_wru = d.wru.get(ONLINE_BY_DEADLINE).copied().unwrap_or(0.0) / model.shards();
    rows.push(row(
        "online_shard",
        "DynamoDB hot key: one OnlineByDeadline shard (WRU / s)",
        shard_wru,
        quota::PARTITION_WRU,
        "WRU/s",
        format!(
            "{:.0} shards; 2 WRU per heartbeat and connect (the sort key moves), a sort key that always grows: split for heat cannot help",
            model.shards()
        ),
    ));
    rows.push(row(
        "sweep",
        "Presence sweep: users to take offline / s (PresenceSweepRuns runs a minute, 16 users at a time each)",
        if model.lazy_presence { 0.0 } else { t.went_offline },
        model.sweep_capacity(),
        "/s",
        format!(
            "{:.0} run(s) (the template's default 1, up to {:.0}); ~{:.0} ms per user; past it runs last their {:.0} s timeout and the backlog grows",
            model.sweep_parallel_runs,
            code::MAX_SWEEP_RUNS,
            model.sweep_s_per_user() * 1000.0,
            code::SWEEP_TIMEOUT_S,
        ),
    ));
    rows.push(row(
        "sns",
        "SNS: publishes / s (us-east-1, 30,000: not checked here)",
        d.sns,
        quota::SNS_PUBLISH,
        "/s",
        "one per offline recipient device".into(),
    ));
    // Valid refreshes count per session (in the session's own tokens), refused ones per
    // address: a NAT's users no longer share a count, so the row is one session's.
    let refresh_limit = RateLimits::default().refreshes;
    rows.push(row(
        "session_refresh",
        "Rate limit: token refreshes / h of one session",
        model.token_refreshes_per_online_hour,
        refresh_limit.count as f64 * 3_600_000.0 / refresh_limit.window_ms as f64,
        "/h",
        format!(
            "per session, whatever the users behind one address ({:.0} behind the largest, assumption); \
             only refused tokens count per address",
            model.largest_nat_users * scale
        ),
    ));
    let indexing = search_indexing(t.messages, d.wru.get(MESSAGES).copied().unwrap_or(0.0));
    rows.push(row(
        "search_publishes",
        "Search: publishes / s of one index shard (its manifest takes one writer at a time)",
        indexing.publishes_per_index_shard_s,
        search::PUBLISHES_PER_SHARD_S,
        "/s",
        format!(
            "{:.0} stream shard(s) (~1 per 1,000 Messages WRU/s), each a batch every {:.2} s, publishing each of the {:.0} index shards; past it indexers collide and the index falls behind",
            indexing.stream_shards,
            indexing.stream_shards / indexing.batches_per_s.max(1e-9),
            search::INDEX_SHARDS
        ),
    ));
    let c = contention(model);
    rows.push(row(
        "channel_partition",
        "DynamoDB hot key: the busiest channel in Channels (WRU / s)",
        c.partition_wru,
        quota::PARTITION_WRU,
        "WRU/s",
        format!(
            "{:.0} msg/s into {:.0} members, {:.2} attempts each; the meta item alone {:.0} WRU/s; ceiling ~{:.0} msg/s",
            c.messages_per_second,
            model.busiest_channel.members,
            c.attempts_per_message,
            c.meta_item_wru,
            c.ceiling_messages_per_second
        ),
    ));
    rows.push(row(
        "channel_reads",
        "DynamoDB hot key: the busiest channel in Channels (RRU / s)",
        c.partition_rru,
        quota::PARTITION_RRU,
        "RRU/s",
        "roster Queries of sends, typing and receipts; receipts' GetItem".into(),
    ));
    rows
}

/// Quotas with the number of concurrent users at which each reaches its limit (bisection on
/// the model: every demand grows with the users).
pub fn quota_rows(model: &Model, f: &Figures, users: f64) -> Vec<QuotaRow> {
    let mut rows = quota_rows_at(model, f, users);
    let used_at =
        |id: &str, u: f64| quota_rows_at(model, f, u).into_iter().find(|r| r.id == id).map(|r| r.used()).unwrap_or(0.0);
    for row in &mut rows {
        let id = row.id.clone();
        let (small, large) = (used_at(&id, 1_000.0), used_at(&id, 1e10));
        if (large - small).abs() < 1e-9 || large <= 1.0 {
            continue; // does not grow with the size, or never reaches its limit
        }
        if small > 1.0 {
            row.breaks_at_users = Some(1_000.0);
            continue;
        }
        let (mut low, mut high) = (1_000.0_f64.ln(), 1e10_f64.ln());
        for _ in 0..60 {
            let mid = (low + high) / 2.0;
            if used_at(&id, mid.exp()) > 1.0 { high = mid } else { low = mid }
        }
        row.breaks_at_users = Some(high.exp());
    }
    rows
}

/// The hottest keys at peak.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HotKey {
    pub key: String,
    pub wru: f64,
    pub rru: f64,
    pub note: String,
}

impl HotKey {
    pub fn used(&self) -> f64 {
        (self.wru / quota::PARTITION_WRU).max(self.rru / quota::PARTITION_RRU)
    }
}

pub fn hot_keys(model: &Model, f: &Figures, users: f64) -> Vec<HotKey> {
    let (t, d) = model.peak(f, users);
    let c = contention(model);
    let b = &model.busiest_channel;
    let sends = RateLimits::default().sends;
    let mut keys = vec![
        HotKey {
            key: format!("Presence/OnlineByDeadline: onlineShard = n (each of {:.0})", model.shards()),
            wru: d.wru.get(ONLINE_BY_DEADLINE).copied().unwrap_or(0.0) / model.shards(),
            rru: d.rru.get(ONLINE_BY_DEADLINE).copied().unwrap_or(0.0) / model.shards(),
            note: format!("heartbeats {:.0}/s, connects {:.0}/s move the sort key", t.heartbeats, t.connects),
        },
        HotKey {
            key: "Channels: the busiest channel's pk (meta, dedupe rows, members)".into(),
            wru: c.partition_wru,
            rru: c.partition_rru,
            note: format!("{:.0} msg/s, {:.2} attempts each", b.messages_per_second, c.attempts_per_message),
        },
        HotKey {
            key: "Channels: the busiest channel's meta item (seq)".into(),
            wru: c.meta_item_wru,
            rru: 0.0,
            note: "one item: no split can spread it".into(),
        },
        HotKey {
            key: "Messages: the busiest channel's current bucket".into(),
            wru: 2.0 * c.messages_per_second * c.attempts_per_message,
            rru: 0.0,
            note: "the message Put in every attempt".into(),
        },
        HotKey {
            key: "Presence: a member of the busiest channel".into(),
            wru: 0.0,
            rru: 0.5 * b.messages_per_second * (1.0 + model.typing_per_message + model.receipts_per_message),
            note: "read by each send, typing and receipt".into(),
        },
        HotKey {
            key: format!(
                "Presence: a much-watched user's watchers item ({:.0} connections, the cap)",
                code::MAX_WATCHERS
            ),
            wru: code::MAX_WATCHERS / model.subscription_renew_seconds
                * (watchers_item_bytes(code::MAX_WATCHERS) / 1024.0).ceil(),
            rru: 0.0,
            note: format!(
                "each watcher's subscribe and its end rewrite the whole ~{:.0} KB item (one write per watcher every {:.0} s on average)",
                watchers_item_bytes(code::MAX_WATCHERS) / 1024.0,
                model.subscription_renew_seconds,
            ),
        },
        HotKey {
            key: "RateLimits: one user's send counter".into(),
            wru: sends.count as f64 * 1000.0 / sends.window_ms as f64,
            rru: 0.0,
            note: "at RATE_LIMIT_SENDS; refused sends count too (a flood is capped by the stage throttle)".into(),
        },
    ];
    keys.sort_by(|a, b| b.used().total_cmp(&a.used()));
    keys
}

// ------------------------------------------------------------------ the monthly bill

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BillLine {
    pub service: String,
    pub item: String,
    pub quantity: f64,
    pub unit: String,
    pub dollars: f64,
}

/// The month: session-driven traffic at the average (peak × `average_online_to_peak`),
/// messages at `messages_per_day` (both scaled to the size).
pub fn month(model: &Model, f: &Figures, users: f64) -> (Demand, Vec<BillLine>) {
    let scale = users / model.full_scale.peak_online_users;
    let average = model.traffic(users * model.average_online_to_peak);
    let messages = model.full_scale.messages_per_day * 30.0 * scale;
    let (one, _) = model.per_message(f);
    let mut d = Demand::default();
    d.add(&model.sessions(f, &average), MONTH_S);
    d.add(&one, messages);
    let connection_minutes = average.connections * MONTH_S / 60.0;
    let stored_gb = messages * (300.0 + model.text_bytes) / (1u64 << 30) as f64;
    // The indexer at the month's average rate (batches fill less than at peak).
    let average_rate = messages / MONTH_S;
    let per_message_wru = one.wru.get(MESSAGES).copied().unwrap_or(0.0);
    let search_dollars = search_indexing(average_rate, average_rate * per_message_wru).dollars_per_s * MONTH_S;

    let invocations = sum(&d.invocations);
    // X-Ray: each function's first invocation a second, then 5 % (COST.md section 7).
    let traces: f64 = d.invocations.values().map(|n| (n.min(MONTH_S)) + 0.05 * (n - MONTH_S).max(0.0)).sum();
    let log_gb = (invocations * log_bytes::PER_INVOCATION + d.log_bytes) / (1u64 << 30) as f64;
    let line = |service: &str, item: &str, quantity: f64, unit: &str, dollars: f64| BillLine {
        service: service.into(),
        item: item.into(),
        quantity,
        unit: unit.into(),
        dollars,
    };
    let wru = sum(&d.wru);
    let rru = sum(&d.rru);
    let lines = vec![
        line("DynamoDB", "writes", wru, "WRU", wru * price::WRU),
        line("DynamoDB", "reads", rru, "RRU", rru * price::RRU),
        line(
            "DynamoDB",
            "history added this month (storage + PITR, for every later month too)",
            stored_gb,
            "GB",
            stored_gb * price::STORAGE_GB_MONTH,
        ),
        line(
            "API Gateway",
            "WebSocket messages (in, acks, posts)",
            d.websocket_messages(),
            "messages",
            d.websocket_messages() * price::WEBSOCKET_MESSAGE,
        ),
        line(
            "API Gateway",
            "connection minutes",
            connection_minutes,
            "minutes",
            connection_minutes * price::CONNECTION_MINUTE,
        ),
        line("API Gateway", "HTTP API requests", d.http, "requests", d.http * price::HTTP_REQUEST),
        line("Lambda", "invocations", invocations, "requests", invocations * price::LAMBDA_REQUEST),
        line("Lambda", "duration (arm64)", d.gb_s(), "GB-s", d.gb_s() * price::LAMBDA_GB_S),
        line("SNS", "pushes", d.sns, "publishes", d.sns * price::SNS_PUBLISH),
        line("Search", "indexing (S3 PUTs, manifests, the indexer)", messages, "messages", search_dollars),
        line("CloudWatch", "logs and EMF lines", log_gb, "GB", log_gb * price::LOGS_GB),
        line("X-Ray", "traces (tracing Active)", traces, "traces", traces * price::XRAY_TRACE),
        line("fixed", "secret, alarms, dashboard, custom metrics", 1.0, "stack", price::FIXED_MONTH),
    ];
    (d, lines)
}

// ------------------------------------------------------------------ the regional outage

/// A regional outage: every connection dropped for `outage_s`, then the clients come back
/// with their backoff (web/public/js/chat-protocol.js: equal jitter, 0.5 s doubling to
/// 30 s; after two failed opens each attempt first refreshes the token over HTTP) against
/// API Gateway's new-connection quota and its account throttle (the refreshes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outage {
    pub connections: f64,
    pub quota_per_s: f64,
    pub minutes_to: BTreeMap<String, Option<f64>>,
    pub peak_attempts_per_s: f64,
    pub refused_handshakes: f64,
    pub peak_refreshes_per_s: f64,
    pub refreshes: f64,
    pub refused_refreshes: f64,
}

pub fn outage(connections: f64, outage_s: f64, quota_per_s: f64, http_per_s: f64) -> Outage {
    const LEVELS: usize = 8;
    let horizon = (outage_s + connections / quota_per_s * 1.5 + 600.0).ceil() as usize;
    let ceiling = |level: usize| (code::BACKOFF_FIRST_S * 2f64.powi(level as i32)).min(code::BACKOFF_MAX_S);
    // waiting[level][second]: clients whose next attempt falls in that second.
    let mut waiting = vec![vec![0.0_f64; horizon + 64]; LEVELS];
    // Dropped at t = 0: the first attempt within the first ceiling.
    waiting[0][0] = connections;
    let reschedule = |waiting: &mut Vec<Vec<f64>>, level: usize, now: usize, count: f64| {
        let next = (level + 1).min(LEVELS - 1);
        let c = ceiling(level + 1);
        // Uniform in [c/2, c] seconds, spread over whole seconds.
        let (from, to) = (c / 2.0, c);
        let first = from.floor() as usize;
        let last = to.ceil().max(1.0) as usize;
        let span = (to - from).max(1e-9);
        for s in first..last {
            let lo = (s as f64).max(from);
            let hi = ((s + 1) as f64).min(to);
            if hi > lo {
                let slot = (now + s.max(1)).min(waiting[next].len() - 1);
                waiting[next][slot] += count * (hi - lo) / span;
            }
        }
    };
    let mut connected = 0.0;
    let mut minutes_to: BTreeMap<String, Option<f64>> =
        ["50%", "90%", "99%", "100%"].iter().map(|k| ((*k).to_owned(), None)).collect();
    let (mut peak_attempts, mut refused, mut peak_refresh, mut refreshes, mut refused_refreshes) =
        (0.0_f64, 0.0, 0.0_f64, 0.0, 0.0);
    for now in 0..horizon {
        let up = now as f64 >= outage_s;
        let attempts: Vec<f64> = (0..LEVELS).map(|l| std::mem::take(&mut waiting[l][now])).collect();
        let total: f64 = attempts.iter().sum();
        if up {
            peak_attempts = peak_attempts.max(total);
        }
        // Refresh first (web client, after two failed opens): HTTP, throttled by the account.
        let wanting_refresh: f64 = attempts[code::REFRESH_AFTER_FAILED_OPENS..].iter().sum();
        let refresh_pass = if up && wanting_refresh > 0.0 { (http_per_s / wanting_refresh).min(1.0) } else { 0.0 };
        if up {
            peak_refresh = peak_refresh.max(wanting_refresh);
            refreshes += wanting_refresh;
            refused_refreshes += wanting_refresh * (1.0 - refresh_pass);
        }
        let opening: Vec<f64> = attempts
            .iter()
            .enumerate()
            .map(|(level, tried)| {
                let pass = if level >= code::REFRESH_AFTER_FAILED_OPENS {
                    refresh_pass
                } else if up {
                    1.0
                } else {
                    0.0
                };
                tried * pass
            })
            .collect();
        for (level, (tried, open)) in attempts.iter().zip(&opening).enumerate() {
            if tried - open > 0.0 {
                reschedule(&mut waiting, level, now, tried - open);
            }
        }
        let handshakes: f64 = opening.iter().sum();
        let admit = if up && handshakes > 0.0 { (quota_per_s / handshakes).min(1.0) } else { 0.0 };
        connected += handshakes * admit;
        for (level, open) in opening.iter().enumerate() {
            let turned_away = open * (1.0 - admit);
            if turned_away > 0.0 {
                refused += turned_away;
                reschedule(&mut waiting, level, now, turned_away);
            }
        }
        for (key, share) in [("50%", 0.5), ("90%", 0.9), ("99%", 0.99), ("100%", 0.9999)] {
            let slot = minutes_to.get_mut(key).expect("key");
            if slot.is_none() && connected >= connections * share {
                *slot = Some((now as f64 + 1.0 - outage_s) / 60.0);
            }
        }
        if connected >= connections * 0.9999 {
            break;
        }
    }
    Outage {
        connections,
        quota_per_s,
        minutes_to,
        peak_attempts_per_s: peak_attempts,
        refused_handshakes: refused,
        peak_refreshes_per_s: peak_refresh,
        refreshes,
        refused_refreshes,
    }
}

// ------------------------------------------------------------------ one size, all sizes

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SizeResult {
    pub users: f64,
    pub connections: f64,
    pub traffic: Traffic,
    pub peak: Demand,
    pub quotas: Vec<QuotaRow>,
    pub hot_keys: Vec<HotKey>,
    pub bill: Vec<BillLine>,
    pub month_dollars: f64,
    pub outages: Vec<Outage>,
    /// The quotas over their limit at this size, first to break first (those that grow
    /// with the size; [`SizeResult::quotas`] has the others too).
    pub broken: Vec<String>,
}

pub fn simulate(model: &Model, f: &Figures, users: f64) -> SizeResult {
    let (traffic, peak) = model.peak(f, users);
    let quotas = quota_rows(model, f, users);
    let (_, bill) = month(model, f, users);
    let outages = model
        .outage
        .connection_quotas
        .iter()
        .map(|q| {
            outage(traffic.connections, model.outage.duration_seconds, *q, model.outage.account_requests_per_second)
        })
        .collect();
    // Rows that do not grow with the size (the busiest channel) are over at any size: said apart.
    let mut broken: Vec<&QuotaRow> = quotas.iter().filter(|r| r.used() > 1.0 && r.breaks_at_users.is_some()).collect();
    broken.sort_by(|a, b| {
        a.breaks_at_users
            .unwrap_or(0.0)
            .total_cmp(&b.breaks_at_users.unwrap_or(0.0))
            .then(b.used().total_cmp(&a.used()))
    });
    SizeResult {
        users,
        connections: traffic.connections,
        month_dollars: bill.iter().map(|l| l.dollars).sum(),
        hot_keys: hot_keys(model, f, users),
        broken: broken.iter().map(|r| r.id.clone()).collect(),
        traffic,
        peak,
        quotas,
        bill,
        outages,
    }
}

// ------------------------------------------------------------------ printing

/// 1234567 → "1.23 M"; 12345 → "12,345"; 0.5 → "0.50".
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if a >= 100.0 {
        let n = v.round() as i64;
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn dollars(v: f64) -> String {
    if v >= 100.0 { format!("${}", human(v)) } else { format!("${v:.2}") }
}

fn users_label(users: f64) -> String {
    let millions = users / 1e6;
    if users >= 1e6 && millions.fract() == 0.0 { format!("{millions:.0} million") } else { human(users) }
}

/// The tables of one size: peak rates per service, quotas, hot keys, the month.
pub fn size_table(r: &SizeResult) -> String {
    let d = &r.peak;
    let t = &r.traffic;
    let rate = |k: &str, v: f64, note: &str| vec![k.to_owned(), human(v), note.to_owned()];
    let rates = vec![
        rate("messages / s", t.messages, "sendMessage"),
        rate("heartbeats / s", t.heartbeats, "one per connection every 30 s"),
        rate("new connections / s", t.connects, &format!("{} announced (users coming online)", human(t.came_online))),
        rate("users going offline / s", t.went_offline, "told by the sweep"),
        rate("typing + receipts / s", t.typing + t.receipts, ""),
        rate(
            "API Gateway WebSocket messages / s",
            d.websocket_messages(),
            &format!(
                "frames in {}, acks {}, posts {} ({})",
                human(d.frames()),
                human(d.route_responses),
                human(d.posts),
                d.posts_by.iter().map(|(k, v)| format!("{k} {}", human(*v))).collect::<Vec<_>>().join(", ")
            ),
        ),
        rate("API Gateway HTTP requests / s", d.http, "history, channel lists, refreshes"),
        rate(
            "DynamoDB requests / s",
            d.dynamodb_requests(),
            &d.dynamodb.iter().map(|(k, v)| format!("{k} {}", human(*v))).collect::<Vec<_>>().join(", "),
        ),
        rate(
            "DynamoDB WRU / s",
            sum(&d.wru),
            &d.wru.iter().map(|(k, v)| format!("{k} {}", human(*v))).collect::<Vec<_>>().join(", "),
        ),
        rate(
            "DynamoDB RRU / s",
            sum(&d.rru),
            &d.rru.iter().map(|(k, v)| format!("{k} {}", human(*v))).collect::<Vec<_>>().join(", "),
        ),
        rate(
            "Lambda invocations / s",
            sum(&d.invocations),
            &d.invocations
                .iter()
                .map(|(k, v)| format!("{} {}", k.trim_end_matches("Function"), human(*v)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        rate(
            "Lambda concurrency",
            sum(&d.lambda_s),
            &d.lambda_s
                .iter()
                .map(|(k, v)| format!("{} {}", k.trim_end_matches("Function"), human(*v)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        rate("SNS publishes / s", d.sns, "pushes to offline devices"),
    ];
    let mut out = format!(
        "### {} concurrent users ({} connections)\n\nAt peak, per second:\n\n",
        users_label(r.users),
        human(r.connections)
    );
    out.push_str(&table(&["at peak", "per second", "of which"], &rates));
    out.push_str("\nQuotas at peak:\n\n");
    let quotas: Vec<Vec<String>> = r
        .quotas
        .iter()
        .map(|q| {
            vec![
                q.what.clone(),
                human(q.demand),
                human(q.limit),
                format!("{:.0} %", q.used() * 100.0),
                q.status().to_owned(),
                q.breaks_at_users.map_or("-".into(), human),
                q.note.clone(),
            ]
        })
        .collect();
    out.push_str(&table(&["quota", "demand", "limit", "used", "", "reached at users", "note"], &quotas));
    out.push_str("\nHottest keys (per partition: 1,000 WRU/s, 3,000 RRU/s):\n\n");
    let keys: Vec<Vec<String>> = r
        .hot_keys
        .iter()
        .map(|k| vec![k.key.clone(), human(k.wru), human(k.rru), format!("{:.0} %", k.used() * 100.0), k.note.clone()])
        .collect();
    out.push_str(&table(&["key", "WRU/s", "RRU/s", "used", "note"], &keys));
    out.push_str("\nThe month (30 days; docs/COST.md prices):\n\n");
    let mut bill: Vec<Vec<String>> = r
        .bill
        .iter()
        .map(|l| {
            vec![l.service.clone(), l.item.clone(), format!("{} {}", human(l.quantity), l.unit), dollars(l.dollars)]
        })
        .collect();
    bill.push(vec!["total".into(), String::new(), String::new(), dollars(r.month_dollars)]);
    out.push_str(&table(&["service", "item", "quantity", "$"], &bill));
    out.push_str("\nAfter a 10-minute regional outage (everyone dropped; clients' backoff):\n\n");
    let outages: Vec<Vec<String>> = r
        .outages
        .iter()
        .map(|o| {
            let m = |k: &str| o.minutes_to.get(k).copied().flatten().map_or("-".into(), |v| format!("{v:.1}"));
            vec![
                human(o.quota_per_s),
                format!("{} / {} / {} / {}", m("50%"), m("90%"), m("99%"), m("100%")),
                human(o.peak_attempts_per_s),
                human(o.refused_handshakes),
                format!("{} ({} refused)", human(o.peak_refreshes_per_s), human(o.refused_refreshes)),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "new connections / s allowed",
            "minutes to 50 / 90 / 99 / 100 % back",
            "peak attempts / s",
            "handshakes refused",
            "peak token refreshes / s",
        ],
        &outages,
    ));
    out
}

/// The overview: per size, what is over its limit, first to break first.
pub fn overview_table(results: &[SizeResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let over: Vec<String> = r
                .broken
                .iter()
                .filter_map(|id| r.quotas.iter().find(|q| &q.id == id))
                .map(|q| format!("{} ({:.1}×)", q.id, q.used()))
                .collect();
            vec![
                users_label(r.users),
                human(r.traffic.messages),
                dollars(r.month_dollars),
                if over.is_empty() { "nothing".into() } else { over.join(", ") },
            ]
        })
        .collect();
    table(&["concurrent users", "messages / s at peak", "per month", "over the limit (first to break first)"], &rows)
}

/// Where each quota breaks (concurrent users), first first.
pub fn breaking_points(results: &[SizeResult]) -> Vec<(String, String, f64)> {
    let Some(last) = results.last() else { return Vec::new() };
    let mut points: Vec<(String, String, f64)> =
        last.quotas.iter().filter_map(|q| Some((q.id.clone(), q.what.clone(), q.breaks_at_users?))).collect();
    points.sort_by(|a, b| a.2.total_cmp(&b.2));
    points
}

// ------------------------------------------------------------------ the plot

/// Use of each quota that grows with the size (log-log), one curve per quota.
pub fn plot(path: &Path, model: &Model, f: &Figures) -> Result<(), String> {
    use plotters::prelude::*;
    let sizes: Vec<f64> = (0..=40).map(|i| 10f64.powf(3.0 + 4.5 * f64::from(i) / 40.0)).collect();
    let per_size: Vec<Vec<QuotaRow>> = sizes.iter().map(|u| quota_rows_at(model, f, *u)).collect();
    let ids: Vec<String> = per_size[0]
        .iter()
        .filter(|r| {
            (per_size.last().unwrap().iter().find(|l| l.id == r.id).map_or(0.0, QuotaRow::used) - r.used()).abs() > 1e-9
        })
        .map(|r| r.id.clone())
        .collect();
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Demand / default quota at peak, by concurrent users (bench scale)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1e3..3.2e7).log_scale(), (1e-3..1e4).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("concurrent users (log)")
        .y_desc("demand / limit (log; 1 = the limit)")
        .x_label_formatter(&|v| human(*v))
        .y_label_formatter(&|v| format!("{v}"))
        .max_light_lines(0)
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(vec![(1e3, 1.0), (3.2e7, 1.0)], BLACK.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label("the limit")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2)));
    for (i, id) in ids.iter().enumerate() {
        let points: Vec<(f64, f64)> = sizes
            .iter()
            .zip(&per_size)
            .filter_map(|(u, rows)| rows.iter().find(|r| &r.id == id).map(|r| (*u, r.used().clamp(1e-3, 1e4))))
            .collect();
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(id.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

// ------------------------------------------------------------------ the honesty check

/// The `load` benchmark's run with the AWS requests it made (`bench scale --measure-load`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadMeasurement {
    pub command: String,
    pub generated_at: String,
    pub git_commit: Option<String>,
    pub clients: usize,
    pub channels: usize,
    pub messages_per_client: usize,
    pub interval_ms: u64,
    pub sent: usize,
    pub acked: usize,
    pub stored: usize,
    pub errors: BTreeMap<String, usize>,
    pub clean: bool,
    /// From the first send to the last event checked, s.
    pub elapsed_s: f64,
    /// `service.Operation` → requests, from the channels' creation to the last `$disconnect`.
    pub requests: BTreeMap<String, u64>,
}

/// Runs the `load` benchmark's traffic (`e2e::live::run_load`) on a fresh local stack and
/// counts every AWS request it makes (the channels' creation by the harness included).
pub async fn measure_load(spec: &e2e::live::LoadSpec) -> LoadMeasurement {
    let world = crate::world::World::start().await;
    let (requests, outcome) = world.requests_of(e2e::live::run_load(&world.stack, spec)).await;
    LoadMeasurement {
        command: String::new(),
        generated_at: String::new(),
        git_commit: None,
        clients: spec.clients,
        channels: spec.channels,
        messages_per_client: spec.messages_per_client,
        interval_ms: spec.send_interval.as_millis() as u64,
        sent: outcome.sent,
        acked: outcome.acked,
        stored: outcome.stored,
        clean: outcome.clean(),
        errors: outcome.errors.clone(),
        elapsed_s: outcome.elapsed_s,
        requests,
    }
}

/// What the simulator predicts a `load` run asks of AWS: the harness creates the channels
/// (a group's members 25 to a BatchWriteItem and its meta, a pair in one transaction),
/// devices connect one after another (each user's first device looks for subscribers and
/// finds none: the harness subscribes to nobody's presence), send their messages round robin over their channels, every channel's
/// history is read, and the devices disconnect. Tokens of no session (no authorizer reads);
/// no heartbeats, so a device connected for more than window − grace has no deadline to
/// move when it leaves; no sweep runs in the harness.
pub fn predict_load(f: &Figures, m: &LoadMeasurement) -> Demand {
    let spec = e2e::live::LoadSpec {
        clients: m.clients,
        channels: m.channels,
        messages_per_client: m.messages_per_client,
        send_interval: std::time::Duration::from_millis(m.interval_ms),
        patience: std::time::Duration::from_secs(60),
    };
    let channels_of: Vec<Vec<String>> = (0..spec.clients).map(|i| spec.channels_of(i)).collect();
    let mut members: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for (i, chans) in channels_of.iter().enumerate() {
        for c in chans {
            members.entry(c.as_str()).or_default().insert(i);
        }
    }
    let mut d = Demand::default();
    for set in members.values() {
        d.add(&Figures::seed_channel(set.len()), 1.0);
    }
    // The load's devices subscribe to nobody: each connect finds no watchers.
    for _ in &channels_of {
        d.add(&f.connect(Some(&Announce { watchers: 0.0 }), false), 1.0);
    }
    let mut sent: BTreeMap<&str, usize> = BTreeMap::new();
    for chans in &channels_of {
        for n in 0..spec.messages_per_client {
            let channel = chans[n % chans.len()].as_str();
            *sent.entry(channel).or_default() += 1;
            let others = members[channel].len() as f64 - 1.0;
            d.add(&f.send(others + 1.0, others, 0.0), 1.0);
        }
    }
    for channel in members.keys() {
        let messages = sent.get(channel).copied().unwrap_or(0);
        let pages = messages.div_ceil(chat_domain::history::MAX_PAGE_SIZE).max(1);
        d.add(&f.history_page(false), pages as f64);
    }
    let presence = PresenceSettings::default();
    let deadline_ahead = m.elapsed_s * 1000.0 < (presence.window_ms - presence.offline_grace_ms) as f64;
    d.add(&f.disconnect(true, deadline_ahead), spec.clients as f64);
    d
}

/// Predicted against measured, per DynamoDB operation, all DynamoDB requests and posts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub what: String,
    pub predicted: f64,
    pub measured: f64,
}

impl Comparison {
    /// (predicted − measured) / measured.
    pub fn error(&self) -> f64 {
        if self.measured == 0.0 {
            if self.predicted == 0.0 { 0.0 } else { f64::INFINITY }
        } else {
            (self.predicted - self.measured) / self.measured
        }
    }
}

pub fn compare_load(f: &Figures, m: &LoadMeasurement) -> Vec<Comparison> {
    let predicted = predict_load(f, m);
    let measured: BTreeMap<String, f64> =
        m.requests.iter().filter_map(|(k, v)| Some((k.strip_prefix("dynamodb.")?.to_owned(), *v as f64))).collect();
    let ops: BTreeSet<&String> = predicted.dynamodb.keys().chain(measured.keys()).collect();
    let mut rows: Vec<Comparison> = ops
        .into_iter()
        .map(|op| Comparison {
            what: format!("DynamoDB {op}"),
            predicted: predicted.dynamodb.get(op).copied().unwrap_or(0.0),
            measured: measured.get(op).copied().unwrap_or(0.0),
        })
        .collect();
    rows.push(Comparison {
        what: "DynamoDB, all requests".into(),
        predicted: predicted.dynamodb_requests(),
        measured: sum(&measured),
    });
    rows.push(Comparison {
        what: "PostToConnection".into(),
        predicted: predicted.posts,
        measured: m.requests.get("apigatewaymanagementapi.PostToConnection").copied().unwrap_or(0) as f64,
    });
    rows
}

pub fn comparison_table(m: &LoadMeasurement, rows: &[Comparison]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|c| {
            vec![
                c.what.clone(),
                format!("{:.0}", c.predicted),
                format!("{:.0}", c.measured),
                format!("{:+.1} %", c.error() * 100.0),
            ]
        })
        .collect();
    format!(
        "The simulator against the load run ({} devices, {} channels, {} messages each, {} ms apart; {}, commit {}):\n\n{}",
        m.clients,
        m.channels,
        m.messages_per_client,
        m.interval_ms,
        m.generated_at,
        m.git_commit.as_deref().unwrap_or("?"),
        table(&["requests", "predicted", "measured", "error"], &body)
    )
}

// ------------------------------------------------------------------ the whole run

/// Everything `bench scale` prints and keeps.
pub struct Run {
    pub text: String,
    pub results: Value,
}

/// Simulates every size of `model` with `f`; `measured`: the honesty check's fixture.
pub fn run(model: &Model, f: &Figures, measured: Option<&LoadMeasurement>) -> Run {
    let results: Vec<SizeResult> = model.sizes.iter().map(|u| simulate(model, f, *u)).collect();
    let mut text = String::from("What breaks first at each size (demand at peak over the default quota):\n\n");
    text.push_str(&overview_table(&results));
    if let Some(first) = results.first() {
        let any: Vec<String> = first
            .quotas
            .iter()
            .filter(|q| q.breaks_at_users.is_none() && q.used() > 1.0)
            .map(|q| format!("{} ({:.1}×)", q.id, q.used()))
            .collect();
        if !any.is_empty() {
            text.push_str(&format!(
                "\nOver at any size (the model's busiest channel, not the number of users): {}\n",
                any.join(", ")
            ));
        }
    }
    text.push_str("\nWhere each quota is reached (concurrent users, the model's traffic per user):\n\n");
    let points = breaking_points(&results);
    let rows: Vec<Vec<String>> = points.iter().map(|(id, what, u)| vec![id.clone(), what.clone(), human(*u)]).collect();
    text.push_str(&table(&["quota", "what", "reached at users"], &rows));
    let c = contention(model);
    text.push_str(&format!(
        "\nThe busiest channel ({:.0} members, {:.0} msg/s, commit window {:.0} ms): {:.2} attempts per message, meta item {:.0} WRU/s, partition {:.0} WRU/s; one channel's ceiling ~{:.0} msg/s.\n",
        model.busiest_channel.members,
        c.messages_per_second,
        model.busiest_channel.commit_window_ms,
        c.attempts_per_message,
        c.meta_item_wru,
        c.partition_wru,
        c.ceiling_messages_per_second
    ));
    for r in &results {
        text.push('\n');
        text.push_str(&size_table(r));
    }
    let mut variants = Vec::new();
    for variant in &model.variants {
        let shifted = match model.with(variant) {
            Ok(shifted) => shifted,
            Err(err) => {
                text.push_str(&format!("\n{err}\n"));
                continue;
            }
        };
        let results: Vec<SizeResult> = shifted.sizes.iter().map(|u| simulate(&shifted, f, *u)).collect();
        let what = match variant.kind {
            VariantKind::Plan => "a plan, not the code",
            VariantKind::InCode => "template parameters in code today",
            VariantKind::Before => "the design before, for comparison",
        };
        text.push_str(&format!("\nVariant ({what}): {}\n\n", variant.name));
        text.push_str(&overview_table(&results));
        let points = breaking_points(&results);
        let rows: Vec<Vec<String>> =
            points.iter().map(|(id, what, u)| vec![id.clone(), what.clone(), human(*u)]).collect();
        text.push('\n');
        text.push_str(&table(&["quota", "what", "reached at users"], &rows));
        variants.push(json!({
            "name": variant.name,
            "set": variant.set,
            "sizes": results.iter().map(|r| json!({
                "users": r.users,
                "month_dollars": r.month_dollars,
                "over_the_limit": r.broken,
                "quotas": r.quotas,
                "hot_keys": r.hot_keys,
                "bill": r.bill,
                "peak": r.peak,
            })).collect::<Vec<_>>(),
            "breaking_points": points.iter().map(|(id, what, u)| json!({"id": id, "what": what, "users": u})).collect::<Vec<_>>(),
        }));
    }
    let honesty = measured.map(|m| {
        let rows = compare_load(f, m);
        text.push('\n');
        text.push_str(&comparison_table(m, &rows));
        json!({"measurement": m, "comparison": rows})
    });
    let results = json!({
        "model": model,
        "figures": f,
        "sizes": results,
        "breaking_points": points.iter().map(|(id, what, u)| json!({"id": id, "what": what, "users": u})).collect::<Vec<_>>(),
        "busiest_channel": c,
        "variants": variants,
        "sweep": {"s_per_user": model.sweep_s_per_user(), "capacity_users_per_s": model.sweep_capacity()},
        "honesty": honesty,
    });
    Run { text, results }
}

/// What `bench scale` is asked to do (main.rs's arguments).
pub struct Options {
    /// The traffic model.
    pub model: std::path::PathBuf,
    /// `latest.json`, whose `requests` section gives the figures.
    pub latest: std::path::PathBuf,
    /// Where the whole result goes (`bench/scale/results.json`) and the plot.
    pub out: std::path::PathBuf,
    pub plot: std::path::PathBuf,
    /// The honesty check's fixture: read, or written first with `measure_load`.
    pub fixture: std::path::PathBuf,
    pub measure_load: Option<e2e::live::LoadSpec>,
    pub command: String,
    pub generated_at: String,
    pub git_commit: Option<String>,
}

/// The `scale` section: measures the load first when asked, then simulates every size;
/// writes `results.json` and the plot, and answers the printed tables and what
/// `latest.json` keeps (a summary: the whole result is in `results.json`).
pub async fn section(o: &Options, progress: &dyn Fn(&str)) -> (String, Value) {
    if let Some(spec) = &o.measure_load {
        progress("scale: measuring the load run's AWS requests");
        let mut m = measure_load(spec).await;
        m.command = o.command.clone();
        m.generated_at = o.generated_at.clone();
        m.git_commit = o.git_commit.clone();
        let text = serde_json::to_string_pretty(&m).expect("a measurement serialises") + "\n";
        if let Err(err) = std::fs::write(&o.fixture, text) {
            eprintln!("warning: could not write {}: {err}", o.fixture.display());
        }
    }
    progress("scale: simulating");
    let model = Model::load(&o.model).unwrap_or_else(|e| panic!("the traffic model: {e}"));
    let latest: Option<Value> =
        std::fs::read_to_string(&o.latest).ok().and_then(|text| serde_json::from_str(&text).ok());
    let figures = Figures::from_results(latest.as_ref());
    let measured: Option<LoadMeasurement> =
        std::fs::read_to_string(&o.fixture).ok().and_then(|text| serde_json::from_str(&text).ok());
    let Run { text, mut results } = run(&model, &figures, measured.as_ref());
    results["command"] = json!(o.command);
    results["generated_at"] = json!(o.generated_at);
    results["git_commit"] = json!(o.git_commit);
    if let Some(dir) = o.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let pretty = serde_json::to_string_pretty(&results).expect("results serialise") + "\n";
    if let Err(err) = std::fs::write(&o.out, pretty) {
        eprintln!("warning: could not write {}: {err}", o.out.display());
    }
    if let Err(err) = plot(&o.plot, &model, &figures) {
        eprintln!("warning: no plot: {err}");
    }
    let sizes: Vec<Value> = results["sizes"]
        .as_array()
        .map(|sizes| {
            sizes
                .iter()
                .map(|r| {
                    json!({
                        "users": r["users"],
                        "connections": r["connections"],
                        "messages_per_s": r["traffic"]["messages"],
                        "month_dollars": r["month_dollars"],
                        "over_the_limit": r["broken"],
                        "quotas": r["quotas"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let summary = json!({
        "results": o.out,
        "plot": o.plot,
        "figures_from": figures.sources,
        "sizes": sizes,
        "breaking_points": results["breaking_points"],
        "honesty": results["honesty"]["comparison"],
    });
    (text, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scale/model.json")).expect("model.json loads")
    }

    #[test]
    fn the_model_file_has_the_briefs_figures() {
        let m = model();
        assert_eq!(m.sizes, vec![1e4, 1e6, 1e7]);
        assert_eq!(m.full_scale.peak_messages_per_second, 12_000.0);
        let per_day = m.full_scale.messages_per_day / 86_400.0 * m.full_scale.peak_factor;
        assert!((per_day - 11_574.0).abs() < 1.0, "{per_day}");
        let shares: f64 = m.message_mix.iter().map(|k| k.share).sum();
        assert!((shares - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_send_makes_the_requests_and_units_cost_md_counts() {
        let f = Figures::default();
        let one = f.send(2.0, 1.0, 0.0);
        assert_eq!(one.dynamodb_requests(), 4.0);
        assert_eq!(sum(&one.wru), 10.0);
        assert_eq!(sum(&one.rru), 2.0);
        assert_eq!(one.websocket_messages(), 3.0);
        let group = f.send(100.0, 99.0, 0.0);
        assert_eq!(group.dynamodb_requests(), 4.0);
        assert_eq!(sum(&group.rru), 54.0);
        assert_eq!(group.posts, 99.0);
        assert_eq!(sum(&f.heartbeat().wru), 3.0);
        let cycle = {
            let mut d = f.connect(None, false);
            d.add(&f.disconnect(true, true), 1.0);
            sum(&d.wru)
        };
        assert_eq!(cycle, 7.0, "COST.md: connect + last disconnect = 3 + (1 + 3)");
    }

    #[test]
    fn every_demand_grows_with_the_users_and_the_smallest_size_breaks_nothing_that_scales() {
        let (m, f) = (model(), Figures::default());
        let small = quota_rows(&m, &f, 1e4);
        let large = quota_rows(&m, &f, 1e7);
        for (s, l) in small.iter().zip(&large) {
            assert!(l.demand >= s.demand, "{}", s.id);
        }
        let over: Vec<&str> =
            small.iter().filter(|r| r.used() > 1.0 && r.breaks_at_users.is_some()).map(|r| r.id.as_str()).collect();
        assert!(over.is_empty(), "{over:?}");
    }

    #[test]
    fn reconnecting_everyone_takes_the_connections_over_the_quota() {
        let o = outage(1e6, 600.0, 500.0, 1e9);
        let all = o.minutes_to["100%"].expect("everyone is back");
        let floor = 1e6 / 500.0 / 60.0;
        assert!(all >= floor * 0.99 && all <= floor * 1.1, "{all} against {floor}");
        let quick = outage(1e4, 600.0, 500.0, 1e9);
        assert!(quick.minutes_to["100%"].expect("back") < 2.0, "{quick:?}");
    }
}
