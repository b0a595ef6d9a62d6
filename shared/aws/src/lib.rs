//! The AWS adapters of the chat domain: DynamoDB stores (every key and attribute name in
//! [`store::keys`]), the Management API poster, SNS push, S3 files with POST-policy
//! signing, HS256 tokens, configuration from the environment, request counting,
//! logging, and translation of API Gateway's Lambda events.
//!
//! A function's `main.rs` calls [`wire::from_env`] once per cold start and hands the
//! resulting `chat_domain::App` to its handler.

pub mod apigw;
pub mod apigw_http;
pub mod config;
pub mod lazy;
pub mod metrics;
pub mod notify;
pub mod s3;
pub mod search_files;
pub mod sns;
pub mod store;
pub mod streams;
pub mod telemetry;
pub mod tokens;
pub mod wire;
pub mod xray;
