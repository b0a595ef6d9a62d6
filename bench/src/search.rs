//! Search: indexing throughput, index size against the raw text, and query latency on a
//! generated corpus (default 1,000,000 messages in 1,000 channels), with the index in this
//! process's memory (the indexer's and the search function's own work, without S3's
//! transfer time); then, end to end on the local stack (moto, the gateway reading the
//! stream as Lambda's event source mapping does), how soon a sent message is found and
//! what a search costs in requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_domain::ids::MessageId;
use chat_domain::model::{ChannelId, UserId};
use chat_domain::ports::{IndexFiles, IndexQuery, IndexedMessage, SearchIndex};
use chat_domain::search::SearchOrder;
use chat_search::TantivyIndex;
use chat_search::memory::MemoryIndexFiles;
use e2e::StackOptions;
use e2e::live::LiveClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

use crate::report;
use crate::stats::Summary;
use crate::world::World;

/// The indexer's batch (template.yaml `BatchSize`).
const BATCH: usize = 500;
const CHANNELS: usize = 1_000;
/// Channels a searching user is in (a query over "all my channels").
const USER_CHANNELS: usize = 20;
const QUERIES: usize = 300;

#[derive(Debug, Serialize)]
pub struct CorpusFigures {
    pub messages: usize,
    pub channels: usize,
    pub shards: u32,
    pub raw_text_bytes: usize,
    pub index_bytes: usize,
    pub index_files: usize,
    pub index_ratio: f64,
    /// The largest shard manifest (its DynamoDB item, about): a publish writes it.
    pub manifest_bytes: usize,
    /// Segments of the largest shard at the end (what a query opens).
    pub segments_per_shard: usize,
    /// Index bytes by part (postings, positions, terms, columns, norms, deletes, store).
    pub bytes_by_part: std::collections::BTreeMap<String, u64>,
    pub indexing_seconds: f64,
    pub indexed_per_second: f64,
    /// The first query of a new instance: it reads the shards it needs from the store.
    pub cold_first_query_ms: f64,
    /// Warm queries over one channel and over a user's 20 channels, ms.
    pub warm_one_channel_ms: Summary,
    pub warm_all_channels_ms: Summary,
    pub p95_one_channel_ms: f64,
    pub p95_all_channels_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct StackFigures {
    /// A cold search function's first query over all 4 shards, reading the corpus's index
    /// from moto's S3, ms; and the index bytes it read.
    pub cold_first_query_s3_ms: f64,
    pub cold_bytes_read: usize,
    /// From the ack of a send to the first search that finds it, ms.
    pub searchable_after_ms: Summary,
    /// `GET /search` through the local gateway, ms.
    pub search_ms: Summary,
    /// AWS requests of one search over 3 channels with hits in 2.
    pub search_requests: Vec<(String, u64)>,
}

/// Words people write, with a long tail: a vocabulary of made-up words drawn with Zipf's
/// law (rank r has weight 1/r), as in natural text.
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new(rng: &mut StdRng, size: usize) -> Self {
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "ba", "do", "fi", "ga", "hu", "je", "pa", "qui",
            "ro", "su", "te", "ul", "ve", "wa", "yo",
        ];
        let mut words = Vec::with_capacity(size);
        let mut seen = std::collections::HashSet::new();
        while words.len() < size {
            let n = rng.random_range(1..=4);
            let word: String = (0..n).map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())]).collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=size)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Self { words, cumulative }
    }

    fn word(&self, rng: &mut StdRng) -> &str {
        let x = rng.random::<f64>() * self.cumulative.last().copied().unwrap_or(1.0);
        &self.words[self.cumulative.partition_point(|c| *c < x).min(self.words.len() - 1)]
    }

    fn sentence(&self, rng: &mut StdRng) -> String {
        let n = rng.random_range(3..=20);
        (0..n).map(|_| self.word(rng)).collect::<Vec<_>>().join(" ")
    }
}

fn channel(n: usize) -> ChannelId {
    ChannelId::parse(format!("c{n:04}")).unwrap()
}

/// The generated corpus's index, kept for [`cold_from_s3`].
pub struct Corpus {
    pub figures: CorpusFigures,
    store: Arc<MemoryIndexFiles>,
    first_query: String,
}

pub async fn corpus(messages: usize, progress: &dyn Fn(&str)) -> Corpus {
    let mut rng = StdRng::seed_from_u64(22);
    let vocabulary = Vocabulary::new(&mut rng, 30_000);
    let store = Arc::new(MemoryIndexFiles::default());
    let shards = chat_domain::settings::DEFAULT_SEARCH_SHARDS;
    let writer = TantivyIndex::new(store.clone() as Arc<dyn IndexFiles>, shards);
    let authors: Vec<UserId> = (0..50).map(|n| UserId::parse(format!("u{n}")).unwrap()).collect();
    let start_ms = chat_domain::ids::ID_EPOCH_MS + 86_400_000;
    let mut raw_text_bytes = 0;
    let mut seqs = vec![0u64; CHANNELS];
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for n in 0..messages {
        let c = rng.random_range(0..CHANNELS);
        seqs[c] += 1;
        let text = vocabulary.sentence(&mut rng);
        raw_text_bytes += text.len();
        batch.push(IndexedMessage {
            channel_id: channel(c),
            message_id: MessageId::claimed(start_ms + n as i64, seqs[c]),
            version: 0,
            author_id: authors[n % authors.len()].clone(),
            text,
            has_file: n % 20 == 0,
            deleted: false,
        });
        if batch.len() == BATCH || n + 1 == messages {
            writer.apply(std::mem::take(&mut batch)).await.expect("the batch is indexed");
        }
        if (n + 1) % 100_000 == 0 {
            progress(&format!("search: {} messages indexed", n + 1));
        }
    }
    let indexing_seconds = started.elapsed().as_secs_f64();

    // A new instance, as a cold search function: its first query reads the shards.
    let reader = TantivyIndex::new(store.clone() as Arc<dyn IndexFiles>, shards);
    let my_channels = my_channels();
    let query = |text: String, channels: Vec<ChannelId>, order| IndexQuery {
        order,
        limit: 21,
        ..IndexQuery::over(text, channels)
    };
    let first_query = vocabulary.words[10].clone();
    let first = Instant::now();
    reader.search(&query(first_query.clone(), my_channels.clone(), SearchOrder::Newest)).await.unwrap();
    let cold_first_query_ms = first.elapsed().as_secs_f64() * 1000.0;

    let mut one = Vec::new();
    let mut all = Vec::new();
    for i in 0..QUERIES {
        // Common, middling and rare words; a phrase; a prefix being typed.
        let text = match i % 5 {
            0 => vocabulary.words[rng.random_range(0..20)].clone(),
            1 => vocabulary.words[rng.random_range(100..2_000)].clone(),
            2 => vocabulary.words[rng.random_range(5_000..30_000)].clone(),
            3 => format!(
                "\"{} {}\"",
                vocabulary.words[rng.random_range(0..50)],
                vocabulary.words[rng.random_range(0..50)]
            ),
            _ => {
                let word = &vocabulary.words[rng.random_range(0..500)];
                format!("{} {}", vocabulary.words[rng.random_range(0..100)], &word[..word.len().min(3)])
            }
        };
        let order = if i % 4 == 3 { SearchOrder::Relevance } else { SearchOrder::Newest };
        let at = Instant::now();
        reader.search(&query(text.clone(), vec![my_channels[i % USER_CHANNELS].clone()], order)).await.unwrap();
        one.push(at.elapsed().as_secs_f64() * 1000.0);
        let at = Instant::now();
        reader.search(&query(text, my_channels.clone(), order)).await.unwrap();
        all.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    let p95 = |samples: &[f64]| {
        let mut sorted = samples.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        crate::stats::percentile(&sorted, 95.0)
    };
    let index_bytes = store.stored_bytes();
    let numbers: Vec<u32> = (0..shards).collect();
    let manifests = store.manifests(&numbers).await.expect("manifests");
    let manifest_bytes = manifests
        .values()
        .map(|m| m.meta.len() + m.files.iter().map(|f| f.name.len() + f.bundle.len() + 40).sum::<usize>())
        .max()
        .unwrap_or(0);
    let segments_per_shard =
        manifests.values().map(|m| m.files.iter().filter(|f| f.name.ends_with(".idx")).count()).max().unwrap_or(0);
    let mut bytes_by_part = std::collections::BTreeMap::new();
    for manifest in manifests.values() {
        for file in &manifest.files {
            let part = file.name.rsplit('.').next().unwrap_or_default().to_owned();
            *bytes_by_part.entry(part).or_insert(0) += file.len;
        }
    }
    let figures = CorpusFigures {
        bytes_by_part,
        manifest_bytes,
        segments_per_shard,
        messages,
        channels: CHANNELS,
        shards,
        raw_text_bytes,
        index_bytes,
        index_files: store.file_count(),
        index_ratio: index_bytes as f64 / raw_text_bytes.max(1) as f64,
        indexing_seconds,
        indexed_per_second: messages as f64 / indexing_seconds.max(f64::EPSILON),
        cold_first_query_ms,
        warm_one_channel_ms: Summary::of(&one),
        warm_all_channels_ms: Summary::of(&all),
        p95_one_channel_ms: p95(&one),
        p95_all_channels_ms: p95(&all),
    };
    Corpus { figures, store, first_query }
}

fn my_channels() -> Vec<ChannelId> {
    (0..USER_CHANNELS).map(|i| channel(i * (CHANNELS / USER_CHANNELS))).collect()
}

/// A cold search function's first query over a user's 20 channels (every shard) with the
/// corpus's index in S3 (moto's, through the IAM proxy as the search function), ms; and the
/// bytes it read.
pub async fn cold_from_s3(corpus: &Corpus) -> (f64, usize) {
    let world = World::start().await;
    let functions = &world.stack.functions.apps;
    let files =
        |function| functions.get(function).ports.index_files.clone().expect("the function has the index bucket");
    // Published as the indexer would have: its bundles, then its manifests.
    let writer = files(local_gateway::routes::Function::SearchIndexer);
    let shards: Vec<u32> = (0..corpus.figures.shards).collect();
    let manifests = corpus.store.manifests(&shards).await.unwrap();
    let mut bytes = 0;
    for (shard, manifest) in &manifests {
        let mut bundles: Vec<&str> = manifest.files.iter().map(|f| f.bundle.as_str()).collect();
        bundles.sort();
        bundles.dedup();
        for bundle in bundles {
            let content = corpus.store.read(*shard, bundle).await.unwrap().expect("a bundle");
            bytes += content.len();
            writer.write(*shard, bundle, content).await.expect("the bundle is stored");
        }
        assert!(writer.publish(*shard, None, manifest).await.unwrap());
    }
    let cold = TantivyIndex::new(files(local_gateway::routes::Function::Search), corpus.figures.shards);
    let query = IndexQuery { limit: 21, ..IndexQuery::over(corpus.first_query.clone(), my_channels()) };
    let at = Instant::now();
    cold.search(&query).await.expect("the cold search answers");
    (at.elapsed().as_secs_f64() * 1000.0, bytes)
}

pub async fn on_the_stack(sends: usize, corpus: &Corpus) -> StackFigures {
    let (cold_first_query_s3_ms, cold_bytes_read) = cold_from_s3(corpus).await;
    let world = World::start_with_options(StackOptions { streams: true, ..Default::default() }).await;
    let stack = &world.stack;
    stack.create_channel("team", &["alice", "bob", "carol"]).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    stack.create_channel("other", &["bob", "carol"]).await;
    let alice = LiveClient::of(stack, "alice").await;
    let token = stack.token("bob");
    let mut searchable = Vec::new();
    let mut searches = Vec::new();
    for n in 0..sends {
        let word = format!("marker{n}x");
        let channel = if n % 2 == 0 { "team" } else { "dm" };
        let frame = json!({"action": "sendMessage", "channelId": channel, "clientMsgId": format!("s{n}"), "text": format!("note {word} for later")});
        assert!(alice.send(&frame).await, "connection open");
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(arrival) = alice.next(deadline.saturating_duration_since(Instant::now())).await {
            if arrival.frame.as_ref().is_some_and(|f| f["type"] == "ack") {
                break;
            }
        }
        let acked = Instant::now();
        loop {
            let at = Instant::now();
            let (status, page) = stack.get(&format!("/search?q={word}%20"), Some(&token)).await;
            searches.push(at.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{page}");
            if page["hits"].as_array().is_some_and(|h| !h.is_empty()) {
                searchable.push(acked.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            assert!(acked.elapsed() < Duration::from_secs(30), "{word} was never found");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // One search's requests, once the indexer is idle.
    world.settle(Duration::from_millis(1500)).await;
    let (counts, _, (status, _)) = world.measure(stack.get("/search?q=note%20", Some(&token))).await;
    assert_eq!(status, 200);
    let search_requests = counts.into_iter().collect();
    StackFigures {
        cold_first_query_s3_ms,
        cold_bytes_read,
        searchable_after_ms: Summary::of(&searchable),
        search_ms: Summary::of(&searches),
        search_requests,
    }
}

pub fn table(corpus: &CorpusFigures, stack: &StackFigures) -> String {
    let ms = |v: f64| format!("{v:.1} ms");
    let rows = vec![
        vec![
            "corpus".into(),
            format!("{} messages in {} channels, {} shards", corpus.messages, corpus.channels, corpus.shards),
        ],
        vec![
            "indexing (batches of 500)".into(),
            format!("{:.0} messages/s ({:.1} s)", corpus.indexed_per_second, corpus.indexing_seconds),
        ],
        vec![
            "index size / raw text".into(),
            format!(
                "{:.1} MB / {:.1} MB = {:.0}% ({} files)",
                corpus.index_bytes as f64 / 1e6,
                corpus.raw_text_bytes as f64 / 1e6,
                corpus.index_ratio * 100.0,
                corpus.index_files
            ),
        ],
        vec![
            "index bytes by part".into(),
            corpus
                .bytes_by_part
                .iter()
                .map(|(part, n)| format!("{part} {:.1} MB", *n as f64 / 1e6))
                .collect::<Vec<_>>()
                .join(", "),
        ],
        vec![
            "largest shard: manifest, segments".into(),
            format!("{:.1} KB, {} segments", corpus.manifest_bytes as f64 / 1e3, corpus.segments_per_shard),
        ],
        vec!["first query of a new instance".into(), ms(corpus.cold_first_query_ms)],
        vec![
            "warm query, one channel: p50 / p95".into(),
            format!("{} / {}", ms(corpus.warm_one_channel_ms.p50), ms(corpus.p95_one_channel_ms)),
        ],
        vec![
            "warm query, 20 channels: p50 / p95".into(),
            format!("{} / {}", ms(corpus.warm_all_channels_ms.p50), ms(corpus.p95_all_channels_ms)),
        ],
        vec![
            "local stack: a cold search's first query, index in moto's S3".into(),
            format!("{} ({:.1} MB read)", ms(stack.cold_first_query_s3_ms), stack.cold_bytes_read as f64 / 1e6),
        ],
        vec![
            "local stack: searchable after the ack, p50 / p99".into(),
            format!("{} / {}", ms(stack.searchable_after_ms.p50), ms(stack.searchable_after_ms.p99)),
        ],
        vec![
            "local stack: GET /search, p50 / p99".into(),
            format!("{} / {}", ms(stack.search_ms.p50), ms(stack.search_ms.p99)),
        ],
        vec![
            "local stack: requests of one search".into(),
            stack.search_requests.iter().map(|(op, n)| format!("{op} {n}")).collect::<Vec<_>>().join(", "),
        ],
    ];
    report::table(&["search", "figure"], &rows)
}
