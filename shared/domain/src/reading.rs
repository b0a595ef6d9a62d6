//! What a reader is shown of stored messages: each message's reactions (with `me` for the
//! reader's own), and each reply's quote as the answered message now is (edited, or
//! deleted: a deleted message's text must not live on in the replies to it).

use std::collections::HashMap;

use crate::app::App;
use crate::error::ChatError;
use crate::ids::MessageId;
use crate::model::{ChannelId, Message, Quote, UserId};
use crate::ports::Reactions;

/// Most keys one batched read takes (DynamoDB's BatchGetItem).
pub const BATCH_KEYS: usize = 100;

/// Shows `messages` (of one channel) to `reader`: `reactions` holds the reactions of those
/// that have any (a deleted message shows none; a message's `changeSeq` becomes its latest
/// change's, reactions included); quotes of messages outside `messages` are
/// read in one request per [`BATCH_KEYS`], only when there are any.
pub async fn show(
    app: &App,
    reader: &UserId,
    channel: &ChannelId,
    messages: &mut [Message],
    reactions: &HashMap<MessageId, Reactions>,
) -> Result<(), ChatError> {
    for message in messages.iter_mut() {
        let found = reactions.get(&message.message_id);
        message.reactions = match found {
            Some(reactions) if !message.deleted => reactions.counts(Some(reader)),
            _ => Vec::new(),
        };
        // The message's changeSeq is its latest change, reactions included.
        if let Some(reactions) = found.filter(|r| r.change_seq > 0) {
            message.change_seq = message.change_seq.max(Some(reactions.change_seq));
        }
    }
    refresh_quotes(app, channel, messages).await
}

async fn refresh_quotes(app: &App, channel: &ChannelId, messages: &mut [Message]) -> Result<(), ChatError> {
    let mut quotes: HashMap<MessageId, Quote> = HashMap::new();
    let answered: Vec<MessageId> = messages.iter().filter_map(|m| m.reply_to.as_ref().map(|q| q.message_id)).collect();
    if answered.is_empty() {
        return Ok(());
    }
    for message in messages.iter().filter(|m| answered.contains(&m.message_id)) {
        quotes.insert(message.message_id, Quote::of(message));
    }
    let mut unread: Vec<MessageId> = answered.into_iter().filter(|id| !quotes.contains_key(id)).collect();
    unread.sort_unstable();
    unread.dedup();
    for ids in unread.chunks(BATCH_KEYS) {
        for message in app.messages().get_many(channel, ids).await? {
            quotes.insert(message.message_id, Quote::of(&message));
        }
    }
    for quote in messages.iter_mut().filter_map(|m| m.reply_to.as_mut()) {
        if let Some(now) = quotes.get(&quote.message_id) {
            *quote = now.clone();
        }
    }
    Ok(())
}
