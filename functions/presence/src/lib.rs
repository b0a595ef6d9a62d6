//! The presence sweep, run on a schedule (EventBridge, every minute; the local gateway
//! runs it on a timer): users whose heartbeats stopped without a `$disconnect` go offline,
//! and their contacts are told.

use chat_domain::{App, presence};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

/// Each schedule's `Input` names its run, `{"run": i}` (template.yaml: `EveryMinute` is
/// run 0, `EveryMinuteRun1`… the others); an event without one (a plain scheduled event) is
/// run 0. Runs past `PRESENCE_SWEEP_RUNS` answer at once.
pub async fn handle(app: &App, event: Value) -> Value {
    let index = match event.get("run") {
        None => 0,
        Some(run) => match run.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|n| *n < presence::MAX_SWEEP_RUNS) {
            Some(index) => index,
            None => {
                warn!(%run, "presence sweep: not a run number; nothing swept");
                let reason = format!("run must be a whole number below {}", presence::MAX_SWEEP_RUNS);
                return json!({ "error": reason });
            }
        },
    };
    let Some(run) = presence::SweepRun::scheduled(app, index) else {
        return json!({ "run": index, "skipped": "past PRESENCE_SWEEP_RUNS" });
    };
    let report = presence::sweep_run(app, run).await;
    // Every few seconds locally, every minute in AWS: said only when it did something.
    if report.went_offline > 0 {
        info!(run = index, went_offline = report.went_offline, passes = report.passes, "presence sweep");
    } else {
        debug!(run = index, passes = report.passes, "presence sweep: nobody went offline");
    }
    json!({ "run": index, "wentOffline": report.went_offline, "passes": report.passes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::memory::World;

    #[tokio::test]
    async fn the_input_names_the_run_and_a_bad_one_is_refused_with_nothing_swept() {
        let world = World::new().with_settings(|s| s.presence.sweep_runs = 2);
        let app = world.app();
        assert_eq!(handle(&app, json!({"run": 1})).await["run"], 1);
        assert_eq!(handle(&app, json!({"version": "0", "detail": {}})).await["run"], 0, "EventBridge's own event");
        assert_eq!(handle(&app, json!({"run": 5})).await["skipped"], "past PRESENCE_SWEEP_RUNS");
        for bad in [json!({"run": "one"}), json!({"run": -1}), json!({"run": 8})] {
            let answer = handle(&app, bad.clone()).await;
            assert!(answer["error"].as_str().unwrap().contains("below 8"), "{bad}: {answer}");
        }
    }
}
