//! Delivery: a stored event reaches every live connection of its audience (posted
//! concurrently; a connection that answers Gone is forgotten), and a new message also
//! reaches members with no live connection by push. Failures are logged, never returned:
//! what was stored stays stored and devices catch up through sync and history.

use futures::StreamExt;
use tracing::{info, warn};

use crate::app::App;
use crate::connections;
use crate::error::ChatError;
use crate::model::{ConnectionId, Message, UserId};
use crate::ports::{PostOutcome, Roster};
use crate::protocol::MAX_FRAME_BYTES;

/// Concurrent posts per send: enough to reach 100 members' devices in a few round trips.
const FAN_OUT_CONCURRENCY: usize = 32;

/// Room a download URL takes in a frame (they are ~600 bytes with a session token).
const URL_ALLOWANCE: usize = 1024;

/// A frame of `frame_len` bytes carrying `message` must fit API Gateway's 128 KB message
/// limit once its files have download URLs.
pub fn check_frame_size(frame_len: usize, message: &Message) -> Result<(), ChatError> {
    let size = frame_len + URL_ALLOWANCE * message.attachments.len();
    if size > MAX_FRAME_BYTES {
        return Err(ChatError::TooLarge(format!(
            "the message would be {size} bytes on the wire; the limit is {MAX_FRAME_BYTES}"
        )));
    }
    Ok(())
}

/// Posts a new message to every live connection of the channel but the sender's, and,
/// at the same time, pushes it to members with no live connection who have not muted it
/// (or whom it mentions), unless they chose do-not-disturb.
/// `frame`: the message's live event. `live`: the members' open connections and who is in
/// do-not-disturb, read beside the write (`None`: the read failed). `ack`: the sender's
/// ack; when anyone is pushed, or the posts take more than one round, it is posted to
/// `origin` beside the live events, so the sender waits neither for the pushes (SNS
/// publishes take longer than posts) nor for a big group's fan-out. Answers whether the ack
/// was posted (if not, it goes back as the route response: the same one message).
pub async fn deliver(
    app: &App,
    roster: &Roster,
    origin: &ConnectionId,
    message: &Message,
    frame: &str,
    ack: Option<&str>,
    live: Option<connections::Reach>,
) -> bool {
    let Some(connections::Reach { connections, do_not_disturb }) = live else { return false };
    let offline: Vec<UserId> = roster
        .members
        .iter()
        // A mention pushes through a mute, not through do-not-disturb.
        .filter(|m| m.user_id != message.author_id && (!m.muted || message.mentions.contains(&m.user_id)))
        .filter(|m| !do_not_disturb.contains(&m.user_id))
        .filter(|m| !connections.iter().any(|(user, _)| *user == m.user_id))
        .map(|m| m.user_id.clone())
        .collect();
    let channel_name = roster.meta.name.as_deref();
    crate::metrics::count(
        crate::metrics::SEND_RECIPIENTS,
        connections.iter().filter(|(_, c)| c != origin).count() as u64,
    );
    let pushing = !offline.is_empty() && app.push().mode() != crate::ports::PushMode::Off;
    let early_ack = ack.filter(|_| pushing || connections.len() > FAN_OUT_CONCURRENCY);
    let post_ack = async {
        match early_ack {
            Some(ack) => app.poster().post(origin, ack).await == PostOutcome::Delivered,
            None => false,
        }
    };
    let (acked, posted, pushed) = tokio::join!(
        post_ack,
        post_all(app, connections, Some(origin), frame),
        crate::push::notify(app, &offline, message, channel_name)
    );
    info!(delivered = posted.delivered, gone = posted.gone.len(), pushed = pushed.published, acked, "delivered");
    acked
}

/// What a fan-out did, for logs and benchmarks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FanOutReport {
    pub delivered: usize,
    /// Connections that answered 410 (closed): forgotten from their user's presence.
    pub gone: Vec<ConnectionId>,
    pub failed: usize,
}

/// Posts `frame` to every live connection of `members` (one batched presence lookup),
/// and forgets connections that answer 410 Gone. Delivery failures are logged, not
/// returned: the message is stored and devices catch up through history.
pub async fn fan_out(app: &App, members: &[UserId], skip: Option<&ConnectionId>, frame: &str) -> FanOutReport {
    match connections::live(app, members).await {
        Ok(connections) => post_all(app, connections, skip, frame).await,
        Err(err) => {
            warn!(error = %err, "presence lookup failed; nobody gets the live event");
            FanOutReport::default()
        }
    }
}

pub async fn post_all(
    app: &App,
    connections: Vec<(UserId, ConnectionId)>,
    skip: Option<&ConnectionId>,
    frame: &str,
) -> FanOutReport {
    let targets = connections.into_iter().filter(|(_, conn)| Some(conn) != skip);
    let outcomes: Vec<(UserId, ConnectionId, PostOutcome)> = futures::stream::iter(targets)
        .map(|(user, conn)| async move {
            let outcome = app.poster().post(&conn, frame).await;
            (user, conn, outcome)
        })
        .buffer_unordered(FAN_OUT_CONCURRENCY)
        .collect()
        .await;

    let mut report = FanOutReport::default();
    for (user, conn, outcome) in outcomes {
        crate::metrics::count(
            match outcome {
                PostOutcome::Delivered => crate::metrics::POSTS_DELIVERED,
                PostOutcome::Gone => crate::metrics::POSTS_GONE,
                PostOutcome::Throttled(_) => crate::metrics::POSTS_THROTTLED,
                PostOutcome::Failed(_) => crate::metrics::POSTS_FAILED,
            },
            1,
        );
        match outcome {
            PostOutcome::Delivered => report.delivered += 1,
            PostOutcome::Gone => {
                connections::forget_quietly(app, &user, &conn).await;
                report.gone.push(conn);
            }
            PostOutcome::Failed(error) | PostOutcome::Throttled(error) => {
                report.failed += 1;
                warn!(%user, connection = %conn, %error, "post to connection failed");
            }
        }
    }
    report
}
