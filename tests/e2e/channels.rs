//! Channel management over HTTP, membership enforced everywhere, rate limits.

use std::time::Duration;

use chat_aws::config::{RateLimit, RateLimits};
use chat_domain::clock::ManualClock;
use e2e::{Client, ConnectError, Stack, StackOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_channel_is_the_same_whoever_opens_it() {
    let stack = Stack::start().await;
    stack.add_users(&["alice", "bob", "carol"]).await;
    let (alice, bob) = (stack.token("alice"), stack.token("bob"));
    let (s1, first) = stack.post("/channels/direct", Some(&alice), &json!({"userId": "bob"})).await;
    let (s2, again) = stack.post("/channels/direct", Some(&alice), &json!({"userId": "bob"})).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first["channelId"], again["channelId"]);
    assert_eq!(first["kind"], "direct");
    assert_eq!(first["members"], json!([{"userId": "alice", "role": "member"}]), "bob has not agreed yet");
    assert_eq!(first["invited"], json!(["bob"]));
    // Opening it from the other side is bob's consent: both are in it.
    let (s3, other_side) = stack.post("/channels/direct", Some(&bob), &json!({"userId": "alice"})).await;
    assert_eq!(s3, 200);
    assert_eq!(first["channelId"], other_side["channelId"]);
    assert_eq!(other_side["members"].as_array().unwrap().len(), 2);
    assert!(other_side.get("invited").is_none(), "{other_side}");

    // Nobody learns whether a user exists: the same answer as for bob.
    let (status, body) = stack.post("/channels/direct", Some(&alice), &json!({"userId": "nobody"})).await;
    assert_eq!((status, &body["invited"]), (200, &json!(["nobody"])));
    let (status, _) = stack.post("/channels/direct", Some(&alice), &json!({"userId": "alice"})).await;
    assert_eq!(status, 400);
    let (_, list) = stack.get("/channels", Some(&stack.token("carol"))).await;
    assert_eq!(list["channels"], json!([]), "carol is in no channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_send_read_and_manage_and_removal_is_immediate() {
    let stack = Stack::start().await;
    stack.add_users(&["owner", "member", "admin", "outsider", "late"]).await;
    let owner = stack.token("owner");
    let (status, group) =
        stack.post("/channels", Some(&owner), &json!({"name": "Team", "members": ["member", "outsider"]})).await;
    assert_eq!(status, 201, "{group}");
    let id = group["channelId"].as_str().unwrap().to_owned();
    assert_eq!(group["invited"], json!(["member", "outsider"]));
    stack.accept("member", &id).await;
    stack.accept("outsider", &id).await;
    assert_eq!(group["kind"], "group");
    assert_eq!(group["name"], "Team");
    let roles: Vec<(String, String)> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["userId"].as_str().unwrap().into(), m["role"].as_str().unwrap().into()))
        .collect();
    assert!(roles.contains(&("owner".into(), "owner".into())), "{roles:?}");

    // The owner makes an admin; a plain member cannot add anyone.
    let (status, _) = stack
        .post(&format!("/channels/{id}/members"), Some(&owner), &json!({"userIds": ["admin"], "role": "admin"}))
        .await;
    assert_eq!(status, 200);
    stack.accept("admin", &id).await;
    let (status, body) = stack
        .post(&format!("/channels/{id}/members"), Some(&stack.token("member")), &json!({"userIds": ["late"]}))
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));

    // The owner removes "outsider": at once they cannot send, read or look.
    let mut outsider = stack.connect("outsider").await;
    let mut member = stack.connect("member").await;
    let (status, _) =
        stack.request(reqwest::Method::DELETE, &format!("/channels/{id}/members/outsider"), Some(&owner), None).await;
    assert_eq!(status, 204);
    let mut owner_ws = stack.connect("owner").await;
    owner_ws.send_message(&id, "after-removal", "outsider is gone").await;
    assert_eq!(owner_ws.recv().await["type"], "ack");
    assert_eq!(member.recv().await["message"]["text"], "outsider is gone");
    outsider.expect_silence(Duration::from_millis(300)).await;

    outsider.send_message(&id, "sneak", "can I still post?").await;
    assert_eq!(outsider.recv().await["code"], "forbidden");
    let outsider_token = stack.token("outsider");
    let (status, _) = stack.get(&format!("/channels/{id}/messages"), Some(&outsider_token)).await;
    assert_eq!(status, 403);
    let (status, _) = stack.get(&format!("/channels/{id}"), Some(&outsider_token)).await;
    assert_eq!(status, 403);
    let (status, _) =
        stack.post(&format!("/channels/{id}/members"), Some(&outsider_token), &json!({"userIds": ["outsider"]})).await;
    assert_eq!(status, 403);
    assert_eq!(stack.full_history("member", &id).await.len(), 1);

    // An admin cannot remove the owner; the owner leaving hands the group to the admin.
    let admin = stack.token("admin");
    let (status, _) =
        stack.request(reqwest::Method::DELETE, &format!("/channels/{id}/members/owner"), Some(&admin), None).await;
    assert_eq!(status, 403);
    let (status, _) =
        stack.request(reqwest::Method::DELETE, &format!("/channels/{id}/members/owner"), Some(&owner), None).await;
    assert_eq!(status, 204);
    let (_, details) = stack.get(&format!("/channels/{id}"), Some(&admin)).await;
    let admin_role =
        details["members"].as_array().unwrap().iter().find(|m| m["userId"] == "admin").unwrap()["role"].clone();
    assert_eq!(admin_role, "owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_holds_100_members_and_refuses_the_101st() {
    let stack = Stack::start().await;
    let names: Vec<String> = (0..102).map(|i| format!("person{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    stack.add_users(&refs).await;
    let creator = stack.token("person000");

    let (status, body) =
        stack.post("/channels", Some(&creator), &json!({"name": "too big", "members": &refs[1..101]})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_request")), "101 at creation");

    let (status, group) =
        stack.post("/channels", Some(&creator), &json!({"name": "Full", "members": &refs[1..99]})).await;
    assert_eq!(status, 201);
    let id = group["channelId"].as_str().unwrap();
    for name in &refs[1..99] {
        stack.accept(name, id).await;
    }
    let (status, _) =
        stack.post(&format!("/channels/{id}/members"), Some(&creator), &json!({"userIds": ["person099"]})).await;
    assert_eq!(status, 200);
    stack.accept("person099", id).await;
    let (_, group) = stack.get(&format!("/channels/{id}"), Some(&creator)).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 100);
    let (status, body) =
        stack.post(&format!("/channels/{id}/members"), Some(&creator), &json!({"userIds": ["person100"]})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("100"), "{body}");
    let (_, list) = stack.get("/channels", Some(&creator)).await;
    assert_eq!(list["channels"][0]["memberCount"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_sender_is_slowed_down_and_nothing_over_the_limit_is_stored() {
    // The clock stands still inside one 5-second window, so the test cannot straddle two.
    let clock = ManualClock::starting_at(1_800_000_000_000 + 100);
    let rate_limits = RateLimits {
        sends: RateLimit { count: 5, window_ms: 5_000 },
        connects: RateLimit { count: 3, window_ms: 60_000 },
        ..e2e::GENEROUS
    };
    let stack = Stack::start_with(StackOptions {
        clock: Some(clock.clone()),
        rate_limits: Some(rate_limits),
        ..Default::default()
    })
    .await;
    stack.create_channel("flood", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;

    let mut acks = 0;
    let mut refusals = Vec::new();
    for n in 0..8 {
        alice.send_message("flood", &format!("f{n}"), &format!("message {n}")).await;
        let answer = alice.recv().await;
        match answer["type"].as_str() {
            Some("ack") => acks += 1,
            _ => refusals.push(answer),
        }
    }
    assert_eq!(acks, 5);
    assert_eq!(refusals.len(), 3);
    for refusal in &refusals {
        assert_eq!(refusal["code"], "rate_limited", "{refusal}");
        let retry = refusal["retryAfterMs"].as_u64().unwrap();
        assert!(retry > 0 && retry <= 5_000, "{refusal}");
    }
    assert_eq!(stack.full_history("bob", "flood").await.len(), 5);

    // The next window lets her send again.
    clock.advance(5_000);
    alice.send_message("flood", "f8", "after the pause").await;
    assert_eq!(alice.recv().await["type"], "ack");

    // Connection attempts: 3 per minute (alice has used one).
    let _second = stack.connect("alice").await;
    let _third = stack.connect("alice").await;
    match Client::connect(&stack.websocket_url(), &format!("token={}", stack.token("alice"))).await {
        Err(ConnectError::Refused(429)) => {}
        other => panic!("the 4th connection in a minute: {:?}", other.err()),
    }
}
