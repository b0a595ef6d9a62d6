//! Everything the chat functions have in common: the domain (ids, messages, frames),
//! DynamoDB storage, delivery through the API Gateway Management API, tokens and config.
//!
//! Function crates stay thin: they parse a Lambda event, call [`chat`], and shape the answer.

pub mod accounts;
pub mod apigw;
pub mod apigw_http;
pub mod app;
pub mod auth;
pub mod chat;
pub mod clock;
pub mod config;
pub mod consent;
pub mod error;
pub mod limits;
pub mod media;
pub mod membership;
pub mod metrics;
pub mod notify;
pub mod presence;
pub mod push;
pub mod store;
pub mod sync;
pub mod telemetry;

pub use chat_protocol::frames as protocol;
pub use chat_protocol::{http, ids, model};

pub use app::App;
pub use error::{ChatError, ErrorCode};
