//! Ordering: every message of a channel gets the next seq (1, 2, 3… with no gaps) and an
//! id greater than the channel's last, in commit order, so everyone sees one order and a
//! gap is detectable.
//!
//! Two ways to the next seq. The cheap one, when nobody else is sending: one transaction
//! writes the message, its dedupe row and the channel's counter, on the condition that the
//! counter is still where the roster read it. When another send got there first, the send
//! claims a seq with an atomic increment (which cannot lose to anyone) and then writes the
//! message and its dedupe row. So a burst of N senders costs one extra round trip each, not
//! N rounds of retries, and nobody is refused.

use tracing::{info, warn};

use crate::access::not_a_member;
use crate::app::App;
use crate::error::{ChatError, PortError};
use crate::ids::MessageId;
use crate::model::Message;
use crate::ports::{AppendOutcome, ChannelMeta};

/// What [`append_next`] did.
#[derive(Debug)]
pub enum Appended {
    /// Stored as the channel's next message, with its id, seq and time.
    Stored(Box<Message>),
    /// The author had sent this clientMsgId before: the id it got then.
    Duplicate(MessageId),
}

/// Appends `message` as the next message of its channel, after `meta` (as the roster read
/// it) if nobody else sent in between, else with a claimed seq.
pub async fn append_next(app: &App, mut message: Message, meta: ChannelMeta) -> Result<Appended, ChatError> {
    let now = app.now_ms();
    // The channel's clock never goes back: a Lambda whose clock is behind the channel's
    // continues from the channel's time (the last id's time, less what the seq's high bits
    // added to it).
    let clock = meta.last_message_id.timestamp_ms() - (meta.seq >> crate::ids::COUNTER_BITS) as i64;
    let at = now.max(clock);
    place(&mut message, meta.seq + 1, at);
    match app.messages().append(&message, now).await? {
        AppendOutcome::Stored => {
            info!(message_id = %message.message_id, seq = message.seq, "stored");
            return Ok(Appended::Stored(Box::new(message)));
        }
        AppendOutcome::Duplicate(earlier) => return Ok(Appended::Duplicate(earlier)),
        AppendOutcome::SeqTaken => {}
    }

    crate::metrics::count(crate::metrics::APPEND_CLAIMS, 1);
    let claim =
        app.messages().claim(&message.channel_id, now).await?.ok_or_else(|| not_a_member(&message.channel_id))?;
    place(&mut message, claim.seq, claim.at_ms);
    match app.messages().store_claimed(&message, now).await {
        Ok(AppendOutcome::Stored) => {
            info!(message_id = %message.message_id, seq = message.seq, "stored with a claimed seq");
            Ok(Appended::Stored(Box::new(message)))
        }
        Ok(AppendOutcome::Duplicate(earlier)) => {
            // The same clientMsgId committed between our first attempt and the claim (a
            // retry racing its original): the claimed seq must not stay a gap.
            fill(app, &message, now).await;
            Ok(Appended::Duplicate(earlier))
        }
        Ok(AppendOutcome::SeqTaken) => {
            fill(app, &message, now).await;
            Err(PortError::Contended(format!("claimed seq {} of {} was taken", message.seq, message.channel_id)).into())
        }
        Err(err) => {
            // The write failed (throttled, say): nothing is stored and the client retries
            // with a new seq; this one gets a deleted message so that no gap stays.
            fill(app, &message, now).await;
            Err(err.into())
        }
    }
}

/// Fills a claimed seq that will hold no message, trying a few times (the store it failed
/// on may be throttling). Only a crash, or DynamoDB refusing every attempt, leaves a gap.
async fn fill(app: &App, message: &Message, now: i64) {
    for attempt in 0..4u32 {
        match app.messages().fill_claimed(message, now).await {
            Ok(()) => return,
            Err(err) => {
                warn!(seq = message.seq, attempt, error = %err, "could not fill a claimed seq");
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
        }
    }
    warn!(channel = %message.channel_id, seq = message.seq, "a claimed seq stays empty");
}

fn place(message: &mut Message, seq: u64, at_ms: i64) {
    message.seq = seq;
    message.created_at = at_ms;
    message.message_id = MessageId::claimed(at_ms, seq);
}
