//! A user's open connections and whether they are online, from their presence record.
//!
//! Each connection has two clocks: `until`, when API Gateway closes it at the latest (it
//! gets messages until then, or until a post answers Gone), and `beat`, its last heartbeat.
//! A user is online while some open connection beat within the presence window; the
//! record's `deadline` is when they go offline unless something beats again, and
//! `online_shard` is set while contacts have been told they are online (the sweep reads
//! the overdue ones per shard). Stores may delete expired records late (DynamoDB's TTL
//! takes hours to days): every rule here checks the clocks itself.

use tracing::warn;

use crate::app::App;
use crate::error::PortError;
use crate::model::{ConnectionId, UserId};
use crate::ports::{ConnectQuota, ConnectionClock, PresenceRecord, Recorded};

/// Partitions of the online users' deadlines, so one busy key does not carry every user.
pub const ONLINE_SHARDS: u32 = 4;

/// The shard of a user's deadline: FNV-1a, stable across processes and releases (std's
/// hasher is neither).
pub fn shard_of(user: &UserId) -> u32 {
    let hash = user.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % ONLINE_SHARDS
}

/// A connection API Gateway has not closed yet.
pub fn is_open(clock: &ConnectionClock, now_ms: i64) -> bool {
    clock.until > now_ms
}

/// Online: some open connection beat within the window.
pub fn has_beating_connection(record: &PresenceRecord, now_ms: i64, window_ms: i64) -> bool {
    record.conns.values().any(|c| is_open(c, now_ms) && c.beat > now_ms - window_ms)
}

/// Whether the user is online by their record's deadline.
pub fn is_online(record: Option<&PresenceRecord>, now_ms: i64) -> bool {
    record.and_then(|r| r.deadline).is_some_and(|deadline| deadline > now_ms)
}

/// What recording a beat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// Contacts had not been told the user is online.
    pub came_online: bool,
    /// The user's other connections that were open.
    pub live_others: usize,
}

/// Records that `connection` is alive now (a connect or a heartbeat): it gets messages
/// until `until_ms` and keeps the user online for the presence window. Expired entries
/// found on the way are removed, so the record cannot grow when `$disconnect` never comes.
/// A connect passes its `quota`: `None` answers that it is used up (nothing was written).
pub async fn beat(
    app: &App,
    user: &UserId,
    connection: &ConnectionId,
    session: Option<&str>,
    until_ms: i64,
    quota: Option<ConnectQuota>,
) -> Result<Option<Beat>, PortError> {
    let now = app.now_ms();
    let window = app.settings.presence.window_ms;
    let clock = ConnectionClock { until: until_ms, beat: now, sid: session.map(str::to_owned) };
    let recorded = app
        .presence()
        .record_beat(user, connection, &clock, now + window, shard_of(user), until_ms / 1000 + 1, quota)
        .await?;
    let Recorded::Beat(old) = recorded else { return Ok(None) };
    let came_online = old.as_ref().is_none_or(|o| o.online_shard.is_none());
    let others = |open: bool| -> Vec<String> {
        old.iter()
            .flat_map(|o| o.conns.iter())
            .filter(|(c, clock)| is_open(clock, now) == open && *c != connection.as_str())
            .map(|(c, _)| c.clone())
            .collect()
    };
    let expired = others(false);
    if !expired.is_empty() {
        app.presence().remove_connections(user, &expired).await?;
    }
    Ok(Some(Beat { came_online, live_others: others(true).len() }))
}

/// Forgets a connection (`$disconnect`, or a post that answered Gone). When it was the
/// user's last beating one, they go offline after the grace (the sweep tells contacts),
/// so a reconnect within the grace is not announced at all.
pub async fn forget(app: &App, user: &UserId, connection: &ConnectionId) -> Result<(), PortError> {
    let settings = app.settings.presence;
    let now = app.now_ms();
    let Some(remaining) = app.presence().remove_connections(user, &[connection.to_string()]).await? else {
        return Ok(());
    };
    let grace_deadline = now + settings.offline_grace_ms;
    match remaining.deadline {
        Some(deadline) if deadline > grace_deadline && !has_beating_connection(&remaining, now, settings.window_ms) => {
            // A heartbeat that moved the deadline meanwhile wins: the user stays online.
            app.presence().move_deadline(user, grace_deadline, now, deadline).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Forgets a connection, logging (not returning) a failure: its expiry removes it anyway.
pub async fn forget_quietly(app: &App, user: &UserId, connection: &ConnectionId) {
    if let Err(err) = forget(app, user, connection).await {
        warn!(%user, %connection, error = %err, "could not forget a gone connection");
    }
}

/// The open connections of `users` (one read per 100 users, never one per user).
pub async fn live(app: &App, users: &[UserId]) -> Result<Vec<(UserId, ConnectionId)>, PortError> {
    let now = app.now_ms();
    let mut live = Vec::new();
    for record in app.presence().connections(users).await? {
        let Some(user) = record.user_id else { continue };
        for (connection, clock) in record.conns {
            if is_open(&clock, now) {
                live.push((user.clone(), ConnectionId::new(connection)));
            }
        }
    }
    Ok(live)
}

/// The open connections of one user with the session each was opened with.
pub async fn of_user(app: &App, user: &UserId) -> Result<Vec<(ConnectionId, Option<String>)>, PortError> {
    let now = app.now_ms();
    let mut found = Vec::new();
    for record in app.presence().connections(std::slice::from_ref(user)).await? {
        for (connection, clock) in record.conns {
            if is_open(&clock, now) {
                found.push((ConnectionId::new(connection), clock.sid));
            }
        }
    }
    Ok(found)
}
