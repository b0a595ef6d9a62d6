//! Lazy presence: what a presence change costs for a user with 1,000 contacts of whom 10
//! are watching (posts follow the watchers, DynamoDB requests nothing), and what a
//! subscription costs.

use e2e::live::LiveClient;
use serde_json::json;

use crate::requests::{RequestRow, ask, drain};
use crate::world::{World, users};

pub async fn run() -> Vec<RequestRow> {
    let world = World::start().await;
    world.tap.meter(true);
    let stack = &world.stack;
    let mut rows = Vec::new();

    // star: 1,000 contacts, in 10 groups of 99 others and one of 10.
    let contacts = users("fan", 1_000);
    for (n, chunk) in contacts.chunks(99).enumerate() {
        let mut members = vec!["star"];
        members.extend(chunk.iter().map(String::as_str));
        stack.create_channel(&format!("club{n}"), &members).await;
    }
    // Ten of them have the star on screen.
    let mut watchers = Vec::new();
    for (n, fan) in contacts.iter().step_by(100).enumerate() {
        let device = LiveClient::of(stack, fan).await;
        let channel = format!("club{}", n * 100 / 99);
        ask(&device, json!({"action": "subscribePresence", "channelId": channel}), &["presenceState"]).await;
        watchers.push(device);
    }
    let (counts, units, star) = world.measure(LiveClient::of(stack, "star")).await;
    rows.push(RequestRow::new("connect: 1,000 contacts, 10 watching", counts, units, "online to 10"));
    for device in &watchers {
        drain(device).await;
    }
    let idle = json!({"action": "heartbeat", "idle": true});
    let (counts, units, ()) = world
        .measure(async {
            assert!(star.send(&idle).await);
        })
        .await;
    rows.push(RequestRow::new("heartbeat going idle: 1,000 contacts, 10 watching", counts, units, ""));
    for device in &watchers {
        drain(device).await;
    }
    let status = json!({"action": "setStatus", "text": "on stage", "emoji": "🎤"});
    let (counts, units, answer) = world.measure(ask(&star, status, &["presence", "error"])).await;
    rows.push(RequestRow::new("setStatus: 1,000 contacts, 10 watching", counts, units, &answer));
    for device in &watchers {
        drain(device).await;
    }
    let subscribe = json!({"action": "subscribePresence", "channelId": "club0"});
    let (counts, units, answer) = world.measure(ask(&star, subscribe, &["presenceState", "error"])).await;
    rows.push(RequestRow::new("subscribePresence: a 100-member channel", counts, units, &answer));
    rows
}
