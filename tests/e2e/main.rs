//! End-to-end tests: real WebSocket and HTTP clients, the local gateway, moto.
//! One binary, so moto starts once; each test has its own tables and gateway.

mod abuse;
mod accounts;
mod aws_rules;
mod bad_input;
mod calls;
mod channels;
mod chat;
mod fuzz;
mod history;
mod media;
mod observability;
mod presence;
mod reactions;
mod reliability;
mod search;
mod sync;
mod template_routes;
