//! The core chat path: send, store, fan out.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chat_aws::metrics::RequestCounter;
use chat_domain::model::{ConnectionId, UserId};
use e2e::Stack;
use serde_json::Value;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_and_bob_chat_in_a_direct_channel() {
    let stack = Stack::start().await;
    stack.create_channel("dm-alice-bob", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let mut alice_laptop = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;

    alice.send_message("dm-alice-bob", "c1", "hi Bob").await;
    let ack = alice.recv().await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["clientMsgId"], "c1");
    let stored_id = ack["message"]["messageId"].as_str().expect("id is a string").to_owned();
    assert_eq!(ack["message"]["seq"], 1);

    let received = bob.recv().await;
    assert_eq!(received["type"], "message");
    assert_eq!(received["message"]["messageId"], stored_id.as_str());
    assert_eq!(received["message"]["text"], "hi Bob");
    assert_eq!(received["message"]["authorId"], "alice");
    assert_eq!(received["message"]["channelId"], "dm-alice-bob");

    // The sender's other device gets it too; the sending device only gets the ack.
    assert_eq!(alice_laptop.recv().await["message"]["messageId"], stored_id.as_str());
    alice.expect_silence(QUIET).await;

    let history = stack.full_history("bob", "dm-alice-bob").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["messageId"], stored_id.as_str());
    assert_eq!(history[0]["text"], "hi Bob");

    // Bob answers; Alice's devices see it.
    bob.send_message("dm-alice-bob", "b1", "hello Alice").await;
    assert_eq!(bob.recv().await["type"], "ack");
    assert_eq!(alice.recv().await["message"]["text"], "hello Alice");
    assert_eq!(alice_laptop.recv().await["message"]["text"], "hello Alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_device_of_a_100_member_group_gets_each_message_once() {
    let stack = Stack::start().await;
    let members: Vec<String> = (0..100).map(|i| format!("user{i:03}")).collect();
    let member_refs: Vec<&str> = members.iter().map(String::as_str).collect();
    stack.create_channel("big-group", &member_refs).await;
    stack.create_channel("small-group", &member_refs[..5]).await;

    // user000 sends. Members 1-49 have two devices, 50-79 one, 80-99 are offline.
    let mut sender = stack.connect("user000").await;
    let mut devices = Vec::new();
    for (i, member) in members.iter().enumerate().skip(1) {
        let count = match i {
            1..=49 => 2,
            50..=79 => 1,
            _ => 0,
        };
        for _ in 0..count {
            devices.push((member.clone(), stack.connect(member).await));
        }
    }
    assert_eq!(devices.len(), 49 * 2 + 30);

    let mut sent_ids = Vec::new();
    let mut lookups_per_send = Vec::new();
    for n in 0..3 {
        let before = stack.requests.snapshot();
        sender.send_message("big-group", &format!("g{n}"), &format!("group message {n}")).await;
        let ack = sender.recv().await;
        assert_eq!(ack["type"], "ack", "{ack}");
        sent_ids.push(ack["message"]["messageId"].as_str().unwrap().to_owned());
        // 128 posts take four rounds: the ack is posted in the first, not after the last.
        stack.settle().await;
        lookups_per_send.push(RequestCounter::diff(&before, &stack.requests.snapshot()));
    }

    for (member, device) in devices.iter_mut() {
        for expected in &sent_ids {
            let frame = device.recv().await;
            assert_eq!(frame["message"]["messageId"], expected.as_str(), "{member} got {frame}");
        }
        device.expect_silence(Duration::from_millis(20)).await;
    }

    // The same send into a 5-member channel costs the same DynamoDB requests: the lookup
    // does not grow with the member count.
    let before = stack.requests.snapshot();
    sender.send_message("small-group", "s1", "small").await;
    assert_eq!(sender.recv().await["type"], "ack");
    stack.settle().await;
    let small = RequestCounter::diff(&before, &stack.requests.snapshot());
    for big in &lookups_per_send {
        assert_eq!(dynamodb_only(big), dynamodb_only(&small), "big {big:?} vs small {small:?}");
        // Every other live device, and the sender's ack.
        assert_eq!(big.get("apigatewaymanagementapi.PostToConnection"), Some(&129));
    }
    assert_eq!(small.get("dynamodb.BatchGetItem"), Some(&1));
    assert_eq!(small.get("dynamodb.Query"), Some(&1));
    assert_eq!(small.get("dynamodb.TransactWriteItems"), Some(&1));
    assert!(!small.keys().any(|op| op.contains("Scan")));
}

fn dynamodb_only(counts: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    counts.iter().filter(|(op, _)| op.starts_with("dynamodb.")).map(|(k, v)| (k.clone(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_give_everyone_the_order_of_history() {
    let stack = Stack::start().await;
    stack.create_channel("busy", &["ann", "ben", "cat", "dan", "eve"]).await;
    let mut senders = [stack.connect("ann").await, stack.connect("ben").await, stack.connect("cat").await];
    let mut receivers = [stack.connect("dan").await, stack.connect("eve").await];
    const PER_SENDER: usize = 8;

    // Each sender fires all its messages without waiting, all senders at once.
    futures::future::join_all(senders.iter_mut().enumerate().map(|(s, client)| async move {
        for n in 0..PER_SENDER {
            client.send_message("busy", &format!("s{s}-{n}"), &format!("sender {s} message {n}")).await;
        }
    }))
    .await;
    for sender in senders.iter_mut() {
        let mut acks = 0;
        while acks < PER_SENDER {
            let frame = sender.recv().await;
            assert_ne!(frame["type"], "error", "{frame}");
            acks += usize::from(frame["type"] == "ack");
        }
    }

    let total = PER_SENDER * 3;
    let history: Vec<Value> = stack.full_history("dan", "busy").await;
    assert_eq!(history.len(), total);
    let history_ids: Vec<&str> = history.iter().map(|m| m["messageId"].as_str().unwrap()).collect();
    // History order is id order, and seq counts 1..=total along it without gaps.
    for (i, message) in history.iter().enumerate() {
        assert_eq!(message["seq"], (i + 1) as u64);
    }
    let ids: Vec<u64> = history_ids.iter().map(|id| id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    for receiver in receivers.iter_mut() {
        let mut seen = Vec::new();
        for _ in 0..total {
            let frame = receiver.recv().await;
            seen.push((
                frame["message"]["seq"].as_u64().unwrap(),
                frame["message"]["messageId"].as_str().unwrap().to_owned(),
            ));
        }
        receiver.expect_silence(QUIET).await;
        // Live events can overtake each other on the way (they do in AWS too); the seq
        // they carry puts every receiver in the same order, which is history's.
        seen.sort();
        let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
        let order: Vec<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(order, history_ids);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_send_stores_one_message_and_delivers_it_again() {
    let stack = Stack::start().await;
    stack.create_channel("dm-retry", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;

    alice.send_message("dm-retry", "same-id", "only once").await;
    let first = alice.recv().await;
    alice.send_message("dm-retry", "same-id", "only once").await;
    let second = alice.recv().await;
    assert_eq!(first["type"], "ack");
    assert_eq!(second["type"], "ack");
    assert_eq!(first["message"]["messageId"], second["message"]["messageId"]);

    // The retry may come from a send that stopped before its fan-out, so it is delivered
    // again: the same message, same id and seq, which Bob's device drops as known.
    for _ in 0..2 {
        let event = bob.recv().await;
        assert_eq!(event["message"]["messageId"], first["message"]["messageId"]);
        assert_eq!(event["message"]["seq"], 1);
    }
    bob.expect_silence(QUIET).await;
    assert_eq!(stack.full_history("alice", "dm-retry").await.len(), 1);

    // The same clientMsgId from another user is another message.
    bob.send_message("dm-retry", "same-id", "mine").await;
    let bobs = bob.recv().await;
    assert_eq!(bobs["type"], "ack");
    assert_ne!(bobs["message"]["messageId"], first["message"]["messageId"]);
    assert_eq!(stack.full_history("alice", "dm-retry").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_vanished_without_disconnect_is_dropped_on_the_next_send() {
    let stack = Stack::start().await;
    stack.create_channel("g-stale", &["alice", "bob", "carol"]).await;
    let mut alice = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;
    let mut carol = stack.connect("carol").await;

    // Bob's phone went away and API Gateway never sent $disconnect: its record remains.
    let bob_id = UserId::parse("bob").unwrap();
    let ghost = ConnectionId::new("Gh0stC0nnect1d=");
    let now = stack.app.now_ms();
    chat_domain::connections::beat(&stack.app, &bob_id, &ghost, None, now + 3_600_000, false, None).await.unwrap();
    let live = chat_domain::connections::live(&stack.app, std::slice::from_ref(&bob_id)).await.unwrap();
    assert_eq!(live.len(), 2);

    alice.send_message("g-stale", "m1", "anyone there?").await;
    assert_eq!(alice.recv().await["type"], "ack");
    assert_eq!(bob.recv().await["message"]["text"], "anyone there?");
    assert_eq!(carol.recv().await["message"]["text"], "anyone there?");
    assert_eq!(stack.full_history("carol", "g-stale").await.len(), 1);

    let live: HashSet<String> = chat_domain::connections::live(&stack.app, &[bob_id])
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c)| c.to_string())
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    assert!(!live.contains(ghost.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_device_stops_receiving_and_is_forgotten() {
    let stack = Stack::start().await;
    stack.create_channel("dm-close", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let bob = stack.connect("bob").await;
    bob.close().await;
    stack.wait_for_open_connections(1).await;
    let bob_id = UserId::parse("bob").unwrap();
    let mut remaining = usize::MAX;
    for _ in 0..100 {
        remaining = chat_domain::connections::live(&stack.app, std::slice::from_ref(&bob_id)).await.unwrap().len();
        if remaining == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(remaining, 0, "$disconnect removed Bob's connection");

    let before = stack.requests.snapshot();
    alice.send_message("dm-close", "m1", "bye").await;
    assert_eq!(alice.recv().await["type"], "ack");
    stack.settle().await;
    let used = RequestCounter::diff(&before, &stack.requests.snapshot());
    // Bob is pushed now, so the ack was posted; nothing else was.
    assert_eq!(used.get("apigatewaymanagementapi.PostToConnection"), Some(&1), "{used:?}");
}
