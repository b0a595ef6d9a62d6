//! Unread counts and receipts: a member's unread count is the messages after their read
//! position that were not deleted; sending reads up to one's own message; a receipt only
//! moves forward and reaches the other members and the reader's other devices; deleted
//! seqs everyone has read past stop being tracked.

use chat_domain::chat::{self, MAX_TRACKED_DELETIONS};
use chat_domain::ids::MessageId;
use chat_domain::membership;
use chat_domain::memory::World;
use chat_domain::model::ChannelKind;
use chat_domain::ports::ChannelMeta;
use chat_domain::{App, ErrorCode};

use crate::*;

fn meta(seq: u64, deleted: &[u64]) -> ChannelMeta {
    let mut meta = ChannelMeta::new(channel("c"), ChannelKind::Group, None, 0);
    meta.seq = seq;
    meta.deleted_seqs = deleted.to_vec();
    meta
}

async fn unread(app: &App, name: &str, c: &ChannelId) -> u64 {
    let list = membership::list_channels(app, &user(name)).await.unwrap();
    list.into_iter().find(|s| &s.channel_id == c).expect("in the list").unread
}

async fn deleted_seqs(app: &App, c: &ChannelId) -> Vec<u64> {
    let mut seqs = app.channels().meta(c).await.unwrap().unwrap().deleted_seqs;
    seqs.sort_unstable();
    seqs
}

/// alice and bob in a group; alice sent `n` messages.
async fn sent_by_alice(n: usize) -> (World, App, ChannelId, Vec<Message>) {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let mut sent = Vec::new();
    for i in 0..n {
        sent.push(send(&app, "alice", "a1", &c, &i.to_string()).await);
    }
    (world, app, c, sent)
}

#[test]
fn unread_counts_the_messages_after_the_read_position() {
    assert_eq!(meta(10, &[]).unread_after(4), 6);
    assert_eq!(meta(10, &[]).unread_after(10), 0);
    assert_eq!(meta(10, &[]).unread_after(0), 10);
}

#[test]
fn deleted_messages_after_the_read_position_do_not_count() {
    assert_eq!(meta(10, &[5, 7, 10]).unread_after(4), 3);
}

#[test]
fn deleted_messages_at_or_before_the_read_position_change_nothing() {
    assert_eq!(meta(10, &[2, 4]).unread_after(4), 6);
}

#[test]
fn unread_never_goes_below_zero() {
    assert_eq!(meta(3, &[]).unread_after(5), 0);
    assert_eq!(meta(3, &[1, 2, 3]).unread_after(1), 0);
}

async fn listed_read_seq(app: &App, name: &str, c: &ChannelId) -> u64 {
    let list = membership::list_channels(app, &user(name)).await.unwrap();
    list.into_iter().find(|s| &s.channel_id == c).expect("in the list").last_read_seq
}

#[tokio::test]
async fn ones_own_messages_count_as_read() {
    let (_world, app, c, sent) = sent_by_alice(3).await;
    assert_eq!(unread(&app, "alice", &c).await, 0);
    assert_eq!(listed_read_seq(&app, "alice", &c).await, sent[2].seq);
    assert_eq!(
        read_seq(&app, &c, "alice").await,
        0,
        "a send writes no read position: the list reads it from the messages"
    );
    assert_eq!(unread(&app, "bob", &c).await, 3);
}

#[tokio::test]
async fn what_others_sent_after_ones_own_message_is_unread_and_deleted_ones_are_not() {
    let (_world, app, c, sent) = sent_by_alice(2).await;
    let mut replies = Vec::new();
    for text in ["one", "two", "three"] {
        replies.push(send(&app, "bob", "b1", &c, text).await);
    }
    chat::delete_message(&app, &user("bob"), &conn("b1"), &c, replies[1].message_id).await.unwrap();
    assert_eq!(unread(&app, "alice", &c).await, 2);
    assert_eq!(listed_read_seq(&app, "alice", &c).await, sent[1].seq);
    assert_eq!(unread(&app, "bob", &c).await, 0);
    send(&app, "alice", "a1", &c, "and me again").await;
    assert_eq!(unread(&app, "alice", &c).await, 0);
    assert_eq!(unread(&app, "bob", &c).await, 1);
}

#[tokio::test]
async fn past_the_messages_a_list_reads_the_stored_count_stands() {
    let (_world, app, c, _sent) = sent_by_alice(1).await;
    for i in 0..membership::UNREAD_SCAN + 5 {
        send(&app, "bob", "b1", &c, &format!("m{i}")).await;
    }
    // Alice's own message is further back than a list reads: it counts as unread too.
    assert_eq!(unread(&app, "alice", &c).await, membership::UNREAD_SCAN as u64 + 6);
    assert_eq!(unread(&app, "bob", &c).await, 0);
}

#[tokio::test]
async fn marking_read_leaves_unread_what_came_after() {
    let (_world, app, c, sent) = sent_by_alice(5).await;
    chat::mark_read(&app, &user("bob"), &conn("b1"), &c, sent[1].message_id).await.unwrap();
    assert_eq!(unread(&app, "bob", &c).await, 3);
    let summary = membership::list_channels(&app, &user("bob")).await.unwrap();
    assert_eq!(summary[0].last_read_seq, 2);
}

#[tokio::test]
async fn a_receipt_never_moves_the_read_position_back() {
    let (_world, app, c, sent) = sent_by_alice(5).await;
    chat::mark_read(&app, &user("bob"), &conn("b1"), &c, sent[3].message_id).await.unwrap();
    let receipt = chat::mark_read(&app, &user("bob"), &conn("b1"), &c, sent[1].message_id).await.unwrap();
    assert_eq!(read_seq(&app, &c, "bob").await, 4);
    assert_eq!(unread(&app, "bob", &c).await, 1);
    let answered = serde_json::to_value(&receipt).unwrap();
    assert_eq!(answered["seq"], 2, "the answer is the receipt of what was asked");
}

#[tokio::test]
async fn a_receipt_that_lost_a_race_to_a_newer_one_does_not_move_the_position_back() {
    let (_world, app, c, sent) = sent_by_alice(5).await;
    // Both read the roster at 0; the newer one is written first.
    assert!(app.channels().advance_read(&c, &user("bob"), 4, sent[3].message_id).await.unwrap());
    assert!(!app.channels().advance_read(&c, &user("bob"), 2, sent[1].message_id).await.unwrap());
    assert_eq!(read_seq(&app, &c, "bob").await, 4);
    let membership = &app.channels().memberships(&user("bob")).await.unwrap()[0];
    assert_eq!(membership.last_read_id, sent[3].message_id);
}

#[tokio::test]
async fn a_receipt_reaches_the_other_members_and_the_readers_other_devices_but_not_its_origin() {
    let (world, app, c, sent) = sent_by_alice(2).await;
    connect(&app, "alice", "a1").await;
    connect(&app, "bob", "b1").await;
    connect(&app, "bob", "b2").await;
    chat::mark_read(&app, &user("bob"), &conn("b1"), &c, sent[1].message_id).await.unwrap();
    for connection in ["a1", "b2"] {
        let receipts = frames(&world, connection, "receipt");
        assert_eq!(receipts.len(), 1, "{connection}");
        assert_eq!((receipts[0]["userId"].as_str(), receipts[0]["seq"].as_u64()), (Some("bob"), Some(2)));
    }
    assert!(frames(&world, "b1", "receipt").is_empty());
}

#[tokio::test]
async fn an_older_receipt_tells_nobody() {
    let (world, app, c, sent) = sent_by_alice(3).await;
    connect(&app, "alice", "a1").await;
    chat::mark_read(&app, &user("bob"), &conn("b1"), &c, sent[2].message_id).await.unwrap();
    world.poster.clear();
    chat::mark_read(&app, &user("bob"), &conn("b1"), &c, sent[0].message_id).await.unwrap();
    chat::mark_read(&app, &user("bob"), &conn("b1"), &c, sent[2].message_id).await.unwrap();
    assert!(frames(&world, "a1", "receipt").is_empty());
}

#[tokio::test]
async fn marking_read_a_message_that_does_not_exist_is_not_found() {
    let (_world, app, c, _sent) = sent_by_alice(1).await;
    let err = chat::mark_read(&app, &user("bob"), &conn("b1"), &c, MessageId::from_u64(7)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert_eq!(read_seq(&app, &c, "bob").await, 0);
}

#[tokio::test]
async fn a_deleted_unread_message_stops_counting() {
    let (_world, app, c, sent) = sent_by_alice(4).await;
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, sent[2].message_id).await.unwrap();
    assert_eq!(unread(&app, "bob", &c).await, 3);
    assert_eq!(unread(&app, "alice", &c).await, 0);
}

#[tokio::test]
async fn a_deletion_everyone_has_read_past_is_not_tracked() {
    let (_world, app, c, sent) = sent_by_alice(3).await;
    chat::mark_read(&app, &user("bob"), &conn("b1"), &c, sent[2].message_id).await.unwrap();
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, sent[1].message_id).await.unwrap();
    assert!(deleted_seqs(&app, &c).await.is_empty());
    assert_eq!(unread(&app, "bob", &c).await, 0);
}

#[tokio::test]
async fn a_deletion_someone_has_not_read_is_tracked() {
    let (_world, app, c, sent) = sent_by_alice(3).await;
    chat::mark_read(&app, &user("bob"), &conn("b1"), &c, sent[0].message_id).await.unwrap();
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, sent[1].message_id).await.unwrap();
    assert_eq!(deleted_seqs(&app, &c).await, vec![2]);
    assert_eq!(unread(&app, "bob", &c).await, 1);
}

#[tokio::test]
async fn tracked_deletions_go_once_everyone_has_read_past_them() {
    let (_world, app, c, sent) = sent_by_alice(4).await;
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, sent[0].message_id).await.unwrap();
    assert_eq!(deleted_seqs(&app, &c).await, vec![1]);
    chat::mark_read(&app, &user("bob"), &conn("b1"), &c, sent[2].message_id).await.unwrap();
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, sent[3].message_id).await.unwrap();
    assert_eq!(deleted_seqs(&app, &c).await, vec![4], "seq 1 is read past by all; 4 is not");
    assert_eq!(unread(&app, "bob", &c).await, 0);
}

#[tokio::test]
async fn the_deletion_record_stays_bounded_when_someone_never_reads() {
    let n = MAX_TRACKED_DELETIONS + 2;
    let (_world, app, c, sent) = sent_by_alice(n).await;
    for message in &sent[..MAX_TRACKED_DELETIONS] {
        app.messages().soft_delete(message, None, 1, app.now_ms()).await.unwrap().unwrap();
    }
    assert_eq!(deleted_seqs(&app, &c).await.len(), MAX_TRACKED_DELETIONS);
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, sent[n - 1].message_id).await.unwrap();
    let tracked = deleted_seqs(&app, &c).await;
    assert_eq!(tracked.len(), MAX_TRACKED_DELETIONS);
    assert_eq!((tracked[0], tracked[tracked.len() - 1]), (2, n as u64), "the oldest went to make room");
}
