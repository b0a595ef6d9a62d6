//! Delivery: a stored event reaches every live connection of the channel's members but the
//! one it came from; members with no live connection (not muted, not the author) get a
//! push; a connection that answers Gone is forgotten; failures never fail the send.

use std::collections::BTreeSet;

use chat_domain::chat;
use chat_domain::membership;
use chat_domain::memory::{Publish, World};
use chat_domain::ports::PushMode;
use chat_domain::protocol::TypingState;
use chat_domain::{App, ErrorCode};

use crate::*;

/// alice (connections a1, a2), bob (b1) and carol (no connection) in one group, pushes by
/// topic; nothing recorded yet.
async fn trio() -> (World, App, ChannelId) {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    world.push.set_mode(PushMode::Topic);
    let c = group(&world, &app, "alice", &["bob", "carol"]).await;
    connect(&app, "alice", "a1").await;
    connect(&app, "alice", "a2").await;
    connect(&app, "bob", "b1").await;
    world.poster.clear();
    (world, app, c)
}

fn pushed_users(world: &World) -> BTreeSet<String> {
    world
        .push
        .publishes()
        .into_iter()
        .map(|p| match p {
            Publish::Topic { user, .. } => user.to_string(),
            Publish::Device { endpoint, .. } => endpoint,
        })
        .collect()
}

#[tokio::test]
async fn a_new_message_reaches_every_other_live_connection_but_not_its_origin() {
    let (world, app, c) = trio().await;
    let m = send(&app, "alice", "a1", &c, "hello").await;
    for connection in ["a2", "b1"] {
        let got = frames(&world, connection, "message");
        assert_eq!(got.len(), 1, "{connection}");
        assert_eq!(got[0]["message"]["messageId"], m.message_id.to_string());
    }
    assert!(frames(&world, "a1", "message").is_empty(), "the origin gets the ack instead");
}

#[tokio::test]
async fn a_send_that_pushes_posts_its_ack_beside_the_live_events_and_the_route_answers_nothing() {
    let (world, app, c) = trio().await;
    // carol has no live connection: she is pushed, and alice is not kept waiting for it.
    let sent = send_with(&app, "alice", "a1", &c, &fresh_id(), "hello", vec![]).await.unwrap();
    assert!(sent.ack_posted);
    let acks = frames(&world, "a1", "ack");
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0], serde_json::from_str::<serde_json::Value>(&sent.ack).unwrap());
    assert_eq!(pushed_users(&world), BTreeSet::from(["carol".to_owned()]));

    // Everyone live: nobody is pushed, the ack is the route's answer.
    connect(&app, "carol", "c1").await;
    world.poster.clear();
    let sent = send_with(&app, "alice", "a1", &c, &fresh_id(), "again", vec![]).await.unwrap();
    assert!(!sent.ack_posted);
    assert!(frames(&world, "a1", "ack").is_empty());

    // An ack that cannot be posted (the sender's socket is failing) is answered instead.
    world.poster.set_failing(&conn("a1"), true);
    chat::disconnect(&app, &user("carol"), &conn("c1")).await.unwrap();
    let sent = send_with(&app, "alice", "a1", &c, &fresh_id(), "third", vec![]).await.unwrap();
    assert!(!sent.ack_posted, "the route answers it");
}

#[tokio::test]
async fn a_send_whose_fan_out_takes_more_than_one_round_of_posts_does_not_keep_its_sender_waiting() {
    let names: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (world, app) = world_with(&names).await;
    let c = group(&world, &app, names[0], &names[1..]).await;
    for name in &names {
        connect(&app, name, &format!("{name}-1")).await;
    }
    world.poster.clear();
    let sent = send_with(&app, "m0", "m0-1", &c, &fresh_id(), "everyone here?", vec![]).await.unwrap();
    assert!(sent.ack_posted, "39 posts are two rounds of 32");
    assert_eq!(frames(&world, "m0-1", "ack").len(), 1);
    assert_eq!(frames(&world, "m39-1", "message").len(), 1);
}

#[tokio::test]
async fn pushes_go_only_to_members_with_no_live_connection() {
    let (world, app, c) = trio().await;
    send(&app, "bob", "b1", &c, "hello").await;
    assert_eq!(pushed_users(&world), BTreeSet::from(["carol".to_owned()]));
}

#[tokio::test]
async fn a_member_who_muted_the_channel_gets_no_push() {
    let (world, app, c) = trio().await;
    membership::set_muted(&app, &user("carol"), &c, true).await.unwrap();
    send(&app, "bob", "b1", &c, "hello").await;
    assert!(world.push.publishes().is_empty());
    membership::set_muted(&app, &user("carol"), &c, false).await.unwrap();
    send(&app, "bob", "b1", &c, "again").await;
    assert_eq!(pushed_users(&world), BTreeSet::from(["carol".to_owned()]));
}

#[tokio::test]
async fn the_author_gets_no_push_of_their_own_message_even_with_no_live_connection() {
    let (world, app, c) = trio().await;
    // carol sends through a connection that was never recorded: she has no live one.
    send(&app, "carol", "unrecorded", &c, "from the shadows").await;
    assert!(world.push.publishes().is_empty(), "{:?}", world.push.publishes());
    assert_eq!(frames(&world, "b1", "message").len(), 1);
}

#[tokio::test]
async fn invited_users_get_neither_messages_nor_pushes_before_they_accept() {
    let (world, app, c) = trio().await;
    add_accounts(&world, &["dave"]).await;
    membership::add_members(&app, &user("alice"), &c, vec![user("dave")], chat_domain::model::MemberRole::Member)
        .await
        .unwrap();
    connect(&app, "dave", "d1").await;
    send(&app, "alice", "a1", &c, "members only").await;
    assert!(frames(&world, "d1", "message").is_empty());
    assert!(!pushed_users(&world).contains("dave"));
}

#[tokio::test]
async fn a_connection_that_answers_gone_is_forgotten_and_the_send_succeeds() {
    let (world, app, c) = trio().await;
    world.poster.set_gone(&conn("b1"));
    let m = send(&app, "alice", "a1", &c, "hello").await;
    assert_eq!(m.seq, 1);
    let record = world.presence.record(&user("bob")).unwrap();
    assert!(!record.conns.contains_key("b1"), "{record:?}");
    assert!(world.presence.record(&user("alice")).unwrap().conns.contains_key("a2"));
}

#[tokio::test]
async fn a_failing_connection_does_not_fail_the_send_and_is_kept() {
    let (world, app, c) = trio().await;
    world.poster.set_failing(&conn("b1"), true);
    let m = send(&app, "alice", "a1", &c, "hello").await;
    assert_eq!(world.messages.all(&c), vec![m]);
    assert!(world.presence.record(&user("bob")).unwrap().conns.contains_key("b1"));
    assert_eq!(frames(&world, "a2", "message").len(), 1, "the others still get it");
}

#[tokio::test]
async fn a_connection_past_its_lifetime_gets_nothing_and_its_user_is_pushed() {
    let (world, app, c) = trio().await;
    world.clock.advance(LIFETIME);
    connect(&app, "alice", "a3").await;
    world.poster.clear();
    send(&app, "alice", "a3", &c, "hello").await;
    assert!(world.poster.posts().iter().all(|p| p.connection != conn("b1")));
    assert_eq!(pushed_users(&world), BTreeSet::from(["bob".to_owned(), "carol".to_owned()]));
}

#[tokio::test]
async fn a_retried_send_is_delivered_again() {
    let (world, app, c) = trio().await;
    let id = fresh_id();
    send_with(&app, "alice", "a1", &c, &id, "hello", vec![]).await.unwrap();
    send_with(&app, "alice", "a1", &c, &id, "hello", vec![]).await.unwrap();
    let got = frames(&world, "b1", "message");
    assert_eq!(got.len(), 2, "at least once");
    assert_eq!(got[0], got[1], "the same message both times");
}

#[tokio::test]
async fn an_edit_reaches_the_other_members_but_not_its_origin() {
    let (world, app, c) = trio().await;
    let m = send(&app, "alice", "a1", &c, "draft").await;
    world.poster.clear();
    chat::edit_message(&app, &user("alice"), &conn("a1"), &c, m.message_id, "final".into()).await.unwrap();
    for connection in ["a2", "b1"] {
        let updated = frames(&world, connection, "messageUpdated");
        assert_eq!(updated.len(), 1, "{connection}");
        assert_eq!(updated[0]["message"]["text"], "final");
    }
    assert!(world.poster.delivered_to(&conn("a1")).is_empty());
}

#[tokio::test]
async fn a_delete_reaches_the_other_members_with_the_seq_it_leaves() {
    let (world, app, c) = trio().await;
    let m = send(&app, "alice", "a1", &c, "oops").await;
    world.poster.clear();
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, m.message_id).await.unwrap();
    let deleted = frames(&world, "b1", "messageDeleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        (deleted[0]["seq"].as_u64(), deleted[0]["messageId"].as_str()),
        (Some(1), Some(&*m.message_id.to_string()))
    );
    assert!(world.poster.delivered_to(&conn("a1")).is_empty());
}

#[tokio::test]
async fn typing_reaches_the_other_members_only_and_stores_nothing() {
    let (world, app, c) = trio().await;
    chat::typing(&app, &user("alice"), &c, TypingState::Start).await.unwrap();
    let typing = frames(&world, "b1", "typing");
    assert_eq!(typing.len(), 1);
    assert_eq!((typing[0]["userId"].as_str(), typing[0]["state"].as_str()), (Some("alice"), Some("start")));
    assert!(frames(&world, "a1", "typing").is_empty() && frames(&world, "a2", "typing").is_empty());
    assert_eq!(world.messages.count(), 0);
    assert!(world.push.publishes().is_empty());
}

#[tokio::test]
async fn a_message_too_big_for_a_frame_is_refused_before_anything_is_stored() {
    let (world, app, c) = trio().await;
    // 70 000 quotes are 140 000 bytes once escaped: over API Gateway's 128 KB.
    let err = send_with(&app, "alice", "a1", &c, &fresh_id(), &"\"".repeat(70_000), vec![]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge);
    assert_eq!(world.messages.count(), 0);
    assert!(world.poster.posts().is_empty());
}

#[tokio::test]
async fn the_ack_carries_the_stored_message() {
    let (world, app, c) = trio().await;
    let sent = send_with(&app, "bob", "b1", &c, &fresh_id(), "stored", vec![]).await.unwrap();
    assert_eq!(world.messages.all(&c), vec![sent.message.clone()]);
    assert_eq!(sent.message.author_id, user("bob"));
}
