//! Refusals: every bad request gets its documented answer, and nothing is stored.

use std::time::Duration;

use e2e::{Client, ConnectError, Stack};
use serde_json::{Value, json};

async fn refused(stack: &Stack, query: &str) -> u16 {
    match Client::connect(&stack.websocket_url(), query).await {
        Err(ConnectError::Refused(status)) => status,
        Err(other) => panic!("expected a refused handshake, got {other:?}"),
        Ok(_) => panic!("connection with query {query:?} was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_valid_token_are_refused_with_401() {
    let stack = Stack::start().await;
    assert_eq!(refused(&stack, "").await, 401, "no token");
    assert_eq!(refused(&stack, "token=").await, 401, "empty token");
    assert_eq!(refused(&stack, "token=not-a-jwt").await, 401, "malformed");
    assert_eq!(refused(&stack, &format!("token={}", stack.token_valid_for("alice", -120))).await, 401, "expired");

    let foreign = chat_aws::tokens::TokenKeys::new(&chat_aws::config::TokenSettings {
        secret: "some-other-deployments-signing-key-0123456789".into(),
        issuer: chat_aws::config::DEFAULT_TOKEN_ISSUER.into(),
        audience: chat_aws::config::DEFAULT_TOKEN_AUDIENCE.into(),
    });
    let forged = foreign.issue(&chat_domain::model::UserId::parse("alice").unwrap(), now_s(), 3600);
    assert_eq!(refused(&stack, &format!("token={forged}")).await, 401, "signed with another key");

    // alg=none with a valid-looking payload.
    let good = stack.token("alice");
    let mut parts = good.split('.');
    let (_, payload) = (parts.next(), parts.next().unwrap());
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    assert_eq!(refused(&stack, &format!("token={none_header}.{payload}.")).await, 401, "alg none");

    // Nothing was recorded for any of them.
    assert_eq!(stack.gateway.open_connections(), 0);
    let alice = chat_domain::model::UserId::parse("alice").unwrap();
    let live = chat_domain::connections::live(&stack.app, &[alice]).await.unwrap();
    assert!(live.is_empty());

    // And a good token still gets in.
    let _alice = stack.connect("alice").await;
    assert_eq!(stack.gateway.open_connections(), 1);
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn expect_error(client: &mut Client, code: &str) -> Value {
    let frame = client.recv().await;
    let brief: String = frame.to_string().chars().take(300).collect();
    assert_eq!(frame["type"], "error", "{brief}");
    assert_eq!(frame["code"], code, "{brief}");
    assert!(frame["message"].as_str().is_some_and(|m| !m.is_empty()), "{brief}");
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_frames_and_store_nothing() {
    let stack = Stack::start().await;
    stack.create_channel("dm-ab", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;
    let mut mallory = stack.connect("mallory").await;

    // A non-member cannot post, and cannot tell whether the channel exists.
    mallory.send_message("dm-ab", "x1", "let me in").await;
    let error = expect_error(&mut mallory, "forbidden").await;
    assert_eq!(error["clientMsgId"], "x1");
    mallory.send_message("no-such-channel", "x2", "hello?").await;
    expect_error(&mut mallory, "forbidden").await;

    alice.send_text("{this is not json").await;
    expect_error(&mut alice, "invalid_request").await;
    alice.send_json(&json!({"action": "dance", "channelId": "dm-ab"})).await;
    let unknown = expect_error(&mut alice, "invalid_request").await;
    assert!(unknown["message"].as_str().unwrap().contains("unknown action"), "{unknown}");
    alice.send_json(&json!({"action": "sendMessage", "channelId": "dm-ab", "text": "no id"})).await;
    expect_error(&mut alice, "invalid_request").await;
    alice.send_message("dm-ab", "blank", "   ").await;
    expect_error(&mut alice, "invalid_request").await;
    alice.send_message("bad#channel", "c1", "hi").await;
    expect_error(&mut alice, "invalid_request").await;

    // Over 100,000 characters: too_large (sent in 32 KB frames, as API Gateway requires).
    let too_long =
        json!({"action": "sendMessage", "channelId": "dm-ab", "clientMsgId": "big", "text": "a".repeat(100_001)});
    alice.send_fragmented(&too_long.to_string(), 32 * 1024).await;
    let error = expect_error(&mut alice, "too_large").await;
    assert_eq!(error["clientMsgId"], "big");

    // A frame that fits API Gateway's 128 KB, carrying text whose answer would not: quotes
    // double in size once JSON-escaped, and the ack adds the message's metadata.
    let frame_with = |quotes: usize| {
        json!({"action": "sendMessage", "channelId": "dm-ab", "clientMsgId": "esc", "text": "\"".repeat(quotes)})
            .to_string()
    };
    let quotes = (128 * 1024 - frame_with(0).len()) / 2;
    let escaped = frame_with(quotes);
    assert!(escaped.len() <= 128 * 1024);
    alice.send_fragmented(&escaped, 32 * 1024).await;
    expect_error(&mut alice, "too_large").await;

    // Nothing reached Bob and nothing was stored.
    bob.expect_silence(Duration::from_millis(300)).await;
    assert!(stack.full_history("alice", "dm-ab").await.is_empty());
    let meta =
        stack.app.channels().meta(&chat_domain::model::ChannelId::parse("dm-ab").unwrap()).await.unwrap().unwrap();
    assert_eq!(meta.seq, 0);

    // Exactly 100,000 characters is fine.
    let longest =
        json!({"action": "sendMessage", "channelId": "dm-ab", "clientMsgId": "max", "text": "b".repeat(100_000)});
    alice.send_fragmented(&longest.to_string(), 32 * 1024).await;
    let ack = alice.recv().await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(bob.recv().await["message"]["text"].as_str().unwrap().len(), 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_api_gateway_limits_close_the_connection_with_1009() {
    let stack = Stack::start().await;
    stack.create_channel("dm-ab", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    // One 40 KB frame: over the 32 KB frame limit.
    let frame = json!({"action": "sendMessage", "channelId": "dm-ab", "clientMsgId": "f", "text": "c".repeat(40_000)});
    alice.send_text(&frame.to_string()).await;
    assert_eq!(alice.closed().await.code, Some(1009));

    // 140 KB in 32 KB frames: over the 128 KB message limit.
    let mut alice = stack.connect("alice").await;
    let message =
        json!({"action": "sendMessage", "channelId": "dm-ab", "clientMsgId": "m", "text": "d".repeat(140_000)});
    alice.send_fragmented(&message.to_string(), 32 * 1024).await;
    assert_eq!(alice.closed().await.code, Some(1009));
    assert!(stack.full_history("bob", "dm-ab").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_for_members_with_a_valid_token() {
    let stack = Stack::start().await;
    stack.create_channel("dm-ab", &["alice", "bob"]).await;
    let (status, body) = stack.history("mallory", "dm-ab", "").await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "forbidden");

    let url = format!("{}/channels/dm-ab/messages", stack.gateway.http_url());
    let http = reqwest::Client::new();
    assert_eq!(http.get(&url).send().await.unwrap().status().as_u16(), 401, "no token");
    let forged = http.get(&url).bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 403, "bad token: the authorizer says no");

    let (status, body) = stack.history("alice", "dm-ab", "limit=0").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_request");
    let (status, _) = stack.history("alice", "dm-ab", "before=abc").await;
    assert_eq!(status, 400);
}
