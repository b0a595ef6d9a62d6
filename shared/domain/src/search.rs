//! Search: who may find what. The index (port [`SearchIndex`]) matches text; these rules
//! decide which channels a query sees, at query time and every time (a member removed a
//! second ago finds nothing more), and answer with the messages as they are now: a hit
//! whose message was deleted or edited away since it was indexed is dropped.

use std::collections::BTreeMap;

pub use chat_protocol::search::*;
use futures::future::try_join_all;

use crate::access;
use crate::app::App;
use crate::error::ChatError;
use crate::ids::{COUNTER_BITS, ID_EPOCH_MS, MessageId};
use crate::model::{ChannelId, Message, UserId};
use crate::ports::{IndexHit, IndexQuery, IndexedMessage};

/// A search as the caller asked it (`GET /search`).
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub q: String,
    pub channel: Option<ChannelId>,
    pub from: Option<UserId>,
    /// Milliseconds since the epoch, exclusive.
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub has_file: Option<bool>,
    pub order: SearchOrder,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// Where the next page starts: below an id (newest first; `skip` hits at that very id,
/// from other channels, were already shown) or after a number of hits (relevance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Below { id: u64, skip: usize },
    Offset(usize),
}

impl Cursor {
    fn parse(raw: &str, order: SearchOrder) -> Result<Self, ChatError> {
        let bad = || ChatError::InvalidRequest("cursor is not one this search gave".into());
        match (order, raw.split_once(':')) {
            (SearchOrder::Newest, Some(("n", rest))) => {
                let (id, skip) = rest.split_once('.').ok_or_else(bad)?;
                Ok(Cursor::Below { id: id.parse().map_err(|_| bad())?, skip: skip.parse().map_err(|_| bad())? })
            }
            (SearchOrder::Relevance, Some(("r", offset))) => {
                let offset: usize = offset.parse().map_err(|_| bad())?;
                if offset > MAX_SEARCH_OFFSET {
                    return Err(bad());
                }
                Ok(Cursor::Offset(offset))
            }
            _ => Err(bad()),
        }
    }

    fn encode(self) -> String {
        match self {
            Cursor::Below { id, skip } => format!("n:{id}.{skip}"),
            Cursor::Offset(offset) => format!("r:{offset}"),
        }
    }
}

/// The first message id at or after `ms`.
fn first_id_at(ms: i64) -> u64 {
    (ms.saturating_sub(ID_EPOCH_MS).max(0) as u64) << COUNTER_BITS
}

/// Checks a query's text: not blank, within [`MAX_QUERY_CHARS`] and [`MAX_QUERY_TERMS`].
pub fn check_text(q: &str) -> Result<(), ChatError> {
    if q.trim().trim_matches('"').trim().is_empty() {
        return Err(ChatError::InvalidRequest("q must have a word to search for".into()));
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ChatError::InvalidRequest(format!("q must be at most {MAX_QUERY_CHARS} characters")));
    }
    if q.split_whitespace().count() > MAX_QUERY_TERMS {
        return Err(ChatError::InvalidRequest(format!("q must be at most {MAX_QUERY_TERMS} words")));
    }
    Ok(())
}

/// Searches the messages of the channels `user` is a member of: one Query for the
/// memberships, the index, then one BatchGetItem per channel with hits, concurrently.
#[tracing::instrument(skip(app, request), fields(%user))]
pub async fn search(app: &App, user: &UserId, request: SearchRequest) -> Result<SearchPage, ChatError> {
    let index = app.search()?;
    check_text(&request.q)?;
    let limit = request.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
    if limit == 0 || limit > MAX_SEARCH_LIMIT {
        return Err(ChatError::InvalidRequest(format!("limit must be between 1 and {MAX_SEARCH_LIMIT}")));
    }
    let cursor = request.cursor.as_deref().map(|raw| Cursor::parse(raw, request.order)).transpose()?;

    // Membership now, not when the messages were indexed.
    let mut channels: Vec<ChannelId> =
        app.channels().memberships(user).await?.into_iter().map(|m| m.channel_id).collect();
    if let Some(only) = &request.channel {
        if !channels.contains(only) {
            return Err(access::not_a_member(only));
        }
        channels = vec![only.clone()];
    }
    if channels.is_empty() {
        return Ok(SearchPage { hits: Vec::new(), next_cursor: None });
    }

    let mut high = request.before.map(|ms| first_id_at(ms).saturating_sub(1)).unwrap_or(u64::MAX);
    let low = request.after.map(|ms| first_id_at(ms.saturating_add(1))).unwrap_or(0);
    let (offset, skip_at_top) = match cursor {
        Some(Cursor::Below { id, skip }) => {
            high = high.min(id);
            (skip, Some(id))
        }
        Some(Cursor::Offset(offset)) => (offset, None),
        None => (0, None),
    };
    if low > high {
        return Ok(SearchPage { hits: Vec::new(), next_cursor: None });
    }
    let query = IndexQuery {
        text: request.q.clone(),
        channels,
        author: request.from.clone(),
        low: MessageId::from_u64(low),
        high: MessageId::from_u64(high),
        has_file: request.has_file,
        order: request.order,
        offset,
        // One more tells whether there is a next page.
        limit: limit + 1,
    };
    let mut found = index.search(&query).await?;
    let more = found.len() > limit;
    found.truncate(limit);

    let next_cursor = more
        .then(|| match request.order {
            SearchOrder::Newest => {
                let last = found.last()?.message_id.as_u64();
                let at_last = found.iter().filter(|h| h.message_id.as_u64() == last).count();
                let skip = if skip_at_top == Some(last) { offset + at_last } else { at_last };
                Some(Cursor::Below { id: last, skip })
            }
            SearchOrder::Relevance => {
                let next = offset + limit;
                (next < MAX_SEARCH_OFFSET).then_some(Cursor::Offset(next))
            }
        })
        .flatten()
        .map(Cursor::encode);

    let messages = current_messages(app, &found).await?;
    let mut hits = Vec::with_capacity(found.len());
    for hit in &found {
        let Some(message) = messages.get(&(hit.channel_id.clone(), hit.message_id)) else { continue };
        if message.deleted {
            continue;
        }
        // Edited since it was indexed, and no longer matching: not a hit.
        let Some(snippet) = index.snippet(&request.q, &message.text) else { continue };
        let message = crate::media::with_download_urls(app, message.clone()).await;
        hits.push(SearchHit { message, snippet });
    }
    crate::metrics::count("SearchHits", hits.len() as u64);
    Ok(SearchPage { hits, next_cursor })
}

/// The hits' messages as they are now, one read per channel.
async fn current_messages(
    app: &App,
    hits: &[IndexHit],
) -> Result<BTreeMap<(ChannelId, MessageId), Message>, ChatError> {
    let mut by_channel: BTreeMap<&ChannelId, Vec<MessageId>> = BTreeMap::new();
    for hit in hits {
        by_channel.entry(&hit.channel_id).or_default().push(hit.message_id);
    }
    let reads =
        by_channel.into_iter().map(|(channel, ids)| async move { app.messages().get_many(channel, &ids).await });
    let pages = try_join_all(reads).await?;
    Ok(pages.into_iter().flatten().map(|message| ((message.channel_id.clone(), message.message_id), message)).collect())
}

/// Feeds the index with changed messages (the indexer function, from the Messages table's
/// stream): the highest version of each message wins whatever the order they arrive in.
pub async fn index(app: &App, changes: Vec<IndexedMessage>) -> Result<crate::ports::Applied, ChatError> {
    let index = app.search()?;
    let applied = index.apply(changes).await?;
    crate::metrics::count("IndexedChanges", applied.written as u64);
    crate::metrics::count("StaleChanges", applied.stale as u64);
    Ok(applied)
}

/// Items one backfill invocation reads (a Scan page; well within Lambda's time).
pub const BACKFILL_PAGE: usize = 1_000;
/// Parallel parts a backfill may be split into.
pub const MAX_BACKFILL_SEGMENTS: u32 = 64;

/// What one backfill step did, and where the next starts (`None`: this part is done).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backfilled {
    pub scanned: usize,
    pub written: usize,
    pub cursor: Option<String>,
}

/// One step of rebuilding the index from the Messages table (the messages stored before
/// search was deployed, or a lost index): a page of part `segment` of a `segments`-way
/// parallel scan, into the index. Safe beside the stream and when repeated: the highest
/// version of each message wins.
pub async fn backfill(app: &App, segment: u32, segments: u32, cursor: Option<&str>) -> Result<Backfilled, ChatError> {
    if segments == 0 || segments > MAX_BACKFILL_SEGMENTS || segment >= segments {
        return Err(ChatError::InvalidRequest(format!(
            "a backfill has 1-{MAX_BACKFILL_SEGMENTS} segments, numbered from 0"
        )));
    }
    let index = app.search()?;
    let page = app.messages().scan(segment, segments, cursor, BACKFILL_PAGE).await?;
    let applied = index.apply(page.messages.iter().map(indexed).collect()).await?;
    crate::metrics::count("IndexedChanges", applied.written as u64);
    Ok(Backfilled { scanned: page.messages.len(), written: applied.written, cursor: page.cursor })
}

/// What the index keeps of a stored message.
pub fn indexed(message: &Message) -> IndexedMessage {
    IndexedMessage {
        channel_id: message.channel_id.clone(),
        message_id: message.message_id,
        version: message.change_seq.unwrap_or(0),
        author_id: message.author_id.clone(),
        text: if message.deleted { String::new() } else { message.text.clone() },
        has_file: !message.deleted && !message.attachments.is_empty(),
        deleted: message.deleted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_the_other_order() {
        let below = Cursor::Below { id: 42, skip: 2 };
        assert_eq!(Cursor::parse(&below.encode(), SearchOrder::Newest).unwrap(), below);
        assert!(Cursor::parse(&below.encode(), SearchOrder::Relevance).is_err());
        let offset = Cursor::Offset(40);
        assert_eq!(Cursor::parse(&offset.encode(), SearchOrder::Relevance).unwrap(), offset);
        assert!(Cursor::parse("r:100000", SearchOrder::Relevance).is_err());
        assert!(Cursor::parse("junk", SearchOrder::Newest).is_err());
    }

    #[test]
    fn query_text_is_bounded() {
        assert!(check_text("  ").is_err());
        assert!(check_text("\"\"").is_err());
        assert!(check_text(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(check_text(&vec!["w"; MAX_QUERY_TERMS + 1].join(" ")).is_err());
        assert!(check_text("hello \"big world\"").is_ok());
    }

    #[test]
    fn time_bounds_map_to_ids() {
        let id = MessageId::claimed(ID_EPOCH_MS + 5_000, 7).as_u64();
        assert!(first_id_at(ID_EPOCH_MS + 5_000) <= id && id < first_id_at(ID_EPOCH_MS + 5_001));
    }
}
