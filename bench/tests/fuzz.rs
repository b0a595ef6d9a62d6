//! Bad input, generated: property tests over the frame parser and over every function's
//! event handling (through the gateway's `Invoke`, with AWS answered in-process), and the
//! corpus of interesting inputs in bench/corpus/ replayed. No panic, and every bad frame
//! is answered with an error frame. `PROPTEST_CASES` sets the cases per property (default
//! 64, so `cargo test --workspace` stays quick; run with a few thousand now and then).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bench::aws_http::{Exchange, Replay};
use bench::lambda_events as ev;
use chat_domain::ErrorCode;
use chat_domain::clock::SystemClock;
use chat_domain::protocol::ClientFrame;
use local_gateway::invoke::{InProcess, Invoke, InvokeError};
use local_gateway::routes::{self, Function};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value, json};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

/// A world where nothing exists and no rate limit is ever hit: every DynamoDB read finds
/// nothing, every write succeeds, every post is delivered. No I/O.
fn invoker() -> &'static (InProcess, tokio::runtime::Runtime) {
    static INVOKER: OnceLock<(InProcess, tokio::runtime::Runtime)> = OnceLock::new();
    INVOKER.get_or_init(|| {
        let under_limit = Exchange {
            operation: "UpdateItem".into(),
            status: 200,
            headers: vec![("content-type".into(), "application/x-amz-json-1.0".into())],
            body: br#"{"Attributes":{"count":{"N":"1"}}}"#.to_vec(),
        };
        let replay = Replay::new(vec![under_limit]);
        let mut config = local_gateway::local::config(
            "fuzz-",
            "property-tests-only-signing-key-0123456789",
            "http://127.0.0.1:9/fuzz".into(),
        );
        // Thousands of frames from one user: about parsing, not limits.
        config.rate_limits = e2e::GENEROUS;
        let app = chat_aws::wire::app(&config, &replay.sdk_config(), Arc::new(SystemClock), None);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        (InProcess::new(Arc::new(app)), runtime)
    })
}

fn invoke(function: Function, event: Value) -> Result<Value, InvokeError> {
    let (invoker, runtime) = invoker();
    runtime.block_on(invoker.invoke(function, event))
}

/// Every function the gateway can call.
fn functions() -> Vec<Function> {
    let mut all: BTreeSet<Function> = routes::WEBSOCKET_ROUTES.iter().map(|r| r.function).collect();
    all.extend(routes::HTTP_ROUTES.iter().map(|r| r.function));
    all.extend(routes::SCHEDULES.iter().map(|s| s.function));
    all.insert(routes::WEBSOCKET_AUTHORIZER);
    all.insert(routes::HTTP_AUTHORIZER);
    all.into_iter().collect()
}

/// The frame a Send answer carries back to the client.
fn answered_frame(answer: &Value) -> Value {
    let body = answer["body"].as_str().unwrap_or_else(|| panic!("a route response with a body: {answer}"));
    serde_json::from_str(body).unwrap_or_else(|_| panic!("the answer is JSON: {body}"))
}

const KEYS: &[&str] = &[
    "action",
    "channelId",
    "clientMsgId",
    "text",
    "messageId",
    "state",
    "userIds",
    "channels",
    "after",
    "limit",
    "attachments",
    "requestContext",
    "body",
    "routeKey",
    "connectionId",
    "authorizer",
    "userId",
    "headers",
    "queryStringParameters",
    "pathParameters",
    "rawPath",
    "version",
    "type",
    "methodArn",
    "routeArn",
    "isBase64Encoded",
];
const STRINGS: &[&str] = &[
    "sendMessage",
    "heartbeat",
    "typing",
    "markRead",
    "getPresence",
    "sync",
    "$default",
    "$connect",
    "start",
    "c1",
    "a#b",
    "",
    " ",
    "0",
    "-1",
    "18446744073709551616",
    "383171067025293312",
    "\u{0}",
    "\u{202e}",
    "é",
    "GET /channels",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(STRINGS).prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6).prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), "[a-zA-Z]{1,8}"]
}

/// Objects that look like frames: a known action and a few fields, valid or not.
fn frame_like() -> impl Strategy<Value = String> {
    let action = prop::sample::select(&STRINGS[..8]).prop_map(str::to_owned);
    (action, prop::collection::vec((key(), json_value()), 0..5)).prop_map(|(action, fields)| {
        let mut frame: Map<String, Value> = fields.into_iter().collect();
        frame.insert("action".into(), Value::String(action));
        Value::Object(frame).to_string()
    })
}

fn any_frame() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        json_value().prop_map(|v| v.to_string()),
        frame_like(),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// Replaces (or removes) the value at a path chosen by `choices` in `event`.
fn mutate(at: &mut Value, choices: &[usize], replacement: Option<Value>) {
    let Some((choice, rest)) = choices.split_first() else {
        if let Some(value) = replacement {
            *at = value;
        }
        return;
    };
    match at {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(choice % map.len()).cloned().unwrap();
            if rest.is_empty() && replacement.is_none() {
                map.remove(&key);
            } else {
                mutate(map.get_mut(&key).unwrap(), rest, replacement);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = choice % items.len();
            if rest.is_empty() && replacement.is_none() {
                items.remove(i);
            } else {
                mutate(&mut items[i], rest, replacement);
            }
        }
        _ => mutate(at, &[], replacement),
    }
}

fn is_http(function: Function) -> bool {
    routes::HTTP_ROUTES.iter().any(|r| r.function == function)
}

fn uri_safe(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%?".contains(&b))
}

/// lambda_http panics (by design, documented) on an HTTP API event whose `rawPath`,
/// query string or `Host` header is not a valid URI part, or whose body is flagged
/// base64 and is not: API Gateway never sends such an event (it has parsed the request
/// and encodes bodies itself), so damaged events keep those four parts valid.
fn keep_http_envelope_valid(event: &mut Value) {
    let Value::Object(map) = event else { return };
    if !map.get("rawPath").and_then(Value::as_str).is_some_and(|p| p.starts_with('/') && uri_safe(p)) {
        map.insert("rawPath".into(), json!("/"));
    }
    if !map.get("rawQueryString").and_then(Value::as_str).is_none_or(uri_safe) {
        map.insert("rawQueryString".into(), json!(""));
    }
    map.insert("isBase64Encoded".into(), json!(false));
    if let Some(Value::Object(headers)) = map.get_mut("headers") {
        headers.retain(|name, value| !name.eq_ignore_ascii_case("host") || value.as_str().is_some_and(uri_safe));
    }
}

/// A well-formed event for `function`, to mutate.
fn valid_event(function: Function) -> Value {
    match function {
        Function::Connect => ev::connect_event("alice", "Fuzz0Conn1d="),
        Function::Disconnect => ev::disconnect_event("alice", "Fuzz0Conn1d="),
        Function::Send => ev::send_event("alice", "c1", "m1"),
        Function::History => ev::history_event("alice", "c1", "50"),
        Function::Authorizer => ev::authorizer_event("not-a-token"),
        Function::Auth => ev::http_event(
            "POST",
            "POST /auth/signin",
            &[],
            &[],
            Some(r#"{"username":"alice","password":"correct horse battery staple"}"#),
            None,
        ),
        Function::Channels => {
            ev::http_event("GET", "GET /channels/{channelId}", &[("channelId", "c1")], &[], None, Some("alice"))
        }
        _ => ev::scheduled_event("Fuzz"),
    }
}

/// What a function may answer to any event: an error it reports (never a panic), or, for
/// the API Gateway routes, a response with a status (HTTP: never a 5xx for bad input).
fn check_answer(function: Function, answer: &Result<Value, InvokeError>) -> Result<(), TestCaseError> {
    let Ok(answer) = answer else { return Ok(()) };
    match function {
        Function::Connect | Function::Disconnect | Function::Send => {
            prop_assert!(answer["statusCode"].is_u64(), "{function:?} answered {answer}");
        }
        Function::History | Function::Auth | Function::Channels => {
            let status = answer["statusCode"].as_u64().unwrap_or(0);
            prop_assert!((200..500).contains(&status), "{function:?} answered {answer}");
        }
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_frame_parser_refuses_bad_frames_with_invalid_request(frame in any_frame()) {
        if let Err(err) = ClientFrame::parse(&frame) {
            prop_assert_eq!(err.code, ErrorCode::InvalidRequest, "{}", frame);
            prop_assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn every_frame_gets_one_answer_and_bad_ones_an_error(frame in any_frame()) {
        let answer = invoke(Function::Send, ev::frame_event("alice", "Fuzz0Conn1d=", "$default", &frame));
        let answer = answer.map_err(|e| TestCaseError::fail(format!("Send failed on {frame:?}: {e}")))?;
        prop_assert_eq!(answer["statusCode"].as_u64(), Some(200));
        let reply = answered_frame(&answer);
        prop_assert!(reply["type"].is_string(), "{}", reply);
        if ClientFrame::parse(&frame).is_err() {
            prop_assert_eq!(&reply["type"], "error", "{:?} got {}", frame, reply);
            prop_assert_eq!(&reply["code"], "invalid_request", "{:?} got {}", frame, reply);
        }
    }

    #[test]
    fn no_function_panics_on_arbitrary_json(event in json_value(), which in any::<prop::sample::Index>()) {
        let all = functions();
        let function = all[which.index(all.len())];
        let answer = invoke(function, event);
        check_answer(function, &answer)?;
    }

    #[test]
    fn no_function_panics_on_a_damaged_event(
        which in any::<prop::sample::Index>(),
        path in prop::collection::vec(any::<usize>(), 1..5),
        replacement in prop::option::of(json_value()),
    ) {
        let all = functions();
        let function = all[which.index(all.len())];
        let mut event = valid_event(function);
        mutate(&mut event, &path, replacement);
        if is_http(function) {
            keep_http_envelope_valid(&mut event);
        }
        let answer = invoke(function, event);
        check_answer(function, &answer)?;
    }

    #[test]
    fn history_refuses_bad_parameters_with_4xx(
        limit in prop_oneof![any::<String>(), "-?[0-9]{1,25}".boxed()],
        before in prop_oneof![any::<String>(), "[0-9]{1,25}".boxed()],
        channel in any::<String>(),
    ) {
        let event = ev::http_event(
            "GET",
            "GET /channels/{channelId}/messages",
            &[("channelId", &channel)],
            &[("limit", &limit), ("before", &before)],
            None,
            Some("alice"),
        );
        let answer = invoke(Function::History, event).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let status = answer["statusCode"].as_u64().unwrap_or(0);
        prop_assert!((200..500).contains(&status), "{}", answer);
    }
}

fn corpus(dir: &str) -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(dir);
    let mut files = Vec::new();
    for expect in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let expect = expect.unwrap().path();
        for file in std::fs::read_dir(&expect).unwrap() {
            files.push((expect.file_name().unwrap().to_string_lossy().into_owned(), file.unwrap().path()));
        }
    }
    files.sort();
    files
}

/// bench/corpus/frames/{code}/*: each frame, sent by a user who is in no channel, is
/// answered with an error frame of that code.
#[test]
fn corpus_frames_get_their_error_codes() {
    let frames = corpus("frames");
    assert!(frames.len() > 30, "the corpus is there");
    for (code, path) in frames {
        let frame = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let answer = invoke(Function::Send, ev::frame_event("mallory", "Fuzz0Conn1d=", "$default", &frame)).unwrap();
        let reply = answered_frame(&answer);
        assert_eq!(reply["type"], "error", "{}: {reply}", path.display());
        assert_eq!(reply["code"], code.as_str(), "{}: {reply}", path.display());
    }
}

/// bench/corpus/events/{Function}/*.json: events that once surprised a handler; each must
/// be answered (or refused as a bad event) without a panic.
#[test]
fn corpus_events_are_answered() {
    let events = corpus("events");
    assert!(!events.is_empty(), "the corpus is there");
    for (function, path) in events {
        let function = functions()
            .into_iter()
            .find(|f| f.logical_id() == function)
            .unwrap_or_else(|| panic!("{}: no function {function}", path.display()));
        let event: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let answer = invoke(function, event);
        check_answer(function, &answer).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
