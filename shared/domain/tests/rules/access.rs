//! Access: only members read, send and see a channel (refused as if it did not exist);
//! only the author edits; the author, or a group's owner or admins, delete.

use chat_domain::chat;
use chat_domain::history::{self, HistoryQuery};
use chat_domain::ids::MessageId;
use chat_domain::membership;
use chat_domain::model::MemberRole;
use chat_domain::protocol::TypingState;
use chat_domain::{ChatError, ErrorCode};

use crate::*;

/// The refusal's text with the channel id taken out.
fn without_channel(err: &ChatError, c: &ChannelId) -> (ErrorCode, String) {
    (err.code(), err.to_string().replace(c.as_str(), "<channel>"))
}

#[tokio::test]
async fn a_non_member_is_refused_exactly_as_for_a_channel_that_does_not_exist() {
    let (world, app) = world_with(&["alice", "bob", "mallory"]).await;
    let real = group(&world, &app, "alice", &["bob"]).await;
    let missing = channel("g-does-not-exist");
    let to_real = send_with(&app, "mallory", "m1", &real, &fresh_id(), "hi", vec![]).await.unwrap_err();
    let to_missing = send_with(&app, "mallory", "m1", &missing, &fresh_id(), "hi", vec![]).await.unwrap_err();
    assert_eq!(to_real.code(), ErrorCode::Forbidden);
    assert_eq!(without_channel(&to_real, &real), without_channel(&to_missing, &missing));
    assert_eq!(world.messages.count(), 0);
}

#[tokio::test]
async fn a_non_member_reads_no_history_and_no_details() {
    let (world, app) = world_with(&["alice", "bob", "mallory"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    send(&app, "alice", "a1", &c, "secret").await;
    let err = history::history(&app, &user("mallory"), &c, HistoryQuery::default()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    let err = membership::channel_details(&app, &user("mallory"), &c).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert_eq!(history::history(&app, &user("bob"), &c, HistoryQuery::default()).await.unwrap().messages.len(), 1);
}

#[tokio::test]
async fn an_invited_user_is_not_a_member_until_they_accept() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let view = membership::create_group(&app, &user("alice"), "team", vec![user("bob")]).await.unwrap();
    let c = view.channel_id;
    let err = send_with(&app, "bob", "b1", &c, &fresh_id(), "early", vec![]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    chat_domain::consent::accept(&app, &user("bob"), &c).await.unwrap();
    assert_eq!(send(&app, "bob", "b1", &c, "now").await.seq, 1);
}

#[tokio::test]
async fn a_removed_member_can_no_longer_send_or_read() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    membership::remove_member(&app, &user("alice"), &c, &user("bob")).await.unwrap();
    let err = send_with(&app, "bob", "b1", &c, &fresh_id(), "still here?", vec![]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    let err = history::history(&app, &user("bob"), &c, HistoryQuery::default()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
}

#[tokio::test]
async fn non_members_can_neither_type_nor_mark_read() {
    let (world, app) = world_with(&["alice", "bob", "mallory"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let m = send(&app, "alice", "a1", &c, "hi").await;
    let err = chat::typing(&app, &user("mallory"), &c, TypingState::Start).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    let err = chat::mark_read(&app, &user("mallory"), &conn("m1"), &c, m.message_id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
}

#[tokio::test]
async fn only_the_author_edits() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let m = send(&app, "bob", "b1", &c, "bob's words").await;
    // Not even the owner edits someone else's message.
    let err = chat::edit_message(&app, &user("alice"), &conn("a1"), &c, m.message_id, "alice's words".into())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert_eq!(texts(&world.messages.all(&c)), vec!["bob's words"]);
    chat::edit_message(&app, &user("bob"), &conn("b1"), &c, m.message_id, "bob's better words".into()).await.unwrap();
    let stored = &world.messages.all(&c)[0];
    assert_eq!(stored.text, "bob's better words");
    assert_eq!(stored.edited_at, Some(app.now_ms()));
}

#[tokio::test]
async fn a_deleted_message_cannot_be_edited() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let m = send(&app, "alice", "a1", &c, "oops").await;
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, m.message_id).await.unwrap();
    let err = chat::edit_message(&app, &user("alice"), &conn("a1"), &c, m.message_id, "back".into()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    let stored = app.messages().get(&c, m.message_id).await.unwrap().unwrap();
    assert!(stored.deleted && stored.text.is_empty());
}

#[tokio::test]
async fn editing_a_message_that_does_not_exist_is_not_found() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let err = chat::edit_message(&app, &user("alice"), &conn("a1"), &c, MessageId::from_u64(42), "x".into())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn the_author_deletes_their_own_message() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let m = send(&app, "bob", "b1", &c, "mine").await;
    chat::delete_message(&app, &user("bob"), &conn("b1"), &c, m.message_id).await.unwrap();
    let stored = &world.messages.all(&c)[0];
    assert!(stored.deleted);
    assert_eq!((stored.seq, stored.message_id, stored.text.as_str()), (1, m.message_id, ""), "keeps its place");
}

async fn role_deletes_a_members_message(role: MemberRole) -> Result<(), ChatError> {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let view = membership::create_group(&app, &user("alice"), "team", vec![user("carol")]).await.unwrap();
    let c = view.channel_id;
    chat_domain::consent::accept(&app, &user("carol"), &c).await.unwrap();
    membership::add_members(&app, &user("alice"), &c, vec![user("bob")], role).await.unwrap();
    chat_domain::consent::accept(&app, &user("bob"), &c).await.unwrap();
    let m = send(&app, "carol", "c1", &c, "carol's").await;
    let deleted = chat::delete_message(&app, &user("bob"), &conn("b1"), &c, m.message_id).await.map(|_| ());
    assert_eq!(world.messages.all(&c)[0].deleted, deleted.is_ok());
    deleted
}

#[tokio::test]
async fn a_group_admin_deletes_anyones_message() {
    role_deletes_a_members_message(MemberRole::Admin).await.unwrap();
}

#[tokio::test]
async fn a_plain_member_cannot_delete_someone_elses_message() {
    let err = role_deletes_a_members_message(MemberRole::Member).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
}

#[tokio::test]
async fn the_group_owner_deletes_anyones_message() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let m = send(&app, "bob", "b1", &c, "bob's").await;
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, m.message_id).await.unwrap();
    assert!(world.messages.all(&c)[0].deleted);
}

#[tokio::test]
async fn nobody_deletes_the_other_persons_message_in_a_direct_channel() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let m = send(&app, "bob", "b1", &c, "bob's").await;
    let err = chat::delete_message(&app, &user("alice"), &conn("a1"), &c, m.message_id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(!world.messages.all(&c)[0].deleted);
}

#[tokio::test]
async fn deleting_a_deleted_message_again_answers_the_same_and_changes_nothing() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let m = send(&app, "alice", "a1", &c, "twice").await;
    let first = chat::delete_message(&app, &user("alice"), &conn("a1"), &c, m.message_id).await.unwrap();
    let meta = app.channels().meta(&c).await.unwrap().unwrap();
    world.poster.clear();
    let second = chat::delete_message(&app, &user("alice"), &conn("a1"), &c, m.message_id).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(app.channels().meta(&c).await.unwrap().unwrap(), meta);
    assert!(world.poster.posts().is_empty(), "a retry tells nobody again");
}

#[tokio::test]
async fn only_the_owner_makes_admins() {
    let (world, app) = world_with(&["alice", "bob", "carol", "dave"]).await;
    let c = group(&world, &app, "alice", &[]).await;
    membership::add_members(&app, &user("alice"), &c, vec![user("bob")], MemberRole::Admin).await.unwrap();
    chat_domain::consent::accept(&app, &user("bob"), &c).await.unwrap();
    let err =
        membership::add_members(&app, &user("bob"), &c, vec![user("carol")], MemberRole::Admin).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(chat_domain::consent::pending(&app, &user("carol")).await.unwrap().is_empty());
    membership::add_members(&app, &user("bob"), &c, vec![user("dave")], MemberRole::Member).await.unwrap();
    assert_eq!(chat_domain::consent::pending(&app, &user("dave")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn plain_members_add_nobody() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let err =
        membership::add_members(&app, &user("bob"), &c, vec![user("carol")], MemberRole::Member).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(chat_domain::consent::pending(&app, &user("carol")).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_admin_removes_members_but_not_other_admins_or_the_owner() {
    let (world, app) = world_with(&["alice", "bob", "carol", "dave"]).await;
    let c = group(&world, &app, "alice", &["dave"]).await;
    for admin in ["bob", "carol"] {
        membership::add_members(&app, &user("alice"), &c, vec![user(admin)], MemberRole::Admin).await.unwrap();
        chat_domain::consent::accept(&app, &user(admin), &c).await.unwrap();
    }
    for target in ["carol", "alice"] {
        let err = membership::remove_member(&app, &user("bob"), &c, &user(target)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Forbidden, "{target}");
    }
    membership::remove_member(&app, &user("bob"), &c, &user("dave")).await.unwrap();
    let members: Vec<String> = membership::channel_details(&app, &user("alice"), &c)
        .await
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.user_id.to_string())
        .collect();
    assert_eq!(members, vec!["alice", "bob", "carol"]);
}

#[tokio::test]
async fn a_plain_member_removes_nobody_else() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let c = group(&world, &app, "alice", &["bob", "carol"]).await;
    let err = membership::remove_member(&app, &user("bob"), &c, &user("carol")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert_eq!(member_count(&app, &c).await, 3);
}
