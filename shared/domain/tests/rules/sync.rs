//! Sync: a device that was offline names the newest message it has, per channel or one
//! `after` for all, and gets every newer message of its channels, oldest first, in
//! `messages` frames posted to its connection, within a limit; the answer says how far it
//! got in each channel.

use std::collections::BTreeMap;

use chat_domain::ids::{BUCKET_MS, MessageId};
use chat_domain::memory::World;
use chat_domain::protocol::{MAX_FRAME_BYTES, SyncedChannel};
use chat_domain::sync::{self, SyncRequest};
use chat_domain::{App, ErrorCode};

use crate::*;

/// alice and bob with a direct channel and a group; bob syncs from b1.
async fn two_channels() -> (World, App, ChannelId, ChannelId) {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let d = direct(&app, "alice", "bob").await;
    let g = group(&world, &app, "alice", &["bob"]).await;
    (world, app, d, g)
}

async fn fill(world: &World, app: &App, c: &ChannelId, n: usize) -> Vec<Message> {
    let mut sent = Vec::new();
    for i in 0..n {
        world.clock.advance(1);
        sent.push(send(app, "alice", "a1", c, &i.to_string()).await);
    }
    sent
}

fn request(channels: &[(&ChannelId, MessageId)], after: Option<MessageId>, limit: Option<usize>) -> SyncRequest {
    SyncRequest {
        channels: channels.iter().map(|(c, id)| ((*c).clone(), *id)).collect::<BTreeMap<_, _>>(),
        after,
        limit,
        changes: BTreeMap::new(),
    }
}

async fn bob_syncs(app: &App, request: SyncRequest) -> Vec<SyncedChannel> {
    sync::sync(app, &user("bob"), &conn("b1"), request).await.unwrap()
}

/// The texts posted to b1 in `messages` frames for `c`, in order.
fn synced_texts(world: &World, c: &ChannelId) -> Vec<String> {
    frames(world, "b1", "messages")
        .into_iter()
        .filter(|f| f["channelId"] == c.as_str())
        .flat_map(|f| f["messages"].as_array().unwrap().clone())
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_sync_without_any_cursor_is_refused() {
    let (world, app, _d, _g) = two_channels().await;
    let err = sync::sync(&app, &user("bob"), &conn("b1"), request(&[], None, None)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert!(world.poster.posts().is_empty());
}

#[tokio::test]
async fn a_channel_cursor_brings_the_newer_messages_oldest_first() {
    let (world, app, d, _g) = two_channels().await;
    let sent = fill(&world, &app, &d, 5).await;
    let report = bob_syncs(&app, request(&[(&d, sent[1].message_id)], None, None)).await;
    assert_eq!(synced_texts(&world, &d), vec!["2", "3", "4"]);
    assert_eq!(
        report,
        vec![SyncedChannel {
            channel_id: d,
            sent: 3,
            up_to_seq: 5,
            complete: true,
            next_after: None,
            up_to_change: None
        }]
    );
}

#[tokio::test]
async fn after_covers_every_channel_without_its_own_cursor() {
    let (world, app, d, g) = two_channels().await;
    let in_d = fill(&world, &app, &d, 3).await;
    fill(&world, &app, &g, 2).await;
    let report = bob_syncs(&app, request(&[(&d, in_d[1].message_id)], Some(MessageId::ZERO), None)).await;
    assert_eq!(synced_texts(&world, &d), vec!["2"]);
    assert_eq!(synced_texts(&world, &g), vec!["0", "1"]);
    let sent: Vec<(ChannelId, usize)> = report.into_iter().map(|r| (r.channel_id, r.sent)).collect();
    assert_eq!(sent, vec![(d, 1), (g, 2)]);
}

#[tokio::test]
async fn without_after_only_the_named_channels_are_synced() {
    let (world, app, d, g) = two_channels().await;
    fill(&world, &app, &d, 2).await;
    fill(&world, &app, &g, 2).await;
    let report = bob_syncs(&app, request(&[(&g, MessageId::ZERO)], None, None)).await;
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].channel_id, g);
    assert!(synced_texts(&world, &d).is_empty());
}

#[tokio::test]
async fn a_channel_with_nothing_new_posts_nothing_and_is_complete() {
    let (world, app, d, _g) = two_channels().await;
    let sent = fill(&world, &app, &d, 3).await;
    world.poster.clear();
    let report = bob_syncs(&app, request(&[(&d, sent[2].message_id)], None, None)).await;
    assert_eq!(
        report,
        vec![SyncedChannel {
            channel_id: d,
            sent: 0,
            up_to_seq: 3,
            complete: true,
            next_after: None,
            up_to_change: None
        }]
    );
    assert!(world.poster.posts().is_empty());
}

#[tokio::test]
async fn the_limit_stops_a_channel_and_says_where_to_go_on() {
    let (world, app, d, _g) = two_channels().await;
    let sent = fill(&world, &app, &d, 5).await;
    let report = bob_syncs(&app, request(&[(&d, MessageId::ZERO)], None, Some(2))).await;
    assert_eq!(synced_texts(&world, &d), vec!["0", "1"]);
    assert_eq!(
        report,
        vec![SyncedChannel {
            channel_id: d.clone(),
            sent: 2,
            up_to_seq: 2,
            complete: false,
            next_after: Some(sent[1].message_id),
            up_to_change: None
        }]
    );
    let rest = bob_syncs(&app, request(&[(&d, sent[1].message_id)], None, Some(10))).await;
    assert_eq!(rest[0].sent, 3);
    assert_eq!(synced_texts(&world, &d), vec!["0", "1", "2", "3", "4"]);
}

#[tokio::test]
async fn once_the_limit_is_spent_later_channels_are_not_read() {
    let (world, app, d, g) = two_channels().await;
    fill(&world, &app, &d, 3).await;
    fill(&world, &app, &g, 3).await;
    let report = bob_syncs(&app, request(&[], Some(MessageId::ZERO), Some(3))).await;
    // Whichever channel the store names first takes the whole limit; the other is not read.
    let (read, skipped): (Vec<SyncedChannel>, Vec<SyncedChannel>) = report.into_iter().partition(|r| r.sent > 0);
    assert_eq!((read.len(), read[0].sent, read[0].complete), (1, 3, true));
    let skipped_id = skipped[0].channel_id.clone();
    assert_eq!(
        skipped,
        vec![SyncedChannel {
            channel_id: skipped_id.clone(),
            sent: 0,
            up_to_seq: 0,
            complete: false,
            next_after: Some(MessageId::ZERO),
            up_to_change: None
        }]
    );
    assert!(synced_texts(&world, &skipped_id).is_empty());
    assert_eq!(synced_texts(&world, &read[0].channel_id).len(), 3);
}

#[tokio::test]
async fn the_server_caps_the_limit_a_device_asks_for() {
    let (world, _app, d, _g) = two_channels().await;
    let world = world.with_settings(|s| s.sync_max_messages = 3);
    let app = world.app();
    fill(&world, &app, &d, 5).await;
    let report = bob_syncs(&app, request(&[(&d, MessageId::ZERO)], None, Some(500))).await;
    assert_eq!((report[0].sent, report[0].complete), (3, false));
}

#[tokio::test]
async fn a_channel_the_device_is_not_in_is_refused() {
    let (world, app, d, _g) = two_channels().await;
    add_accounts(&world, &["carol"]).await;
    let other = direct(&app, "alice", "carol").await;
    fill(&world, &app, &d, 1).await;
    let err = sync::sync(
        &app,
        &user("bob"),
        &conn("b1"),
        request(&[(&d, MessageId::ZERO), (&other, MessageId::ZERO)], None, None),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(world.poster.delivered_to(&conn("b1")).is_empty());
}

#[tokio::test]
async fn a_sync_reaches_across_buckets() {
    let (world, app, d, _g) = two_channels().await;
    send(&app, "alice", "a1", &d, "long ago").await;
    world.clock.advance(4 * BUCKET_MS);
    send(&app, "alice", "a1", &d, "today").await;
    let report = bob_syncs(&app, request(&[(&d, MessageId::ZERO)], None, None)).await;
    assert_eq!(synced_texts(&world, &d), vec!["long ago", "today"]);
    assert!(report[0].complete);
}

#[tokio::test]
async fn a_long_catch_up_comes_in_frames_that_fit_api_gateway() {
    let (world, app, d, _g) = two_channels().await;
    let heavy = "\"".repeat(30_000); // 60 KB each in JSON
    for _ in 0..5 {
        send(&app, "alice", "a1", &d, &heavy).await;
    }
    world.poster.clear();
    bob_syncs(&app, request(&[(&d, MessageId::ZERO)], None, None)).await;
    let posts = world.poster.posts();
    assert!(posts.len() >= 3, "{} frames", posts.len());
    assert!(posts.iter().all(|p| p.frame.len() <= MAX_FRAME_BYTES), "every frame fits");
    assert_eq!(synced_texts(&world, &d).len(), 5);
}

#[tokio::test]
async fn a_connection_that_closes_during_a_sync_ends_it() {
    let (world, app, d, _g) = two_channels().await;
    fill(&world, &app, &d, 2).await;
    world.poster.set_gone(&conn("b1"));
    let err =
        sync::sync(&app, &user("bob"), &conn("b1"), request(&[(&d, MessageId::ZERO)], None, None)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn a_deleted_message_is_synced_in_its_place_without_text() {
    let (world, app, d, _g) = two_channels().await;
    let sent = fill(&world, &app, &d, 3).await;
    chat_domain::chat::delete_message(&app, &user("alice"), &conn("a1"), &d, sent[1].message_id).await.unwrap();
    bob_syncs(&app, request(&[(&d, MessageId::ZERO)], None, None)).await;
    assert_eq!(synced_texts(&world, &d), vec!["0", "", "2"]);
}

/// alice's messages 0-4 in `d`; bob's device has them all and every change up to now.
async fn bob_up_to_date(world: &World, app: &App, d: &ChannelId) -> (Vec<Message>, u64) {
    let sent = fill(world, app, d, 5).await;
    let changes = app.channels().meta(d).await.unwrap().unwrap().change_seq;
    (sent, changes)
}

fn with_changes(mut request: SyncRequest, c: &ChannelId, after: u64) -> SyncRequest {
    request.changes.insert(c.clone(), after);
    request
}

/// The messages posted to b1 for `c`, as (seq, text, deleted).
fn synced_messages(world: &World, c: &ChannelId) -> Vec<(u64, String, bool)> {
    frames(world, "b1", "messages")
        .into_iter()
        .filter(|f| f["channelId"] == c.as_str())
        .flat_map(|f| f["messages"].as_array().unwrap().clone())
        .map(|m| (m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap().to_owned(), m["deleted"] == true))
        .collect()
}

#[tokio::test]
async fn edits_and_deletions_of_old_messages_reach_a_device_that_was_offline() {
    let (world, app, d, _g) = two_channels().await;
    let (sent, changes) = bob_up_to_date(&world, &app, &d).await;
    world.clock.advance(1_000);
    chat::edit_message(&app, &user("alice"), &conn("a1"), &d, sent[1].message_id, "one, edited".into()).await.unwrap();
    chat::delete_message(&app, &user("alice"), &conn("a1"), &d, sent[2].message_id).await.unwrap();
    chat::edit_message(&app, &user("alice"), &conn("a1"), &d, sent[1].message_id, "one, again".into()).await.unwrap();
    let request = with_changes(request(&[(&d, sent[4].message_id)], None, None), &d, changes);
    let report = bob_syncs(&app, request).await;
    assert_eq!(synced_messages(&world, &d), vec![(3, String::new(), true), (2, "one, again".into(), false)]);
    assert_eq!(report[0].up_to_change, Some(changes), "change 1 was replaced by change 3: a gap, still recent");
    assert!(report[0].complete);
    // Once the gap is older than any write can take, the cursor steps over it.
    world.clock.advance(sync::CHANGE_SETTLE_MS + 1);
    let report = bob_syncs(&app, with_changes(request_for(&d, sent[4].message_id), &d, changes)).await;
    assert_eq!(report[0].up_to_change, Some(changes + 3));
    // Nothing since: the meta item says so, nothing is read or sent.
    let before = frames(&world, "b1", "messages").len();
    let report = bob_syncs(&app, with_changes(request_for(&d, sent[4].message_id), &d, changes + 3)).await;
    assert_eq!(report[0].up_to_change, Some(changes + 3));
    assert_eq!(frames(&world, "b1", "messages").len(), before);
}

fn request_for(c: &ChannelId, newest: MessageId) -> SyncRequest {
    request(&[(c, newest)], None, None)
}

#[tokio::test]
async fn a_change_position_left_unused_holds_the_cursor_only_until_it_settles() {
    let (world, app, d, _g) = two_channels().await;
    let (sent, changes) = bob_up_to_date(&world, &app, &d).await;
    // bob may not edit alice's message: refused before any change position is spent.
    let err = chat::edit_message(&app, &user("bob"), &conn("b1"), &d, sent[0].message_id, "mine now".into()).await;
    assert_eq!(err.unwrap_err().code(), ErrorCode::Forbidden);
    assert_eq!(app.channels().meta(&d).await.unwrap().unwrap().change_seq, changes);
    // A change whose Lambda died between its claim and its write.
    app.messages().claim_change(&d, app.now_ms()).await.unwrap().unwrap();
    chat::edit_message(&app, &user("alice"), &conn("a1"), &d, sent[3].message_id, "three, edited".into())
        .await
        .unwrap();
    let report = bob_syncs(&app, with_changes(request_for(&d, sent[4].message_id), &d, changes)).await;
    assert_eq!(synced_messages(&world, &d), vec![(4, "three, edited".into(), false)]);
    assert_eq!(report[0].up_to_change, Some(changes), "position 1 might still be written");
    world.clock.advance(sync::CHANGE_SETTLE_MS + 1);
    let report = bob_syncs(&app, with_changes(request_for(&d, sent[4].message_id), &d, changes)).await;
    assert_eq!(report[0].up_to_change, Some(changes + 2));
}

#[tokio::test]
async fn change_cursors_count_against_the_limit_and_name_only_ones_own_channels() {
    let (world, app, d, _g) = two_channels().await;
    let (sent, changes) = bob_up_to_date(&world, &app, &d).await;
    for (i, message) in sent.iter().enumerate() {
        chat::edit_message(&app, &user("alice"), &conn("a1"), &d, message.message_id, format!("{i}!")).await.unwrap();
    }
    let report = bob_syncs(&app, with_changes(request(&[], None, Some(3)), &d, changes)).await;
    assert_eq!(report[0].sent, 3);
    assert!(!report[0].complete);
    assert_eq!(report[0].up_to_change, Some(changes + 3));
    let report = bob_syncs(&app, with_changes(request(&[], None, None), &d, changes + 3)).await;
    assert_eq!(report[0].up_to_change, Some(changes + 5));
    let stranger = group(&world, &app, "alice", &[]).await;
    let err = sync::sync(&app, &user("bob"), &conn("b1"), with_changes(request(&[], None, None), &stranger, 0)).await;
    assert_eq!(err.unwrap_err().code(), ErrorCode::Forbidden);
}
