//! Who is online: connects and heartbeats keep a user online, and contacts are told when
//! that changes. Going offline is noticed by a sweep (a scheduled function in AWS, a timer
//! in the local gateway) over the users whose deadline passed, so a user whose device just
//! vanished (no `$disconnect`) goes offline for everyone within the presence window plus
//! one sweep interval.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::StreamExt;
use tracing::{info, warn};

use crate::app::App;
use crate::connections::{self, ONLINE_SHARDS};
use crate::delivery::fan_out;
use crate::error::ChatError;
use crate::model::{ChannelId, ConnectionId, MAX_CHANNEL_MEMBERS, UserId};
use crate::protocol::ServerFrame;
pub use crate::protocol::{PresenceView, Status};

/// A presence change reaches the members of at most this many of the user's channels (the
/// most recently active ones); clients ask with `getPresence` for anyone else.
pub const MAX_ANNOUNCE_CHANNELS: usize = 20;

/// Open connections one user may hold (devices and tabs); one more is refused.
pub const MAX_CONNECTIONS_PER_USER: usize = 10;

/// A device connected: recorded, and counted against the user's connect limit in the same
/// write (over it: refused, nothing recorded).
pub async fn connected(app: &App, user: &UserId, device: &Device<'_>) -> Result<(), ChatError> {
    let (quota, retry_after_ms) = crate::limits::connect_quota(app);
    let Some(live_others) = beat(app, user, device, Some(quota)).await? else {
        crate::metrics::count(crate::limits::Action::Connect.metric(), 1);
        return Err(ChatError::RateLimited { retry_after_ms });
    };
    if live_others >= MAX_CONNECTIONS_PER_USER {
        disconnected(app, user, device.connection).await?;
        return Err(ChatError::Conflict(format!(
            "at most {MAX_CONNECTIONS_PER_USER} connections at once; close one first"
        )));
    }
    Ok(())
}

/// A device says it is still there (clients send one every ~30 s).
pub async fn heartbeat(app: &App, user: &UserId, device: &Device<'_>) -> Result<(), ChatError> {
    beat(app, user, device, None).await.map(|_| ())
}

/// One open connection as its events describe it.
#[derive(Debug, Clone, Copy)]
pub struct Device<'a> {
    pub connection: &'a ConnectionId,
    /// The signed-in session it was opened with (from the authorizer).
    pub session: Option<&'a str>,
    /// How long API Gateway keeps it open at most (see `apigw::ws_lifetime_left_ms`).
    pub lifetime_left_ms: i64,
}

/// Records the beat; answers the user's other open connections (`None`: over the quota).
async fn beat(
    app: &App,
    user: &UserId,
    device: &Device<'_>,
    quota: Option<crate::ports::ConnectQuota>,
) -> Result<Option<usize>, ChatError> {
    let now = app.now_ms();
    let until = now + device.lifetime_left_ms;
    let Some(beat) = connections::beat(app, user, device.connection, device.session, until, quota).await? else {
        return Ok(None);
    };
    if beat.came_online {
        info!(%user, "online");
        announce(app, user, Status::Online, Some(now)).await;
    }
    Ok(Some(beat.live_others))
}

/// Closes the user's open connections of one session, or all of them (`None`), through
/// the Management API. Answers how many were closed.
pub async fn close_connections(app: &App, user: &UserId, session: Option<&str>) -> Result<usize, ChatError> {
    let mut closed = 0;
    for (connection, sid) in connections::of_user(app, user).await? {
        if session.is_none() || sid.as_deref() == session {
            if let crate::ports::PostOutcome::Failed(err) | crate::ports::PostOutcome::Throttled(err) =
                app.poster().close(&connection).await
            {
                warn!(%user, %connection, error = %err, "could not close a signed-out connection");
            } else {
                closed += 1;
            }
        }
    }
    Ok(closed)
}

/// A device went away (`$disconnect`, or a post answered 410).
pub async fn disconnected(app: &App, user: &UserId, connection: &ConnectionId) -> Result<(), ChatError> {
    connections::forget(app, user, connection).await?;
    if app.settings.presence.offline_grace_ms == 0 {
        sweep_once(app).await;
    }
    Ok(())
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub went_offline: usize,
    pub passes: u32,
}

/// The scheduled sweep: up to `sweep_passes` passes, `sweep_pass_interval_ms` apart. It
/// stops as soon as no online user's deadline falls before its last pass: with nobody
/// online (or everyone's heartbeats well ahead) an invocation is one pass, not a minute of
/// billed sleep.
pub async fn sweep(app: &App) -> SweepReport {
    let settings = app.settings.presence;
    let passes = settings.sweep_passes.max(1);
    let mut report = SweepReport::default();
    for pass in 0..passes {
        if pass > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(settings.sweep_pass_interval_ms as u64)).await;
        }
        report.went_offline += sweep_once(app).await;
        report.passes += 1;
        let passes_left = i64::from(passes - pass - 1);
        if passes_left == 0 || !anyone_due_by(app, app.now_ms() + passes_left * settings.sweep_pass_interval_ms).await {
            break;
        }
    }
    report
}

/// Whether an online user's deadline falls by `until_ms` (one key per shard at most, the
/// shards read at once). A shard that cannot be read counts as due: better a pass too many
/// than a missed offline.
async fn anyone_due_by(app: &App, until_ms: i64) -> bool {
    let looks = (0..ONLINE_SHARDS).map(|shard| async move {
        app.presence().any_due_by(shard, until_ms).await.unwrap_or_else(|err| {
            warn!(shard, error = %err, "presence sweep could not look ahead in a shard");
            true
        })
    });
    futures::future::join_all(looks).await.into_iter().any(|due| due)
}

/// Users told offline at once within one sweep: each announcement reads the user's
/// channels and posts to their contacts, so a burst of departures (a region's clients
/// dropping together) is worked through in parallel, not one after another.
const SWEEP_CONCURRENCY: usize = 16;

/// Tells contacts about every user whose deadline passed; answers how many went offline.
/// The shards are read at once, and their users worked through [`SWEEP_CONCURRENCY`] at a time.
async fn sweep_once(app: &App) -> usize {
    let now = app.now_ms();
    let reads = (0..ONLINE_SHARDS).map(|shard| async move {
        app.presence().overdue(shard, now).await.unwrap_or_else(|err| {
            warn!(shard, error = %err, "presence sweep could not read a shard");
            Vec::new()
        })
    });
    let overdue: Vec<(UserId, i64)> = futures::future::join_all(reads).await.into_iter().flatten().collect();
    futures::stream::iter(overdue)
        .map(|(user, deadline)| async move {
            match app.presence().mark_offline(&user, deadline).await {
                Ok(Some(last_seen)) => {
                    info!(%user, "offline");
                    announce(app, &user, Status::Offline, last_seen).await;
                    1
                }
                Ok(None) => 0,
                Err(err) => {
                    warn!(%user, error = %err, "could not mark a user offline");
                    0
                }
            }
        })
        .buffer_unordered(SWEEP_CONCURRENCY)
        .fold(0, |offline, n| async move { offline + n })
        .await
}

/// The users who share a channel with `user` (in the most recently active channels),
/// except those `user` blocks.
async fn contacts(app: &App, user: &UserId) -> Result<Vec<UserId>, ChatError> {
    let (channels, blocks) = (app.channels(), app.blocks());
    let (memberships, blocked) = futures::try_join!(channels.memberships(user), blocks.of(user))?;
    let ids: Vec<_> = memberships.into_iter().map(|m| m.channel_id).collect();
    let mut metas = app.channels().metas(&ids).await?;
    metas.sort_by_key(|m| std::cmp::Reverse(m.last_message_id));
    let rosters: Vec<_> = futures::stream::iter(metas.into_iter().take(MAX_ANNOUNCE_CHANNELS))
        .map(|meta| async move { app.channels().roster(&meta.id).await })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut contacts = BTreeSet::new();
    for roster in rosters {
        if let Some(roster) = roster? {
            contacts.extend(roster.member_ids().into_iter().filter(|m| m != user && !blocked.contains(m)));
        }
    }
    Ok(contacts.into_iter().collect())
}

async fn announce(app: &App, user: &UserId, status: Status, last_seen: Option<i64>) {
    let metric = match status {
        Status::Online => crate::metrics::PRESENCE_ONLINE,
        Status::Offline => crate::metrics::PRESENCE_OFFLINE,
    };
    crate::metrics::count(metric, 1);
    let contacts = match contacts(app, user).await {
        Ok(contacts) => contacts,
        Err(err) => {
            warn!(%user, error = %err, "could not find whom to tell about a presence change");
            return;
        }
    };
    let frame = ServerFrame::Presence(PresenceView { user_id: user.clone(), status, last_seen }).to_json();
    fan_out(app, &contacts, None, &frame).await;
}

/// The presence of up to 100 users, for a client opening a channel or a contact list:
/// the members of `channel` (one the asker is in), or `users`. Only people who share a
/// channel with the asker and do not block them are shown; anyone else is answered
/// exactly as an unknown user is (offline, never seen).
pub async fn states(
    app: &App,
    asker: &UserId,
    users: Vec<UserId>,
    channel: Option<&ChannelId>,
) -> Result<Vec<PresenceView>, ChatError> {
    if users.len() > MAX_CHANNEL_MEMBERS {
        return Err(ChatError::InvalidRequest(format!("ask for at most {MAX_CHANNEL_MEMBERS} users at a time")));
    }
    // DynamoDB refuses a BatchGetItem that names a key twice: one answer per distinct user.
    let users = crate::consent::distinct(users);
    let (asked, mut visible): (Vec<UserId>, HashSet<UserId>) = match channel {
        Some(channel) => {
            let roster = crate::access::roster_for_member(app, asker, channel).await?;
            let members: HashSet<UserId> = roster.member_ids().into_iter().collect();
            let asked = if users.is_empty() { roster.member_ids() } else { users };
            (asked, members)
        }
        None => {
            let pairs: Vec<(UserId, ChannelId)> =
                users.iter().map(|u| (u.clone(), crate::membership::direct_channel_id(asker, u))).collect();
            let contacts = app.channels().direct_contacts(asker, &pairs).await?;
            (users, contacts)
        }
    };
    visible.remove(asker);
    let candidates: Vec<UserId> = asked.iter().filter(|u| visible.contains(*u)).cloned().collect();
    let blocking = app.blocks().blocking(&candidates, asker).await?;
    let mut shown: Vec<UserId> = candidates.into_iter().filter(|u| !blocking.contains(u)).collect();
    if asked.contains(asker) {
        shown.push(asker.clone());
    }
    let now = app.now_ms();
    let mut known: HashMap<UserId, PresenceView> = HashMap::new();
    for record in app.presence().statuses(&shown).await? {
        let Some(user) = record.user_id.clone() else { continue };
        let online = connections::is_online(Some(&record), now);
        let status = if online { Status::Online } else { Status::Offline };
        known.insert(user.clone(), PresenceView { user_id: user, status, last_seen: record.last_seen });
    }
    Ok(asked
        .into_iter()
        .map(|user| {
            known.remove(&user).unwrap_or(PresenceView { user_id: user, status: Status::Offline, last_seen: None })
        })
        .collect())
}
