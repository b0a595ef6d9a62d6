//! Ordering: ids strictly increase and seqs run 1, 2, 3… without gaps, in commit order; a
//! retried clientMsgId is the same message and stores nothing new.

use chat_domain::ids::MessageId;
use chat_domain::memory::World;
use chat_domain::model::ChannelId;
use chat_domain::model::Message;
use chat_domain::ordering::{Appended, append_next};
use chat_domain::ports::{AppendOutcome, Claim, DEDUPE_WINDOW_S};

use crate::*;

#[tokio::test]
async fn ids_strictly_increase_and_seqs_have_no_gaps() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let mut sent = Vec::new();
    for i in 0..6 {
        // Several in one millisecond, several across milliseconds.
        if i % 2 == 0 {
            world.clock.advance(1);
        }
        sent.push(send(&app, if i % 3 == 0 { "bob" } else { "alice" }, "c1", &c, &format!("m{i}")).await);
    }
    let seqs: Vec<u64> = sent.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert!(sent.windows(2).all(|w| w[0].message_id < w[1].message_id), "{:?}", ids(&sent));
    let stored = world.messages.all(&c);
    assert_eq!(ids(&stored), ids(&sent), "the store holds them in the same order");
}

#[tokio::test]
async fn ids_keep_increasing_when_the_clock_goes_back() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    world.clock.advance(10_000);
    let first = send(&app, "alice", "c1", &c, "from a fast clock").await;
    world.clock.advance(-9_000);
    let second = send(&app, "bob", "c2", &c, "from a slow clock").await;
    assert!(second.message_id > first.message_id);
    assert_eq!(second.message_id.as_u64(), first.message_id.as_u64() + 1, "continues from the channel's last id");
    assert_eq!(second.seq, 2);
}

#[tokio::test]
async fn an_id_carries_the_time_it_was_sent() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    world.clock.advance(12_345);
    let message = send(&app, "alice", "c1", &c, "now").await;
    assert_eq!(message.message_id.timestamp_ms(), World::START_MS + 12_345);
    assert_eq!(message.created_at, World::START_MS + 12_345);
}

#[tokio::test]
async fn a_send_that_lost_its_seq_to_another_retries_after_it() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let stale = app.channels().meta(&c).await.unwrap().unwrap();
    let winner = send(&app, "bob", "c2", &c, "first").await;
    let message = Message {
        channel_id: c.clone(),
        message_id: MessageId::ZERO,
        seq: 0,
        author_id: user("alice"),
        text: "second".into(),
        client_msg_id: fresh_id(),
        created_at: 0,
        attachments: vec![],
        edited_at: None,
        deleted: false,
        change_seq: None,
        reply_to: None,
        mentions: vec![],
        reactions: vec![],
        call: None,
    };
    let Appended::Stored(stored) = append_next(&app, message, stale).await.unwrap() else {
        panic!("expected a new message")
    };
    assert_eq!(stored.seq, 2);
    assert!(stored.message_id > winner.message_id);
    assert_eq!(app.channels().meta(&c).await.unwrap().unwrap().seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_get_every_seq_exactly_once() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let c = group(&world, &app, "alice", &["bob", "carol"]).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (app, c) = (app.clone(), c.clone());
        let who = ["alice", "bob", "carol"][i % 3];
        tasks.push(tokio::spawn(async move { send(&app, who, "c", &c, &format!("m{i}")).await }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stored = world.messages.all(&c);
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<u64>>(), "in id order, seqs run without gaps or repeats");
    assert_eq!(app.channels().meta(&c).await.unwrap().unwrap().seq, 12);
}

#[tokio::test]
async fn a_retried_send_answers_the_message_it_stored_first() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let id = fresh_id();
    let first = send_with(&app, "alice", "c1", &c, &id, "hello", vec![]).await.unwrap();
    let again = send_with(&app, "alice", "c1", &c, &id, "hello", vec![]).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.message, first.message);
}

#[tokio::test]
async fn a_retried_send_stores_nothing_new() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let id = fresh_id();
    send_with(&app, "alice", "c1", &c, &id, "hello", vec![]).await.unwrap();
    let meta_before = app.channels().meta(&c).await.unwrap().unwrap();
    send_with(&app, "alice", "c1", &c, &id, "hello again", vec![]).await.unwrap();
    assert_eq!(world.messages.count(), 1);
    assert_eq!(texts(&world.messages.all(&c)), vec!["hello"]);
    assert_eq!(app.channels().meta(&c).await.unwrap().unwrap(), meta_before);
}

#[tokio::test]
async fn a_client_msg_id_belongs_to_its_sender() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let id = fresh_id();
    let alices = send_with(&app, "alice", "c1", &c, &id, "from alice", vec![]).await.unwrap();
    let bobs = send_with(&app, "bob", "c2", &c, &id, "from bob", vec![]).await.unwrap();
    assert!(!bobs.duplicate);
    assert_ne!(bobs.message.message_id, alices.message.message_id);
    assert_eq!(world.messages.count(), 2);
}

#[tokio::test]
async fn a_client_msg_id_is_remembered_for_a_day_only() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let id = fresh_id();
    send_with(&app, "alice", "c1", &c, &id, "once", vec![]).await.unwrap();
    world.clock.advance(DEDUPE_WINDOW_S * 1000 - 1_000);
    assert!(send_with(&app, "alice", "c1", &c, &id, "once", vec![]).await.unwrap().duplicate);
    world.clock.advance(1_000);
    let later = send_with(&app, "alice", "c1", &c, &id, "once", vec![]).await.unwrap();
    assert!(!later.duplicate);
    assert_eq!(later.message.seq, 2);
}

#[tokio::test]
async fn a_message_with_blank_text_and_no_files_is_refused() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let err = send_with(&app, "alice", "c1", &c, &fresh_id(), "  \n ", vec![]).await.unwrap_err();
    assert_eq!(err.code(), chat_domain::ErrorCode::InvalidRequest);
    assert_eq!(world.messages.count(), 0);
}

/// A message log where another send of the same clientMsgId commits while this one claims
/// its seq: a retry racing its original.
struct RacingLog {
    inner: std::sync::Arc<chat_domain::memory::Messages>,
    original: std::sync::Mutex<Option<Message>>,
}

#[async_trait::async_trait]
impl chat_domain::ports::MessageLog for RacingLog {
    async fn append(&self, _message: &Message, _now_ms: i64) -> Result<AppendOutcome, chat_domain::PortError> {
        // Another send took the seq the roster promised.
        Ok(AppendOutcome::SeqTaken)
    }
    async fn claim(&self, channel: &ChannelId, now_ms: i64) -> Result<Option<Claim>, chat_domain::PortError> {
        let original = self.original.lock().unwrap().take();
        if let Some(mut original) = original {
            let claim = self.inner.claim(channel, now_ms).await?.unwrap();
            original.seq = claim.seq;
            original.message_id = MessageId::claimed(claim.at_ms, claim.seq);
            assert_eq!(self.inner.store_claimed(&original, now_ms).await?, AppendOutcome::Stored);
        }
        self.inner.claim(channel, now_ms).await
    }
    async fn store_claimed(&self, message: &Message, now_ms: i64) -> Result<AppendOutcome, chat_domain::PortError> {
        self.inner.store_claimed(message, now_ms).await
    }
    async fn fill_claimed(&self, message: &Message, now_ms: i64) -> Result<(), chat_domain::PortError> {
        self.inner.fill_claimed(message, now_ms).await
    }
    async fn get(&self, channel: &ChannelId, id: MessageId) -> Result<Option<Message>, chat_domain::PortError> {
        self.inner.get(channel, id).await
    }
    async fn edit(
        &self,
        channel: &ChannelId,
        id: MessageId,
        author: &chat_domain::model::UserId,
        text: &str,
        change: u64,
        now_ms: i64,
    ) -> Result<Result<Message, chat_domain::ports::ChangeRefused>, chat_domain::PortError> {
        self.inner.edit(channel, id, author, text, change, now_ms).await
    }
    async fn soft_delete(
        &self,
        message: &Message,
        author: Option<&chat_domain::model::UserId>,
        change: u64,
        now_ms: i64,
    ) -> Result<Result<Message, chat_domain::ports::ChangeRefused>, chat_domain::PortError> {
        self.inner.soft_delete(message, author, change, now_ms).await
    }
    async fn claim_change(&self, channel: &ChannelId, now_ms: i64) -> Result<Option<u64>, chat_domain::PortError> {
        self.inner.claim_change(channel, now_ms).await
    }
    async fn changed_since(
        &self,
        channel: &ChannelId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<chat_domain::ports::Change>, chat_domain::PortError> {
        self.inner.changed_since(channel, after, limit).await
    }
    async fn get_many(&self, channel: &ChannelId, ids: &[MessageId]) -> Result<Vec<Message>, chat_domain::PortError> {
        self.inner.get_many(channel, ids).await
    }
    async fn scan(
        &self,
        segment: u32,
        segments: u32,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<chat_domain::ports::ScanPage, chat_domain::PortError> {
        self.inner.scan(segment, segments, cursor, limit).await
    }
    async fn files_left(
        &self,
        channel: &ChannelId,
        id: MessageId,
    ) -> Result<Vec<chat_domain::model::Attachment>, chat_domain::PortError> {
        self.inner.files_left(channel, id).await
    }
    async fn forget_files(&self, channel: &ChannelId, id: MessageId) -> Result<(), chat_domain::PortError> {
        self.inner.forget_files(channel, id).await
    }
    async fn in_bucket(
        &self,
        channel: &ChannelId,
        bucket: chat_domain::ids::Bucket,
        range: (MessageId, MessageId),
        limit: usize,
        order: chat_domain::ports::Order,
    ) -> Result<Vec<Message>, chat_domain::PortError> {
        self.inner.in_bucket(channel, bucket, range, limit, order).await
    }
}

#[tokio::test]
async fn a_retry_that_races_its_original_fills_the_seq_it_claimed_and_answers_the_original() {
    let world = World::new().generous();
    add_accounts(&world, &["alice", "bob"]).await;
    let c = direct(&world.app(), "alice", "bob").await;
    let id = fresh_id();
    let original = Message {
        channel_id: c.clone(),
        message_id: MessageId::ZERO,
        seq: 0,
        author_id: user("alice"),
        text: "hello".into(),
        client_msg_id: id.clone(),
        created_at: World::START_MS,
        attachments: vec![],
        edited_at: None,
        deleted: false,
        change_seq: None,
        reply_to: None,
        mentions: vec![],
        reactions: vec![],
        call: None,
    };
    let racing = std::sync::Arc::new(RacingLog {
        inner: world.messages.clone(),
        original: std::sync::Mutex::new(Some(original)),
    });
    let mut ports = world.ports();
    ports.messages = racing;
    let app = chat_domain::App::new(world.settings.clone(), std::sync::Arc::new(world.clock.clone()), ports);
    let retry = send_with(&app, "alice", "c1", &c, &id, "hello", vec![]).await.unwrap();
    assert!(retry.duplicate);
    let stored = world.messages.all(&c);
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2], "no gap: the retry's claimed seq holds a deleted message");
    assert_eq!(retry.message.seq, 1, "the retry answers the original");
    assert_eq!(retry.message.text, "hello");
    assert!(stored[1].deleted && stored[1].text.is_empty());
    assert_eq!(app.channels().meta(&c).await.unwrap().unwrap().deleted_seqs, vec![2], "unread counts skip it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_into_one_channel_is_stored_whole_without_refusals() {
    let names: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (world, app) = world_with(&refs).await;
    let c = group(&world, &app, refs[0], &refs[1..]).await;
    let mut tasks = Vec::new();
    for name in &names {
        let (app, c, name) = (app.clone(), c.clone(), name.clone());
        tasks.push(tokio::spawn(async move {
            send_with(&app, &name, "c", &c, &fresh_id(), "at once", vec![]).await.map(|s| s.message.seq)
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap().expect("nobody is refused"));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
}
