//! Counts the AWS requests a process makes, per operation, through an SDK interceptor.
//! Benchmarks and tests read it to show what an operation costs in requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Shared, cloneable request counter. Each attempt counts (a retry is a request too).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Attempts started and not finished yet.
    in_flight: Arc<AtomicI64>,
}

impl RequestCounter {
    /// Requests so far, keyed `service.Operation` (e.g. `dynamodb.BatchGetItem`).
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("counter lock").clone()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    /// Requests on their way now (started, not answered).
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Requests made while `f` ran; only meaningful when nothing else uses the clients.
    pub fn diff(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        after
            .iter()
            .filter_map(|(op, n)| {
                let delta = n - before.get(op).copied().unwrap_or(0);
                (delta > 0).then(|| (op.clone(), delta))
            })
            .collect()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let key = match cfg.load::<Metadata>() {
            Some(meta) => format!("{}.{}", meta.service().to_lowercase(), meta.name()),
            None => "unknown".to_owned(),
        };
        *self.counts.lock().expect("counter lock").entry(key).or_default() += 1;
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}
