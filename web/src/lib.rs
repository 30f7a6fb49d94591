//! What questlog's HTTP services share: problem+json errors, bearer tokens, the shutdown signal
//! and telemetry.

pub mod auth;
pub mod openapi;
pub mod problem;
pub mod shutdown;
pub mod telemetry;

pub use auth::{Authenticated, Bearer, RefreshClaims, TokenKeys, TokenPair};
pub use problem::Problem;
