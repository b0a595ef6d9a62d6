//! Reading back: a page of a channel's history, newest first, walking only the buckets
//! that hold messages, bounded in count and in bytes.

use crate::access;
use crate::app::App;
use crate::error::ChatError;
pub use crate::http::HistoryPage;
use crate::ids::{Bucket, MessageId};
use crate::model::{ChannelId, Message, UserId};
use crate::ports::{ChannelMeta, Order, Reactions};
use std::collections::{BTreeMap, HashMap};

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 100;
/// A history page stops before this many bytes: Lambda answers at most 6 MB, and the page
/// travels as JSON inside the JSON of the HTTP API response (escaped twice), plus headers.
pub const MAX_PAGE_BYTES: usize = 5 * 1024 * 1024;

/// A page of history query: ids strictly between `after` and `before`, newest first.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
    pub limit: Option<usize>,
}

/// Reads a page of a channel's history, walking only the buckets that hold messages:
/// one BatchGetItem (meta + membership), then one Query per non-empty bucket visited; then
/// the page's reactions (one Query per bucket of the page, once the channel has had any
/// change) and, when replies in it answer messages outside it, one BatchGetItem for those.
#[tracing::instrument(skip(app), fields(%user, %channel_id))]
pub async fn history(
    app: &App,
    user: &UserId,
    channel_id: &ChannelId,
    query: HistoryQuery,
) -> Result<HistoryPage, ChatError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(ChatError::InvalidRequest(format!("limit must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let meta = access::meta_for_member(app, user, channel_id).await?;

    // Exclusive bounds become inclusive id ranges.
    let high = match query.before {
        Some(before) if before.as_u64() == 0 => {
            return Ok(HistoryPage { messages: vec![], next_before: None });
        }
        Some(before) => MessageId::from_u64(before.as_u64() - 1),
        None => MessageId::from_u64(u64::MAX),
    };
    let low = query.after.map(|a| MessageId::from_u64(a.as_u64().saturating_add(1))).unwrap_or(MessageId::ZERO);

    // One more than asked for tells whether another page exists.
    let want = limit + 1;
    let mut messages = Vec::with_capacity(want);
    let buckets: Vec<Bucket> =
        meta.buckets.iter().rev().copied().filter(|b| *b <= high.bucket() && *b >= low.bucket()).collect();
    for bucket in buckets {
        let from = low.max(bucket.first_id());
        let to = high.min(bucket.last_id());
        if from > to {
            continue;
        }
        let found =
            app.messages().in_bucket(channel_id, bucket, (from, to), want - messages.len(), Order::NewestFirst).await?;
        messages.extend(found);
        if messages.len() >= want {
            break;
        }
    }
    let more = messages.len() > limit;
    messages.truncate(limit);
    let reactions = reactions_in_page(app, &meta, &messages).await?;
    crate::reading::show(app, user, channel_id, &mut messages, &reactions).await?;
    let mut page = Vec::with_capacity(messages.len());
    let mut page_bytes = 0;
    for message in messages {
        let message = crate::media::with_download_urls(app, message).await;
        let size = bytes_in_http_answer(&message);
        if !page.is_empty() && page_bytes + size > MAX_PAGE_BYTES {
            // The rest is the next page: `nextBefore` says where it starts.
            let next_before = page.last().map(|m: &Message| m.message_id);
            return Ok(HistoryPage { messages: page, next_before });
        }
        page_bytes += size;
        page.push(message);
    }
    let next_before = if more { page.last().map(|m| m.message_id) } else { None };
    Ok(HistoryPage { messages: page, next_before })
}

/// The reactions to a page's messages: one Query per bucket the page spans, over the
/// page's id range (reading only messages that have reactions), and none at all in a
/// channel that never had a change.
async fn reactions_in_page(
    app: &App,
    meta: &ChannelMeta,
    page: &[Message],
) -> Result<HashMap<MessageId, Reactions>, ChatError> {
    let mut found = HashMap::new();
    if meta.change_seq == 0 {
        return Ok(found);
    }
    let mut ranges: BTreeMap<Bucket, (MessageId, MessageId)> = BTreeMap::new();
    for id in page.iter().map(|m| m.message_id) {
        let range = ranges.entry(id.bucket()).or_insert((id, id));
        range.0 = range.0.min(id);
        range.1 = range.1.max(id);
    }
    for (bucket, range) in ranges {
        found.extend(app.reactions().in_range(&meta.id, bucket, range).await?);
    }
    Ok(found)
}

/// The newest `limit` messages of a channel (fewer if it holds fewer), newest first.
pub async fn newest(app: &App, meta: &ChannelMeta, limit: usize) -> Result<Vec<Message>, ChatError> {
    let mut messages = Vec::with_capacity(limit);
    for bucket in meta.buckets.iter().rev() {
        if messages.len() >= limit {
            break;
        }
        let range = (bucket.first_id(), bucket.last_id());
        let wanted = limit - messages.len();
        messages.extend(app.messages().in_bucket(&meta.id, *bucket, range, wanted, Order::NewestFirst).await?);
    }
    Ok(messages)
}

/// What `message` adds to an HTTP API answer: its JSON, escaped again as the response's body
/// string (a quote becomes four bytes, a control character seven).
fn bytes_in_http_answer(message: &Message) -> usize {
    let json = serde_json::to_string(message).unwrap_or_default();
    serde_json::to_string(&json).map(|s| s.len()).unwrap_or(json.len()) + 1
}
