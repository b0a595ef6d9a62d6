//! Devices that send and read at the same time and stamp every frame on arrival, a load
//! of many devices in many channels, and the check of each device's view of a channel
//! against the channel's history: nothing lost, nothing duplicated, one order (by `seq`).
//! Used by the reliability tests (small runs) and the benchmarks (large ones).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tungstenite::Message;

use crate::{ConnectError, Stack};

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// A frame as it arrived; `frame` is `None` when the connection ended.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: Instant,
    pub frame: Option<Value>,
}

/// One device: a WebSocket whose frames a background task reads as they come.
pub struct LiveClient {
    pub user: String,
    sink: Mutex<Sink>,
    arrivals: Mutex<mpsc::UnboundedReceiver<Arrival>>,
    reader: tokio::task::JoinHandle<()>,
}

impl LiveClient {
    pub async fn connect(websocket_url: &str, token: &str, user: &str) -> Result<Self, ConnectError> {
        let (socket, _) = match connect_async(format!("{websocket_url}?token={token}")).await {
            Ok(connected) => connected,
            Err(tungstenite::Error::Http(response)) => return Err(ConnectError::Refused(response.status().as_u16())),
            Err(err) => return Err(ConnectError::Other(err.to_string())),
        };
        let (sink, mut stream) = socket.split();
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            loop {
                let frame = match stream.next().await {
                    Some(Ok(Message::Text(text))) => {
                        Some(serde_json::from_str(&text).unwrap_or(Value::String(text.to_string())))
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => None,
                    Some(Ok(_)) => continue,
                };
                let ended = frame.is_none();
                if tx.send(Arrival { at: Instant::now(), frame }).is_err() || ended {
                    return;
                }
            }
        });
        Ok(Self { user: user.to_owned(), sink: Mutex::new(sink), arrivals: Mutex::new(rx), reader })
    }

    /// A device of `user` on `stack`.
    pub async fn of(stack: &Stack, user: &str) -> Self {
        Self::connect(&stack.websocket_url(), &stack.token(user), user)
            .await
            .unwrap_or_else(|e| panic!("{user} could not connect: {e:?}"))
    }

    /// Sends a frame; false when the connection is gone.
    pub async fn send(&self, frame: &Value) -> bool {
        self.sink.lock().await.send(Message::Text(frame.to_string().into())).await.is_ok()
    }

    /// `sendMessage`; answers when it went out (None when the connection is gone).
    pub async fn send_message(&self, channel: &str, client_msg_id: &str, text: &str) -> Option<Instant> {
        let frame = json!({"action": "sendMessage", "channelId": channel, "clientMsgId": client_msg_id, "text": text});
        let at = Instant::now();
        self.send(&frame).await.then_some(at)
    }

    /// The next arrival within `wait`.
    pub async fn next(&self, wait: Duration) -> Option<Arrival> {
        tokio::time::timeout(wait, self.arrivals.lock().await.recv()).await.ok().flatten()
    }

    /// Closes the socket politely (close frame).
    pub async fn close(mut self) {
        let _ = self.sink.lock().await.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
    }

    /// Drops the TCP connection without a close frame, as a phone losing its network does.
    pub fn drop_abruptly(self) {
        self.reader.abort();
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// What one device saw of its channels.
#[derive(Debug, Default, Clone)]
pub struct View {
    /// Live `message` events per channel: (seq, messageId), in arrival order, duplicates kept.
    pub events: BTreeMap<String, Vec<(u64, String)>>,
    /// Message ids acked to this device (its own sends, which it gets as acks, not events).
    pub acked: HashSet<String>,
}

impl View {
    /// Records a frame; answers the message id of a `message` event.
    pub fn record(&mut self, frame: &Value) -> Option<String> {
        match frame["type"].as_str() {
            Some("message") => {
                let message = &frame["message"];
                let channel = message["channelId"].as_str()?.to_owned();
                let id = message["messageId"].as_str()?.to_owned();
                let seq = message["seq"].as_u64()?;
                self.events.entry(channel).or_default().push((seq, id.clone()));
                Some(id)
            }
            Some("ack") => {
                self.acked.insert(frame["message"]["messageId"].as_str()?.to_owned());
                None
            }
            _ => None,
        }
    }
}

/// The result of checking views against histories. Every field but `missing_live` and
/// `overtaken` is a broken promise; those two are what delivery cost (the message is stored
/// and a client reads it from history) and what the wire did (events overtaking each other).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ViewCheck {
    pub devices: usize,
    pub events: usize,
    /// Live events of messages that are not in history (phantoms).
    pub phantom: usize,
    /// The same message (same id and seq) delivered to one device again. Delivery is at
    /// least once: a retried send is delivered again, and devices drop a seq they hold.
    pub redelivered: usize,
    /// Events whose `seq` is not the message's position in history.
    pub misordered: usize,
    /// History messages (not the device's own) that never arrived live.
    pub missing_live: usize,
    /// Events that arrived after an event with a higher seq (the client reorders by seq).
    pub overtaken: usize,
    /// Histories whose seqs are not 1..n in id order, or that hold a message twice.
    pub broken_histories: usize,
}

impl ViewCheck {
    /// No promise broken (events may have been missed live only where `allow_missing`).
    pub fn holds(&self, allow_missing: bool) -> bool {
        self.phantom == 0
            && self.redelivered == 0
            && self.misordered == 0
            && self.broken_histories == 0
            && (allow_missing || self.missing_live == 0)
    }
}

/// Checks each device's view of each of its channels against that channel's history
/// (oldest first, as [`Stack::full_history`] answers).
pub fn check_views(histories: &BTreeMap<String, Vec<Value>>, views: &[(Vec<String>, View)]) -> ViewCheck {
    let mut check = ViewCheck { devices: views.len(), ..Default::default() };
    let mut positions: HashMap<&str, HashMap<String, u64>> = HashMap::new();
    for (channel, history) in histories {
        let mut ids = HashMap::new();
        let mut previous_id = 0u64;
        let mut broken = false;
        for (i, message) in history.iter().enumerate() {
            let id = message["messageId"].as_str().unwrap_or_default().to_owned();
            let numeric: u64 = id.parse().unwrap_or(0);
            broken |= message["seq"].as_u64() != Some(i as u64 + 1) || numeric <= previous_id;
            previous_id = numeric;
            broken |= ids.insert(id, i as u64 + 1).is_some();
        }
        check.broken_histories += usize::from(broken);
        positions.insert(channel.as_str(), ids);
    }
    for (channels, view) in views {
        for channel in channels {
            let Some(ids) = positions.get(channel.as_str()) else { continue };
            let events = view.events.get(channel).map(Vec::as_slice).unwrap_or_default();
            check.events += events.len();
            let mut seen = HashSet::new();
            let mut highest = 0;
            for (seq, id) in events {
                match ids.get(id) {
                    None => check.phantom += 1,
                    Some(position) if position != seq => check.misordered += 1,
                    Some(_) => {}
                }
                if !seen.insert(id.as_str()) {
                    check.redelivered += 1;
                }
                if *seq < highest {
                    check.overtaken += 1;
                }
                highest = highest.max(*seq);
            }
            check.missing_live +=
                ids.keys().filter(|id| !seen.contains(id.as_str()) && !view.acked.contains(id.as_str())).count();
        }
    }
    check
}

/// N devices in M group channels, each sending K messages.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadSpec {
    pub clients: usize,
    pub channels: usize,
    pub messages_per_client: usize,
    /// Pause between one device's sends (zero: all at once).
    pub send_interval: Duration,
    /// How long to wait for answers and events before calling them lost.
    pub patience: Duration,
}

impl LoadSpec {
    /// Device `i` is in channels `i % M` and `(i + 1) % M`, so every channel has about
    /// `2N/M` members and channels share members.
    pub fn channels_of(&self, client: usize) -> Vec<String> {
        let mut channels = vec![client % self.channels];
        if self.channels > 1 {
            channels.push((client + 1) % self.channels);
        }
        channels.into_iter().map(|c| format!("load-{c}")).collect()
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadOutcome {
    pub sent: usize,
    pub acked: usize,
    /// Error frames by code.
    pub errors: BTreeMap<String, usize>,
    /// Sends that got no answer within the patience.
    pub unanswered: usize,
    pub stored: usize,
    /// Acked messages missing from history.
    pub acked_but_lost: usize,
    /// Messages in history whose send was answered with an error.
    pub refused_but_stored: usize,
    pub views: ViewCheck,
    /// Send to ack, milliseconds.
    pub ack_ms: Vec<f64>,
    /// Send to arrival at each other member's device, milliseconds.
    pub delivery_ms: Vec<f64>,
    pub elapsed_s: f64,
}

impl LoadOutcome {
    /// Nothing lost, duplicated, misordered or misreported.
    pub fn clean(&self) -> bool {
        self.unanswered == 0 && self.acked_but_lost == 0 && self.refused_but_stored == 0 && self.views.holds(false)
    }
}

/// Runs a load on `stack`: creates the channels, connects the devices, sends, waits, and
/// checks every view against history.
pub async fn run_load(stack: &Stack, spec: &LoadSpec) -> LoadOutcome {
    let users: Vec<String> = (0..spec.clients).map(|i| format!("load{i:04}")).collect();
    for c in 0..spec.channels {
        let members: Vec<&str> = users
            .iter()
            .enumerate()
            .filter(|(i, _)| spec.channels_of(*i).contains(&format!("load-{c}")))
            .map(|(_, u)| u.as_str())
            .collect();
        stack.create_channel(&format!("load-{c}"), &members).await;
    }
    let mut devices = Vec::new();
    for user in &users {
        devices.push(LiveClient::of(stack, user).await);
    }

    let started = Instant::now();
    // Every device sends its messages (round robin over its channels) while reading.
    let runs = devices.iter().enumerate().map(|(i, device)| {
        let channels = spec.channels_of(i);
        async move {
            let mut sent_at: HashMap<String, (Instant, String)> = HashMap::new();
            let mut view = View::default();
            let mut answers: HashMap<String, Result<String, String>> = HashMap::new();
            let mut arrivals = Vec::new();
            // Devices start at random points of one interval, as people do: not in lockstep.
            if !spec.send_interval.is_zero() {
                tokio::time::sleep(spec.send_interval.mul_f64(rand::random::<f64>())).await;
            }
            for n in 0..spec.messages_per_client {
                let channel = &channels[n % channels.len()];
                let id = format!("c{i}-{n}");
                if let Some(at) = device.send_message(channel, &id, &format!("message {n} of device {i}")).await {
                    sent_at.insert(id, (at, channel.clone()));
                }
                if !spec.send_interval.is_zero() {
                    tokio::time::sleep(spec.send_interval).await;
                }
            }
            let deadline = Instant::now() + spec.patience;
            while answers.len() < sent_at.len() {
                let Some(arrival) = device.next(deadline.saturating_duration_since(Instant::now())).await else {
                    break;
                };
                let Some(frame) = arrival.frame else { break };
                record_answer(&frame, &mut answers);
                view.record(&frame);
                arrivals.push((arrival.at, frame));
            }
            (channels, sent_at, answers, view, arrivals)
        }
    });
    let mut results = futures::future::join_all(runs).await;

    // Collect the events still on their way, then compare with history.
    let mut histories = BTreeMap::new();
    for c in 0..spec.channels {
        let channel = format!("load-{c}");
        let member = users.iter().enumerate().find(|(i, _)| spec.channels_of(*i).contains(&channel));
        if let Some((_, user)) = member {
            histories.insert(channel.clone(), stack.full_history(user, &channel).await);
        }
    }
    for ((channels, _, _, view, arrivals), device) in results.iter_mut().zip(&devices) {
        let expected: usize = channels
            .iter()
            .map(|c| histories.get(c).map_or(0, |h| h.iter().filter(|m| !view.acked.contains(id_of(m))).count()))
            .sum();
        let deadline = Instant::now() + spec.patience;
        while view.events.values().map(Vec::len).sum::<usize>() < expected {
            let Some(arrival) = device.next(deadline.saturating_duration_since(Instant::now())).await else {
                break;
            };
            let Some(frame) = arrival.frame else { break };
            view.record(&frame);
            arrivals.push((arrival.at, frame));
        }
        // Anything more (a duplicate) would arrive now.
        while let Some(arrival) = device.next(Duration::from_millis(50)).await {
            let Some(frame) = arrival.frame else { break };
            view.record(&frame);
            arrivals.push((arrival.at, frame));
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();

    let mut outcome = LoadOutcome { elapsed_s, ..Default::default() };
    let stored: HashMap<(&str, &str), &Value> = histories
        .iter()
        .flat_map(|(c, h)| h.iter().map(move |m| ((c.as_str(), m["clientMsgId"].as_str().unwrap_or_default()), m)))
        .collect();
    outcome.stored = stored.len();
    let mut sent_times: HashMap<String, Instant> = HashMap::new();
    for (_, sent_at, answers, _, arrivals) in &results {
        outcome.sent += sent_at.len();
        for (client_msg_id, (at, channel)) in sent_at {
            let in_history = stored.get(&(channel.as_str(), client_msg_id.as_str()));
            match answers.get(client_msg_id) {
                Some(Ok(id)) => {
                    outcome.acked += 1;
                    if in_history.is_none_or(|m| id_of(m) != id) {
                        outcome.acked_but_lost += 1;
                    }
                    sent_times.insert(id.clone(), *at);
                }
                Some(Err(code)) => {
                    *outcome.errors.entry(code.clone()).or_default() += 1;
                    outcome.refused_but_stored += usize::from(in_history.is_some());
                }
                None => outcome.unanswered += 1,
            }
        }
        for (arrived, frame) in arrivals {
            if frame["type"] == "ack"
                && let Some(sent) = sent_at.get(frame["clientMsgId"].as_str().unwrap_or_default())
            {
                outcome.ack_ms.push(arrived.duration_since(sent.0).as_secs_f64() * 1e3);
            }
        }
    }
    for (_, _, _, _, arrivals) in &results {
        for (arrived, frame) in arrivals {
            if frame["type"] == "message"
                && let Some(sent) = frame["message"]["messageId"].as_str().and_then(|id| sent_times.get(id))
            {
                outcome.delivery_ms.push(arrived.duration_since(*sent).as_secs_f64() * 1e3);
            }
        }
    }
    let views: Vec<(Vec<String>, View)> = results.into_iter().map(|(c, _, _, v, _)| (c, v)).collect();
    outcome.views = check_views(&histories, &views);
    for device in devices {
        device.close().await;
    }
    outcome
}

/// Files an `ack` (Ok(message id)) or `error` (Err(code)) under its clientMsgId.
pub fn record_answer(frame: &Value, answers: &mut HashMap<String, Result<String, String>>) {
    let answer = match frame["type"].as_str() {
        Some("ack") => Ok(frame["message"]["messageId"].as_str().unwrap_or_default().to_owned()),
        Some("error") => Err(frame["code"].as_str().unwrap_or("?").to_owned()),
        _ => return,
    };
    if let Some(client_msg_id) = frame["clientMsgId"].as_str() {
        answers.insert(client_msg_id.to_owned(), answer);
    }
}

fn id_of(message: &Value) -> &str {
    message["messageId"].as_str().unwrap_or_default()
}
