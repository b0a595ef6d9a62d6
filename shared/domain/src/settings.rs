//! The knobs of the rules: limits, presence timing, sync and upload bounds, token
//! lifetimes. The AWS adapter reads them from the environment (`chat_aws::config`).

/// At most `count` requests per `window_ms`, per user (a fixed window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub window_ms: i64,
}

impl RateLimit {
    /// Parses `5/5s`, `20/60s`, `100/500ms`, `20/1m`.
    pub fn parse(text: &str) -> Option<Self> {
        let (count, window) = text.trim().split_once('/')?;
        let count: u32 = count.trim().parse().ok().filter(|c| *c > 0)?;
        let window = window.trim();
        let window_ms = if let Some(ms) = window.strip_suffix("ms") {
            ms.parse::<i64>().ok()?
        } else if let Some(s) = window.strip_suffix('s') {
            s.parse::<i64>().ok()? * 1000
        } else if let Some(m) = window.strip_suffix('m') {
            m.parse::<i64>().ok()? * 60_000
        } else {
            return None;
        };
        (window_ms > 0).then_some(Self { count, window_ms })
    }
}

/// A limit for every action (see [`crate::limits`] for which are counted where).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `sendMessage` per user. Default 5 per 5 s, as Discord does.
    pub sends: RateLimit,
    /// WebSocket connection attempts per user. Default 20 per minute.
    pub connects: RateLimit,
    /// `editMessage` and `deleteMessage` per user (each fans out to every member).
    pub changes: RateLimit,
    /// `addReaction` and `removeReaction` per user (each fans out to every member).
    pub reactions: RateLimit,
    /// `typing`, `markRead`, `heartbeat`, `getPresence`, `sync`: cheap frames, per user.
    pub frames: RateLimit,
    /// `subscribePresence`: each writes one item per user subscribed to (up to 100).
    pub subscribes: RateLimit,
    /// `startCall` per user (each rings every device of the callee, and may push).
    pub calls: RateLimit,
    /// `callSignal` per user: an offer, an answer and a few dozen ICE candidates a call.
    pub signals: RateLimit,
    /// HTTP reads (channel list, history, details, invitations, blocks) per user.
    pub reads: RateLimit,
    /// `GET /search` per user: each opens index shards (counted in memory, as reads are).
    pub searches: RateLimit,
    /// HTTP changes (groups, members, invitations, blocks, mute, devices, sign-out) per user.
    pub writes: RateLimit,
    /// Upload grants per user.
    pub uploads: RateLimit,
    /// Sign-in attempts per account and per source address (each also alone, looser).
    pub sign_ins: RateLimit,
    /// Sign-ups per source address.
    pub sign_ups: RateLimit,
    /// Refreshes per session (a device refreshes about hourly). Counted in the session's
    /// own refresh tokens, so an office or a carrier NAT sharing one address is not limited
    /// as one.
    pub refreshes: RateLimit,
    /// Refused refreshes (unknown, expired or reused tokens) per source address: guessing
    /// and replaying are limited where no session is known.
    pub refresh_failures: RateLimit,
}

impl RateLimits {
    /// The same limit for every action (tests).
    pub const fn uniform(limit: RateLimit) -> Self {
        Self {
            sends: limit,
            connects: limit,
            changes: limit,
            reactions: limit,
            frames: limit,
            subscribes: limit,
            calls: limit,
            signals: limit,
            reads: limit,
            searches: limit,
            writes: limit,
            uploads: limit,
            sign_ins: limit,
            sign_ups: limit,
            refreshes: limit,
            refresh_failures: limit,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            sends: RateLimit { count: 5, window_ms: 5_000 },
            connects: RateLimit { count: 20, window_ms: 60_000 },
            changes: RateLimit { count: 10, window_ms: 10_000 },
            reactions: RateLimit { count: 30, window_ms: 10_000 },
            frames: RateLimit { count: 20, window_ms: 10_000 },
            subscribes: RateLimit { count: 20, window_ms: 60_000 },
            calls: RateLimit { count: 10, window_ms: 60_000 },
            signals: RateLimit { count: 100, window_ms: 10_000 },
            reads: RateLimit { count: 60, window_ms: 60_000 },
            searches: RateLimit { count: 30, window_ms: 60_000 },
            writes: RateLimit { count: 30, window_ms: 60_000 },
            uploads: RateLimit { count: 30, window_ms: 60 * 60_000 },
            sign_ins: RateLimit { count: 10, window_ms: 5 * 60_000 },
            sign_ups: RateLimit { count: 20, window_ms: 60 * 60_000 },
            refreshes: RateLimit { count: 60, window_ms: 60 * 60_000 },
            refresh_failures: RateLimit { count: 600, window_ms: 60 * 60_000 },
        }
    }
}

/// Shards of the search index by default: a query over all of a user's channels opens at
/// most this many (docs/DESIGN.md, "Search").
pub const DEFAULT_SEARCH_SHARDS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceSettings {
    /// A user with no heartbeat for this long is offline (clients beat every ~30 s).
    pub window_ms: i64,
    /// After the last device disconnects, contacts hear "offline" this much later, so a
    /// reconnect within it is not announced at all.
    pub offline_grace_ms: i64,
    /// Passes one sweep invocation makes, `pass_interval_ms` apart: EventBridge schedules
    /// run at most once a minute, the passes narrow the delay to the interval.
    pub sweep_passes: u32,
    pub sweep_pass_interval_ms: i64,
    /// Partitions of the online users' deadlines (each key of the `OnlineByDeadline` index
    /// takes 1,000 WRU/s: ~8,000 users beating every 30 s). Only ever raised: a user whose
    /// deadline sits in a shard no longer read would never be swept.
    pub shards: u32,
    /// Sweep runs at once (`PresenceSweepRuns`): run `i` reads the shards `s % runs == i`,
    /// so departures are worked through `runs` times as fast. The template schedules
    /// `presence::MAX_SWEEP_RUNS` runs a minute; those past `runs` answer at once.
    pub sweep_runs: u32,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            window_ms: 60_000,
            offline_grace_ms: 5_000,
            sweep_passes: 1,
            sweep_pass_interval_ms: 10_000,
            shards: crate::connections::ONLINE_SHARDS,
            sweep_runs: 1,
        }
    }
}

/// What an upload may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRules {
    pub max_bytes: u64,
    /// Exact content types an upload may declare.
    pub allowed_types: Vec<String>,
}

pub const DEFAULT_UPLOAD_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_UPLOAD_TYPES: &str =
    "image/jpeg,image/png,image/gif,image/webp,application/pdf,text/plain,video/mp4,audio/mpeg";

impl Default for UploadRules {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_UPLOAD_MAX_BYTES,
            allowed_types: DEFAULT_UPLOAD_TYPES.split(',').map(str::to_owned).collect(),
        }
    }
}

pub const DEFAULT_SYNC_MAX_MESSAGES: usize = 500;
/// Distinct emoji one message may carry (each member may use every one of them).
pub const DEFAULT_MAX_REACTIONS_PER_MESSAGE: usize = 20;
pub const DEFAULT_ACCESS_TOKEN_TTL_S: i64 = 60 * 60;
pub const DEFAULT_REFRESH_TOKEN_TTL_S: i64 = 30 * 24 * 60 * 60;

/// Calls: how long they ring, and the ICE servers their devices are given.
#[derive(Clone, PartialEq, Eq)]
pub struct CallSettings {
    pub ring_ms: i64,
    /// `stun:` URLs, given as they are.
    pub stun_urls: Vec<String>,
    /// `turn:`/`turns:` URLs, given with credentials made from `turn_secret`.
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`).
    pub turn_secret: Option<String>,
    /// How long a TURN credential is valid.
    pub turn_credential_ttl_s: i64,
}

pub const DEFAULT_CALL_RING_MS: i64 = 30_000;
pub const DEFAULT_TURN_CREDENTIAL_TTL_S: i64 = 4 * 60 * 60;

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            ring_ms: DEFAULT_CALL_RING_MS,
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_credential_ttl_s: DEFAULT_TURN_CREDENTIAL_TTL_S,
        }
    }
}

// Hand-written: the TURN secret is never logged.
impl std::fmt::Debug for CallSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSettings")
            .field("ring_ms", &self.ring_ms)
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "<redacted>"))
            .field("turn_credential_ttl_s", &self.turn_credential_ttl_s)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub rate_limits: RateLimits,
    pub presence: PresenceSettings,
    /// Most messages one `sync` answers with; past it the answer says to page on.
    pub sync_max_messages: usize,
    /// Distinct emoji one message may carry.
    pub max_reactions_per_message: usize,
    /// Push a reaction to the message's author when they have no live connection (off:
    /// reactions are not worth waking a phone for, as most apps decide).
    pub push_reactions_to_author: bool,
    pub uploads: UploadRules,
    pub calls: CallSettings,
    /// Lifetime of access tokens (seconds). Refresh tokens keep a client signed in.
    pub access_token_ttl_s: i64,
    pub refresh_token_ttl_s: i64,
    /// Names the counters this deployment keeps in memory, so that stacks sharing one
    /// process (tests) do not share counts.
    pub limit_scope: String,
    /// Shards of the search index (`SEARCH_SHARDS`): channels are spread over them.
    pub search_shards: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rate_limits: RateLimits::default(),
            presence: PresenceSettings::default(),
            sync_max_messages: DEFAULT_SYNC_MAX_MESSAGES,
            max_reactions_per_message: DEFAULT_MAX_REACTIONS_PER_MESSAGE,
            push_reactions_to_author: false,
            uploads: UploadRules::default(),
            calls: CallSettings::default(),
            access_token_ttl_s: DEFAULT_ACCESS_TOKEN_TTL_S,
            refresh_token_ttl_s: DEFAULT_REFRESH_TOKEN_TTL_S,
            limit_scope: String::new(),
            search_shards: DEFAULT_SEARCH_SHARDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse_from_count_and_window() {
        assert_eq!(RateLimit::parse("5/5s"), Some(RateLimit { count: 5, window_ms: 5_000 }));
        assert_eq!(RateLimit::parse("20/1m"), Some(RateLimit { count: 20, window_ms: 60_000 }));
        assert_eq!(RateLimit::parse("3/250ms"), Some(RateLimit { count: 3, window_ms: 250 }));
        assert_eq!(RateLimit::parse("0/5s"), None);
        assert_eq!(RateLimit::parse("5"), None);
        assert_eq!(RateLimit::parse("5/5h"), None);
    }
}
