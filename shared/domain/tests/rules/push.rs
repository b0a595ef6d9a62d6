//! Push: what a notification says (who, where, a preview, or how many files), to which
//! devices it goes (each enabled device of an offline member, or the topic), and when a
//! device is dropped (its endpoint is disabled); at most 20 devices per user.

use chat_domain::App;
use chat_domain::ErrorCode;
use chat_domain::http::Platform;
use chat_domain::media;
use chat_domain::memory::{Publish, World};
use chat_domain::model::Attachment;
use chat_domain::ports::{Notification, Published, PushMode};
use chat_domain::push::{self, MAX_PUSH_DEVICES, PREVIEW_CHARS};

use crate::*;

async fn pair() -> (World, App, ChannelId) {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let c = direct(&app, "alice", "bob").await;
    (world, app, c)
}

fn notifications(world: &World) -> Vec<Notification> {
    world.push.publishes().iter().map(|p| p.notification().clone()).collect()
}

/// bob (offline) with an FCM device; alice sends `text` to him.
async fn pushed_for(text: &str) -> Notification {
    let (world, app, c) = pair().await;
    push::register(&app, &user("bob"), Platform::Fcm, "bob-phone").await.unwrap();
    send(&app, "alice", "a1", &c, text).await;
    let mut sent = notifications(&world);
    assert_eq!(sent.len(), 1);
    sent.remove(0)
}

#[tokio::test]
async fn a_group_push_names_the_author_and_the_group() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    push::register(&app, &user("bob"), Platform::Apns, "bob-phone").await.unwrap();
    let m = send(&app, "alice", "a1", &c, "lunch?").await;
    assert_eq!(
        notifications(&world),
        vec![Notification {
            title: "alice in team".into(),
            body: "lunch?".into(),
            channel_id: c,
            message_id: m.message_id,
            call: None
        }]
    );
}

#[tokio::test]
async fn a_direct_push_names_the_author_only() {
    let n = pushed_for("hi bob").await;
    assert_eq!((n.title.as_str(), n.body.as_str()), ("alice", "hi bob"));
}

#[tokio::test]
async fn a_long_text_is_previewed_to_a_hundred_characters() {
    let text = "é".repeat(PREVIEW_CHARS + 50);
    let n = pushed_for(&text).await;
    assert_eq!(n.body, format!("{}…", "é".repeat(PREVIEW_CHARS)));
}

#[tokio::test]
async fn a_text_of_exactly_a_hundred_characters_is_shown_whole() {
    let text = "x".repeat(PREVIEW_CHARS);
    assert_eq!(pushed_for(&text).await.body, text);
}

#[tokio::test]
async fn a_message_of_files_only_says_how_many_files_it_carries() {
    let (world, app, c) = pair().await;
    push::register(&app, &user("bob"), Platform::Fcm, "bob-phone").await.unwrap();
    let mut files = Vec::new();
    for name in ["a.png", "b.png"] {
        let grant = media::grant_upload(&app, &user("alice"), &c, name, "image/png", 5).await.unwrap();
        world.media.upload(&grant.key, 5, "image/png");
        files.push(Attachment {
            key: grant.key,
            file_name: name.into(),
            content_type: "image/png".into(),
            size: 5,
            url: None,
        });
    }
    send_with(&app, "alice", "a1", &c, &fresh_id(), "", files).await.unwrap();
    assert_eq!(notifications(&world)[0].body, "sent 2 file(s)");
}

#[tokio::test]
async fn every_enabled_device_of_an_offline_member_gets_the_push() {
    let (world, app, c) = pair().await;
    push::register(&app, &user("bob"), Platform::Fcm, "phone").await.unwrap();
    push::register(&app, &user("bob"), Platform::Apns, "tablet").await.unwrap();
    send(&app, "alice", "a1", &c, "hi").await;
    let mut endpoints: Vec<String> = world
        .push
        .publishes()
        .into_iter()
        .map(|p| match p {
            Publish::Device { endpoint, .. } => endpoint,
            Publish::Topic { .. } => panic!("devices mode"),
        })
        .collect();
    endpoints.sort();
    assert_eq!(endpoints, vec!["endpoint/apns/tablet", "endpoint/fcm/phone"]);
}

#[tokio::test]
async fn a_disabled_endpoint_disables_its_device_and_it_gets_no_more_pushes() {
    let (world, app, c) = pair().await;
    let view = push::register(&app, &user("bob"), Platform::Fcm, "dead").await.unwrap();
    world.push.disable_endpoint("endpoint/fcm/dead");
    send(&app, "alice", "a1", &c, "one").await;
    let devices = push::devices(&app, &user("bob")).await.unwrap();
    assert_eq!((devices[0].device_id.as_str(), devices[0].enabled), (view.device_id.as_str(), false));
    world.push.clear();
    send(&app, "alice", "a1", &c, "two").await;
    assert!(world.push.publishes().is_empty());
}

#[tokio::test]
async fn registering_a_disabled_device_again_enables_it() {
    let (world, app, c) = pair().await;
    push::register(&app, &user("bob"), Platform::Fcm, "phone").await.unwrap();
    world.push.disable_endpoint("endpoint/fcm/phone");
    send(&app, "alice", "a1", &c, "lost").await;
    let view = push::register(&app, &user("bob"), Platform::Fcm, "phone").await.unwrap();
    assert!(view.enabled);
    world.push.clear();
    send(&app, "alice", "a1", &c, "found").await;
    let published: Vec<Published> = world
        .push
        .publishes()
        .into_iter()
        .filter_map(|p| match p {
            Publish::Device { outcome, .. } => Some(outcome),
            Publish::Topic { .. } => None,
        })
        .collect();
    assert_eq!(published, vec![Published::Sent]);
}

#[tokio::test]
async fn the_same_token_registered_twice_is_one_device() {
    let (_world, app, _c) = pair().await;
    let first = push::register(&app, &user("bob"), Platform::Fcm, "phone").await.unwrap();
    let again = push::register(&app, &user("bob"), Platform::Fcm, " phone ").await.unwrap();
    assert_eq!(first.device_id, again.device_id);
    assert_eq!(push::devices(&app, &user("bob")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_user_registers_at_most_twenty_devices() {
    let (_world, app, _c) = pair().await;
    for i in 0..MAX_PUSH_DEVICES {
        push::register(&app, &user("bob"), Platform::Fcm, &format!("t{i}")).await.unwrap();
    }
    let err = push::register(&app, &user("bob"), Platform::Fcm, "one-more").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    push::register(&app, &user("bob"), Platform::Fcm, "t3").await.expect("a known device registers again");
    assert_eq!(push::devices(&app, &user("bob")).await.unwrap().len(), MAX_PUSH_DEVICES);
}

#[tokio::test]
async fn a_blank_or_oversized_token_is_refused() {
    let (_world, app, _c) = pair().await;
    for token in ["   ".to_owned(), "x".repeat(4097)] {
        let err = push::register(&app, &user("bob"), Platform::Fcm, &token).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
    }
    assert!(push::devices(&app, &user("bob")).await.unwrap().is_empty());
}

#[tokio::test]
async fn unregistering_a_device_deletes_its_endpoint() {
    let (world, app, c) = pair().await;
    let view = push::register(&app, &user("bob"), Platform::Fcm, "phone").await.unwrap();
    push::unregister(&app, &user("bob"), &view.device_id).await.unwrap();
    assert_eq!(world.push.deleted_endpoints(), vec!["endpoint/fcm/phone"]);
    send(&app, "alice", "a1", &c, "anyone?").await;
    assert!(world.push.publishes().is_empty());
    let err = push::unregister(&app, &user("bob"), &view.device_id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn without_mobile_apps_pushes_go_to_the_topic_once_per_offline_user() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    world.push.set_mode(PushMode::Topic);
    let c = group(&world, &app, "alice", &["bob", "carol"]).await;
    let view = push::register(&app, &user("bob"), Platform::Fcm, "phone").await.unwrap();
    assert!(!view.has_endpoint);
    send(&app, "alice", "a1", &c, "all hands").await;
    let mut users: Vec<String> = world
        .push
        .publishes()
        .into_iter()
        .map(|p| match p {
            Publish::Topic { user, .. } => user.to_string(),
            Publish::Device { .. } => panic!("topic mode"),
        })
        .collect();
    users.sort();
    assert_eq!(users, vec!["bob", "carol"]);
}

#[tokio::test]
async fn with_push_off_nothing_is_published() {
    let (world, app, c) = pair().await;
    world.push.set_mode(PushMode::Off);
    push::register(&app, &user("bob"), Platform::Fcm, "phone").await.unwrap();
    send(&app, "alice", "a1", &c, "hello").await;
    assert!(world.push.publishes().is_empty());
}

#[tokio::test]
async fn a_device_registered_without_an_endpoint_gets_no_device_push() {
    let (world, app, c) = pair().await;
    world.push.set_mode(PushMode::Topic);
    push::register(&app, &user("bob"), Platform::Fcm, "phone").await.unwrap();
    world.push.set_mode(PushMode::Devices);
    send(&app, "alice", "a1", &c, "hello").await;
    assert!(world.push.publishes().is_empty());
}
