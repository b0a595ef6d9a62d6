//! Accounts and access control.
//! - [`authorizer`]: the Lambda authorizer of both APIs (binary `authorizer`).
//! - [`http`]: `POST /auth/signup`, `/auth/signin`, `/auth/refresh` (binary `auth`).

pub mod authorizer;
pub mod http;
