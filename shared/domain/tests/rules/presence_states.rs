//! Presence states: idle when every device says so, `dnd` (no pushes, live delivery
//! stays), `invisible` (exactly offline to everyone else), a custom status that lapses,
//! and who sees last-seen. Subscribers hear each change once.

use chat_domain::chat;
use chat_domain::http::Platform;
use chat_domain::memory::World;
use chat_domain::model::Emoji;
use chat_domain::presence::{self, Status};
use chat_domain::protocol::{ChosenState, LastSeenTo};
use chat_domain::{App, ErrorCode};
use serde_json::Value;

use crate::presence::watch;
use crate::*;

/// alice (a1) watches bob; bob is connected on b1.
async fn watched_bob() -> (World, App) {
    let (world, app) = world_with(&["alice", "bob"]).await;
    direct(&app, "alice", "bob").await;
    connect(&app, "alice", "a1").await;
    watch(&app, "alice", "a1", &["bob"]).await;
    connect(&app, "bob", "b1").await;
    world.poster.clear();
    (world, app)
}

/// The presence frames a1 got about bob.
fn heard(world: &World) -> Vec<Value> {
    frames(world, "a1", "presence").into_iter().filter(|f| f["userId"] == "bob").collect()
}

fn states(world: &World) -> Vec<String> {
    heard(world).iter().map(|f| f["status"].as_str().unwrap().to_owned()).collect()
}

async fn bob_beats(app: &App, connection: &str, idle: bool) {
    presence::heartbeat(app, &user("bob"), &device(&conn(connection)), idle).await.unwrap();
}

/// What alice is answered about bob.
async fn asked(app: &App) -> Value {
    let views = presence::states(app, &user("alice"), vec![user("bob")], None).await.unwrap();
    serde_json::to_value(&views[0]).unwrap()
}

#[tokio::test]
async fn a_user_is_idle_while_every_device_is_and_online_again_at_the_first_input() {
    let (world, app) = watched_bob().await;
    connect(&app, "bob", "b2").await;
    bob_beats(&app, "b1", true).await;
    assert!(states(&world).is_empty(), "b2 is in use");
    bob_beats(&app, "b2", true).await;
    assert_eq!(states(&world), ["idle"]);
    bob_beats(&app, "b2", true).await;
    assert_eq!(states(&world), ["idle"], "told once");
    assert_eq!(asked(&app).await["status"], "idle");
    bob_beats(&app, "b1", false).await;
    assert_eq!(states(&world), ["idle", "online"]);
}

#[tokio::test]
async fn do_not_disturb_stops_pushes_not_live_messages() {
    let (world, app) = watched_bob().await;
    chat_domain::push::register(&app, &user("bob"), Platform::Fcm, "bob-phone").await.unwrap();
    let answer = presence::set_presence(&app, &user("bob"), Some(ChosenState::Dnd), None).await.unwrap();
    assert_eq!(answer.status, Status::Dnd);
    assert_eq!(states(&world), ["dnd"]);
    let c = chat_domain::membership::direct_channel_id(&user("alice"), &user("bob"));
    send(&app, "alice", "a1", &c, "live").await;
    assert_eq!(frames(&world, "b1", "message").len(), 1, "live delivery stays");
    chat::disconnect(&app, &user("bob"), &conn("b1")).await.unwrap();
    let draft = chat::Draft { mentions: vec![user("bob")], ..chat::Draft::text(fresh_id(), "@bob even a mention") };
    chat::send_message(&app, &user("alice"), &conn("a1"), &c, draft).await.unwrap();
    assert!(world.push.publishes().is_empty(), "no push in dnd, not even for a mention");
    connect(&app, "bob", "b2").await;
    presence::set_presence(&app, &user("bob"), Some(ChosenState::Online), None).await.unwrap();
    chat::disconnect(&app, &user("bob"), &conn("b2")).await.unwrap();
    send(&app, "alice", "a1", &c, "pushed again").await;
    assert_eq!(world.push.publishes().len(), 1);
}

#[tokio::test]
async fn invisible_looks_exactly_like_offline() {
    let (world, app) = watched_bob().await;
    presence::set_status(&app, &user("bob"), Some("at the beach".into()), None, None).await.unwrap();
    world.clock.advance(1_000);
    let went = app.now_ms();
    let answer = presence::set_presence(&app, &user("bob"), Some(ChosenState::Invisible), None).await.unwrap();
    assert_eq!((answer.status, answer.last_seen, answer.custom_status.clone()), (Status::Offline, Some(went), None));
    let told = heard(&world).last().cloned().unwrap();
    assert_eq!(told, serde_json::json!({"type": "presence", "userId": "bob", "status": "offline", "lastSeen": went}));
    // Whatever bob does meanwhile, he looks as a user who went offline at `went`.
    world.clock.advance(30_000);
    bob_beats(&app, "b1", false).await;
    presence::set_status(&app, &user("bob"), Some("still here".into()), None, None).await.unwrap();
    let offline = serde_json::json!({"userId": "bob", "status": "offline", "lastSeen": went});
    assert_eq!(asked(&app).await, offline);
    let count = heard(&world).len();
    chat::disconnect(&app, &user("bob"), &conn("b1")).await.unwrap();
    world.clock.advance(60_000);
    presence::sweep(&app).await;
    assert_eq!(heard(&world).len(), count, "his devices leaving is no news");
    assert_eq!(asked(&app).await, offline);
}

#[tokio::test]
async fn coming_back_from_invisible_is_announced() {
    let (world, app) = watched_bob().await;
    presence::set_presence(&app, &user("bob"), Some(ChosenState::Invisible), None).await.unwrap();
    presence::set_presence(&app, &user("bob"), Some(ChosenState::Online), None).await.unwrap();
    assert_eq!(states(&world), ["offline", "online"]);
}

#[tokio::test]
async fn a_custom_status_is_shown_until_it_lapses() {
    let (world, app) = watched_bob().await;
    let until = app.now_ms() + 60_000;
    let emoji = Emoji::parse("📅").unwrap();
    presence::set_status(&app, &user("bob"), Some("In a meeting".into()), Some(emoji), Some(until)).await.unwrap();
    let told = heard(&world).last().cloned().unwrap();
    assert_eq!(told["customStatus"], serde_json::json!({"text": "In a meeting", "emoji": "📅", "expiresAt": until}));
    assert_eq!(asked(&app).await["customStatus"]["text"], "In a meeting");
    world.clock.advance(30_000);
    bob_beats(&app, "b1", false).await;
    world.clock.advance(30_000);
    assert_eq!(asked(&app).await["status"], "online");
    assert_eq!(asked(&app).await.get("customStatus"), None, "lapsed");
    presence::set_status(&app, &user("bob"), Some("back".into()), None, None).await.unwrap();
    presence::set_status(&app, &user("bob"), None, None, None).await.unwrap();
    assert_eq!(heard(&world).last().unwrap().get("customStatus"), None, "cleared");
    assert_eq!(heard(&world).len(), 3, "set, set again, cleared");
}

#[tokio::test]
async fn bad_statuses_and_empty_choices_are_refused() {
    let (_world, app) = watched_bob().await;
    let long = presence::set_status(&app, &user("bob"), Some("x".repeat(101)), None, None).await.unwrap_err();
    assert_eq!(long.code(), ErrorCode::TooLarge);
    let lines = presence::set_status(&app, &user("bob"), Some("a\nb".into()), None, None).await.unwrap_err();
    assert_eq!(lines.code(), ErrorCode::InvalidRequest);
    let past = app.now_ms() - 1;
    let lapsed = presence::set_status(&app, &user("bob"), Some("old".into()), None, Some(past)).await.unwrap_err();
    assert_eq!(lapsed.code(), ErrorCode::InvalidRequest);
    let nothing = presence::set_presence(&app, &user("bob"), None, None).await.unwrap_err();
    assert_eq!(nothing.code(), ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn last_seen_can_be_shown_to_nobody() {
    let (world, app) = watched_bob().await;
    presence::set_presence(&app, &user("bob"), None, Some(LastSeenTo::Nobody)).await.unwrap();
    chat::disconnect(&app, &user("bob"), &conn("b1")).await.unwrap();
    world.clock.advance(60_000);
    presence::sweep(&app).await;
    let told = heard(&world).last().cloned().unwrap();
    assert_eq!((told["status"].as_str(), told.get("lastSeen")), (Some("offline"), None));
    assert_eq!(asked(&app).await.get("lastSeen"), None);
}
