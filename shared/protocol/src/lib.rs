//! The wire protocol, in one crate with no AWS dependency: what clients send and receive
//! over the WebSocket ([`frames`]) and the HTTP API ([`http`]), the message object and the
//! ids it carries ([`model`], [`ids`]), and the stable error codes ([`error`]).
//!
//! The functions, the local gateway, the CLI, the bench and the tests all use these types;
//! docs/asyncapi.yaml and docs/openapi.yaml are checked against them (tests/protocol_docs.rs).

pub mod calls;
pub mod error;
pub mod frames;
pub mod http;
pub mod ids;
pub mod model;
pub mod search;

pub use error::{ErrorCode, ProtocolError};
