//! Logging setup: JSON lines in Lambda (CloudWatch), plain text locally.

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
