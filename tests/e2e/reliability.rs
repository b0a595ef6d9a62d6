//! Reliability: load and faults. After each run, every acknowledged message is in history
//! once, no error frame hides a stored message, every device's view of a channel agrees
//! with history (by `seq`), and connections that went away are forgotten. Small runs: the
//! large ones are benchmark commands (docs/BENCHMARKS.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_domain::model::UserId;
use e2e::faults::{DynamoFaultProxy, Twice};
use e2e::live::{LiveClient, LoadSpec, View, ViewCheck, check_views, record_answer, run_load};
use e2e::{Stack, StackOptions};
use local_gateway::routes::Function;
use local_gateway::{FaultShares, ManagementFaults};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_devices_in_many_channels_see_every_message_once_in_history_order() {
    let stack = Stack::start().await;
    let spec =
        LoadSpec { clients: 6, channels: 2, messages_per_client: 4, send_interval: Duration::ZERO, patience: PATIENCE };
    let outcome = run_load(&stack, &spec).await;
    assert_eq!(outcome.sent, 24, "{outcome:?}");
    assert_eq!(outcome.acked, 24, "every send acked: {:?}", outcome.errors);
    assert_eq!(outcome.stored, 24);
    assert!(outcome.clean(), "{:?}", outcome.views);
    // Six members per channel, 12 messages each: every device gets the 20 it did not send.
    assert_eq!(outcome.views.events, 6 * 20, "{:?}", outcome.views);
}

/// Sends `frames` (clientMsgIds) into `channel` one after the other, each after the answer
/// to the previous one; answers every answer by clientMsgId.
async fn send_in_turn(
    device: &LiveClient,
    view: &mut View,
    channel: &str,
    ids: &[String],
) -> HashMap<String, Result<String, String>> {
    let mut answers = HashMap::new();
    for id in ids {
        assert!(device.send_message(channel, id, &format!("text of {id}")).await.is_some());
        let deadline = Instant::now() + PATIENCE;
        while !answers.contains_key(id) {
            let arrival = device
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
                .unwrap_or_else(|| panic!("no answer to {id}"));
            let frame = arrival.frame.unwrap_or_else(|| panic!("connection ended before the answer to {id}"));
            record_answer(&frame, &mut answers);
            view.record(&frame);
        }
    }
    answers
}

/// As [`send_in_turn`], for a sender whose own connection may be dropped (an injected 410
/// on its posted ack closes it, as when a device goes away): like a client, it connects
/// again and sends the same clientMsgId, until each send is answered.
async fn send_in_turn_reconnecting(
    stack: &Stack,
    device: &mut LiveClient,
    view: &mut View,
    channel: &str,
    ids: &[String],
) -> (HashMap<String, Result<String, String>>, usize) {
    let mut answers = HashMap::new();
    let mut reconnects = 0;
    for id in ids {
        let deadline = Instant::now() + PATIENCE;
        'send: while !answers.contains_key(id) {
            assert!(device.send_message(channel, id, &format!("text of {id}")).await.is_some());
            while !answers.contains_key(id) {
                let arrival = device
                    .next(deadline.saturating_duration_since(Instant::now()))
                    .await
                    .unwrap_or_else(|| panic!("no answer to {id}"));
                let Some(frame) = arrival.frame else {
                    reconnects += 1;
                    *device = LiveClient::of(stack, &device.user).await;
                    continue 'send;
                };
                record_answer(&frame, &mut answers);
                view.record(&frame);
            }
        }
    }
    (answers, reconnects)
}

/// Reads what `device` has been sent until `quiet` passes without a frame.
async fn drain(device: &LiveClient, view: &mut View, quiet: Duration) -> bool {
    while let Some(arrival) = device.next(quiet).await {
        match arrival.frame {
            Some(frame) => {
                view.record(&frame);
            }
            None => return false,
        }
    }
    true
}

/// The live connection entries Presence holds for each of `users`.
async fn presence_counts(stack: &Stack, users: &[&str]) -> BTreeMap<String, usize> {
    let ids: Vec<UserId> = users.iter().map(|u| UserId::parse(*u).unwrap()).collect();
    let mut counts: BTreeMap<String, usize> = users.iter().map(|u| (u.to_string(), 0)).collect();
    for (user, _) in chat_domain::connections::live(&stack.app, &ids).await.unwrap() {
        *counts.entry(user.to_string()).or_default() += 1;
    }
    counts
}

/// Waits until Presence holds exactly `expected` connections per user.
async fn presence_settles(stack: &Stack, expected: &BTreeMap<String, usize>) {
    let users: Vec<&str> = expected.keys().map(String::as_str).collect();
    let mut counts = BTreeMap::new();
    for _ in 0..100 {
        counts = presence_counts(stack, &users).await;
        if &counts == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("presence holds {counts:?}, expected {expected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_mid_send_lose_nothing_acknowledged_and_are_forgotten() {
    let stack = Stack::start().await;
    let members = ["ann", "ben", "cat", "dan", "eve"];
    stack.create_channel("drops", &members).await;
    let sender = LiveClient::of(&stack, "ann").await;
    let mut listeners = Vec::new();
    for user in &members[1..] {
        listeners.push((LiveClient::of(&stack, user).await, View::default()));
    }
    // Second devices that go away while messages are on their way.
    let mut ben_phone = Some(LiveClient::of(&stack, "ben").await);
    let mut cat_phone = Some(LiveClient::of(&stack, "cat").await);
    // A device that vanished earlier without $disconnect (its record is still there).
    let dan = UserId::parse("dan").unwrap();
    let ghost = chat_domain::model::ConnectionId::new("Gh0stDr0pped=");
    let device =
        chat_domain::presence::Device { connection: &ghost, session: None, lifetime_left_ms: stack.app.now_ms() };
    chat_domain::presence::connected(&stack.app, &dan, &device).await.unwrap();

    let ids: Vec<String> = (0..10).map(|n| format!("d{n}")).collect();
    let mut sender_view = View::default();
    for id in &ids {
        assert!(sender.send_message("drops", id, &format!("text of {id}")).await.is_some());
        let phone = match id.as_str() {
            "d2" => ben_phone.take(),
            "d5" => cat_phone.take(),
            _ => None,
        };
        if let Some(phone) = phone {
            phone.drop_abruptly();
        }
    }
    let mut answers = HashMap::new();
    let deadline = Instant::now() + PATIENCE;
    while answers.len() < ids.len() {
        let arrival =
            sender.next(deadline.saturating_duration_since(Instant::now())).await.expect("every send answered");
        let frame = arrival.frame.expect("sender stays connected");
        record_answer(&frame, &mut answers);
        sender_view.record(&frame);
    }
    assert!(answers.values().all(Result::is_ok), "{answers:?}");

    // A sender whose connection drops right after sending retries with the same id.
    let eve_phone = LiveClient::of(&stack, "eve").await;
    assert!(eve_phone.send_message("drops", "eve-1", "sent as the tunnel began").await.is_some());
    eve_phone.drop_abruptly();
    let eve_again = LiveClient::of(&stack, "eve").await;
    let mut eve_view = View::default();
    let retried = send_in_turn(&eve_again, &mut eve_view, "drops", &["eve-1".to_owned()]).await;
    let retried_id = retried["eve-1"].clone().expect("the retry is acked");

    for (device, view) in listeners.iter_mut() {
        drain(device, view, Duration::from_millis(300)).await;
    }
    let history = stack.full_history("ben", "drops").await;
    assert_eq!(history.len(), 11, "ten sends and one retried send, each stored once");
    for id in &ids {
        let stored: Vec<&Value> = history.iter().filter(|m| m["clientMsgId"] == id.as_str()).collect();
        assert_eq!(stored.len(), 1, "{id}");
        assert_eq!(Some(&Ok(stored[0]["messageId"].as_str().unwrap().to_owned())), answers.get(id));
    }
    assert_eq!(history.iter().filter(|m| m["messageId"] == retried_id.as_str()).count(), 1);

    // The devices that stayed saw everything, once, in history's order.
    let histories = BTreeMap::from([("drops".to_owned(), history)]);
    let views: Vec<(Vec<String>, View)> =
        listeners.iter().map(|(_, view)| (vec!["drops".to_owned()], view.clone())).collect();
    let check = check_views(&histories, &views);
    // eve's listening device got the retried message too (from eve's other device). Only
    // the retried send may come twice: its first attempt may have been delivered already.
    assert!(check.redelivered <= listeners.len(), "{check:?}");
    assert!(ViewCheck { redelivered: 0, ..check.clone() }.holds(false), "{check:?}");

    // The dropped phones and the ghost are forgotten ($disconnect, or 410 on the next post).
    let expected: BTreeMap<String, usize> =
        [("ann", 1), ("ben", 1), ("cat", 1), ("dan", 1), ("eve", 2)].iter().map(|(u, n)| (u.to_string(), *n)).collect();
    presence_settles(&stack, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_api_errors_lose_no_acknowledged_message() {
    let faults = ManagementFaults::default();
    let stack = Stack::start_with(StackOptions { faults: Some(faults.clone()), ..Default::default() }).await;
    let members = ["amy", "bob", "cyd", "dee", "eli", "fay"];
    stack.create_channel("flaky", &members).await;
    let mut sender = LiveClient::of(&stack, "amy").await;
    let mut listeners = Vec::new();
    for user in &members[1..] {
        listeners.push((user.to_string(), LiveClient::of(&stack, user).await, View::default()));
    }

    let ids: Vec<String> = (0..15).map(|n| format!("f{n}")).collect();
    let mut sender_view = View::default();
    faults.set(FaultShares { gone: 0.05, throttled: 0.2, internal_error: 0.2 });
    // Once a member is forgotten (a 410) they are pushed, and the ack is posted: a 410 on
    // it drops the sender's own socket, which connects again and retries.
    let (answers, reconnects) = send_in_turn_reconnecting(&stack, &mut sender, &mut sender_view, "flaky", &ids).await;
    faults.set(FaultShares::default());
    // Failed posts to others never turn the ack into an error.
    assert!(answers.values().all(Result::is_ok), "{answers:?}");
    let (gone, throttled, internal) = faults.injected();
    assert!(gone + throttled + internal > 0, "no fault was injected");

    let mut still_open = BTreeMap::from([("amy".to_owned(), 1)]);
    let mut views = Vec::new();
    for (user, device, view) in listeners.iter_mut() {
        let open = drain(device, view, Duration::from_millis(300)).await;
        still_open.insert(user.clone(), usize::from(open));
        views.push((vec!["flaky".to_owned()], view.clone()));
    }
    let history = stack.full_history("amy", "flaky").await;
    assert_eq!(history.len(), ids.len());
    for id in &ids {
        let stored = history.iter().find(|m| m["clientMsgId"] == id.as_str()).expect("acked message stored");
        assert_eq!(answers[id], Ok(stored["messageId"].as_str().unwrap().to_owned()));
    }
    // Posts that failed cost live events (devices read them from history), never a
    // phantom or a wrong seq; a duplicate only where the sender retried after its socket
    // dropped (delivery is at least once; devices drop a seq they hold).
    let check = check_views(&BTreeMap::from([("flaky".to_owned(), history)]), &views);
    let redelivered_at_most = reconnects * (members.len() - 1);
    assert!(check.redelivered <= redelivered_at_most, "{check:?}, {reconnects} reconnects");
    assert!(ViewCheck { redelivered: 0, ..check.clone() }.holds(true), "{check:?}");
    // Connections dropped with a 410 are forgotten by the send that got it.
    presence_settles(&stack, &still_open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_dynamodb_requests_never_turn_an_error_frame_into_a_lie() {
    let proxy = DynamoFaultProxy::start(e2e::moto::endpoint()).await;
    let sdk = e2e::sdk_config().await.to_builder().endpoint_url(proxy.url()).build();
    let stack = Stack::start_with(StackOptions { sdk: Some(sdk), ..Default::default() }).await;
    let members = ["ada", "bea", "cal", "dov"];
    stack.create_channel("throttled", &members).await;
    let senders = [LiveClient::of(&stack, "ada").await, LiveClient::of(&stack, "bea").await];
    let listeners = [LiveClient::of(&stack, "cal").await, LiveClient::of(&stack, "dov").await];

    proxy.set_share(0.35);
    let runs = senders.iter().enumerate().map(|(s, device)| async move {
        let ids: Vec<String> = (0..8).map(|n| format!("t{s}-{n}")).collect();
        let mut view = View::default();
        let answers = send_in_turn(device, &mut view, "throttled", &ids).await;
        (ids, answers, view)
    });
    let results = futures::future::join_all(runs).await;
    proxy.set_share(0.0);
    let (throttled, _) = proxy.counts();
    assert!(throttled > 0, "the proxy throttled nothing");

    // A send whose write failed after it claimed a seq leaves a deleted message there (no
    // gap, nothing stored): those are not messages.
    let stored_messages =
        |history: &[Value]| -> Vec<Value> { history.iter().filter(|m| m["deleted"] != true).cloned().collect() };
    let history = stack.full_history("cal", "throttled").await;
    let mut refused = Vec::new();
    for (_, answers, _) in &results {
        for (id, answer) in answers {
            let stored: Vec<Value> =
                stored_messages(&history).into_iter().filter(|m| m["clientMsgId"] == id.as_str()).collect();
            match answer {
                Ok(message_id) => {
                    assert_eq!(stored.len(), 1, "acked {id} is stored once");
                    assert_eq!(stored[0]["messageId"], message_id.as_str());
                }
                Err(code) => {
                    assert!(stored.is_empty(), "{id} was answered {code} but is stored");
                    assert!(["internal", "rate_limited"].contains(&code.as_str()), "{id}: {code}");
                    refused.push(id.clone());
                }
            }
        }
    }
    // Retrying the refused sends with the same ids, once DynamoDB has capacity again,
    // stores each exactly once.
    for (s, (ids, _, view)) in results.into_iter().enumerate() {
        let mine: Vec<String> = refused.iter().filter(|id| ids.contains(id)).cloned().collect();
        let mut view = view;
        let answers = send_in_turn(&senders[s], &mut view, "throttled", &mine).await;
        assert!(answers.values().all(Result::is_ok), "{answers:?}");
    }
    let history = stack.full_history("cal", "throttled").await;
    assert_eq!(stored_messages(&history).len(), 16);

    let mut views = Vec::new();
    for listener in &listeners {
        let mut view = View::default();
        drain(listener, &mut view, Duration::from_millis(300)).await;
        views.push((vec!["throttled".to_owned()], view));
    }
    let check = check_views(&BTreeMap::from([("throttled".to_owned(), history)]), &views);
    assert!(check.holds(true), "{check:?}");

    // $disconnect itself throttled away: the stale records go on the next send's 410s.
    proxy.only(&["UpdateItem"]);
    proxy.set_share(1.0);
    let (throttled_before, _) = proxy.counts();
    let [cal, dov] = listeners;
    cal.close().await;
    dov.close().await;
    // Both $disconnects have used up their attempts (three each).
    for _ in 0..100 {
        if proxy.counts().0 >= throttled_before + 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.set_share(0.0);
    let mut ada_view = View::default();
    send_in_turn(&senders[0], &mut ada_view, "throttled", &["after".to_owned()]).await;
    let expected = BTreeMap::from([("ada", 1), ("bea", 1), ("cal", 0), ("dov", 0)].map(|(u, n)| (u.to_owned(), n)));
    presence_settles(&stack, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_twice_stores_once_and_acks_the_same_message() {
    let deliveries = Arc::new(std::sync::Mutex::new(None));
    let keep = deliveries.clone();
    let invoker: e2e::InvokerFactory = Box::new(move |functions| {
        let twice = Twice::new(Arc::new(functions.invoker()));
        *keep.lock().unwrap() = Some(twice.deliveries.clone());
        Arc::new(twice)
    });
    let stack = Stack::start_with(StackOptions { invoker: Some(invoker), ..Default::default() }).await;
    let deliveries = deliveries.lock().unwrap().clone().expect("the stack built the invoker");
    stack.create_channel("twice", &["ann", "bob", "cyd"]).await;
    stack.create_channel("dm-twice", &["ann", "bob"]).await;
    let ann = LiveClient::of(&stack, "ann").await;
    let bob = LiveClient::of(&stack, "bob").await;
    let cyd = LiveClient::of(&stack, "cyd").await;

    let (mut ann_view, mut bob_view, mut cyd_view) = (View::default(), View::default(), View::default());
    let group: Vec<String> = (0..5).map(|n| format!("g{n}")).collect();
    let direct: Vec<String> = (0..3).map(|n| format!("d{n}")).collect();
    let ann_answers = send_in_turn(&ann, &mut ann_view, "twice", &group).await;
    let bob_answers = send_in_turn(&bob, &mut bob_view, "dm-twice", &direct).await;
    assert!(ann_answers.values().chain(bob_answers.values()).all(Result::is_ok));
    for (device, view) in [(&ann, &mut ann_view), (&bob, &mut bob_view), (&cyd, &mut cyd_view)] {
        drain(device, view, Duration::from_millis(300)).await;
    }

    let histories = BTreeMap::from([
        ("twice".to_owned(), stack.full_history("ann", "twice").await),
        ("dm-twice".to_owned(), stack.full_history("ann", "dm-twice").await),
    ]);
    assert_eq!(histories["twice"].len(), 5);
    assert_eq!(histories["dm-twice"].len(), 3);
    let views = vec![
        (vec!["twice".to_owned(), "dm-twice".to_owned()], ann_view),
        (vec!["twice".to_owned(), "dm-twice".to_owned()], bob_view),
        (vec!["twice".to_owned()], cyd_view),
    ];
    // The second delivery of a send is delivered live again (at least once), as the same
    // message with the same seq: every live event came exactly twice, nothing else changed.
    let check = check_views(&histories, &views);
    assert_eq!(check.events, 2 * (5 * 2 + 3), "{check:?}");
    assert_eq!(check.redelivered, 5 * 2 + 3, "{check:?}");
    assert!(ViewCheck { redelivered: 0, ..check.clone() }.holds(false), "{check:?}");

    // Both deliveries of each send answered the same stored message.
    let deliveries = deliveries.lock().unwrap().clone();
    let sends: Vec<_> = deliveries
        .iter()
        .filter(|d| d.function == Function::Send && d.event["body"].as_str().is_some_and(|b| b.contains("sendMessage")))
        .collect();
    assert_eq!(sends.len(), 8);
    for delivery in sends {
        let acks: Vec<Value> = delivery
            .answers
            .iter()
            .map(|answer| {
                let body = answer.as_ref().expect("the function answered")["body"].as_str().unwrap().to_owned();
                serde_json::from_str::<Value>(&body).unwrap()
            })
            .collect();
        assert_eq!(acks[0]["type"], "ack", "{acks:?}");
        assert_eq!(acks[0]["message"], acks[1]["message"], "both deliveries ack the same message");
    }

    // Twice-delivered $connect and $disconnect leave Presence exact.
    let counts = BTreeMap::from([("ann", 1), ("bob", 1), ("cyd", 1)].map(|(u, n)| (u.to_owned(), n)));
    presence_settles(&stack, &counts).await;
    ann.close().await;
    bob.close().await;
    cyd.close().await;
    let gone = BTreeMap::from([("ann", 0), ("bob", 0), ("cyd", 0)].map(|(u, n)| (u.to_owned(), n)));
    presence_settles(&stack, &gone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_commit_answer_is_lost_is_acked_and_delivered() {
    let proxy = DynamoFaultProxy::start(e2e::moto::endpoint()).await;
    let sdk = e2e::sdk_config().await.to_builder().endpoint_url(proxy.url()).build();
    let stack = Stack::start_with(StackOptions { sdk: Some(sdk), ..Default::default() }).await;
    stack.create_channel("dm-lost", &["ann", "bob"]).await;
    let ann = LiveClient::of(&stack, "ann").await;
    let bob = LiveClient::of(&stack, "bob").await;

    // The transaction is carried out; every answer to it (retries included) is lost.
    proxy.only(&["TransactWriteItems"]);
    proxy.set_lost_answers(1.0);
    let mut view = View::default();
    let answers = send_in_turn(&ann, &mut view, "dm-lost", &["lost-1".to_owned()]).await;
    proxy.set_lost_answers(0.0);
    assert!(proxy.lost_answers() > 0, "no answer was lost");

    // The dedupe row shows the commit happened: the send is acked and delivered.
    let history = stack.full_history("bob", "dm-lost").await;
    assert_eq!(history.len(), 1);
    assert_eq!(answers["lost-1"].as_deref(), Ok(history[0]["messageId"].as_str().unwrap()), "{answers:?}");
    let mut bob_view = View::default();
    drain(&bob, &mut bob_view, Duration::from_millis(300)).await;
    let histories = BTreeMap::from([("dm-lost".to_owned(), history)]);
    let check = check_views(&histories, &[(vec!["dm-lost".to_owned()], bob_view)]);
    assert!(check.holds(false), "{check:?}");

    // When the dedupe row cannot be read either, the sender hears `internal` and retries
    // with the same clientMsgId: one message, acked, and delivered to Bob again.
    proxy.only(&["TransactWriteItems", "GetItem"]);
    proxy.set_lost_answers(1.0);
    let answers = send_in_turn(&ann, &mut view, "dm-lost", &["lost-2".to_owned()]).await;
    proxy.set_lost_answers(0.0);
    assert_eq!(answers["lost-2"], Err("internal".to_owned()), "{answers:?}");
    let retried = send_in_turn(&ann, &mut view, "dm-lost", &["lost-2".to_owned()]).await;
    let history = stack.full_history("bob", "dm-lost").await;
    assert_eq!(history.len(), 2);
    assert_eq!(retried["lost-2"].as_deref(), Ok(history[1]["messageId"].as_str().unwrap()), "{retried:?}");
    let mut bob_view = View::default();
    drain(&bob, &mut bob_view, Duration::from_millis(300)).await;
    let histories = BTreeMap::from([("dm-lost".to_owned(), history)]);
    let check = check_views(&histories, &[(vec!["dm-lost".to_owned()], bob_view)]);
    assert_eq!(check.missing_live, 1, "lost-1 was drained already: {check:?}");
    assert_eq!((check.phantom, check.misordered, check.broken_histories), (0, 0, 0), "{check:?}");
    assert_eq!((check.events, check.redelivered), (1, 0), "lost-2 reached Bob live, once: {check:?}");
}
