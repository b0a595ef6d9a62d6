//! What the rules count and time, per invocation. A function's wiring runs each
//! invocation inside [`measure`] and gets its [`Figures`] at the end: in Lambda they become
//! one CloudWatch Embedded Metric Format log line (`chat_aws::telemetry`), in the local
//! gateway they feed its Prometheus `/metrics`. Names are a fixed set (never per user or
//! channel), so the number of metrics, and their bill, stays bounded.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// A new message was stored (a retried send is not counted again).
pub const MESSAGES_STORED: &str = "MessagesStored";
/// Live connections a new message was posted to (its recipients' devices).
pub const SEND_RECIPIENTS: &str = "SendRecipients";
/// Posts to connections, by outcome.
pub const POSTS_DELIVERED: &str = "PostsDelivered";
pub const POSTS_GONE: &str = "PostsGone";
pub const POSTS_THROTTLED: &str = "PostsThrottled";
pub const POSTS_FAILED: &str = "PostsFailed";
/// Pushes to offline devices, by outcome.
pub const PUSHES_SENT: &str = "PushesSent";
pub const PUSHES_DISABLED: &str = "PushesDisabled";
pub const PUSHES_FAILED: &str = "PushesFailed";
/// Sends that found the next seq taken by a concurrent one and claimed another.
pub const APPEND_CLAIMS: &str = "AppendClaims";
/// Messages a `sync` answered with.
pub const SYNC_MESSAGES: &str = "SyncMessages";
/// Presence changes announced to contacts.
pub const PRESENCE_ONLINE: &str = "PresenceOnline";
pub const PRESENCE_OFFLINE: &str = "PresenceOffline";
/// The send path's stages: the durable write (with the presence read beside it), the
/// posts and pushes, and the whole send from the frame to the last post.
pub const SEND_STORE_MS: &str = "SendStoreMs";
pub const SEND_DELIVER_MS: &str = "SendDeliverMs";
pub const SEND_TOTAL_MS: &str = "SendTotalMs";

/// Every metric name the code can emit (the `RateLimited…` ones come from
/// `crate::limits::Action::metric`).
pub const NAMES: &[&str] = &[
    MESSAGES_STORED,
    SEND_RECIPIENTS,
    POSTS_DELIVERED,
    POSTS_GONE,
    POSTS_THROTTLED,
    POSTS_FAILED,
    PUSHES_SENT,
    PUSHES_DISABLED,
    PUSHES_FAILED,
    APPEND_CLAIMS,
    SYNC_MESSAGES,
    PRESENCE_ONLINE,
    PRESENCE_OFFLINE,
    SEND_STORE_MS,
    SEND_DELIVER_MS,
    SEND_TOTAL_MS,
];

/// Names ending in `Ms` are durations in milliseconds; the rest are counts.
pub fn is_duration(name: &str) -> bool {
    name.ends_with("Ms")
}

/// One invocation's figures: counts summed, durations kept one value each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub counts: BTreeMap<&'static str, u64>,
    pub durations_ms: BTreeMap<&'static str, Vec<f64>>,
}

impl Figures {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.durations_ms.is_empty()
    }

    pub fn count_of(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }
}

tokio::task_local! {
    static CURRENT: Arc<Mutex<Figures>>;
}

/// Runs `work` and answers what it counted and timed. Nested calls each get their own.
pub async fn measure<F: Future>(work: F) -> (F::Output, Figures) {
    let figures = Arc::new(Mutex::new(Figures::default()));
    let output = CURRENT.scope(figures.clone(), work).await;
    let figures = figures.lock().map(|f| f.clone()).unwrap_or_default();
    (output, figures)
}

fn with_current(change: impl FnOnce(&mut Figures)) {
    // Outside `measure` (a tool, a test) nothing is recorded.
    let _ = CURRENT.try_with(|figures| {
        if let Ok(mut figures) = figures.lock() {
            change(&mut figures);
        }
    });
}

/// Adds `n` to a count of this invocation.
pub fn count(name: &'static str, n: u64) {
    if n > 0 {
        with_current(|f| *f.counts.entry(name).or_default() += n);
    }
}

/// Records one duration of this invocation.
pub fn duration(name: &'static str, since: std::time::Instant) {
    let ms = since.elapsed().as_secs_f64() * 1000.0;
    with_current(|f| f.durations_ms.entry(name).or_default().push(ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_invocation_gets_only_its_own_figures() {
        let ((), outer) = measure(async {
            count(MESSAGES_STORED, 1);
            let ((), inner) = measure(async { count(POSTS_DELIVERED, 3) }).await;
            assert_eq!(inner.count_of(POSTS_DELIVERED), 3);
            count(MESSAGES_STORED, 1);
            duration(SEND_TOTAL_MS, std::time::Instant::now());
        })
        .await;
        assert_eq!(outer.count_of(MESSAGES_STORED), 2);
        assert_eq!(outer.count_of(POSTS_DELIVERED), 0);
        assert_eq!(outer.durations_ms[SEND_TOTAL_MS].len(), 1);
        count(MESSAGES_STORED, 1); // outside: recorded nowhere, and no panic
    }

    #[test]
    fn durations_are_told_apart_by_their_names() {
        assert!(NAMES.iter().filter(|n| is_duration(n)).all(|n| n.starts_with("Send")));
        assert!(!is_duration(MESSAGES_STORED));
    }
}
