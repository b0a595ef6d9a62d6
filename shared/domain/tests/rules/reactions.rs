//! Reactions, replies and mentions: one of each emoji per member and a bounded number of
//! distinct emoji per message; a reaction is a change (it reaches devices that were away)
//! but not a message; a reply quotes what it answers and the quote follows a deletion; a
//! mention pushes through a mute and is counted in the channel list.

use std::collections::BTreeMap;

use chat_domain::http::Platform;
use chat_domain::ids::MessageId;
use chat_domain::memory::World;
use chat_domain::model::{Emoji, ReactionCount};
use chat_domain::protocol::ServerFrame;
use chat_domain::reactions::{Reacting, react};
use chat_domain::sync::{self, SyncRequest};
use chat_domain::{App, ErrorCode};

use crate::*;

fn emoji(text: &str) -> Emoji {
    Emoji::parse(text).unwrap()
}

async fn reacting(
    app: &App,
    name: &str,
    channel: &ChannelId,
    id: MessageId,
    text: &str,
    how: Reacting,
) -> Result<ServerFrame, chat_domain::ChatError> {
    react(app, &user(name), &conn(&format!("{}1", &name[..1])), channel, id, emoji(text), how).await
}

fn counts(frame: &ServerFrame) -> (Vec<(String, u64)>, Option<u64>) {
    let ServerFrame::Reaction { reactions, change_seq, .. } = frame else { panic!("{frame:?}") };
    (reactions.iter().map(|r| (r.emoji.to_string(), r.count)).collect(), *change_seq)
}

async fn team() -> (World, App, ChannelId) {
    let (world, app) = world_with(&["alice", "bob", "carol", "dave"]).await;
    let c = group(&world, &app, "alice", &["bob", "carol"]).await;
    (world, app, c)
}

async fn page(app: &App, reader: &str, c: &ChannelId, limit: usize) -> Vec<Message> {
    let query = chat_domain::history::HistoryQuery { limit: Some(limit), ..Default::default() };
    chat_domain::history::history(app, &user(reader), c, query).await.unwrap().messages
}

#[tokio::test]
async fn two_members_with_the_same_emoji_count_two_and_each_sees_their_own() {
    let (world, app, c) = team().await;
    let m = send(&app, "alice", "a1", &c, "goal!").await;
    connect(&app, "carol", "c1").await;
    reacting(&app, "bob", &c, m.message_id, "⚽", Reacting::Add).await.unwrap();
    let second = reacting(&app, "alice", &c, m.message_id, "⚽", Reacting::Add).await.unwrap();
    assert_eq!(counts(&second).0, vec![("⚽".to_owned(), 2)]);
    // carol's connection heard both, with the count as it then was.
    let heard: Vec<u64> =
        frames(&world, "c1", "reaction").iter().map(|f| f["reactions"][0]["count"].as_u64().unwrap()).collect();
    assert_eq!(heard, vec![1, 2]);

    let bobs = page(&app, "bob", &c, 10).await;
    assert_eq!(bobs[0].reactions, vec![ReactionCount { emoji: emoji("⚽"), count: 2, me: true }]);
    let carols = page(&app, "carol", &c, 10).await;
    assert_eq!(carols[0].reactions, vec![ReactionCount { emoji: emoji("⚽"), count: 2, me: false }]);
}

#[tokio::test]
async fn removing_a_reaction_twice_changes_nothing_the_second_time_and_tells_nobody() {
    let (world, app, c) = team().await;
    let m = send(&app, "alice", "a1", &c, "hi").await;
    connect(&app, "carol", "c1").await;
    reacting(&app, "bob", &c, m.message_id, "👍", Reacting::Add).await.unwrap();
    let first = reacting(&app, "bob", &c, m.message_id, "👍", Reacting::Remove).await.unwrap();
    let (now, change) = counts(&first);
    assert!(now.is_empty() && change.is_some());
    let meta_before = app.channels().meta(&c).await.unwrap().unwrap().change_seq;
    let again = reacting(&app, "bob", &c, m.message_id, "👍", Reacting::Remove).await.unwrap();
    assert_eq!(counts(&again), (vec![], None), "nothing changed, no change position");
    assert_eq!(app.channels().meta(&c).await.unwrap().unwrap().change_seq, meta_before, "no position spent");
    assert_eq!(frames(&world, "c1", "reaction").len(), 2, "carol heard the add and one removal");
    // Adding twice is the same: one reaction, one event.
    reacting(&app, "bob", &c, m.message_id, "👍", Reacting::Add).await.unwrap();
    let twice = reacting(&app, "bob", &c, m.message_id, "👍", Reacting::Add).await.unwrap();
    assert_eq!(counts(&twice), (vec![("👍".to_owned(), 1)], None));
}

#[tokio::test]
async fn only_members_react_and_only_to_messages_that_are_there() {
    let (_world, app, c) = team().await;
    let m = send(&app, "alice", "a1", &c, "hi").await;
    let outsider = reacting(&app, "dave", &c, m.message_id, "👍", Reacting::Add).await.unwrap_err();
    assert_eq!(outsider.code(), ErrorCode::Forbidden);
    let missing = reacting(&app, "bob", &c, MessageId::from_u64(7), "👍", Reacting::Add).await.unwrap_err();
    assert_eq!(missing.code(), ErrorCode::NotFound);
    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, m.message_id).await.unwrap();
    let deleted = reacting(&app, "bob", &c, m.message_id, "👍", Reacting::Add).await.unwrap_err();
    assert_eq!(deleted.code(), ErrorCode::Conflict);
}

#[tokio::test]
async fn a_message_holds_a_bounded_number_of_distinct_emoji() {
    let (world, _app) = world_with(&["alice", "bob"]).await;
    let world = world.with_settings(|s| s.max_reactions_per_message = 3);
    let app = world.app();
    let c = direct(&app, "alice", "bob").await;
    let m = send(&app, "alice", "a1", &c, "pick one").await;
    for e in ["1️⃣", "2️⃣", "3️⃣"] {
        reacting(&app, "bob", &c, m.message_id, e, Reacting::Add).await.unwrap();
    }
    let fourth = reacting(&app, "bob", &c, m.message_id, "4️⃣", Reacting::Add).await.unwrap_err();
    assert_eq!(fourth.code(), ErrorCode::Conflict);
    // An emoji already there is no new one: alice may still use it.
    reacting(&app, "alice", &c, m.message_id, "2️⃣", Reacting::Add).await.unwrap();
    // Once one is gone there is room again.
    reacting(&app, "bob", &c, m.message_id, "1️⃣", Reacting::Remove).await.unwrap();
    reacting(&app, "bob", &c, m.message_id, "4️⃣", Reacting::Add).await.unwrap();
}

#[tokio::test]
async fn a_reaction_is_no_message_no_unread_count_and_no_push() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    chat_domain::push::register(&app, &user("alice"), Platform::Fcm, "alice-phone").await.unwrap();
    let m = send(&app, "alice", "a1", &c, "hi").await;
    world.push.clear();
    reacting(&app, "bob", &c, m.message_id, "❤️", Reacting::Add).await.unwrap();
    assert!(world.push.publishes().is_empty());
    let list = chat_domain::membership::list_channels(&app, &user("alice")).await.unwrap();
    assert_eq!((list[0].unread, list[0].seq), (0, 1));
}

#[tokio::test]
async fn a_device_that_was_away_gets_the_reactions_as_changes_of_the_message() {
    let (world, app, c) = team().await;
    let old = send(&app, "alice", "a1", &c, "old news").await;
    let position = app.channels().meta(&c).await.unwrap().unwrap().change_seq;
    world.clock.advance(1);
    reacting(&app, "bob", &c, old.message_id, "🎉", Reacting::Add).await.unwrap();
    reacting(&app, "carol", &c, old.message_id, "🎉", Reacting::Add).await.unwrap();
    reacting(&app, "alice", &c, old.message_id, "👀", Reacting::Add).await.unwrap();
    // Positions 1 and 2 were replaced by 3 (one item per message's reactions): gaps that
    // are stepped over once settled.
    world.clock.advance(sync::CHANGE_SETTLE_MS + 1);
    let request = SyncRequest {
        channels: BTreeMap::from([(c.clone(), old.message_id)]),
        after: None,
        limit: None,
        changes: BTreeMap::from([(c.clone(), position)]),
    };
    let done = sync::sync(&app, &user("carol"), &conn("c1"), request).await.unwrap();
    assert_eq!(done[0].up_to_change, Some(3));
    let batches = frames(&world, "c1", "messages");
    let synced: Vec<Message> = serde_json::from_value(batches[0]["messages"].clone()).unwrap();
    assert_eq!(synced.len(), 1, "one message, once, however many reactions");
    assert_eq!(synced[0].text, "old news");
    assert_eq!(synced[0].change_seq, Some(3));
    assert_eq!(
        synced[0].reactions,
        vec![
            ReactionCount { emoji: emoji("🎉"), count: 2, me: true },
            ReactionCount { emoji: emoji("👀"), count: 1, me: false },
        ]
    );
}

#[tokio::test]
async fn a_reply_quotes_what_it_answers_and_the_quote_goes_with_a_deletion() {
    let (_world, app, c) = team().await;
    let question = send(&app, "alice", "a1", &c, &format!("lunch? {}", "x".repeat(200))).await;
    let filler = send(&app, "carol", "c1", &c, "meanwhile").await;
    let draft = chat::Draft { reply_to: Some(question.message_id), ..chat::Draft::text(fresh_id(), "yes!") };
    let reply = chat::send_message(&app, &user("bob"), &conn("b1"), &c, draft).await.unwrap().message;
    let quote = reply.reply_to.clone().unwrap();
    assert_eq!((quote.message_id, quote.author_id.as_str()), (question.message_id, "alice"));
    assert_eq!(quote.text.chars().count(), 100);
    assert!(quote.text.starts_with("lunch? "));

    chat::delete_message(&app, &user("alice"), &conn("a1"), &c, question.message_id).await.unwrap();
    // A page that holds only the reply still shows the quote as it now is.
    let newest = page(&app, "carol", &c, 1).await;
    let quote = newest[0].reply_to.clone().unwrap();
    assert!(quote.deleted && quote.text.is_empty(), "{quote:?}");
    assert_ne!(filler.message_id, question.message_id);

    let gone = chat::Draft { reply_to: Some(question.message_id), ..chat::Draft::text(fresh_id(), "too late") };
    let err = chat::send_message(&app, &user("bob"), &conn("b1"), &c, gone).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    let nowhere = chat::Draft { reply_to: Some(MessageId::from_u64(5)), ..chat::Draft::text(fresh_id(), "?") };
    let err = chat::send_message(&app, &user("bob"), &conn("b1"), &c, nowhere).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn a_mention_pushes_through_a_mute_and_is_counted_beside_the_unread_ones() {
    let (world, app, c) = team().await;
    for name in ["bob", "carol"] {
        chat_domain::push::register(&app, &user(name), Platform::Fcm, &format!("{name}-phone")).await.unwrap();
        chat_domain::membership::set_muted(&app, &user(name), &c, true).await.unwrap();
    }
    send(&app, "alice", "a1", &c, "plain").await;
    assert!(world.push.publishes().is_empty(), "both muted");
    let draft = chat::Draft { mentions: vec![user("bob"), user("bob")], ..chat::Draft::text(fresh_id(), "@bob look") };
    let sent = chat::send_message(&app, &user("alice"), &conn("a1"), &c, draft).await.unwrap().message;
    assert_eq!(sent.mentions, vec![user("bob")], "once");
    let pushed: Vec<String> = world.push.publishes().iter().map(|p| format!("{p:?}")).collect();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert!(pushed[0].contains("bob-phone"), "{pushed:?}");

    let bobs = chat_domain::membership::list_channels(&app, &user("bob")).await.unwrap();
    assert_eq!((bobs[0].unread, bobs[0].mentions), (2, 1));
    let carols = chat_domain::membership::list_channels(&app, &user("carol")).await.unwrap();
    assert_eq!((carols[0].unread, carols[0].mentions), (2, 0));

    let stranger = chat::Draft { mentions: vec![user("dave")], ..chat::Draft::text(fresh_id(), "@dave?") };
    let err = chat::send_message(&app, &user("alice"), &conn("a1"), &c, stranger).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn a_deployment_may_push_a_reaction_to_its_offline_author() {
    let (world, _app) = world_with(&["alice", "bob"]).await;
    let world = world.with_settings(|s| s.push_reactions_to_author = true);
    let app = world.app();
    let c = direct(&app, "alice", "bob").await;
    chat_domain::push::register(&app, &user("alice"), Platform::Fcm, "alice-phone").await.unwrap();
    let m = send(&app, "alice", "a1", &c, "see you at ten").await;
    world.push.clear();
    reacting(&app, "bob", &c, m.message_id, "👍", Reacting::Add).await.unwrap();
    let pushed: Vec<_> = world.push.publishes().iter().map(|p| p.notification().clone()).collect();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!((pushed[0].title.as_str(), pushed[0].body.as_str()), ("bob reacted 👍", "see you at ten"));
    // Taking it back, or the author reacting, pushes nothing; nor does anything once online.
    reacting(&app, "bob", &c, m.message_id, "👍", Reacting::Remove).await.unwrap();
    reacting(&app, "alice", &c, m.message_id, "🎉", Reacting::Add).await.unwrap();
    connect(&app, "alice", "a1").await;
    reacting(&app, "bob", &c, m.message_id, "❤️", Reacting::Add).await.unwrap();
    assert_eq!(world.push.publishes().len(), 1);
}
