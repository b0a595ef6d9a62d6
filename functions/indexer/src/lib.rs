//! The search indexer, fed by the Messages table's stream (a DynamoDB event source
//! mapping; the local gateway runs it the same way): each batch of records becomes index
//! changes, applied all or nothing per shard. A failed batch fails the invocation, so the
//! mapping retries it (and bisects it, and finally sends it to the on-failure topic);
//! records that cannot be read are skipped and counted, since retrying cannot fix them.

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

impl From<IndexerError> for lambda_runtime::Diagnostic {
    fn from(err: IndexerError) -> Self {
        let error_type = match err {
            IndexerError::Event(_) => "NotAStreamEvent",
            IndexerError::Index(_) => "IndexNotUpdated",
        };
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: err.to_string() }
    }
}
