//! Files: members get upload grants for allowed types and sizes; a message names only its
//! sender's own uploads into its channel, present with the declared size and type, and
//! keeps them; members download; deleting a message removes its files.

use chat_domain::chat;
use chat_domain::media::{self, UPLOAD_GRANT_TTL};
use chat_domain::memory::World;
use chat_domain::model::{Attachment, MAX_ATTACHMENTS};
use chat_domain::settings::DEFAULT_UPLOAD_MAX_BYTES;
use chat_domain::{App, ErrorCode};

use crate::*;

/// `name`'s upload of a 1 000-byte PNG into `c`: granted, then uploaded.
async fn uploaded(world: &World, app: &App, name: &str, c: &ChannelId, file: &str) -> Attachment {
    let grant = media::grant_upload(app, &user(name), c, file, "image/png", 1_000).await.unwrap();
    world.media.upload(&grant.key, 1_000, "image/png");
    Attachment { key: grant.key, file_name: file.to_owned(), content_type: "image/png".into(), size: 1_000, url: None }
}

async fn pair() -> (World, App, ChannelId) {
    let (world, app) = world_with(&["alice", "bob", "mallory"]).await;
    let c = direct(&app, "alice", "bob").await;
    (world, app, c)
}

#[tokio::test]
async fn a_grant_names_a_key_under_the_channel_and_the_uploader() {
    let (world, app, c) = pair().await;
    let grant = media::grant_upload(&app, &user("alice"), &c, "my photo.png", "image/png", 1_234).await.unwrap();
    assert!(grant.key.starts_with(&format!("uploads/{c}/alice/")), "{}", grant.key);
    assert!(grant.key.ends_with("/my_photo.png"), "{}", grant.key);
    assert_eq!(grant.max_bytes, 1_234);
    assert_eq!(grant.fields["key"], grant.key);
    assert_eq!(grant.expires_at, World::START_MS + UPLOAD_GRANT_TTL.as_millis() as i64);
    assert!(world.media.keys().is_empty(), "nothing is stored until the client uploads");
}

#[tokio::test]
async fn two_grants_for_the_same_file_name_get_different_keys() {
    let (_world, app, c) = pair().await;
    let a = media::grant_upload(&app, &user("alice"), &c, "a.png", "image/png", 1).await.unwrap();
    let b = media::grant_upload(&app, &user("alice"), &c, "a.png", "image/png", 1).await.unwrap();
    assert_ne!(a.key, b.key);
}

#[tokio::test]
async fn a_type_that_is_not_allowed_is_refused() {
    let (_world, app, c) = pair().await;
    let err = media::grant_upload(&app, &user("alice"), &c, "x.exe", "application/x-msdownload", 10).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn an_empty_file_is_refused_and_one_over_the_maximum_is_too_large() {
    let (_world, app, c) = pair().await;
    let err = media::grant_upload(&app, &user("alice"), &c, "x.png", "image/png", 0).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    let err = media::grant_upload(&app, &user("alice"), &c, "x.png", "image/png", DEFAULT_UPLOAD_MAX_BYTES + 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge);
    media::grant_upload(&app, &user("alice"), &c, "x.png", "image/png", DEFAULT_UPLOAD_MAX_BYTES).await.unwrap();
}

#[tokio::test]
async fn a_non_member_gets_no_grant() {
    let (_world, app, c) = pair().await;
    let err = media::grant_upload(&app, &user("mallory"), &c, "x.png", "image/png", 10).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
}

#[tokio::test]
async fn an_attached_file_is_kept_and_readers_get_a_download_url() {
    let (world, app, c) = pair().await;
    connect(&app, "bob", "b1").await;
    let file = uploaded(&world, &app, "alice", &c, "cat.png").await;
    let sent = send_with(&app, "alice", "a1", &c, &fresh_id(), "look", vec![file.clone()]).await.unwrap();
    assert!(world.media.object(&file.key).unwrap().attached);
    assert_eq!(sent.message.attachments[0].url.as_deref(), Some(&*format!("memory://{}", file.key)));
    let live = frames(&world, "b1", "message");
    assert_eq!(live[0]["message"]["attachments"][0]["url"], format!("memory://{}", file.key));
    assert_eq!(world.messages.all(&c)[0].attachments[0].url, None, "URLs are made per reader, never stored");
}

#[tokio::test]
async fn a_message_with_files_needs_no_text() {
    let (world, app, c) = pair().await;
    let file = uploaded(&world, &app, "alice", &c, "cat.png").await;
    let sent = send_with(&app, "alice", "a1", &c, &fresh_id(), "  ", vec![file]).await.unwrap();
    assert_eq!(sent.message.text, "");
    assert_eq!(world.messages.count(), 1);
}

#[tokio::test]
async fn attaching_someone_elses_upload_is_forbidden() {
    let (world, app, c) = pair().await;
    let bobs = uploaded(&world, &app, "bob", &c, "bob.png").await;
    let err = send_with(&app, "alice", "a1", &c, &fresh_id(), "mine now", vec![bobs.clone()]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(!world.media.object(&bobs.key).unwrap().attached);
    assert_eq!(world.messages.count(), 0);
}

#[tokio::test]
async fn attaching_an_upload_into_another_channel_is_forbidden() {
    let (world, app, c) = pair().await;
    let other = group(&world, &app, "alice", &[]).await;
    let elsewhere = uploaded(&world, &app, "alice", &other, "x.png").await;
    let err = send_with(&app, "alice", "a1", &c, &fresh_id(), "", vec![elsewhere]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert_eq!(world.messages.count(), 0);
}

#[tokio::test]
async fn attaching_a_file_that_was_never_uploaded_is_not_found() {
    let (world, app, c) = pair().await;
    let grant = media::grant_upload(&app, &user("alice"), &c, "x.png", "image/png", 10).await.unwrap();
    let missing =
        Attachment { key: grant.key, file_name: "x.png".into(), content_type: "image/png".into(), size: 10, url: None };
    let err = send_with(&app, "alice", "a1", &c, &fresh_id(), "", vec![missing]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert_eq!(world.messages.count(), 0);
}

#[tokio::test]
async fn a_file_must_be_what_the_message_says_it_is() {
    let (world, app, c) = pair().await;
    let file = uploaded(&world, &app, "alice", &c, "cat.png").await;
    let bigger = Attachment { size: 2_000, ..file.clone() };
    let err = send_with(&app, "alice", "a1", &c, &fresh_id(), "", vec![bigger]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    let other_type = Attachment { content_type: "image/jpeg".into(), ..file.clone() };
    let err = send_with(&app, "alice", "a1", &c, &fresh_id(), "", vec![other_type]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert!(!world.media.object(&file.key).unwrap().attached);
}

#[tokio::test]
async fn a_message_names_at_most_ten_files() {
    let (world, app, c) = pair().await;
    let mut files = Vec::new();
    for i in 0..=MAX_ATTACHMENTS {
        files.push(uploaded(&world, &app, "alice", &c, &format!("{i}.png")).await);
    }
    let err = send_with(&app, "alice", "a1", &c, &fresh_id(), "", files.clone()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    files.pop();
    let sent = send_with(&app, "alice", "a1", &c, &fresh_id(), "", files).await.unwrap();
    assert_eq!(sent.message.attachments.len(), MAX_ATTACHMENTS);
}

#[tokio::test]
async fn a_stored_file_name_is_made_safe() {
    let (world, app, c) = pair().await;
    let file = uploaded(&world, &app, "alice", &c, "x.png").await;
    let renamed = Attachment { file_name: "../../etc/pass wd".into(), ..file };
    send_with(&app, "alice", "a1", &c, &fresh_id(), "", vec![renamed]).await.unwrap();
    assert_eq!(world.messages.all(&c)[0].attachments[0].file_name, ".._.._etc_pass_wd");
}

#[tokio::test]
async fn members_download_the_channels_files_and_nobody_else_does() {
    let (world, app, c) = pair().await;
    let file = uploaded(&world, &app, "alice", &c, "cat.png").await;
    let url = media::download_url(&app, &user("bob"), &c, &file.key).await.unwrap();
    assert_eq!(url, format!("memory://{}", file.key));
    let err = media::download_url(&app, &user("mallory"), &c, &file.key).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
}

#[tokio::test]
async fn a_key_outside_the_channel_is_not_its_file() {
    let (world, app, c) = pair().await;
    let other = group(&world, &app, "bob", &[]).await;
    let elsewhere = uploaded(&world, &app, "bob", &other, "secret.png").await;
    let err = media::download_url(&app, &user("alice"), &c, &elsewhere.key).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    let sneaky = format!("uploads/{c}/../{other}/bob/x/secret.png");
    let err = media::download_url(&app, &user("alice"), &c, &sneaky).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn deleting_a_message_removes_its_files() {
    let (world, app, c) = pair().await;
    let file = uploaded(&world, &app, "alice", &c, "cat.png").await;
    let sent = send_with(&app, "alice", "a1", &c, &fresh_id(), "look", vec![file.clone()]).await.unwrap();
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, sent.message.message_id).await.unwrap();
    assert_eq!(world.media.object(&file.key), None);
    let stored = &world.messages.all(&c)[0];
    assert!(stored.deleted && stored.attachments.is_empty(), "the file keys are forgotten too");
}

#[tokio::test]
async fn a_retried_delete_removes_the_files_an_interrupted_one_left() {
    let (world, app, c) = pair().await;
    let file = uploaded(&world, &app, "alice", &c, "cat.png").await;
    let sent = send_with(&app, "alice", "a1", &c, &fresh_id(), "look", vec![file.clone()]).await.unwrap();
    // An attempt that died right after its write: deleted, files still there.
    app.messages().soft_delete(&sent.message, Some(&user("alice")), 1, app.now_ms()).await.unwrap().unwrap();
    assert!(world.media.object(&file.key).is_some());
    assert_eq!(app.messages().files_left(&c, sent.message.message_id).await.unwrap().len(), 1);
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, sent.message.message_id).await.unwrap();
    assert_eq!(world.media.object(&file.key), None);
    assert!(app.messages().files_left(&c, sent.message.message_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_deleted_message_shows_no_files_to_readers() {
    let (world, app, c) = pair().await;
    let file = uploaded(&world, &app, "alice", &c, "cat.png").await;
    let sent = send_with(&app, "alice", "a1", &c, &fresh_id(), "look", vec![file]).await.unwrap();
    app.messages().soft_delete(&sent.message, None, 1, app.now_ms()).await.unwrap().unwrap();
    let read = app.messages().get(&c, sent.message.message_id).await.unwrap().unwrap();
    assert!(read.deleted && read.attachments.is_empty() && read.text.is_empty());
}

#[tokio::test]
async fn a_send_refused_as_too_large_leaves_its_files_unattached() {
    let (world, app, c) = pair().await;
    let file = uploaded(&world, &app, "alice", &c, "cat.png").await;
    // 70 000 quotes are 140 000 bytes once escaped: over API Gateway's 128 KB.
    let text = "\"".repeat(70_000);
    let err = send_with(&app, "alice", "a1", &c, &fresh_id(), &text, vec![file.clone()]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge);
    assert!(!world.media.object(&file.key).unwrap().attached, "the lifecycle rule may still remove it");
    assert!(world.messages.all(&c).is_empty());
}
