//! Who is online, idle, not to be disturbed or offline: connects and heartbeats keep a user
//! online (a heartbeat may say the device is idle), the user chooses `dnd` or `invisible`
//! and a custom status, and the connections subscribed to a user are told when what they
//! see changes (lazy presence: nobody else is, so a change costs the same whatever the
//! user's number of contacts). Going offline is noticed by a sweep (a scheduled function in
//! AWS, a timer in the local gateway) over the users whose deadline passed, so a user whose
//! device just vanished (no `$disconnect`) goes offline for its subscribers within the
//! presence window plus one sweep interval.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use tracing::{info, warn};

use crate::app::App;
use crate::connections;
use crate::delivery::post_all;
use crate::error::ChatError;
use crate::model::{ChannelId, ConnectionId, MAX_CHANNEL_MEMBERS, UserId};
use crate::ports::{ChoiceChange, PresenceRecord, Watcher};
use crate::protocol::{ChosenState, CustomStatus, LastSeenTo, ServerFrame};
pub use crate::protocol::{PresenceView, Status};

/// A subscription lasts as long as the connection that made it can: API Gateway closes
/// every connection after 2 hours, and a client subscribes again on its next connection.
/// So nothing is renewed; a subscription ends with `unsubscribePresence`, or, when its
/// connection closed without one, at the first announcement whose post answers 410 (or
/// when it lapses, unread, at this age).
pub const SUBSCRIPTION_MS: i64 = 2 * 60 * 60 * 1000;

/// How long a user's choices (state, last-seen, custom status) are kept after they last
/// changed one, connected or not.
pub const CHOICES_KEPT_S: i64 = 90 * 24 * 60 * 60;

/// Connections subscribed to one user at once, at most (only people who share a channel
/// with the user may subscribe; this bounds the record of them).
pub const MAX_WATCHERS: usize = 500;

/// Open connections one user may hold (devices and tabs); one more is refused.
pub const MAX_CONNECTIONS_PER_USER: usize = 10;

/// A device connected: recorded, and counted against the user's connect limit in the same
/// write (over it: refused, nothing recorded).
pub async fn connected(app: &App, user: &UserId, device: &Device<'_>) -> Result<(), ChatError> {
    let (quota, retry_after_ms) = crate::limits::connect_quota(app);
    let Some(live_others) = beat(app, user, device, false, Some(quota)).await? else {
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

/// A device says it is still there (clients send one every ~30 s), and whether it is idle.
pub async fn heartbeat(app: &App, user: &UserId, device: &Device<'_>, idle: bool) -> Result<(), ChatError> {
    beat(app, user, device, idle, None).await.map(|_| ())
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
    idle: bool,
    quota: Option<crate::ports::ConnectQuota>,
) -> Result<Option<usize>, ChatError> {
    let now = app.now_ms();
    let until = now + device.lifetime_left_ms;
    let Some(beat) = connections::beat(app, user, device.connection, device.session, until, idle, quota).await? else {
        return Ok(None);
    };
    if changed(&beat.was, &beat.now) {
        info!(%user, status = ?beat.now.status, "presence changed");
        announce(app, &beat.now).await;
    }
    Ok(Some(beat.live_others))
}

/// Whether subscribers see something new (a last-seen that moves with every beat is not).
fn changed(was: &PresenceView, now: &PresenceView) -> bool {
    was.status != now.status || was.custom_status != now.custom_status
}

/// What the user's subscribers see of them now, from their record.
fn own_view(app: &App, record: Option<&PresenceRecord>, user: &UserId) -> PresenceView {
    let now = app.now_ms();
    connections::view(user, record, connections::is_online(record, now), now, app.settings.presence.window_ms)
}

/// Records a change of the user's choice and tells subscribers when what they see changes;
/// answers what they see now.
async fn choose(app: &App, user: &UserId, mut change: ChoiceChange) -> Result<PresenceView, ChatError> {
    let going_invisible = change.state == Some(Some(ChosenState::Invisible));
    let keep_until_s = app.now_ms() / 1000 + CHOICES_KEPT_S;
    let Some(before) = app.presence().choose(user, &change, keep_until_s).await? else {
        return Err(ChatError::Conflict("connect first: a presence choice needs a connected device".into()));
    };
    let was_invisible = before.choice.state == Some(ChosenState::Invisible);
    if going_invisible && !was_invisible {
        // Others are shown this as the last time they saw the user.
        change.hidden_since = Some(Some(app.now_ms()));
        let hidden = ChoiceChange { hidden_since: change.hidden_since, ..Default::default() };
        app.presence().choose(user, &hidden, keep_until_s).await?;
    }
    let mut after = before.clone();
    after.choice.apply(&change);
    let (was, now) = (own_view(app, Some(&before), user), own_view(app, Some(&after), user));
    if changed(&was, &now) {
        announce(app, &now).await;
    }
    Ok(now)
}

/// The user chooses their state for all their devices, and who sees their last-seen.
pub async fn set_presence(
    app: &App,
    user: &UserId,
    state: Option<ChosenState>,
    last_seen: Option<LastSeenTo>,
) -> Result<PresenceView, ChatError> {
    if state.is_none() && last_seen.is_none() {
        return Err(ChatError::InvalidRequest("setPresence needs `state` or `lastSeen`".into()));
    }
    let change = ChoiceChange {
        // Stored only when it is not the default.
        state: state.map(|s| (s != ChosenState::Online).then_some(s)),
        last_seen_to: last_seen.map(|to| (to != LastSeenTo::Contacts).then_some(to)),
        hidden_since: state.filter(|s| *s != ChosenState::Invisible).map(|_| None),
        custom: None,
    };
    choose(app, user, change).await
}

/// The user sets (or, with neither text nor emoji, clears) their custom status.
pub async fn set_status(
    app: &App,
    user: &UserId,
    text: Option<String>,
    emoji: Option<crate::model::Emoji>,
    expires_at: Option<i64>,
) -> Result<PresenceView, ChatError> {
    if expires_at.is_some_and(|at| at <= app.now_ms()) {
        return Err(ChatError::InvalidRequest("expiresAt is in the past".into()));
    }
    let custom = CustomStatus::parse(text, emoji, expires_at)?;
    choose(app, user, ChoiceChange { custom: Some(custom), ..Default::default() }).await
}

/// Subscribes `origin` to the presence of `users` (or of `channel`'s members): answers
/// their presence as `getPresence` does, and keeps a subscription for each the asker may
/// see, for [`SUBSCRIPTION_MS`].
pub async fn subscribe(
    app: &App,
    asker: &UserId,
    origin: &ConnectionId,
    users: Vec<UserId>,
    channel: Option<&ChannelId>,
) -> Result<Vec<PresenceView>, ChatError> {
    let (asked, shown) = visible(app, asker, users, channel).await?;
    let watcher = Watcher { user: asker.clone(), connection: origin.clone(), until: app.now_ms() + SUBSCRIPTION_MS };
    let targets: Vec<UserId> = shown.iter().filter(|u| *u != asker).cloned().collect();
    let writes: Vec<Result<bool, crate::error::PortError>> = futures::stream::iter(targets)
        .map(|user| {
            let watcher = watcher.clone();
            async move { app.subscriptions().subscribe(&user, &watcher, MAX_WATCHERS).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for written in writes {
        written?;
    }
    views(app, asked, &shown).await
}

/// Ends `origin`'s subscriptions to `users`.
pub async fn unsubscribe(app: &App, origin: &ConnectionId, users: Vec<UserId>) -> Result<(), ChatError> {
    if users.len() > MAX_CHANNEL_MEMBERS {
        return Err(ChatError::InvalidRequest(format!("at most {MAX_CHANNEL_MEMBERS} users at a time")));
    }
    let writes: Vec<Result<(), crate::error::PortError>> = futures::stream::iter(crate::consent::distinct(users))
        .map(|user| {
            let origin = origin.clone();
            async move { app.subscriptions().unsubscribe(&user, std::slice::from_ref(&origin)).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for written in writes {
        written?;
    }
    Ok(())
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
        sweep_once(app, SweepRun::WHOLE).await;
    }
    Ok(())
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub went_offline: usize,
    pub passes: u32,
}

/// Sweep runs the template schedules each minute (`EveryMinute`, `EveryMinuteRun1`…): the
/// most `PresenceSweepRuns` may be.
pub const MAX_SWEEP_RUNS: u32 = 8;

/// The shards one sweep run reads: run `index` of `runs` takes the shards `s` with
/// `s % runs == index`, so `runs` runs at once share the departures and none is read twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepRun {
    pub index: u32,
    pub runs: u32,
}

impl SweepRun {
    /// Every shard, in one run.
    pub const WHOLE: SweepRun = SweepRun { index: 0, runs: 1 };

    /// Scheduled run `index` under the deployment's `sweep_runs`; `None` for a run past them
    /// (scheduled, not needed: it does nothing).
    pub fn scheduled(app: &App, index: u32) -> Option<SweepRun> {
        let runs = app.settings.presence.sweep_runs.max(1);
        (index < runs).then_some(SweepRun { index, runs })
    }

    fn shards(self, app: &App) -> impl Iterator<Item = u32> {
        let runs = self.runs.max(1);
        (0..app.settings.presence.shards).filter(move |shard| shard % runs == self.index)
    }
}

/// The whole sweep in one run (tests, and deployments with one run).
pub async fn sweep(app: &App) -> SweepReport {
    sweep_run(app, SweepRun::WHOLE).await
}

/// One scheduled sweep run: up to `sweep_passes` passes over its shards,
/// `sweep_pass_interval_ms` apart. It stops as soon as no online user's deadline in its
/// shards falls before its last pass: with nobody online (or everyone's heartbeats well
/// ahead) an invocation is one pass, not a minute of billed sleep.
pub async fn sweep_run(app: &App, run: SweepRun) -> SweepReport {
    let settings = app.settings.presence;
    let passes = settings.sweep_passes.max(1);
    let mut report = SweepReport::default();
    for pass in 0..passes {
        if pass > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(settings.sweep_pass_interval_ms as u64)).await;
        }
        report.went_offline += sweep_once(app, run).await;
        report.passes += 1;
        let passes_left = i64::from(passes - pass - 1);
        if passes_left == 0
            || !anyone_due_by(app, run, app.now_ms() + passes_left * settings.sweep_pass_interval_ms).await
        {
            break;
        }
    }
    report
}

/// Whether an online user's deadline falls by `until_ms` (one key per shard at most, the
/// shards read at once). A shard that cannot be read counts as due: better a pass too many
/// than a missed offline.
async fn anyone_due_by(app: &App, run: SweepRun, until_ms: i64) -> bool {
    let looks = run.shards(app).map(|shard| async move {
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

/// Tells contacts about every user of `run`'s shards whose deadline passed; answers how
/// many went offline. The shards are read at once, and their users worked through
/// [`SWEEP_CONCURRENCY`] at a time.
async fn sweep_once(app: &App, run: SweepRun) -> usize {
    let now = app.now_ms();
    let reads = run.shards(app).map(|shard| async move {
        app.presence().overdue(shard, now).await.unwrap_or_else(|err| {
            warn!(shard, error = %err, "presence sweep could not read a shard");
            Vec::new()
        })
    });
    let overdue: Vec<(UserId, i64)> = futures::future::join_all(reads).await.into_iter().flatten().collect();
    futures::stream::iter(overdue)
        .map(|(user, deadline)| async move {
            match app.presence().mark_offline(&user, deadline).await {
                Ok(Some(record)) => {
                    info!(%user, "offline");
                    let told = async {
                        // Someone invisible has looked offline all along.
                        if record.choice.state != Some(ChosenState::Invisible) {
                            let window = app.settings.presence.window_ms;
                            announce(app, &connections::view(&user, Some(&record), false, app.now_ms(), window)).await;
                        }
                    };
                    // A call their quiet device takes part in ends for the other side.
                    let (_, call) = tokio::join!(told, crate::calling::went_quiet(app, &user));
                    if let Err(err) = call {
                        warn!(%user, error = %err, "could not end the call of a user gone quiet");
                    }
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

/// Tells the connections subscribed to the user what they now see: one read of the
/// subscriptions and, when there are any, one of the user's block list (people they block
/// are not told), whatever the user's number of contacts. Lapsed subscriptions go.
async fn announce(app: &App, view: &PresenceView) {
    let metric = match view.status {
        Status::Offline => crate::metrics::PRESENCE_OFFLINE,
        _ => crate::metrics::PRESENCE_ONLINE,
    };
    crate::metrics::count(metric, 1);
    let user = &view.user_id;
    let watchers = match app.subscriptions().watchers(user).await {
        Ok(watchers) => watchers,
        Err(err) => return warn!(%user, error = %err, "could not read who watches a user's presence"),
    };
    let now = app.now_ms();
    let (current, lapsed): (Vec<Watcher>, Vec<Watcher>) = watchers.into_iter().partition(|w| w.until > now);
    if !lapsed.is_empty() {
        let lapsed: Vec<ConnectionId> = lapsed.into_iter().map(|w| w.connection).collect();
        if let Err(err) = app.subscriptions().unsubscribe(user, &lapsed).await {
            warn!(%user, error = %err, "could not drop lapsed presence subscriptions");
        }
    }
    if current.is_empty() {
        return;
    }
    let blocked = match app.blocks().of(user).await {
        Ok(blocked) => blocked,
        Err(err) => return warn!(%user, error = %err, "could not read a block list; nobody is told"),
    };
    let targets: Vec<(UserId, ConnectionId)> =
        current.into_iter().filter(|w| !blocked.contains(&w.user)).map(|w| (w.user, w.connection)).collect();
    let frame = ServerFrame::Presence(view.clone()).to_json();
    let report = post_all(app, targets, None, &frame).await;
    // A closed connection's subscriptions are not renewed away: they end here, at the first
    // post that finds the connection gone.
    if !report.gone.is_empty()
        && let Err(err) = app.subscriptions().unsubscribe(user, &report.gone).await
    {
        warn!(%user, error = %err, "could not drop the subscriptions of closed connections");
    }
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
    let (asked, shown) = visible(app, asker, users, channel).await?;
    views(app, asked, &shown).await
}

/// Whom the asker asks about (`users`, or `channel`'s members), and which of them they may
/// see: people who share the channel (for `users`: a direct channel) with them and do not
/// block them, and themselves.
async fn visible(
    app: &App,
    asker: &UserId,
    users: Vec<UserId>,
    channel: Option<&ChannelId>,
) -> Result<(Vec<UserId>, Vec<UserId>), ChatError> {
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
    Ok((asked, shown))
}

/// The presence of each of `asked`: as others see them for those `shown`, and as an
/// unknown user (offline, never seen) for the rest.
async fn views(app: &App, asked: Vec<UserId>, shown: &[UserId]) -> Result<Vec<PresenceView>, ChatError> {
    let now = app.now_ms();
    let window = app.settings.presence.window_ms;
    let mut known: HashMap<UserId, PresenceView> = HashMap::new();
    for record in app.presence().statuses(shown).await? {
        let Some(user) = record.user_id.clone() else { continue };
        let online = connections::is_online(Some(&record), now);
        known.insert(user.clone(), connections::view(&user, Some(&record), online, now, window));
    }
    Ok(asked
        .into_iter()
        .map(|user| known.remove(&user).unwrap_or_else(|| connections::view(&user, None, false, now, window)))
        .collect())
}
