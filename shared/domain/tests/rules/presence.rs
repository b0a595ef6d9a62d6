//! Presence: connects and heartbeats keep a user online; the connections subscribed to them
//! hear when that changes, the last device leaving only after the grace (a reconnect within
//! it is never heard), a silent device after the presence window, through the sweep. Only
//! people who share a channel (for names asked directly: a direct channel) and do not block
//! the asker see a user's state or may subscribe to it; anyone else looks like an unknown
//! user. States (idle, dnd, invisible), custom status and last-seen privacy are in
//! `presence_states.rs`.

use chat_domain::chat;
use chat_domain::consent;
use chat_domain::memory::World;
use chat_domain::presence::{self, PresenceView, Status};
use chat_domain::{App, ErrorCode};
use serde_json::Value;

use crate::*;

const WINDOW: i64 = 60_000;
const GRACE: i64 = 5_000;

/// alice (a1, subscribed to bob) and bob share a direct channel.
async fn pair() -> (World, App) {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    direct(&app, "alice", "bob").await;
    connect(&app, "alice", "a1").await;
    watch(&app, "alice", "a1", &["bob"]).await;
    world.poster.clear();
    (world, app)
}

/// What a1 heard about bob: (status, lastSeen) per presence frame.
fn heard(world: &World) -> Vec<(String, Value)> {
    frames(world, "a1", "presence")
        .into_iter()
        .filter(|f| f["userId"] == "bob")
        .map(|f| (f["status"].as_str().unwrap().to_owned(), f["lastSeen"].clone()))
        .collect()
}

/// Whether the presence record says `name` is online now.
fn connections_online(world: &World, name: &str) -> bool {
    use chat_domain::clock::Clock;
    chat_domain::connections::is_online(world.presence.record(&user(name)).as_ref(), world.clock.now_ms())
}

/// `name`'s connection `connection` subscribes to `others`' presence.
pub async fn watch(app: &App, name: &str, connection: &str, others: &[&str]) {
    let others = others.iter().map(|o| user(o)).collect();
    presence::subscribe(app, &user(name), &conn(connection), others, None).await.unwrap();
}

fn statuses(views: &[PresenceView]) -> Vec<(String, Status, Option<i64>)> {
    views.iter().map(|v| (v.user_id.to_string(), v.status, v.last_seen)).collect()
}

#[tokio::test]
async fn connecting_tells_contacts_the_user_is_online() {
    let (world, app) = pair().await;
    connect(&app, "bob", "b1").await;
    assert_eq!(heard(&world), vec![("online".to_owned(), Value::from(World::START_MS))]);
}

#[tokio::test]
async fn a_second_device_is_not_announced_again() {
    let (world, app) = pair().await;
    connect(&app, "bob", "b1").await;
    world.clock.advance(1_000);
    connect(&app, "bob", "b2").await;
    assert_eq!(heard(&world).len(), 1);
}

#[tokio::test]
async fn only_subscribed_connections_hear_of_a_user_coming_online() {
    let (world, app) = pair().await;
    connect(&app, "carol", "c1").await;
    // alice's second device did not subscribe.
    connect(&app, "alice", "a2").await;
    connect(&app, "bob", "b1").await;
    assert!(frames(&world, "c1", "presence").is_empty());
    assert!(frames(&world, "a2", "presence").is_empty());
    assert_eq!(heard(&world).len(), 1);
}

#[tokio::test]
async fn a_subscription_lasts_as_long_as_its_connection_can_without_renewals_and_ends_when_asked() {
    let (world, app) = pair().await;
    // Nearly two hours later (API Gateway's connection lifetime), not renewed: still heard.
    world.clock.advance(presence::SUBSCRIPTION_MS - 60_000);
    connect(&app, "bob", "b1").await;
    assert_eq!(heard(&world).len(), 1, "a subscription needs no renewal");
    // Past it, the connection that made it cannot be open any more.
    world.clock.advance(60_000);
    bob_leaves_and_the_grace_passes(&world, &app, "b1").await;
    assert_eq!(heard(&world).len(), 1, "lapsed with its connection");
    watch(&app, "alice", "a1", &["bob"]).await;
    connect(&app, "bob", "b2").await;
    assert_eq!(heard(&world).len(), 2, "subscribed again (a new connection would)");
    presence::unsubscribe(&app, &conn("a1"), vec![user("bob")]).await.unwrap();
    bob_leaves_and_the_grace_passes(&world, &app, "b2").await;
    assert_eq!(heard(&world).len(), 2, "ended");
}

/// bob's `connection` disconnects and the sweep after the grace takes him offline.
async fn bob_leaves_and_the_grace_passes(world: &World, app: &App, connection: &str) {
    presence::disconnected(app, &user("bob"), &conn(connection)).await.unwrap();
    world.clock.advance(GRACE + 1);
    presence::sweep(app).await;
}

#[tokio::test]
async fn a_closed_connections_subscription_ends_at_the_first_post_that_finds_it_gone() {
    let (world, app) = pair().await;
    // a1 closes without unsubscribing (a tab closed, a phone out of coverage).
    world.poster.set_gone(&conn("a1"));
    connect(&app, "bob", "b1").await;
    assert_eq!(world.subscriptions.watchers_of(&user("bob")), Vec::<String>::new(), "dropped on the 410");
    // Nothing more is posted to it.
    world.poster.clear();
    bob_leaves_and_the_grace_passes(&world, &app, "b1").await;
    assert!(frames(&world, "a1", "presence").is_empty());
}

#[tokio::test]
async fn only_people_who_may_see_a_user_are_subscribed_to_them() {
    let (world, app) = pair().await;
    connect(&app, "carol", "c1").await;
    let answer = presence::subscribe(&app, &user("carol"), &conn("c1"), vec![user("bob")], None).await.unwrap();
    assert_eq!(statuses(&answer), vec![("bob".to_owned(), Status::Offline, None)], "an unknown user to carol");
    connect(&app, "bob", "b1").await;
    assert!(frames(&world, "c1", "presence").is_empty());
    assert!(app.subscriptions().watchers(&user("bob")).await.unwrap().iter().all(|w| w.user == user("alice")));
}

#[tokio::test]
async fn the_last_device_leaving_is_announced_by_the_sweep_after_the_grace() {
    let (world, app) = pair().await;
    connect(&app, "bob", "b1").await;
    world.clock.advance(10_000);
    let left_at = app.now_ms();
    chat::disconnect(&app, &user("bob"), &conn("b1")).await.unwrap();
    presence::sweep(&app).await;
    assert_eq!(heard(&world).len(), 1, "nothing yet: the grace runs");
    world.clock.advance(GRACE);
    let report = presence::sweep(&app).await;
    assert_eq!(report.went_offline, 1);
    assert_eq!(heard(&world)[1], ("offline".to_owned(), Value::from(left_at)));
}

#[tokio::test]
async fn a_reconnect_within_the_grace_is_never_announced() {
    let (world, app) = pair().await;
    connect(&app, "bob", "b1").await;
    chat::disconnect(&app, &user("bob"), &conn("b1")).await.unwrap();
    world.clock.advance(GRACE - 1);
    connect(&app, "bob", "b2").await;
    world.clock.advance(GRACE);
    assert_eq!(presence::sweep(&app).await.went_offline, 0);
    assert_eq!(heard(&world), vec![("online".to_owned(), Value::from(World::START_MS))]);
}

#[tokio::test]
async fn a_device_that_stops_beating_goes_offline_after_the_presence_window() {
    let (world, app) = pair().await;
    connect(&app, "bob", "b1").await;
    world.clock.advance(WINDOW - 1);
    presence::sweep(&app).await;
    assert_eq!(heard(&world).len(), 1, "still online");
    world.clock.advance(1);
    presence::sweep(&app).await;
    assert_eq!(heard(&world)[1..], [("offline".to_owned(), Value::from(World::START_MS))]);
}

#[tokio::test]
async fn a_heartbeat_moves_the_deadline_on() {
    let (world, app) = pair().await;
    connect(&app, "bob", "b1").await;
    world.clock.advance(WINDOW / 2);
    presence::heartbeat(&app, &user("bob"), &device(&conn("b1")), false).await.unwrap();
    world.clock.advance(WINDOW / 2);
    presence::sweep(&app).await;
    assert_eq!(heard(&world).len(), 1, "still online");
    world.clock.advance(WINDOW / 2);
    presence::sweep(&app).await;
    let last_seen = Value::from(World::START_MS + WINDOW / 2);
    assert_eq!(heard(&world)[1..], [("offline".to_owned(), last_seen)], "last seen at the beat");
}

#[tokio::test]
async fn a_heartbeat_between_the_disconnect_and_the_sweep_wins() {
    let (world, app) = pair().await;
    connect(&app, "bob", "b1").await;
    connect(&app, "bob", "b2").await;
    // b2 falls silent (still open); b1 keeps beating, then leaves: bob is due after the grace.
    world.clock.advance(WINDOW);
    presence::heartbeat(&app, &user("bob"), &device(&conn("b1")), false).await.unwrap();
    chat::disconnect(&app, &user("bob"), &conn("b1")).await.unwrap();
    assert_eq!(world.presence.record(&user("bob")).unwrap().deadline, Some(app.now_ms() + GRACE));
    world.clock.advance(GRACE / 2);
    presence::heartbeat(&app, &user("bob"), &device(&conn("b2")), false).await.unwrap();
    world.clock.advance(GRACE);
    presence::sweep(&app).await;
    assert_eq!(heard(&world).len(), 1, "only the first online");
    assert!(connections_online(&world, "bob"));
}

#[tokio::test]
async fn the_sweep_does_not_take_offline_a_user_who_beat_after_it_read_the_deadline() {
    let (world, app) = pair().await;
    connect(&app, "bob", "b1").await;
    world.clock.advance(WINDOW);
    let shard = chat_domain::connections::shard_of(&user("bob"), app.settings.presence.shards);
    let overdue = app.presence().overdue(shard, app.now_ms()).await.unwrap();
    let (_, read) = overdue.into_iter().find(|(u, _)| *u == user("bob")).expect("bob is due");
    assert_eq!(read, World::START_MS + WINDOW);
    presence::heartbeat(&app, &user("bob"), &device(&conn("b1")), false).await.unwrap();
    assert_eq!(app.presence().mark_offline(&user("bob"), read).await.unwrap(), None);
    presence::sweep(&app).await;
    assert_eq!(heard(&world).len(), 1, "only the first online");
}

#[tokio::test]
async fn another_beating_device_keeps_the_user_online_when_one_leaves() {
    let (world, app) = pair().await;
    connect(&app, "bob", "b1").await;
    connect(&app, "bob", "b2").await;
    chat::disconnect(&app, &user("bob"), &conn("b1")).await.unwrap();
    world.clock.advance(GRACE);
    assert_eq!(presence::sweep(&app).await.went_offline, 0);
    assert_eq!(heard(&world).len(), 1);
}

#[tokio::test]
async fn without_a_grace_the_last_device_leaving_is_announced_at_once() {
    let world = World::new().generous().with_settings(|s| s.presence.offline_grace_ms = 0);
    add_accounts(&world, &["alice", "bob"]).await;
    let app = world.app();
    direct(&app, "alice", "bob").await;
    connect(&app, "alice", "a1").await;
    watch(&app, "alice", "a1", &["bob"]).await;
    connect(&app, "bob", "b1").await;
    chat::disconnect(&app, &user("bob"), &conn("b1")).await.unwrap();
    assert_eq!(heard(&world).last().unwrap().0, "offline");
}

#[tokio::test]
async fn a_sweep_with_nobody_due_makes_one_pass() {
    let world = World::new().generous().with_settings(|s| s.presence.sweep_passes = 6);
    add_accounts(&world, &["bob"]).await;
    let app = world.app();
    connect(&app, "bob", "b1").await;
    let report = presence::sweep(&app).await;
    assert_eq!((report.passes, report.went_offline), (1, 0));
}

#[tokio::test]
async fn a_user_is_not_announced_to_people_they_block() {
    let (world, app) = pair().await;
    consent::block(&app, &user("bob"), &user("alice")).await.unwrap();
    connect(&app, "bob", "b1").await;
    assert!(heard(&world).is_empty());
}

#[tokio::test]
async fn members_of_a_shared_channel_see_each_others_state() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let c = group(&world, &app, "alice", &["bob", "carol"]).await;
    connect(&app, "bob", "b1").await;
    let states = presence::states(&app, &user("alice"), vec![], Some(&c)).await.unwrap();
    let now = app.now_ms();
    let mut seen = statuses(&states);
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("alice".to_owned(), Status::Offline, None),
            ("bob".to_owned(), Status::Online, Some(now)),
            ("carol".to_owned(), Status::Offline, None),
        ]
    );
}

#[tokio::test]
async fn names_asked_directly_are_shown_only_for_direct_contacts() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    group(&world, &app, "alice", &["carol"]).await;
    direct(&app, "alice", "bob").await;
    connect(&app, "bob", "b1").await;
    connect(&app, "carol", "c1").await;
    let states = presence::states(&app, &user("alice"), vec![user("bob"), user("carol")], None).await.unwrap();
    assert_eq!(
        statuses(&states),
        vec![
            ("bob".to_owned(), Status::Online, Some(app.now_ms())),
            ("carol".to_owned(), Status::Offline, None), // a group member, not a direct contact
        ]
    );
}

#[tokio::test]
async fn a_direct_channel_the_other_has_not_joined_shows_nothing() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    membership_open(&app, "alice", "bob").await;
    connect(&app, "bob", "b1").await;
    let states = presence::states(&app, &user("alice"), vec![user("bob")], None).await.unwrap();
    assert_eq!(statuses(&states), vec![("bob".to_owned(), Status::Offline, None)]);
}

async fn membership_open(app: &App, me: &str, other: &str) {
    chat_domain::membership::open_direct(app, &user(me), &user(other)).await.unwrap();
}

#[tokio::test]
async fn someone_who_blocks_the_asker_looks_like_an_unknown_user() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    connect(&app, "bob", "b1").await;
    consent::block(&app, &user("bob"), &user("alice")).await.unwrap();
    let states = presence::states(&app, &user("alice"), vec![user("bob")], Some(&c)).await.unwrap();
    assert_eq!(statuses(&states), vec![("bob".to_owned(), Status::Offline, None)]);
}

#[tokio::test]
async fn unknown_users_are_offline_and_never_seen() {
    let (_world, app) = pair().await;
    let states = presence::states(&app, &user("alice"), vec![user("nobody")], None).await.unwrap();
    assert_eq!(statuses(&states), vec![("nobody".to_owned(), Status::Offline, None)]);
}

#[tokio::test]
async fn the_asker_sees_their_own_state() {
    let (_world, app) = pair().await;
    let states = presence::states(&app, &user("alice"), vec![user("alice")], None).await.unwrap();
    assert_eq!(statuses(&states), vec![("alice".to_owned(), Status::Online, Some(World::START_MS))]);
}

#[tokio::test]
async fn a_user_asked_for_twice_is_answered_once() {
    let (_world, app) = pair().await;
    let states =
        presence::states(&app, &user("alice"), vec![user("bob"), user("bob"), user("bob")], None).await.unwrap();
    assert_eq!(states.len(), 1);
}

#[tokio::test]
async fn more_than_a_hundred_names_at_once_are_refused() {
    let (_world, app) = pair().await;
    let many = (0..101).map(|i| user(&format!("u{i}"))).collect();
    let err = presence::states(&app, &user("alice"), many, None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn the_state_of_a_channel_one_is_not_in_is_refused() {
    let (world, app) = world_with(&["alice", "bob", "mallory"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let err = presence::states(&app, &user("mallory"), vec![], Some(&c)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
}

#[tokio::test]
async fn one_user_holds_at_most_ten_open_connections() {
    let (world, app) = world_with(&["bob"]).await;
    for i in 0..10 {
        connect(&app, "bob", &format!("b{i}")).await;
    }
    let err = chat::connect(&app, &user("bob"), &device(&conn("b10"))).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    let record = world.presence.record(&user("bob")).unwrap();
    assert_eq!(record.conns.len(), 10);
    assert!(!record.conns.contains_key("b10"));
}

#[tokio::test]
async fn connections_past_their_lifetime_are_dropped_on_the_next_beat() {
    let (world, app) = world_with(&["bob"]).await;
    connect(&app, "bob", "old").await;
    world.clock.advance(LIFETIME);
    connect(&app, "bob", "new").await;
    let conns: Vec<String> = world.presence.record(&user("bob")).unwrap().conns.into_keys().collect();
    assert_eq!(conns, vec!["new"]);
}

#[tokio::test]
async fn one_sweep_takes_offline_everyone_overdue_in_every_shard_and_tells_each_contact_once() {
    // Forty members of one group, spread over the shards by their names; all go silent.
    let names: Vec<String> = (0..40).map(|n| format!("member{n:02}")).collect();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push("watcher");
    let (world, app) = world_with(&all).await;
    let team = group(&world, &app, "watcher", &all[..40]).await;
    for name in &all[..40] {
        connect(&app, name, &format!("{name}-phone")).await;
    }
    let shards: std::collections::BTreeSet<u32> =
        all[..40].iter().map(|n| chat_domain::connections::shard_of(&user(n), app.settings.presence.shards)).collect();
    assert_eq!(shards.len() as u32, app.settings.presence.shards, "every shard has someone");
    connect(&app, "watcher", "w1").await;
    presence::subscribe(&app, &user("watcher"), &conn("w1"), vec![], Some(&team)).await.unwrap();
    world.poster.clear();
    world.clock.advance(WINDOW);
    presence::heartbeat(&app, &user("watcher"), &device(&conn("w1")), false).await.unwrap();
    let report = presence::sweep(&app).await;
    assert_eq!(report.went_offline, 40);
    let offline: Vec<Value> =
        frames(&world, "w1", "presence").into_iter().filter(|f| f["status"] == "offline").collect();
    let told: std::collections::BTreeSet<String> =
        offline.iter().map(|f| f["userId"].as_str().unwrap().to_owned()).collect();
    assert_eq!((offline.len(), told.len()), (40, 40), "each departure once");
    assert_eq!(presence::sweep(&app).await.went_offline, 0, "and not again");
}

#[tokio::test]
async fn with_more_shards_the_deadlines_spread_over_them_and_one_sweep_reads_them_all() {
    let names: Vec<String> = (0..64).map(|n| format!("user{n:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let world = World::new().generous().with_settings(|s| s.presence.shards = 16);
    add_accounts(&world, &names).await;
    let app = world.app();
    for name in &names {
        connect(&app, name, &format!("{name}-phone")).await;
    }
    let used: std::collections::BTreeSet<u32> =
        names.iter().map(|n| chat_domain::connections::shard_of(&user(n), 16)).collect();
    assert!(used.len() > 4 && used.iter().all(|s| *s < 16), "{used:?}");
    world.clock.advance(WINDOW);
    assert_eq!(presence::sweep(&app).await.went_offline, 64);
}

#[tokio::test]
async fn sweep_runs_share_the_shards_and_together_take_everyone_offline_once() {
    let names: Vec<String> = (0..64).map(|n| format!("user{n:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let world = World::new().generous().with_settings(|s| {
        s.presence.shards = 16;
        s.presence.sweep_runs = 4;
    });
    add_accounts(&world, &names).await;
    let app = world.app();
    for name in &names {
        connect(&app, name, &format!("{name}-phone")).await;
    }
    world.clock.advance(WINDOW);
    assert_eq!(presence::SweepRun::scheduled(&app, 4), None, "a run past sweep_runs does nothing");
    let mut offline = 0;
    for index in 0..4 {
        let run = presence::SweepRun::scheduled(&app, index).unwrap();
        let expected = names.iter().filter(|n| chat_domain::connections::shard_of(&user(n), 16) % 4 == index).count();
        let report = presence::sweep_run(&app, run).await;
        assert_eq!(report.went_offline, expected, "run {index} takes the users of its own shards");
        offline += report.went_offline;
        // Running it again finds nobody: its users are offline, the others are not its own.
        assert_eq!(presence::sweep_run(&app, run).await.went_offline, 0);
    }
    assert_eq!(offline, 64);
    assert_eq!(presence::sweep(&app).await.went_offline, 0, "nobody was left");
}
