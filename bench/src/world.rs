//! The local stack a benchmark runs on: the e2e harness's (moto started once per process,
//! a gateway with its own tables per [`World`]), with every AWS call timed by a [`Tap`].

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chat_aws::metrics::RequestCounter;
use e2e::{InvokerFactory, Stack, StackOptions};

use crate::aws_http::Tap;
use crate::metering::Units;

pub struct World {
    pub stack: Stack,
    pub tap: Tap,
}

impl World {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// With the gateway calling the functions through `invoker` (default: in-process).
    pub async fn start_with(invoker: Option<InvokerFactory>) -> Self {
        Self::start_with_options(StackOptions { invoker, ..Default::default() }).await
    }

    /// With `options` (their `sdk` is replaced by the tapped one).
    pub async fn start_with_options(options: StackOptions) -> Self {
        let tap = Tap::default();
        let sdk = tap.sdk_config(&e2e::sdk_config().await);
        let stack = Stack::start_with(StackOptions { sdk: Some(sdk), ..options }).await;
        Self { stack, tap }
    }

    /// Waits until no AWS request has been made for `quiet` (asynchronous work such as
    /// `$disconnect` has finished), at most 10 s.
    pub async fn settle(&self, quiet: Duration) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = self.stack.requests.total();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.stack.requests.total();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return;
            }
        }
    }

    /// The AWS requests made by `operation` and whatever it set off, counted in the SDK.
    pub async fn requests_of<F: std::future::Future>(&self, operation: F) -> (BTreeMap<String, u64>, F::Output) {
        let (counts, _, output) = self.measure(operation).await;
        (counts, output)
    }

    /// [`World::requests_of`], and the capacity units metered meanwhile (none unless the
    /// tap meters).
    pub async fn measure<F: std::future::Future>(&self, operation: F) -> (BTreeMap<String, u64>, Units, F::Output) {
        self.settle(Duration::from_millis(200)).await;
        let before = self.stack.requests.snapshot();
        let units_before = self.tap.units();
        let output = operation.await;
        self.settle(Duration::from_millis(300)).await;
        (RequestCounter::diff(&before, &self.stack.requests.snapshot()), self.tap.units().minus(&units_before), output)
    }

    /// Writes `count` items into `table` with BatchWriteItem, 25 at a time.
    pub async fn fill(&self, table: &str, count: usize, item: impl Fn(usize) -> HashMap<String, AttributeValue>) {
        let dynamo = &self.stack.dynamo;
        let items: Vec<usize> = (0..count).collect();
        for chunk in items.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|i| {
                    let put = PutRequest::builder().set_item(Some(item(*i))).build().expect("an item");
                    WriteRequest::builder().put_request(put).build()
                })
                .collect();
            while !requests.is_empty() {
                let out = dynamo
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("filling {table}: {e:?}"));
                requests = out.unprocessed_items.and_then(|mut left| left.remove(table)).unwrap_or_default();
            }
        }
    }

    /// `count` other users' stored connections in Presence (users the benchmark never
    /// talks to): the table a real deployment has, which a keyed lookup never reads.
    pub async fn fill_presence(&self, count: usize) {
        let table = self.stack.config.tables.presence.clone();
        let far = self.stack.app.now_ms() + 3_600_000;
        self.fill(&table, count, |i| {
            let clock = AttributeValue::M(HashMap::from([
                ("until".to_owned(), AttributeValue::N(far.to_string())),
                ("beat".to_owned(), AttributeValue::N(far.to_string())),
            ]));
            HashMap::from([
                ("userId".to_owned(), AttributeValue::S(format!("stored{i:06}"))),
                ("conns".to_owned(), AttributeValue::M(HashMap::from([(format!("St0red{i:06}="), clock)]))),
            ])
        })
        .await;
    }
}

/// `count` user names `{prefix}000`, `{prefix}001`, …
pub fn users(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i:03}")).collect()
}
