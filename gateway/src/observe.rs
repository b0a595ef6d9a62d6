//! What an operator sees of the local stack: every invocation's figures (the same ones the
//! functions write as EMF lines in AWS) summed into Prometheus text at `/metrics`, with a
//! histogram of every duration in the brief's buckets (10 ms to 1 s) and the number of
//! open connections; and `/health`, which asks DynamoDB (moto) for one item.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_domain::App;
use chat_domain::metrics::Figures;
use chat_domain::model::ChannelId;

use crate::routes::Function;

/// The namespace of the EMF lines the local stack keeps (`METRICS_NAMESPACE` in AWS).
pub const LOCAL_NAMESPACE: &str = "ServerlessChat/local";

/// Bucket bounds of the duration histograms, in milliseconds.
pub const BUCKETS_MS: [f64; 7] = [10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at or below each bound of [`BUCKETS_MS`].
    buckets: [u64; BUCKETS_MS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, ms: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(BUCKETS_MS) {
            if ms <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += ms;
    }
}

#[derive(Debug, Default)]
struct Totals {
    /// (function, outcome) -> invocations.
    invocations: BTreeMap<(&'static str, &'static str), u64>,
    /// (metric, function) -> sum.
    counts: BTreeMap<(&'static str, &'static str), u64>,
    durations: BTreeMap<(&'static str, &'static str), Histogram>,
    /// The EMF lines the latest invocations would have written in Lambda, newest last.
    emf: std::collections::VecDeque<String>,
}

/// EMF lines kept for inspection.
const KEPT_EMF_LINES: usize = 200;

/// The figures of every invocation so far. A handle: clones share them.
#[derive(Clone, Default)]
pub struct Observed {
    totals: Arc<Mutex<Totals>>,
    /// Asked by `/health`.
    probe: Option<Arc<App>>,
}

impl Observed {
    pub fn with_probe(probe: Arc<App>) -> Self {
        Self { totals: Arc::default(), probe: Some(probe) }
    }

    pub fn record(&self, function: Function, ok: bool, figures: &Figures) {
        let name = function_name(function);
        let emf = (!figures.is_empty())
            .then(|| chat_aws::telemetry::emf_line(LOCAL_NAMESPACE, name, figures, crate::now_ms()));
        let Ok(mut totals) = self.totals.lock() else { return };
        if let Some(line) = emf {
            tracing::debug!(target: "emf", "{line}");
            if totals.emf.len() == KEPT_EMF_LINES {
                totals.emf.pop_front();
            }
            totals.emf.push_back(line);
        }
        *totals.invocations.entry((name, if ok { "ok" } else { "error" })).or_default() += 1;
        for (metric, n) in &figures.counts {
            *totals.counts.entry((metric, name)).or_default() += n;
        }
        for (metric, values) in &figures.durations_ms {
            let histogram = totals.durations.entry((metric, name)).or_default();
            values.iter().for_each(|ms| histogram.observe(*ms));
        }
    }

    /// The EMF lines of the latest invocations (what each would have logged in Lambda).
    pub fn emf_lines(&self) -> Vec<String> {
        self.totals.lock().map(|t| t.emf.iter().cloned().collect()).unwrap_or_default()
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, open_connections: usize) -> String {
        let mut out = String::new();
        let totals = match self.totals.lock() {
            Ok(totals) => totals,
            Err(poisoned) => poisoned.into_inner(),
        };
        let _ = writeln!(out, "# HELP chat_open_connections WebSocket connections open now.");
        let _ = writeln!(out, "# TYPE chat_open_connections gauge");
        let _ = writeln!(out, "chat_open_connections {open_connections}");
        let _ = writeln!(out, "# HELP chat_invocations_total Function invocations, by outcome.");
        let _ = writeln!(out, "# TYPE chat_invocations_total counter");
        for ((function, outcome), n) in &totals.invocations {
            let _ = writeln!(out, "chat_invocations_total{{function=\"{function}\",outcome=\"{outcome}\"}} {n}");
        }
        let mut last = "";
        for ((metric, function), n) in &totals.counts {
            let name = format!("chat_{}_total", snake(metric));
            if *metric != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = metric;
            }
            let _ = writeln!(out, "{name}{{function=\"{function}\"}} {n}");
        }
        last = "";
        for ((metric, function), histogram) in &totals.durations {
            let name = format!("chat_{}", snake(metric));
            if *metric != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = metric;
            }
            for (bound, n) in BUCKETS_MS.iter().zip(histogram.buckets) {
                let _ = writeln!(out, "{name}_bucket{{function=\"{function}\",le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "{name}_bucket{{function=\"{function}\",le=\"+Inf\"}} {}", histogram.count);
            let _ = writeln!(out, "{name}_sum{{function=\"{function}\"}} {:.3}", histogram.sum);
            let _ = writeln!(out, "{name}_count{{function=\"{function}\"}} {}", histogram.count);
        }
        out
    }

    /// `Ok` with what was checked while DynamoDB answers a read within 2 s; `Err` with what
    /// failed otherwise.
    pub async fn health(&self) -> Result<BTreeMap<&'static str, String>, BTreeMap<&'static str, String>> {
        let Some(app) = &self.probe else {
            return Ok(BTreeMap::from([("dynamodb", "not checked".to_owned())]));
        };
        let probe = ChannelId::parse("health-probe").expect("a valid channel id");
        let read = tokio::time::timeout(Duration::from_secs(2), app.channels().meta(&probe)).await;
        match read {
            Ok(Ok(_)) => Ok(BTreeMap::from([("dynamodb", "ok".to_owned())])),
            Ok(Err(err)) => Err(BTreeMap::from([("dynamodb", err.to_string())])),
            Err(_) => Err(BTreeMap::from([("dynamodb", "no answer within 2 s".to_owned())])),
        }
    }
}

/// What `local-gateway stats` shows of a `/metrics` text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub open_connections: f64,
    pub messages_stored: f64,
    pub posts: [f64; 3],
    pub rate_limited: f64,
    pub errors: f64,
    /// The send latency histogram (SendTotalMs), all functions: cumulative counts per bound.
    pub send_buckets: Vec<(f64, f64)>,
}

impl Summary {
    pub fn from_text(text: &str) -> Self {
        let mut summary = Summary::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let name = series.split('{').next().unwrap_or_default();
            match name {
                "chat_open_connections" => summary.open_connections = value,
                "chat_messages_stored_total" => summary.messages_stored += value,
                "chat_posts_delivered_total" => summary.posts[0] += value,
                "chat_posts_gone_total" => summary.posts[1] += value,
                "chat_posts_failed_total" => summary.posts[2] += value,
                "chat_invocations_total" if series.contains("outcome=\"error\"") => summary.errors += value,
                "chat_send_total_ms_bucket" => {
                    let bound = series.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("+Inf");
                    let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().unwrap_or(f64::INFINITY) };
                    match summary.send_buckets.iter_mut().find(|(b, _)| *b == bound) {
                        Some((_, n)) => *n += value,
                        None => summary.send_buckets.push((bound, value)),
                    }
                }
                _ if name.starts_with("chat_rate_limited") => summary.rate_limited += value,
                _ => {}
            }
        }
        summary.send_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        summary
    }

    /// The bound of the bucket holding quantile `q` of the sends (an upper estimate).
    pub fn send_quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.send_buckets.last()?.1;
        if total == 0.0 {
            return None;
        }
        self.send_buckets.iter().find(|(_, n)| *n >= q * total).map(|(bound, _)| *bound)
    }

    /// One line: totals, and what changed since `previous`.
    pub fn line(&self, previous: Option<&Summary>) -> String {
        let new = previous.map(|p| self.messages_stored - p.messages_stored).unwrap_or(self.messages_stored);
        let quantile = |q: f64| match self.send_quantile_ms(q) {
            Some(bound) if bound.is_finite() => format!("≤{bound} ms"),
            Some(_) => "> 1 s".to_owned(),
            None => "-".to_owned(),
        };
        format!(
            "open {} | messages {} (+{new}) | posts ok {} gone {} failed {} | send p50 {} p99 {} | rate-limited {} | errors {}",
            self.open_connections,
            self.messages_stored,
            self.posts[0],
            self.posts[1],
            self.posts[2],
            quantile(0.5),
            quantile(0.99),
            self.rate_limited,
            self.errors,
        )
    }
}

/// The function's name as its metrics carry it (the `Function` dimension in AWS).
pub fn function_name(function: Function) -> &'static str {
    match function {
        Function::Authorizer => "authorizer",
        Function::Connect => "connect",
        Function::Disconnect => "disconnect",
        Function::Send => "send",
        Function::History => "history",
        Function::Auth => "auth",
        Function::Channels => "channels",
        Function::PresenceSweep => "presence",
        Function::Search => "search",
        Function::SearchIndexer => "indexer",
    }
}

/// `SendTotalMs` -> `send_total_ms`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::metrics;

    #[test]
    fn counts_and_durations_render_as_prometheus_counters_and_histograms() {
        let observed = Observed::default();
        let mut figures = Figures::default();
        figures.counts.insert(metrics::MESSAGES_STORED, 1);
        figures.durations_ms.insert(metrics::SEND_TOTAL_MS, vec![8.0, 40.0, 2_000.0]);
        observed.record(Function::Send, true, &figures);
        observed.record(Function::Send, false, &Figures::default());
        let text = observed.render(3);
        for line in [
            "chat_open_connections 3",
            "chat_invocations_total{function=\"send\",outcome=\"ok\"} 1",
            "chat_invocations_total{function=\"send\",outcome=\"error\"} 1",
            "chat_messages_stored_total{function=\"send\"} 1",
            "chat_send_total_ms_bucket{function=\"send\",le=\"10\"} 1",
            "chat_send_total_ms_bucket{function=\"send\",le=\"50\"} 2",
            "chat_send_total_ms_bucket{function=\"send\",le=\"1000\"} 2",
            "chat_send_total_ms_bucket{function=\"send\",le=\"+Inf\"} 3",
            "chat_send_total_ms_count{function=\"send\"} 3",
            "chat_send_total_ms_sum{function=\"send\"} 2048.000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        let summary = Summary::from_text(&text);
        assert_eq!((summary.open_connections, summary.messages_stored, summary.errors), (3.0, 1.0, 1.0));
        assert_eq!(summary.send_quantile_ms(0.5), Some(50.0));
        assert_eq!(summary.send_quantile_ms(0.99), Some(f64::INFINITY));
        assert!(summary.line(None).starts_with("open 3 | messages 1 (+1)"), "{}", summary.line(None));
    }
}
