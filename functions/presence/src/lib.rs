//! The presence sweep, run on a schedule (EventBridge, every minute; the local gateway
//! runs it on a timer): users whose heartbeats stopped without a `$disconnect` go offline,
//! and their contacts are told.

use chat_domain::{App, presence};
use serde_json::{Value, json};
use tracing::{debug, info};

/// The scheduled event's content does not matter: every run sweeps.
pub async fn handle(app: &App, _event: Value) -> Value {
    let report = presence::sweep(app).await;
    // Every few seconds locally, every minute in AWS: said only when it did something.
    if report.went_offline > 0 {
        info!(went_offline = report.went_offline, passes = report.passes, "presence sweep");
    } else {
        debug!(passes = report.passes, "presence sweep: nobody went offline");
    }
    json!({ "wentOffline": report.went_offline, "passes": report.passes })
}
