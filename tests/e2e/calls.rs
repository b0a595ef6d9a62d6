//! Voice and video calls over real sockets against moto: ringing on every device, one
//! answer wins, signalling between the two devices only, hang-up, missed, declined and busy
//! calls, a device that leaves, pushes to an offline callee, and what may not call.

use std::time::Duration;

use chat_aws::config::CallSettings;
use chat_aws::metrics::RequestCounter;
use chat_domain::clock::ManualClock;
use e2e::client::Client;
use e2e::{Stack, StackOptions};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

fn start_call(channel: &str, media: &str) -> Value {
    json!({"action": "startCall", "channelId": channel, "media": media})
}

fn on_call(action: &str, call_id: &str) -> Value {
    json!({"action": action, "callId": call_id})
}

fn signal(call_id: &str, signal: Value) -> Value {
    json!({"action": "callSignal", "callId": call_id, "signal": signal})
}

/// `caller` calls in `channel`; answers the call id from `callStarted`.
async fn call(caller: &mut Client, channel: &str, media: &str) -> String {
    caller.send_json(&start_call(channel, media)).await;
    let started = caller.recv_type("callStarted").await;
    assert_eq!(started["call"]["state"], "ringing", "{started}");
    started["call"]["callId"].as_str().unwrap().to_owned()
}

/// Every frame `client` gets until it has been quiet for a while.
async fn frames_for(client: &mut Client) -> Vec<Value> {
    let mut frames = vec![client.recv().await];
    while let Some(frame) = client.try_recv(Duration::from_millis(700)).await {
        frames.push(frame);
    }
    frames
}

/// The call entries of a channel's history, as `user` reads it.
async fn call_entries(stack: &Stack, user: &str, channel: &str) -> Vec<Value> {
    stack.full_history(user, channel).await.into_iter().filter_map(|m| m.get("call").cloned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_rings_every_device_of_the_callee_one_answer_wins_and_hanging_up_leaves_an_entry() {
    let stack = Stack::start().await;
    stack.create_channel("dm", &["ann", "bob"]).await;
    let mut ann = stack.connect("ann").await;
    let mut bob_phone = stack.connect("bob").await;
    let mut bob_laptop = stack.connect("bob").await;

    ann.send_json(&start_call("dm", "video")).await;
    let started = ann.recv_type("callStarted").await;
    assert_eq!(started["iceServers"], json!([]), "locally: host candidates only");
    let call = &started["call"];
    assert_eq!((call["callerId"].as_str(), call["calleeId"].as_str()), (Some("ann"), Some("bob")));
    assert_eq!(call["media"], "video");
    assert_eq!(call["ringUntil"].as_i64().unwrap() - call["startedAt"].as_i64().unwrap(), 30_000);
    let id = call["callId"].as_str().unwrap().to_owned();
    for device in [&mut bob_phone, &mut bob_laptop] {
        let ringing = device.recv_type("incomingCall").await;
        assert_eq!(ringing["call"]["callId"], id.as_str(), "{ringing}");
        assert_eq!(ringing["iceServers"], json!([]));
    }

    // Both of bob's devices answer at the same instant: one wins.
    let accept = on_call("acceptCall", &id);
    tokio::join!(bob_phone.send_json(&accept), bob_laptop.send_json(&accept));
    // The winner gets its answer; the loser gets the winner's `callAccepted` and its own
    // refusal, in either order.
    let (phone, laptop) = tokio::join!(frames_for(&mut bob_phone), frames_for(&mut bob_laptop));
    let phone_won = !phone.iter().any(|f| f["type"] == "error");
    let (winner_frames, loser_frames) = if phone_won { (&phone, &laptop) } else { (&laptop, &phone) };
    let (mut winner, mut loser) = if phone_won { (bob_phone, bob_laptop) } else { (bob_laptop, bob_phone) };
    assert_eq!(winner_frames.len(), 1, "{winner_frames:?}");
    assert_eq!(winner_frames[0]["type"], "callAccepted");
    assert_eq!(winner_frames[0]["call"]["state"], "active");
    let mut heard: Vec<&str> = loser_frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    heard.sort();
    assert_eq!(heard, ["callAccepted", "error"], "{loser_frames:?}");
    let refusal = loser_frames.iter().find(|f| f["type"] == "error").unwrap();
    assert_eq!(refusal["code"], "conflict", "{refusal}");
    assert_eq!(ann.recv_type("callAccepted").await["call"]["callId"], id.as_str());

    // Signalling goes between ann's device and the one that answered, and nowhere else.
    ann.send_json(&signal(&id, json!({"type": "offer", "sdp": "v=0 offer"}))).await;
    let offer = winner.recv_type("callSignal").await;
    assert_eq!(offer, json!({"type": "callSignal", "callId": id, "signal": {"type": "offer", "sdp": "v=0 offer"}}));
    winner.send_json(&signal(&id, json!({"type": "answer", "sdp": "v=0 answer"}))).await;
    assert_eq!(ann.recv_type("callSignal").await["signal"]["type"], "answer");
    loser.send_json(&signal(&id, json!({"type": "candidate"}))).await;
    assert_eq!(loser.recv_type("error").await["code"], "forbidden");
    ann.expect_silence(QUIET).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    ann.send_json(&on_call("endCall", &id)).await;
    let ended = ann.recv_type("callEnded").await;
    assert_eq!((ended["call"]["outcome"].as_str(), ended["call"]["endedBy"].as_str()), (Some("answered"), Some("ann")));
    assert!(ended["call"]["durationMs"].as_i64().unwrap() >= 1000, "{ended}");
    assert_eq!(winner.recv_type("callEnded").await["call"]["outcome"], "answered");
    // Hanging up twice answers the same end.
    ann.send_json(&on_call("endCall", &id)).await;
    assert_eq!(ann.recv_type("callEnded").await["call"], ended["call"]);

    // The entry: one message of the caller, live to every device, in history for both.
    let live = winner.recv_type("message").await;
    assert_eq!(live["message"]["authorId"], "ann");
    assert_eq!(live["message"]["call"]["outcome"], "answered");
    for user in ["ann", "bob"] {
        let entries = call_entries(&stack, user, "dm").await;
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!((entries[0]["callId"].as_str(), entries[0]["media"].as_str()), (Some(id.as_str()), Some("video")));
        assert_eq!(entries[0]["durationMs"], ended["call"]["durationMs"]);
    }
    assert_eq!(crate::media::unread_of(&stack, "bob", "dm").await, 1, "a call entry counts as unread");
    assert_eq!(crate::media::unread_of(&stack, "ann", "dm").await, 0, "not for the caller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_call_is_missed_and_an_answer_after_its_ring_time_is_refused() {
    let calls = CallSettings { ring_ms: 1_500, ..CallSettings::default() };
    let stack = Stack::start_with(StackOptions { calls: Some(calls), ..Default::default() }).await;
    stack.create_channel("dm", &["ann", "bob"]).await;
    let mut ann = stack.connect("ann").await;
    let mut bob = stack.connect("bob").await;

    // The caller's device ends a call nobody answered at its time.
    let id = call(&mut ann, "dm", "audio").await;
    bob.recv_type("incomingCall").await;
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    ann.send_json(&on_call("endCall", &id)).await;
    assert_eq!(ann.recv_type("callEnded").await["call"]["outcome"], "missed");
    assert_eq!(bob.recv_type("callEnded").await["call"]["outcome"], "missed", "bob's device stops ringing");
    bob.send_json(&on_call("acceptCall", &id)).await;
    assert_eq!(bob.recv_type("error").await["code"], "conflict");

    // Nobody ended it at its time: the late answer is refused and the call is missed.
    let id = call(&mut ann, "dm", "audio").await;
    bob.recv_type("incomingCall").await;
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    bob.send_json(&on_call("acceptCall", &id)).await;
    let late = bob.recv_type("error").await;
    assert_eq!(late["code"], "conflict", "{late}");
    assert!(late["message"].as_str().unwrap().contains("not answered in time"), "{late}");
    assert_eq!(ann.recv_type("callEnded").await["call"]["outcome"], "missed");

    let entries = call_entries(&stack, "bob", "dm").await;
    let outcomes: Vec<&str> = entries.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["missed", "missed"]);
    assert_eq!(entries[0].get("durationMs"), None);
    assert_eq!(crate::media::unread_of(&stack, "bob", "dm").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_call_ends_for_the_caller_and_someone_in_a_call_is_busy() {
    let stack = Stack::start().await;
    stack.create_channel("ann-bob", &["ann", "bob"]).await;
    stack.create_channel("cid-bob", &["cid", "bob"]).await;
    stack.create_channel("cid-ann", &["cid", "ann"]).await;
    let mut ann = stack.connect("ann").await;
    let mut bob = stack.connect("bob").await;
    let mut cid = stack.connect("cid").await;

    let id = call(&mut ann, "ann-bob", "audio").await;
    bob.recv_type("incomingCall").await;
    bob.send_json(&on_call("declineCall", &id)).await;
    let declined = bob.recv_type("callEnded").await;
    assert_eq!(
        (declined["call"]["outcome"].as_str(), declined["call"]["endedBy"].as_str()),
        (Some("declined"), Some("bob"))
    );
    assert_eq!(ann.recv_type("callEnded").await["call"]["outcome"], "declined");

    // Ann and bob talk; cid finds bob busy, and ann cannot start a second call.
    let id = call(&mut ann, "ann-bob", "audio").await;
    bob.recv_type("incomingCall").await;
    bob.send_json(&on_call("acceptCall", &id)).await;
    bob.recv_type("callAccepted").await;
    ann.recv_type("callAccepted").await;
    cid.send_json(&start_call("cid-bob", "video")).await;
    // The busy call's entry is posted while the answer is on its way.
    let (entry, busy) = (cid.recv_type("message").await, cid.recv_type("callEnded").await);
    assert_eq!((busy["call"]["outcome"].as_str(), busy["call"]["state"].as_str()), (Some("busy"), Some("ended")));
    assert_eq!(entry["message"]["call"]["outcome"], "busy");
    ann.send_json(&start_call("cid-ann", "audio")).await;
    let second = ann.recv_type("error").await;
    assert_eq!((second["code"].as_str(), second["action"].as_str()), (Some("conflict"), Some("startCall")));
    cid.expect_silence(QUIET).await;

    bob.send_json(&on_call("endCall", &id)).await;
    bob.recv_type("callEnded").await;
    assert_eq!(ann.recv_type("callEnded").await["call"]["endedBy"], "bob");
    // Out of the call, bob can be called again.
    let again = call(&mut cid, "cid-bob", "audio").await;
    assert_eq!(bob.recv_type("incomingCall").await["call"]["callId"], again.as_str());

    let outcomes: Vec<String> = call_entries(&stack, "bob", "ann-bob")
        .await
        .iter()
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["declined", "answered"]);
    assert_eq!(call_entries(&stack, "bob", "cid-bob").await[0]["outcome"], "busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_leaves_ends_its_call_for_the_other_side() {
    let stack = Stack::start().await;
    stack.create_channel("dm", &["ann", "bob"]).await;
    let mut bob = stack.connect("bob").await;

    // In a call: ann's socket goes; bob's call ends, as answered.
    let mut ann = stack.connect("ann").await;
    let id = call(&mut ann, "dm", "audio").await;
    bob.recv_type("incomingCall").await;
    bob.send_json(&on_call("acceptCall", &id)).await;
    bob.recv_type("callAccepted").await;
    ann.close().await;
    let ended = bob.recv_type("callEnded").await;
    assert_eq!((ended["call"]["outcome"].as_str(), ended["call"]["endedBy"].as_str()), (Some("answered"), Some("ann")));

    // Ringing: the caller's socket goes; every device of the callee stops ringing.
    let mut ann = stack.connect("ann").await;
    let id = call(&mut ann, "dm", "video").await;
    assert_eq!(bob.recv_type("incomingCall").await["call"]["callId"], id.as_str());
    ann.close().await;
    assert_eq!(bob.recv_type("callEnded").await["call"]["outcome"], "missed");

    // A ringing device of the callee that goes leaves the call ringing on the others.
    let mut ann = stack.connect("ann").await;
    let bob_phone = stack.connect("bob").await;
    let id = call(&mut ann, "dm", "audio").await;
    bob.recv_type("incomingCall").await;
    bob_phone.close().await;
    ann.expect_silence(QUIET).await;
    bob.send_json(&on_call("acceptCall", &id)).await;
    assert_eq!(bob.recv_type("callAccepted").await["call"]["state"], "active");

    let outcomes: Vec<String> =
        call_entries(&stack, "ann", "dm").await.iter().map(|e| e["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["answered", "missed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_callee_is_pushed_the_call_at_high_priority() {
    let options = StackOptions { platform_applications: true, ..Default::default() };
    let stack = Stack::start_with(options).await;
    stack.create_channel("dm", &["ann", "bob"]).await;
    let token = format!("bob-phone-{}", rand::random::<u32>());
    let (status, _) =
        stack.post("/devices", Some(&stack.token("bob")), &json!({"platform": "fcm", "token": token})).await;
    assert_eq!(status, 200);

    let mut ann = stack.connect("ann").await;
    let before = stack.requests.snapshot();
    let id = call(&mut ann, "dm", "video").await;
    let used = RequestCounter::diff(&before, &stack.requests.snapshot());
    let pushes = crate::media::endpoint_messages(&token).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let gcm: Value = serde_json::from_str(pushes[0]["GCM"].as_str().unwrap()).unwrap();
    assert_eq!(gcm["priority"], "high", "{gcm}");
    assert_eq!(gcm["data"]["type"], "call");
    let pushed: Value = serde_json::from_str(gcm["data"]["call"].as_str().unwrap()).unwrap();
    assert_eq!((pushed["callId"].as_str(), pushed["media"].as_str()), (Some(id.as_str()), Some("video")));
    assert_eq!(used.get("sns.Publish"), Some(&1), "{used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_two_members_of_a_direct_chat_can_call_and_signal_and_blocks_stop_calls() {
    let stack = Stack::start().await;
    stack.create_channel("dm", &["ann", "bob"]).await;
    stack.create_channel("team", &["ann", "bob", "cid"]).await;
    stack.add_users(&["ann", "bob", "eve"]).await;
    let mut ann = stack.connect("ann").await;
    let mut bob = stack.connect("bob").await;
    let mut eve = stack.connect("eve").await;

    for (who, frame, code) in [
        ("ann", start_call("team", "audio"), "invalid_request"),
        ("ann", start_call("dm", "hologram"), "invalid_request"),
        ("eve", start_call("dm", "audio"), "forbidden"),
        ("eve", on_call("acceptCall", "call-0123"), "not_found"),
    ] {
        let client = if who == "ann" { &mut ann } else { &mut eve };
        client.send_json(&frame).await;
        let error = client.recv_type("error").await;
        assert_eq!(error["code"], code, "{frame} → {error}");
    }
    bob.expect_silence(QUIET).await;

    let id = call(&mut ann, "dm", "audio").await;
    bob.recv_type("incomingCall").await;
    // Someone else's call is not found; a signal before the answer is refused.
    eve.send_json(&on_call("endCall", &id)).await;
    assert_eq!(eve.recv_type("error").await["code"], "not_found");
    ann.send_json(&signal(&id, json!({"type": "offer"}))).await;
    assert_eq!(ann.recv_type("error").await["code"], "conflict");
    bob.send_json(&on_call("acceptCall", &id)).await;
    bob.recv_type("callAccepted").await;
    ann.recv_type("callAccepted").await;
    ann.send_json(&signal(&id, json!({"type": "offer", "sdp": "x".repeat(17 * 1024)}))).await;
    assert_eq!(ann.recv_type("error").await["code"], "too_large");
    ann.send_json(&signal(&id, json!("not an object"))).await;
    assert_eq!(ann.recv_type("error").await["code"], "invalid_request");
    bob.expect_silence(QUIET).await;
    ann.send_json(&on_call("endCall", &id)).await;
    ann.recv_type("callEnded").await;

    // Bob blocks ann: her calls are refused and nothing rings.
    let (status, _) = stack.post("/blocks", Some(&stack.token("bob")), &json!({"userId": "ann"})).await;
    assert_eq!(status, 204);
    bob.recv_type("callEnded").await;
    bob.recv_type("message").await; // the entry
    ann.send_json(&start_call("dm", "audio")).await;
    assert_eq!(ann.recv_type("error").await["code"], "forbidden");
    bob.expect_silence(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_servers_carry_turn_credentials_made_with_the_shared_secret() {
    let calls = CallSettings {
        stun_urls: vec!["stun:stun.example.test:3478".into()],
        turn_urls: vec!["turn:turn.example.test:3478?transport=udp".into()],
        turn_secret: Some("coturn-shared-secret".into()),
        turn_credential_ttl_s: 600,
        ..CallSettings::default()
    };
    let stack = Stack::start_with(StackOptions { calls: Some(calls), ..Default::default() }).await;
    stack.create_channel("dm", &["ann", "bob"]).await;
    let mut ann = stack.connect("ann").await;
    let mut bob = stack.connect("bob").await;
    ann.send_json(&start_call("dm", "audio")).await;
    let started = ann.recv_type("callStarted").await;
    let ringing = bob.recv_type("incomingCall").await;
    for (servers, user) in [(&started["iceServers"], "ann"), (&ringing["iceServers"], "bob")] {
        assert_eq!(servers[0], json!({"urls": ["stun:stun.example.test:3478"]}));
        let turn = &servers[1];
        let username = turn["username"].as_str().unwrap();
        let (expiry, named) = username.split_once(':').unwrap();
        assert_eq!(named, user);
        let expiry: i64 = expiry.parse().unwrap();
        let now_s = started["call"]["startedAt"].as_i64().unwrap() / 1000;
        assert!((now_s + 599..=now_s + 602).contains(&expiry), "{username}");
        let expected = chat_domain::calling::turn_password("coturn-shared-secret", username);
        assert_eq!(turn["credential"], expected.as_str());
    }
    // The answer to acceptCall carries them too (a device that answers from a push never
    // saw incomingCall); the frame posted to the caller does not.
    bob.send_json(&json!({"action": "acceptCall", "callId": started["call"]["callId"]})).await;
    let answer = bob.recv_type("callAccepted").await;
    assert!(answer["iceServers"][1]["username"].as_str().unwrap().ends_with(":bob"), "{answer}");
    assert_eq!(ann.recv_type("callAccepted").await.get("iceServers"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_whose_heartbeats_stop_ends_its_call_when_the_sweep_takes_it_offline() {
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let stack = Stack::start_with(StackOptions { clock: Some(clock.clone()), ..Default::default() }).await;
    stack.create_channel("dm", &["ann", "bob"]).await;
    let mut ann = stack.connect("ann").await;
    let mut bob = stack.connect("bob").await;
    let id = call(&mut ann, "dm", "audio").await;
    bob.recv_type("incomingCall").await;
    bob.send_json(&on_call("acceptCall", &id)).await;
    bob.recv_type("callAccepted").await;
    ann.recv_type("callAccepted").await;

    // Bob's phone goes into a tunnel: the socket stays open, the heartbeats stop; ann's go on.
    clock.advance(61_000);
    ann.send_json(&json!({"action": "heartbeat"})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stack.gateway.run_schedules().await;
    let ended = ann.recv_type("callEnded").await;
    assert_eq!((ended["call"]["outcome"].as_str(), ended["call"]["endedBy"].as_str()), (Some("answered"), Some("bob")));
    assert_eq!(ended["call"]["durationMs"], 61_000);
    assert_eq!(call_entries(&stack, "ann", "dm").await.len(), 1);
    assert!(stack.denials().is_empty(), "{:?}", stack.denials());
}
