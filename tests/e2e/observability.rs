//! What an operator sees: the EMF lines a send would log in Lambda, `/metrics` moving
//! with the traffic, and `/health` telling a working stack from one whose DynamoDB is gone.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use chat_domain::metrics;
use e2e::Stack;
use local_gateway::invoke::InProcess;
use serde_json::Value;

/// The value of one sample line of Prometheus text (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|value| value.parse().unwrap())
        .unwrap_or(0.0)
}

async fn metrics_text(stack: &Stack) -> String {
    let response = reqwest::get(format!("{}/metrics", stack.gateway.http_url())).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_writes_one_emf_line_with_its_figures_under_the_function_dimension() {
    let stack = Stack::start().await;
    stack.create_channel("g-emf", &["alice", "bob", "carol"]).await;
    let mut alice = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;
    alice.send_message("g-emf", "m1", "hello, metrics").await;
    assert_eq!(alice.recv().await["type"], "ack");
    assert_eq!(bob.recv().await["message"]["text"], "hello, metrics");
    // carol is pushed: the ack came before the send's invocation (and its line) ended.
    stack.settle().await;

    let lines = stack.gateway.observed().expect("in-process functions are observed").emf_lines();
    let sends: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).expect("an EMF line is JSON"))
        .filter(|doc| doc["Function"] == "send" && doc.get(metrics::MESSAGES_STORED).is_some())
        .collect();
    assert_eq!(sends.len(), 1, "one send, one line: {lines:#?}");
    let doc = &sends[0];
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Dimensions"], serde_json::json!([["Function"]]));
    assert!(directive["Namespace"].as_str().unwrap().starts_with("ServerlessChat"));
    assert!(doc["_aws"]["Timestamp"].as_i64().unwrap() > 0);
    assert_eq!(doc[metrics::MESSAGES_STORED], 1);
    // Bob's one device is the one recipient; carol is offline (no push target configured
    // for her devices here), alice's own connection gets the ack instead.
    assert_eq!(doc[metrics::SEND_RECIPIENTS], 1);
    assert_eq!(doc[metrics::POSTS_DELIVERED], 1);
    for timing in [metrics::SEND_STORE_MS, metrics::SEND_DELIVER_MS, metrics::SEND_TOTAL_MS] {
        let values = doc[timing].as_array().unwrap_or_else(|| panic!("{timing} in {doc}"));
        assert_eq!(values.len(), 1);
        assert!(values[0].as_f64().unwrap() > 0.0);
    }
    let declared: Vec<&str> =
        directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
    for key in doc.as_object().unwrap().keys().filter(|k| !matches!(k.as_str(), "_aws" | "Function")) {
        assert!(declared.contains(&key.as_str()), "{key} is a value without a declared metric");
    }
    // Nothing in the line names a user, a channel or the text.
    assert!(!lines.iter().any(|line| line.contains("alice") || line.contains("g-emf") || line.contains("hello")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_sends_and_their_delivery_times_and_the_open_connections() {
    let stack = Stack::start().await;
    stack.create_channel("g-metrics", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;
    let before = metrics_text(&stack).await;
    for n in 0..3 {
        alice.send_message("g-metrics", &format!("m{n}"), "counted").await;
        assert_eq!(alice.recv().await["type"], "ack");
        assert_eq!(bob.recv().await["type"], "message");
    }
    let after = metrics_text(&stack).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(moved("chat_messages_stored_total{function=\"send\"}"), 3.0);
    assert_eq!(moved("chat_posts_delivered_total{function=\"send\"}"), 3.0);
    assert_eq!(moved("chat_send_total_ms_count{function=\"send\"}"), 3.0);
    assert_eq!(moved("chat_send_total_ms_bucket{function=\"send\",le=\"+Inf\"}"), 3.0);
    assert!(moved("chat_send_total_ms_sum{function=\"send\"}") > 0.0);
    assert!(moved("chat_invocations_total{function=\"send\",outcome=\"ok\"}") >= 3.0);
    assert_eq!(sample(&after, "chat_open_connections"), 2.0);
    // Buckets never decrease along `le`.
    let buckets: Vec<f64> = after
        .lines()
        .filter(|l| l.starts_with("chat_send_total_ms_bucket{function=\"send\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 8);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_200_while_dynamodb_answers_and_503_when_it_does_not() {
    let stack = Stack::start().await;
    let response = reqwest::get(format!("{}/health", stack.gateway.http_url())).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["dynamodb"], "ok");

    // The same gateway and functions with DynamoDB gone: a port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(dead_endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "e2e"))
        .load()
        .await;
    let clock = Arc::new(chat_domain::clock::SystemClock);
    let app = chat_aws::wire::app(&stack.config, &sdk, clock, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway =
        local_gateway::serve(listener, Default::default(), Arc::new(InProcess::new(Arc::new(app)))).await.unwrap();
    let response = reqwest::get(format!("{}/health", gateway.http_url())).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    // Either the refused connection's error or, when the SDK's retries outlast the check's
    // 2 s, that no answer came.
    let why = body["checks"]["dynamodb"].as_str().unwrap();
    assert!(why.contains("DynamoDB") || why.contains("no answer"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_posts_are_counted_apart_from_failed_ones() {
    let faults = local_gateway::ManagementFaults::default();
    let stack = Stack::start_with(e2e::StackOptions { faults: Some(faults.clone()), ..Default::default() }).await;
    stack.create_channel("g-429", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let _bob = stack.connect("bob").await;
    let before = metrics_text(&stack).await;
    // Every post is answered 429 LimitExceededException, as API Gateway throttles.
    faults.set(local_gateway::FaultShares { throttled: 1.0, ..Default::default() });
    alice.send_message("g-429", "m1", "slow down").await;
    assert_eq!(alice.recv().await["type"], "ack", "the message is stored whatever the posts do");
    let after = metrics_text(&stack).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(moved("chat_posts_throttled_total{function=\"send\"}"), 1.0);
    assert_eq!(moved("chat_posts_failed_total{function=\"send\"}"), 0.0);
    assert_eq!(moved("chat_posts_delivered_total{function=\"send\"}"), 0.0);
}
