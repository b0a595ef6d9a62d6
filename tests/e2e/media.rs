//! Push for offline users, file uploads, edit and delete.

use std::time::Duration;

use base64::Engine as _;
use chat_aws::metrics::RequestCounter;
use e2e::{Stack, StackOptions, upload};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

/// What moto's SNS holds: every platform endpoint with the messages published to it.
pub(crate) async fn endpoint_messages(token: &str) -> Vec<Value> {
    let data: Value =
        reqwest::get(format!("{}/moto-api/data.json", e2e::moto::endpoint())).await.unwrap().json().await.unwrap();
    let endpoints = data["sns"]["PlatformEndpoint"].as_array().cloned().unwrap_or_default();
    let endpoint = endpoints.iter().find(|e| e["token"] == token);
    let Some(endpoint) = endpoint else { return Vec::new() };
    endpoint["messages"]
        .as_object()
        .map(|m| m.values().map(|raw| serde_json::from_str(raw.as_str().unwrap()).unwrap()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bob_gets_exactly_one_push_per_message_while_offline_and_not_muted() {
    let stack = Stack::start_with(StackOptions { platform_applications: true, ..Default::default() }).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let bob_token = stack.token("bob");
    let token = format!("bob-phone-{}", rand::random::<u32>());
    let (status, device) = stack.post("/devices", Some(&bob_token), &json!({"platform": "fcm", "token": token})).await;
    assert_eq!(status, 200, "{device}");
    assert_eq!(device["hasEndpoint"], true);
    let (_, again) = stack.post("/devices", Some(&bob_token), &json!({"platform": "fcm", "token": token})).await;
    assert_eq!(again["deviceId"], device["deviceId"], "registering again is idempotent");
    let (_, list) = stack.get("/devices", Some(&bob_token)).await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);

    let mut alice = stack.connect("alice").await;
    alice.send_message("dm", "p1", "are you there, Bob?").await;
    let ack = alice.recv().await;
    // The ack does not wait for the push (it is posted beside the live events).
    stack.settle().await;
    let pushes = endpoint_messages(&token).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let gcm: Value = serde_json::from_str(pushes[0]["GCM"].as_str().unwrap()).unwrap();
    assert_eq!(gcm["notification"]["title"], "alice");
    assert_eq!(gcm["notification"]["body"], "are you there, Bob?");
    assert_eq!(gcm["data"]["channelId"], "dm");
    assert_eq!(gcm["data"]["messageId"], ack["message"]["messageId"]);

    // Online: no push.
    let bob = stack.connect("bob").await;
    alice.send_message("dm", "p2", "oh hi").await;
    alice.recv().await;
    stack.settle().await;
    assert_eq!(endpoint_messages(&token).await.len(), 1);
    bob.close().await;
    stack.wait_for_open_connections(1).await;

    // Muted: no push.
    let (status, _) = stack.post("/channels/dm/mute", Some(&bob_token), &json!({"muted": true})).await;
    assert_eq!(status, 204);
    alice.send_message("dm", "p3", "muted?").await;
    alice.recv().await;
    stack.settle().await;
    assert_eq!(endpoint_messages(&token).await.len(), 1);
    stack.post("/channels/dm/mute", Some(&bob_token), &json!({"muted": false})).await;

    // A long message: a preview, not the text.
    let long = "x".repeat(5_000);
    alice.send_message("dm", "p4", &long).await;
    alice.recv().await;
    stack.settle().await;
    let pushes = endpoint_messages(&token).await;
    assert_eq!(pushes.len(), 2);
    let last: Vec<String> = pushes
        .iter()
        .map(|p| {
            serde_json::from_str::<Value>(p["GCM"].as_str().unwrap()).unwrap()["notification"]["body"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(last.iter().any(|b| b.chars().count() == 101 && b.ends_with('…')), "{last:?}");

    // SNS disables the endpoint (the app was uninstalled): marked once, not retried.
    let sns = aws_sdk_sns::Client::new(&e2e::sdk_config().await);
    let endpoints = sns
        .list_endpoints_by_platform_application()
        .platform_application_arn(stack.config.push.platform_applications["fcm"].clone())
        .send()
        .await
        .unwrap();
    let arn = endpoints.endpoints()[0].endpoint_arn().unwrap().to_owned();
    sns.set_endpoint_attributes().endpoint_arn(&arn).attributes("Enabled", "false").send().await.unwrap();
    alice.send_message("dm", "p5", "hello?").await;
    alice.recv().await;
    stack.settle().await;
    let (_, list) = stack.get("/devices", Some(&bob_token)).await;
    assert_eq!(list["devices"][0]["enabled"], false, "{list}");
    let before = stack.requests.snapshot();
    alice.send_message("dm", "p6", "anyone?").await;
    alice.recv().await;
    stack.settle().await;
    let used = RequestCounter::diff(&before, &stack.requests.snapshot());
    assert_eq!(used.get("sns.Publish"), None, "a disabled device is not retried: {used:?}");

    // Registering again re-enables it.
    let (_, device) = stack.post("/devices", Some(&bob_token), &json!({"platform": "fcm", "token": token})).await;
    assert_eq!(device["enabled"], true);
    let (status, _) = stack
        .request(
            reqwest::Method::DELETE,
            &format!("/devices/{}", device["deviceId"].as_str().unwrap()),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mobile_apps_pushes_go_to_the_topic_with_the_user_id() {
    let stack = Stack::start().await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    alice.send_message("dm", "t1", "to the topic").await;
    assert_eq!(alice.recv().await["type"], "ack");
    stack.settle().await;
    let topic = stack.config.push.topic_arn.clone().unwrap();
    let data: Value =
        reqwest::get(format!("{}/moto-api/data.json", e2e::moto::endpoint())).await.unwrap().json().await.unwrap();
    let topics = data["sns"]["Topic"].as_array().unwrap();
    let ours = topics.iter().find(|t| t["arn"] == topic.as_str()).expect("the topic is in moto");
    let sent = ours["sent_notifications"].as_array().unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].to_string().contains("to the topic"), "{sent:?}");
    assert!(sent[0].to_string().contains("bob"), "the user id goes with it: {sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_shared_in_a_chat_reaches_the_other_member_and_nobody_else() {
    let stack = Stack::start().await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    stack.create_channel("other", &["alice", "carol"]).await;
    let alice_token = stack.token("alice");
    let picture: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();

    let (status, grant) = stack
        .post(
            "/channels/dm/uploads",
            Some(&alice_token),
            &json!({"fileName": "cat photo.png", "contentType": "image/png", "size": picture.len()}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let key = grant["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("uploads/dm/alice/") && key.ends_with("cat_photo.png"), "{key}");
    // The policy S3 enforces: this key, this type, exactly this size.
    let policy: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD.decode(grant["fields"]["policy"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let conditions = policy["conditions"].to_string();
    assert!(conditions.contains(&format!(r#"["content-length-range",{0},{0}]"#, picture.len())), "{conditions}");
    assert!(conditions.contains(r#"{"Content-Type":"image/png"}"#), "{conditions}");
    assert!(conditions.contains(&format!(r#"{{"key":"{key}"}}"#)), "{conditions}");
    // Uploads start tagged unattached (the bucket's lifecycle rule expires those after a
    // day); S3 enforces the tag through the policy (moto ignores the field).
    let tagging = chat_aws::s3::UNATTACHED_TAGGING;
    assert_eq!(grant["fields"]["tagging"], tagging);
    assert!(conditions.contains(&serde_json::to_string(&json!({"tagging": tagging})).unwrap()), "{conditions}");
    let status = upload(&grant, picture.clone()).await;
    assert!((200..300).contains(&status), "upload answered {status}");

    let mut alice = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;
    let attachment =
        json!({"key": key, "fileName": "cat photo.png", "contentType": "image/png", "size": picture.len()});
    alice.send_json(&json!({"action": "sendMessage", "channelId": "dm", "clientMsgId": "f1", "text": "", "attachments": [attachment]})).await;
    let ack = alice.recv().await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let tags = stack.s3.get_object_tagging().bucket(&stack.config.uploads.bucket).key(&key).send().await.unwrap();
    let tags: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags, [("attached", "yes")], "an attached file is kept");
    let received = bob.recv().await;
    let url = received["message"]["attachments"][0]["url"].as_str().expect("a download URL").to_owned();
    let downloaded = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(downloaded.as_ref(), picture.as_slice(), "Bob downloads the same bytes");
    let history = stack.full_history("bob", "dm").await;
    assert_eq!(history[0]["attachments"][0]["key"], key.as_str());
    assert!(history[0]["attachments"][0]["url"].as_str().is_some());
    let (status, link) = stack.get(&format!("/channels/dm/attachments?key={key}"), Some(&stack.token("bob"))).await;
    assert_eq!(status, 200);
    assert_eq!(reqwest::get(link["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap().len(), picture.len());

    // Refusals.
    let ask = |body: Value, who: &str| {
        let token = stack.token(who);
        let stack = &stack;
        async move { stack.post("/channels/dm/uploads", Some(&token), &body).await }
    };
    let (status, body) =
        ask(json!({"fileName": "big.mp4", "contentType": "video/mp4", "size": 11 * 1024 * 1024}), "alice").await;
    assert_eq!((status, body["code"].as_str()), (413, Some("too_large")));
    let (status, _) =
        ask(json!({"fileName": "run.exe", "contentType": "application/x-msdownload", "size": 10}), "alice").await;
    assert_eq!(status, 400);
    let (status, _) = ask(json!({"fileName": "x.png", "contentType": "image/png", "size": 10}), "mallory").await;
    assert_eq!(status, 403);
    let (status, _) = stack.get(&format!("/channels/dm/attachments?key={key}"), Some(&stack.token("mallory"))).await;
    assert_eq!(status, 403);

    // A message naming someone else's upload, or one from another channel, is refused.
    bob.send_json(&json!({"action": "sendMessage", "channelId": "dm", "clientMsgId": "steal", "text": "mine now", "attachments": [attachment]})).await;
    assert_eq!(bob.recv().await["code"], "forbidden");
    alice.send_json(&json!({"action": "sendMessage", "channelId": "other", "clientMsgId": "move", "text": "look", "attachments": [attachment]})).await;
    assert_eq!(alice.recv().await["code"], "forbidden");
    let mut lying = attachment.clone();
    lying["size"] = json!(5);
    alice.send_json(&json!({"action": "sendMessage", "channelId": "dm", "clientMsgId": "lie", "text": "small", "attachments": [lying]})).await;
    assert_eq!(alice.recv().await["code"], "invalid_request");
    assert_eq!(stack.full_history("alice", "dm").await.len(), 1, "nothing refused was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_author_edits_and_deletes_and_everyone_sees_it() {
    let stack = Stack::start().await;
    stack.create_channel("team", &["alice", "bob", "carol"]).await;
    let mut alice = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;
    let mut carol = stack.connect("carol").await;

    // A message with a file, and a plain one.
    let alice_token = stack.token("alice");
    let (_, grant) = stack
        .post(
            "/channels/team/uploads",
            Some(&alice_token),
            &json!({"fileName": "notes.txt", "contentType": "text/plain", "size": 5}),
        )
        .await;
    upload(&grant, b"notes".to_vec()).await;
    let key = grant["key"].as_str().unwrap().to_owned();
    alice
        .send_json(&json!({"action": "sendMessage", "channelId": "team", "clientMsgId": "m1", "text": "teh notes",
        "attachments": [{"key": key, "fileName": "notes.txt", "contentType": "text/plain", "size": 5}]}))
        .await;
    let first = alice.recv().await["message"].clone();
    alice.send_message("team", "m2", "second").await;
    alice.recv().await;
    for client in [&mut bob, &mut carol] {
        client.recv().await;
        client.recv().await;
    }
    let id = first["messageId"].as_str().unwrap();

    alice.send_json(&json!({"action": "editMessage", "channelId": "team", "messageId": id, "text": "the notes"})).await;
    let answer = alice.recv().await;
    assert_eq!(answer["type"], "messageUpdated");
    let updated = bob.recv().await;
    assert_eq!(updated["type"], "messageUpdated");
    assert_eq!(updated["message"]["text"], "the notes");
    assert!(updated["message"]["editedAt"].as_i64().is_some());
    assert_eq!(updated["message"]["attachments"][0]["key"], key.as_str(), "an edit keeps the files");
    assert_eq!(stack.full_history("carol", "team").await[0]["text"], "the notes");
    carol.recv().await;

    bob.send_json(&json!({"action": "editMessage", "channelId": "team", "messageId": id, "text": "bob was here"}))
        .await;
    assert_eq!(bob.recv().await["code"], "forbidden");
    // A member cannot delete someone else's message either.
    carol.send_json(&json!({"action": "deleteMessage", "channelId": "team", "messageId": id})).await;
    assert_eq!(carol.recv().await["code"], "forbidden");

    let unread_before = unread_of(&stack, "bob", "team").await;
    assert_eq!(unread_before, 2);
    alice.send_json(&json!({"action": "deleteMessage", "channelId": "team", "messageId": id})).await;
    let answer = alice.recv().await;
    let change = answer["changeSeq"].as_u64().expect("a deletion has a change position");
    assert_eq!(
        answer,
        json!({"type": "messageDeleted", "channelId": "team", "messageId": id, "seq": 1, "changeSeq": change})
    );
    assert_eq!(bob.recv().await, answer);
    assert_eq!(carol.recv().await, answer);

    let history = stack.full_history("bob", "team").await;
    assert_eq!(history.len(), 2, "a deleted message keeps its place");
    assert_eq!(history[0]["deleted"], true);
    assert_eq!(history[0]["text"], "");
    assert!(history[0].get("attachments").is_none(), "{}", history[0]);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&e2e::sdk_config().await).force_path_style(true).build(),
    );
    let gone = s3.head_object().bucket(&stack.config.uploads.bucket).key(&key).send().await;
    assert!(gone.is_err(), "the file was deleted from S3");
    assert_eq!(unread_of(&stack, "bob", "team").await, 1, "a deleted unread message no longer counts");

    alice
        .send_json(&json!({"action": "editMessage", "channelId": "team", "messageId": id, "text": "back again"}))
        .await;
    assert_eq!(alice.recv().await["code"], "conflict", "edit after delete is refused");
    assert_eq!(stack.full_history("bob", "team").await[0]["text"], "");
    bob.expect_silence(QUIET).await;
}

pub(crate) async fn unread_of(stack: &Stack, user: &str, channel: &str) -> u64 {
    let (_, list) = stack.get("/channels", Some(&stack.token(user))).await;
    list["channels"].as_array().unwrap().iter().find(|c| c["channelId"] == channel).unwrap()["unread"].as_u64().unwrap()
}
