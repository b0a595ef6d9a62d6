//! Reactions, replies and mentions, and a device catching up on what changed while it was
//! away: the AWS requests and capacity units of each (metered, [`crate::metering`]).

use std::time::{Duration, Instant};

use e2e::live::LiveClient;
use serde_json::{Value, json};

use crate::requests::{RequestRow, ask, drain};
use crate::world::World;

fn send(channel: &str, id: &str, text: &str) -> Value {
    json!({"action": "sendMessage", "channelId": channel, "clientMsgId": id, "text": text})
}

fn react(channel: &str, id: &Value, emoji: &str, add: bool) -> Value {
    let action = if add { "addReaction" } else { "removeReaction" };
    json!({"action": action, "channelId": channel, "messageId": id, "emoji": emoji})
}

/// The ids of a channel's messages, oldest first.
async fn ids(world: &World, reader: &str, channel: &str) -> Vec<Value> {
    world.stack.full_history(reader, channel).await.into_iter().map(|m| m["messageId"].clone()).collect()
}

/// Sends `frame` and reads frames until `done` says one ends the answer.
async fn until(device: &LiveClient, frame: &Value, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    assert!(device.send(frame).await, "connection open");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while let Some(arrival) = device.next(deadline.saturating_duration_since(Instant::now())).await {
        let Some(frame) = arrival.frame else { break };
        let last = done(&frame);
        got.push(frame);
        if last {
            break;
        }
    }
    got
}

pub async fn run() -> Vec<RequestRow> {
    let world = World::start().await;
    world.tap.meter(true);
    let stack = &world.stack;
    let mut rows = Vec::new();

    stack.create_channel("dm", &["alice", "bob"]).await;
    let alice = LiveClient::of(stack, "alice").await;
    let bob = LiveClient::of(stack, "bob").await;
    ask(&alice, send("dm", "q", "lunch at noon?"), &["ack"]).await;
    drain(&bob).await;
    let question = ids(&world, "alice", "dm").await[0].clone();

    let (counts, units, answer) =
        world.measure(ask(&bob, react("dm", &question, "👍", true), &["reaction", "error"])).await;
    rows.push(RequestRow::new("addReaction, 1:1 (both online)", counts, units, &answer));
    drain(&alice).await;
    let (counts, units, answer) =
        world.measure(ask(&bob, react("dm", &question, "👍", true), &["reaction", "error"])).await;
    rows.push(RequestRow::new("addReaction again (nothing changes)", counts, units, &answer));
    let (counts, units, answer) =
        world.measure(ask(&bob, react("dm", &question, "👍", false), &["reaction", "error"])).await;
    rows.push(RequestRow::new("removeReaction, 1:1", counts, units, &answer));
    drain(&alice).await;
    let reply = json!({"action": "sendMessage", "channelId": "dm", "clientMsgId": "r", "text": "@alice noon works",
                       "replyTo": question, "mentions": ["alice"]});
    let (counts, units, answer) = world.measure(ask(&bob, reply, &["ack", "error"])).await;
    rows.push(RequestRow::new("sendMessage, 1:1 reply with a mention", counts, units, &answer));
    drain(&alice).await;

    // History: 60 messages, the newest 50 with 10 reactions and 5 replies to messages
    // outside the page.
    for n in 0..60 {
        ask(&alice, send("dm", &format!("h{n}"), &format!("message {n}")), &["ack"]).await;
    }
    let all = ids(&world, "bob", "dm").await;
    for (n, id) in all.iter().rev().take(10).enumerate() {
        ask(&bob, react("dm", id, ["👍", "❤️"][n % 2], true), &["reaction"]).await;
    }
    for (n, answered) in all.iter().take(5).enumerate() {
        let reply = json!({"action": "sendMessage", "channelId": "dm", "clientMsgId": format!("re{n}"),
                           "text": "about that", "replyTo": answered});
        ask(&bob, reply, &["ack"]).await;
    }
    drain(&alice).await;
    let (counts, units, (status, page)) = world.measure(stack.history("alice", "dm", "limit=50")).await;
    let got = page["messages"].as_array().map_or(0, Vec::len);
    rows.push(RequestRow::new(
        "history page of 50 (10 with reactions, 5 replies to older messages)",
        counts,
        units,
        &format!("{status}, {got} messages"),
    ));

    // Catch-up: carol's laptop was away while the group had 50 new messages, 10 old ones
    // edited, 5 deleted and 20 reactions.
    stack.create_channel("team", &["alice", "bob", "carol"]).await;
    for n in 0..20 {
        ask(&alice, send("team", &format!("old{n}"), &format!("old {n}")), &["ack"]).await;
    }
    let old = ids(&world, "carol", "team").await;
    let (_, list) = stack.get("/channels", Some(&stack.token("carol"))).await;
    let change_cursor =
        list["channels"].as_array().unwrap().iter().find(|c| c["channelId"] == "team").unwrap()["changeSeq"].clone();
    for n in 0..50 {
        ask(&alice, send("team", &format!("new{n}"), &format!("new {n}")), &["ack"]).await;
    }
    let new: Vec<Value> = ids(&world, "carol", "team").await.split_off(20);
    for (n, id) in old.iter().take(10).enumerate() {
        let edit =
            json!({"action": "editMessage", "channelId": "team", "messageId": id, "text": format!("old {n}, edited")});
        ask(&alice, edit, &["messageUpdated"]).await;
    }
    for n in 0..20 {
        let target = if n % 2 == 0 { &old[10 + n / 2] } else { &new[n] };
        let who = if n % 3 == 0 { &bob } else { &alice };
        ask(who, react("team", target, ["👍", "❤️", "😂"][n % 3], true), &["reaction"]).await;
    }
    for id in &old[15..20] {
        ask(&alice, json!({"action": "deleteMessage", "channelId": "team", "messageId": id}), &["messageDeleted"])
            .await;
    }
    drain(&bob).await;
    drain(&alice).await;
    let laptop = LiveClient::of(stack, "carol").await;
    let sync = json!({"action": "sync", "channels": {"team": old[19]}, "changes": {"team": change_cursor}});
    let (counts, units, frames) = world.measure(until(&laptop, &sync, |f| f["type"] == "synced")).await;
    let sent: u64 = frames.iter().filter_map(|f| f["messages"].as_array()).map(|m| m.len() as u64).sum();
    let complete = frames.last().is_some_and(|f| f["channels"][0]["complete"] == true);
    rows.push(RequestRow::new(
        "sync catch-up: 50 new, 10 edited, 5 deleted, 20 reactions",
        counts,
        units,
        &format!("{sent} messages, complete: {complete}"),
    ));
    rows
}
