//! Accounts and access control.
//! - [`authorizer`]: the Lambda authorizer of both APIs (binary `authorizer`).
//! - [`http`]: `POST /auth/signup`, `/auth/signin`, `/auth/refresh`, and the caller's push
//!   devices `POST /devices`, `GET /devices`, `DELETE /devices/{deviceId}` (binary `auth`).

pub mod authorizer;
pub mod http;
