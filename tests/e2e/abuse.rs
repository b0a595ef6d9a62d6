//! Hostile users: each test is one attack, showing the attacker stopped and the victim
//! unaffected.

use std::time::Duration;

use chat_aws::config::{RateLimit, RateLimits};
use chat_aws::metrics::RequestCounter;
use chat_domain::clock::ManualClock;
use chat_domain::model::UserId;
use e2e::{GENEROUS, Stack, StackOptions};
use serde_json::{Value, json};

/// The DynamoDB and Management API requests `during` makes.
async fn requests_of<T>(
    stack: &Stack,
    during: impl std::future::Future<Output = T>,
) -> (std::collections::BTreeMap<String, u64>, T) {
    let before = stack.requests.snapshot();
    let out = during.await;
    (RequestCounter::diff(&before, &stack.requests.snapshot()), out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_put_anyone_into_groups_and_invitations_cost_the_invitee_nothing() {
    let stack = Stack::start().await;
    stack.add_users(&["mallory", "victim", "calm"]).await;
    let mallory = stack.token("mallory");
    let mut groups = Vec::new();
    for n in 0..105 {
        let (status, group) =
            stack.post("/channels", Some(&mallory), &json!({"name": format!("spam {n}"), "members": ["victim"]})).await;
        assert_eq!(status, 201, "{group}");
        assert_eq!(group["invited"], json!(["victim"]), "the answer says invited, never added");
        groups.push(group["channelId"].as_str().unwrap().to_owned());
    }

    // The victim is in none of them; her inbox holds at most 100 invitations.
    let victim = stack.token("victim");
    let (_, list) = stack.get("/channels", Some(&victim)).await;
    assert_eq!(list["channels"], json!([]));
    let (_, inbox) = stack.get("/invitations", Some(&victim)).await;
    assert_eq!(inbox["invitations"].as_array().unwrap().len(), 100, "the inbox is capped");

    // Connecting and listing cost her what they cost someone with no invitations.
    let (victim_connect, _victim_ws) = requests_of(&stack, stack.connect("victim")).await;
    let (calm_connect, _calm_ws) = requests_of(&stack, stack.connect("calm")).await;
    assert_eq!(victim_connect, calm_connect);
    let (victim_list, _) = requests_of(&stack, stack.get("/channels", Some(&victim))).await;
    let (calm_list, _) = requests_of(&stack, stack.get("/channels", Some(&stack.token("calm")))).await;
    assert_eq!(victim_list, calm_list);

    // Nothing mallory sends into those groups reaches her.
    let mut victim_ws = stack.connect("victim").await;
    let mut mallory_ws = stack.connect("mallory").await;
    mallory_ws.send_message(&groups[0], "spam", "buy now").await;
    assert_eq!(mallory_ws.recv().await["type"], "ack");
    victim_ws.expect_silence(Duration::from_millis(300)).await;

    // Declining removes the invitation; accepting another makes her a member of that one only.
    let decline = stack.post(&format!("/invitations/{}/decline", groups[1]), Some(&victim), &Value::Null).await;
    assert_eq!(decline.0, 204);
    let (_, inbox) = stack.get("/invitations", Some(&victim)).await;
    assert!(!inbox["invitations"].as_array().unwrap().iter().any(|i| i["channelId"] == groups[1].as_str()));
    stack.accept("victim", &groups[2]).await;
    let (_, list) = stack.get("/channels", Some(&victim)).await;
    assert_eq!(list["channels"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_user_can_neither_invite_nor_open_a_direct_channel_nor_see_presence() {
    let stack = Stack::start().await;
    stack.add_users(&["mallory", "bob", "carol"]).await;
    stack.create_channel("club", &["carol", "bob", "mallory"]).await;
    let (mallory, bob) = (stack.token("mallory"), stack.token("bob"));
    let _bob_ws = stack.connect("bob").await;

    let (status, _) = stack.post("/blocks", Some(&bob), &json!({"userId": "mallory"})).await;
    assert_eq!(status, 204);
    let (_, blocked) = stack.get("/blocks", Some(&bob)).await;
    assert_eq!(blocked["blocked"], json!(["mallory"]));

    // Mallory's attempts get the answers anyone gets; nothing reaches bob.
    let (_, group) = stack.post("/channels", Some(&mallory), &json!({"name": "again", "members": ["bob"]})).await;
    assert_eq!(group["invited"], json!(["bob"]));
    let (_, direct) = stack.post("/channels/direct", Some(&mallory), &json!({"userId": "bob"})).await;
    assert_eq!(direct["invited"], json!(["bob"]));
    let (_, to_carol) = stack.post("/channels/direct", Some(&mallory), &json!({"userId": "carol"})).await;
    assert_eq!(to_carol["invited"], json!(["carol"]), "the same shape as for someone who does not block her");
    let (_, inbox) = stack.get("/invitations", Some(&bob)).await;
    assert_eq!(inbox["invitations"], json!([]));

    // In a group they share, bob looks to mallory like a user who does not exist.
    let mut mallory_ws = stack.connect("mallory").await;
    mallory_ws.send_json(&json!({"action": "getPresence", "channelId": "club"})).await;
    let states = mallory_ws.recv_type("presenceState").await;
    let bob_state = states["users"].as_array().unwrap().iter().find(|u| u["userId"] == "bob").unwrap().clone();
    assert_eq!(bob_state, json!({"userId": "bob", "status": "offline"}));
    let mut carol_ws = stack.connect("carol").await;
    carol_ws.send_json(&json!({"action": "getPresence", "channelId": "club", "userIds": ["bob"]})).await;
    assert_eq!(carol_ws.recv_type("presenceState").await["users"][0]["status"], "online", "carol still sees him");

    // Unblocking lets mallory reach him again.
    let (status, _) = stack.request(reqwest::Method::DELETE, "/blocks/mallory", Some(&bob), None).await;
    assert_eq!(status, 204);
    stack.post("/channels", Some(&mallory), &json!({"name": "after", "members": ["bob"]})).await;
    let (_, inbox) = stack.get("/invitations", Some(&bob)).await;
    assert_eq!(inbox["invitations"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_names_cannot_be_enumerated_through_channel_routes() {
    let stack = Stack::start().await;
    stack.add_users(&["prober", "exists"]).await;
    let prober = stack.token("prober");
    let shape = |mut body: Value| {
        body.as_object_mut().unwrap().remove("channelId");
        body.as_object_mut().unwrap().remove("createdAt");
        body
    };
    for (name, other) in [("exists", "ghost")] {
        let (s1, real) = stack.post("/channels", Some(&prober), &json!({"name": "g", "members": [name]})).await;
        let (s2, fake) = stack.post("/channels", Some(&prober), &json!({"name": "g", "members": [other]})).await;
        assert_eq!(s1, s2);
        assert_eq!(shape(real)["invited"].as_array().unwrap().len(), shape(fake)["invited"].as_array().unwrap().len());
        let (s1, real) = stack.post("/channels/direct", Some(&prober), &json!({"userId": name})).await;
        let (s2, fake) = stack.post("/channels/direct", Some(&prober), &json!({"userId": other})).await;
        assert_eq!(s1, s2);
        let (real, fake) = (shape(real), shape(fake));
        assert_eq!(real["members"], fake["members"]);
        assert_eq!(real["invited"].as_array().unwrap().len(), fake["invited"].as_array().unwrap().len());
    }
}

/// Limits of 3 per 10 s for everything but sending and connecting.
fn tight() -> RateLimits {
    let three = RateLimit { count: 3, window_ms: 10_000 };
    RateLimits {
        changes: three,
        reactions: three,
        subscribes: three,
        calls: three,
        signals: three,
        frames: three,
        reads: three,
        searches: three,
        writes: three,
        uploads: three,
        ..GENEROUS
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typing_flood_is_answered_rate_limited_and_costs_no_writes() {
    let clock = ManualClock::starting_at(1_800_000_000_000 + 100);
    let frames = RateLimit { count: 20, window_ms: 10_000 };
    let limits = RateLimits { frames, ..GENEROUS };
    let stack =
        Stack::start_with(StackOptions { clock: Some(clock), rate_limits: Some(limits), ..Default::default() }).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;

    let before = stack.requests.snapshot();
    for _ in 0..100 {
        alice.send_json(&json!({"action": "typing", "channelId": "dm", "state": "start"})).await;
    }
    let mut refused = 0;
    for _ in 0..80 {
        let answer = alice.recv().await;
        assert_eq!(answer["code"], "rate_limited", "{answer}");
        assert!(answer["retryAfterMs"].as_u64().unwrap() <= 10_000);
        refused += 1;
    }
    alice.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(refused, 80, "the 21st frame on is refused");
    let mut relayed = 0;
    while bob.try_recv(Duration::from_millis(300)).await.is_some() {
        relayed += 1;
    }
    assert_eq!(relayed, 20, "bob sees only what the limit lets through");
    let spent = RequestCounter::diff(&before, &stack.requests.snapshot());
    assert_eq!(spent.get("dynamodb.UpdateItem"), None, "counting typing frames writes nothing: {spent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_and_route_has_a_limit() {
    let clock = ManualClock::starting_at(1_800_000_000_000 + 100);
    let stack =
        Stack::start_with(StackOptions { clock: Some(clock), rate_limits: Some(tight()), ..Default::default() }).await;
    stack.add_users(&["alice", "bob"]).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    alice.send_message("dm", "m1", "hello").await;
    let id = alice.recv().await["message"]["messageId"].as_str().unwrap().to_owned();

    let frames = [
        json!({"action": "markRead", "channelId": "dm", "messageId": id}),
        json!({"action": "getPresence", "userIds": ["bob"]}),
        json!({"action": "sync"}),
        json!({"action": "heartbeat"}),
    ];
    // frames share one limit of 3: the 4th of any kind is refused.
    let mut codes = Vec::new();
    for frame in frames.iter().cycle().take(5) {
        alice.send_json(frame).await;
        if let Some(answer) = alice.try_recv(Duration::from_millis(500)).await {
            codes.push(answer["code"].as_str().unwrap_or(answer["type"].as_str().unwrap_or("?")).to_owned());
        }
    }
    assert!(codes.iter().filter(|c| *c == "rate_limited").count() >= 1, "{codes:?}");
    for n in 0..4 {
        alice
            .send_json(&json!({"action": "editMessage", "channelId": "dm", "messageId": id, "text": format!("v{n}")}))
            .await;
    }
    let mut edits = Vec::new();
    for _ in 0..4 {
        edits.push(alice.recv().await);
    }
    assert_eq!(edits.iter().filter(|a| a["code"] == "rate_limited").count(), 1, "{edits:?}");
    // Reactions and presence subscriptions each have their own count (each reaction fans
    // out; each subscribe writes one item per user).
    for (kind, answered, frames) in [
        (
            "reactions",
            "reaction",
            ["👍", "❤️", "😂", "🎉"]
                .map(|e| json!({"action": "addReaction", "channelId": "dm", "messageId": id, "emoji": e})),
        ),
        ("subscriptions", "presenceState", [(); 4].map(|_| json!({"action": "subscribePresence", "channelId": "dm"}))),
    ] {
        let mut answers = Vec::new();
        for frame in &frames {
            alice.send_json(frame).await;
            answers.push(alice.recv().await);
        }
        assert_eq!(answers.iter().filter(|a| a["type"] == answered).count(), 3, "{kind}: {answers:?}");
        assert_eq!(answers[3]["code"], "rate_limited", "{kind}: {answers:?}");
    }
    // Calls and call signals too: refused past their own counts, whatever the answer
    // before (a second call while in one is a conflict; a signal for no call, not found).
    let call = json!({"action": "startCall", "channelId": "dm", "media": "audio"});
    let signal = json!({"action": "callSignal", "callId": "call-none", "signal": {"type": "offer"}});
    for (kind, frame) in [("calls", call), ("signals", signal)] {
        let mut codes = Vec::new();
        for _ in 0..4 {
            alice.send_json(&frame).await;
            let answer = loop {
                let answer = alice.recv().await;
                // The first call's answer; frames about it are not answers.
                if answer["type"] != "message" {
                    break answer;
                }
            };
            codes.push(answer["code"].as_str().or(answer["type"].as_str()).unwrap().to_owned());
        }
        assert!(!codes[..3].contains(&"rate_limited".to_owned()), "{kind}: {codes:?}");
        assert_eq!(codes[3], "rate_limited", "{kind}: {codes:?}");
    }

    let alice_token = stack.token("alice");
    for (method, path, body) in [
        (reqwest::Method::GET, "/channels", None),
        (reqwest::Method::GET, "/invitations", None),
        // Counted apart from the other reads: a search opens index shards.
        (reqwest::Method::GET, "/search?q=hello", None),
        (reqwest::Method::POST, "/blocks", Some(json!({"userId": "bob"}))),
        (
            reqwest::Method::POST,
            "/channels/dm/uploads",
            Some(json!({"fileName": "a.txt", "contentType": "text/plain", "size": 1})),
        ),
    ] {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(stack.request(method.clone(), path, Some(&alice_token), body.as_ref()).await);
        }
        let last = statuses.pop().unwrap();
        assert_eq!((last.0, last.1["code"].as_str()), (429, Some("rate_limited")), "{method} {path}: {statuses:?}");
        assert!(last.1["retryAfterMs"].as_u64().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_past_the_limit_are_refused_before_any_password_work() {
    let limits = RateLimits { sign_ins: RateLimit { count: 3, window_ms: 300_000 }, ..GENEROUS };
    let stack = Stack::start_with(StackOptions { rate_limits: Some(limits), ..Default::default() }).await;
    stack.sign_up("owner", "the owner's password").await;
    let wrong = json!({"username": "owner", "password": "guess guess guess"});
    for _ in 0..3 {
        assert_eq!(stack.post("/auth/signin", None, &wrong).await.0, 401);
    }
    // The refused attempt never reads the account, so it never reaches Argon2.
    let (spent, (status, body)) = requests_of(&stack, stack.post("/auth/signin", None, &wrong)).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert_eq!(spent.get("dynamodb.GetItem"), None, "{spent:?}");
    // Even the right password waits out the window from this address.
    let right = json!({"username": "owner", "password": "the owner's password"});
    assert_eq!(stack.post("/auth/signin", None, &right).await.0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_count_per_session_and_guessed_tokens_per_address() {
    let limits = RateLimits {
        refreshes: RateLimit { count: 2, window_ms: 3_600_000 },
        refresh_failures: RateLimit { count: 3, window_ms: 3_600_000 },
        ..GENEROUS
    };
    let stack = Stack::start_with(StackOptions { rate_limits: Some(limits), ..Default::default() }).await;
    let refresh = |token: &Value| json!({"refreshToken": token});
    // Three devices behind the test's one address: 6 refreshes, each session at its limit.
    let password = "the nat user's password";
    let mut sessions = vec![stack.sign_up("nat-user", password).await];
    for _ in 0..2 {
        let (status, session) =
            stack.post("/auth/signin", None, &json!({"username": "nat-user", "password": password})).await;
        assert_eq!(status, 200, "{session}");
        sessions.push(session);
    }
    for _ in 0..2 {
        for session in &mut sessions {
            let (status, next) = stack.post("/auth/refresh", None, &refresh(&session["refreshToken"])).await;
            assert_eq!(status, 200, "{next}");
            *session = next;
        }
    }
    // The third refresh of a session in the window is refused, costs no write, and leaves
    // the token usable once the window has passed (unspent: its session goes on).
    let (spent, (status, body)) =
        requests_of(&stack, stack.post("/auth/refresh", None, &refresh(&sessions[0]["refreshToken"]))).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert!(body["retryAfterMs"].as_u64().is_some());
    assert_eq!(spent.get("dynamodb.PutItem"), None, "{spent:?}");
    let (status, _) = stack.post("/auth/refresh", None, &refresh(&sessions[1]["refreshToken"])).await;
    assert_eq!(status, 429, "each session has its own count");

    // Guessed tokens count per address; past the limit the address is refused before any
    // token is looked up (one read).
    for guess in 0..3 {
        let (status, _) = stack.post("/auth/refresh", None, &json!({"refreshToken": format!("guess-{guess}")})).await;
        assert_eq!(status, 401);
    }
    let (spent, (status, _)) =
        requests_of(&stack, stack.post("/auth/refresh", None, &json!({"refreshToken": "guess-3"}))).await;
    assert_eq!(status, 429);
    assert_eq!(spent.get("dynamodb.UpdateItem"), None, "{spent:?}");
    assert_eq!(spent.get("dynamodb.GetItem"), Some(&1), "{spent:?}");
}

/// Connects with `token`: the handshake's refusal status, if refused.
async fn handshake(stack: &Stack, token: &str) -> Result<e2e::Client, u16> {
    match e2e::Client::connect(&stack.websocket_url(), &format!("token={token}")).await {
        Ok(client) => Ok(client),
        Err(e2e::ConnectError::Refused(status)) => Err(status),
        Err(e2e::ConnectError::Other(err)) => panic!("handshake failed: {err}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_used_twice_ends_its_whole_session() {
    let stack = Stack::start().await;
    let first = stack.sign_up("alice", "correct horse battery").await;
    let stolen = first["refreshToken"].clone();
    let (status, owner) = stack.post("/auth/refresh", None, &json!({"refreshToken": stolen})).await;
    assert_eq!(status, 200, "{owner}");
    let mut owner_ws = handshake(&stack, owner["accessToken"].as_str().unwrap()).await.expect("the owner connects");

    // The thief replays the copy: refused, and the owner's newer tokens die with it.
    let (status, _) = stack.post("/auth/refresh", None, &json!({"refreshToken": stolen})).await;
    assert_eq!(status, 401);
    owner_ws.closed().await;
    let (status, _) = stack.post("/auth/refresh", None, &json!({"refreshToken": owner["refreshToken"]})).await;
    assert_eq!(status, 401, "the session is ended");
    assert_eq!(handshake(&stack, owner["accessToken"].as_str().unwrap()).await.err(), Some(401));
    // Signing in again starts a new session.
    let (status, _) =
        stack.post("/auth/signin", None, &json!({"username": "alice", "password": "correct horse battery"})).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_this_device_or_every_device_and_closes_their_sockets() {
    let stack = Stack::start().await;
    let phone = stack.sign_up("alice", "correct horse battery").await;
    let (_, laptop) =
        stack.post("/auth/signin", None, &json!({"username": "alice", "password": "correct horse battery"})).await;
    let token = |session: &Value| session["accessToken"].as_str().unwrap().to_owned();
    let mut phone_ws = handshake(&stack, &token(&phone)).await.expect("the phone connects");
    let mut laptop_ws = handshake(&stack, &token(&laptop)).await.expect("the laptop connects");

    // Signing out the phone closes its socket only; its tokens stop working.
    let (status, _) = stack.post("/auth/signout", Some(&token(&phone)), &json!({})).await;
    assert_eq!(status, 204);
    phone_ws.closed().await;
    laptop_ws.send_json(&json!({"action": "getPresence", "userIds": ["alice"]})).await;
    assert_eq!(laptop_ws.recv().await["type"], "presenceState", "the laptop stays connected");
    let (status, _) = stack.post("/auth/refresh", None, &json!({"refreshToken": phone["refreshToken"]})).await;
    assert_eq!(status, 401);
    assert_eq!(handshake(&stack, &token(&phone)).await.err(), Some(401));
    let (status, _) = stack.get("/channels", Some(&token(&phone))).await;
    assert_eq!(status, 403, "the HTTP API refuses it too");

    // Everywhere: the laptop goes as well.
    let (status, _) = stack.post("/auth/signout", Some(&token(&laptop)), &json!({"everywhere": true})).await;
    assert_eq!(status, 204);
    laptop_ws.closed().await;
    let (status, _) = stack.post("/auth/refresh", None, &json!({"refreshToken": laptop["refreshToken"]})).await;
    assert_eq!(status, 401);
    let (status, _) = stack.post("/auth/refresh", None, &json!({"refreshToken": laptop["refreshToken"]})).await;
    assert_eq!(status, 401, "a second use after signing out everywhere is refused the same way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_delete_removes_the_files_an_interrupted_one_left() {
    let stack = Stack::start().await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let key = "uploads/dm/alice/0123456789abcdef/notes.txt";
    let bucket = stack.config.uploads.bucket.clone();
    let body = aws_sdk_s3::primitives::ByteStream::from_static(b"secret notes");
    stack.s3.put_object().bucket(&bucket).key(key).content_type("text/plain").body(body).send().await.unwrap();
    let attachment = chat_domain::model::Attachment {
        key: key.into(),
        file_name: "notes.txt".into(),
        content_type: "text/plain".into(),
        size: 12,
        url: None,
    };
    let (alice, channel) = (UserId::parse("alice").unwrap(), chat_domain::model::ChannelId::parse("dm").unwrap());
    let sent = chat_domain::chat::send_message(
        &stack.app,
        &alice,
        &chat_domain::model::ConnectionId::new("seed"),
        &channel,
        chat_domain::chat::Draft {
            attachments: vec![attachment],
            ..chat_domain::chat::Draft::text(
                chat_domain::model::ClientMsgId::parse("with-file").unwrap(),
                "see attached",
            )
        },
    )
    .await
    .unwrap();

    // The first attempt wrote the deletion and died before removing the file.
    let change = stack.app.messages().claim_change(&channel, stack.app.now_ms()).await.unwrap().unwrap();
    stack.app.messages().soft_delete(&sent.message, Some(&alice), change, stack.app.now_ms()).await.unwrap().unwrap();
    assert!(stack.s3.head_object().bucket(&bucket).key(key).send().await.is_ok(), "the file is still there");

    // The client retries: the file goes, and so does the message's record of it.
    let mut alice_ws = stack.connect("alice").await;
    let id = sent.message.message_id.to_string();
    alice_ws.send_json(&json!({"action": "deleteMessage", "channelId": "dm", "messageId": id})).await;
    assert_eq!(alice_ws.recv().await["type"], "messageDeleted");
    assert!(stack.s3.head_object().bucket(&bucket).key(key).send().await.is_err(), "the file is removed");
    let left = stack.app.messages().files_left(&channel, sent.message.message_id).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_holds_at_most_ten_open_connections() {
    let stack = Stack::start().await;
    let mut devices = Vec::new();
    for _ in 0..chat_domain::presence::MAX_CONNECTIONS_PER_USER {
        devices.push(stack.connect("hoarder").await);
    }
    let query = format!("token={}", stack.token("hoarder"));
    match e2e::Client::connect(&stack.websocket_url(), &query).await {
        Err(e2e::ConnectError::Refused(status)) => assert_eq!(status, 409),
        Ok(_) => panic!("the 11th connection was let in"),
        Err(e2e::ConnectError::Other(err)) => panic!("{err}"),
    }
    // Closing one makes room again.
    devices.pop().unwrap().close().await;
    stack.wait_for_open_connections(devices.len()).await;
    let _again = stack.connect("hoarder").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_reads_what_its_limit_allows_however_many_channels_have_news() {
    let stack = Stack::start().await;
    let alice = UserId::parse("alice").unwrap();
    for n in 0..20 {
        let channel = format!("c{n:02}");
        stack.create_channel(&channel, &["alice", "bob"]).await;
        let id = chat_domain::model::ChannelId::parse(channel.clone()).unwrap();
        let client_id = chat_domain::model::ClientMsgId::parse(format!("m{n}")).unwrap();
        let seed = chat_domain::model::ConnectionId::new("seed");
        chat_domain::chat::send_message(
            &stack.app,
            &alice,
            &seed,
            &id,
            chat_domain::chat::Draft::text(client_id, "news"),
        )
        .await
        .unwrap();
    }
    let mut bob = stack.connect("bob").await;
    let (spent, _) = requests_of(&stack, async {
        bob.send_json(&json!({"action": "sync", "after": "0", "limit": 1})).await;
        bob.recv_type("synced").await
    })
    .await;
    // One Query for bob's channels and one for the channel whose message fits the limit;
    // the other 19 are answered "not complete" from their meta items alone.
    assert_eq!(spent.get("dynamodb.Query"), Some(&2), "{spent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_registers_at_most_twenty_push_devices() {
    let stack = Stack::start().await;
    let token = stack.token("collector");
    for n in 0..chat_domain::push::MAX_PUSH_DEVICES {
        let (status, _) =
            stack.post("/devices", Some(&token), &json!({"platform": "fcm", "token": format!("t{n}")})).await;
        assert_eq!(status, 200);
    }
    let (status, body) = stack.post("/devices", Some(&token), &json!({"platform": "fcm", "token": "one-more"})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")), "{body}");
    let (status, _) = stack.post("/devices", Some(&token), &json!({"platform": "fcm", "token": "t0"})).await;
    assert_eq!(status, 200, "registering a known device again is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_is_in_at_most_a_thousand_channels() {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    let stack = Stack::start().await;
    stack.add_users(&["joiner", "friend"]).await;
    // 1,000 memberships written straight into the table (what joining leaves behind).
    let table = stack.config.tables.channels.clone();
    let items: Vec<WriteRequest> = (0..chat_domain::consent::MAX_CHANNELS_PER_USER)
        .map(|n| {
            let item = [
                ("pk", AttributeValue::S(format!("seeded-{n}"))),
                ("sk", AttributeValue::S("member#joiner".into())),
                ("userId", AttributeValue::S("joiner".into())),
                ("role", AttributeValue::S("member".into())),
                ("joinedAt", AttributeValue::N("0".into())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build()
        })
        .collect();
    for chunk in items.chunks(25) {
        stack.dynamo.batch_write_item().request_items(&table, chunk.to_vec()).send().await.unwrap();
    }
    let joiner = stack.token("joiner");
    let (status, body) = stack.post("/channels", Some(&joiner), &json!({"name": "one more", "members": []})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")), "{body}");
    let (_, direct) = stack.post("/channels/direct", Some(&stack.token("friend")), &json!({"userId": "joiner"})).await;
    let channel = direct["channelId"].as_str().unwrap();
    let (status, _) = stack.post(&format!("/invitations/{channel}/accept"), Some(&joiner), &Value::Null).await;
    assert_eq!(status, 409, "accepting one more is refused too");
}
