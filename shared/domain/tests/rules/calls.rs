//! Calls: who may call whom, one call at a time per user, marks that lapse when nobody
//! ends a call, a relay that finds the other side gone, one entry per call, and pushes.

use chat_domain::calling;
use chat_domain::calls::{CallOutcome, CallState, Media};
use chat_domain::http::Platform;
use chat_domain::memory::World;
use chat_domain::model::CallId;
use chat_domain::protocol::ServerFrame;
use chat_domain::{App, ErrorCode};
use serde_json::json;

use crate::*;

async fn pair() -> (World, App, ChannelId) {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let dm = direct(&app, "alice", "bob").await;
    connect(&app, "alice", "a1").await;
    connect(&app, "bob", "b1").await;
    (world, app, dm)
}

async fn start(
    app: &App,
    caller: &str,
    origin: &str,
    channel: &ChannelId,
) -> Result<ServerFrame, chat_domain::ChatError> {
    calling::start(app, &user(caller), &conn(origin), channel, Media::Audio).await
}

fn call_id(frame: &ServerFrame) -> CallId {
    match frame {
        ServerFrame::CallStarted { call, .. } | ServerFrame::CallEnded { call } => call.call_id.clone(),
        other => panic!("{other:?}"),
    }
}

fn outcome(frame: &ServerFrame) -> Option<CallOutcome> {
    let ServerFrame::CallEnded { call } = frame else { panic!("{frame:?}") };
    call.outcome
}

async fn entries(app: &App, channel: &ChannelId) -> Vec<CallOutcome> {
    let page = chat_domain::history::history(app, &user("alice"), channel, Default::default()).await.unwrap();
    page.messages.iter().filter_map(|m| m.call.as_ref().map(|c| c.outcome)).collect()
}

#[tokio::test]
async fn a_ringing_call_nobody_ended_stops_holding_both_people_after_its_ring_time() {
    let (world, app, dm) = pair().await;
    let first = call_id(&start(&app, "alice", "a1", &dm).await.unwrap());
    // Alice's device vanished without a word; bob's mark holds while the call rings.
    let carol_bob = direct(&app, "carol", "bob").await;
    let busy = start(&app, "carol", "c1", &carol_bob).await.unwrap();
    assert_eq!(outcome(&busy), Some(CallOutcome::Busy));

    world.clock.advance(app.settings.calls.ring_ms);
    let second = start(&app, "carol", "c1", &carol_bob).await.unwrap();
    assert!(matches!(second, ServerFrame::CallStarted { .. }), "{second:?}");
    // The first call cannot be answered any more: it is recorded missed.
    let late = calling::accept(&app, &user("bob"), &conn("b1"), &first).await.unwrap_err();
    assert_eq!(late.code(), ErrorCode::Conflict);
    let stored = world.calls.all().into_iter().find(|r| r.call.call_id == first).unwrap();
    assert_eq!((stored.call.state, stored.call.outcome), (CallState::Ended, Some(CallOutcome::Missed)));
    assert_eq!(entries(&app, &dm).await, [CallOutcome::Missed]);
}

#[tokio::test]
async fn ending_a_call_twice_leaves_one_entry_and_the_second_end_answers_the_first() {
    let (world, app, dm) = pair().await;
    let id = call_id(&start(&app, "alice", "a1", &dm).await.unwrap());
    calling::accept(&app, &user("bob"), &conn("b1"), &id).await.unwrap();
    world.clock.advance(65_000);
    let by_bob = calling::end(&app, &user("bob"), &conn("b1"), &id).await.unwrap();
    world.clock.advance(1_000);
    let by_alice = calling::end(&app, &user("alice"), &conn("a1"), &id).await.unwrap();
    assert_eq!(by_alice, by_bob);
    let ServerFrame::CallEnded { call } = &by_bob else { panic!() };
    assert_eq!((call.duration_ms, call.ended_by.as_ref()), (Some(65_000), Some(&user("bob"))));
    assert_eq!(entries(&app, &dm).await, [CallOutcome::Answered]);
    assert!(world.calls.mark(&user("alice")).is_none() && world.calls.mark(&user("bob")).is_none());
}

#[tokio::test]
async fn a_signal_to_a_device_that_is_gone_ends_the_call() {
    let (world, app, dm) = pair().await;
    let id = call_id(&start(&app, "alice", "a1", &dm).await.unwrap());
    calling::accept(&app, &user("bob"), &conn("b1"), &id).await.unwrap();
    calling::signal(&app, &user("alice"), &conn("a1"), &id, json!({"type": "offer", "sdp": "v=0"})).await.unwrap();
    assert_eq!(frames(&world, "b1", "callSignal")[0]["signal"]["sdp"], "v=0");

    world.poster.set_gone(&conn("b1"));
    let err = calling::signal(&app, &user("alice"), &conn("a1"), &id, json!({"type": "candidate"})).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    let stored = world.calls.all().pop().unwrap();
    assert_eq!(stored.call.outcome, Some(CallOutcome::Answered));
}

#[tokio::test]
async fn a_device_whose_heartbeats_stop_loses_its_call_when_the_sweep_takes_it_offline() {
    let (world, app, dm) = pair().await;
    let id = call_id(&start(&app, "alice", "a1", &dm).await.unwrap());
    calling::accept(&app, &user("bob"), &conn("b1"), &id).await.unwrap();
    // Bob's phone goes into a tunnel: its socket stays open, its heartbeats stop.
    world.clock.advance(app.settings.presence.window_ms + 1_000);
    chat_domain::presence::heartbeat(&app, &user("alice"), &device(&conn("a1")), false).await.unwrap();
    chat_domain::presence::sweep(&app).await;
    let ended = frames(&world, "a1", "callEnded");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(
        (ended[0]["call"]["outcome"].as_str(), ended[0]["call"]["endedBy"].as_str()),
        (Some("answered"), Some("bob"))
    );
    assert!(world.calls.mark(&user("alice")).is_none(), "alice can call again");
    assert_eq!(entries(&app, &dm).await, [CallOutcome::Answered]);
}

#[tokio::test]
async fn each_side_has_its_own_moves_and_nobody_else_has_any() {
    let (_world, app, dm) = pair().await;
    let id = call_id(&start(&app, "alice", "a1", &dm).await.unwrap());
    let code = |r: Result<ServerFrame, chat_domain::ChatError>| r.unwrap_err().code();
    assert_eq!(code(calling::end(&app, &user("bob"), &conn("b1"), &id).await), ErrorCode::Conflict, "decline instead");
    assert_eq!(code(calling::decline(&app, &user("alice"), &conn("a1"), &id).await), ErrorCode::Forbidden);
    assert_eq!(code(calling::accept(&app, &user("alice"), &conn("a1"), &id).await), ErrorCode::Forbidden);
    assert_eq!(code(calling::accept(&app, &user("carol"), &conn("c1"), &id).await), ErrorCode::NotFound);
    assert_eq!(code(start(&app, "alice", "a2", &dm).await), ErrorCode::Conflict, "one call at a time");
    let declined = calling::decline(&app, &user("bob"), &conn("b1"), &id).await.unwrap();
    assert_eq!(outcome(&declined), Some(CallOutcome::Declined));
}

#[tokio::test]
async fn nobody_calls_into_a_chat_the_other_has_not_joined_nor_across_a_block() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let opened = chat_domain::membership::open_direct(&app, &user("alice"), &user("bob")).await.unwrap();
    let err = start(&app, "alice", "a1", &opened.channel_id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict, "{err}");

    let dm = direct(&app, "alice", "bob").await;
    chat_domain::consent::block(&app, &user("alice"), &user("bob")).await.unwrap();
    assert_eq!(start(&app, "alice", "a1", &dm).await.unwrap_err().code(), ErrorCode::Forbidden, "unblock first");
    assert_eq!(start(&app, "bob", "b1", &dm).await.unwrap_err().code(), ErrorCode::Forbidden);
}

#[tokio::test]
async fn a_callee_with_no_live_device_is_pushed_unless_they_chose_do_not_disturb() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let dm = direct(&app, "alice", "bob").await;
    chat_domain::push::register(&app, &user("bob"), Platform::Fcm, "bob-phone").await.unwrap();
    let id = call_id(&start(&app, "alice", "a1", &dm).await.unwrap());
    let pushed = world.push.publishes();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    let call = pushed[0].notification().call.clone().expect("the call travels with the push");
    assert_eq!(call.call_id, id);
    calling::end(&app, &user("alice"), &conn("a1"), &id).await.unwrap();

    // Bob chose do-not-disturb on a device that has gone since.
    connect(&app, "bob", "b1").await;
    chat_domain::presence::set_presence(&app, &user("bob"), Some(chat_domain::protocol::ChosenState::Dnd), None)
        .await
        .unwrap();
    chat_domain::chat::disconnect(&app, &user("bob"), &conn("b1")).await.unwrap();
    start(&app, "alice", "a1", &dm).await.unwrap();
    assert_eq!(world.push.publishes().len(), 1, "do not disturb: no push");
}

#[test]
fn turn_credentials_are_given_only_with_a_secret() {
    let world = World::new().with_settings(|s| {
        s.calls.stun_urls = vec!["stun:stun.test:3478".into()];
        s.calls.turn_urls = vec!["turn:turn.test:3478".into()];
    });
    let servers = calling::ice_servers(&world.app(), &user("alice"));
    assert_eq!(servers.len(), 1, "no TURN without its secret: {servers:?}");
    let world = world.with_settings(|s| s.calls.turn_secret = Some("s3cret".into()));
    let servers = calling::ice_servers(&world.app(), &user("alice"));
    let username = servers[1].username.clone().unwrap();
    assert_eq!(username, format!("{}:alice", World::START_MS / 1000 + app_ttl(&world)));
    assert_eq!(servers[1].credential.as_deref(), Some(calling::turn_password("s3cret", &username).as_str()));
}

fn app_ttl(world: &World) -> i64 {
    world.settings.calls.turn_credential_ttl_s
}
