//! `chat script`: JSON actions in, one per line; every server frame out, one JSON line each.
//! For scripted conversations, tests of other clients, and load.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chat_protocol::frames::ServerFrame;
use chat_protocol::model::{ChannelId, Message};
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Endpoints;
use crate::api::{Api, Error};
use crate::session::Store;
use crate::socket::{self, Incoming, Socket};
use crate::term::Progress;

pub const LONG_ABOUT: &str = "\
Reads JSON actions, one per line, from FILE or stdin, and prints every frame the server sends
as one JSON line on stdout (progress and a summary go to stderr). Empty lines and lines
starting with # are skipped.

Actions:
  {\"action\": \"sendMessage\", \"channelId\": \"…\", \"text\": \"hi\"}
      any WebSocket frame, sent as it is; sendMessage gets a clientMsgId when it has none.
      A \"messageId\" or \"replyTo\" of \"#12\" names the channel's message #12 (its seq): the
      id is filled in from what the script has received, else from the channel's history
  {\"action\": \"sendMessage\", \"channelId\": \"…\", \"text\": \"yes @bob\", \"replyTo\": \"#1\",
   \"mentions\": [\"bob\"]}
      a reply to message #1 that mentions bob (mentions are sent as listed, never read
      from the text; they must be members of the channel)
  {\"action\": \"addReaction\", \"channelId\": \"…\", \"messageId\": \"#1\", \"emoji\": \"👍\"}
      react (removeReaction takes it back); the answer is a \"reaction\" frame
  {\"action\": \"setStatus\", \"text\": \"In a meeting\", \"emoji\": \"📅\"}
      your custom status (setPresence sets your state: {\"state\": \"dnd\"}); the answer is
      a \"presence\" frame about you. {\"action\": \"subscribePresence\", \"userIds\": […]} is
      answered by \"presenceState\", then \"presence\" frames as they change (10 minutes)
  {\"http\": \"GET\", \"path\": \"/channels\"}     {\"http\": \"POST\", \"path\": \"…\", \"body\": {…}}
      an HTTP API call as the signed-in user; prints {\"type\": \"http\", \"status\": …, \"body\": …}
  {\"sleep\": 500}
      pause (milliseconds)
  {\"waitFor\": \"message\", \"timeoutMs\": 10000}
      wait for a frame of that type (counting from the previous waitFor); fails on timeout

At the end of the input it waits until every send (every frame with a clientMsgId) has
its answer, an ack or an error, then --linger seconds more: other actions (reactions,
heartbeat, typing, markRead, sync, getPresence, subscribePresence) answer with frames of their own or nothing,
so use waitFor (such as {\"waitFor\": \"reaction\"}) or --linger for them. Exit status: 0
when every send was answered, 1 otherwise, 2 for a line that is not a valid action (or
names a #seq its channel does not have).

For load, --rate paces the actions and --max-in-flight bounds the sends awaiting an answer;
run several scripts at once (one per user) for concurrent senders.

Example, two messages and the channel's history:
  printf '%s\\n' '{\"action\":\"sendMessage\",\"channelId\":\"demo\",\"text\":\"one\"}' \\
                 '{\"action\":\"sendMessage\",\"channelId\":\"demo\",\"text\":\"two\"}' \\
                 '{\"http\":\"GET\",\"path\":\"/channels/demo/messages?limit=2\"}' | chat script";

#[derive(Args)]
pub struct ScriptArgs {
    /// A file of actions [default: stdin]
    pub file: Option<PathBuf>,
    /// At most this many actions per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// At most this many sends waiting for their answer (1: each waits for the previous ack,
    /// which also keeps their order) [default: no limit]
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Seconds to keep printing frames after the last answer.
    #[arg(long, default_value_t = 0.0)]
    pub linger: f64,
    /// Seconds to wait for the last answers after the input ends.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

#[derive(Default)]
struct Counts {
    actions: u64,
    frames_sent: u64,
    acks: u64,
    errors: u64,
    received: u64,
}

struct Run {
    /// clientMsgIds of sends still waiting for their ack or error.
    outstanding: HashSet<String>,
    counts: Counts,
    /// Frame types seen since the last `waitFor`.
    seen_types: Vec<String>,
    /// Message ids by channel and seq, from the frames received: what `"#12"` names.
    known: HashMap<(String, u64), String>,
}

#[derive(Debug)]
enum Step {
    Frame(Value),
    Http { method: http::Method, path: String, body: Option<Value> },
    Sleep(Duration),
    WaitFor { kind: String, timeout: Duration },
}

fn parse_step(line: &str) -> Result<Step, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("an action must be a JSON object")?;
    if object.contains_key("action") {
        let mut frame = value.clone();
        if frame["action"] == "sendMessage" && frame.get("clientMsgId").is_none() {
            frame["clientMsgId"] = json!(socket::new_client_msg_id());
        }
        return Ok(Step::Frame(frame));
    }
    if let Some(method) = object.get("http").and_then(Value::as_str) {
        let method = method.to_uppercase().parse::<http::Method>().map_err(|_| format!("bad method {method}"))?;
        let path = object.get("path").and_then(Value::as_str).ok_or("an http action needs a \"path\"")?;
        if !path.starts_with('/') {
            return Err("\"path\" must start with /".into());
        }
        return Ok(Step::Http { method, path: path.to_owned(), body: object.get("body").cloned() });
    }
    if let Some(ms) = object.get("sleep") {
        let ms = ms.as_u64().ok_or("\"sleep\" takes milliseconds")?;
        return Ok(Step::Sleep(Duration::from_millis(ms)));
    }
    if let Some(kind) = object.get("waitFor").and_then(Value::as_str) {
        let ms = object.get("timeoutMs").and_then(Value::as_u64).unwrap_or(10_000);
        return Ok(Step::WaitFor { kind: kind.to_owned(), timeout: Duration::from_millis(ms) });
    }
    Err("unknown action: expected \"action\", \"http\", \"sleep\" or \"waitFor\"".into())
}

pub async fn run(api: &Api, endpoints: &Endpoints, store: &mut Store, args: ScriptArgs) -> Result<ExitCode, Error> {
    let started = Instant::now();
    let (tx, mut lines) = mpsc::channel::<std::io::Result<String>>(1024);
    let reader: Box<dyn BufRead + Send> = match &args.file {
        Some(path) if path.as_os_str() != "-" => Box::new(std::io::BufReader::new(std::fs::File::open(path)?)),
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    std::thread::spawn(move || {
        for line in reader.lines() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });

    let token = store.access_token(api).await?;
    let mut socket = Socket::connect(&endpoints.ws, &token, &endpoints.tls).await?;
    let mut run =
        Run { outstanding: HashSet::new(), counts: Counts::default(), seen_types: Vec::new(), known: HashMap::new() };
    let mut progress = Progress::new();
    let mut last_drawn = Instant::now();
    let pace = args.rate.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(1.0 / r));
    let mut not_before = Instant::now();
    let mut line_number = 0u64;
    let mut input_done = false;
    let mut waiting: Option<(String, Instant)> = None;

    // The input, paced, while frames are printed as they come.
    while !input_done || waiting.is_some() {
        let full = args.max_in_flight.is_some_and(|max| run.outstanding.len() >= max.max(1));
        let blocked = waiting.is_some() || Instant::now() < not_before;
        let wake = waiting.as_ref().map(|(_, deadline)| *deadline).unwrap_or(not_before);
        tokio::select! {
            incoming = socket.next() => {
                if !handle(&mut run, incoming) {
                    return Ok(finish(&run, started, &mut progress, "the connection closed"));
                }
                if let Some((kind, _)) = &waiting && run.seen_types.iter().any(|t| t == kind) {
                    run.seen_types.clear();
                    waiting = None;
                }
            }
            _ = tokio::time::sleep_until(wake), if blocked => {
                if let Some((kind, _)) = waiting.take() {
                    eprintln!("chat script: line {line_number}: no \"{kind}\" frame in time");
                    return Ok(finish(&run, started, &mut progress, "a waitFor timed out"));
                }
            }
            line = lines.recv(), if !blocked && !full && !input_done => {
                let Some(line) = line else {
                    input_done = true;
                    continue;
                };
                let line = line?;
                line_number += 1;
                let text = line.trim();
                if text.is_empty() || text.starts_with('#') {
                    continue;
                }
                let step = match parse_step(text) {
                    Ok(step) => step,
                    Err(why) => {
                        eprintln!("chat script: line {line_number}: {why}");
                        socket.close().await;
                        return Ok(ExitCode::from(2));
                    }
                };
                run.counts.actions += 1;
                if let Some(pace) = pace {
                    not_before = Instant::now() + pace;
                }
                match step {
                    Step::Frame(mut frame) => {
                        if let Err(why) = fill_in_seqs(api, store, &run.known, &mut frame).await {
                            eprintln!("chat script: line {line_number}: {why}");
                            socket.close().await;
                            return Ok(ExitCode::from(2));
                        }
                        if let Some(id) = frame.get("clientMsgId").and_then(Value::as_str) {
                            run.outstanding.insert(id.to_owned());
                        }
                        socket.send_raw(&frame).await?;
                        run.counts.frames_sent += 1;
                    }
                    Step::Http { method, path, body } => {
                        let answer = if path.starts_with("/auth/") {
                            api.request(method.clone(), &path, None, body.as_ref()).await
                        } else {
                            api.authorized_request(store, method.clone(), &path, body.as_ref()).await
                        };
                        let (status, body) = match answer {
                            Ok(answer) => answer,
                            Err(Error::Api { status, body }) => {
                                (status, serde_json::to_value(&body).expect("error bodies serialise"))
                            }
                            Err(other) => return Err(other),
                        };
                        let answer = json!({
                            "type": "http", "method": method.as_str(), "path": path, "status": status, "body": body,
                        });
                        println!("{answer}");
                    }
                    Step::Sleep(duration) => not_before = not_before.max(Instant::now() + duration),
                    Step::WaitFor { kind, timeout } => {
                        if run.seen_types.contains(&kind) {
                            run.seen_types.clear();
                        } else {
                            waiting = Some((kind, Instant::now() + timeout));
                        }
                    }
                }
            }
        }
        if last_drawn.elapsed() > Duration::from_millis(100) {
            progress.show(&status_line(&run));
            last_drawn = Instant::now();
        }
    }

    // Every frame gets an answer: wait for the last ones, then linger.
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout.max(0.0));
    while !run.outstanding.is_empty() {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => break,
            Ok(incoming) => {
                if !handle(&mut run, incoming) {
                    return Ok(finish(&run, started, &mut progress, "the connection closed"));
                }
            }
        }
        progress.show(&status_line(&run));
    }
    let linger_until = Instant::now() + Duration::from_secs_f64(args.linger.max(0.0));
    while let Ok(incoming) = tokio::time::timeout_at(linger_until, socket.next()).await {
        if !handle(&mut run, incoming) {
            break;
        }
    }
    socket.close().await;
    Ok(finish(&run, started, &mut progress, ""))
}

/// The fields of a frame that name a message.
const MESSAGE_FIELDS: [&str; 2] = ["messageId", "replyTo"];

/// Replaces `"#12"` in a frame's `messageId` or `replyTo` with the id of the message of
/// its channel with that seq: one the script received, else one read from history.
async fn fill_in_seqs(
    api: &Api,
    store: &mut Store,
    known: &HashMap<(String, u64), String>,
    frame: &mut Value,
) -> Result<(), String> {
    for field in MESSAGE_FIELDS {
        let Some(seq) = frame.get(field).and_then(Value::as_str).and_then(|v| v.strip_prefix('#')) else {
            continue;
        };
        let seq: u64 = seq.parse().map_err(|_| format!("\"{field}\": \"#{seq}\" is not a seq (#12)"))?;
        let channel = frame.get("channelId").and_then(Value::as_str).unwrap_or_default().to_owned();
        let id = match known.get(&(channel.clone(), seq)) {
            Some(id) => id.clone(),
            None => {
                let channel_id = ChannelId::parse(channel.as_str())
                    .map_err(|e| format!("\"{field}\": #{seq} needs the frame's channel: {e}"))?;
                match api.message_at(store, &channel_id, seq).await {
                    Ok(Some(message)) => message.message_id.to_string(),
                    Ok(None) => return Err(format!("\"{field}\": no message #{seq} in {channel}")),
                    Err(err) => return Err(format!("\"{field}\": cannot look #{seq} up in {channel}: {err}")),
                }
            }
        };
        frame[field] = Value::String(id);
    }
    Ok(())
}

/// Notes the ids of the messages a frame carries, by channel and seq.
fn learn(known: &mut HashMap<(String, u64), String>, frame: &ServerFrame) {
    let mut note = |message: &Message| {
        known.insert((message.channel_id.to_string(), message.seq), message.message_id.to_string());
    };
    match frame {
        ServerFrame::Ack { message, .. }
        | ServerFrame::Message { message }
        | ServerFrame::MessageUpdated { message } => note(message),
        ServerFrame::Messages { messages, .. } => {
            for message in messages {
                note(message);
            }
        }
        _ => {}
    }
}

/// Prints a frame and counts it; false when the connection is gone.
fn handle(run: &mut Run, incoming: Incoming) -> bool {
    let received = match incoming {
        Incoming::Frame(received) => *received,
        Incoming::Closed(why) => {
            eprintln!("chat script: {why}");
            return false;
        }
    };
    // As it came: every field, whatever the frame.
    println!("{}", received.raw);
    run.counts.received += 1;
    if let Some(frame) = &received.frame {
        learn(&mut run.known, frame);
    }
    match &received.frame {
        Some(ServerFrame::Ack { client_msg_id, .. }) => {
            run.counts.acks += 1;
            run.outstanding.remove(client_msg_id.as_str());
        }
        Some(ServerFrame::Error(body)) => {
            run.counts.errors += 1;
            if let Some(id) = &body.client_msg_id {
                run.outstanding.remove(id);
            }
        }
        _ => {}
    }
    let kind = received.kind();
    run.seen_types.push(if kind.is_empty() { "gateway".into() } else { kind.to_owned() });
    true
}

fn status_line(run: &Run) -> String {
    let c = &run.counts;
    format!("sent {} frames · {} acks · {} errors · {} frames received", c.frames_sent, c.acks, c.errors, c.received)
}

fn finish(run: &Run, started: Instant, progress: &mut Progress, failure: &str) -> ExitCode {
    progress.finish();
    let unanswered = run.outstanding.len();
    eprintln!(
        "chat script: {} actions, {} in {:.1} s",
        run.counts.actions,
        status_line(run),
        started.elapsed().as_secs_f64()
    );
    if !failure.is_empty() {
        eprintln!("chat script: stopped: {failure}");
        return ExitCode::FAILURE;
    }
    if unanswered > 0 {
        eprintln!("chat script: {unanswered} frames got no answer");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_kind_of_action() {
        let Ok(Step::Frame(frame)) = parse_step(r#"{"action":"sendMessage","channelId":"c","text":"hi"}"#) else {
            panic!("a frame")
        };
        assert!(frame["clientMsgId"].as_str().is_some_and(|id| id.len() <= 64), "{frame}");
        let Ok(Step::Frame(frame)) =
            parse_step(r#"{"action":"sendMessage","channelId":"c","clientMsgId":"m1","text":"x"}"#)
        else {
            panic!("a frame")
        };
        assert_eq!(frame["clientMsgId"], "m1");
        let get = parse_step(r#"{"http":"get","path":"/channels"}"#);
        assert!(matches!(get, Ok(Step::Http { method, .. }) if method == http::Method::GET));
        assert!(matches!(parse_step(r#"{"sleep":250}"#), Ok(Step::Sleep(d)) if d == Duration::from_millis(250)));
        assert!(matches!(parse_step(r#"{"waitFor":"message"}"#), Ok(Step::WaitFor { kind, .. }) if kind == "message"));
        assert!(parse_step("not json").unwrap_err().contains("not JSON"));
        assert!(parse_step(r#"{"http":"GET","path":"channels"}"#).is_err());
        assert!(parse_step(r#"{"dance":1}"#).unwrap_err().contains("unknown action"));
    }
}
