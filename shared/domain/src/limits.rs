//! A limit on every action, counted where it costs (almost) nothing.
//!
//! - Connects count in the user's presence record, in the very write that records the
//!   connection ([`connect_quota`]): no write of their own.
//! - Actions that must hold across every Lambda instance (sends, edits and deletes, HTTP
//!   reactions, HTTP changes, upload grants, sign-in, sign-up) count in the RateLimits table: one
//!   UpdateItem each (1 write unit).
//! - Refreshes count per session in the session's refresh tokens (no write of their own);
//!   refused ones per source address, read before and written after
//!   ([`check_refused_refreshes`]).
//! - Cheap, frequent frames (`typing`, `markRead`, `heartbeat`, `getPresence`, `sync`) and
//!   HTTP reads count in the memory of the Lambda instance that serves them: no request at
//!   all. A user whose frames land on N warm instances gets up to N times the limit; API
//!   Gateway's stage throttling (template.yaml) bounds the total. docs/COST.md has the figures.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::app::App;
use crate::error::{ChatError, PortError};
use crate::settings::{RateLimit, RateLimits};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Send,
    Connect,
    /// `editMessage`, `deleteMessage`.
    Change,
    /// `addReaction`, `removeReaction`.
    React,
    /// `typing`, `markRead`, `heartbeat`, `getPresence`, `sync`, `setPresence`,
    /// `setStatus`, `unsubscribePresence`.
    Frame,
    /// `subscribePresence` (up to 100 writes each).
    Subscribe,
    /// `startCall` (rings every device of the callee, may push).
    Call,
    /// `callSignal` (an offer, an answer and a few dozen ICE candidates per call).
    Signal,
    /// HTTP GET routes.
    Read,
    /// `GET /search`.
    Search,
    /// HTTP routes that change something.
    Write,
    Upload,
    /// Sign-in attempts, keyed by account, by source address, and by both.
    SignIn,
    /// Sign-ups, keyed by source address.
    SignUp,
    /// Refused refreshes, keyed by source address (a session's own refreshes count in its
    /// tokens: `accounts::refresh`).
    Refresh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counting {
    /// In DynamoDB: every instance sees the same count.
    Shared,
    /// In this instance's memory: free.
    Local,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::Send,
        Action::Connect,
        Action::Change,
        Action::React,
        Action::Frame,
        Action::Subscribe,
        Action::Call,
        Action::Signal,
        Action::Read,
        Action::Search,
        Action::Write,
        Action::Upload,
        Action::SignIn,
        Action::SignUp,
        Action::Refresh,
    ];

    fn name(self) -> &'static str {
        match self {
            Action::Send => "send",
            Action::Connect => "connect",
            Action::Change => "change",
            Action::React => "react",
            Action::Frame => "frame",
            Action::Subscribe => "subscribe",
            Action::Call => "call",
            Action::Signal => "signal",
            Action::Read => "read",
            Action::Search => "search",
            Action::Write => "write",
            Action::Upload => "upload",
            Action::SignIn => "signin",
            Action::SignUp => "signup",
            Action::Refresh => "refresh",
        }
    }

    /// The metric counting refusals of this action.
    pub fn metric(self) -> &'static str {
        match self {
            Action::Send => "RateLimitedSend",
            Action::Connect => "RateLimitedConnect",
            Action::Change => "RateLimitedChange",
            Action::React => "RateLimitedReact",
            Action::Frame => "RateLimitedFrame",
            Action::Subscribe => "RateLimitedSubscribe",
            Action::Call => "RateLimitedCall",
            Action::Signal => "RateLimitedSignal",
            Action::Read => "RateLimitedRead",
            Action::Search => "RateLimitedSearch",
            Action::Write => "RateLimitedWrite",
            Action::Upload => "RateLimitedUpload",
            Action::SignIn => "RateLimitedSignIn",
            Action::SignUp => "RateLimitedSignUp",
            Action::Refresh => "RateLimitedRefresh",
        }
    }

    fn limit(self, limits: &RateLimits) -> RateLimit {
        match self {
            Action::Send => limits.sends,
            Action::Connect => limits.connects,
            Action::Change => limits.changes,
            Action::React => limits.reactions,
            Action::Frame => limits.frames,
            Action::Subscribe => limits.subscribes,
            Action::Call => limits.calls,
            Action::Signal => limits.signals,
            Action::Read => limits.reads,
            Action::Search => limits.searches,
            Action::Write => limits.writes,
            Action::Upload => limits.uploads,
            Action::SignIn => limits.sign_ins,
            Action::SignUp => limits.sign_ups,
            Action::Refresh => limits.refresh_failures,
        }
    }

    fn counting(self) -> Counting {
        match self {
            Action::Frame | Action::Subscribe | Action::Signal | Action::Read | Action::Search => Counting::Local,
            _ => Counting::Shared,
        }
    }
}

/// The connect limit of this moment as a quota the connect's own presence write checks and
/// counts (no separate counter write), and how long a refused connect waits.
pub fn connect_quota(app: &App) -> (crate::ports::ConnectQuota, u64) {
    let limit = app.settings.rate_limits.connects;
    let (window, retry_after_ms) = window_now(app, limit);
    (crate::ports::ConnectQuota { window, limit: limit.count }, retry_after_ms)
}

/// The fixed window of `limit` this moment falls in, and the ms until it ends.
fn window_now(app: &App, limit: RateLimit) -> (i64, u64) {
    let now = app.now_ms();
    let window = now.div_euclid(limit.window_ms);
    (window, ((window + 1) * limit.window_ms - now).max(1) as u64)
}

/// Counts one `action` by `key` (a user id, or `ip:1.2.3.4` for unauthenticated routes);
/// `rate_limited` with the time to wait when it is over the limit.
pub async fn check(app: &App, action: Action, key: &str) -> Result<(), ChatError> {
    let limit = action.limit(&app.settings.rate_limits);
    let now = app.now_ms();
    let over = match action.counting() {
        Counting::Shared => shared_hit(app, action.name(), key, limit).await?,
        // Scoped, so that stacks sharing a process (tests) do not share counts.
        Counting::Local => local_hit(&format!("{}#{}#{key}", app.settings.limit_scope, action.name()), limit, now),
    };
    match over {
        None => Ok(()),
        Some(retry_after_ms) => {
            crate::metrics::count(action.metric(), 1);
            Err(ChatError::RateLimited { retry_after_ms })
        }
    }
}

/// A session's refresh quota of this moment, which the token's own write checks (the count
/// travels in the session's tokens: no counter write), and how long a refused refresh waits.
pub fn session_refresh_quota(app: &App) -> (crate::ports::RefreshQuota, u64) {
    let limit = app.settings.rate_limits.refreshes;
    let (window, retry_after_ms) = window_now(app, limit);
    (crate::ports::RefreshQuota { window, limit: limit.count }, retry_after_ms)
}

/// Refused refreshes from `address`, before its token is looked up: over the limit, the
/// refresh is refused with one eventually consistent read (all a flood costs). Valid
/// refreshes never count here, so any number of users behind one address refresh freely.
pub async fn check_refused_refreshes(app: &App, address: &str) -> Result<(), ChatError> {
    let limit = Action::Refresh.limit(&app.settings.rate_limits);
    let (window, retry_after_ms) = window_now(app, limit);
    if app.counters().peek(Action::Refresh.name(), address, window).await? >= u64::from(limit.count) {
        crate::metrics::count(Action::Refresh.metric(), 1);
        return Err(ChatError::RateLimited { retry_after_ms });
    }
    Ok(())
}

/// Counts a refused refresh from `address` (see [`check_refused_refreshes`]).
pub async fn count_refused_refresh(app: &App, address: &str) -> Result<(), PortError> {
    let limit = Action::Refresh.limit(&app.settings.rate_limits);
    shared_hit(app, Action::Refresh.name(), address, limit).await.map(|_| ())
}

/// Counts one request of `kind` by `who` in the shared counters (one write): `None` when it
/// is within `limit`, `Some(ms)` until the window ends when over.
pub async fn shared_hit(app: &App, kind: &str, who: &str, limit: RateLimit) -> Result<Option<u64>, PortError> {
    let now = app.now_ms();
    let window = now.div_euclid(limit.window_ms);
    let window_ends = (window + 1) * limit.window_ms;
    // Kept a minute past the window's end, then the store may forget it.
    let count = app.counters().increment(kind, who, window, window_ends / 1000 + 60).await?;
    Ok((count > u64::from(limit.count)).then(|| (window_ends - now).max(1) as u64))
}

/// Fixed windows in this process's memory. Bounded: past windows are dropped when it grows.
fn local_hit(key: &str, limit: RateLimit, now_ms: i64) -> Option<u64> {
    const MAX_KEYS: usize = 50_000;
    static WINDOWS: OnceLock<Mutex<HashMap<String, (i64, u32)>>> = OnceLock::new();
    let window = now_ms.div_euclid(limit.window_ms);
    let mut windows = WINDOWS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if windows.len() >= MAX_KEYS {
        windows.retain(|_, (w, _)| *w == window);
        if windows.len() >= MAX_KEYS {
            windows.clear();
        }
    }
    let entry = windows.entry(key.to_owned()).or_insert((window, 0));
    if entry.0 != window {
        *entry = (window, 0);
    }
    entry.1 = entry.1.saturating_add(1);
    (entry.1 > limit.count).then(|| ((window + 1) * limit.window_ms - now_ms).max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_window_allows_its_count_then_says_when_it_ends() {
        let limit = RateLimit { count: 3, window_ms: 1_000 };
        let key = "test#frame#alice";
        let at = 5_000_200;
        assert_eq!((0..3).filter_map(|_| local_hit(key, limit, at)).count(), 0);
        assert_eq!(local_hit(key, limit, at), Some(800));
        assert_eq!(local_hit(key, limit, at + 1_000), None, "a new window starts afresh");
    }
}
