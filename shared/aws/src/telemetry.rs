//! Logging (JSON lines in Lambda, plain text locally) and each invocation's metrics as one
//! CloudWatch Embedded Metric Format line.

use tracing_subscriber::EnvFilter;

/// For Lambda: JSON, no ANSI colours, level from `RUST_LOG` (default info).
pub fn init_lambda() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_current_span(true)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .with_target(false)
        .try_init();
}

/// For the local gateway and tools: readable text.
pub fn init_local() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_target(false)
        .try_init();
}

/// Runs one invocation of `function` inside a span carrying Lambda's request id and API
/// Gateway's (when the event has one), and writes what it counted and timed as one
/// CloudWatch Embedded Metric Format line on stdout (no API call: CloudWatch reads the
/// log). An invocation that counted nothing writes no line.
pub async fn invocation<F: std::future::Future>(
    function: &'static str,
    request_id: &str,
    apigw_request_id: Option<&str>,
    work: F,
) -> F::Output {
    use tracing::Instrument;
    let span = tracing::info_span!("invocation", function, request_id, apigw_request_id);
    let (output, figures) = chat_domain::metrics::measure(work.instrument(span)).await;
    if !figures.is_empty() {
        println!("{}", emf_line(metrics_namespace(), function, &figures, now_ms()));
    }
    output
}

/// `METRICS_NAMESPACE` (template.yaml sets it per stack), read once.
fn metrics_namespace() -> &'static str {
    static NAMESPACE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAMESPACE.get_or_init(|| std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "ServerlessChat".into()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// One EMF document: every figure of the invocation as a metric with the one dimension
/// `Function` (bounded: never a user or channel), counts as numbers, durations as arrays.
pub fn emf_line(namespace: &str, function: &str, figures: &chat_domain::metrics::Figures, timestamp_ms: i64) -> String {
    use serde_json::{Map, Value, json};
    let mut document = Map::new();
    let mut metrics = Vec::new();
    for (name, count) in &figures.counts {
        metrics.push(json!({ "Name": name, "Unit": "Count" }));
        document.insert((*name).to_owned(), json!(count));
    }
    for (name, values) in &figures.durations_ms {
        metrics.push(json!({ "Name": name, "Unit": "Milliseconds" }));
        // EMF takes at most 100 values per metric in one document.
        let values: Vec<f64> = values.iter().take(100).map(|v| (v * 1000.0).round() / 1000.0).collect();
        document.insert((*name).to_owned(), json!(values));
    }
    document.insert("Function".into(), json!(function));
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{ "Namespace": namespace, "Dimensions": [["Function"]], "Metrics": metrics }],
        }),
    );
    Value::Object(document).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::metrics::{self, Figures};

    #[test]
    fn an_emf_line_declares_every_figure_with_the_function_dimension() {
        let mut figures = Figures::default();
        figures.counts.insert(metrics::MESSAGES_STORED, 1);
        figures.counts.insert(metrics::POSTS_DELIVERED, 3);
        figures.durations_ms.insert(metrics::SEND_TOTAL_MS, vec![12.3456]);
        let line = emf_line("ServerlessChat/test", "send", &figures, 1_800_000_000_000);
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ServerlessChat/test");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Function"]]));
        assert_eq!(doc["_aws"]["Timestamp"], 1_800_000_000_000_i64);
        assert_eq!(doc["Function"], "send");
        assert_eq!(doc["MessagesStored"], 1);
        assert_eq!(doc["PostsDelivered"], 3);
        assert_eq!(doc["SendTotalMs"], serde_json::json!([12.346]));
        let declared: Vec<(&str, &str)> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
            .collect();
        assert_eq!(
            declared,
            [("MessagesStored", "Count"), ("PostsDelivered", "Count"), ("SendTotalMs", "Milliseconds")]
        );
    }
}
