//! Calls: the AWS requests, posts, pushes and capacity units of setting one up (ring,
//! answer, the first signal), of ending it, and of the ways it can end without an answer
//! (metered, [`crate::metering`]).

use std::time::{Duration, Instant};

use e2e::live::LiveClient;
use serde_json::{Value, json};

use crate::requests::{RequestRow, drain};
use crate::world::World;

/// Sends `frame` and answers the first frame of one of `types` (`Null` if none came).
async fn answer(device: &LiveClient, frame: &Value, types: &[&str]) -> Value {
    assert!(device.send(frame).await, "connection open");
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(arrival) = device.next(deadline.saturating_duration_since(Instant::now())).await {
        let Some(frame) = arrival.frame else { break };
        if types.contains(&frame["type"].as_str().unwrap_or_default()) {
            return frame;
        }
    }
    Value::Null
}

fn said(frame: &Value) -> String {
    match (frame["type"].as_str(), frame["code"].as_str(), frame["call"]["outcome"].as_str()) {
        (Some(kind), Some(code), _) => format!("{kind} {code}"),
        (Some(kind), None, Some(outcome)) => format!("{kind} ({outcome})"),
        (Some(kind), None, None) => kind.to_owned(),
        _ => "no answer".into(),
    }
}

fn start(media: &str) -> Value {
    json!({"action": "startCall", "channelId": "dm", "media": media})
}

fn on_call(action: &str, call: &Value) -> Value {
    json!({"action": action, "callId": call["call"]["callId"]})
}

pub async fn run() -> Vec<RequestRow> {
    let world = World::start().await;
    world.tap.meter(true);
    let stack = &world.stack;
    let mut rows = Vec::new();
    stack.create_channel("dm", &["alice", "bob"]).await;
    let alice = LiveClient::of(stack, "alice").await;
    let bob_phone = LiveClient::of(stack, "bob").await;
    let bob_laptop = LiveClient::of(stack, "bob").await;

    // An answered call, step by step: both of bob's devices ring.
    let (counts, units, started) = world.measure(answer(&alice, &start("video"), &["callStarted", "error"])).await;
    rows.push(RequestRow::new("startCall (callee online, 2 devices ring)", counts, units, &said(&started)));
    drain(&bob_phone).await;
    drain(&bob_laptop).await;
    let (counts, units, accepted) =
        world.measure(answer(&bob_phone, &on_call("acceptCall", &started), &["callAccepted", "error"])).await;
    rows.push(RequestRow::new("acceptCall (caller and other device told)", counts, units, &said(&accepted)));
    drain(&alice).await;
    drain(&bob_laptop).await;
    let offer = json!({"action": "callSignal", "callId": started["call"]["callId"],
                       "signal": {"type": "offer", "sdp": "v=0 (a 4 KB offer in practice)"}});
    let (counts, units, relayed) = world
        .measure(async {
            assert!(alice.send(&offer).await, "connection open");
            bob_phone.next(Duration::from_secs(10)).await.and_then(|a| a.frame).unwrap_or(Value::Null)
        })
        .await;
    rows.push(RequestRow::new("callSignal (relayed once)", counts, units, &said(&relayed)));
    let (counts, units, ended) =
        world.measure(answer(&alice, &on_call("endCall", &started), &["callEnded", "error"])).await;
    rows.push(RequestRow::new("endCall, answered (entry stored and posted)", counts, units, &said(&ended)));
    for device in [&alice, &bob_phone, &bob_laptop] {
        drain(device).await;
    }

    // Not answered: declined, cancelled (or timed out), and a callee with no live device.
    let started = answer(&alice, &start("audio"), &["callStarted"]).await;
    drain(&bob_laptop).await;
    let (counts, units, declined) =
        world.measure(answer(&bob_phone, &on_call("declineCall", &started), &["callEnded", "error"])).await;
    rows.push(RequestRow::new("declineCall", counts, units, &said(&declined)));
    for device in [&alice, &bob_phone, &bob_laptop] {
        drain(device).await;
    }
    let started = answer(&alice, &start("audio"), &["callStarted"]).await;
    let (counts, units, missed) =
        world.measure(answer(&alice, &on_call("endCall", &started), &["callEnded", "error"])).await;
    rows.push(RequestRow::new("endCall while ringing (missed)", counts, units, &said(&missed)));
    bob_phone.close().await;
    bob_laptop.close().await;
    world.settle(Duration::from_millis(500)).await;
    drain(&alice).await;
    let (counts, units, pushed) = world.measure(answer(&alice, &start("audio"), &["callStarted", "error"])).await;
    rows.push(RequestRow::new("startCall (callee offline: push)", counts, units, &said(&pushed)));
    let (counts, units, _) = world
        .measure(async {
            alice.close().await;
        })
        .await;
    rows.push(RequestRow::new("$disconnect of the caller while ringing (missed)", counts, units, "-"));
    rows
}
