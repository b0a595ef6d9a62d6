//! The search indexer, fed by the Messages table's stream (a DynamoDB event source
//! mapping; the local gateway runs it the same way): each batch of records becomes index
//! changes, applied all or nothing per shard. A failed batch fails the invocation, so the
//! mapping retries it (and bisects it, and finally sends it to the on-failure topic);
//! records that cannot be read are skipped and counted, since retrying cannot fix them.
//!
//! Invoked with `{"backfill": {"segment": 0, "segments": 4, "cursor": null}}` instead, it
//! indexes one page of the Messages table (scripts/backfill-search.sh runs the steps) and
//! answers where the next page starts.

use chat_domain::{App, ChatError};
use serde_json::{Value, json};
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error(transparent)]
    Event(#[from] chat_aws::streams::StreamError),
    #[error(transparent)]
    Index(#[from] ChatError),
}

pub async fn handle(app: &App, event: Value) -> Result<Value, IndexerError> {
    if let Some(step) = event.get("backfill") {
        return backfill(app, step).await;
    }
    let batch = chat_aws::streams::index_changes(&event)?;
    chat_domain::metrics::count("UnreadableRecords", batch.unreadable as u64);
    let changes = batch.changes.len();
    let applied = chat_domain::search::index(app, batch.changes).await?;
    info!(changes, written = applied.written, stale = applied.stale, shards = applied.shards, "indexed");
    Ok(json!({
        "written": applied.written,
        "stale": applied.stale,
        "skipped": batch.skipped,
        "unreadable": batch.unreadable,
    }))
}

async fn backfill(app: &App, step: &Value) -> Result<Value, IndexerError> {
    let number = |name: &str| step.get(name).and_then(Value::as_u64).map(|n| n.min(u64::from(u32::MAX)) as u32);
    let (segment, segments) = (number("segment").unwrap_or(0), number("segments").unwrap_or(1));
    let cursor = step.get("cursor").and_then(Value::as_str);
    let done = chat_domain::search::backfill(app, segment, segments, cursor).await?;
    info!(segment, segments, scanned = done.scanned, written = done.written, "backfill step");
    Ok(json!({ "scanned": done.scanned, "written": done.written, "cursor": done.cursor }))
}

impl From<IndexerError> for lambda_runtime::Diagnostic {
    fn from(err: IndexerError) -> Self {
        let error_type = match err {
            IndexerError::Event(_) => "NotAStreamEvent",
            IndexerError::Index(_) => "IndexNotUpdated",
        };
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: err.to_string() }
    }
}
