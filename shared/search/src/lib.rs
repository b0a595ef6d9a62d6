//! The full-text index of messages (port [`SearchIndex`]), with tantivy.
//!
//! Messages are spread over a fixed number of shards by channel; a shard is an ordinary
//! tantivy index whose files never change once written, named by a manifest that only a
//! writer who read the version it replaces can publish ([`IndexFiles`]: in AWS the files
//! are S3 objects and the manifest a DynamoDB item). Writers (the indexer) and readers (the
//! search function) each hold the shards they used in memory while warm and read only the
//! files a newer version adds.

pub mod analyzer;
pub mod memory;
pub mod query;
pub mod schema;
pub mod shard;
pub mod snippet;

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use chat_domain::PortError;
use chat_domain::model::ChannelId;
use chat_domain::ports::{
    Applied, IndexFile, IndexFiles, IndexHit, IndexManifest, IndexQuery, IndexedMessage, SearchIndex,
};
use chat_domain::search::{SearchOrder, SnippetFragment};
use tantivy::collector::TopDocs;
use tantivy::directory::Directory;
use tantivy::merge_policy::LogMergePolicy;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, IndexWriter, Order, Searcher, TantivyDocument, Term};

use crate::schema::Fields;
use crate::shard::{Shard, Shards, index_error};

/// tantivy's smallest writer memory budget; a batch of changes is far smaller.
const WRITER_MEMORY_BYTES: usize = 15_000_000;
/// Attempts at publishing a shard when other writers keep publishing first.
const PUBLISH_ATTEMPTS: usize = 4;
/// The default number of shards (`SEARCH_SHARDS`).
pub const DEFAULT_SHARDS: u32 = 4;

/// A name no other writer picks: the version it publishes and a random part (two writers
/// racing for one version both write their bundle; only one is published).
fn bundle_name(version: u64) -> String {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    format!("v{version:08}-{random:016x}.bundle")
}

/// The shard of a channel: FNV-1a of its id, stable across builds and machines.
pub fn shard_of(channel: &ChannelId, shards: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in channel.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(shards.max(1))) as u32
}

pub struct TantivyIndex {
    store: Arc<dyn IndexFiles>,
    shards: u32,
    held: Shards,
    /// One batch at a time writes into the held shards.
    writing: tokio::sync::Mutex<()>,
}

impl TantivyIndex {
    pub fn new(store: Arc<dyn IndexFiles>, shards: u32) -> Self {
        Self { store, shards: shards.max(1), held: Shards::default(), writing: tokio::sync::Mutex::new(()) }
    }

    /// Applies one shard's changes, re-reading and retrying when another writer publishes
    /// first. Writes into the shard this instance holds (searches read it through a
    /// reader that only moves on reload); one that could not be published is dropped.
    async fn apply_to_shard(&self, number: u32, changes: &[IndexedMessage]) -> Result<Applied, PortError> {
        let _one_writer = self.writing.lock().await;
        for _ in 0..PUBLISH_ATTEMPTS {
            let manifest = self.store.manifests(&[number]).await?.remove(&number);
            let shard = self.held.at(&*self.store, number, manifest.as_ref()).await?;
            match self.write_and_publish(&shard, changes).await {
                Ok(Some(applied)) => return Ok(applied),
                // Someone else published: start again from theirs.
                Ok(None) => self.held.drop_shard(number).await,
                Err(err) => {
                    self.held.drop_shard(number).await;
                    return Err(err);
                }
            }
        }
        Err(PortError::Contended(format!("index shard {number} kept changing under the indexer")))
    }

    /// `None` when another writer published first.
    async fn write_and_publish(&self, shard: &Shard, changes: &[IndexedMessage]) -> Result<Option<Applied>, PortError> {
        let number = shard.number;
        let (written, stale) = write_changes(shard, changes)?;
        if written == 0 {
            return Ok(Some(Applied { written: 0, stale, shards: 0 }));
        }
        let (names, meta) = shard.published_state()?;
        let version = shard.version.map_or(1, |v| v + 1);
        // The files this commit added travel as one bundle: one write, one read.
        let bundle = bundle_name(version);
        let mut bytes = Vec::new();
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            if let Some(kept) = shard.files.iter().find(|f| f.name == name) {
                files.push(kept.clone());
                continue;
            }
            let content = shard.directory.atomic_read(std::path::Path::new(&name));
            let content = content.map_err(|e| PortError::Corrupt(Box::new(e)))?;
            files.push(IndexFile {
                name,
                bundle: bundle.clone(),
                offset: bytes.len() as u64,
                len: content.len() as u64,
            });
            bytes.extend_from_slice(&content);
        }
        let wrote_bundle = !bytes.is_empty();
        if wrote_bundle {
            self.store.write(number, &bundle, bytes).await?;
        }
        let next = IndexManifest { version, meta, files: files.clone() };
        if !self.store.publish(number, shard.version, &next).await? {
            // Our bundle is unreferenced.
            if wrote_bundle {
                let _ = self.store.remove(number, std::slice::from_ref(&bundle)).await;
            }
            return Ok(None);
        }
        let gone: Vec<String> =
            shard.files.iter().filter(|f| !files.iter().any(|n| n.name == f.name)).map(|f| f.name.clone()).collect();
        shard.forget(&gone);
        let mut unused: Vec<String> =
            shard.files.iter().map(|f| f.bundle.clone()).filter(|b| !files.iter().any(|f| &f.bundle == b)).collect();
        unused.sort();
        unused.dedup();
        // Searchers still on the old version read these only until they reload.
        if let Err(err) = self.store.remove(number, &unused).await {
            tracing::warn!(shard = number, error = %err, "old index bundles left behind");
        }
        shard.reader.reload().map_err(index_error)?;
        let published = Shard {
            number,
            version: Some(next.version),
            files: next.files,
            directory: shard.directory.clone(),
            index: shard.index.clone(),
            reader: shard.reader.clone(),
            fields: shard.fields,
        };
        self.held.keep(Arc::new(published)).await;
        Ok(Some(Applied { written, stale, shards: 1 }))
    }

    async fn search_shard(
        &self,
        shard: &Shard,
        query: &IndexQuery,
        channels: &[&ChannelId],
    ) -> Result<Vec<Found>, PortError> {
        let clauses = query::parse(&query.text);
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let fields = shard.fields;
        let mut filters: Vec<(Occur, Box<dyn Query>)> = vec![
            (
                Occur::Must,
                Box::new(TermSetQuery::new(channels.iter().map(|c| Term::from_field_text(fields.channel, c.as_str())))),
            ),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_u64(fields.id, query.low.as_u64())),
                    Bound::Included(Term::from_field_u64(fields.id, query.high.as_u64())),
                )),
            ),
        ];
        if let Some(author) = &query.author {
            filters.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(fields.author, author.as_str()),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(has_file) = query.has_file {
            filters.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(fields.has_file, u64::from(has_file)),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        let full: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
            (Occur::Must, query::text_query(fields.text, &clauses)),
            (Occur::Must, Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(filters)), 0.0))),
        ]));
        let searcher = shard.reader.searcher();
        let wanted = query.offset + query.limit;
        let addresses: Vec<(f32, DocAddress)> = match query.order {
            SearchOrder::Newest => searcher
                .search(&full, &TopDocs::with_limit(wanted).order_by_fast_field::<u64>("id", Order::Desc))
                .map_err(index_error)?
                .into_iter()
                .map(|(_, address)| (0.0, address))
                .collect(),
            SearchOrder::Relevance => {
                searcher.search(&full, &TopDocs::with_limit(wanted).order_by_score()).map_err(index_error)?
            }
        };
        addresses.into_iter().map(|(score, address)| found(&searcher, score, address)).collect()
    }
}

/// A hit of one shard, before the shards' hits are merged.
struct Found {
    score: f32,
    hit: IndexHit,
}

fn found(searcher: &Searcher, score: f32, address: DocAddress) -> Result<Found, PortError> {
    let segment = searcher.segment_reader(address.segment_ord);
    let columns = segment.fast_fields();
    let id = columns.u64("id").map_err(index_error)?.first(address.doc_id).unwrap_or_default();
    let channels = columns.str("channel").map_err(index_error)?;
    let mut channel = String::new();
    if let Some(channels) = channels
        && let Some(ord) = channels.term_ords(address.doc_id).next()
    {
        channels.ord_to_str(ord, &mut channel).map_err(|e| PortError::Corrupt(Box::new(e)))?;
    }
    let channel_id = ChannelId::parse(channel).map_err(|e| PortError::Corrupt(Box::new(e)))?;
    Ok(Found { score, hit: IndexHit { channel_id, message_id: chat_domain::ids::MessageId::from_u64(id) } })
}

/// Merge as soon as 4 segments of a size are there (tantivy's default waits for 8): fewer
/// segments per query, and fewer copies of the term dictionary in the index.
fn merge_policy() -> LogMergePolicy {
    let mut policy = LogMergePolicy::default();
    policy.set_min_num_segments(4);
    policy
}

/// The query that finds one message's document.
fn key_query(fields: Fields, channel: &ChannelId, id: u64) -> BooleanQuery {
    BooleanQuery::new(vec![
        (
            Occur::Must,
            Box::new(TermQuery::new(Term::from_field_text(fields.channel, channel.as_str()), IndexRecordOption::Basic)),
        ),
        (
            Occur::Must,
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(fields.id, id)),
                Bound::Included(Term::from_field_u64(fields.id, id)),
            )),
        ),
    ])
}

/// The version the index holds of a message.
fn held_version(searcher: &Searcher, fields: Fields, channel: &ChannelId, id: u64) -> Result<Option<u64>, PortError> {
    let top = searcher
        .search(
            &key_query(fields, channel, id),
            &TopDocs::with_limit(1).order_by_fast_field::<u64>("version", Order::Desc),
        )
        .map_err(index_error)?;
    Ok(top.first().map(|(version, _)| version.unwrap_or(0)))
}

/// Writes the changes newer than what `shard` holds and commits: (written, stale).
fn write_changes(shard: &Shard, changes: &[IndexedMessage]) -> Result<(usize, usize), PortError> {
    let fields = shard.fields;
    // Of several changes of one message in a batch, the highest version.
    let mut newest: BTreeMap<(&ChannelId, u64), &IndexedMessage> = BTreeMap::new();
    for change in changes {
        let key = (&change.channel_id, change.message_id.as_u64());
        if newest.get(&key).is_none_or(|held| held.version < change.version) {
            newest.insert(key, change);
        }
    }
    let mut stale = changes.len() - newest.len();
    let searcher = shard.reader.searcher();
    let mut writer: IndexWriter = shard.index.writer_with_num_threads(1, WRITER_MEMORY_BYTES).map_err(index_error)?;
    writer.set_merge_policy(Box::new(merge_policy()));
    let mut written = 0;
    for ((channel, id), change) in newest {
        if held_version(&searcher, fields, channel, id)?.is_some_and(|held| held >= change.version) {
            stale += 1;
            continue;
        }
        writer.delete_query(Box::new(key_query(fields, channel, id))).map_err(index_error)?;
        let mut doc = TantivyDocument::default();
        doc.add_text(fields.channel, channel.as_str());
        doc.add_u64(fields.id, id);
        doc.add_u64(fields.version, change.version);
        doc.add_text(fields.author, change.author_id.as_str());
        // A deleted message keeps only its key and version: nothing of it can match.
        if !change.deleted {
            doc.add_text(fields.text, &change.text);
            doc.add_u64(fields.has_file, u64::from(change.has_file));
        }
        writer.add_document(doc).map_err(index_error)?;
        written += 1;
    }
    if written > 0 {
        writer.commit().map_err(index_error)?;
        // Merges bound the segments a query opens; finish them before publishing.
        writer.wait_merging_threads().map_err(index_error)?;
    }
    Ok((written, stale))
}

#[async_trait]
impl SearchIndex for TantivyIndex {
    async fn apply(&self, changes: Vec<IndexedMessage>) -> Result<Applied, PortError> {
        let mut by_shard: BTreeMap<u32, Vec<IndexedMessage>> = BTreeMap::new();
        for change in changes {
            by_shard.entry(shard_of(&change.channel_id, self.shards)).or_default().push(change);
        }
        let mut total = Applied::default();
        for (number, changes) in by_shard {
            let applied = self.apply_to_shard(number, &changes).await?;
            total.written += applied.written;
            total.stale += applied.stale;
            total.shards += applied.shards;
        }
        Ok(total)
    }

    async fn search(&self, query: &IndexQuery) -> Result<Vec<IndexHit>, PortError> {
        let mut by_shard: BTreeMap<u32, Vec<&ChannelId>> = BTreeMap::new();
        for channel in &query.channels {
            by_shard.entry(shard_of(channel, self.shards)).or_default().push(channel);
        }
        let numbers: Vec<u32> = by_shard.keys().copied().collect();
        let manifests: HashMap<u32, IndexManifest> = self.store.manifests(&numbers).await?;
        let mut found = Vec::new();
        for (number, channels) in by_shard {
            // A shard nothing was published to holds nothing.
            let Some(manifest) = manifests.get(&number) else { continue };
            let shard = self.held.at(&*self.store, number, Some(manifest)).await?;
            found.extend(self.search_shard(&shard, query, &channels).await?);
        }
        match query.order {
            SearchOrder::Newest => found.sort_by(|a, b| {
                b.hit.message_id.cmp(&a.hit.message_id).then_with(|| a.hit.channel_id.cmp(&b.hit.channel_id))
            }),
            SearchOrder::Relevance => {
                found.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| b.hit.message_id.cmp(&a.hit.message_id)))
            }
        }
        Ok(found.into_iter().skip(query.offset).take(query.limit).map(|f| f.hit).collect())
    }

    fn snippet(&self, query_text: &str, text: &str) -> Option<Vec<SnippetFragment>> {
        let clauses = query::parse(query_text);
        let matches = query::matches(&clauses, text)?;
        Some(snippet::fragments(text, &matches))
    }
}

/// `app` with the index over its index files (the search and indexer functions).
pub fn open(mut app: chat_domain::App) -> Result<chat_domain::App, PortError> {
    let files = app.ports.index_files.clone().ok_or(PortError::Unconfigured("SEARCH_BUCKET"))?;
    app.ports.search = Some(Arc::new(TantivyIndex::new(files, app.settings.search_shards)));
    Ok(app)
}
