//! Benchmarks of the chat backend on the local stack (moto + the local gateway): AWS
//! requests per operation, delivery latency (ours against a scan-based fan-out), handler
//! CPU without I/O, cold starts of the release binaries, and a load run. The `bench`
//! binary prints them as tables and keeps them in `bench/results/latest.json`;
//! docs/BENCHMARKS.md has the commands and the figures. Figures, never assertions: the
//! pass/fail side of reliability is in tests/e2e/reliability.rs and bench/tests/.

pub mod abuse;
pub mod aws_http;
pub mod baseline;
pub mod calls;
pub mod changes;
pub mod coldstart;
pub mod cpu;
pub mod lambda_events;
pub mod latency;
pub mod legacy_send;
pub mod metering;
pub mod presence;
pub mod report;
pub mod requests;
pub mod scale;
pub mod search;
pub mod send_path;
pub mod sockets;
pub mod stats;
pub mod units;
pub mod world;
