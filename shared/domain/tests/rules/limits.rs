//! Limits: fixed windows per user; sends, connects and other writes count in the shared
//! counters (every instance sees the same count), cheap frames in the instance's memory;
//! a refusal says how long until the window ends.

use chat_domain::chat;
use chat_domain::limits::{Action, check};
use chat_domain::memory::World;
use chat_domain::settings::{RateLimit, RateLimits};
use chat_domain::{App, ChatError};

use crate::*;

/// A world whose every limit is `count` per `window_ms`, with alice and bob in a direct
/// channel; the clock at the start of a window.
async fn limited(count: u32, window_ms: i64) -> (World, App, ChannelId) {
    let world = World::new().generous();
    add_accounts(&world, &["alice", "bob"]).await;
    let c = direct(&world.app(), "alice", "bob").await;
    let world = world.with_settings(|s| s.rate_limits = RateLimits::uniform(RateLimit { count, window_ms }));
    let app = world.app();
    (world, app, c)
}

fn retry_after(result: Result<impl std::fmt::Debug, ChatError>) -> u64 {
    match result {
        Err(ChatError::RateLimited { retry_after_ms }) => retry_after_ms,
        other => panic!("expected rate_limited, got {other:?}"),
    }
}

#[tokio::test]
async fn a_send_past_the_limit_is_refused_with_the_time_left_in_the_window() {
    let (world, app, c) = limited(2, 5_000).await;
    world.clock.advance(1_200);
    send(&app, "alice", "a1", &c, "one").await;
    send(&app, "alice", "a1", &c, "two").await;
    let refused = send_with(&app, "alice", "a1", &c, &fresh_id(), "three", vec![]).await;
    assert_eq!(retry_after(refused), 3_800);
}

#[tokio::test]
async fn a_refused_send_stores_and_delivers_nothing() {
    let (world, app, c) = limited(1, 5_000).await;
    connect(&unlimited(&world), "bob", "b1").await;
    send(&app, "alice", "a1", &c, "one").await;
    world.poster.clear();
    send_with(&app, "alice", "a1", &c, &fresh_id(), "two", vec![]).await.unwrap_err();
    assert_eq!(texts(&world.messages.all(&c)), vec!["one"]);
    assert!(world.poster.posts().is_empty());
}

/// An app of this world with no limit in reach.
fn unlimited(world: &World) -> App {
    let mut app = world.app();
    app.settings.rate_limits = RateLimits::uniform(RateLimit { count: 100_000, window_ms: 60_000 });
    app
}

#[tokio::test]
async fn a_new_window_starts_afresh() {
    let (world, app, c) = limited(1, 5_000).await;
    send(&app, "alice", "a1", &c, "one").await;
    let wait = retry_after(send_with(&app, "alice", "a1", &c, &fresh_id(), "two", vec![]).await);
    world.clock.advance(wait as i64);
    assert_eq!(send(&app, "alice", "a1", &c, "two").await.seq, 2);
}

#[tokio::test]
async fn the_send_limit_holds_across_instances() {
    let (world, app, c) = limited(2, 5_000).await;
    let other = world.instance();
    send(&app, "alice", "a1", &c, "here").await;
    send(&other, "alice", "a1", &c, "there").await;
    retry_after(send_with(&other, "alice", "a1", &c, &fresh_id(), "again", vec![]).await);
    retry_after(send_with(&app, "alice", "a1", &c, &fresh_id(), "again", vec![]).await);
    assert_eq!(world.messages.count(), 2);
}

#[tokio::test]
async fn cheap_frames_count_in_each_instance_and_cost_no_write() {
    let (world, app, _c) = limited(2, 10_000).await;
    let other = world.instance();
    let alice = user("alice");
    for _ in 0..2 {
        check(&app, Action::Frame, alice.as_str()).await.unwrap();
    }
    retry_after(check(&app, Action::Frame, alice.as_str()).await);
    for _ in 0..2 {
        check(&other, Action::Frame, alice.as_str()).await.unwrap();
    }
    retry_after(check(&other, Action::Frame, alice.as_str()).await);
    assert_eq!(world.counters.total(), 0);
}

#[tokio::test]
async fn a_local_refusal_says_when_its_window_ends() {
    let (world, app, _c) = limited(1, 10_000).await;
    world.clock.advance(2_500);
    check(&app, Action::Read, "alice").await.unwrap();
    assert_eq!(retry_after(check(&app, Action::Read, "alice").await), 7_500);
}

#[tokio::test]
async fn writes_count_in_the_shared_counters() {
    let (world, app, _c) = limited(5, 60_000).await;
    for action in [Action::Change, Action::React, Action::Write, Action::Upload, Action::Connect] {
        check(&app, action, "alice").await.unwrap();
    }
    assert_eq!(world.counters.total(), 5);
}

#[tokio::test]
async fn presence_subscriptions_have_their_own_count_apart_from_cheap_frames() {
    let (_world, app, _c) = limited(2, 60_000).await;
    for _ in 0..2 {
        check(&app, Action::Subscribe, "alice").await.unwrap();
    }
    retry_after(check(&app, Action::Subscribe, "alice").await);
    check(&app, Action::Frame, "alice").await.unwrap();
}

#[tokio::test]
async fn one_users_limit_does_not_touch_another_user() {
    let (_world, app, c) = limited(1, 5_000).await;
    send(&app, "alice", "a1", &c, "one").await;
    retry_after(send_with(&app, "alice", "a1", &c, &fresh_id(), "two", vec![]).await);
    assert_eq!(send(&app, "bob", "b1", &c, "mine").await.seq, 2);
}

#[tokio::test]
async fn connects_past_the_limit_are_refused_and_not_recorded() {
    let (world, app, _c) = limited(1, 60_000).await;
    chat::connect(&app, &user("bob"), &device(&conn("b1"))).await.unwrap();
    retry_after(chat::connect(&app, &user("bob"), &device(&conn("b2"))).await);
    let record = world.presence.record(&user("bob")).unwrap();
    assert!(record.conns.contains_key("b1") && !record.conns.contains_key("b2"));
}

#[tokio::test]
async fn each_action_has_its_own_count() {
    let (_world, app, c) = limited(1, 5_000).await;
    check(&app, Action::Change, "alice").await.unwrap();
    check(&app, Action::Write, "alice").await.unwrap();
    assert_eq!(send(&app, "alice", "a1", &c, "still allowed").await.seq, 1);
}

#[tokio::test]
async fn a_connect_is_counted_by_its_own_presence_write_and_a_new_window_starts_afresh() {
    let (world, app, _c) = limited(2, 60_000).await;
    chat::connect(&app, &user("bob"), &device(&conn("b1"))).await.unwrap();
    chat::connect(&app, &user("bob"), &device(&conn("b2"))).await.unwrap();
    assert_eq!(world.counters.total(), 0, "no counter of its own: the Presence write counts it");
    retry_after(chat::connect(&app, &user("bob"), &device(&conn("b3"))).await);
    world.clock.advance(60_000);
    chat::connect(&app, &user("bob"), &device(&conn("b4"))).await.unwrap();
    let record = world.presence.record(&user("bob")).unwrap();
    assert!(record.conns.contains_key("b4") && !record.conns.contains_key("b3"));
}
