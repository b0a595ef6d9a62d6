//! Reactions, replies and mentions over real sockets, and a device that was away while a
//! channel moved on (new messages, edits, deletions, reactions) catching up exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use chat_aws::metrics::RequestCounter;
use e2e::client::Client;
use e2e::{Stack, StackOptions};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

fn react(channel: &str, id: &str, emoji: &str, add: bool) -> Value {
    let action = if add { "addReaction" } else { "removeReaction" };
    json!({"action": action, "channelId": channel, "messageId": id, "emoji": emoji})
}

async fn two_reactions(client: &mut Client) -> Vec<Value> {
    vec![client.recv_type("reaction").await, client.recv_type("reaction").await]
}

async fn sent_id(client: &mut Client, channel: &str, client_msg_id: &str, text: &str) -> String {
    client.send_message(channel, client_msg_id, text).await;
    client.recv_type("ack").await["message"]["messageId"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_reacting_with_the_same_emoji_at_the_same_instant_count_two() {
    let stack = Stack::start().await;
    stack.create_channel("g", &["ann", "bob", "cid"]).await;
    let mut ann = stack.connect("ann").await;
    let mut bob = stack.connect("bob").await;
    let mut cid = stack.connect("cid").await;
    let id = sent_id(&mut ann, "g", "m1", "goal!").await;
    bob.recv_type("message").await;
    cid.recv_type("message").await;

    // Both frames are on their way before either answer comes back.
    let frame = react("g", &id, "⚽", true);
    tokio::join!(bob.send_json(&frame), cid.send_json(&frame));
    // Each gets its answer and the other's event, in either order.
    let (bobs, cids) = tokio::join!(two_reactions(&mut bob), two_reactions(&mut cid));
    let own = |frames: &[Value], user: &str| frames.iter().find(|f| f["userId"] == user).cloned().unwrap();
    let (from_bob, from_cid) = (own(&bobs, "bob"), own(&cids, "cid"));
    for answer in [&from_bob, &from_cid] {
        assert_eq!(answer["added"], true, "{answer}");
        assert!(answer["changeSeq"].as_u64().is_some(), "{answer}");
    }
    assert_ne!(from_bob["changeSeq"], from_cid["changeSeq"], "each its own change position");
    // ann heard both; the later one counts 2.
    let heard = [ann.recv_type("reaction").await, ann.recv_type("reaction").await];
    // The greater change position holds the newer reactions, whichever arrives first.
    let last = heard.iter().max_by_key(|f| f["changeSeq"].as_u64()).unwrap();
    assert_eq!(last["reactions"], json!([{"emoji": "⚽", "count": 2}]), "{heard:?}");

    let (status, page) = stack.history("bob", "g", "limit=10").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0]["reactions"], json!([{"emoji": "⚽", "count": 2, "me": true}]));
    let (_, page) = stack.history("ann", "g", "limit=10").await;
    assert_eq!(page["messages"][0]["reactions"], json!([{"emoji": "⚽", "count": 2}]), "ann did not react");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_reaction_twice_changes_nothing_and_tells_nobody() {
    let stack = Stack::start().await;
    stack.create_channel("dm", &["ann", "bob"]).await;
    let mut ann = stack.connect("ann").await;
    let mut bob = stack.connect("bob").await;
    let id = sent_id(&mut ann, "dm", "m1", "hi").await;
    bob.recv_type("message").await;

    bob.send_json(&react("dm", &id, "👍", true)).await;
    bob.recv_type("reaction").await;
    assert_eq!(ann.recv_type("reaction").await["reactions"], json!([{"emoji": "👍", "count": 1}]));
    bob.send_json(&react("dm", &id, "👍", false)).await;
    let removed = bob.recv_type("reaction").await;
    assert_eq!((removed["added"].clone(), removed["reactions"].clone()), (json!(false), json!([])), "{removed}");
    assert_eq!(ann.recv_type("reaction").await["added"], false);

    let before = stack.requests.snapshot();
    bob.send_json(&react("dm", &id, "👍", false)).await;
    let again = bob.recv_type("reaction").await;
    assert_eq!(again.get("changeSeq"), None, "nothing changed: {again}");
    assert_eq!(again["reactions"], json!([]));
    ann.expect_silence(QUIET).await;
    let used = RequestCounter::diff(&before, &stack.requests.snapshot());
    assert_eq!(used.get("dynamodb.UpdateItem"), Some(&1), "only the rate-limit counter is written: {used:?}");

    let (_, page) = stack.history("ann", "dm", "limit=10").await;
    assert_eq!(page["messages"][0].get("reactions"), None, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reacting_in_a_channel_one_is_not_in_is_forbidden_and_bad_reactions_are_refused() {
    let stack = Stack::start().await;
    stack.create_channel("dm", &["ann", "bob"]).await;
    let mut ann = stack.connect("ann").await;
    let mut eve = stack.connect("eve").await;
    let id = sent_id(&mut ann, "dm", "m1", "private").await;

    eve.send_json(&react("dm", &id, "😈", true)).await;
    let refused = eve.recv_type("error").await;
    assert_eq!((refused["code"].as_str(), refused["action"].as_str()), (Some("forbidden"), Some("addReaction")));
    ann.expect_silence(QUIET).await;

    for (frame, code) in [
        (react("dm", &id, "two words", true), "invalid_request"),
        (react("dm", &id, &"x".repeat(33), true), "invalid_request"),
        (react("dm", "383171067025293312", "👍", true), "not_found"),
    ] {
        ann.send_json(&frame).await;
        let error = ann.recv_type("error").await;
        assert_eq!(error["code"], code, "{frame} → {error}");
    }
    ann.send_json(&json!({"action": "deleteMessage", "channelId": "dm", "messageId": id})).await;
    ann.recv_type("messageDeleted").await;
    ann.send_json(&react("dm", &id, "👍", true)).await;
    assert_eq!(ann.recv_type("error").await["code"], "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_carries_its_quote_live_and_in_history_and_shows_the_original_deleted() {
    let stack = Stack::start().await;
    stack.create_channel("g", &["ann", "bob", "cid"]).await;
    let mut ann = stack.connect("ann").await;
    let mut bob = stack.connect("bob").await;
    let question = format!("lunch at noon? {}", "y".repeat(150));
    let asked = sent_id(&mut ann, "g", "q1", &question).await;
    bob.recv_type("message").await;
    sent_id(&mut ann, "g", "q2", "or later").await;
    bob.recv_type("message").await;

    bob.send_json(&json!({"action": "sendMessage", "channelId": "g", "clientMsgId": "r1", "text": "noon works",
                          "replyTo": asked}))
        .await;
    let ack = bob.recv_type("ack").await;
    let quote = &ack["message"]["replyTo"];
    assert_eq!(quote["messageId"], asked.as_str(), "{ack}");
    assert_eq!(quote["authorId"], "ann");
    assert_eq!(quote["text"].as_str().unwrap(), question.chars().take(100).collect::<String>());
    let live = ann.recv_type("message").await;
    assert_eq!(live["message"]["replyTo"], *quote, "the live event carries the same quote");

    // The original goes: a history page holding only the reply shows the quote deleted
    // (the quoted message is outside the page: read by key).
    ann.send_json(&json!({"action": "deleteMessage", "channelId": "g", "messageId": asked})).await;
    ann.recv_type("messageDeleted").await;
    let (status, page) = stack.history("cid", "g", "limit=1").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["messages"][0]["replyTo"],
        json!({"messageId": asked, "authorId": "ann", "text": "", "deleted": true})
    );

    bob.send_json(
        &json!({"action": "sendMessage", "channelId": "g", "clientMsgId": "r2", "text": "?", "replyTo": asked}),
    )
    .await;
    assert_eq!(bob.recv_type("error").await["code"], "conflict");
    bob.send_json(
        &json!({"action": "sendMessage", "channelId": "g", "clientMsgId": "r3", "text": "?", "replyTo": "12345"}),
    )
    .await;
    assert_eq!(bob.recv_type("error").await["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_reaches_a_member_who_muted_the_channel_and_is_counted_in_the_channel_list() {
    let stack = Stack::start_with(StackOptions { platform_applications: true, ..Default::default() }).await;
    stack.create_channel("g", &["ann", "bob", "cid"]).await;
    let token = format!("bob-phone-{}", rand::random::<u32>());
    let bob_token = stack.token("bob");
    let (status, _) = stack.post("/devices", Some(&bob_token), &json!({"platform": "fcm", "token": token})).await;
    assert_eq!(status, 200);
    let (status, _) = stack.post("/channels/g/mute", Some(&bob_token), &json!({"muted": true})).await;
    assert_eq!(status, 204);

    let mut ann = stack.connect("ann").await;
    sent_id(&mut ann, "g", "m1", "lunch?").await;
    assert!(crate::media::endpoint_messages(&token).await.is_empty(), "muted: no push");
    ann.send_json(&json!({"action": "sendMessage", "channelId": "g", "clientMsgId": "m2", "text": "@bob you in?",
                          "mentions": ["bob", "bob"]}))
        .await;
    let ack = ann.recv_type("ack").await;
    assert_eq!(ack["message"]["mentions"], json!(["bob"]), "{ack}");
    stack.settle().await;
    let pushes = crate::media::endpoint_messages(&token).await;
    assert_eq!(pushes.len(), 1, "a mention pushes through the mute: {pushes:?}");

    let (status, list) = stack.get("/channels", Some(&bob_token)).await;
    assert_eq!(status, 200, "{list}");
    let g = &list["channels"][0];
    assert_eq!((g["unread"].as_u64(), g["mentions"].as_u64()), (Some(2), Some(1)), "{list}");
    let (_, list) = stack.get("/channels", Some(&stack.token("cid"))).await;
    assert_eq!(list["channels"][0]["mentions"], 0, "{list}");

    ann.send_json(&json!({"action": "sendMessage", "channelId": "g", "clientMsgId": "m3", "text": "@eve?",
                          "mentions": ["eve"]}))
        .await;
    let refused = ann.recv_type("error").await;
    assert_eq!(refused["code"], "invalid_request", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_reaction_pushes_on_an_offline_author_is_pushed_who_reacted_with_what() {
    let options = StackOptions { platform_applications: true, reaction_pushes: true, ..Default::default() };
    let stack = Stack::start_with(options).await;
    stack.create_channel("dm", &["ann", "bob"]).await;
    let token = format!("ann-phone-{}", rand::random::<u32>());
    let (status, _) =
        stack.post("/devices", Some(&stack.token("ann")), &json!({"platform": "fcm", "token": token})).await;
    assert_eq!(status, 200);
    let mut ann = stack.connect("ann").await;
    let id = sent_id(&mut ann, "dm", "m1", "see you at ten").await;
    ann.close().await;
    stack.wait_for_open_connections(0).await;

    let mut bob = stack.connect("bob").await;
    bob.send_json(&react("dm", &id, "👍", true)).await;
    bob.recv_type("reaction").await;
    let pushes = crate::media::endpoint_messages(&token).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let gcm: Value = serde_json::from_str(pushes[0]["GCM"].as_str().unwrap()).unwrap();
    assert_eq!(gcm["notification"]["title"], "bob reacted 👍");
    assert_eq!(gcm["notification"]["body"], "see you at ten");
    assert_eq!(gcm["data"]["messageId"], id.as_str());
}

/// What a device shows of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    id: String,
    text: String,
    deleted: bool,
    /// emoji -> (count, whether this user reacted)
    reactions: BTreeMap<String, (u64, bool)>,
}

impl Shown {
    fn of(message: &Value) -> Self {
        let deleted = message["deleted"] == true;
        let reactions = message["reactions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| (r["emoji"].as_str().unwrap().to_owned(), (r["count"].as_u64().unwrap(), r["me"] == true)))
            .collect();
        Self {
            id: message["messageId"].as_str().unwrap().to_owned(),
            text: message["text"].as_str().unwrap().to_owned(),
            deleted,
            reactions: if deleted { BTreeMap::new() } else { reactions },
        }
    }
}

/// A device's view of one channel, keyed by seq, kept up to date by the frames it gets.
#[derive(Debug, Default, PartialEq, Eq)]
struct Device(BTreeMap<u64, Shown>);

impl Device {
    fn load(messages: &[Value]) -> Self {
        Self(messages.iter().map(|m| (m["seq"].as_u64().unwrap(), Shown::of(m))).collect())
    }

    /// Applies a live frame or an answer, as `me` sees it.
    fn apply(&mut self, frame: &Value, me: &str) {
        match frame["type"].as_str().unwrap() {
            "message" | "messageUpdated" | "ack" => {
                let message = &frame["message"];
                let seq = message["seq"].as_u64().unwrap();
                let keep = self.0.get(&seq).map(|s| s.reactions.clone()).unwrap_or_default();
                let mut shown = Shown::of(message);
                // An edit does not carry reactions: they stay.
                if !shown.deleted {
                    shown.reactions = keep;
                }
                self.0.insert(seq, shown);
            }
            "messageDeleted" => {
                let shown = self.0.get_mut(&frame["seq"].as_u64().unwrap()).expect("a known message");
                shown.deleted = true;
                shown.text.clear();
                shown.reactions.clear();
            }
            "reaction" => {
                let shown = self.0.get_mut(&frame["seq"].as_u64().unwrap()).expect("a known message");
                if shown.deleted {
                    return;
                }
                let mine = frame["userId"] == me;
                let emoji = frame["emoji"].as_str().unwrap();
                let before = std::mem::take(&mut shown.reactions);
                for r in frame["reactions"].as_array().unwrap() {
                    let e = r["emoji"].as_str().unwrap().to_owned();
                    let me_too = if mine && e == emoji {
                        frame["added"] == true
                    } else {
                        before.get(&e).is_some_and(|(_, me)| *me)
                    };
                    shown.reactions.insert(e, (r["count"].as_u64().unwrap(), me_too));
                }
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laptop_away_while_the_phone_saw_messages_edits_deletions_and_reactions_catches_up_exactly() {
    let stack = Stack::start().await;
    stack.create_channel("g", &["ann", "bob", "cid"]).await;
    let mut ann = stack.connect("ann").await;
    let mut cid = stack.connect("cid").await;
    let mut old = Vec::new();
    for n in 0..20 {
        old.push(sent_id(&mut ann, "g", &format!("old-{n}"), &format!("old message {n}")).await);
    }
    // Both of bob's devices have the channel; the laptop keeps its cursors and goes away.
    let mut phone = stack.connect("bob").await;
    let mut phone_view = Device::load(&stack.full_history("bob", "g").await);
    let laptop_view_before = Device::load(&stack.full_history("bob", "g").await);
    let (_, list) = stack.get("/channels", Some(&stack.token("bob"))).await;
    let change_cursor = list["channels"][0]["changeSeq"].as_u64().unwrap();
    let message_cursor = old.last().unwrap().clone();

    // While it is away: 50 new messages, 10 old ones edited, 5 deleted, 20 reactions (on
    // old and new messages, one of them then deleted, from three people, bob's phone too).
    let mut new = Vec::new();
    for n in 0..50 {
        let (client, name) = if n % 2 == 0 { (&mut ann, "ann") } else { (&mut cid, "cid") };
        new.push(sent_id(client, "g", &format!("new-{n}"), &format!("{name}'s new message {n}")).await);
    }
    for (n, id) in old.iter().take(10).enumerate() {
        ann.send_json(
            &json!({"action": "editMessage", "channelId": "g", "messageId": id, "text": format!("old {n}, edited")}),
        )
        .await;
        ann.recv_type("messageUpdated").await;
    }
    let emoji = ["👍", "❤️", "😂"];
    for n in 0..20 {
        let target = if n % 2 == 0 { &old[10 + n / 2] } else { &new[n] };
        let frame = react("g", target, emoji[n % 3], true);
        match n % 3 {
            0 => {
                ann.send_json(&frame).await;
                ann.recv_type("reaction").await;
            }
            1 => {
                cid.send_json(&frame).await;
                cid.recv_type("reaction").await;
            }
            _ => {
                phone.send_json(&frame).await;
                // The phone's own answer is how it learns of its reaction; what arrives
                // before it is applied on the way.
                loop {
                    let got = phone.recv().await;
                    phone_view.apply(&got, "bob");
                    if got["type"] == "reaction" && got["userId"] == "bob" {
                        assert!(got["changeSeq"].as_u64().is_some(), "{got}");
                        break;
                    }
                }
            }
        }
    }
    for id in &old[10..15] {
        ann.send_json(&json!({"action": "deleteMessage", "channelId": "g", "messageId": id})).await;
        ann.recv_type("messageDeleted").await;
    }
    // Everything else the phone was sent.
    while let Some(frame) = phone.try_recv(Duration::from_secs(2)).await {
        phone_view.apply(&frame, "bob");
    }

    // The laptop comes back: one sync with both cursors, repeated while incomplete.
    let before = stack.requests.snapshot();
    let mut laptop = stack.connect("bob").await;
    let mut laptop_view = laptop_view_before;
    let mut cursor = json!({"channels": {"g": message_cursor}, "changes": {"g": change_cursor}});
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut frame = json!({"action": "sync"});
        frame.as_object_mut().unwrap().extend(cursor.as_object().unwrap().clone());
        laptop.send_json(&frame).await;
        let synced = loop {
            let frame = laptop.recv().await;
            match frame["type"].as_str() {
                Some("messages") => {
                    for m in frame["messages"].as_array().unwrap() {
                        laptop_view.0.insert(m["seq"].as_u64().unwrap(), Shown::of(m));
                    }
                }
                Some("synced") => break frame,
                _ => {}
            }
        };
        let done = &synced["channels"][0];
        if done["complete"] == true {
            break;
        }
        assert!(rounds < 5, "{synced}");
        cursor = json!({"channels": {"g": done["nextAfter"]}, "changes": {"g": done["upToChange"]}});
    }
    let used = RequestCounter::diff(&before, &stack.requests.snapshot());

    assert_eq!(laptop_view.0.len(), 70);
    assert_eq!(laptop_view, phone_view, "the laptop shows exactly what the phone shows");
    assert_eq!(laptop_view, Device::load(&stack.full_history("bob", "g").await), "and what history says");
    let reacted: u64 = laptop_view.0.values().flat_map(|s| s.reactions.values()).map(|(count, _)| count).sum();
    assert_eq!(reacted, 20 - 5, "the five reactions to messages deleted later went with them");
    assert!(laptop_view.0.values().any(|s| s.reactions.values().any(|(_, me)| *me)), "bob's own are marked");
    eprintln!("catch-up after 50 new, 10 edits, 5 deletions, 20 reactions: {rounds} sync, requests {used:?}");
}
