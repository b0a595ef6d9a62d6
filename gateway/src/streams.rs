//! DynamoDB stream event source mappings, run as Lambda runs them: the mapping reads the
//! table's stream with the function's role (so the IAM check sees `GetRecords` and the
//! rest as the function's), waits up to its batching window for a batch, invokes the
//! function with Lambda's event, moves on only once the function succeeded, retries a
//! failing batch with backoff, splits it in halves when `BisectBatchOnFunctionError` is
//! on, and once the retries of a batch are spent sends its description to the on-failure
//! destination (an SNS topic here) and goes on with the records after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::invoke::Invoke;
use crate::routes::Function;
use crate::template::StreamSource;

/// How often an idle mapping polls (Lambda polls each shard about 4 times a second).
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// One mapping, with the clients it runs with.
pub struct StreamMapping {
    pub function: Function,
    pub source: StreamSource,
    /// The table's local name.
    pub table: String,
    /// Signed as the function (its role).
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// The account's view, to wait for the table to exist.
    pub admin: aws_sdk_dynamodb::Client,
    /// The on-failure destination: the SNS client signed as the function, and the topic.
    pub on_failure: Option<(aws_sdk_sns::Client, String)>,
    pub invoker: Arc<dyn Invoke>,
}

/// What the mappings did, for tests and `/metrics`.
#[derive(Debug, Default)]
pub struct StreamCounts {
    pub records: AtomicU64,
    pub invocations: AtomicU64,
    pub failed_invocations: AtomicU64,
    /// Batches sent to the on-failure destination.
    pub discarded_batches: AtomicU64,
}

/// Running mappings; they stop when this is dropped.
pub struct StreamPollers {
    pub counts: Arc<StreamCounts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl StreamPollers {
    pub fn start(mappings: Vec<StreamMapping>) -> Self {
        let counts = Arc::new(StreamCounts::default());
        let tasks = mappings
            .into_iter()
            .map(|mapping| {
                let counts = counts.clone();
                tokio::spawn(async move { run(mapping, counts).await })
            })
            .collect();
        Self { counts, tasks }
    }
}

impl Drop for StreamPollers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The table's stream, found as Lambda finds it, with the function's role (ListStreams).
async fn stream_arn(mapping: &StreamMapping) -> String {
    loop {
        let table_exists = mapping.admin.describe_table().table_name(&mapping.table).send().await.is_ok();
        if table_exists {
            match mapping.streams.list_streams().table_name(&mapping.table).send().await {
                Ok(out) => match out.streams().first().and_then(|s| s.stream_arn()) {
                    Some(arn) => return arn.to_owned(),
                    None => tracing::warn!(table = %mapping.table, "the table has no stream: its mapping waits"),
                },
                Err(err) => tracing::warn!(table = %mapping.table, error = %err, "ListStreams failed"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run(mapping: StreamMapping, counts: Arc<StreamCounts>) {
    let arn = stream_arn(&mapping).await;
    let mut iterators = Vec::new();
    while iterators.is_empty() {
        match shard_iterators(&mapping, &arn).await {
            Ok(found) => iterators = found,
            Err(err) => {
                tracing::warn!(stream = %arn, error = %err, "cannot read the stream");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let window = Duration::from_secs(mapping.source.batching_window_s);
    let batch_size = mapping.source.batch_size.max(1);
    let mut pending: Vec<Value> = Vec::new();
    let mut first_pending_at = Instant::now();
    loop {
        let mut got_any = false;
        for iterator in iterators.iter_mut() {
            let Some(current) = iterator.clone() else { continue };
            let room = (batch_size.saturating_sub(pending.len())).clamp(1, 1000);
            match mapping.streams.get_records().shard_iterator(current).limit(room as i32).send().await {
                Ok(out) => {
                    if !out.records().is_empty() && pending.is_empty() {
                        first_pending_at = Instant::now();
                    }
                    got_any |= !out.records().is_empty();
                    pending.extend(out.records().iter().map(|r| lambda_record(r, &arn)));
                    *iterator = out.next_shard_iterator().map(str::to_owned);
                }
                Err(err) => tracing::warn!(stream = %arn, error = %err, "GetRecords failed"),
            }
        }
        while !pending.is_empty() && (pending.len() >= batch_size || first_pending_at.elapsed() >= window) {
            let rest = pending.split_off(pending.len().min(batch_size));
            let batch = std::mem::replace(&mut pending, rest);
            counts.records.fetch_add(batch.len() as u64, Ordering::Relaxed);
            deliver(&mapping, &counts, &arn, batch).await;
            first_pending_at = Instant::now();
        }
        if !got_any {
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

async fn shard_iterators(mapping: &StreamMapping, arn: &str) -> Result<Vec<Option<String>>, String> {
    let described = mapping.streams.describe_stream().stream_arn(arn).send().await.map_err(|e| e.to_string())?;
    let shards = described.stream_description().map(|d| d.shards().to_vec()).unwrap_or_default();
    let mut iterators = Vec::new();
    for shard in shards {
        let Some(shard_id) = shard.shard_id() else { continue };
        let position = match mapping.source.starting_position.as_str() {
            "LATEST" => ShardIteratorType::Latest,
            _ => ShardIteratorType::TrimHorizon,
        };
        let out = mapping
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard_id)
            .shard_iterator_type(position)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        iterators.push(out.shard_iterator().map(str::to_owned));
    }
    Ok(iterators)
}

/// Invokes the function with `records` until it succeeds, its retries are spent (then the
/// batch goes to the on-failure destination) or, with bisection, in halves.
async fn deliver(mapping: &StreamMapping, counts: &StreamCounts, arn: &str, records: Vec<Value>) {
    let mut failures: i64 = 0;
    loop {
        counts.invocations.fetch_add(1, Ordering::Relaxed);
        let error = match mapping.invoker.invoke(mapping.function, json!({ "Records": records })).await {
            Ok(_) => return,
            Err(err) => err.to_string(),
        };
        counts.failed_invocations.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(function = mapping.function.logical_id(), records = records.len(), error, "stream batch failed");
        failures += 1;
        if mapping.source.bisect_on_error && records.len() > 1 {
            let mut first = records;
            let second = first.split_off(first.len() / 2);
            Box::pin(deliver(mapping, counts, arn, first)).await;
            Box::pin(deliver(mapping, counts, arn, second)).await;
            return;
        }
        let retries = mapping.source.maximum_retry_attempts;
        if retries >= 0 && failures > retries {
            discard(mapping, counts, arn, &records, failures).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100 << failures.min(6))).await;
    }
}

/// What Lambda sends the on-failure destination of a stream mapping: where the batch was,
/// not the records (they stay in the stream for 24 hours).
async fn discard(mapping: &StreamMapping, counts: &StreamCounts, arn: &str, records: &[Value], invocations: i64) {
    counts.discarded_batches.fetch_add(1, Ordering::Relaxed);
    let sequence =
        |r: Option<&Value>| r.and_then(|r| r.pointer("/dynamodb/SequenceNumber")).cloned().unwrap_or(Value::Null);
    let description = json!({
        "requestContext": {
            "requestId": format!("{:032x}", rand::random::<u128>()),
            "functionArn": format!("arn:aws:lambda:{}:{}:function:{}", crate::iam::LOCAL_REGION, crate::iam::LOCAL_ACCOUNT, mapping.function.logical_id()),
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invocations,
        },
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
        "version": "1.0",
        "timestamp": chrono_like_now(),
        "DDBStreamBatchInfo": {
            "shardId": Value::Null,
            "startSequenceNumber": sequence(records.first()),
            "endSequenceNumber": sequence(records.last()),
            "batchSize": records.len(),
            "streamArn": arn,
        },
    });
    tracing::error!(
        function = mapping.function.logical_id(),
        records = records.len(),
        "stream batch discarded after its retries"
    );
    if let Some((sns, topic)) = &mapping.on_failure
        && let Err(err) = sns.publish().topic_arn(topic).message(description.to_string()).send().await
    {
        tracing::error!(error = %err, "the on-failure destination refused the batch");
    }
}

fn chrono_like_now() -> String {
    aws_smithy_types::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// A stream record as Lambda puts it in the event.
fn lambda_record(record: &Record, arn: &str) -> Value {
    let mut dynamodb = Map::new();
    if let Some(stream) = record.dynamodb() {
        if let Some(at) = stream.approximate_creation_date_time() {
            dynamodb.insert("ApproximateCreationDateTime".into(), json!(at.secs()));
        }
        for (name, image) in
            [("Keys", stream.keys()), ("NewImage", stream.new_image()), ("OldImage", stream.old_image())]
        {
            if let Some(image) = image {
                dynamodb.insert(name.into(), item_json(image));
            }
        }
        dynamodb.insert("SequenceNumber".into(), json!(stream.sequence_number()));
        dynamodb.insert("SizeBytes".into(), json!(stream.size_bytes()));
        dynamodb.insert("StreamViewType".into(), json!(stream.stream_view_type().map(|v| v.as_str())));
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region(),
        "dynamodb": dynamodb,
        "eventSourceARN": arn,
    })
}

fn item_json(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect())
}

/// One value in DynamoDB's JSON.
fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |b: &aws_smithy_types::Blob| base64::engine::general_purpose::STANDARD.encode(b.as_ref());
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item_json(m) }),
        _ => Value::Null,
    }
}
