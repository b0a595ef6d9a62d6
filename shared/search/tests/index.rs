//! The index over an in-memory store: what is found, and that the newest version of each
//! message wins whatever order its changes arrive in.

use std::sync::Arc;

use chat_domain::ids::MessageId;
use chat_domain::model::{ChannelId, UserId};
use chat_domain::ports::{IndexFiles, IndexQuery, IndexedMessage, SearchIndex};
use chat_domain::search::SearchOrder;
use chat_search::TantivyIndex;
use chat_search::memory::MemoryIndexFiles;

fn channel(name: &str) -> ChannelId {
    ChannelId::parse(name).unwrap()
}

fn message(ch: &str, id: u64, version: u64, text: &str) -> IndexedMessage {
    IndexedMessage {
        channel_id: channel(ch),
        message_id: MessageId::from_u64(id),
        version,
        author_id: UserId::parse("alice").unwrap(),
        text: text.into(),
        has_file: false,
        deleted: false,
    }
}

fn deleted(ch: &str, id: u64, version: u64) -> IndexedMessage {
    IndexedMessage { text: String::new(), deleted: true, ..message(ch, id, version, "") }
}

fn query(text: &str, channels: &[&str]) -> IndexQuery {
    IndexQuery::over(text, channels.iter().map(|c| channel(c)).collect())
}

async fn ids(index: &TantivyIndex, q: IndexQuery) -> Vec<u64> {
    index.search(&q).await.unwrap().into_iter().map(|h| h.message_id.as_u64()).collect()
}

#[tokio::test]
async fn words_phrases_and_prefixes_are_found_newest_first() {
    let store = Arc::new(MemoryIndexFiles::default());
    let index = TantivyIndex::new(store, 2);
    index
        .apply(vec![
            message("general", 1, 0, "Lunch at noon?"),
            message("general", 2, 0, "the big meeting moved to Friday"),
            message("general", 3, 0, "a meeting, big news"),
            message("random", 4, 0, "lunch is ready"),
            message("general", 5, 0, "Café crème at the corner"),
        ])
        .await
        .unwrap();
    assert_eq!(ids(&index, query("lunch ", &["general", "random"])).await, [4, 1]);
    assert_eq!(ids(&index, query("lunch ", &["general"])).await, [1], "only the channels asked for");
    assert_eq!(ids(&index, query("\"big meeting\"", &["general"])).await, [2]);
    assert_eq!(ids(&index, query("meeting big ", &["general"])).await, [3, 2]);
    assert_eq!(ids(&index, query("fri", &["general"])).await, [2], "the last word is a prefix");
    assert_eq!(ids(&index, query("fri ", &["general"])).await, Vec::<u64>::new(), "not once the word is done");
    assert_eq!(ids(&index, query("CAFE CREME", &["general"])).await, [5], "case and accents do not matter");
    let mut relevance = query("meeting", &["general"]);
    relevance.order = SearchOrder::Relevance;
    assert_eq!(ids(&index, relevance).await.len(), 2);
}

#[tokio::test]
async fn the_newest_version_wins_in_any_order_and_deletions_stay_deleted() {
    let store = Arc::new(MemoryIndexFiles::default());
    let index = TantivyIndex::new(store.clone(), 1);
    index.apply(vec![message("general", 1, 0, "original words")]).await.unwrap();
    // An edit, then the original again (a replayed stream record).
    index.apply(vec![message("general", 1, 3, "edited words")]).await.unwrap();
    let replay = index.apply(vec![message("general", 1, 0, "original words")]).await.unwrap();
    assert_eq!((replay.written, replay.stale), (0, 1));
    assert_eq!(ids(&index, query("edited", &["general"])).await, [1]);
    assert!(ids(&index, query("original", &["general"])).await.is_empty());
    // A deletion, then the edit arriving late: still deleted.
    index.apply(vec![deleted("general", 1, 5), message("general", 1, 3, "edited words")]).await.unwrap();
    index.apply(vec![message("general", 1, 3, "edited words")]).await.unwrap();
    assert!(ids(&index, query("edited", &["general"])).await.is_empty());
    assert!(ids(&index, query("words", &["general"])).await.is_empty());

    // Another instance (a cold search function) reads the same published state.
    let reader = TantivyIndex::new(store as Arc<dyn IndexFiles>, 1);
    assert!(ids(&reader, query("words", &["general"])).await.is_empty());
}

#[tokio::test]
async fn two_writers_never_lose_each_others_changes() {
    let store: Arc<dyn IndexFiles> = Arc::new(MemoryIndexFiles::default());
    let first = TantivyIndex::new(store.clone(), 1);
    let second = TantivyIndex::new(store.clone(), 1);
    for round in 0..5u64 {
        let (a, b) = tokio::join!(
            first.apply(vec![message("general", round * 2 + 1, 0, "from the first writer")]),
            second.apply(vec![message("general", round * 2 + 2, 0, "from the second writer")]),
        );
        a.unwrap();
        b.unwrap();
    }
    let reader = TantivyIndex::new(store, 1);
    assert_eq!(ids(&reader, query("writer", &["general"])).await.len(), 10);
}

#[tokio::test]
async fn filters_narrow_the_hits() {
    let index = TantivyIndex::new(Arc::new(MemoryIndexFiles::default()), 3);
    let mut with_file = message("general", 2, 0, "report attached");
    with_file.has_file = true;
    let mut by_bob = message("general", 3, 0, "report by bob");
    by_bob.author_id = UserId::parse("bob").unwrap();
    index.apply(vec![message("general", 1, 0, "report draft"), with_file, by_bob]).await.unwrap();
    let mut q = query("report", &["general"]);
    q.has_file = Some(true);
    assert_eq!(ids(&index, q).await, [2]);
    let mut q = query("report", &["general"]);
    q.author = Some(UserId::parse("bob").unwrap());
    assert_eq!(ids(&index, q).await, [3]);
    let mut q = query("report", &["general"]);
    q.high = MessageId::from_u64(2);
    q.limit = 1;
    assert_eq!(ids(&index, q).await, [2]);
}

#[test]
fn snippets_mark_what_matched_and_refuse_what_no_longer_does() {
    let index = TantivyIndex::new(Arc::new(MemoryIndexFiles::default()), 1);
    let fragments = index.snippet("lunch tom", "Lunch tomorrow?").unwrap();
    let marked: Vec<(&str, bool)> = fragments.iter().map(|f| (f.text.as_str(), f.highlighted)).collect();
    assert_eq!(marked, [("Lunch", true), (" ", false), ("tomorrow", true), ("?", false)]);
    assert!(index.snippet("lunch", "dinner tonight").is_none());
}
