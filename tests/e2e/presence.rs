//! Presence, typing indicators, read receipts and unread counts.

use std::collections::BTreeMap;
use std::time::Duration;

use chat_domain::clock::ManualClock;
use e2e::{Stack, StackOptions};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);
const T0: i64 = 1_800_000_000_000;

async fn stack_at(clock: &ManualClock) -> Stack {
    Stack::start_with(StackOptions { clock: Some(clock.clone()), ..Default::default() }).await
}

/// Subscribes `client` to presence (`what`: `userIds` or `channelId`); answers the state.
async fn subscribe(client: &mut e2e::Client, what: Value) -> Value {
    let mut frame = json!({"action": "subscribePresence"});
    frame.as_object_mut().unwrap().extend(what.as_object().unwrap().clone());
    client.send_json(&frame).await;
    client.recv_type("presenceState").await
}

fn presence_of(frame: &Value) -> (String, String) {
    assert_eq!(frame["type"], "presence", "{frame}");
    (frame["userId"].as_str().unwrap().to_owned(), frame["status"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_bob_come_online_and_go_offline_with_his_last_device() {
    let clock = ManualClock::starting_at(T0);
    let stack = stack_at(&clock).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    stack.create_channel("elsewhere", &["carol", "dave"]).await;
    stack.create_channel("team", &["bob", "carol", "erin"]).await;
    let mut alice = stack.connect("alice").await.receiving_presence();
    let mut carol = stack.connect("carol").await.receiving_presence();
    // alice watches bob; carol shares a group with him but watches only dave.
    let answer = subscribe(&mut alice, json!({"channelId": "dm"})).await;
    assert_eq!(answer["users"].as_array().unwrap().len(), 2, "{answer}");
    subscribe(&mut carol, json!({"channelId": "elsewhere"})).await;

    let bob_phone = stack.connect("bob").await;
    assert_eq!(presence_of(&alice.recv().await), ("bob".into(), "online".into()));
    // A second device is not news, and nobody outside Bob's channels hears anything.
    let bob_laptop = stack.connect("bob").await;
    alice.expect_silence(QUIET).await;
    carol.expect_silence(Duration::from_millis(10)).await;

    // Closing one of two devices: Bob stays online.
    bob_laptop.close().await;
    stack.wait_for_open_connections(3).await;
    clock.advance(10_000);
    stack.gateway.run_schedules().await;
    alice.expect_silence(QUIET).await;

    // A flap (the last device drops and comes back within the grace) is not announced.
    bob_phone.close().await;
    stack.wait_for_open_connections(2).await;
    clock.advance(2_000);
    let bob_phone = stack.connect("bob").await;
    clock.advance(10_000);
    stack.gateway.run_schedules().await;
    alice.expect_silence(QUIET).await;

    // Closing the last device: offline once the grace has passed.
    bob_phone.close().await;
    stack.wait_for_open_connections(2).await;
    clock.advance(6_000);
    stack.gateway.run_schedules().await;
    let offline = alice.recv().await;
    assert_eq!(presence_of(&offline), ("bob".into(), "offline".into()));
    assert!(offline["lastSeen"].as_i64().is_some());
    carol.expect_silence(Duration::from_millis(10)).await;

    // Presence of a channel's members; carol shares no channel with alice, so although she
    // is online she looks exactly like a user who does not exist.
    alice.send_json(&json!({"action": "getPresence", "channelId": "dm", "userIds": ["bob", "carol", "nobody"]})).await;
    let states = alice.recv().await;
    assert_eq!(states["type"], "presenceState");
    let status: BTreeMap<&str, (&str, bool)> = states["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["userId"].as_str().unwrap(), (u["status"].as_str().unwrap(), u.get("lastSeen").is_some())))
        .collect();
    assert_eq!(
        status,
        BTreeMap::from([("bob", ("offline", true)), ("carol", ("offline", false)), ("nobody", ("offline", false))])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bob_goes_offline_when_his_heartbeats_stop_without_a_disconnect() {
    let clock = ManualClock::starting_at(T0);
    let stack = stack_at(&clock).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await.receiving_presence();
    subscribe(&mut alice, json!({"channelId": "dm"})).await;
    let mut bob = stack.connect("bob").await.receiving_presence();
    assert_eq!(presence_of(&alice.recv().await), ("bob".into(), "online".into()));

    // Heartbeats every 30 s keep him online (Alice keeps beating too).
    for _ in 0..3 {
        clock.advance(30_000);
        bob.send_json(&json!({"action": "heartbeat"})).await;
        alice.send_json(&json!({"action": "heartbeat"})).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        stack.gateway.run_schedules().await;
    }
    alice.expect_silence(QUIET).await;

    // His phone goes into a tunnel: the socket stays open, the heartbeats stop (Alice's
    // go on).
    clock.advance(61_000);
    alice.send_json(&json!({"action": "heartbeat"})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stack.gateway.run_schedules().await;
    assert_eq!(presence_of(&alice.recv().await), ("bob".into(), "offline".into()));
    // One announcement, not one per sweep.
    stack.gateway.run_schedules().await;
    alice.expect_silence(QUIET).await;

    // Out of the tunnel: the next heartbeat brings him back.
    bob.send_json(&json!({"action": "heartbeat"})).await;
    assert_eq!(presence_of(&alice.recv().await), ("bob".into(), "online".into()));
    bob.expect_silence(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_other_members_only_and_is_not_stored() {
    let stack = Stack::start().await;
    stack.create_channel("team", &["alice", "bob", "carol"]).await;
    stack.create_channel("other", &["dave", "erin"]).await;
    let mut alice = stack.connect("alice").await;
    let mut alice_laptop = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;
    let mut carol = stack.connect("carol").await;
    let mut dave = stack.connect("dave").await;

    alice.send_json(&json!({"action": "typing", "channelId": "team", "state": "start"})).await;
    for client in [&mut bob, &mut carol] {
        let frame = client.recv().await;
        assert_eq!(frame, json!({"type": "typing", "channelId": "team", "userId": "alice", "state": "start"}));
    }
    alice.expect_silence(QUIET).await;
    alice_laptop.expect_silence(Duration::from_millis(10)).await;
    dave.expect_silence(Duration::from_millis(10)).await;

    alice.send_json(&json!({"action": "typing", "channelId": "team", "state": "stop"})).await;
    assert_eq!(bob.recv().await["state"], "stop");

    // Outsiders cannot type into a channel; bad states are refused.
    dave.send_json(&json!({"action": "typing", "channelId": "team", "state": "start"})).await;
    assert_eq!(dave.recv().await["code"], "forbidden");
    alice.send_json(&json!({"action": "typing", "channelId": "team", "state": "maybe"})).await;
    assert_eq!(alice.recv().await["code"], "invalid_request");

    assert!(stack.full_history("bob", "team").await.is_empty());
    let (_, channels) = stack.get("/channels", Some(&stack.token("bob"))).await;
    assert_eq!(channels["channels"][0]["seq"], 0);
}

async fn unread(stack: &Stack, user: &str) -> BTreeMap<String, u64> {
    let (status, list) = stack.get("/channels", Some(&stack.token(user))).await;
    assert_eq!(status, 200);
    list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["channelId"].as_str().unwrap().to_owned(), c["unread"].as_u64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_reach_the_author_and_clear_the_readers_other_devices() {
    let stack = Stack::start().await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let mut bob_phone = stack.connect("bob").await;
    let mut bob_laptop = stack.connect("bob").await;

    let mut ids = Vec::new();
    for n in 0..2 {
        alice.send_message("dm", &format!("m{n}"), &format!("message {n}")).await;
        ids.push(alice.recv().await["message"]["messageId"].as_str().unwrap().to_owned());
        bob_phone.recv().await;
        bob_laptop.recv().await;
    }
    assert_eq!(unread(&stack, "bob").await["dm"], 2);
    assert_eq!(unread(&stack, "alice").await["dm"], 0, "her own messages are read");

    bob_phone.send_json(&json!({"action": "markRead", "channelId": "dm", "messageId": ids[1]})).await;
    let answer = bob_phone.recv().await;
    let expected = json!({"type": "receipt", "channelId": "dm", "userId": "bob", "messageId": ids[1], "seq": 2});
    assert_eq!(answer, expected);
    assert_eq!(alice.recv().await, expected, "the author sees the receipt");
    assert_eq!(bob_laptop.recv().await, expected, "Bob's other device learns the channel is read");
    assert_eq!(unread(&stack, "bob").await["dm"], 0);

    // A later message makes it 1; reading an older one does not move the position back.
    alice.send_message("dm", "m2", "one more").await;
    alice.recv().await;
    bob_phone.recv().await;
    bob_laptop.recv().await;
    assert_eq!(unread(&stack, "bob").await["dm"], 1);
    bob_laptop.send_json(&json!({"action": "markRead", "channelId": "dm", "messageId": ids[0]})).await;
    assert_eq!(bob_laptop.recv().await["seq"], 1);
    alice.expect_silence(QUIET).await;
    assert_eq!(unread(&stack, "bob").await["dm"], 1);

    // Unknown messages and foreign channels are refused.
    bob_phone.send_json(&json!({"action": "markRead", "channelId": "dm", "messageId": "12345"})).await;
    assert_eq!(bob_phone.recv().await["code"], "not_found");
    let mut mallory = stack.connect("mallory").await;
    mallory.send_json(&json!({"action": "markRead", "channelId": "dm", "messageId": ids[0]})).await;
    assert_eq!(mallory.recv().await["code"], "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_stay_right_across_three_channels_and_three_users() {
    let stack = Stack::start().await;
    let channels: [(&str, &[&str]); 3] =
        [("c1", &["ann", "ben", "cy"]), ("c2", &["ann", "ben"]), ("c3", &["ben", "cy"])];
    for (id, members) in channels {
        stack.create_channel(id, members).await;
    }
    let mut clients = BTreeMap::new();
    for user in ["ann", "ben", "cy"] {
        clients.insert(user, stack.connect(user).await);
    }
    // The model: per channel its messages (seq, id, author, deleted); per (user, channel)
    // the read position. Sending reads up to one's own message.
    let mut messages: BTreeMap<&str, Vec<(u64, String, &str, bool)>> = BTreeMap::new();
    let mut read: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let script: &[(&str, &str, &str)] = &[
        ("send", "ann", "c1"),
        ("send", "ben", "c1"),
        ("send", "ann", "c2"),
        ("read", "cy", "c1"),
        ("send", "cy", "c3"),
        ("send", "cy", "c1"),
        ("send", "ben", "c3"),
        ("delete", "cy", "c1"),
        ("read", "ann", "c1"),
        ("send", "ann", "c2"),
        ("send", "ben", "c1"),
        ("send", "ann", "c2"),
        ("delete", "ann", "c2"),
        ("read", "ben", "c3"),
        ("delete", "ben", "c3"),
    ];
    for (n, (op, user, channel)) in script.iter().enumerate() {
        let client = clients.get_mut(user).unwrap();
        let log = messages.entry(channel).or_default();
        match *op {
            "send" => {
                client.send_message(channel, &format!("s{n}"), "hello").await;
                let ack = client.recv_type("ack").await;
                let seq = ack["message"]["seq"].as_u64().unwrap();
                log.push((seq, ack["message"]["messageId"].as_str().unwrap().to_owned(), user, false));
                read.insert((user, channel), seq);
            }
            "read" => {
                let (seq, id, _, _) = log.last().cloned().unwrap();
                client.send_json(&json!({"action": "markRead", "channelId": channel, "messageId": id})).await;
                // Receipts of the others in the channel may come first.
                while client.recv_type("receipt").await["userId"] != *user {}
                read.insert((user, channel), seq);
            }
            _ => {
                let entry = log.iter_mut().rev().find(|(_, _, author, deleted)| author == user && !deleted).unwrap();
                client.send_json(&json!({"action": "deleteMessage", "channelId": channel, "messageId": entry.1})).await;
                assert_eq!(client.recv_type("messageDeleted").await["messageId"], entry.1.as_str());
                entry.3 = true;
            }
        }
    }
    for user in ["ann", "ben", "cy"] {
        let counts = unread(&stack, user).await;
        for (channel, members) in channels {
            if members.contains(&user) {
                let position = read.get(&(user, channel)).copied().unwrap_or(0);
                let expected =
                    messages[channel].iter().filter(|(seq, _, _, deleted)| *seq > position && !deleted).count();
                assert_eq!(counts[channel], expected as u64, "{user} in {channel}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_runs_its_passes_only_while_someone_may_go_offline() {
    // Six passes 20 ms apart (real time), over a span of 100 ms of the functions' clock.
    let clock = ManualClock::starting_at(T0);
    let presence =
        chat_aws::config::PresenceSettings { sweep_passes: 6, sweep_pass_interval_ms: 20, ..Default::default() };
    let options = StackOptions { clock: Some(clock.clone()), presence: Some(presence), ..Default::default() };
    let stack = Stack::start_with(options).await;
    stack.create_channel("dm-sweep", &["alice", "bob"]).await;

    // Nobody online: one pass, then the invocation ends (no minute of billed sleep).
    assert_eq!(chat_domain::presence::sweep(&stack.app).await.passes, 1);

    let mut alice = stack.connect("alice").await.receiving_presence();
    subscribe(&mut alice, json!({"channelId": "dm-sweep"})).await;
    let _bob = stack.connect("bob").await;
    assert_eq!(presence_of(&alice.recv().await), ("bob".into(), "online".into()));
    // Both online, their deadlines a window ahead: still one pass.
    assert_eq!(chat_domain::presence::sweep(&stack.app).await.passes, 1);

    // Alice keeps beating; Bob's phone went silent and his deadline is 10 ms away, within
    // even the last pass's look-ahead: every pass runs (the clock stands still here, so he
    // never actually becomes overdue).
    clock.advance(30_000);
    alice.send_json(&json!({"action": "heartbeat"})).await;
    alice.expect_silence(QUIET).await;
    clock.advance(30_000 - 10);
    let report = chat_domain::presence::sweep(&stack.app).await;
    assert_eq!((report.passes, report.went_offline), (6, 0));
    alice.expect_silence(QUIET).await;

    // Past his deadline: the first pass takes him offline, Alice hears it over her socket,
    // and with only her (well ahead) left the sweep stops after that pass.
    clock.advance(100);
    let report = chat_domain::presence::sweep(&stack.app).await;
    assert_eq!((report.passes, report.went_offline), (1, 1));
    assert_eq!(presence_of(&alice.recv().await), ("bob".into(), "offline".into()));
}

/// The expiry (TTL, s) of `user`'s Presence item, read from the table.
async fn presence_ttl(stack: &Stack, user: &str) -> i64 {
    let dynamo = aws_sdk_dynamodb::Client::new(&e2e::sdk_config().await);
    let item = dynamo
        .get_item()
        .table_name(&stack.config.tables.presence)
        .key("userId", aws_sdk_dynamodb::types::AttributeValue::S(user.into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the user has a presence item");
    item["ttl"].as_n().unwrap().parse().unwrap()
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// What `client` is answered about `user`.
async fn asked(client: &mut e2e::Client, user: &str) -> Value {
    client.send_json(&json!({"action": "getPresence", "channelId": "dm", "userIds": [user]})).await;
    client.recv_type("presenceState").await["users"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_dnd_invisible_and_a_custom_status_reach_bobs_subscribers_and_nobody_else() {
    let clock = ManualClock::starting_at(T0);
    let stack = stack_at(&clock).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    stack.create_channel("team", &["bob", "carol", "dave"]).await;
    let mut bob = stack.connect("bob").await.receiving_presence();
    let mut alice = stack.connect("alice").await.receiving_presence();
    let mut carol = stack.connect("carol").await.receiving_presence();
    let watched = subscribe(&mut alice, json!({"channelId": "dm", "userIds": ["bob"]})).await;
    assert_eq!(watched["users"][0]["status"], "online", "{watched}");

    // No input on bob's only device for a while: idle; input again: online.
    bob.send_json(&json!({"action": "heartbeat", "idle": true})).await;
    assert_eq!(presence_of(&alice.recv().await), ("bob".into(), "idle".into()));
    bob.send_json(&json!({"action": "heartbeat"})).await;
    assert_eq!(presence_of(&alice.recv().await), ("bob".into(), "online".into()));

    // Do not disturb, answered with what others see.
    bob.send_json(&json!({"action": "setPresence", "state": "dnd"})).await;
    assert_eq!(bob.recv_type("presence").await["status"], "dnd");
    assert_eq!(presence_of(&alice.recv().await), ("bob".into(), "dnd".into()));

    // A custom status for 2 seconds.
    let until = T0 + 2_000;
    bob.send_json(&json!({"action": "setStatus", "text": "In a meeting", "emoji": "📅", "expiresAt": until})).await;
    let answer = bob.recv_type("presence").await;
    assert_eq!(answer["customStatus"], json!({"text": "In a meeting", "emoji": "📅", "expiresAt": until}));
    assert_eq!(alice.recv().await["customStatus"]["text"], "In a meeting");
    clock.advance(2_000);
    assert_eq!(asked(&mut alice, "bob").await.get("customStatus"), None, "lapsed");

    // Invisible: exactly what a user who went offline at that moment looks like.
    bob.send_json(&json!({"action": "setStatus", "text": "hiding"})).await;
    bob.recv_type("presence").await;
    alice.recv().await;
    clock.advance(1_000);
    bob.send_json(&json!({"action": "setPresence", "state": "invisible"})).await;
    let seen = bob.recv_type("presence").await;
    let gone = json!({"userId": "bob", "status": "offline", "lastSeen": T0 + 3_000});
    let mut told = alice.recv().await;
    told.as_object_mut().unwrap().remove("type");
    assert_eq!(told, gone);
    assert_eq!(seen.get("customStatus"), None, "an invisible user shows no status");
    assert_eq!(asked(&mut alice, "bob").await, gone);
    bob.send_json(&json!({"action": "heartbeat"})).await;
    alice.expect_silence(QUIET).await;

    // carol shares a group with bob but never subscribed: she heard none of it.
    carol.expect_silence(Duration::from_millis(10)).await;
    // Bad input changes nothing.
    bob.send_json(&json!({"action": "setStatus", "text": "x".repeat(101)})).await;
    assert_eq!(bob.recv_type("error").await["code"], "too_large");
    bob.send_json(&json!({"action": "setPresence"})).await;
    assert_eq!(bob.recv_type("error").await["code"], "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_disturb_stops_pushes_but_not_live_messages() {
    let stack = Stack::start_with(StackOptions { platform_applications: true, ..Default::default() }).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let token = format!("bob-phone-{}", rand::random::<u32>());
    let (status, _) =
        stack.post("/devices", Some(&stack.token("bob")), &json!({"platform": "fcm", "token": token})).await;
    assert_eq!(status, 200);
    let mut alice = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await.receiving_presence();
    bob.send_json(&json!({"action": "setPresence", "state": "dnd"})).await;
    bob.recv_type("presence").await;
    // The choice outlives the connections: the item is kept 90 days past each beat.
    let ttl = presence_ttl(&stack, "bob").await;
    let now_s = now_s();
    assert!(ttl > now_s + chat_domain::presence::CHOICES_KEPT_S - 60, "ttl {ttl}, now {now_s}");
    bob.send_json(&json!({"action": "heartbeat"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_beat = presence_ttl(&stack, "bob").await;
    assert!(after_beat >= ttl, "a beat never shortens it: {after_beat} < {ttl}");
    alice.send_message("dm", "m1", "live anyway").await;
    alice.recv_type("ack").await;
    assert_eq!(bob.recv_type("message").await["message"]["text"], "live anyway");

    bob.close().await;
    stack.wait_for_open_connections(1).await;
    alice
        .send_json(&json!({"action": "sendMessage", "channelId": "dm", "clientMsgId": "m2", "text": "@bob urgent",
                            "mentions": ["bob"]}))
        .await;
    alice.recv_type("ack").await;
    assert!(crate::media::endpoint_messages(&token).await.is_empty(), "no push in dnd, not for a mention either");

    let mut bob = stack.connect("bob").await.receiving_presence();
    bob.send_json(&json!({"action": "setPresence", "state": "online"})).await;
    bob.recv_type("presence").await;
    bob.close().await;
    stack.wait_for_open_connections(1).await;
    alice.send_message("dm", "m3", "and now?").await;
    alice.recv_type("ack").await;
    stack.settle().await;
    assert_eq!(crate::media::endpoint_messages(&token).await.len(), 1, "pushed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweep_runs_on_the_gateways_schedule_share_the_shards_and_take_everyone_offline() {
    use chat_domain::connections::shard_of;
    use chat_domain::model::UserId;
    let clock = ManualClock::starting_at(T0);
    let presence = chat_aws::config::PresenceSettings { shards: 4, sweep_runs: 2, ..Default::default() };
    let stack =
        Stack::start_with(StackOptions { clock: Some(clock.clone()), presence: Some(presence), ..Default::default() })
            .await;
    // One member whose deadline sits in an even shard (run 0's) and one in an odd one (run 1's).
    let candidates: Vec<String> = (0..32).map(|n| format!("member{n}")).collect();
    let in_run = |run: u32| {
        candidates.iter().find(|n| shard_of(&UserId::parse(n.as_str()).unwrap(), 4) % 2 == run).unwrap().clone()
    };
    let (even, odd) = (in_run(0), in_run(1));
    stack.create_channel("team", &["alice", even.as_str(), odd.as_str()]).await;
    let mut alice = stack.connect("alice").await.receiving_presence();
    subscribe(&mut alice, json!({"channelId": "team"})).await;
    let _even_ws = stack.connect(&even).await;
    let _odd_ws = stack.connect(&odd).await;
    for _ in 0..2 {
        presence_of(&alice.recv().await);
    }

    // Both stop beating with their sockets open; alice keeps beating.
    clock.advance(61_000);
    alice.send_json(&json!({"action": "heartbeat"})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stack.gateway.run_schedules().await;
    let mut offline = vec![presence_of(&alice.recv().await), presence_of(&alice.recv().await)];
    offline.sort();
    let mut expected = vec![(even.clone(), "offline".to_owned()), (odd.clone(), "offline".to_owned())];
    expected.sort();
    assert_eq!(offline, expected, "each run took its own shards' user");
    stack.gateway.run_schedules().await;
    alice.expect_silence(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_needs_no_renewal_and_a_closed_connections_is_dropped_by_the_first_post_that_finds_it_gone() {
    use chat_domain::model::UserId;
    let clock = ManualClock::starting_at(T0);
    let stack = stack_at(&clock).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await.receiving_presence();
    subscribe(&mut alice, json!({"channelId": "dm"})).await;

    // An hour and a half later, never renewed (alice's heartbeats keep her connected):
    // bob coming online is still heard.
    for _ in 0..3 {
        clock.advance(30 * 60_000);
        alice.send_json(&json!({"action": "heartbeat"})).await;
    }
    let bob = stack.connect("bob").await;
    assert_eq!(presence_of(&alice.recv().await), ("bob".into(), "online".into()));

    // Alice's tab closes without unsubscribing: the subscription stays until a post finds
    // the connection gone, and is dropped then.
    let watchers = || async { stack.app.subscriptions().watchers(&UserId::parse("bob").unwrap()).await.unwrap() };
    assert_eq!(watchers().await.len(), 1);
    alice.close().await;
    stack.wait_for_open_connections(1).await;
    assert_eq!(watchers().await.len(), 1, "a disconnect does not read what it watched");
    bob.close().await;
    stack.wait_for_open_connections(0).await;
    clock.advance(6_000);
    stack.gateway.run_schedules().await;
    stack.settle().await;
    assert!(watchers().await.is_empty(), "the 410 of the offline announcement dropped it");
}
