//! The `questlog` binary as a library: configuration, the application, and the admin commands,
//! so that tests drive exactly what the binary runs.

pub mod admin;
pub mod app;
pub mod config;
pub mod lineage;
pub mod metrics;
pub mod openapi;
pub mod secret;
pub mod serve;

pub use app::Application;
/// The modules the binary runs (`questlog-bundle`).
pub use questlog_bundle as modules;
