//! A user's open connections and whether they are online, from their presence record.
//!
//! Each connection has two clocks: `until`, when API Gateway closes it at the latest (it
//! gets messages until then, or until a post answers Gone), and `beat`, its last heartbeat.
//! A user is online while some open connection beat within the presence window; the
//! record's `deadline` is when they go offline unless something beats again, and
//! `online_shard` is set while contacts have been told they are online (the sweep reads
//! the overdue ones per shard). Stores may delete expired records late (DynamoDB's TTL
//! takes hours to days): every rule here checks the clocks itself.

use std::collections::HashSet;

use tracing::warn;

use crate::app::App;
use crate::error::PortError;
use crate::model::{ConnectionId, UserId};
use crate::ports::{ConnectQuota, ConnectionClock, PresenceRecord, Recorded};
use crate::protocol::{ChosenState, LastSeenTo, PresenceView, Status};

/// Partitions of the online users' deadlines, so one busy key does not carry every user:
/// the default of `PresenceSettings::shards` (`PRESENCE_SHARDS`, the `PresenceShards`
/// template parameter).
pub const ONLINE_SHARDS: u32 = 4;

/// The shard of a user's deadline among `shards`: FNV-1a, stable across processes and
/// releases (std's hasher is neither).
pub fn shard_of(user: &UserId, shards: u32) -> u32 {
    let hash = user.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % shards.max(1)
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

/// What others see of a user whose record is `record`, `online` or not (by its deadline,
/// or by what was announced): `invisible` is offline with the last-seen of when they went
/// invisible; `dnd` as chosen; `idle` when every beating connection
/// said so; a last-seen only for those who show it; a custom status only while present.
pub fn view(user: &UserId, record: Option<&PresenceRecord>, online: bool, now_ms: i64, window_ms: i64) -> PresenceView {
    let Some(record) = record else {
        return PresenceView { user_id: user.clone(), status: Status::Offline, last_seen: None, custom_status: None };
    };
    let choice = &record.choice;
    let invisible = choice.state == Some(ChosenState::Invisible);
    let beating: Vec<&ConnectionClock> =
        record.conns.values().filter(|c| is_open(c, now_ms) && c.beat > now_ms - window_ms).collect();
    let status = if !online || invisible {
        Status::Offline
    } else if choice.state == Some(ChosenState::Dnd) {
        Status::Dnd
    } else if !beating.is_empty() && beating.iter().all(|c| c.idle) {
        Status::Idle
    } else {
        Status::Online
    };
    let last_seen = match choice.last_seen_to {
        Some(LastSeenTo::Nobody) => None,
        _ if invisible => choice.hidden_since.or(record.last_seen),
        _ => record.last_seen,
    };
    // Shown with a present user only: an invisible one then looks exactly offline.
    let custom_status =
        if status == Status::Offline { None } else { choice.custom.clone().filter(|c| c.shows_at(now_ms)) };
    PresenceView { user_id: user.clone(), status, last_seen, custom_status }
}

/// What recording a beat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// What others saw of the user before (by what was announced), and see now.
    pub was: PresenceView,
    pub now: PresenceView,
    /// The user's other connections that were open.
    pub live_others: usize,
}

/// Where a message can reach its members: their open connections, and who among them chose
/// not to be disturbed (no pushes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    pub connections: Vec<(UserId, ConnectionId)>,
    pub do_not_disturb: HashSet<UserId>,
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
    idle: bool,
    quota: Option<ConnectQuota>,
) -> Result<Option<Beat>, PortError> {
    let now = app.now_ms();
    let window = app.settings.presence.window_ms;
    let clock = ConnectionClock { until: until_ms, beat: now, sid: session.map(str::to_owned), idle };
    let (deadline, shard) = (now + window, shard_of(user, app.settings.presence.shards));
    let recorded =
        app.presence().record_beat(user, connection, &clock, deadline, shard, until_ms / 1000 + 1, quota).await?;
    let Recorded::Beat(old) = recorded else { return Ok(None) };
    let was = view(user, old.as_ref(), old.as_ref().is_some_and(|o| o.online_shard.is_some()), now, window);
    let mut after = old.clone().unwrap_or_default();
    after.conns.insert(connection.to_string(), clock);
    (after.deadline, after.online_shard, after.last_seen) = (Some(deadline), Some(shard), Some(now));
    let now_shown = view(user, Some(&after), true, now, window);
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
    Ok(Some(Beat { was, now: now_shown, live_others: others(true).len() }))
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
    Ok(reach(app, users).await?.connections)
}

/// The open connections of `users`, and who of them chose do-not-disturb, from the same
/// read.
pub async fn reach(app: &App, users: &[UserId]) -> Result<Reach, PortError> {
    let now = app.now_ms();
    let mut reach = Reach::default();
    for record in app.presence().connections(users).await? {
        let Some(user) = record.user_id else { continue };
        if record.choice.state == Some(ChosenState::Dnd) {
            reach.do_not_disturb.insert(user.clone());
        }
        for (connection, clock) in record.conns {
            if is_open(&clock, now) {
                reach.connections.push((user.clone(), ConnectionId::new(connection)));
            }
        }
    }
    Ok(reach)
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
