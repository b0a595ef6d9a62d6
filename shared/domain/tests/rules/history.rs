//! History: a page of a channel, newest first, strictly between `after` and `before`,
//! walking only the buckets that hold messages, at most 100 messages and under 5 MB; a
//! page that is not the last says where the next one begins.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chat_domain::history::{self, HistoryPage, HistoryQuery, MAX_PAGE_BYTES, MAX_PAGE_SIZE};
use chat_domain::ids::{BUCKET_MS, Bucket, MessageId};
use chat_domain::memory::{Messages, World};
use chat_domain::model::{Attachment, Message, UserId};
use chat_domain::ports::{ChangeRefused, MessageLog, Order};
use chat_domain::{App, ErrorCode, PortError};

use crate::*;

/// The message log, noting every bucket a Query asks.
struct CountingLog {
    inner: Arc<Messages>,
    asked: Mutex<Vec<Bucket>>,
}

#[async_trait]
impl MessageLog for CountingLog {
    async fn append(&self, message: &Message, now_ms: i64) -> Result<chat_domain::ports::AppendOutcome, PortError> {
        self.inner.append(message, now_ms).await
    }
    async fn claim(&self, channel: &ChannelId, now_ms: i64) -> Result<Option<chat_domain::ports::Claim>, PortError> {
        self.inner.claim(channel, now_ms).await
    }
    async fn store_claimed(
        &self,
        message: &Message,
        now_ms: i64,
    ) -> Result<chat_domain::ports::AppendOutcome, PortError> {
        self.inner.store_claimed(message, now_ms).await
    }
    async fn fill_claimed(&self, message: &Message, now_ms: i64) -> Result<(), PortError> {
        self.inner.fill_claimed(message, now_ms).await
    }
    async fn get(&self, channel: &ChannelId, id: MessageId) -> Result<Option<Message>, PortError> {
        self.inner.get(channel, id).await
    }
    async fn edit(
        &self,
        channel: &ChannelId,
        id: MessageId,
        author: &UserId,
        text: &str,
        change: u64,
        now_ms: i64,
    ) -> Result<Result<Message, ChangeRefused>, PortError> {
        self.inner.edit(channel, id, author, text, change, now_ms).await
    }
    async fn soft_delete(
        &self,
        message: &Message,
        author: Option<&UserId>,
        change: u64,
        now_ms: i64,
    ) -> Result<Result<Message, ChangeRefused>, PortError> {
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
    async fn files_left(&self, channel: &ChannelId, id: MessageId) -> Result<Vec<Attachment>, PortError> {
        self.inner.files_left(channel, id).await
    }
    async fn forget_files(&self, channel: &ChannelId, id: MessageId) -> Result<(), PortError> {
        self.inner.forget_files(channel, id).await
    }
    async fn in_bucket(
        &self,
        channel: &ChannelId,
        bucket: Bucket,
        range: (MessageId, MessageId),
        limit: usize,
        order: Order,
    ) -> Result<Vec<Message>, PortError> {
        self.asked.lock().unwrap().push(bucket);
        self.inner.in_bucket(channel, bucket, range, limit, order).await
    }
}

/// alice and bob's direct channel with `n` messages "0", "1"… one millisecond apart.
async fn chat_of(n: usize) -> (World, App, ChannelId, Vec<Message>) {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let mut sent = Vec::new();
    for i in 0..n {
        world.clock.advance(1);
        sent.push(send(&app, "alice", "a1", &c, &i.to_string()).await);
    }
    (world, app, c, sent)
}

async fn page(app: &App, c: &ChannelId, query: HistoryQuery) -> HistoryPage {
    history::history(app, &user("bob"), c, query).await.unwrap()
}

fn query(before: Option<MessageId>, after: Option<MessageId>, limit: usize) -> HistoryQuery {
    HistoryQuery { before, after, limit: Some(limit) }
}

#[tokio::test]
async fn a_page_is_newest_first_and_says_where_the_next_one_begins() {
    let (_world, app, c, sent) = chat_of(5).await;
    let first = page(&app, &c, query(None, None, 2)).await;
    assert_eq!(texts(&first.messages), vec!["4", "3"]);
    assert_eq!(first.next_before, Some(sent[3].message_id));
}

#[tokio::test]
async fn following_next_before_reads_every_message_once() {
    let (_world, app, c, sent) = chat_of(25).await;
    let mut read = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let p = page(&app, &c, query(before, None, 7)).await;
        pages += 1;
        read.extend(p.messages);
        match p.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    read.reverse();
    assert_eq!(ids(&read), ids(&sent));
    assert_eq!(pages, 4);
}

#[tokio::test]
async fn the_last_page_has_no_next_before_even_when_it_is_full() {
    let (_world, app, c, _sent) = chat_of(4).await;
    let p = page(&app, &c, query(None, None, 4)).await;
    assert_eq!(p.messages.len(), 4);
    assert_eq!(p.next_before, None);
}

#[tokio::test]
async fn history_pages_across_buckets_and_asks_only_those_holding_messages() {
    let world = World::new().generous();
    add_accounts(&world, &["alice", "bob"]).await;
    let counting = Arc::new(CountingLog { inner: world.messages.clone(), asked: Mutex::new(Vec::new()) });
    let mut ports = world.ports();
    ports.messages = counting.clone();
    let app = App::new(world.settings.clone(), Arc::new(world.clock.clone()), ports);
    let c = direct(&app, "alice", "bob").await;
    for i in 0..6 {
        if i % 2 == 0 && i > 0 {
            world.clock.advance(25 * DAY);
        }
        send(&app, "alice", "a1", &c, &i.to_string()).await;
    }
    let buckets = app.channels().meta(&c).await.unwrap().unwrap().buckets;
    assert_eq!(buckets.len(), 3);
    assert!(buckets[2].0 - buckets[0].0 >= 5, "long empty stretches between them: {buckets:?}");

    let first = page(&app, &c, query(None, None, 3)).await;
    assert_eq!(texts(&first.messages), vec!["5", "4", "3"]);
    let second = page(&app, &c, query(first.next_before, None, 3)).await;
    assert_eq!(texts(&second.messages), vec!["2", "1", "0"]);
    assert_eq!(second.next_before, None);
    let asked = counting.asked.lock().unwrap().clone();
    assert!(asked.iter().all(|b| buckets.contains(b)), "asked {asked:?}, holding {buckets:?}");
    assert_eq!(asked, vec![buckets[2], buckets[1], buckets[1], buckets[0]]);
}

#[tokio::test]
async fn before_and_after_are_exclusive_bounds() {
    let (_world, app, c, sent) = chat_of(6).await;
    let p = page(&app, &c, query(Some(sent[4].message_id), Some(sent[1].message_id), 50)).await;
    assert_eq!(texts(&p.messages), vec!["3", "2"]);
    assert_eq!(p.next_before, None);
}

#[tokio::test]
async fn after_alone_reads_the_newest_messages_above_it() {
    let (_world, app, c, sent) = chat_of(6).await;
    let p = page(&app, &c, query(None, Some(sent[2].message_id), 2)).await;
    assert_eq!(texts(&p.messages), vec!["5", "4"]);
    assert_eq!(p.next_before, Some(sent[4].message_id), "message 3 is left for the next page");
}

#[tokio::test]
async fn after_bounds_a_walk_across_buckets() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let old = send(&app, "alice", "a1", &c, "old").await;
    world.clock.advance(3 * BUCKET_MS);
    send(&app, "alice", "a1", &c, "new").await;
    let p = page(&app, &c, query(None, Some(old.message_id), 10)).await;
    assert_eq!(texts(&p.messages), vec!["new"]);
    let p = page(&app, &c, query(None, Some(MessageId::from_u64(old.message_id.as_u64() - 1)), 10)).await;
    assert_eq!(texts(&p.messages), vec!["new", "old"]);
}

#[tokio::test]
async fn before_zero_is_an_empty_page() {
    let (_world, app, c, _sent) = chat_of(3).await;
    let p = page(&app, &c, query(Some(MessageId::ZERO), None, 10)).await;
    assert!(p.messages.is_empty());
    assert_eq!(p.next_before, None);
}

#[tokio::test]
async fn a_limit_of_zero_or_more_than_a_hundred_is_refused() {
    let (_world, app, c, _sent) = chat_of(1).await;
    for limit in [0, MAX_PAGE_SIZE + 1] {
        let err = history::history(&app, &user("bob"), &c, query(None, None, limit)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest, "limit {limit}");
    }
    assert_eq!(page(&app, &c, query(None, None, MAX_PAGE_SIZE)).await.messages.len(), 1);
}

#[tokio::test]
async fn without_a_limit_a_page_holds_fifty() {
    let (_world, app, c, sent) = chat_of(51).await;
    let p = page(&app, &c, HistoryQuery::default()).await;
    assert_eq!(p.messages.len(), 50);
    assert_eq!(p.next_before, Some(sent[1].message_id));
}

#[tokio::test]
async fn an_empty_channel_has_an_empty_last_page() {
    let (_world, app, c, _sent) = chat_of(0).await;
    let p = page(&app, &c, HistoryQuery::default()).await;
    assert!(p.messages.is_empty() && p.next_before.is_none());
}

#[tokio::test]
async fn a_deleted_message_keeps_its_place_without_its_text() {
    let (_world, app, c, sent) = chat_of(3).await;
    chat_domain::chat::delete_message(&app, &user("alice"), &conn("a1"), &c, sent[1].message_id).await.unwrap();
    let p = page(&app, &c, HistoryQuery::default()).await;
    assert_eq!(texts(&p.messages), vec!["2", "", "0"]);
    assert!(p.messages[1].deleted);
    assert_eq!(p.messages[1].seq, 2);
}

#[tokio::test]
async fn a_page_stops_before_five_megabytes_and_the_next_page_goes_on() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    // 60 000 quotes: 120 KB in a frame, about 240 KB in an HTTP answer (escaped twice).
    let heavy = "\"".repeat(60_000);
    for _ in 0..24 {
        world.clock.advance(1);
        send(&app, "alice", "a1", &c, &heavy).await;
    }
    let first = page(&app, &c, query(None, None, MAX_PAGE_SIZE)).await;
    let n = first.messages.len();
    assert!(n < 24, "{n} messages of ~240 KB cannot all fit");
    // What each message adds to the Lambda answer: its JSON inside the response's JSON.
    let size = |m: &Message| serde_json::to_string(&serde_json::to_string(m).unwrap()).unwrap().len() + 1;
    let bytes: usize = first.messages.iter().map(size).sum();
    assert!(bytes <= MAX_PAGE_BYTES, "{bytes}");
    assert_eq!(first.next_before, Some(first.messages[n - 1].message_id));
    let second = page(&app, &c, query(first.next_before, None, MAX_PAGE_SIZE)).await;
    assert!(bytes + size(&second.messages[0]) > MAX_PAGE_BYTES, "the first page is as full as it can be");
    assert_eq!(n + second.messages.len(), 24);
    assert_eq!(second.next_before, None);
}
