//! The chat rules, written over ports (traits in [`ports`]) and nothing else: no AWS SDK,
//! no DynamoDB item, no Lambda event. The AWS adapters (crate `chat-aws`) implement the
//! ports for DynamoDB, the Management API, SNS and S3; [`memory`] implements them in
//! memory, so every rule is unit-tested in milliseconds.
//!
//! Each rule lives in one module (docs/DESIGN.md, "Rule → file"):
//! [`access`] who may read, write and manage; [`ordering`] ids and seq; [`delivery`]
//! fan-out, gone connections and pushes; [`presence`] online, offline and grace;
//! [`limits`] a limit on every action; [`consent`] invitations and blocks; [`accounts`]
//! sign-up, sign-in and sessions; [`history`] and [`sync`] reading back.

pub mod access;
pub mod accounts;
pub mod app;
pub mod calling;
pub mod chat;
pub mod clock;
pub mod connections;
pub mod consent;
pub mod delivery;
pub mod error;
pub mod history;
pub mod limits;
pub mod media;
pub mod membership;
pub mod memory;
pub mod metrics;
pub mod ordering;
pub mod ports;
pub mod presence;
pub mod push;
pub mod reactions;
pub mod reading;
pub mod search;
pub mod settings;
pub mod sync;

pub use app::App;
pub use chat_protocol::frames as protocol;
pub use chat_protocol::{calls, http, ids, model};
pub use error::{ChatError, ErrorCode, PortError};
