//! Search end to end: messages sent over real sockets reach the index through the Messages
//! table's stream (moto's), which the local gateway reads as Lambda's event source mapping
//! would, and `GET /search` finds them, with membership checked at every query.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chat_domain::ids::MessageId;
use chat_domain::model::{ChannelId, UserId};
use chat_domain::ports::{IndexQuery, IndexedMessage};
use e2e::client::Client;
use e2e::{Stack, StackOptions};
use local_gateway::invoke::{Invoke, InvokeError, InvokeFuture};
use local_gateway::routes::Function;
use serde_json::{Value, json};

async fn searching() -> Stack {
    Stack::start_with(StackOptions { streams: true, ..Default::default() }).await
}

async fn sent_id(client: &mut Client, channel: &str, client_msg_id: &str, text: &str) -> String {
    client.send_message(channel, client_msg_id, text).await;
    client.recv_type("ack").await["message"]["messageId"].as_str().unwrap().to_owned()
}

async fn search(stack: &Stack, user: &str, query: &str) -> (u16, Value) {
    stack.get(&format!("/search?{query}"), Some(&stack.token(user))).await
}

fn hit_texts(page: &Value) -> Vec<String> {
    page["hits"].as_array().unwrap().iter().map(|h| h["message"]["text"].as_str().unwrap().to_owned()).collect()
}

/// Asks until the answer's texts are `expected` (the index follows the stream within
/// seconds), failing with the last answer after 20 s.
async fn eventually(stack: &Stack, user: &str, query: &str, expected: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, page) = search(stack, user, query).await;
        assert_eq!(status, 200, "{query}: {page}");
        if hit_texts(&page) == expected {
            return page;
        }
        assert!(tokio::time::Instant::now() < deadline, "{query}: expected {expected:?}, last answer {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn q(text: &str) -> String {
    urlencoding::encode(text).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_phrases_and_prefixes_are_found_with_their_snippets() {
    let stack = searching().await;
    stack.create_channel("team", &["alice", "bob", "carol"]).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    sent_id(&mut alice, "team", "m1", "Lunch at the Café tomorrow?").await;
    sent_id(&mut alice, "team", "m2", "the quarterly report is late").await;
    sent_id(&mut alice, "dm", "m3", "report card: straight A's").await;
    sent_id(&mut alice, "team", "m4", "東京で会いましょう").await;

    let page = eventually(
        &stack,
        "bob",
        &format!("q={}", q("report ")),
        &["report card: straight A's", "the quarterly report is late"],
    )
    .await;
    let snippet: Vec<(String, bool)> = page["hits"][1]["snippet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["text"].as_str().unwrap().to_owned(), f["highlighted"].as_bool().unwrap_or(false)))
        .collect();
    assert_eq!(snippet, [("the quarterly ".into(), false), ("report".into(), true), (" is late".into(), false)]);
    // A phrase, a prefix, accents and case, a script without spaces.
    eventually(&stack, "bob", &format!("q={}", q("\"quarterly report\"")), &["the quarterly report is late"]).await;
    eventually(&stack, "bob", &format!("q={}", q("\"report quarterly\"")), &[]).await;
    eventually(&stack, "bob", &format!("q={}", q("lunch tomo")), &["Lunch at the Café tomorrow?"]).await;
    eventually(&stack, "bob", &format!("q={}", q("CAFE")), &["Lunch at the Café tomorrow?"]).await;
    eventually(&stack, "bob", &format!("q={}", q("東京")), &["東京で会いましょう"]).await;
    // One channel only; carol is not in the direct channel.
    eventually(&stack, "bob", &format!("q={}&channelId=team", q("report ")), &["the quarterly report is late"]).await;
    eventually(&stack, "carol", &format!("q={}", q("report ")), &["the quarterly report is late"]).await;
    let (status, body) = search(&stack, "carol", &format!("q={}&channelId=dm", q("report"))).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = search(&stack, "mallory", &format!("q={}", q("report"))).await;
    assert_eq!((status, body["hits"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_are_found_by_their_new_text_and_deletions_and_removed_members_find_nothing() {
    let stack = searching().await;
    stack.create_channel("team", &["alice", "bob", "carol"]).await;
    let mut alice = stack.connect("alice").await;
    let edited = sent_id(&mut alice, "team", "m1", "meet at the harbour").await;
    let deleted = sent_id(&mut alice, "team", "m2", "the secret password is swordfish").await;
    eventually(&stack, "bob", &format!("q={}", q("harbour ")), &["meet at the harbour"]).await;
    eventually(&stack, "bob", &format!("q={}", q("swordfish ")), &["the secret password is swordfish"]).await;

    alice
        .send_json(
            &json!({"action": "editMessage", "channelId": "team", "messageId": edited, "text": "meet at the station"}),
        )
        .await;
    alice.recv_type("messageUpdated").await;
    alice.send_json(&json!({"action": "deleteMessage", "channelId": "team", "messageId": deleted})).await;
    alice.recv_type("messageDeleted").await;
    // At once: hits are read back as they are now.
    let (_, page) = search(&stack, "bob", &format!("q={}", q("harbour "))).await;
    assert!(hit_texts(&page).is_empty(), "{page}");
    let (_, page) = search(&stack, "bob", &format!("q={}", q("swordfish "))).await;
    assert!(hit_texts(&page).is_empty(), "{page}");
    eventually(&stack, "bob", &format!("q={}", q("station ")), &["meet at the station"]).await;

    // A member removed from the channel stops finding its messages at once.
    eventually(&stack, "carol", &format!("q={}", q("station ")), &["meet at the station"]).await;
    let (status, body) =
        stack.request(reqwest::Method::DELETE, "/channels/team/members/carol", Some(&stack.token("alice")), None).await;
    assert!(status < 300, "{status} {body}");
    let (status, page) = search(&stack, "carol", &format!("q={}", q("station "))).await;
    assert_eq!((status, hit_texts(&page).len()), (200, 0), "{page}");
    let (status, _) = search(&stack, "carol", &format!("q={}&channelId=team", q("station "))).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_filters_and_bad_queries() {
    let stack = searching().await;
    stack.create_channel("team", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let mut bob = stack.connect("bob").await;
    for n in 0..5 {
        sent_id(&mut alice, "team", &format!("a{n}"), &format!("status update {n} from alice")).await;
    }
    sent_id(&mut bob, "team", "b0", "status update from bob").await;
    let everything = [
        "status update from bob",
        "status update 4 from alice",
        "status update 3 from alice",
        "status update 2 from alice",
        "status update 1 from alice",
        "status update 0 from alice",
    ];
    eventually(&stack, "alice", &format!("q={}", q("status ")), &everything).await;

    // Newest first, two at a time, nothing missed or repeated.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("q={}&limit=2", q("status "));
        if let Some(cursor) = &cursor {
            query.push_str(&format!("&cursor={}", q(cursor)));
        }
        let (status, page) = search(&stack, "alice", &query).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(hit_texts(&page));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, everything);

    eventually(&stack, "alice", &format!("q={}&from=bob", q("status ")), &["status update from bob"]).await;
    let (status, page) = search(&stack, "alice", &format!("q={}&order=relevance&limit=50", q("alice "))).await;
    assert_eq!((status, hit_texts(&page).len()), (200, 5), "{page}");
    let (_, page) = search(&stack, "alice", &format!("q={}&hasFile=true", q("status "))).await;
    assert!(hit_texts(&page).is_empty());
    let (_, page) = search(&stack, "alice", &format!("q={}&before=1000", q("status "))).await;
    assert!(hit_texts(&page).is_empty(), "nothing was sent before 1970 + 1 s");

    for bad in [
        "q=",
        "q=%20%22%22",
        &format!("q={}", "a".repeat(201)),
        "q=x&limit=0",
        "q=x&limit=51",
        "q=x&order=oldest",
        "q=x&hasFile=maybe",
        "q=x&cursor=junk",
        "q=x&before=yesterday",
    ] {
        let (status, body) = search(&stack, "alice", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["code"], "invalid_request", "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_with_a_file_carries_a_download_url_that_works() {
    let stack = searching().await;
    stack.create_channel("team", &["alice", "bob"]).await;
    let bytes: Vec<u8> = (0..5_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (status, grant) = stack
        .post(
            "/channels/team/uploads",
            Some(&stack.token("alice")),
            &json!({"fileName": "figures.pdf", "contentType": "application/pdf", "size": bytes.len()}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    assert!((200..300).contains(&e2e::upload(&grant, bytes.clone()).await));
    let mut alice = stack.connect("alice").await;
    let attachment =
        json!({"key": grant["key"], "fileName": "figures.pdf", "contentType": "application/pdf", "size": bytes.len()});
    alice.send_json(&json!({"action": "sendMessage", "channelId": "team", "clientMsgId": "f1", "text": "the quarterly figures", "attachments": [attachment]})).await;
    alice.recv_type("ack").await;
    sent_id(&mut alice, "team", "f2", "figures without a file").await;

    let page =
        eventually(&stack, "bob", &format!("q={}&hasFile=true", q("figures ")), &["the quarterly figures"]).await;
    let url = page["hits"][0]["message"]["attachments"][0]["url"].as_str().expect("a download URL");
    let downloaded = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert_eq!(downloaded.as_ref(), bytes.as_slice());
    eventually(&stack, "bob", &format!("q={}&hasFile=false", q("figures ")), &["figures without a file"]).await;
}

/// The indexer as deployed, except that it fails every batch holding a record with
/// "poison" in it (as a bug or a bad record would).
struct PoisonedIndexer(Arc<dyn Invoke>);

impl Invoke for PoisonedIndexer {
    fn invoke(&self, function: Function, event: Value) -> InvokeFuture<'_> {
        let poisoned = function == Function::SearchIndexer && event.to_string().contains("poison");
        Box::pin(async move {
            if poisoned {
                return Err(InvokeError::Failed { error_type: "Poisoned".into(), message: "a bad record".into() });
            }
            self.0.invoke(function, event).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_keeps_failing_is_bisected_and_its_bad_record_goes_to_the_failure_topic() {
    let stack = Stack::start_with(StackOptions {
        streams: true,
        invoker: Some(Box::new(|functions| Arc::new(PoisonedIndexer(Arc::new(functions.invoker()))))),
        ..Default::default()
    })
    .await;
    stack.create_channel("team", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    // Within the mapping's batching window: one batch.
    sent_id(&mut alice, "team", "p1", "apples before").await;
    sent_id(&mut alice, "team", "p2", "apples poison").await;
    sent_id(&mut alice, "team", "p3", "apples after").await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let counts = &stack.streams.as_ref().unwrap().counts;
    while counts.discarded_batches.load(Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the bad record was never given up on");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually(&stack, "bob", &format!("q={}", q("apples ")), &["apples after", "apples before"]).await;
    assert_eq!(counts.discarded_batches.load(Ordering::Relaxed), 1);

    // The failure topic got where the batch was: one record.
    let prefix = stack.config.tables.messages.trim_end_matches("MessagesTable").to_owned();
    let data: Value =
        reqwest::get(format!("{}/moto-api/data.json", e2e::moto::endpoint())).await.unwrap().json().await.unwrap();
    let topic = data["sns"]["Topic"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["arn"].as_str().unwrap_or_default().ends_with(&format!(":{prefix}SearchIndexFailures")))
        .expect("the failure topic is in moto");
    let sent = topic["sent_notifications"].as_array().unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].to_string().contains("RetryAttemptsExhausted"), "{sent:?}");
    assert!(sent[0].to_string().contains(r#"\"batchSize\":1"#), "bisected down to the bad record: {sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_indexer_instance_continues_from_the_published_index() {
    let stack = searching().await;
    stack.create_channel("team", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let first = sent_id(&mut alice, "team", "c1", "kept across instances").await;
    eventually(&stack, "bob", &format!("q={}", q("kept ")), &["kept across instances"]).await;

    // A cold instance of the indexer (its own role) reads the shard from S3 and adds to it.
    let indexer = stack.functions.apps.get(Function::SearchIndexer);
    let cold = chat_search::open((**indexer).clone()).unwrap();
    let later = MessageId::from_u64(first.parse::<u64>().unwrap() + 1);
    let change = IndexedMessage {
        channel_id: ChannelId::parse("team").unwrap(),
        message_id: later,
        version: 0,
        author_id: UserId::parse("alice").unwrap(),
        text: "kept by the cold instance".into(),
        has_file: false,
        deleted: false,
    };
    let applied = chat_domain::search::index(&cold, vec![change]).await.unwrap();
    assert_eq!(applied.written, 1);

    // The search function sees both in the index.
    let searcher = stack.functions.apps.get(Function::Search);
    let query = IndexQuery::over("kept ", vec![ChannelId::parse("team").unwrap()]);
    let hits: Vec<u64> =
        searcher.search().unwrap().search(&query).await.unwrap().iter().map(|h| h.message_id.as_u64()).collect();
    assert_eq!(hits, [later.as_u64(), first.parse::<u64>().unwrap()]);
}

/// The mapping as a bad day would run it: every batch delivered twice, the first time with
/// its records in reverse order (an edit before its message, a deletion before the edit).
struct ReplayingIndexer(Arc<dyn Invoke>);

impl Invoke for ReplayingIndexer {
    fn invoke(&self, function: Function, event: Value) -> InvokeFuture<'_> {
        Box::pin(async move {
            if function == Function::SearchIndexer {
                let mut reversed = event.clone();
                if let Some(records) = reversed["Records"].as_array_mut() {
                    records.reverse();
                }
                self.0.invoke(function, reversed).await?;
            }
            self.0.invoke(function, event).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_and_reordered_stream_records_leave_the_index_right() {
    let stack = Stack::start_with(StackOptions {
        streams: true,
        invoker: Some(Box::new(|functions| Arc::new(ReplayingIndexer(Arc::new(functions.invoker()))))),
        ..Default::default()
    })
    .await;
    stack.create_channel("team", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    // Within one batching window: one batch, replayed and reversed.
    let edited = sent_id(&mut alice, "team", "r1", "alpha one").await;
    let deleted = sent_id(&mut alice, "team", "r2", "alpha two").await;
    alice
        .send_json(&json!({"action": "editMessage", "channelId": "team", "messageId": edited, "text": "beta one"}))
        .await;
    alice.recv_type("messageUpdated").await;
    alice.send_json(&json!({"action": "deleteMessage", "channelId": "team", "messageId": deleted})).await;
    alice.recv_type("messageDeleted").await;
    let kept = sent_id(&mut alice, "team", "r3", "alpha three").await;
    eventually(&stack, "bob", &format!("q={}", q("beta ")), &["beta one"]).await;
    eventually(&stack, "bob", &format!("q={}", q("alpha ")), &["alpha three"]).await;

    // The index itself, not only the hits read back: no trace of the old text or the
    // deleted message.
    let index = stack.functions.apps.get(Function::Search);
    let raw = |text: &str| IndexQuery::over(text, vec![ChannelId::parse("team").unwrap()]);
    let ids =
        |hits: Vec<chat_domain::ports::IndexHit>| hits.iter().map(|h| h.message_id.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(index.search().unwrap().search(&raw("alpha ")).await.unwrap()), [kept]);
    assert_eq!(ids(index.search().unwrap().search(&raw("beta ")).await.unwrap()), [edited]);
    assert!(index.search().unwrap().search(&raw("two ")).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_indexes_what_was_stored_before_search_and_repeats_harmlessly() {
    // No stream mapping: as a deployment whose messages predate search.
    let stack = Stack::start().await;
    stack.create_channel("team", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    for n in 0..7 {
        sent_id(&mut alice, "team", &format!("b{n}"), &format!("older note {n}")).await;
    }
    let edited = sent_id(&mut alice, "team", "b7", "a typo here").await;
    alice
        .send_json(
            &json!({"action": "editMessage", "channelId": "team", "messageId": edited, "text": "older note, fixed"}),
        )
        .await;
    alice.recv_type("messageUpdated").await;
    alice.send_json(&json!({"action": "addReaction", "channelId": "team", "messageId": edited, "emoji": "👍"})).await;
    alice.recv_type("reaction").await;
    let (_, page) = search(&stack, "bob", &format!("q={}", q("older "))).await;
    assert!(hit_texts(&page).is_empty(), "nothing indexed yet: {page}");

    // Two parallel parts, page by page, through the indexer as deployed (its own role).
    let invoker = stack.functions.invoker();
    let mut written = 0;
    for round in 0..2 {
        for segment in 0..2 {
            let mut cursor = Value::Null;
            loop {
                let step = json!({"backfill": {"segment": segment, "segments": 2, "cursor": cursor}});
                let done = invoker.invoke(Function::SearchIndexer, step).await.expect("a backfill step");
                if round == 0 {
                    written += done["written"].as_u64().unwrap();
                } else {
                    assert_eq!(done["written"], 0, "a second backfill changes nothing: {done}");
                }
                cursor = done["cursor"].clone();
                if cursor.is_null() {
                    break;
                }
            }
        }
    }
    assert_eq!(written, 8, "every message once, reactions skipped");
    let mut expected = vec!["older note, fixed".to_owned()];
    expected.extend((0..7).rev().map(|n| format!("older note {n}")));
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    eventually(&stack, "bob", &format!("q={}&limit=50", q("older ")), &expected).await;
    eventually(&stack, "bob", &format!("q={}", q("typo ")), &[]).await;
    let bad = invoker.invoke(Function::SearchIndexer, json!({"backfill": {"segment": 2, "segments": 2}})).await;
    assert!(bad.is_err(), "a segment past the count is refused");
}
