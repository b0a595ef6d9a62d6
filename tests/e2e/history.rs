//! History: pages across time buckets, skipping the empty ones.

use chat_aws::metrics::RequestCounter;
use chat_domain::clock::ManualClock;
use chat_domain::ids::BUCKET_MS;
use e2e::{Stack, StackOptions};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_across_buckets_with_long_empty_gaps() {
    let start = 1_767_225_600_000; // 2026-01-01
    let clock = ManualClock::starting_at(start);
    let stack = Stack::start_with(StackOptions { clock: Some(clock.clone()), ..Default::default() }).await;
    stack.create_channel("archive", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;

    // Three bursts: now, 100 days later, 1000 days after that (10 and 100 empty buckets between).
    let mut sent = Vec::new();
    for (burst, gap_days) in [(0, 0), (1, 100), (2, 1000)] {
        clock.advance(gap_days * DAY_MS);
        for n in 0..3 {
            clock.advance(1000);
            alice.send_message("archive", &format!("b{burst}-{n}"), &format!("burst {burst} #{n}")).await;
            let ack = alice.recv().await;
            assert_eq!(ack["type"], "ack", "{ack}");
            sent.push(ack["message"]["messageId"].as_str().unwrap().to_owned());
        }
    }
    let buckets: std::collections::BTreeSet<i64> =
        sent.iter().map(|id| chat_domain::ids::MessageId::from_u64(id.parse().unwrap()).bucket().0).collect();
    assert_eq!(buckets.len(), 3, "three non-empty buckets");
    let span = buckets.last().unwrap() - buckets.first().unwrap();
    assert!(span > 100, "spread over {span} buckets of {} days", BUCKET_MS / DAY_MS);

    // Pages of 2, newest first, following nextBefore.
    let before = stack.requests.snapshot();
    let mut pages = 0;
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let (status, page) = stack.history("bob", "archive", &query).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for message in page["messages"].as_array().unwrap() {
            seen.push(message["messageId"].as_str().unwrap().to_owned());
        }
        match page["nextBefore"].as_str() {
            Some(cursor) => query = format!("limit=2&before={cursor}"),
            None => break,
        }
    }
    let used = RequestCounter::diff(&before, &stack.requests.snapshot());

    let mut expected = sent.clone();
    expected.reverse();
    assert_eq!(seen, expected, "everything once, newest first");
    assert_eq!(pages, 5);
    // One BatchGetItem (meta + membership) per page, and at most two bucket queries per page
    // of two: never a request for one of the ~110 empty buckets.
    assert_eq!(used.get("dynamodb.BatchGetItem").copied(), Some(pages));
    assert!(used.get("dynamodb.Query").copied().unwrap_or(0) <= 2 * pages, "{used:?}");

    // `after` bounds a page from below: the messages newer than the first burst.
    let (status, page) = stack.history("bob", "archive", &format!("after={}", sent[2])).await;
    assert_eq!(status, 200);
    let newer: Vec<&str> =
        page["messages"].as_array().unwrap().iter().map(|m| m["messageId"].as_str().unwrap()).collect();
    let mut expected_newer: Vec<&str> = sent[3..].iter().map(String::as_str).collect();
    expected_newer.reverse();
    assert_eq!(newer, expected_newer);
    assert!(page.get("nextBefore").is_none());
}
