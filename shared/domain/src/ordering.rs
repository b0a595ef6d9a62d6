//! Ordering: every message of a channel gets the next seq (1, 2, 3… with no gaps) and an
//! id greater than the channel's last, in commit order, so everyone sees one order and a
//! gap is detectable. The store's conditional append makes it hold across Lambdas.

use tracing::info;

use crate::access::not_a_member;
use crate::app::App;
use crate::error::ChatError;
use crate::ids::MessageId;
use crate::model::Message;
use crate::ports::{AppendOutcome, ChannelMeta};

/// How long a send keeps retrying while other senders take the next seq first. Each
/// round one of the contenders wins, so N simultaneous sends need N rounds.
pub const APPEND_BUDGET_MS: u64 = 8_000;

/// What [`append_next`] did.
#[derive(Debug)]
pub enum Appended {
    /// Stored as the channel's next message, with its id, seq and time.
    Stored(Message),
    /// The author had sent this clientMsgId before: the id it got then.
    Duplicate(MessageId),
}

/// Appends `message` as the next message of its channel: gives it the next id and seq
/// after `meta` and retries (with jittered backoff, for a bounded time) while other
/// messages take that seq first.
pub async fn append_next(app: &App, mut message: Message, mut meta: ChannelMeta) -> Result<Appended, ChatError> {
    let channel_id = message.channel_id.clone();
    let started = std::time::Instant::now();
    for attempt in 0u32.. {
        if started.elapsed().as_millis() as u64 > APPEND_BUDGET_MS {
            break;
        }
        let now = app.now_ms();
        message.message_id = MessageId::next_after(now, meta.last_message_id);
        message.seq = meta.seq + 1;
        message.created_at = now;
        match app.messages().append(&message, now).await? {
            AppendOutcome::Stored => {
                info!(message_id = %message.message_id, seq = message.seq, "stored");
                return Ok(Appended::Stored(message));
            }
            AppendOutcome::Duplicate(earlier) => return Ok(Appended::Duplicate(earlier)),
            AppendOutcome::NotAMember => return Err(not_a_member(&channel_id)),
            AppendOutcome::SeqTaken(current) => {
                meta = match current {
                    Some(current) => current,
                    None => app.channels().meta(&channel_id).await?.ok_or_else(|| not_a_member(&channel_id))?,
                };
                crate::metrics::count(crate::metrics::APPEND_RETRIES, 1);
                // Jittered backoff so that contenders spread out instead of colliding again.
                let ceiling_ms = 1u64 << attempt.min(5);
                tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(0..=ceiling_ms))).await;
            }
        }
    }
    // The channel is busier than one counter can serialise: tell the client to retry.
    Err(ChatError::RateLimited { retry_after_ms: 500 })
}
